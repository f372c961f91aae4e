//! Build steps: the allocator, the recipe's `[[builds]]` and CPython, compiled in the sandbox on
//! a build root made of distro packages, per platform.
//!
//! A step's key holds the build root's packages, the sources' sha256, the script, the flags,
//! the platform and the outputs of the builds it uses: nothing of the machine (the job count is
//! not in it; parallel make does not change what is built). A rebuild is a cache hit; a changed
//! flag rebuilds that step and the steps that use it.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use composer_oci::{Compression, LayerDescriptor};
use composer_recipe::{AllocatorMode, AllocatorName, AllocatorSource, JEMALLOC_BUILD, PYTHON_BUILD, Platform};
use composer_store::{ActionKey, ActionRecord, BlobInfo, Hash, ObjectRef, RefKind, Sha256, Tree};

use crate::lockfile::{LockedPackage, Lockfile};
use crate::sandbox::{keep_log, tempdir};
use crate::toolchain::Flags;
use crate::{BuildError, Session, StepReport, sandbox};

/// Whether a pass over the sdists builds what is missing or only reports it.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Plan,
    Build,
}

const BUILD_VERSION: u32 = 1;
const ROOT_VERSION: u32 = 1;
const BUILD_LAYER_VERSION: u32 = 1;

/// What CPython's configure looks for, so that ssl, sqlite3, ctypes, lzma, bz2, readline,
/// curses, dbm, uuid and zlib are all built.
pub const CPYTHON_BUILD_DEPENDS: &[&str] = &[
    "libbz2-dev",
    "libffi-dev",
    "libgdbm-dev",
    "liblzma-dev",
    "libncurses-dev",
    "libreadline-dev",
    "libsqlite3-dev",
    "libssl-dev",
    "pkg-config",
    "uuid-dev",
    "zlib1g-dev",
];

const JEMALLOC_SCRIPT: &str = r#"mkdir src
tar -xf /sources/jemalloc -C src --strip-components=1
cd src
./configure --prefix="$PREFIX" --disable-doc --disable-cxx ${LG_PAGE:+--with-lg-page=$LG_PAGE} \
    CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS"
# The shared library only when something loads it at run time, and otherwise only
# libjemalloc.a (not also the -fPIC copy, libjemalloc_pic.a, for linking into shared objects):
# under qemu-user every object compiled is minutes.
if [ "$JEMALLOC_SHARED" = 1 ]; then
    make -j"$JOBS" build_lib
    make install_lib install_include DESTDIR="$DESTDIR"
else
    make -j"$JOBS" build_lib_static STATIC_LIBS=lib/libjemalloc.a
    make install_lib_static install_include DESTDIR="$DESTDIR" STATIC_LIBS=lib/libjemalloc.a
fi
"#;

const CPYTHON_SCRIPT: &str = r#"mkdir src
tar -xf /sources/python -C src --strip-components=1
cd src
# LTO comes from --with-lto: -flto in CFLAGS makes configure's object-file probes (float word
# order) read GIMPLE instead of data, and fail.
CFLAGS=$(echo "$CFLAGS" | sed 's/-flto[^ ]*//g')
LDFLAGS=$(echo "$LDFLAGS" | sed 's/-flto[^ ]*//g')
set --
[ "$COMPOSE_PGO" = 1 ] && set -- "$@" --enable-optimizations
[ "$COMPOSE_LTO" != off ] && set -- "$@" --with-lto
[ "$PYTHON_SHARED" = 1 ] && set -- "$@" --enable-shared
# OPT replaces CPython's own "-O3" so that the profile's level is the one used.
./configure --prefix="$PREFIX" --build="$BUILD_TRIPLET" --with-ensurepip=no "$@" $PYTHON_CONFIGURE \
    OPT="-DNDEBUG -fwrapv $COMPOSE_OPT" CFLAGS="$CFLAGS $MALLOC_CFLAGS" \
    LDFLAGS="$LDFLAGS $MALLOC_LDFLAGS -Wl,-rpath,$PREFIX/lib" LIBS="$MALLOC_LIBS"
