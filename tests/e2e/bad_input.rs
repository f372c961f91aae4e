//! Bad input from the archive: each is a clear error naming the file, and nothing unverified
//! enters the store.

use composer_testkit::{Deb, Entry, LocalMirror, Publish, sha256_hex, store_has_sha256};

use crate::{Fixture, fixture_packages, mirror_with, write_recipe};

#[test]
fn tampered_release_fails_signature_check() {
    let f = Fixture::new(&["app"], "");
    let inrelease = f.mirror.dists("stable").join("InRelease");
    let text =
        std::fs::read_to_string(&inrelease).unwrap().replace("Origin: composer-fixture", "Origin: composer-fixturE");
    std::fs::write(&inrelease, text).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("signature check failed") && stderr.contains("InRelease"), "{stderr}");
    assert!(composer_testkit::store_objects(&f.compose.store).is_empty(), "nothing may be stored");
}

#[test]
fn release_signed_by_another_key_is_refused() {
    let f = Fixture::new(&["app"], "");
    let stranger = LocalMirror::new();
    write_recipe(&f.recipe, &stranger.keyring, &["app"], "");
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("no signature verifies"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn packages_index_not_matching_release_is_refused() {
    let f = Fixture::new(&["app"], "");
    let packages = f.mirror.dists("stable").join("main/binary-amd64/Packages.xz");
    let mut bytes = std::fs::read(&packages).unwrap();
    let tampered = composer_testkit::xz(b"Package: evil\n");
    bytes.clear();
    bytes.extend(tampered);
    std::fs::write(&packages, &bytes).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("main/binary-amd64/Packages.xz does not match its Release file"), "{stderr}");
    assert!(!store_has_sha256(&f.compose.store, &sha256_hex(&bytes)));
}

/// gzip decodes at three times xz's speed, so an archive offering both is read through
/// `Packages.gz`; an index variant the store already holds is read instead of fetching another.
#[test]
fn the_gzip_index_is_preferred_unless_the_store_holds_another_variant() {
    let f = Fixture::new(&["app"], "");
    let index = |name: &str| std::fs::read(f.mirror.dists("stable").join("main/binary-amd64").join(name)).unwrap();
    f.compose.ok(&["build", f.recipe_str()]);
    let xz = sha256_hex(&index("Packages.xz"));
    assert!(store_has_sha256(&f.compose.store, &xz), "an xz-only archive is read through Packages.xz");

    f.mirror.publish_with("stable", &fixture_packages("1.0"), &Publish { gzip: true, ..Default::default() });
    let gz = sha256_hex(&index("Packages.gz"));
    std::fs::remove_file(f.recipe.with_extension("lock")).unwrap();
    f.compose.ok(&["build", f.recipe_str()]);
    assert!(!store_has_sha256(&f.compose.store, &gz), "the stored Packages.xz is read, not a new Packages.gz");

    let fresh = Fixture::new(&["app"], "");
    fresh.mirror.publish_with("stable", &fixture_packages("1.0"), &Publish { gzip: true, ..Default::default() });
    let packages = fresh.mirror.dists("stable").join("main/binary-amd64/Packages.gz");
    std::fs::write(&packages, b"not the index the Release names").unwrap();
    let stderr = fresh.compose.fails(&["build", fresh.recipe_str()]);
    assert!(stderr.contains("main/binary-amd64/Packages.gz does not match its Release file"), "{stderr}");
}

#[test]
fn corrupted_deb_is_refused_and_not_stored() {
    let f = Fixture::new(&["app"], "");
    let deb = f.mirror.root.join("pool/main/app/app_1.0_amd64.deb");
    let mut bytes = std::fs::read(&deb).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&deb, &bytes).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("app_1.0_amd64.deb") && stderr.contains("the signed index says sha256"), "{stderr}");
    assert!(!store_has_sha256(&f.compose.store, &sha256_hex(&bytes)));
    assert!(!f.compose.cwd.join("out").exists());
}

fn assert_unsafe_deb_refused(deb: Deb, entry_text: &str) {
    let name = deb.name.clone();
    let (mirror, c, recipe) = mirror_with(vec![deb]);
    write_recipe(&recipe, &mirror.keyring, &[&name], "");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("is unsafe or corrupt") && stderr.contains(entry_text), "{stderr}");
    let actions = c.store.join("actions-v1");
    let unpacked = std::fs::read_dir(&actions)
        .map(|d| {
            d.flatten()
                .flat_map(|s| std::fs::read_dir(s.path()).unwrap().flatten())
                .any(|a| std::fs::read_to_string(a.path()).unwrap().contains(&format!("\"package\":\"{name}\"")))
        })
        .unwrap_or(false);
    assert!(!unpacked, "an unsafe package must not be recorded as unpacked");
    assert!(!c.cwd.join("out").exists());
}

#[test]
fn deb_with_dotdot_path_is_refused() {
    assert_unsafe_deb_refused(
        Deb::new("evil", "1").entry(Entry::RawName(b"./usr/../../etc/evil".to_vec(), b"x".to_vec())),
        "contains `..`",
    );
}

