//! A lock is a claim, never a source of trust; time only moves forward.
//!
//! A lock edited to pin a file no signed index names (carried in by an `--inputs-only` bundle,
//! which needs no key, or served from the mirror's pool beside its honest files) fails the build
//! before anything is fetched or layered, naming the package, the lock and the index; the honest
//! bundle still builds offline to the same image. A signed Release older than the lock's is
//! refused unless asked for; one dated in the future is refused always.

use std::path::Path;

use composer_testkit::{Compose, Deb, Entry, LocalMirror, Publish, base_packages, sha256_hex, store_has_sha256};

use crate::{Fixture, compose, fixture_packages, index_digest, write_recipe};

/// An `app` 1.0 as an attacker would make it: the honest one's name and dependencies, and a
/// setuid shell.
fn crafted_app(version: &str) -> Deb {
    Deb::new("app", version)
        .field("Depends", "libfoo (>= 1.0), mail-transport-agent | exim4, docs")
        .file("usr/bin/app", b"#!/bin/sh\necho app\n")
        .entry(Entry::File("usr/bin/backdoor".into(), b"#!/bin/sh\nexec /bin/sh -p\n".to_vec(), 0o4755))
}

/// `lock` with the package whose sha256 is `from` pinned to another file (its version,
/// filename, size and sha256), as an attacker edits it.
fn repin(lock: &str, from: &str, version: Option<&str>, filename: Option<&str>, size: u64, sha: &str) -> String {
    let at = lock.find(&format!("identity = [\"sha256:{from}\"]")).expect("the lock pins the package");
    let start = lock[..at].rfind("[[platform.packages]]").expect("a package table");
    let end = lock[at..].find("\n\n").map_or(lock.len(), |e| at + e);
    let mut block: Vec<String> = Vec::new();
    for line in lock[start..end].lines() {
        let line = match line.split_once(" = ").map(|(k, _)| k) {
            Some("version") if version.is_some() => format!("version = \"{}\"", version.unwrap()),
            Some("filename") if filename.is_some() => format!("filename = \"{}\"", filename.unwrap()),
            Some("size") => format!("size = {size}"),
            Some("identity") => format!("identity = [\"sha256:{sha}\"]"),
            _ => line.to_string(),
        };
        block.push(line);
    }
    format!("{}{}{}", &lock[..start], block.join("\n"), &lock[end..])
}

fn honest_app(f: &Fixture) -> (String, u64) {
    let bytes = std::fs::read(f.mirror.root.join("pool/main/app/app_1.0_amd64.deb")).unwrap();
    (sha256_hex(&bytes), bytes.len() as u64)
}

/// The action records of a store: what a build recorded.
fn actions(store: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![store.join("actions-v1")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => todo.push(entry.path()),
                false => out.push(entry.path()),
            }
        }
    }
    out.sort();
    out
}

/// A machine whose mirror is gone: what it builds comes from its store.
fn air_machine(f: &Fixture) -> Compose {
    let mut air = compose();
    let nowhere = air.home.path().join("no-mirror");
    std::fs::create_dir_all(&nowhere).unwrap();
    air.env = vec![("COMPOSE_MIRROR_LOCAL".into(), format!("file://{}", nowhere.display()))];
    std::fs::copy(&f.recipe, air.cwd.join("app.toml")).unwrap();
    // The recipe names its keyring beside it: the air-gapped machine gets a copy of both.
    let text = std::fs::read_to_string(&f.recipe).unwrap();
    let keyring = text.lines().find_map(|l| l.strip_prefix("keyring = \"")).and_then(|l| l.strip_suffix('"'));
    let keyring = keyring.expect("the fixture's recipe names a keyring");
    std::fs::copy(f.recipe.parent().unwrap().join(keyring), air.cwd.join(keyring)).unwrap();
    air
}

