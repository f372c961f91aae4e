//! Nothing blocks forever and nothing is unbounded: a layout or a `dir:` cache whose files are
//! FIFOs fails (or is given up) at once instead of hanging; `compose inspect` shows only bytes
//! that match the digests and sizes it shows them under; a build step's output and its `/tmp`
//! are bounded by `[limits]`, and a sparse file of 30 GiB fails the step without being read.
//!
//! Every command runs under `timeout`, so that a regression fails the test instead of hanging
//! the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use composer_testkit::{Compose, Deb, Entry, sha256_hex};

use crate::{Fixture, compose, mirror_with, write_recipe};

/// Far longer than any of these commands takes; a command that blocks on a FIFO never ends.
const PATIENCE_SECONDS: u32 = 60;

/// Runs compose, killed after [`PATIENCE_SECONDS`]: a command that hung fails the test.
fn run_within(c: &Compose, args: &[&str]) -> Output {
    let inner = c.command(args);
    let mut command = Command::new("timeout");
    command
        .args(["-s", "KILL", &PATIENCE_SECONDS.to_string()])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(&c.cwd)
        .env_clear();
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let started = std::time::Instant::now();
    let out = command.output().unwrap();
    assert!(
        started.elapsed().as_secs() < u64::from(PATIENCE_SECONDS) && out.status.code().is_some(),
        "compose {args:?} did not end within {PATIENCE_SECONDS}s (it blocked)"
    );
    out
}

