//! A damaged store never ships a byte it did not verify; outputs never lose what the tool did
//! not write; a full, read-only or mistyped store says what it is.

use std::path::Path;
use std::process::Command;

use composer_testkit::{
    Deb, assert_layout_blobs_intact, base_packages, damage, layer_entries, manifest, noise, store_object_by_sha256,
};

use crate::{Fixture, compose, index_digest, write_recipe};

fn layer_digests(layout: &Path) -> Vec<String> {
    manifest(layout, "amd64")["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string())
        .collect()
}

fn build_again(f: &Fixture) -> (serde_json::Value, String) {
    let out = f.compose.run(&["--json", "build", f.recipe_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

#[test]
fn a_flipped_or_truncated_layer_object_never_reaches_the_output() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    let layout = f.compose.cwd.join("out/app");
    let layers = layer_digests(&layout);
    assert!(layers.len() >= 3);

    for (i, edit) in [
        Box::new(|b: &mut Vec<u8>| {
            let middle = b.len() / 2;
            b[middle] ^= 0x40;
        }) as Box<dyn FnOnce(&mut Vec<u8>)>,
        Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 3)),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::remove_dir_all(&layout).unwrap();
        damage(&store_object_by_sha256(&f.compose.store, &layers[i]), edit);
        let (summary, stderr) = build_again(&f);
        assert!(stderr.contains("warning:") && stderr.contains("is corrupt"), "{stderr}");
        assert_eq!(index_digest(&summary), index_digest(&first), "the same image, made again");
        assert!(assert_layout_blobs_intact(&layout) >= layers.len());
    }
    f.compose.ok(&["store", "verify"]);
}

/// The sha256 the lock records for package `name`.
fn locked_sha256(lock: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap();
    let at = text.find(&format!("name = \"{name}\"")).unwrap_or_else(|| panic!("{name} in the lock"));
    let line = text[at..].lines().find(|l| l.starts_with("identity = [\"sha256:")).unwrap();
    line.trim_start_matches("identity = [\"sha256:").trim_end_matches("\"]").to_string()
}

/// Image layers are written straight from the package files: a damaged package file in the
/// store is found while it is read, put aside, fetched again, and the layer holds its bytes.
#[test]
fn a_damaged_package_file_is_not_layered() {
    let content: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let (_mirror, c, recipe) = crate::mirror_with(vec![Deb::new("big", "1").file("usr/share/big/data", &content)]);
    write_recipe(&recipe, &_mirror.keyring, &["big"], "");
    let build = || {
        let out = c.run(&["--json", "build", recipe.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    build();
    let deb = store_object_by_sha256(&c.store, &locked_sha256(&recipe.with_extension("lock"), "big"));
    // Near the end, the damage is found when the last byte is checked; near the start, it makes
    // the archive unreadable first, and is still told apart from a bad package.
    for (epoch, at_end) in [("1700000100", true), ("1700000200", false)] {
        damage(&deb, |b| {
            let at = if at_end { b.len() - 100 } else { 140 };
            b[at] ^= 0x5a;
        });
        // A new epoch: new layer keys over the same (stored) package files.
        let text = std::fs::read_to_string(&recipe).unwrap();
        let text = text.replace("1700000000", epoch).replace("1700000100", epoch);
        std::fs::write(&recipe, text).unwrap();
        let stderr = build();
        assert!(stderr.contains("is corrupt") && !stderr.contains("unsafe"), "{stderr}");
        let layout = c.cwd.join("out/app");
        let entries = layer_entries(&layout, "amd64");
        let big = entries.iter().find(|e| e.path == "usr/share/big/data").unwrap();
        assert!(big.data == content, "the layer holds the package's bytes");
        assert_layout_blobs_intact(&layout);
    }
    let verify = c.ok(&["--json", "store", "verify"]);
    let report: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

/// What the system layer reads of the packages (their listings: paths, kinds, metadata, the
/// few contents it needs) comes from the layer steps' records: a damaged listing is found when
/// it is read, and the layers that recorded it are made again.
#[test]
fn a_damaged_listing_is_not_read_into_a_system_layer() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    let listing = composer_testkit::store_objects(&f.compose.store)
        .into_iter()
        .find(|p| {
            std::fs::read(p).is_ok_and(|b| b.starts_with(b"{\"entries\"") && b.windows(11).any(|w| w == b"usr/bin/app"))
        })
        .expect("a listing names the package's files");
    damage(&listing, |b| {
        let at = b.windows(11).position(|w| w == b"usr/bin/app").unwrap();
        b[at + 8] = b'X';
    });
    // A file of the recipe's own changes the system layer's key, not the package layers'.
    let text = std::fs::read_to_string(&f.recipe).unwrap() + "\n[[files]]\npath = \"/etc/motd\"\ncontent = \"hi\"\n";
    std::fs::write(&f.recipe, text).unwrap();
    let (summary, stderr) = build_again(&f);
    assert!(stderr.contains("is corrupt"), "{stderr}");
    assert_ne!(index_digest(&summary), index_digest(&first));
    let entries = layer_entries(&f.compose.cwd.join("out/app"), "amd64");
    assert!(entries.iter().any(|e| e.path == "usr/bin/app"), "the package's layer is whole");
    assert!(entries.iter().any(|e| e.path == "etc/motd"));
    let verify = f.compose.ok(&["--json", "store", "verify"]);
    let report: serde_json::Value = serde_json::from_str(&verify).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn a_layout_keeps_other_tags_and_what_composer_did_not_write() {
    let f = Fixture::new(&["app"], "");
    let layout = f.compose.cwd.join("shared");
    let with_tag = |tag: &str, content: &str| {
        write_recipe(
            &f.recipe,
            &f.mirror.keyring,
            &["app"],
            &format!("[[files]]\npath = \"/etc/tag\"\ncontent = \"{content}\"\n"),
        );
        let text = std::fs::read_to_string(&f.recipe)
            .unwrap()
            .replace("name = \"app\"", &format!("name = \"app\"\ntag = \"{tag}\""));
        std::fs::write(&f.recipe, text).unwrap();
        f.compose.build_json(&f.recipe, &["-o", layout.to_str().unwrap()])
    };
    let one = with_tag("one", "first");
    std::fs::write(layout.join("NOTES"), b"mine").unwrap();
    std::fs::write(layout.join("blobs/sha256/notes.txt"), b"mine too").unwrap();
    let one_blobs: Vec<String> = layer_digests_of(&layout, &index_digest(&one));
    let two = with_tag("two", "second");
    let refs = |layout: &Path| -> Vec<(String, String)> {
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mut refs: Vec<(String, String)> = top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string();
                (name, m["digest"].as_str().unwrap().to_string())
            })
            .collect();
        refs.sort();
        refs
    };
    assert_eq!(refs(&layout), [("one".into(), index_digest(&one)), ("two".into(), index_digest(&two))]);
    let two_only: Vec<String> =
        layer_digests_of(&layout, &index_digest(&two)).into_iter().filter(|d| !one_blobs.contains(d)).collect();
    assert!(!two_only.is_empty(), "the second image has a layer of its own");

    // Tag `two` again with other content: its old layer goes, `one` and the user's files stay.
    let three = with_tag("two", "third");
    assert_eq!(refs(&layout), [("one".into(), index_digest(&one)), ("two".into(), index_digest(&three))]);
    for digest in &one_blobs {
        assert!(layout.join("blobs/sha256").join(digest).is_file(), "blob {digest} of tag one was removed");
    }
    for digest in &two_only {
        assert!(!layout.join("blobs/sha256").join(digest).exists(), "blob {digest} only the old two used is left");
    }
    assert_eq!(std::fs::read(layout.join("NOTES")).unwrap(), b"mine");
    assert_eq!(std::fs::read(layout.join("blobs/sha256/notes.txt")).unwrap(), b"mine too");
}

/// The layer digests of the image whose index is `index` in `layout`.
fn layer_digests_of(layout: &Path, index: &str) -> Vec<String> {
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap(),
        )
        .unwrap()
    };
    let mut out = Vec::new();
    for m in read(index)["manifests"].as_array().unwrap() {
        for l in read(m["digest"].as_str().unwrap())["layers"].as_array().unwrap() {
            out.push(l["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string());
        }
    }
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    out.sort();
    out
}

#[test]
fn outputs_and_stores_that_cannot_be_right_are_refused_and_leave_nothing() {
    let f = Fixture::new(&["app"], "");
    let cwd = &f.compose.cwd;
    f.compose.build_json(&f.recipe, &[]);

    let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", "docker://x"]);
    assert!(stderr.contains("transport `docker:`") && stderr.contains("hint:"), "{stderr}");
    assert!(!cwd.join("docker:").exists());

    let stderr = f.compose.fails(&["build", f.recipe_str(), "--platform", "linux/arm64"]);
    assert!(stderr.contains("`--platform linux/arm64` is not one of the recipe's platforms (linux/amd64)"), "{stderr}");
    let stderr = f.compose.fails(&["build", f.recipe_str(), "--platform", "linux/sparc"]);
    assert!(stderr.contains("`--platform linux/sparc` is not one of the recipe's platforms"), "{stderr}");

    // A directory of the user's: refused, and nothing (no lock file) appears beside it.
    let precious = cwd.join("etc");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("passwd"), b"root").unwrap();
    let before = listing(cwd);
    let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", precious.to_str().unwrap()]);
    assert!(stderr.contains("not empty and holds no `oci-layout`"), "{stderr}");
    assert_eq!(listing(cwd), before);
    assert_eq!(listing(&precious), ["passwd"]);

    // An archive onto a directory: refused, no temp file anywhere.
    let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}", precious.display())]);
    assert!(stderr.contains("must be a file"), "{stderr}");
    assert_eq!(listing(cwd), before);
    assert_eq!(listing(&precious), ["passwd"]);

    // A written archive appears whole under its name, with nothing beside it.
    let archives = cwd.join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}/img.tar", archives.display())]);
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}/img.tar", archives.display())]);
    assert_eq!(listing(&archives), ["img.tar"]);

    // A mistyped store is not made into one by commands that only read or clean.
    let typo = cwd.join("stroe");
    for args in [&["store", "info"][..], &["store", "gc"], &["store", "verify"]] {
        let out = Command::new(&f.compose.bin).arg("--store").arg(&typo).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("is not a composer store"), "{args:?}: {stderr}");
        assert!(!typo.exists(), "{args:?} created the store");
    }
}

