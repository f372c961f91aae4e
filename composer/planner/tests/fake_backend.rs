//! The planner above the seam, against an in-memory distribution: graph, settle, keys and the
//! scheduler without network, mirror or sandbox, for a distribution whose index names packages
//! by their file's SHA-256 and for one that names them by digests of their parts (as APK does).

// Test code may make temporary directories under TMPDIR (clippy.toml forbids it to the library).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use composer_distro::fake::{FakeIndex, FakePackage, Scheme};
use composer_planner::{BuildError, BuildOutcome, Context, LockPolicy, Lockfile, NoReporter, Session, Tools};
use composer_store::Store;

fn packages(app_version: &str) -> Vec<FakePackage> {
    vec![
        FakePackage::new("app", app_version, &["libfoo"], &[("usr/bin/app", app_version)]),
        FakePackage::new("libfoo", "1", &[], &[("usr/lib/libfoo.so.1", "foo")]),
        FakePackage::new("unrelated", "1", &[], &[("usr/share/unrelated", "-")]),
    ]
}

struct World {
    dir: tempfile::TempDir,
    store: Store,
    client: composer_client::Client,
    indexes: composer_wheels::IndexSettings,
    tools: Tools,
    interrupted: AtomicBool,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        std::fs::write(
            dir.path().join("r.toml"),
            "[image]\nname = \"fake\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nsource_date_epoch = 1700000000\n\n\
             [base]\nsuite = \"stable\"\nmirror = \"fake\"\npackages = [\"app\"]\n",
        )
        .unwrap();
        World {
            dir,
            store,
            client: composer_client::Client::new(composer_client::ClientOptions::default()),
            indexes: composer_wheels::IndexSettings {
                flags: Default::default(),
                config: Default::default(),
                config_path: None,
                env_var: |name| name.to_string(),
                env: Default::default(),
                pip_index_url: None,
                pip_config_files: Vec::new(),
            },
            tools: Tools::default(),
            interrupted: AtomicBool::new(false),
        }
    }

    fn recipe_path(&self) -> PathBuf {
        self.dir.path().join("r.toml")
    }

    fn try_build(&self, index: &FakeIndex, policy: LockPolicy) -> Result<BuildOutcome, BuildError> {
        let ctx = Context {
            store: &self.store,
            client: &self.client,
            distributions: index,
            indexes: &self.indexes,
            offline: true,
            reporter: &NoReporter,
            source_date_epoch: None,
            tools: &self.tools,
            temp_dir: self.dir.path(),
            substituters: None,
            interrupted: &self.interrupted,
            allow_downgrade: false,
        };
        let recipe = composer_recipe::Recipe::load(&self.recipe_path()).unwrap();
        Session::new(&ctx, &recipe, &self.recipe_path()).build(policy)
    }

    fn build(&self, index: &FakeIndex, policy: LockPolicy) -> BuildOutcome {
        self.try_build(index, policy).unwrap_or_else(|e| panic!("{e:?}"))
    }
}

fn lock_of(path: &Path) -> Lockfile {
    Lockfile::read(&path.with_extension("lock")).unwrap().expect("a lock")
}

fn ran(outcome: &BuildOutcome) -> Vec<String> {
    outcome.steps[outcome.resolution_steps..]
        .iter()
        .filter(|s| !s.cached)
        .map(|s| format!("{} {}", s.step, s.name))
        .collect()
}

#[test]
fn a_build_runs_each_step_once_and_a_rebuild_runs_none() {
    for scheme in [Scheme::FileSha256, Scheme::Parts] {
        let world = World::new();
        let index = FakeIndex::new(scheme, packages("1"));
        let first = world.build(&index, LockPolicy::UseOrCreate);
        assert!(first.lock_written);
        let lock = lock_of(&world.recipe_path());
        let names: Vec<&str> = lock.platforms[0].packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["app", "libfoo"], "the closure of the request, nothing more ({scheme:?})");
        assert_eq!(lock.platforms[0].packages[0].identity.sha256().is_some(), scheme == Scheme::FileSha256);
        // Both platforms' images share the package files: each is fetched once.
        assert_eq!(index.fetches.load(Ordering::SeqCst), 2, "{scheme:?}");
        assert_eq!(first.manifests.len(), 2);

        let again = world.build(&index, LockPolicy::Locked);
        assert_eq!(ran(&again), Vec::<String>::new(), "{scheme:?}: a rebuild runs nothing");
        assert_eq!(index.fetches.load(Ordering::SeqCst), 2, "{scheme:?}: and fetches nothing");
        assert_eq!(again.index.sha256, first.index.sha256, "{scheme:?}: the same image");
    }
}