fn fails_within(c: &Compose, args: &[&str]) -> String {
    let out = run_within(c, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "compose {args:?} should have failed: {stderr}");
    stderr
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

fn copy_dir(from: &Path, to: &Path) {
    let copied = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(copied.success());
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

/// A layout of the fixture image: (its path, the index blob's, a manifest's, the config's and
/// a layer's digests).
fn built_layout(f: &Fixture) -> (PathBuf, [String; 4]) {
    let layout = f.compose.cwd.join("layout");
    f.compose.build_json(&f.recipe, &["-o", layout.to_str().unwrap()]);
    let index = json(&layout.join("index.json"))["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest = json(&blob(&layout, &index))["manifests"][0]["digest"].as_str().unwrap().to_string();
    let manifest_json = json(&blob(&layout, &manifest));
    let config = manifest_json["config"]["digest"].as_str().unwrap().to_string();
    let layer = manifest_json["layers"][0]["digest"].as_str().unwrap().to_string();
    (layout, [index, manifest, config, layer])
}

#[test]
fn a_layout_whose_files_are_fifos_fails_inspect_and_build_at_once() {
    let f = Fixture::new(&["app"], "");
    let (layout, [index, manifest, config, layer]) = built_layout(&f);
    let cases = [
        ("index.json".to_string(), "index.json"),
        (format!("blobs/sha256/{}", &index[7..]), "the index"),
        (format!("blobs/sha256/{}", &manifest[7..]), "a manifest"),
        (format!("blobs/sha256/{}", &config[7..]), "the config"),
        (format!("blobs/sha256/{}", &layer[7..]), "a layer"),
    ];
    for (i, (file, what)) in cases.iter().enumerate() {
        let copy = f.compose.cwd.join(format!("fifo-{i}"));
        copy_dir(&layout, &copy);
        mkfifo(&copy.join(file));
        let stderr = fails_within(&f.compose, &["inspect", copy.to_str().unwrap()]);
        assert!(stderr.contains("FIFO"), "{what}: {stderr}");
    }

    // Writing into a layout reads its index.json (and checks its blobs) first.
    let copy = f.compose.cwd.join("fifo-index-build");
    copy_dir(&layout, &copy);
    mkfifo(&copy.join("index.json"));
    let stderr = fails_within(&f.compose, &["build", f.recipe_str(), "-o", copy.to_str().unwrap()]);
    assert!(stderr.contains("FIFO"), "{stderr}");
    let copy = f.compose.cwd.join("fifo-oci-layout-build");
    copy_dir(&layout, &copy);
    mkfifo(&copy.join("oci-layout"));
    fails_within(&f.compose, &["build", f.recipe_str(), "-o", copy.to_str().unwrap()]);
    let copy = f.compose.cwd.join("fifo-blob-build");
    copy_dir(&layout, &copy);
    mkfifo(&blob(&copy, &layer));
    let stderr = fails_within(&f.compose, &["build", f.recipe_str(), "-o", copy.to_str().unwrap()]);
    assert!(stderr.contains("FIFO"), "{stderr}");

    // An archive named on the command line that is a FIFO.
    let fifo = f.compose.cwd.join("image.tar");
    mkfifo(&fifo);
    for target in [format!("oci-archive:{}", fifo.display()), fifo.display().to_string()] {
        let stderr = fails_within(&f.compose, &["inspect", &target]);
        assert!(stderr.contains("FIFO"), "{stderr}");
    }
}

#[test]
fn inspect_refuses_a_manifest_that_is_not_the_bytes_its_digest_names() {
    let f = Fixture::new(&["app"], "");
    let (layout, [_, manifest, ..]) = built_layout(&f);
    let path = blob(&layout, &manifest);
    let original = std::fs::read(&path).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    // The same size, still JSON: only the digest can tell.
    let same_size = text.replacen("\"schemaVersion\":2", "\"schemaVersion\":3", 1);
    assert_eq!(same_size.len(), text.len());
    let longer = format!("{text} ");
    for altered in [same_size, longer] {
        std::fs::write(&path, altered).unwrap();
        let stderr = fails_within(&f.compose, &["inspect", layout.to_str().unwrap()]);
        assert!(stderr.contains(&manifest) && stderr.contains("altered or damaged"), "{stderr}");
        assert!(stderr.contains(&format!("blobs/sha256/{}", &manifest[7..])), "{stderr}");
    }
    std::fs::write(&path, original).unwrap();
    f.compose.ok(&["inspect", layout.to_str().unwrap()]);
}

/// A layout written by hand: a config, one layer and a manifest, each stored under its digest;
/// `index.json` from `entry`, given the manifest's descriptor.
fn crafted_layout(dir: &Path, layer_size: serde_json::Value, entry: &dyn Fn(serde_json::Value) -> serde_json::Value) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        std::fs::write(blob(dir, &digest), bytes).unwrap();
        digest
    };
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = vec![0u8; 1024];
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(&layer), "size": layer_size }],
    }))
    .unwrap();
    let descriptor = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest),
        "size": manifest.len(),
    });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry(descriptor)] });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn inspect_refuses_sizes_that_are_negative_absurd_or_not_the_blobs() {
    let c = compose();
    let ok = c.cwd.join("ok");
    crafted_layout(&ok, 1024.into(), &|d| d);
    let shown: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "inspect", ok.to_str().unwrap()])).unwrap();
    assert_eq!(shown["manifests"][0]["layers"][0]["size"], 1024);

    let with_size = |size: serde_json::Value| {
        move |mut d: serde_json::Value| {
            d["size"] = size.clone();
            d
        }
    };
    type EditEntry = Box<dyn Fn(serde_json::Value) -> serde_json::Value>;
    let cases: Vec<(&str, serde_json::Value, EditEntry, &str)> = vec![
        ("negative", 1024.into(), Box::new(with_size((-1).into())), "gives the size -1"),
        ("huge", 1024.into(), Box::new(with_size((1u64 << 62).into())), "gives the size 4611686018427387904"),
        ("zero", 1024.into(), Box::new(with_size(0.into())), "gives the size 0"),
        (
            "missing",
            1024.into(),
            Box::new(|mut d: serde_json::Value| {
                d.as_object_mut().unwrap().remove("size");
                d
            }),
            "gives the size (none)",
        ),
        ("short", 1024.into(), Box::new(with_size(10.into())), "holds more than 10 bytes"),
        ("layer-negative", (-1).into(), Box::new(|d| d), "layer 0 of manifest"),
        ("layer-huge", (1u64 << 62).into(), Box::new(|d| d), "4611686018427387904"),
        ("layer-long", 2048.into(), Box::new(|d| d), "holds 1024 bytes"),
        ("layer-short", 512.into(), Box::new(|d| d), "holds more than 512 bytes"),
    ];
    for (name, layer_size, entry, says) in cases {
        let dir = c.cwd.join(name);
        crafted_layout(&dir, layer_size, &*entry);
        let out = run_within(&c, &["--json", "inspect", dir.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{name}: {stderr}");
        let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(error["error"]["message"].as_str().unwrap().contains(says), "{name}: {error}");
    }
}

#[test]
fn a_dir_cache_whose_step_manifests_or_index_are_fifos_is_given_up_at_once() {
    let f = Fixture::new(&["app"], "");
    let one = f.compose.build_json(&f.recipe, &[]);
    let (secret, public) = crate::cache::key(&f.compose, "one");
    let cache = f.compose.home.path().join("cache");
    let reference = format!("dir:{}", cache.display());
    f.compose.ok(&["store", "push", &reference, "--recipe", f.recipe_str(), "--signing-key", secret.to_str().unwrap()]);

    // Every tag's manifest a FIFO: the first one read gives the cache up, with a warning.
    let manifests: Vec<String> = json(&cache.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(!manifests.is_empty());
    let fifos = f.compose.home.path().join("cache-fifos");
    copy_dir(&cache, &fifos);
    for digest in &manifests {
        mkfifo(&blob(&fifos, digest));
    }
    let index_fifo = f.compose.home.path().join("cache-index-fifo");
    copy_dir(&cache, &index_fifo);
    mkfifo(&index_fifo.join("index.json"));

    for dir in [fifos, index_fifo] {
        let two = crate::cache::machine_two(&f);
        let reference = format!("dir:{}", dir.display());
        let out =
            run_within(&two, &["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("cache {reference} is not used")) && stderr.contains("FIFO"), "{stderr}");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(crate::index_digest(&summary), crate::index_digest(&one));
    }
}

/// A build root with a shell: the host's own `dash`, `truncate` and `dd` with the C library they
/// link to (so that build steps run without a network), and stand-ins for what every build root
/// holds.
fn shell_root_packages() -> Vec<Deb> {
    let host = |path: &str| std::fs::read(path).unwrap_or_else(|e| panic!("the host's {path}: {e}"));
    let tools = Deb::new("host-tools", "1")
        .entry(Entry::File("bin/sh".into(), host("/bin/dash"), 0o755))
        .entry(Entry::File("usr/bin/truncate".into(), host("/usr/bin/truncate"), 0o755))
        .entry(Entry::File("usr/bin/dd".into(), host("/usr/bin/dd"), 0o755))
        .entry(Entry::File("lib/x86_64-linux-gnu/libc.so.6".into(), host("/lib/x86_64-linux-gnu/libc.so.6"), 0o755))
        .entry(Entry::File("lib64/ld-linux-x86-64.so.2".into(), host("/lib64/ld-linux-x86-64.so.2"), 0o755));
    vec![
        Deb::new("build-essential", "12.9").file("usr/share/doc/build-essential/README", b"stand-in"),
        Deb::new("mawk", "1.3").file("usr/bin/mawk", b"stand-in"),
        tools,
    ]
}

fn probe_recipe(limits: &str, script: &str) -> String {
    format!("{limits}\n[[builds]]\nname = \"probe\"\nbuild_depends = [\"host-tools\"]\nscript = '''\n{script}\n'''\n")
}

/// The sizes of the files beneath `dir`, added up.
fn apparent_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() { apparent_size(&e.path()) } else { meta.len() }
        })
        .sum()
}

fn step_keys(c: &Compose, recipe: &Path) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    plan["steps"].as_array().unwrap().iter().map(|s| format!("{} {} {}", s["step"], s["name"], s["key"])).collect()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_step_output_past_its_limit_fails_without_being_read_and_the_default_catches_30_gib() {
    let (mirror, c, recipe) = mirror_with(shell_root_packages());
    let small = "[limits]\nstep_output = \"1 GiB\"\n";
    write_recipe(&recipe, &mirror.keyring, &[], &probe_recipe(small, "truncate -s 20G \"$DESTDIR/big\""));
    let stderr = fails_within(&c, &["build", recipe.to_str().unwrap()]);
    assert!(
        stderr.contains("build `probe` for linux/amd64 left 20 GiB")
            && stderr.contains("limit of 1 GiB")
            && stderr.contains("/big (20 GiB)"),
        "{stderr}"
    );
    assert!(stderr.contains("step_output = \"2 GiB\""), "the hint names the key: {stderr}");

    // Left at its default (8 GiB), the limit catches a 30 GiB sparse file as fast: hashed at
    // 1 GiB/s, it would take half a minute, and it is not read at all.
    write_recipe(&recipe, &mirror.keyring, &[], &probe_recipe("", "truncate -s 30G \"$DESTDIR/big\""));
    let started = std::time::Instant::now();
    let stderr = fails_within(&c, &["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("left 30 GiB") && stderr.contains("limit of 8 GiB"), "{stderr}");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    assert!(apparent_size(&c.store) < 1 << 30, "the sparse file was not stored");

    // Within the limit, the step builds.
    write_recipe(&recipe, &mirror.keyring, &[], &probe_recipe(small, "truncate -s 1M \"$DESTDIR/fits\""));
    run_within(&c, &["build", recipe.to_str().unwrap()]);

    // The limits are not inputs: setting them changes no step key.
    let with_limits = c.cwd.join("with-limits.toml");
    let script = "truncate -s 1M \"$DESTDIR/fits\"";
    write_recipe(
        &with_limits,
        &mirror.keyring,
        &[],
        &probe_recipe("[limits]\nstep_output = \"2 GiB\"\nscratch = \"64 MiB\"\n", script),
    );
    let without = c.cwd.join("without.toml");
    write_recipe(&without, &mirror.keyring, &[], &probe_recipe("", script));
    assert_eq!(step_keys(&c, &with_limits), step_keys(&c, &without));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_step_that_fills_its_scratch_space_fails_at_the_limit() {
    let (mirror, c, recipe) = mirror_with(shell_root_packages());
    let limits = "[limits]\nscratch = \"8 MiB\"\n";
    // Within the limit, /tmp works.
    let fits = "dd if=/dev/zero of=/tmp/fill bs=1M count=4\ndd if=/tmp/fill of=\"$DESTDIR/fill\"";
    write_recipe(&recipe, &mirror.keyring, &[], &probe_recipe(limits, fits));
    let out = run_within(&c, &["build", recipe.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let fills = "dd if=/dev/zero of=/tmp/fill bs=1M count=64\ndd if=/tmp/fill of=\"$DESTDIR/fill\"";
    write_recipe(&recipe, &mirror.keyring, &[], &probe_recipe(limits, fills));
    let stderr = fails_within(&c, &["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("[limits] scratch") && stderr.contains("at most 8 MiB"), "{stderr}");
}

#[test]
fn limits_that_are_not_sizes_are_located_errors() {
    let c = compose();
    let recipe = c.cwd.join("r.toml");
    for (value, says) in [
        ("\"8 GB\"", "binary units"),
        ("\"lots\"", "does not start with a number"),
        ("\"1 KiB\"", "less than the smallest limit"),
        ("-5", "a size is a number of bytes"),
    ] {
        std::fs::write(
            &recipe,
            format!(
                "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n\n\
                 [limits]\nscratch = {value}\n"
            ),
        )
        .unwrap();
        let stderr = c.fails(&["plan", recipe.to_str().unwrap()]);
        assert!(stderr.contains("r.toml:9:") && stderr.contains(says), "{value}: {stderr}");
    }
}
