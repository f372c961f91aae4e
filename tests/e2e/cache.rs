//! Sharing the store between machines through a cache directory (`dir:`): two stores with their
//! own homes stand for two machines; signed results are substituted, anything untrusted or
//! damaged is built locally instead, and inputs come from a cache when the mirror lost them.

use std::path::{Path, PathBuf};

use composer_testkit::{Compose, sha256_hex, store_has_sha256};

use crate::{Fixture, compose, index_digest};

/// A second machine: its own home, store and temp directory, the same mirror settings.
pub(crate) fn machine_two(f: &Fixture) -> Compose {
    let mut two = compose();
    two.env = f.compose.env.clone();
    two.env.push(("TMPDIR".into(), two.home.path().to_str().unwrap().into()));
    two.env.push(("TZ".into(), "Pacific/Auckland".into()));
    two
}

/// Machine one's key: (secret key file, public key).
pub(crate) fn key(c: &Compose, name: &str) -> (PathBuf, String) {
    let file = c.home.path().join(format!("{name}.secret"));
    let public = c.ok(&["key", "generate", name, "-o", file.to_str().unwrap()]).trim().to_string();
    (file, public)
}

fn cache_dir(c: &Compose) -> (PathBuf, String) {
    let dir = c.home.path().join("cache");
    let reference = format!("dir:{}", dir.display());
    (dir, reference)
}

fn app_deb_sha(f: &Fixture) -> String {
    sha256_hex(&std::fs::read(f.mirror.root.join("pool/main/app/app_1.0_amd64.deb")).unwrap())
}

fn stderr_of(c: &Compose, args: &[&str]) -> (serde_json::Value, String) {
    let out = c.run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "compose {args:?}: {stderr}");
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// Machine one builds and pushes; returns (its index digest, key file, public key, cache ref).
fn pushed(f: &Fixture) -> (String, PathBuf, String, PathBuf, String) {
    let one = f.compose.build_json(&f.recipe, &[]);
    let (secret, public) = key(&f.compose, "one");
    let (dir, reference) = cache_dir(&f.compose);
    f.compose.ok(&["store", "push", &reference, "--recipe", f.recipe_str(), "--signing-key", secret.to_str().unwrap()]);
    (index_digest(&one), secret, public, dir, reference)
}