make -j"$JOBS"
make install DESTDIR="$DESTDIR"
# strip refuses what is not ELF, which leaves scripts as they are.
find "$DESTDIR" -type f \( -name '*.so*' -o -perm -u+x \) -exec strip --strip-unneeded {} + 2>/dev/null || true
ln -sf python3 "$DESTDIR$PREFIX/bin/python"
"#;

/// A minimal PEP 517 front end: the sdist's own backend (setuptools' legacy one when it names
/// none), imported from the build root or the sdist's `backend-path`, asked for a wheel. No
/// build isolation and no network: build requirements come from the distro's packages.
const SDIST_SCRIPT: &str = r#"mkdir src
tar -xf /sources/sdist -C src --strip-components=1
cd src
"$PYTHON" - <<'PY'
import importlib, os, sys, tomllib
config = {}
if os.path.exists("pyproject.toml"):
    with open("pyproject.toml", "rb") as f:
        config = tomllib.load(f)
system = config.get("build-system", {})
for path in reversed(system.get("backend-path", [])):
    sys.path.insert(0, os.path.abspath(path))
module, _, attr = system.get("build-backend", "setuptools.build_meta:__legacy__").partition(":")
backend = importlib.import_module(module)
for part in filter(None, attr.split(".")):
    backend = getattr(backend, part)
os.makedirs("/out/dist")
print("built", backend.build_wheel("/out/dist"))
PY
"#;

/// Which part of a build's output goes into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ImagePart {
    None,
    All,
    /// Without static archives, headers and pkg-config files (and CPython's own test suite)
    /// under the prefix: what running needs, as a distro's runtime package holds it.
    Runtime(&'static str),
}

struct Job {
    name: String,
    script: String,
    /// (mount name under /sources, source name)
    sources: Vec<(String, String)>,
    uses: Vec<String>,
    profile: Option<String>,
    env: BTreeMap<String, String>,
    image: ImagePart,
}

/// A finished build: its output tree and what of it goes into the image.
pub struct Built {
    pub name: String,
    pub tree: Hash,
    image: ImagePart,
}

/// How many build steps a platform has (for `plan`: the bytecode step needs all of them).
pub(crate) fn job_count(session: &Session<'_>, platform: &Platform) -> usize {
    jobs(session, platform).len()
}

fn jobs(session: &Session<'_>, platform: &Platform) -> Vec<Job> {
    let recipe = session.recipe;
    let allocator = &recipe.allocator;
    let jemalloc_built = allocator.name == AllocatorName::Jemalloc && allocator.source == AllocatorSource::Build;
    let linked = allocator.name == AllocatorName::Jemalloc && allocator.mode == AllocatorMode::Link;
    let mut out = Vec::new();
    if jemalloc_built {
        let mut env = BTreeMap::new();
        if let Some(lg) = allocator.lg_page {
            env.insert("LG_PAGE".into(), lg.to_string());
        }
        // Preloaded, or linked into CPython, it is loaded as a shared library; builds that
        // `use` it link whichever they choose, and the static archive is always there.
        let shared =
            allocator.mode == AllocatorMode::Preload || recipe.python.as_ref().is_some_and(|p| p.build.is_some());
        env.insert("JEMALLOC_SHARED".into(), if shared { "1" } else { "0" }.into());
        out.push(Job {
            name: JEMALLOC_BUILD.into(),
            script: JEMALLOC_SCRIPT.into(),
            sources: vec![(JEMALLOC_BUILD.into(), JEMALLOC_BUILD.into())],
            uses: vec![],
            profile: allocator.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::Runtime("usr/local"),
        });
    }
    // What a build that links the allocator adds to its flags.
    let malloc_env = |env: &mut BTreeMap<String, String>| {
        if !linked {
            return;
        }
        env.insert("MALLOC_LIBS".into(), "-ljemalloc".into());
        if jemalloc_built {
            env.insert("MALLOC_LDFLAGS".into(), "-L/usr/local/lib -Wl,-rpath,/usr/local/lib".into());
        }
        if allocator.no_builtin {
            env.insert(
                "MALLOC_CFLAGS".into(),
                "-fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free".into(),
            );
        }
    };
    for build in &recipe.builds {
        let mut env = BTreeMap::new();
        if build.uses.iter().any(|u| u.get_ref() == JEMALLOC_BUILD) {
            malloc_env(&mut env);
        }
        out.push(Job {
            name: build.name.get_ref().clone(),
            script: build.script.clone(),
            sources: build.sources.iter().map(|s| (s.get_ref().clone(), s.get_ref().clone())).collect(),
            uses: build.uses.iter().map(|u| u.get_ref().clone()).collect(),
            profile: build.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: if build.image { ImagePart::All } else { ImagePart::None },
        });
    }
    if let Some(interpreter) = recipe.python.as_ref().and_then(|p| p.build.as_ref()) {
        let mut env = BTreeMap::from([
            ("PREFIX".to_string(), interpreter.prefix.clone()),
            ("PYTHON_SHARED".to_string(), if interpreter.shared { "1" } else { "0" }.to_string()),
            ("PYTHON_CONFIGURE".to_string(), interpreter.configure.join(" ")),
            ("BUILD_TRIPLET".to_string(), platform.triplet().to_string()),
        ]);
        malloc_env(&mut env);
        out.push(Job {
            name: PYTHON_BUILD.into(),
            script: CPYTHON_SCRIPT.into(),
            sources: vec![("python".into(), interpreter.source.get_ref().clone())],
            uses: if linked && jemalloc_built { vec![JEMALLOC_BUILD.into()] } else { vec![] },
            profile: interpreter.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::Runtime(leak_prefix(&interpreter.prefix)),
        });
    }
    out
}

