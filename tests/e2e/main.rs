//! End-to-end tests of the real `compose` binary.
//!
//! - `recipe_errors`, `mirrors`, `local_mirror`, `bad_input`, `store`, `lock_trust`: against a
//!   `file://` archive the test builds and signs, so a failure points at one part and bad input
//!   can be made on purpose (`lock_trust`: edited locks, replayed and future Releases).
//! - `hostile`: the tool attacked on purpose: packages that link out of the root, Releases that
//!   are stale or of another suite, recipe values that cannot be right, local files outside the
//!   recipe's directory, digests that are paths, names that are not UTF-8.
//! - `damaged`: a damaged, full, read-only or mistyped store, and outputs that hold other
//!   images or the user's files.
//! - `user_paths`: every file a user names read by one reader: confined, regular, bounded,
//!   never echoed (a recipe of `/dev/zero`, a FIFO among the requirements, a key others can read).
//! - `outputs`: outputs that never replace a FIFO, a device or a link; a bundle's lock files,
//!   written only when signed and under the names compose gives locks; what killed processes
//!   left, swept.
//! - `terminal`: progress bars and colour on a pseudo-terminal, plain lines in a pipe, `NO_COLOR`.
//! - `docker`: Docker's own daemon (started by the test) loads and runs a `docker-archive:`.
//! - `registry`: pushes a built image to Debian's docker-registry on loopback.
//! - `registry_trust`: a registry on loopback that lies about what it holds, names a token
//!   service elsewhere over plain HTTP, and passwords written into references and URLs.
//! - `plan_graph`: `plan` lists exactly what `build` runs, cold, half-warm and warm.
//! - `golden`: the images of fixture and example recipes are the recorded bytes.
//! - `recipe_show`: recipes that extend others: `recipe show`, located errors, shared step keys.
//!
//! Behind the `live-tests` feature (`.ci/run` turns it on), the tests that need more than this
//! machine's own files: `docker`, `registry`, `toolchain` (the sandbox on the live mirror's build
//! roots), `interrupted` (a build stopped by a signal leaves nothing), `live_python` and
//! - `live_debian`: against the machine's configured Debian mirror, and runs the images under
//!   podman (amd64 natively, arm64 through qemu-user), as users do.

// Tests make temporary directories under TMPDIR, read the variables that switch on live tests
// and say why a live test was skipped; the rules against it (clippy.toml) are for the library
// crates.
#![allow(clippy::disallowed_methods, clippy::print_stderr)]

mod bad_input;
mod bounds;
mod cache;
mod cli;
mod damaged;
#[cfg(feature = "live-tests")]
mod docker;
mod golden;
mod hostile;
mod inspect;
#[cfg(feature = "live-tests")]
mod interrupted;
#[cfg(feature = "live-tests")]
mod live_debian;
#[cfg(feature = "live-tests")]
mod live_musl;
#[cfg(feature = "live-tests")]
mod live_python;
#[cfg(feature = "live-tests")]
mod live_share;
mod loadable;
mod local_mirror;
mod lock_format;
mod lock_trust;
mod mirrors;
mod outputs;
mod plan_graph;
mod platforms;
mod recipe_errors;
mod recipe_show;
#[cfg(feature = "live-tests")]
mod registry;
#[cfg(feature = "live-tests")]
mod registry_cache;
mod registry_trust;
mod sdist_settings;
mod store;
mod terminal;
#[cfg(feature = "live-tests")]
mod toolchain;
mod user_paths;
mod wheels;

use std::path::{Path, PathBuf};

use composer_testkit::{Compose, Deb, Entry, LocalMirror, base_packages};

pub fn compose() -> Compose {
    Compose::new(env!("CARGO_BIN_EXE_compose"))
}

/// A small archive: an app with versioned, alternative and virtual dependencies.
pub fn fixture_packages(app_version: &str) -> Vec<Deb> {
    let mut debs = base_packages("amd64");
    debs.push(
        Deb::new("app", app_version)
            .field("Depends", "libfoo (>= 1.0), mail-transport-agent | exim4, docs")
            .file("usr/bin/app", format!("#!/bin/sh\necho app {app_version}\n").as_bytes())
            .entry(Entry::File("usr/bin/app-setuid".into(), b"suid".to_vec(), 0o4755))
            .entry(Entry::Hardlink("usr/bin/app-again".into(), "usr/bin/app".into()))
            .entry(Entry::Symlink("usr/lib/libapp.so".into(), "../bin/app".into()))
            .file(&format!("usr/share/doc/app/{}/README", "a-very-long-directory-name".repeat(5)), b"long path\n"),
    );
    debs.push(Deb::new("libfoo", "0.9").file("usr/lib/libfoo.so.0", b"old"));
    debs.push(Deb::new("libfoo", "1.2").file("usr/lib/libfoo.so.1", b"new"));
    debs.push(Deb::new("postfix", "3.7").field("Provides", "mail-transport-agent").file("usr/sbin/postfix", b"mta"));
    debs.push(Deb::new("docs", "1").arch("all").file("usr/share/doc/docs/README", b"arch all\n"));
    debs
}

pub struct Fixture {
    pub mirror: LocalMirror,
    pub compose: Compose,
    pub recipe: PathBuf,
}

impl Fixture {
    /// A published fixture archive, a hermetic compose and a recipe using them.
    pub fn new(packages: &[&str], extra: &str) -> Fixture {
        let mirror = LocalMirror::new();
        mirror.publish("stable", &fixture_packages("1.0"));
        let mut compose = compose();
        compose.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
        let recipe = compose.cwd.join("app.toml");
        write_recipe(&recipe, &mirror.keyring, packages, extra);
        Fixture { mirror, compose, recipe }
    }

    pub fn recipe_str(&self) -> &str {
        self.recipe.to_str().unwrap()
    }
}

pub fn write_recipe(path: &Path, keyring: &Path, packages: &[&str], extra: &str) {
    let list: Vec<String> = packages.iter().map(|p| format!("\"{p}\"")).collect();
    let text = format!(
        "[image]\nname = \"app\"\nplatforms = [\"linux/amd64\"]\nsource_date_epoch = 1700000000\n\n\
         [base]\nsuite = \"stable\"\nmirror = \"local\"\nkeyring = \"{}\"\npackages = [{}]\n\n{extra}",
        keyring_beside(path, keyring),
        list.join(", ")
    );
    std::fs::write(path, text).unwrap();
}

/// A recipe reads its keyring from its own directory: a copy of `keyring` beside the recipe at
/// `recipe`, named after the mirror it comes from, and the name the recipe gives it.
pub fn keyring_beside(recipe: &Path, keyring: &Path) -> String {
    let mirror = keyring.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy();
    let name = format!("keyring-{}.gpg", mirror.trim_start_matches('.'));
    std::fs::copy(keyring, recipe.parent().unwrap().join(&name)).unwrap();
    name
}

/// A signed archive of the base packages plus `extra`, a hermetic compose pointed at it, and
/// where the test's recipe goes (`r.toml`, not yet written).
pub fn mirror_with(extra: Vec<Deb>) -> (LocalMirror, Compose, PathBuf) {
    let mirror = LocalMirror::new();
    let mut debs = base_packages("amd64");
    debs.extend(extra);
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("r.toml");
    (mirror, c, recipe)
}

/// The index digest of a `build --json` summary.
pub fn index_digest(summary: &serde_json::Value) -> String {
    summary["index"].as_str().unwrap().to_string()
}