#[test]
fn deb_with_absolute_path_is_refused() {
    assert_unsafe_deb_refused(
        Deb::new("evil", "1").entry(Entry::RawName(b"/etc/evil".to_vec(), b"x".to_vec())),
        "absolute path `/etc/evil`",
    );
}

#[test]
fn deb_with_escaping_symlink_is_refused() {
    assert_unsafe_deb_refused(
        Deb::new("evil", "1").entry(Entry::RawSymlink("usr/lib/x".into(), "../../../../etc/shadow".into())),
        "escapes the root",
    );
}

#[test]
fn a_locked_package_gone_from_the_mirror_says_to_lock_again() {
    let f = Fixture::new(&["app"], "");
    f.compose.ok(&["lock", f.recipe_str()]);
    std::fs::remove_file(f.mirror.root.join("pool/main/libfoo/libfoo_1.2_amd64.deb")).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("libfoo_1.2_amd64.deb") && stderr.contains("was not found"), "{stderr}");
    assert!(stderr.contains("run `compose lock`"), "{stderr}");
}

#[test]
fn unknown_package_is_named_with_its_suite() {
    let f = Fixture::new(&["no-such-package"], "");
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("package `no-such-package` is not in suite `stable` for architecture `amd64`"), "{stderr}");
    assert!(stderr.contains("apt-cache search") && !stderr.contains("did you mean"), "{stderr}");
    // A near miss is offered the index's nearest names.
    let f = Fixture::new(&["libfo"], "");
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("package `libfo` is not in suite"), "{stderr}");
    assert!(stderr.contains("hint: did you mean `libfoo`?"), "{stderr}");
    assert!(!f.recipe.with_extension("lock").exists(), "a failed resolution writes no lock");
}

#[test]
fn impossible_request_shows_the_chain() {
    let (mirror, c, recipe) = mirror_with(vec![
        Deb::new("top", "1").field("Depends", "middle"),
        Deb::new("middle", "1").field("Depends", "leaf (>= 5)"),
        Deb::new("leaf", "4"),
    ]);
    write_recipe(&recipe, &mirror.keyring, &["top"], "");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("cannot be installed together"), "{stderr}");
    for name in ["top", "middle", "leaf"] {
        assert!(stderr.contains(name), "{name} missing from the chain: {stderr}");
    }
}

#[test]
fn conflicts_are_respected() {
    let (mirror, c, recipe) = mirror_with(vec![Deb::new("a", "1").field("Conflicts", "b"), Deb::new("b", "1")]);
    write_recipe(&recipe, &mirror.keyring, &["a", "b"], "");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("cannot be installed together"), "{stderr}");
}

#[test]
fn offline_without_the_files_names_what_is_missing() {
    let (mirror, mut c, recipe) = mirror_with(vec![Deb::new("a", "1")]);
    // An http mirror that is never reached: offline refuses before any connection.
    c.env.retain(|(k, _)| k != "COMPOSE_MIRROR_LOCAL");
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), "http://127.0.0.1:9/debian".into()));
    write_recipe(&recipe, &mirror.keyring, &["a"], "");
    let stderr = c.fails(&["--offline", "build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("offline") && stderr.contains("InRelease"), "{stderr}");
}

/// Offline, a build whose plan needs package files the store lacks names every one of them at
/// once, from the settled plan (what the store still holds is not asked for), before anything
/// runs.
#[test]
fn offline_the_plan_names_every_missing_package_file_at_once() {
    let (mirror, mut c, recipe) = mirror_with(vec![Deb::new("a", "1").field("Depends", "b"), Deb::new("b", "1")]);
    write_recipe(&recipe, &mirror.keyring, &["a"], "");
    c.build_json(&recipe, &[]);
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    // Two package files gone from the store; new layers (another timestamp) need them.
    for name in ["a", "b"] {
        let at = lock.find(&format!("name = \"{name}\"")).unwrap();
        let line = lock[at..].lines().find(|l| l.starts_with("identity = [\"sha256:")).unwrap();
        let sha = line.trim_start_matches("identity = [\"sha256:").trim_end_matches("\"]");
        std::fs::remove_file(c.store.join("sha256-v1").join(&sha[..2]).join(sha)).unwrap();
    }
    let text = std::fs::read_to_string(&recipe).unwrap().replace("1700000000", "1700000001");
    std::fs::write(&recipe, text).unwrap();
    c.env.retain(|(k, _)| k != "COMPOSE_MIRROR_LOCAL");
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), "http://127.0.0.1:9/debian".into()));
    let stderr = c.fails(&["--offline", "build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("offline and the store lacks 2 file(s)"), "{stderr}");
    assert!(stderr.contains("a_1_amd64") && stderr.contains("b_1_amd64"), "{stderr}");
    assert!(!stderr.contains("base-files"), "what the store holds is not asked for: {stderr}");
}