/// Prefixes are few and live as long as the run; a `'static` one keeps [`ImagePart`] `Copy`.
fn leak_prefix(prefix: &str) -> &'static str {
    Box::leak(prefix.trim_matches('/').to_string().into_boxed_str())
}

fn root_key(platform: &Platform, packages: &[LockedPackage]) -> ActionKey {
    let mut key = ActionKey::new("build-root", ROOT_VERSION)
        .with("platform", platform.to_string())
        .with("unpack-version", crate::UNPACK_VERSION.to_le_bytes())
        // A build root holds the system files too (the dpkg database, alternatives).
        .with("system-version", crate::SYSTEM_VERSION.to_le_bytes());
    for p in packages {
        key.field("deb", p.sha256.as_bytes());
    }
    key
}

/// The environment a job's script sees, without the job count (which is not part of its key).
fn job_env(session: &Session<'_>, job: &Job, platform: &Platform) -> BTreeMap<String, String> {
    let profile = session.recipe.toolchain.profile(job.profile.as_deref()).expect("validated: profiles exist");
    let mut env = sandbox::base_env(crate::epoch(session.recipe), 0);
    env.remove("JOBS");
    env.extend(Flags::new(profile, platform).env());
    env.insert("COMPOSE_PLATFORM".into(), platform.to_string());
    env.insert("COMPOSE_TRIPLET".into(), platform.triplet().into());
    for key in ["MALLOC_LIBS", "MALLOC_CFLAGS", "MALLOC_LDFLAGS"] {
        env.insert(key.into(), String::new());
    }
    env.extend(job.env.clone());
    env
}

