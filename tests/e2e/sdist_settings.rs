//! `[python.packages.NAME]` against fixtures (a signed `file://` archive with stand-ins for the
//! build root's packages, a `file://` index of sdists and wheels): which sdist steps' keys a
//! table changes, and the tables that are refused before anything is built. Building the sdists
//! needs a real build root (tests/e2e/live_musl.rs builds netifaces with its CFLAGS).

use std::collections::BTreeMap;
use std::path::PathBuf;

use composer_testkit::{Compose, Deb, LocalIndex, LocalMirror, Sdist, Wheel};

use crate::{compose, keyring_beside};

struct SdistFixture {
    _mirror: LocalMirror,
    _index: LocalIndex,
    c: Compose,
    recipe: PathBuf,
    head: String,
}

impl SdistFixture {
    fn new() -> SdistFixture {
        let mirror = LocalMirror::new();
        // The wheel fixtures' base (python3 and libc6 for both platforms), and stand-ins for the
        // build root: nothing is built here, only planned.
        let mut debs = crate::wheels::base_debs();
        for arch in ["amd64", "arm64"] {
            for name in ["build-essential", "mawk", "python3-dev", "libfoo-dev"] {
                debs.push(Deb::new(name, "1").arch(arch).file(&format!("usr/share/doc/{name}/README"), b"stand-in"));
            }
        }
        mirror.publish("stable", &debs);
        let index = LocalIndex::new();
        index.publish_sdist(&Sdist::new("pure", "1.0"));
        index.publish_sdist(&Sdist::new("other", "1.0"));
        index.publish(&[Wheel::new("helper", "1.0"), Wheel::new("wheelonly", "1.0")]);
        let mut c = compose();
        c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
        c.env.push(("COMPOSE_INDEX_LOCAL".into(), index.url()));
        let recipe = c.cwd.join("app.toml");
        let head = format!(
            "[image]\nname = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nsource_date_epoch = 1700000000\n\n\
             [base]\nsuite = \"stable\"\nmirror = \"local\"\nkeyring = \"{}\"\npackages = []\n\n\
             [python]\nrequirements = [\"pure\", \"other\", \"wheelonly\"]\nindex = \"local\"\nonly_binary = [\"wheelonly\"]\n\n",
            keyring_beside(&recipe, &mirror.keyring),
        );
        SdistFixture { _mirror: mirror, _index: index, c, recipe, head }
    }

    fn write(&self, tables: &str) {
        std::fs::write(&self.recipe, format!("{}{tables}", self.head)).unwrap();
    }

    /// The key of every sdist step, by (sdist, platform).
    fn keys(&self, tables: &str) -> BTreeMap<(String, String), String> {
        self.write(tables);
        let plan: serde_json::Value =
            serde_json::from_str(&self.c.ok(&["--json", "plan", self.recipe.to_str().unwrap()])).unwrap();
        let keys: BTreeMap<(String, String), String> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == "sdist-build")
            .map(|s| {
                let field = |f: &str| s[f].as_str().unwrap_or_else(|| panic!("no {f}: {s}")).to_string();
                ((field("name"), field("platform")), field("key"))
            })
            .collect();
        assert_eq!(keys.len(), 4, "{plan}");
        keys
    }

    fn refused(&self, tables: &str) -> String {
        self.write(tables);
        self.c.fails(&["build", self.recipe.to_str().unwrap()])
    }

    /// Whether a lock of any kind was written beside the recipe.
    fn locked(&self) -> bool {
        std::fs::read_dir(&self.c.cwd).unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".lock") || name.starts_with("pylock.")
        })
    }
}

fn key<'k>(keys: &'k BTreeMap<(String, String), String>, sdist: &str, platform: &str) -> &'k str {
    &keys[&(format!("{sdist}-1.0.tar.gz"), format!("linux/{platform}"))]
}

