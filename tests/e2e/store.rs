//! The store under stress: SIGKILL mid-build, verify, gc.

use std::time::Duration;

use composer_testkit::{Deb, LocalMirror, base_packages, noise};

use crate::{compose, index_digest, write_recipe};

/// Incompressible bytes, so that building the layer takes a moment.
/// An archive of `count` packages of `mib` MiB of noise each, and a recipe asking for them all.
pub(crate) fn big_fixture(count: usize, mib: usize) -> (LocalMirror, composer_testkit::Compose, std::path::PathBuf) {
    let mirror = LocalMirror::new();
    let mut debs = base_packages("amd64");
    for i in 0..count {
        debs.push(
            Deb::new(&format!("big{i}"), "1").gzip_data().file(&format!("usr/share/big{i}/blob"), &noise(mib << 20)),
        );
    }
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("big.toml");
    let names: Vec<String> = (0..count).map(|i| format!("big{i}")).collect();
    write_recipe(&recipe, &mirror.keyring, &names.iter().map(String::as_str).collect::<Vec<_>>(), "");
    (mirror, c, recipe)
}

#[test]
fn gc_waits_for_a_running_build() {
    let (_mirror, c, recipe) = big_fixture(2, 24);
    let build =
        c.command(&["--json", "build", recipe.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let build_pid = build.id();
    std::thread::sleep(Duration::from_millis(300));
    let gc = c.run(&["store", "gc", "--all"]);
    let build = build.wait_with_output().unwrap();
    assert!(build.status.success(), "the build failed beside gc");
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let gc_stderr = String::from_utf8_lossy(&gc.stderr);
    // It names the process it waits for, by PID and command, never the lock's file.
    let said = format!("waiting for the store (exclusive access): held by process {build_pid} (compose build)");
    assert!(gc_stderr.contains(&said), "gc did not wait for the build, or did not say for whom: {gc_stderr}");
    assert!(!gc_stderr.contains("store.lock"), "{gc_stderr}");
    // The image the build wrote is whole: every blob its index names is in the layout.
    let layout = c.cwd.join("out/app");
    let manifest = composer_testkit::manifest(&layout, "amd64");
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap().trim_start_matches("sha256:");
        assert!(layout.join("blobs/sha256").join(digest).exists());
    }
    c.ok(&["store", "verify"]);
}

#[test]
fn killed_build_leaves_a_valid_store_and_the_next_build_completes() {
    let (_mirror, c, recipe) = big_fixture(4, 24);

    let mut killed_midway = 0;
    let mut finished = false;
    for delay in [150, 600, 1200] {
        let mut child =
            c.command(&["build", recipe.to_str().unwrap()]).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        match child.try_wait().unwrap() {
            None => killed_midway += 1,
            // Most steps are cached by the third try: it may finish, and then it wrote its image.
            Some(_) => finished = true,
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let verify = c.run(&["store", "verify"]);
        assert!(verify.status.success(), "after a kill at {delay} ms: {}", String::from_utf8_lossy(&verify.stderr));
    }
    assert!(killed_midway > 0, "every build finished before its kill: the test proved nothing");
    assert!(finished || !c.cwd.join("out/app/index.json").exists(), "a killed build must not leave an image behind");
    let summary = c.build_json(&recipe, &[]);
    assert!(index_digest(&summary).starts_with("sha256:"));
    c.ok(&["store", "verify"]);
}

#[test]
fn verify_finds_corruption_and_gc_frees_unused_objects() {
    let mirror = LocalMirror::new();
    let mut debs = base_packages("amd64");
    debs.push(Deb::new("a", "1").file("usr/share/a", b"content of a"));
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("a.toml");
    write_recipe(&recipe, &mirror.keyring, &["a"], "");
    c.ok(&["build", recipe.to_str().unwrap()]);

    let info: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "store", "info"])).unwrap();
    assert!(info["info"]["objects"].as_u64().unwrap() > 5);

    // Corrupt one object: verify names it and fails; --repair removes it; the build recovers.
    let object = composer_testkit::store_objects(&c.store).into_iter().next().unwrap();
    let mut perms = std::fs::metadata(&object).unwrap().permissions();
    #[expect(clippy::permissions_set_readonly_false, reason = "the test corrupts a read-only store object on purpose")]
    perms.set_readonly(false);
    std::fs::set_permissions(&object, perms).unwrap();
    std::fs::write(&object, b"corrupted").unwrap();
    let stderr = c.fails(&["store", "verify"]);
    assert!(stderr.contains(object.file_name().unwrap().to_str().unwrap()), "{stderr}");
    c.ok(&["store", "verify", "--repair"]);
    c.ok(&["store", "verify"]);
    c.ok(&["build", recipe.to_str().unwrap()]);

    // gc keeps what recent actions use: the next build is still served wholly from the store.
    c.ok(&["store", "gc"]);
    c.ok(&["store", "verify"]);
    let offline = c.build_json(&recipe, &["--locked"]);
    assert!(offline["steps"].as_array().unwrap().iter().all(|s| s["cached"] == true), "{offline}");
    let offline = c.run(&["--offline", "build", recipe.to_str().unwrap()]);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    // --all frees everything not in use.
    let freed: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "store", "gc", "--all"])).unwrap();
    assert!(freed["objects_removed"].as_u64().unwrap() > 0, "{freed}");
    c.ok(&["store", "verify"]);
    c.ok(&["build", recipe.to_str().unwrap()]);
}