impl Session<'_> {
    /// Runs (or finds in the store) every build of every platform, in recipe order.
    pub(crate) fn run_builds(
        &self,
        lock: &Lockfile,
        sources: &BTreeMap<String, BlobInfo>,
        steps: &mut Vec<StepReport>,
    ) -> Result<BTreeMap<String, Vec<Built>>, BuildError> {
        let mut out = BTreeMap::new();
        let digests: BTreeMap<String, Sha256> =
            sources.iter().map(|(name, blob)| (name.clone(), blob.sha256)).collect();
        for platform in self.recipe.image.platforms.get_ref() {
            let locked = lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers it");
            let jobs = jobs(self, platform);
            if jobs.is_empty() {
                continue;
            }
            let root_key = root_key(platform, &locked.build_packages);
            let mut root_tree: Option<Hash> = None;
            let mut done: Vec<Built> = Vec::new();
            for job in &jobs {
                let env = job_env(self, job, platform);
                let key = self.job_key(job, platform, &root_key, &env, &digests, &done);
                let cached = self.ctx.store.action_get(&key)?.and_then(|r| r.outputs.first().map(|o| o.id));
                let tree = match cached {
                    Some(tree) => tree,
                    None => {
                        let root = match root_tree {
                            Some(root) => root,
                            None => {
                                let root = self.build_root(&root_key, platform, &locked.build_packages, steps)?;
                                root_tree = Some(root);
                                root
                            }
                        };
                        self.run_job(job, platform, &key, root, env, sources, &done)?
                    }
                };
                steps.push(StepReport {
                    step: "build",
                    platform: Some(platform.to_string()),
                    name: job.name.clone(),
                    cached: cached.is_some(),
                    bytes: 0,
                });
                done.push(Built { name: job.name.clone(), tree, image: job.image });
            }
            out.insert(platform.to_string(), done);
        }
        Ok(out)
    }

    /// Builds a wheel from every sdist of the wheel plans, per platform, with the target
    /// interpreter (the built CPython, else the distro's python3) and `[python] profile`; or,
    /// planning, fetches and builds nothing: an sdist build is cached only when its sdist, the
    /// interpreter it uses and its result are all in the store. Returns the built (or cached)
    /// wheels by (platform, sdist sha256), so that the plan of the wheel layers is the build's.
    pub(crate) fn sdist_builds(
        &self,
        lock: &Lockfile,
        plans: &[crate::python::WheelPlan],
        built: &BTreeMap<String, Vec<Built>>,
        steps: &mut Vec<StepReport>,
        mode: Mode,
    ) -> Result<HashMap<(String, String), composer_wheels::LockedWheel>, BuildError> {
        let mut out = HashMap::new();
        let Some(python) = self.python() else { return Ok(out) };
        for plan in plans {
            let platform = &plan.platform;
            let sdists: Vec<&composer_wheels::LockedWheel> = plan.lock.wheels.iter().filter(|w| w.sdist).collect();
            if sdists.is_empty() {
                continue;
            }
            let locked = lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers it");
            let root_key = root_key(platform, &locked.build_packages);
            let done: &[Built] = built.get(&platform.to_string()).map_or(&[], Vec::as_slice);
            for sdist in sdists {
                let job = self.sdist_job(python, sdist);
                let blob = match mode {
                    Mode::Build => Some(self.fetch_one(sdist)?.0),
                    Mode::Plan => self.ctx.store.lookup_sha256(&crate::python::wheel_sha(sdist)?)?,
                };
                // A build runs after the interpreter it uses; a plan may find that not built yet.
                let interpreter_ready = job.uses.iter().all(|u| done.iter().any(|d| &d.name == u));
                let inputs = blob.filter(|_| interpreter_ready).map(|blob| {
                    let key_sources = BTreeMap::from([("sdist".to_string(), blob.sha256)]);
                    let sources = BTreeMap::from([("sdist".to_string(), blob)]);
                    let job_env = job_env(self, &job, platform);
                    let key = self.job_key(&job, platform, &root_key, &job_env, &key_sources, done);
                    (sources, job_env, key)
                });
                let cached = match &inputs {
                    Some((_, _, key)) => self.ctx.store.action_get(key)?.and_then(|r| r.outputs.first().map(|o| o.id)),
                    None => None,
                };
                let tree = match (cached, inputs, mode) {
                    (Some(tree), _, _) => Some(tree),
                    (None, Some((sources, job_env, key)), Mode::Build) => {
                        let root = self.build_root(&root_key, platform, &locked.build_packages, steps)?;
                        Some(self.run_job(&job, platform, &key, root, job_env, &sources, done)?)
                    }
                    (None, None, Mode::Build) => unreachable!("run_builds built the interpreter first"),
                    (None, _, Mode::Plan) => None,
                };
                steps.push(StepReport {
                    step: "sdist-build",
                    platform: Some(platform.to_string()),
                    name: sdist.filename.clone(),
                    cached: cached.is_some(),
                    bytes: 0,
                });
                if let Some(tree) = tree {
                    out.insert((platform.to_string(), sdist.sha256.clone()), self.built_wheel(sdist, &tree)?);
                }
            }
        }
        Ok(out)
    }

    /// The sandbox job that turns one locked sdist into a wheel with the target interpreter.
    fn sdist_job(&self, python: &composer_recipe::Python, sdist: &composer_wheels::LockedWheel) -> Job {
        let interpreter = self.interpreter_prefix();
        let mut env = BTreeMap::new();
        match interpreter {
            Some(prefix) => {
                env.insert("PYTHON".to_string(), format!("{prefix}/bin/python3"));
                // setuptools and wheel are the distro's, pure Python, for the same minor version.
                env.insert("PYTHONPATH".to_string(), "/usr/lib/python3/dist-packages".to_string());
            }
            None => {
                env.insert("PYTHON".to_string(), "/usr/bin/python3".to_string());
            }
        }
        Job {
            name: format!("sdist-{}", sdist.name),
            script: SDIST_SCRIPT.into(),
            sources: vec![("sdist".into(), "sdist".into())],
            uses: if interpreter.is_some() { vec![PYTHON_BUILD.into()] } else { vec![] },
            profile: python.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::None,
        }
    }

    /// The wheel an sdist build left in `dist/`, stored under its sha256 like a fetched one.
    fn built_wheel(
        &self,
        sdist: &composer_wheels::LockedWheel,
        tree: &Hash,
    ) -> Result<composer_wheels::LockedWheel, BuildError> {
        let store = self.ctx.store;
        let tree = store.get_tree(tree)?;
        let wheels: Vec<_> = tree
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                composer_store::EntryKind::File { content, .. }
                    if e.path.starts_with("dist/") && e.path.ends_with(".whl") =>
                {
                    Some((e.path.trim_start_matches("dist/").to_string(), *content))
                }
                _ => None,
            })
            .collect();
        let [(filename, content)] = wheels.as_slice() else {
            return Err(BuildError::Sandbox(format!(
                "building {} left {} wheels in dist/, not one",
                sdist.filename,
                wheels.len()
            )));
        };
        let blob = store.put_bytes(&store.read(content)?)?;
        let wheel = composer_wheels::LockedWheel {
            name: sdist.name.clone(),
            version: sdist.version.clone(),
            filename: filename.clone(),
            url: format!("built-from:{}", sdist.filename),
            size: blob.size,
            sha256: blob.sha256.to_string(),
            sdist: false,
        };
        // Recorded like a fetched wheel, so `compose wheels index` publishes it.
        self.fetch_one(&wheel)?;
        Ok(wheel)
    }

    /// For `compose plan`: each build step, cached or not (a step after an uncached one whose
    /// output it uses cannot be cached).
    pub(crate) fn plan_builds(
        &self,
        lock: &Lockfile,
        sources: &BTreeMap<String, Sha256>,
        steps: &mut Vec<StepReport>,
    ) -> Result<BTreeMap<String, Vec<Built>>, BuildError> {
        let mut cached = BTreeMap::new();
        for platform in self.recipe.image.platforms.get_ref() {
            let locked = lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers it");
            let root_key = root_key(platform, &locked.build_packages);
            let mut done: Vec<Built> = Vec::new();
            let mut blocked = false;
            for job in jobs(self, platform) {
                let env = job_env(self, &job, platform);
                let uses_blocked = blocked && job.uses.iter().any(|u| !done.iter().any(|d| &d.name == u));
                let tree = if uses_blocked {
                    None
                } else {
                    let key = self.job_key(&job, platform, &root_key, &env, sources, &done);
                    self.ctx.store.action_get(&key)?.and_then(|r| r.outputs.first().map(|o| o.id))
                };
                steps.push(StepReport {
                    step: "build",
                    platform: Some(platform.to_string()),
                    name: job.name.clone(),
                    cached: tree.is_some(),
                    bytes: 0,
                });
                match tree {
                    Some(tree) => done.push(Built { name: job.name.clone(), tree, image: job.image }),
                    None => blocked = true,
                }
            }
            cached.insert(platform.to_string(), done);
        }
        Ok(cached)
    }

    fn job_key(
        &self,
        job: &Job,
        platform: &Platform,
        root_key: &ActionKey,
        env: &BTreeMap<String, String>,
        sources: &BTreeMap<String, Sha256>,
        done: &[Built],
    ) -> ActionKey {
        let mut key = ActionKey::new("build", BUILD_VERSION)
            .with("name", &job.name)
            .with("platform", platform.to_string())
            .with("root", root_key.hash().0)
            .with("script", &job.script)
            .with("env", serde_json::to_vec(env).expect("serializes"));
        for (mount, source) in &job.sources {
            key.field("source", format!("{mount}={}", sources[source]).as_bytes());
        }
        for used in &job.uses {
            let built = done.iter().find(|d| &d.name == used).expect("validated: uses name earlier builds");
            key.field("uses", format!("{used}={}", built.tree.to_hex()).as_bytes());
        }
        key
    }

    /// The build root of one platform as a tree: its packages unpacked (from the store when
    /// they were before) and what their maintainer scripts would have set up, such as the `cc`
    /// alternative.
    fn build_root(
        &self,
        key: &ActionKey,
        platform: &Platform,
        packages: &[LockedPackage],
        steps: &mut Vec<StepReport>,
    ) -> Result<Hash, BuildError> {
        let store = self.ctx.store;
        if let Some(record) = store.action_get(key)?
            && let Some(tree) = record.outputs.first()
        {
            return Ok(tree.id);
        }
        self.ctx.reporter.status("Preparing", &format!("build root for {platform} ({} packages)", packages.len()));
        let (unpacked, _) =
            self.unpack_and_layer(packages.iter().collect(), BTreeMap::new(), steps, 0, Compression::Gzip)?;
        let mut view = crate::system::ImageView { store, entries: HashMap::new() };
        let mut metadata = Vec::new();
        for p in packages {
            let (tree, control) = unpacked[&p.sha256];
            for entry in store.get_tree(&tree)?.entries {
                view.entries.insert(entry.path.clone(), entry);
            }
            metadata.push(store.read(&control)?);
        }
        let with_meta: Vec<(&LockedPackage, &[u8])> =
            packages.iter().zip(&metadata).map(|(p, m)| (p, m.as_slice())).collect();
        let distro = self.backend.system_files(&with_meta, &view)?;
        let mut bare = self.recipe.clone();
        bare.accounts = Default::default();
        bare.files.clear();
        let system =
            crate::system::system_tree(store, &view, &crate::system::SystemInputs { recipe: &bare, distro, epoch: 0 })?;
        let mut tree = Tree { entries: view.entries.into_values().collect() };
        tree.entries.extend(system.entries);
        tree.normalize_last_wins().map_err(composer_store::StoreError::from)?;
        let id = store.put_tree(&tree)?;
        store.action_put(
            key,
            &ActionRecord {
                inputs: Vec::new(),
                step: "build-root".into(),
                outputs: vec![ObjectRef { id, kind: RefKind::Tree }],
                data: serde_json::json!({ "platform": platform.to_string(), "packages": packages.len() }),
            },
        )?;
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &self,
        job: &Job,
        platform: &Platform,
        key: &ActionKey,
        root: Hash,
        mut env: BTreeMap<String, String>,
        sources: &BTreeMap<String, BlobInfo>,
        done: &[Built],
    ) -> Result<Hash, BuildError> {
        let store = self.ctx.store;
        let bwrap = sandbox::find_bwrap()?;
        // The root, with the outputs of the builds this one uses laid over it.
        let root = if job.uses.is_empty() {
            root
        } else {
            let mut tree = store.get_tree(&root)?;
            for used in &job.uses {
                let built = done.iter().find(|d| &d.name == used).expect("validated");
                tree.entries.extend(store.get_tree(&built.tree)?.entries);
            }
            tree.normalize_last_wins().map_err(composer_store::StoreError::from)?;
            store.put_tree(&tree)?
        };
        let root_dir = store.checkout(&root, sandbox::MOUNT_POINTS)?;
        // The sandbox reads sources by path, past every check of ours: check them whole first.
        for name in job.sources.iter().map(|(_, name)| name) {
            store.verify_object(&sources[name].id)?;
        }
        let work = tempdir(&format!("{}-{}", job.name, platform.debian_arch()))?;
        let (build_dir, out_dir) = (work.join("build"), work.join("out"));
        let script = work.join("script.sh");
        let log = work.join("build.log");
        for dir in [&build_dir, &out_dir] {
            std::fs::create_dir_all(dir).map_err(|e| BuildError::Sandbox(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&script, &job.script).map_err(|e| BuildError::Sandbox(e.to_string()))?;
        let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        env.insert("JOBS".into(), jobs.to_string());
        let emulated = platform.debian_arch() != host_debian_arch();
        self.ctx.reporter.status(
            "Building",
            &format!("{} for {platform}{}", job.name, if emulated { " (under qemu-user: slow)" } else { "" }),
        );
        let started = std::time::Instant::now();
        let status = sandbox::run(
            &bwrap,
            &sandbox::Run {
                root: &root_dir,
                build_dir: &build_dir,
                out_dir: &out_dir,
                sources: job
                    .sources
                    .iter()
                    .map(|(mount, name)| (mount.clone(), store.object_path(&sources[name].id)))
                    .collect(),
                script: &script,
                argv: None,
                env: &env,
                log: &log,
            },
        )?;
        if !status.success() {
            return Err(self.failed(&job.name, platform, &work, &log, status));
        }
        self.ctx.reporter.note(&format!(
            "{} for {platform} built in {:.1}s",
            job.name,
            started.elapsed().as_secs_f64()
        ));
        let tree = crate::output::tree_from_dir(store, &out_dir, crate::epoch(self.recipe))?;
        let tree_id = store.put_tree(&tree)?;
        let log_blob = store.put_content(&std::fs::read(&log).unwrap_or_default())?;
        store.action_put(
            key,
            &ActionRecord {
                // The root it ran on and the sources it read: a build made from a damaged one
                // goes with it.
                inputs: std::iter::once(ObjectRef { id: root, kind: RefKind::Tree })
                    .chain(job.sources.iter().map(|(_, name)| ObjectRef { id: sources[name].id, kind: RefKind::Blob }))
                    .collect(),
                step: "build".into(),
                outputs: vec![ObjectRef { id: tree_id, kind: RefKind::Tree }, ObjectRef { id: log_blob, kind: RefKind::Blob }],
                data: serde_json::json!({ "name": job.name, "platform": platform.to_string(), "log": log_blob.to_hex() }),
            },
        )?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(tree_id)
    }

    pub(crate) fn failed(
        &self,
        name: &str,
        platform: &Platform,
        work: &Path,
        log: &Path,
        status: std::process::ExitStatus,
    ) -> BuildError {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        // The log outlives the build directory, so that it can be read whatever --keep-failed says.
        let kept_log =
            keep_log(&format!("{name}-{}", platform.debian_arch()), text.as_bytes()).unwrap_or_else(|_| log.into());
        let kept_dir = if self.keep_failed {
            Some(work.to_path_buf())
        } else {
            let _ = std::fs::remove_dir_all(work);
            None
        };
        BuildError::BuildFailed(Box::new(crate::error::FailedBuild {
            name: name.to_string(),
            platform: platform.to_string(),
            status: status.code().map_or_else(|| "killed by a signal".into(), |c| format!("exit status {c}")),
            tail,
            log: kept_log,
            kept: kept_dir,
        }))
    }

    /// Image layers for the builds' outputs of one platform.
    pub(crate) fn build_layers(
        &self,
        built: &[Built],
        epoch: u64,
        compression: Compression,
    ) -> Result<(Vec<LayerDescriptor>, Vec<StepReport>), BuildError> {
        let store = self.ctx.store;
        let mut layers = Vec::new();
        let mut steps = Vec::new();
        for b in built {
            if b.image == ImagePart::None {
                continue;
            }
            let key = ActionKey::new("build-layer", BUILD_LAYER_VERSION)
                .with("tree", b.tree.0)
                .with("part", format!("{:?}", b.image))
                .with("epoch", epoch.to_le_bytes())
                .with("compression", compression.name());
            let mut tree = store.get_tree(&b.tree)?;
            if let ImagePart::Runtime(prefix) = b.image {
                tree.entries.retain(|e| is_runtime(&e.path, prefix));
            }
            // A build only others link statically leaves nothing to run.
            if tree.entries.iter().all(|e| matches!(e.kind, composer_store::EntryKind::Dir)) {
                continue;
            }
            let (layer, cached) = match store.action_get(&key)? {
                Some(record) => (crate::layer_from(&record)?, true),
                None => {
                    let layer = composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?;
                    let input = ObjectRef { id: b.tree, kind: RefKind::Tree };
                    store.action_put(&key, &crate::layer_record("build-layer", &layer).with_inputs([input]))?;
                    (layer, false)
                }
            };
            steps.push(StepReport { step: "build-layer", platform: None, name: b.name.clone(), cached, bytes: 0 });
            layers.push(LayerDescriptor { layer, packages: vec![], comment: format!("build: {}", b.name) });
        }
        Ok((layers, steps))
    }
}

fn is_runtime(path: &str, prefix: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else { return true };
    let under = |dir: &str| rest == dir || rest.starts_with(&format!("{dir}/"));
    let parts: Vec<&str> = rest.split('/').collect();
    let python_tests = parts.len() >= 3 && parts[0] == "lib" && parts[1].starts_with("python3") && parts[2] == "test";
    !(under("include") || under("lib/pkgconfig") || python_tests || (rest.starts_with("lib/") && rest.ends_with(".a")))
}

pub(crate) fn host_debian_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "powerpc64" => "ppc64el",
        other => other,
    }
}