#[test]
fn a_lock_edited_beside_an_inputs_only_bundle_cannot_ship_a_package_no_signed_index_names() {
    let f = Fixture::new(&["app"], "");
    let online = f.compose.build_json(&f.recipe, &[]);
    let honest = f.compose.home.path().join("honest.bundle");
    // Its locks are signed, so that --locks-to takes them where that key is trusted.
    let (key_file, public) = crate::cache::key(&f.compose, "ci");
    let key_file = key_file.to_str().unwrap();
    f.compose.ok(&[
        "bundle",
        f.recipe_str(),
        "-o",
        honest.to_str().unwrap(),
        "--inputs-only",
        "--signing-key",
        key_file,
    ]);
    let (honest_sha, honest_size) = honest_app(&f);

    // The attacker's inputs-only bundle carries the crafted file (built against their own
    // mirror and key: an inputs-only bundle needs no key, and its inputs are only digests).
    let evil_mirror = LocalMirror::new();
    let mut debs = base_packages("amd64");
    debs.push(crafted_app("1.0").field("Depends", ""));
    evil_mirror.publish("stable", &debs);
    let mut attacker = compose();
    attacker.env.push(("COMPOSE_MIRROR_LOCAL".into(), evil_mirror.url()));
    let evil_recipe = attacker.cwd.join("evil.toml");
    write_recipe(&evil_recipe, &evil_mirror.keyring, &["app"], "");
    attacker.build_json(&evil_recipe, &[]);
    let evil = attacker.home.path().join("evil.bundle");
    attacker.ok(&["bundle", evil_recipe.to_str().unwrap(), "-o", evil.to_str().unwrap(), "--inputs-only"]);
    let crafted = std::fs::read(evil_mirror.root.join("pool/main/app/app_1.0_amd64.deb")).unwrap();
    let (crafted_sha, crafted_size) = (sha256_hex(&crafted), crafted.len() as u64);
    assert_ne!(crafted_sha, honest_sha);

    // The air-gapped machine takes both bundles; its lock is edited to pin the crafted file
    // under the honest name, version and path.
    let air = air_machine(&f);
    let recipe = air.cwd.join("app.toml");
    let locks_to = air.cwd.to_str().unwrap();
    air.ok(&["store", "import", honest.to_str().unwrap(), "--trusted-key", &public, "--locks-to", locks_to]);
    air.ok(&["store", "import", evil.to_str().unwrap()]);
    assert!(store_has_sha256(&air.store, &crafted_sha));
    let lock_path = air.cwd.join("app.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    std::fs::write(&lock_path, repin(&lock, &honest_sha, None, None, crafted_size, &crafted_sha)).unwrap();

    let before = actions(&air.store);
    let out = air.cwd.join("out");
    for args in [
        vec!["--offline", "build", recipe.to_str().unwrap(), "-o", out.to_str().unwrap()],
        vec!["--offline", "build", recipe.to_str().unwrap(), "--locked", "-o", out.to_str().unwrap()],
        vec!["--offline", "plan", recipe.to_str().unwrap()],
    ] {
        let stderr = air.fails(&args);
        assert!(stderr.contains("app_1.0_amd64"), "names the package: {stderr}");
        assert!(stderr.contains(lock_path.to_str().unwrap()), "names the lock: {stderr}");
        assert!(stderr.contains("suite `stable`, main/binary-amd64/Packages"), "names the index: {stderr}");
        // Every value attributed to the signed index is the index's.
        assert!(stderr.contains(&format!("size {honest_size} bytes (the lock says {crafted_size})")), "{stderr}");
        assert!(stderr.contains(&format!("sha256 {honest_sha} (the lock says {crafted_sha})")), "{stderr}");
        assert!(stderr.contains("compose lock"), "hints at the fix: {stderr}");
    }
    assert!(!out.exists(), "nothing was written");
    assert_eq!(actions(&air.store), before, "nothing was layered or recorded");

    // The honest lock, from the same bundle, builds offline to the image built online.
    std::fs::remove_file(&lock_path).unwrap();
    air.ok(&["store", "import", honest.to_str().unwrap(), "--trusted-key", &public, "--locks-to", locks_to]);
    let summary = air.build_json(&recipe, &["--offline", "--locked"]);
    assert_eq!(index_digest(&summary), index_digest(&online));
}

#[test]
fn a_lock_pinning_a_file_the_mirror_serves_outside_its_signed_index_fails_before_fetching() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let (honest_sha, honest_size) = honest_app(&f);
    let lock_path = f.recipe.with_extension("lock");
    let honest_lock = std::fs::read_to_string(&lock_path).unwrap();

    // The mirror's pool holds a file its signed Packages does not list.
    let crafted = crafted_app("6.6").build();
    let filename = "pool/main/app/app_6.6_amd64.deb";
    std::fs::write(f.mirror.root.join(filename), &crafted).unwrap();
    let crafted_sha = sha256_hex(&crafted);
    let edited = repin(&honest_lock, &honest_sha, Some("6.6"), Some(filename), crafted.len() as u64, &crafted_sha);
    std::fs::write(&lock_path, &edited).unwrap();

    // A warm store and a cold one alike: refused before the file is fetched.
    let cold = crate::cache::machine_two(&f);
    for c in [&f.compose, &cold] {
        for command in ["build", "plan"] {
            let stderr = c.fails(&[command, f.recipe_str()]);
            assert!(stderr.contains("app_6.6_amd64"), "{stderr}");
            assert!(stderr.contains(lock_path.to_str().unwrap()), "{stderr}");
            assert!(stderr.contains("main/binary-amd64/Packages"), "{stderr}");
            assert!(stderr.contains("the signed index has only 1.0_amd64"), "{stderr}");
        }
        assert!(!store_has_sha256(&c.store, &crafted_sha), "the crafted file was never fetched");
    }

    // A lock that lies about the size alone: the error says the index's size, and no
    // size of the lock's is called the index's.
    let lying = repin(&honest_lock, &honest_sha, None, None, honest_size + 1, &honest_sha);
    std::fs::write(&lock_path, lying).unwrap();
    let cold = crate::cache::machine_two(&f);
    let stderr = cold.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains(&format!("size {honest_size} bytes (the lock says {})", honest_size + 1)), "{stderr}");
    assert!(!stderr.contains(&format!("says {} bytes", honest_size + 1)), "{stderr}");

    // The honest lock builds, on both machines.
    std::fs::write(&lock_path, honest_lock).unwrap();
    f.compose.build_json(&f.recipe, &["--locked"]);
    cold.build_json(&f.recipe, &["--locked"]);
}