/// Every file of a store bucket (`actions-v1`), to age them.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn gc_keeps_what_a_recent_or_pinned_lock_needs_so_it_builds_offline_after_the_mirror_moved_on() {
    let f = crate::Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    // Every result is older than the age limit; the lock was used just now.
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60 * 86_400);
    for path in files_under(&f.compose.store.join("actions-v1")) {
        std::fs::File::options().append(true).open(&path).unwrap().set_modified(long_ago).unwrap();
    }
    let dry = f.compose.ok(&["store", "gc", "--dry-run"]);
    assert!(dry.contains("inputs of") && dry.contains("app.lock"), "{dry}");
    f.compose.ok(&["store", "gc"]);
    // The mirror has moved on: its packages are gone. The lock still builds, offline.
    std::fs::remove_dir_all(f.mirror.root.join("pool")).unwrap();
    let again = f.compose.build_json(&f.recipe, &["--offline", "--locked"]);
    assert_eq!(crate::index_digest(&again), crate::index_digest(&first));
    assert!(again["steps"].as_array().unwrap().iter().any(|s| s["step"] == "layer" && s["cached"] == false));

    // A lock unused for longer than the limit loses its inputs, unless pinned.
    let roots = files_under(&f.compose.store.join("roots-v1"));
    assert_eq!(roots.len(), 1);
    f.compose.ok(&["store", "pin", f.recipe_str()]);
    for path in files_under(&f.compose.store.join("roots-v1"))
        .into_iter()
        .chain(files_under(&f.compose.store.join("actions-v1")))
    {
        std::fs::File::options().append(true).open(&path).unwrap().set_modified(long_ago).unwrap();
    }
    f.compose.ok(&["store", "gc"]);
    assert!(f.compose.ok(&["--json", "build", f.recipe_str(), "--offline", "--locked"]).contains("sha256:"));
    f.compose.ok(&["store", "pin", f.recipe_str(), "--remove"]);
    for path in files_under(&f.compose.store.join("roots-v1"))
        .into_iter()
        .chain(files_under(&f.compose.store.join("actions-v1")))
    {
        std::fs::File::options().append(true).open(&path).unwrap().set_modified(long_ago).unwrap();
    }
    f.compose.ok(&["store", "gc"]);
    let stderr = f.compose.fails(&["build", f.recipe_str(), "--offline", "--locked"]);
    assert!(stderr.contains("app_1.0") || stderr.contains("not found") || stderr.contains("offline"), "{stderr}");
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_bundle_stopped_by_a_signal_leaves_nothing_beside_its_destination() {
    let (_mirror, c, recipe) = big_fixture(4, 24);
    c.build_json(&recipe, &[]);
    let out = c.cwd.join("bundles");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"the user's own file").unwrap();
    let bundle = out.join("big.bundle");
    let mut child = c
        .command(&["bundle", recipe.to_str().unwrap(), "-o", bundle.to_str().unwrap(), "--inputs-only"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The bundle is written in a staging directory beside it, under a temp name.
    let started = std::time::Instant::now();
    while !names_in(&out).iter().any(|n| n.starts_with(".big.bundle.tmp-")) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the bundle was written ({status}) before its staging directory was seen");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no staging directory after 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(128 + 2), "{stderr}");
    assert!(!stderr.contains("error"), "the signal's own cleanup is no error: {stderr}");
    assert_eq!(names_in(&out), ["notes.txt"], "left beside the destination");
    // Nothing was half-written: the same bundle, run to its end, is there whole.
    c.ok(&["bundle", recipe.to_str().unwrap(), "-o", bundle.to_str().unwrap(), "--inputs-only"]);
    assert_eq!(names_in(&out), ["big.bundle", "notes.txt"]);
}
