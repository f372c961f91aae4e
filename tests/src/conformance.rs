//! One suite, every backend: `composer_distro::conformance` against Debian's backend on a signed
//! local archive, and against the fake under both of its identity schemes.

use std::collections::BTreeMap;

use composer_distro::fake::{FakeIndex, FakePackage, Scheme};
use composer_distro::{Distributions, Notes, Services};
use composer_store::Store;

use crate::{Deb, LocalMirror, base_packages};

struct Quiet;
impl Notes for Quiet {}

fn recipe(dir: &std::path::Path, keyring: Option<&std::path::Path>) -> composer_recipe::Recipe {
    let keyring = match keyring {
        Some(path) => {
            std::fs::copy(path, dir.join("keyring.gpg")).unwrap();
            "keyring = \"keyring.gpg\"\n"
        }
        None => "",
    };
    let path = dir.join("r.toml");
    let text = format!(
        "[image]\nname = \"c\"\nplatforms = [\"linux/amd64\"]\n\n[base]\nsuite = \"stable\"\nmirror = \"local\"\n\
         {keyring}packages = [\"app\"]\n"
    );
    std::fs::write(&path, &text).unwrap();
    composer_recipe::Recipe::load(&path).unwrap()
}

fn platform() -> composer_recipe::Platform {
    "linux/amd64".parse().unwrap()
}

#[test]
fn debian_conforms() {
    let mirror = LocalMirror::new();
    let mut debs = base_packages("amd64");
    debs.push(Deb::new("libfoo", "1.0").field("Depends", "base-files").file("usr/lib/libfoo.so.1", b"foo"));
    debs.push(Deb::new("app", "1.0").field("Depends", "libfoo (>= 1.0)").file("usr/bin/app", b"app"));
    mirror.publish("stable", &debs);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let client = composer_client::Client::new(composer_client::ClientOptions::default());
    let recipe = recipe(dir.path(), Some(&mirror.keyring));
    let mirrors = composer_deb::mirror::MirrorSettings {
        flags: BTreeMap::from([("local".to_string(), mirror.url())]),
        config: BTreeMap::new(),
        env_var: |name| name.to_string(),
        env: BTreeMap::new(),
        apt_dir: dir.path().join("no-apt"),
        config_path: None,
    };
    let services = Services { store: &store, client: &client, notes: &Quiet };
    let backend = composer_deb::backend::Debian::new(services, &mirrors, &recipe.base, &recipe.dir, &[]);
    composer_distro::conformance::check(&backend, &store, &platform(), &["app".to_string()]);
}

#[test]
fn the_fake_conforms_under_both_identities() {
    for scheme in [Scheme::FileSha256, Scheme::Parts] {
        let index = FakeIndex::new(
            scheme,
            vec![
                FakePackage::new("app", "1", &["libfoo"], &[("usr/bin/app", "app")]),
                FakePackage::new("libfoo", "1", &[], &[("usr/lib/libfoo.so.1", "foo")]),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let client = composer_client::Client::new(composer_client::ClientOptions::default());
        let recipe = recipe(dir.path(), None);
        let services = Services { store: &store, client: &client, notes: &Quiet };
        let backend = index.backend(services, &recipe);
        composer_distro::conformance::check(&*backend, &store, &platform(), &["app".to_string()]);
    }
}