/// Runs `script` as root in a mount namespace of its own (so that mounts vanish with it).
fn in_mount_namespace(script: &str, envs: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-ec", script]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("unshare runs (util-linux)")
}

/// `compose build RECIPE` with the store on a tmpfs of `size` (`1m`), in a mount namespace.
fn build_on_a_small_store(c: &composer_testkit::Compose, recipe: &std::path::Path, size: &str) -> std::process::Output {
    std::fs::create_dir_all(&c.store).unwrap();
    let cmd = c.command(&["build", recipe.to_str().unwrap()]);
    let args: Vec<String> = cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())).collect();
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs '{}'\nexec '{}' {}",
        c.store.display(),
        c.bin.display(),
        args.join(" ")
    );
    let envs: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
        .collect();
    in_mount_namespace(&format!("cd '{}'\n{script}", c.cwd.display()), &envs)
}

#[test]
fn a_full_disk_is_named_as_such() {
    let mirror = composer_testkit::LocalMirror::new();
    let mut debs = base_packages("amd64");
    // A small .deb (a block of noise repeated within xz's window) whose gzip layer cannot
    // shrink it and does not fit the store below: the disk fills while the layer is written, from
    // the package's own data, where a full disk was once blamed on the package.
    let block = noise(200_000);
    debs.push(Deb::new("big", "1").file("usr/share/big", &block.repeat(15)));
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("r.toml");
    write_recipe(&recipe, &mirror.keyring, &["big"], "");
    let out = build_on_a_small_store(&c, &recipe, "1m");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("No space left on device") && stderr.contains("the disk is full"), "{stderr}");
    assert!(stderr.contains("compose store gc"), "{stderr}");
    assert!(!stderr.contains("unsafe or corrupt"), "{stderr}");
}