#[test]
fn the_image_is_the_same_whichever_way_the_index_names_its_packages() {
    let digest = |scheme| {
        let world = World::new();
        world.build(&FakeIndex::new(scheme, packages("1")), LockPolicy::UseOrCreate).index.sha256
    };
    assert_eq!(digest(Scheme::FileSha256), digest(Scheme::Parts));
}

#[test]
fn a_changed_package_reruns_only_what_reads_it() {
    for scheme in [Scheme::FileSha256, Scheme::Parts] {
        let world = World::new();
        let first = world.build(&FakeIndex::new(scheme, packages("1")), LockPolicy::UseOrCreate);
        // A new version of `app`: the lock follows (it no longer verifies), libfoo's layer stays.
        std::fs::remove_file(world.recipe_path().with_extension("lock")).unwrap();
        let index = FakeIndex::new(scheme, packages("2"));
        let second = world.build(&index, LockPolicy::UseOrCreate);
        assert_ne!(second.index.sha256, first.index.sha256);
        assert_eq!(index.fetches.load(Ordering::SeqCst), 1, "{scheme:?}: only app's file is fetched");
        let ran = ran(&second);
        assert!(ran.iter().any(|s| s.contains("app")), "{scheme:?}: {ran:?}");
        assert!(!ran.iter().any(|s| s.starts_with("fetch") && s.contains("libfoo")), "{scheme:?}: {ran:?}");
    }
}

#[test]
fn a_lock_entry_whose_identity_was_edited_is_refused_before_anything_is_fetched() {
    for scheme in [Scheme::FileSha256, Scheme::Parts] {
        let world = World::new();
        let index = FakeIndex::new(scheme, packages("1"));
        world.build(&index, LockPolicy::UseOrCreate);
        let path = world.recipe_path().with_extension("lock");
        let mut lock = lock_of(&world.recipe_path());
        let other = composer_distro::Identity::file_sha256(&composer_store::Sha256([7; 32]));
        lock.platforms[0].packages[0].identity = other;
        lock.write(&path).unwrap();
        // A store that never saw the honest lock: nothing is cached to hide behind.
        let fresh = World { store: Store::open(&world.dir.path().join("fresh-store")).unwrap(), ..world };
        let index = FakeIndex::new(scheme, packages("1"));
        let Err(error) = fresh.try_build(&index, LockPolicy::Locked) else {
            panic!("{scheme:?}: a lock naming another file built")
        };
        assert!(format!("{error}").contains("lock"), "{scheme:?}: {error}");
        assert_eq!(index.fetches.load(Ordering::SeqCst), 0, "{scheme:?}");
    }
}

/// Layers made again (another timestamp) read the package files the store already holds,
/// whether it finds them by their SHA-256 or by the record their verified fetch left.
#[test]
fn layers_made_again_read_the_stored_package_files() {
    for scheme in [Scheme::FileSha256, Scheme::Parts] {
        let world = World::new();
        let index = FakeIndex::new(scheme, packages("1"));
        let first = world.build(&index, LockPolicy::UseOrCreate);
        let text = std::fs::read_to_string(world.recipe_path()).unwrap();
        std::fs::write(world.recipe_path(), text.replace("1700000000", "1700000001")).unwrap();
        let second = world.build(&index, LockPolicy::Locked);
        assert_ne!(second.index.sha256, first.index.sha256, "{scheme:?}: a new timestamp, new layers");
        assert!(ran(&second).iter().any(|s| s.starts_with("layer")), "{scheme:?}: {:?}", ran(&second));
        assert_eq!(index.fetches.load(Ordering::SeqCst), 2, "{scheme:?}: no file fetched again");
    }
}