/// `lock` without the package table of `name`, as an attacker drops a dependency.
fn without_package(lock: &str, name: &str) -> String {
    let at = lock.find(&format!("[[platform.packages]]\nname = \"{name}\"\n")).expect("the lock pins the package");
    let end = lock[at..].find("\n\n").map_or(lock.len(), |e| at + e + 2);
    format!("{}{}", &lock[..at], &lock[end..])
}

/// Each package a lock pins is in the signed index, yet the set is not what the recipe's requests
/// resolve to: one the recipe never asked for was added (a signed but older `libfoo`), or one it
/// needs was dropped. Both are refused before anything is fetched, warm store or cold.
#[test]
fn a_lock_that_adds_or_drops_signed_packages_is_not_a_resolution_of_the_recipe() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let lock_path = f.recipe.with_extension("lock");
    let honest_lock = std::fs::read_to_string(&lock_path).unwrap();

    let filename = "pool/main/libfoo/libfoo_0.9_amd64.deb";
    let old = std::fs::read(f.mirror.root.join(filename)).unwrap();
    let added = format!(
        "{}\n[[platform.packages]]\nname = \"libfoo\"\nversion = \"0.9\"\narchitecture = \"amd64\"\nsource = \"libfoo\"\n\
         filename = \"{filename}\"\nsize = {}\nidentity = [\"sha256:{}\"]\n",
        honest_lock.trim_end(),
        old.len(),
        sha256_hex(&old)
    );
    let dropped = without_package(&honest_lock, "postfix");
    assert_ne!(dropped, honest_lock);
    let cold = crate::cache::machine_two(&f);
    for (lock, said) in [
        // A second, older version of a needed package: its files would have been laid over the
        // newer one's (found by an outside attack, online and offline alike).
        (&added, "the lock holds libfoo twice, as 1.2 and 0.9; a resolution holds one version of a package"),
        (&dropped, "app 1.0 depends on `mail-transport-agent | exim4` and nothing in the lock satisfies it"),
    ] {
        std::fs::write(&lock_path, lock).unwrap();
        for c in [&f.compose, &cold] {
            let stderr = c.fails(&["build", f.recipe_str()]);
            assert!(stderr.contains("is not a resolution of the recipe for linux/amd64 (image)"), "{stderr}");
            assert!(stderr.contains(said), "{stderr}");
            assert!(stderr.contains("run `compose lock`"), "{stderr}");
        }
        assert!(!store_has_sha256(&cold.store, &sha256_hex(&old)), "nothing was fetched");
    }
    std::fs::write(&lock_path, honest_lock).unwrap();
    cold.build_json(&f.recipe, &["--locked"]);
}