#[test]
fn a_second_machine_builds_from_the_cache_without_running_or_fetching_anything() {
    let f = Fixture::new(&["app"], "");
    let (digest, secret, public, _, reference) = pushed(&f);
    let two = machine_two(&f);
    let plan = two.ok(&["plan", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
    assert!(
        plan.lines().filter(|l| l.contains(" layer ") || l.contains("system-layer")).all(|l| l.contains("from dir:"))
    );
    assert!(!plan.contains(" fetch "), "{plan}");

    // Another umask too: nothing of the result depends on it.
    let out = two
        .run_with_umask("077", &["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index_digest(&summary), digest);
    let steps = summary["steps"].as_array().unwrap();
    assert!(
        steps.iter().filter(|s| s["step"] != "resolve").all(|s| s["substituted"] == reference.as_str()),
        "{steps:?}"
    );
    assert!(summary["substituted_steps"].as_u64().unwrap() > 0);
    assert!(!store_has_sha256(&two.store, &app_deb_sha(&f)), "no .deb was fetched");
    two.ok(&["store", "verify"]);

    // A second push of the same thing uploads nothing.
    let again: serde_json::Value = serde_json::from_str(&f.compose.ok(&[
        "--json",
        "store",
        "push",
        &reference,
        "--recipe",
        f.recipe_str(),
        "--signing-key",
        secret.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!((again["blobs_uploaded"].as_u64(), again["results"].as_u64()), (Some(0), Some(0)), "{again}");
    // A fully cached build asks no cache: one that does not exist draws no warning.
    let out = two.run(&["build", f.recipe_str(), "--cache", "dir:/nonexistent", "--trusted-key", &public]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not used"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn results_that_are_unsigned_untrusted_or_tampered_are_built_locally_and_said_why() {
    let f = Fixture::new(&["app"], "");
    let (digest, _, public, dir, reference) = pushed(&f);

    // No trusted key: inputs only (the .deb comes from the cache), every step runs here.
    let two = machine_two(&f);
    let (summary, stderr) = stderr_of(&two, &["--json", "build", f.recipe_str(), "--cache", &reference]);
    assert_eq!(index_digest(&summary), digest);
    assert!(stderr.contains("no trusted keys"), "{stderr}");
    assert!(summary["steps"].as_array().unwrap().iter().any(|s| s["step"] == "layer" && s["cached"] == false));
    two.ok(&["store", "verify"]);

    // Signed by a key this machine does not trust.
    let three = machine_two(&f);
    let (_, stranger) = key(&three, "stranger");
    let (summary, stderr) =
        stderr_of(&three, &["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &stranger]);
    assert_eq!(index_digest(&summary), digest);
    assert!(stderr.contains(&reference) && stderr.contains("untrusted keys (one)"), "{stderr}");
    three.ok(&["store", "verify"]);

    // Trusting a key made again under the signer's name: said as such, not as tampering.
    let renamed = machine_two(&f);
    let (_, other_one) = key(&renamed, "one");
    let (summary, stderr) =
        stderr_of(&renamed, &["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &other_one]);
    assert_eq!(index_digest(&summary), digest);
    let said = format!("it is signed by another key named `one` ({public}), not by the trusted `one` ({other_one})");
    assert!(stderr.contains(&said), "{stderr}");
    assert!(!stderr.contains("altered"), "{stderr}");

    // Blobs altered in the cache's storage (each layer's last byte): found, not used, built here.
    for layer in gzip_blobs(&dir) {
        let mut bytes = std::fs::read(&layer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&layer, bytes).unwrap();
    }
    let four = machine_two(&f);
    let (summary, stderr) =
        stderr_of(&four, &["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
    assert_eq!(index_digest(&summary), digest);
    assert!(stderr.contains("is not used") && stderr.contains(&reference), "{stderr}");
    four.ok(&["store", "verify"]);
}

/// The gzip blobs of a layout: the layers.
fn gzip_blobs(dir: &Path) -> Vec<PathBuf> {
    let blobs = std::fs::read_dir(dir.join("blobs/sha256")).unwrap().flatten().map(|e| e.path());
    let layers: Vec<PathBuf> = blobs.filter(|p| std::fs::read(p).unwrap().starts_with(&[0x1f, 0x8b])).collect();
    assert!(!layers.is_empty());
    layers
}

#[test]
fn caches_and_trusted_keys_come_from_the_environment_and_the_config_file() {
    let f = Fixture::new(&["app"], "");
    let (digest, _, public, _, reference) = pushed(&f);
    let mut env = machine_two(&f);
    env.env.push(("COMPOSE_CACHE".into(), reference.clone()));
    env.env.push(("COMPOSE_TRUSTED_KEYS".into(), public.clone()));
    let summary = env.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&summary), digest);
    assert!(summary["substituted_steps"].as_u64().unwrap() > 0);

    let config = machine_two(&f);
    let dir = config.home.path().join("config/compose");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("[cache]\nsubstituters = [\"{reference}\"]\ntrusted-keys = [\"{public}\"]\n"),
    )
    .unwrap();
    let summary = config.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&summary), digest);
    assert!(summary["substituted_steps"].as_u64().unwrap() > 0);
}

#[test]
fn a_cache_that_is_not_there_costs_a_warning_and_the_build_goes_on() {
    let f = Fixture::new(&["app"], "");
    let (_, public) = key(&f.compose, "one");
    let (summary, stderr) = stderr_of(
        &f.compose,
        &["--json", "build", f.recipe_str(), "--cache", "dir:/nonexistent", "--trusted-key", &public],
    );
    assert!(summary["index"].as_str().unwrap().starts_with("sha256:"));
    assert!(stderr.contains("cache dir:/nonexistent is not used"), "{stderr}");
}

#[test]
fn a_lock_whose_package_left_the_mirror_still_builds_from_a_cache_that_holds_it() {
    let f = Fixture::new(&["app"], "");
    let (digest, _, _, _, reference) = pushed(&f);
    let sha = app_deb_sha(&f);
    std::fs::remove_file(f.mirror.root.join("pool/main/app/app_1.0_amd64.deb")).unwrap();
    let two = machine_two(&f);
    // Without the cache the package cannot be had ...
    two.fails(&["build", f.recipe_str()]);
    // ... with it, unsigned, by the hash the lock pins; the plan says where it comes from.
    let plan = two.ok(&["plan", f.recipe_str(), "--cache", &reference]);
    let fetch = plan.lines().find(|l| l.contains(" fetch ") && l.contains("app_1.0")).unwrap_or_default();
    assert!(fetch.contains(&format!("from {reference}")), "{plan}");
    let summary = two.build_json(&f.recipe, &["--cache", &reference]);
    assert_eq!(index_digest(&summary), digest);
    assert!(store_has_sha256(&two.store, &sha));
}

#[test]
fn a_secret_key_is_private_never_overwritten_and_signing_needs_one() {
    let c = compose();
    let file = c.home.path().join("k.secret");
    let public = c.ok(&["key", "generate", "team-1", "-o", file.to_str().unwrap()]);
    assert!(public.starts_with("team-1:"), "{public}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&file).unwrap();
    let stderr = c.fails(&["key", "generate", "team-1", "-o", file.to_str().unwrap()]);
    assert!(stderr.contains("never replaced"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(c.fails(&["key", "generate", "bad name"]).contains("key name"));

    let f = Fixture::new(&["app"], "");
    let stderr = f.compose.fails(&["build", f.recipe_str(), "--cache-to", "dir:/tmp/x-unused"]);
    assert!(stderr.contains("compose key generate"), "{stderr}");
}

#[test]
fn build_cache_to_pushes_what_the_build_made() {
    let f = Fixture::new(&["app"], "");
    let (secret, public) = key(&f.compose, "one");
    let (_, reference) = cache_dir(&f.compose);
    let one = f.compose.build_json(&f.recipe, &["--cache-to", &reference, "--signing-key", secret.to_str().unwrap()]);
    let two = machine_two(&f);
    let summary = two.build_json(&f.recipe, &["--cache", &reference, "--trusted-key", &public]);
    assert_eq!(index_digest(&summary), index_digest(&one));
    assert!(summary["substituted_steps"].as_u64().unwrap() > 0);
}

/// Runs compose in a network namespace with no interfaces, as an air-gapped machine (inside a
/// user namespace, so that it needs no root where user namespaces are allowed).
fn air_gapped(c: &Compose, args: &[&str]) -> std::process::Output {
    let cmd = c.command(args);
    let mut gapped = std::process::Command::new("unshare");
    gapped
        .args(["--map-root-user", "--net", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .current_dir(&c.cwd);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            gapped.env(k, v);
        }
    }
    gapped.output().unwrap()
}

/// Every file of a store, with its size, to tell whether anything changed.
fn store_listing(store: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![store.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else if !entry.path().starts_with(store.join("locks-v1")) {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_bundle_builds_on_an_air_gapped_machine_and_a_damaged_one_is_refused_whole() {
    let f = Fixture::new(&["app"], "");
    let one = f.compose.build_json(&f.recipe, &[]);
    let (secret, public) = key(&f.compose, "one");
    let bundle = f.compose.home.path().join("app.bundle");
    f.compose.ok(&[
        "bundle",
        f.recipe_str(),
        "-o",
        bundle.to_str().unwrap(),
        "--signing-key",
        secret.to_str().unwrap(),
    ]);
    let inputs_only = f.compose.home.path().join("inputs.bundle");
    f.compose.ok(&["bundle", f.recipe_str(), "-o", inputs_only.to_str().unwrap(), "--inputs-only"]);
    // The mirror is gone for the other machines: everything comes from the bundle.
    std::fs::remove_dir_all(f.mirror.root.join("pool")).unwrap();

    // One byte changed anywhere (a blob, a tar header, padding, index.json): refused whole, the
    // store as it was. composer-cache's bundle_faults test changes each byte of a small bundle.
    let two = machine_two(&f);
    two.ok(&["plan", f.recipe_str()]);
    let before = store_listing(&two.store);
    let mut damaged = std::fs::read(&bundle).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    let damaged_path = two.home.path().join("damaged.bundle");
    std::fs::write(&damaged_path, damaged).unwrap();
    let stderr = two.fails(&["store", "import", damaged_path.to_str().unwrap(), "--trusted-key", &public]);
    assert!(stderr.contains("the store is unchanged"), "{stderr}");
    assert_eq!(store_listing(&two.store), before);
    // Results need a trusted key; without one nothing is added either.
    let stderr = two.fails(&["store", "import", bundle.to_str().unwrap()]);
    assert!(stderr.contains("no trusted key"), "{stderr}");
    assert_eq!(store_listing(&two.store), before);

    // The air-gapped machine has the recipe; its lock comes with the bundle.
    let recipe = two.cwd.join("app.toml");
    std::fs::copy(&f.recipe, &recipe).unwrap();
    let locks_to = two.cwd.to_str().unwrap();
    two.ok(&["store", "import", bundle.to_str().unwrap(), "--trusted-key", &public, "--locks-to", locks_to]);
    assert_eq!(
        std::fs::read(two.cwd.join("app.lock")).unwrap(),
        std::fs::read(f.recipe.with_extension("lock")).unwrap()
    );
    let out = air_gapped(&two, &["--json", "--offline", "build", recipe.to_str().unwrap(), "--locked"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index_digest(&summary), index_digest(&one));
    two.ok(&["store", "verify"]);

    // Inputs only: every step runs from the verified inputs, to the same image.
    let three = machine_two(&f);
    three.ok(&["store", "import", inputs_only.to_str().unwrap()]);
    let out = air_gapped(&three, &["--json", "--offline", "build", f.recipe_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index_digest(&summary), index_digest(&one));
    assert!(summary["steps"].as_array().unwrap().iter().any(|s| s["step"] == "layer" && s["cached"] == false));
}