#[test]
fn a_build_whose_downloads_cannot_fit_is_refused_before_it_starts() {
    let mirror = composer_testkit::LocalMirror::new();
    let mut debs = base_packages("amd64");
    debs.push(Deb::new("big", "1").gzip_data().file("usr/share/big", &noise(3 << 20)));
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("r.toml");
    write_recipe(&recipe, &mirror.keyring, &["big"], "");
    let out = build_on_a_small_store(&c, &recipe, "4m");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the build needs about 6.") && stderr.contains("is free"), "{stderr}");
    assert!(stderr.contains("hint: `compose store gc` removes what no recent build uses"), "{stderr}");
    assert!(!stderr.contains("No space left"), "refused before anything was written: {stderr}");
}

#[test]
fn a_read_only_store_serves_a_cached_build_and_verify() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    let store = f.compose.store.display().to_string();
    let run = |args: &[&str]| {
        let cmd = f.compose.command(args);
        let quoted: Vec<String> = cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())).collect();
        let envs: Vec<(String, String)> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
            .collect();
        in_mount_namespace(
            &format!(
                "mount --bind '{store}' '{store}'\nmount -o remount,bind,ro '{store}'\ncd '{}'\nexec '{}' {}",
                f.compose.cwd.display(),
                f.compose.bin.display(),
                quoted.join(" ")
            ),
            &envs,
        )
    };
    let out = run(&["--json", "build", f.recipe_str(), "-o", "again"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index_digest(&summary), index_digest(&first));
    let out = run(&["store", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn what_a_killed_build_left_is_cleaned_by_the_next_build() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let store = &f.compose.store;
    let leftovers =
        [store.join("tmp-v1/4242-7"), store.join("objects-v1/ab/.tmp-4242-8"), store.join("actions-v1/cd/.tmp-4242-9")];
    for path in &leftovers {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"half written").unwrap();
    }
    // The shards are walked at most daily; make the last walk a day old.
    let marker = store.join("locks-v1/temps-cleaned");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options().write(true).create(true).truncate(false).open(&marker).unwrap().set_modified(old).unwrap();
    f.compose.build_json(&f.recipe, &[]);
    for path in &leftovers {
        assert!(!path.exists(), "{} is still there", path.display());
    }
}

/// A no-op build does not read the blobs it wrote into a layout again (it knows them by their
/// file stamps), yet a blob changed since, even to the same size and time, is written again.
#[test]
fn a_layout_blob_changed_after_the_build_is_written_again() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let layout = f.compose.cwd.join("out/app");
    let layer = manifest(&layout, "amd64")["layers"][0]["digest"].as_str().unwrap().replace("sha256:", "");
    let blob = layout.join("blobs/sha256").join(layer);
    let before = std::fs::metadata(&blob).unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    // Same size, and the modification time put back: only the kernel's change time differs.
    let times = std::fs::FileTimes::new().set_modified(before.modified().unwrap());
    std::fs::File::options().write(true).open(&blob).unwrap().set_times(times).unwrap();
    build_again(&f);
    assert_layout_blobs_intact(&layout);
}

