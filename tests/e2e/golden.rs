//! Same recipe and lock, same image, across changes to the planner: the index digest of each
//! case below is recorded in `tests/golden/digests.txt`, and the live cases build from the lock
//! recorded beside it, so that a refactoring that changes one byte of any image fails here.
//!
//! `COMPOSE_BLESS=1 cargo test ... golden` records the digests (and the live cases' locks) anew.
//! Do that only for a deliberate change of the images, and say so in the commit.

use std::path::{Path, PathBuf};

use crate::{Fixture, index_digest};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

fn blessing() -> bool {
    std::env::var_os("COMPOSE_BLESS").is_some_and(|v| v == "1")
}

/// The recorded digest of `case`, or records `digest` when blessing.
fn check_digest(case: &str, digest: &str) {
    static FILE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _file = FILE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = golden_dir().join("digests.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let recorded = text.lines().find_map(|l| l.strip_prefix(case)?.strip_prefix(' ').map(str::to_string));
    if blessing() {
        let mut lines: Vec<String> =
            text.lines().filter(|l| l.split(' ').next() != Some(case)).map(String::from).collect();
        lines.push(format!("{case} {digest}"));
        lines.sort();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        return;
    }
    let recorded = recorded.unwrap_or_else(|| panic!("no golden digest for `{case}` in {}", path.display()));
    assert_eq!(digest, recorded, "`{case}` no longer gives the image it gave: an image changed");
}

fn fixture_build(f: &Fixture) -> String {
    let out = f.compose.run(&["--json", "build", f.recipe_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    index_digest(&serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn fixture_images_are_the_recorded_bytes() {
    let cases: [(&str, &[&str], &str); 3] = [
        ("fixture-app", &["app"], ""),
        (
            "fixture-app-config",
            &["app", "docs"],
            "[config]\ncmd = [\"/usr/bin/app\"]\nuser = \"svc\"\nenv = { A = \"1\" }\nlabels = { l = \"v\" }\n\n\
             [[accounts.groups]]\nname = \"svc\"\ngid = 900\n\n\
             [[accounts.users]]\nname = \"svc\"\nuid = 900\ngid = 900\nhome = \"/srv\"\n\n\
             [[files]]\npath = \"/etc/app.conf\"\ncontent = \"x = 1\\n\"\nmode = \"0600\"\n",
        ),
        ("fixture-app-zstd-one-layer", &["app"], "[layers]\nstrategy = \"single\"\ncompression = \"zstd\"\n"),
    ];
    for (case, packages, extra) in cases {
        let f = Fixture::new(packages, extra);
        check_digest(case, &fixture_build(&f));
    }
}

/// An image's bytes are its recipe's, lock's and content's: the config's history names the tool
/// and not its version, so that a new release of composer that builds the same layers gives the
/// same digest (the version belongs to provenance).
#[test]
fn the_image_names_no_version_of_composer() {
    let f = Fixture::new(&["app"], "");
    fixture_build(&f);
    let config = composer_testkit::image_config(&f.compose.cwd.join("out/app"), "amd64");
    let history = config["history"].as_array().unwrap();
    assert!(!history.is_empty());
    for entry in history {
        assert_eq!(entry["created_by"], "composer", "{entry}");
    }
    assert!(!config.to_string().contains(env!("CARGO_PKG_VERSION")), "{config}");
}

/// Every step's key, as `plan --json` prints it: a change to what any key holds is a change of
/// every cache that holds its results, and has to be made on purpose (bless, and say why).
#[test]
fn fixture_step_keys_are_the_recorded_keys() {
    for (case, packages, extra) in [
        ("keys-fixture-app", &["app"][..], ""),
        (
            "keys-fixture-app-files",
            &["app", "docs"][..],
            "[[files]]\npath = \"/etc/app.conf\"\ncontent = \"x = 1\\n\"\n\n[layers]\ncompression = \"zstd\"\n",
        ),
    ] {
        let f = Fixture::new(packages, extra);
        let plan: serde_json::Value = serde_json::from_str(&f.compose.ok(&["--json", "plan", f.recipe_str()])).unwrap();
        let mut lines: Vec<String> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["key"].as_str().or(s["sha256"].as_str()).expect("a key or a sha256");
                format!("{} {} {id}", s["step"].as_str().unwrap(), s["name"].as_str().unwrap())
            })
            .collect();
        lines.sort();
        let text = lines.join("\n") + "\n";
        let path = golden_dir().join(format!("{case}.txt"));
        if blessing() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let recorded = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("no {}", path.display()));
        assert_eq!(text, recorded, "the step keys of `{case}` changed");
    }
}

#[test]
fn fixture_wheel_set_images_are_the_recorded_bytes() {
    let f = crate::wheels::WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let out = f.compose.run(&["--json", "build", f.recipe()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_digest("fixture-wheels", &index_digest(&serde_json::from_slice(&out.stdout).unwrap()));
}

#[cfg(feature = "live-tests")]
/// An example recipe built from its recorded lock (copied into the test's directory), so that
/// the mirror's newer packages do not change the image under test.
fn live_golden(c: &composer_testkit::Compose, case: &str, recipe_name: &str, edit: impl Fn(String) -> String) {
    use crate::live_debian::{copy_recipe, live_build};
    let recipe = copy_recipe(c, recipe_name);
    let text = edit(std::fs::read_to_string(&recipe).unwrap());
    std::fs::write(&recipe, text).unwrap();
    let lock = recipe.with_extension("lock");
    let golden_lock = golden_dir().join(format!("{case}.lock"));
    if blessing() {
        let summary = live_build(c, &recipe, &[]);
        std::fs::copy(&lock, &golden_lock).unwrap();
        check_digest(case, &index_digest(&summary));
        return;
    }
    std::fs::copy(&golden_lock, &lock).unwrap();
    let out = c.run(&["--json", "build", "--locked", recipe.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The mirror keeps only current versions: after a point release the recorded lock cannot be
    // fetched any more from a cold store. That says nothing about the planner; record anew.
    if !out.status.success() && stderr.contains("404") {
        eprintln!(
            "SKIPPED `{case}`: the mirror dropped a version its recorded lock pins; rerun with COMPOSE_BLESS=1\n{stderr}"
        );
        return;
    }
    assert!(out.status.success(), "{stderr}");
    check_digest(case, &index_digest(&serde_json::from_slice(&out.stdout).unwrap()));
}

#[cfg(feature = "live-tests")]
#[test]
fn jemalloc_hello_is_the_recorded_bytes() {
    let _turn = crate::toolchain::turn();
    let c = crate::toolchain::toolchain_compose();
    // Both platforms: arm64's builds are cross-compiled on amd64's root.
    live_golden(&c, "jemalloc-hello", "jemalloc-hello.toml", |t| t);
}

#[cfg(feature = "live-tests")]
#[test]
fn example_images_are_the_recorded_bytes() {
    let c = crate::live_debian::live_compose();
    live_golden(&c, "debian-python", "debian-python.toml", |t| t);
    live_golden(&c, "debian-trixie-tools", "debian-trixie-tools.toml", |t| t);
}