/// What a table changes is the key of its package's sdist step, on the platforms it applies to,
/// and nothing else; what does not change the build (a table's spelling, a patch file rewritten
/// with the same bytes) changes no key.
#[test]
fn a_package_table_changes_its_own_sdist_steps_key_and_no_other() {
    let f = SdistFixture::new();
    let before = f.keys("");
    let same = |a: &BTreeMap<(String, String), String>, b: &BTreeMap<(String, String), String>, s: &str, p: &str| {
        key(a, s, p) == key(b, s, p)
    };

    let flags = f.keys("[python.packages.pure]\nenv = { CFLAGS = \"-Wno-error=int-conversion\" }\n");
    assert!(!same(&before, &flags, "pure", "amd64") && !same(&before, &flags, "pure", "arm64"));
    assert!(same(&before, &flags, "other", "amd64") && same(&before, &flags, "other", "arm64"));
    // The same setting, spelt as another normalization of the name, inline or as a table.
    let respelt = f.keys("[python.packages.Pure.env]\nCFLAGS = \"-Wno-error=int-conversion\"\n");
    assert_eq!(respelt, flags);

    // A platform's table changes that platform's step only.
    let arm64 = f.keys(
        "[python.packages.pure]\nenv = { CFLAGS = \"-Wno-error=int-conversion\" }\n\
         [python.packages.pure.platforms.\"linux/aarch64\"]\nconfig_settings = { \"--build-option\" = \"--x\" }\n",
    );
    assert!(same(&flags, &arm64, "pure", "amd64") && !same(&flags, &arm64, "pure", "arm64"));

    // A patch: its bytes are in the key, not the file's time.
    let patch = f.recipe.parent().unwrap().join("pure.patch");
    std::fs::write(&patch, "--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+x\n").unwrap();
    let patched = f.keys("[python.packages.pure]\npatches = [\"pure.patch\"]\n");
    assert!(!same(&before, &patched, "pure", "amd64") && same(&before, &patched, "other", "amd64"));
    std::fs::write(&patch, "--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+x\n").unwrap();
    assert_eq!(f.keys("[python.packages.pure]\npatches = [\"pure.patch\"]\n"), patched);
    std::fs::write(&patch, "--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+y\n").unwrap();
    assert_ne!(
        key(&f.keys("[python.packages.pure]\npatches = [\"pure.patch\"]\n"), "pure", "amd64"),
        key(&patched, "pure", "amd64")
    );

    // Extra build requirements are locked, as a set of the package's own: the other sdist
    // builds with the shared set it had.
    let requires = f.keys("[python.packages.pure]\nbuild_requires = [\"helper\"]\n");
    assert!(!same(&before, &requires, "pure", "amd64") && same(&before, &requires, "other", "amd64"));
    f.c.ok(&["lock", f.recipe.to_str().unwrap()]);
    let pylock = std::fs::read_to_string(f.c.cwd.join("pylock.app-linux-amd64.toml")).unwrap();
    let own = pylock.split("[[tool.composer.package-build-wheels.pure]]").nth(1).expect(&pylock);
    assert!(own.contains("filename = \"helper-1.0-py3-none-any.whl\""), "{pylock}");
    assert!(pylock.contains("build-wheels = []\n"), "the shared set is as it was: {pylock}");
    // The lock records them as inputs: it is current for the table, and stale without it.
    let wheels_locked = || -> Vec<bool> {
        let plan: serde_json::Value =
            serde_json::from_str(&f.c.ok(&["--json", "plan", f.recipe.to_str().unwrap()])).unwrap();
        let resolved = plan["resolution"].as_array().unwrap().iter().filter(|s| s["step"] == "resolve-wheels");
        resolved.map(|s| s["cached"] == true).collect()
    };
    assert_eq!(wheels_locked(), [true, true]);
    // The pylock's own sets are a claim about the tables: one dropped from the file would build
    // without the requirements, one added with requirements no recipe asked for. Either makes
    // the pylock stale.
    let path = f.c.cwd.join("pylock.app-linux-amd64.toml");
    let start = pylock.find("\n[[tool.composer.package-build-wheels.pure]]").unwrap();
    let end = pylock[start + 1..].find("\n[").map_or(pylock.len(), |e| start + 1 + e);
    std::fs::write(&path, format!("{}{}", &pylock[..start], &pylock[end..])).unwrap();
    assert_eq!(wheels_locked(), [false, true]);
    f.c.ok(&["lock", f.recipe.to_str().unwrap()]);
    f.write("");
    assert_eq!(wheels_locked(), [false, false]);
    f.c.ok(&["lock", f.recipe.to_str().unwrap()]);
    std::fs::write(
        &path,
        format!("{}{own_set}", std::fs::read_to_string(&path).unwrap(), own_set = &pylock[start..end]),
    )
    .unwrap();
    assert_eq!(wheels_locked(), [false, true]);

    // Without a table, every key is what it was.
    assert_eq!(f.keys(""), before);
}