/// A package some build root unpacked into the store is layered from there, not decoded again:
/// the image is the same as from the package file, and the package file is not read at all (so
/// damage to it goes unnoticed by this build; `store verify` still finds it).
#[test]
fn a_package_a_build_root_unpacked_is_layered_from_the_store() {
    let debs = vec![
        Deb::new("build-essential", "12.9").file("usr/share/doc/build-essential/README", b"stand-in"),
        Deb::new("mawk", "1.3").file("usr/bin/mawk", b"stand-in"),
        Deb::new("tool", "1").file("usr/bin/tool", b"#!/bin/sh\necho tool\n"),
    ];
    let (mirror, c, recipe) = crate::mirror_with(debs);
    // The root has no shell: the build fails, after its packages were unpacked into the store.
    // `tool` is in the build root only, so no layer of it exists yet.
    write_recipe(
        &recipe,
        &mirror.keyring,
        &[],
        "[[builds]]\nname = \"b\"\nbuild_depends = [\"tool\"]\nscript = \"true\"\n",
    );
    assert!(!c.run(&["build", recipe.to_str().unwrap()]).status.success());
    let deb = store_object_by_sha256(&c.store, &locked_sha256(&recipe.with_extension("lock"), "tool"));

    // The same packages as an image only, in that store and in a fresh one.
    let image = c.cwd.join("image.toml");
    write_recipe(&image, &mirror.keyring, &["tool"], "");
    let mut fresh = compose();
    fresh.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let from_file = fresh.ok(&["--json", "build", image.to_str().unwrap(), "-o", "fresh"]);
    damage(&deb, |b| {
        let at = b.len() / 2;
        b[at] ^= 1;
    });
    let out = c.run(&["--json", "build", image.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("is corrupt"), "{stderr}");
    let from_store: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_file: serde_json::Value = serde_json::from_str(&from_file).unwrap();
    assert_eq!(index_digest(&from_store), index_digest(&from_file));
    let verify = c.run(&["store", "verify"]);
    assert!(!verify.status.success(), "the damaged package file is still found by verify");
}
