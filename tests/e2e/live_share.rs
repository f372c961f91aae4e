//! Sharing with real recipes, a real registry and podman: a second machine builds the wheel set
//! and the jemalloc build from the first one's registry cache without running a build step or
//! fetching a package, and `compose push` puts an image where podman pulls and runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use composer_testkit::Compose;
use composer_testkit::registry::{Access, RegistryServer};

use crate::index_digest;
use crate::live_debian::{build_example, copy_recipe, live_build, live_compose};
use crate::toolchain::{jemalloc_hello_amd64, toolchain_compose, turn};

fn key(c: &Compose) -> (String, String) {
    let file = c.home.path().join("ci.secret");
    let public = c.ok(&["key", "generate", "ci", "-o", file.to_str().unwrap()]).trim().to_string();
    (file.to_str().unwrap().to_string(), public)
}

/// Machine two: its own store, home, temp directory and timezone, the same lock files.
fn elsewhere(recipe: &Path) -> (Compose, PathBuf) {
    let mut two = live_compose();
    two.env.push(("TZ".into(), "America/Lima".into()));
    two.env.push(("TMPDIR".into(), two.home.path().to_str().unwrap().into()));
    let dir = recipe.parent().unwrap();
    let stem = recipe.file_stem().unwrap().to_str().unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_str().unwrap().to_string();
        // The recipe, its lock and its wheel locks (`pylock.<stem>-<platform>.toml`).
        if (name.starts_with(stem) || name.starts_with(&format!("pylock.{stem}-"))) && entry.path().is_file() {
            std::fs::copy(entry.path(), two.cwd.join(&name)).unwrap();
        }
    }
    let files = dir.join(stem);
    if files.is_dir() {
        std::fs::create_dir_all(two.cwd.join(stem)).unwrap();
        for entry in std::fs::read_dir(&files).unwrap().flatten() {
            std::fs::copy(entry.path(), two.cwd.join(stem).join(entry.file_name())).unwrap();
        }
    }
    let recipe = two.cwd.join(recipe.file_name().unwrap());
    (two, recipe)
}

#[test]
fn a_second_machine_builds_python_app_and_jemalloc_hello_from_the_registry_cache() {
    let _turn = turn();
    let one = toolchain_compose();
    let registry = RegistryServer::start(Access::Open);
    let reference = format!("oci://{}/composer/cache", registry.host());
    let (secret, public) = key(&one);
    let (hello, _) = jemalloc_hello_amd64(&one);
    let app = copy_recipe(&one, "python-app.toml");
    let mut digests = Vec::new();
    for recipe in [&hello, &app] {
        let built = live_build(&one, recipe, &["--cache-to", &reference, "--signing-key", &secret]);
        digests.push(index_digest(&built));
    }
    for (recipe, digest) in [&hello, &app].into_iter().zip(digests) {
        let (two, recipe) = elsewhere(recipe);
        let summary = live_build(&two, &recipe, &["--cache", &reference, "--trusted-key", &public]);
        assert_eq!(index_digest(&summary), digest, "{}", recipe.display());
        let steps = summary["steps"].as_array().unwrap();
        let resolution = |s: &&serde_json::Value| s["step"].as_str().unwrap().starts_with("resolve");
        let local: Vec<_> = steps.iter().filter(|s| !resolution(s) && s["substituted"].is_null()).collect();
        assert!(local.is_empty(), "steps that did not come from the cache: {local:?}");
        // Nothing was fetched or built: the store holds no .deb, wheel or build root, only the
        // results the image is made of.
        let records = std::fs::read_dir(two.store.join("actions-v1")).unwrap().count();
        assert!(records > 0);
        for (kind, magic) in [("a .deb", &b"!<arch>"[..]), ("a wheel", &b"PK\x03\x04"[..])] {
            assert!(!store_holds(&two.store, magic), "{} holds {kind}", recipe.display());
        }
        two.ok(&["store", "verify"]);
    }
}

/// Whether any object of the store starts with `magic`.
fn store_holds(store: &Path, magic: &[u8]) -> bool {
    composer_testkit::store_objects(store).iter().any(|path| {
        let mut head = vec![0u8; magic.len()];
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok()
            && head == magic
    })
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn compose_push_puts_the_image_where_podman_pulls_and_runs_it_on_amd64_and_arm64() {
    let example = build_example("debian-python.toml");
    let registry = RegistryServer::start(Access::TlsBasic { user: "ci".into(), password: "pw".into() });
    let ca = registry.ca.clone().unwrap();
    let mut c = example.c;
    c.env.push(("SSL_CERT_FILE".into(), ca.to_str().unwrap().into()));
    // podman and skopeo read a registry's CA from a directory of `*.crt`.
    let certs = c.home.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let certs = certs.to_str().unwrap().to_string();
    let image = format!("{}/team/debian-python:latest", registry.host());
    let layout = example.layout.to_str().unwrap().to_string();

    let pushed: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "push", &layout, &image, "--creds", "ci:pw"])).unwrap();
    assert_eq!(pushed["digest"], example.summary["index"]);
    let raw =
        tool("skopeo", &["inspect", "--raw", "--cert-dir", &certs, "--creds", "ci:pw", &format!("docker://{image}")]);
    assert_eq!(
        format!("sha256:{}", composer_testkit::sha256_hex(raw.as_bytes())),
        example.summary["index"].as_str().unwrap()
    );

    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        tool("podman", &["pull", "-q", "--arch", arch, "--cert-dir", &certs, "--creds", "ci:pw", &image]);
        let out = tool(
            "podman",
            &[
                "--runtime",
                "runc",
                "run",
                "--rm",
                "--network=none",
                "--arch",
                arch,
                &image,
                "python3",
                "-c",
                "import platform; print(platform.machine())",
            ],
        );
        assert_eq!(out.trim(), machine);
    }
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();

    let again: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "push", &layout, &image, "--creds", "ci:pw"])).unwrap();
    assert_eq!(again["blobs_uploaded"], 0, "{again}");

    // A push killed once its first blob is on its way, then run again, completes.
    let other = format!("{}/team/killed:latest", registry.host());
    let before = registry.requests().len();
    let mut child = c.command(&["push", &layout, &other, "--creds", "ci:pw"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !registry.requests()[before..].iter().any(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/")) {
        assert!(std::time::Instant::now() < deadline, "the push never uploaded");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let rerun: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "push", &layout, &other, "--creds", "ci:pw"])).unwrap();
    assert_eq!(rerun["digest"], example.summary["index"]);
    assert!(rerun["blobs_present"].as_u64().unwrap() > 0, "{rerun}");
    let raw =
        tool("skopeo", &["inspect", "--raw", "--cert-dir", &certs, "--creds", "ci:pw", &format!("docker://{other}")]);
    assert_eq!(
        format!("sha256:{}", composer_testkit::sha256_hex(raw.as_bytes())),
        example.summary["index"].as_str().unwrap()
    );
}