#[test]
fn a_table_for_no_sdist_is_refused_with_the_nearest_name() {
    let f = SdistFixture::new();
    let said = f.refused("[python.packages.puer]\nenv = { CFLAGS = \"-w\" }\n");
    assert!(
        said.contains("[python.packages.puer] in `") && said.contains("no package `puer` is in the Python lock"),
        "{said}"
    );
    assert!(said.contains("did you mean `pure`?"), "{said}");
    // `compose lock` refuses it too, rather than locking a recipe whose build would fail.
    assert!(!f.locked(), "a recipe that fails leaves no lock behind");
    let out = f.c.run(&["lock", f.recipe.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("no package `puer` is in the Python lock"), "{said}");
    assert!(!f.locked(), "`compose lock` of a recipe that fails writes nothing");
    let said = f.refused("[python.packages.wheelonly]\nenv = { CFLAGS = \"-w\" }\n");
    assert!(said.contains("`wheelonly` is installed from a wheel"), "{said}");
    assert!(said.contains("add \"wheelonly\" to [python] no_binary"), "{said}");
}

/// Patches are read as every file a recipe names: inside its directory (links followed), regular,
/// bounded, and never shown; and before anything is resolved.
#[test]
fn patches_outside_the_recipes_directory_are_refused_unread() {
    let f = SdistFixture::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.patch");
    std::fs::write(&secret, "MARKER:$6$salt:19000\n").unwrap();
    let dir = f.recipe.parent().unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("link.patch")).unwrap();
    let up = pathdiff(dir, &secret);
    std::fs::write(dir.join("empty.patch"), "\n").unwrap();
    let said = f.refused("[python.packages.pure]\npatches = [\"empty.patch\"]\n");
    assert!(said.contains("the patch `empty.patch` is empty"), "{said}");
    for patch in [up.as_str(), secret.to_str().unwrap(), "link.patch", "missing.patch"] {
        let said = f.refused(&format!("[python.packages.pure]\npatches = [\"{patch}\"]\n"));
        assert!(said.contains("cannot read a patch of [python.packages.pure]"), "{patch}: {said}");
        assert!(!said.contains("MARKER"), "{patch}: {said}");
        assert!(!f.locked(), "{patch}: resolved and locked before the check");
    }
}

/// `dir/../../x` for a path outside `dir`.
fn pathdiff(dir: &std::path::Path, target: &std::path::Path) -> String {
    let ups = dir.components().count() - 1;
    format!("{}{}", "../".repeat(ups), target.strip_prefix("/").unwrap().display())
}

/// A variable that would change what the build runs is refused where the recipe writes it, as
/// the binary prints it: file, line and column, the line with a caret, and a hint.
#[test]
fn a_refused_variable_is_located_in_the_recipe() {
    let f = SdistFixture::new();
    let line = f.head.lines().count() + 2;
    let said = f.refused("[python.packages.pure]\nenv = { LD_PRELOAD = \"/tmp/evil.so\" }\n");
    assert!(said.contains(&format!("app.toml:{line}:9: `LD_PRELOAD` is set by composer's sandbox")), "{said}");
    assert!(said.contains("^^^^^^^^^^") && said.contains("hint: set the build's own variables"), "{said}");
    assert!(!f.locked(), "{said}");
}