#[test]
fn a_release_older_than_the_lock_is_refused_unless_asked_for_and_one_from_the_future_always() {
    let mirror = LocalMirror::new();
    let newer = Publish { date: Some("Sun, 01 Mar 2026 00:00:00 UTC".into()), ..Default::default() };
    mirror.publish_with("stable", &fixture_packages("2.0"), &newer);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("app.toml");
    write_recipe(&recipe, &mirror.keyring, &["app"], "");
    let r = recipe.to_str().unwrap();
    c.ok(&["lock", r]);
    let lock_path = recipe.with_extension("lock");
    let locked = std::fs::read_to_string(&lock_path).unwrap();
    assert!(locked.contains("version = \"2.0\""), "{locked}");

    // The mirror serves an older Release, validly signed: a replay, or a rollback.
    mirror.publish("stable", &fixture_packages("1.0"));
    for args in [vec!["lock", r, "--upgrade"], vec!["lock", r], vec!["lock", r, "--upgrade-package", "app"]] {
        let stderr = c.fails(&args);
        assert!(stderr.contains("older than the one the lock file"), "{stderr}");
        assert!(stderr.contains("Sun, 01 Mar 2026") && stderr.contains("Thu, 01 Jan 2026"), "{stderr}");
        assert!(stderr.contains("--allow-downgrade"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), locked, "the lock is as it was");
    }
    // A build whose recipe changed resolves again, and may not go back either.
    write_recipe(&recipe, &mirror.keyring, &["app", "postfix"], "");
    let stderr = c.fails(&["build", r]);
    assert!(stderr.contains("older than the one the lock file"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), locked);
    write_recipe(&recipe, &mirror.keyring, &["app"], "");

    // Asked for, it goes back.
    let out = c.run(&["lock", r, "--upgrade", "--allow-downgrade"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("update app 2.0 -> 1.0"), "{stderr}");
    assert!(std::fs::read_to_string(&lock_path).unwrap().contains("version = \"1.0\""));

    // A Release from the future is refused, whatever is asked.
    let future = Publish { date: Some("Sat, 01 Jan 2050 00:00:00 UTC".into()), ..Default::default() };
    mirror.publish_with("stable", &fixture_packages("3.0"), &future);
    for args in [vec!["lock", r, "--upgrade", "--allow-downgrade"], vec!["lock", r, "--upgrade"]] {
        let stderr = c.fails(&args);
        assert!(stderr.contains("Sat, 01 Jan 2050") && stderr.contains("ahead of this machine's clock"), "{stderr}");
    }
    std::fs::remove_file(&lock_path).unwrap();
    let stderr = c.fails(&["build", r]);
    assert!(stderr.contains("ahead of this machine's clock"), "{stderr}");
    assert!(!lock_path.exists());
}