/// The CPython version a source tarball holds, read from `Include/patchlevel.h` without
/// unpacking the rest: the wheel set's target is known before the interpreter is built.
pub fn cpython_version(store: &composer_store::Store, blob: &BlobInfo) -> Result<String, BuildError> {
    let bad = |reason: String| BuildError::Source { name: "python".into(), reason };
    // Only part of the tarball is read below; its version is recorded, so check it whole first.
    store.verify_object(&blob.id)?;
    let mut file = store.open_object(&blob.id)?;
    let mut magic = [0u8; 6];
    file.read_exact(&mut magic).map_err(|e| bad(e.to_string()))?;
    let file = store.open_object(&blob.id)?;
    let reader: Box<dyn Read> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(file)),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Box::new(liblzma::read::XzDecoder::new(file)),
        _ => return Err(bad("not a gzip or xz tarball".into())),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        if path.ends_with("Include/patchlevel.h") && path.matches('/').count() == 2 {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| bad(e.to_string()))?;
            return text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("#define PY_VERSION")?
                        .trim()
                        .strip_prefix('"')?
                        .split('"')
                        .next()
                        .map(str::to_string)
                })
                .ok_or_else(|| bad("Include/patchlevel.h has no PY_VERSION".into()));
        }
    }
    Err(bad("the tarball has no Include/patchlevel.h: is it CPython's source?".into()))
}

#[cfg(test)]
mod tests {
    use super::is_runtime;

    #[test]
    fn the_runtime_part_drops_what_only_builds_need() {
        for kept in [
            "usr/local/lib/libjemalloc.so.2",
            "usr/local/bin/python3.11",
            "usr/local/lib/python3.11/json/__init__.py",
            "usr/local/lib/python3.11/site-packages/numpy/core/include/numpy.h",
            "etc/app.conf",
        ] {
            assert!(is_runtime(kept, "usr/local"), "{kept}");
        }
        for dropped in [
            "usr/local/lib/libjemalloc.a",
            "usr/local/include",
            "usr/local/include/jemalloc/jemalloc.h",
            "usr/local/lib/pkgconfig/jemalloc.pc",
            "usr/local/lib/python3.11/test/test_os.py",
        ] {
            assert!(!is_runtime(dropped, "usr/local"), "{dropped}");
        }
    }
}
