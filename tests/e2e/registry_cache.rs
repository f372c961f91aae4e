//! The build cache in a real registry (Debian's docker-registry on loopback): pushed by one
//! machine, substituted by another, behind TLS and basic authentication, and a registry that is
//! down or failing costs only a warning.

use composer_testkit::registry::{Access, FailingServer, RegistryServer};
use composer_testkit::{Compose, sha256_hex, store_has_sha256};

use crate::{Fixture, index_digest};

/// The test's signing key, "ci": (secret key file, public key).
fn key(c: &Compose) -> (String, String) {
    let (file, public) = crate::cache::key(c, "ci");
    (file.display().to_string(), public)
}

#[test]
fn a_second_machine_builds_from_a_registry_cache_and_a_second_push_uploads_nothing() {
    let f = Fixture::new(&["app"], "");
    let registry = RegistryServer::start(Access::Open);
    let reference = format!("oci://{}/composer/cache", registry.host());
    let (secret, public) = key(&f.compose);
    let image = format!("{}/composer/first:v1", registry.host());
    let one = f.compose.build_json(&f.recipe, &["--push", &image, "--cache-to", &reference, "--signing-key", &secret]);
    // The cache's layers are the image's: mounted from the image's repository, not sent again.
    let mounted = registry.answered().iter().filter(|(r, status)| r.contains("mount=") && *status == 201).count();
    assert!(mounted > 0, "{:?}", registry.answered());

    let again: serde_json::Value = serde_json::from_str(&f.compose.ok(&[
        "--json",
        "store",
        "push",
        &reference,
        "--recipe",
        f.recipe_str(),
        "--signing-key",
        &secret,
    ]))
    .unwrap();
    assert_eq!((again["blobs_uploaded"].as_u64(), again["results"].as_u64()), (Some(0), Some(0)), "{again}");

    // The image pushed beside its cache: its layers are mounted from the cache's repository.
    let pushed: serde_json::Value = serde_json::from_str(&f.compose.ok(&[
        "--json",
        "push",
        f.compose.cwd.join("out/app").to_str().unwrap(),
        &format!("{}/composer/app:v1", registry.host()),
        "--cache",
        &reference,
    ]))
    .unwrap();
    assert_eq!(pushed["digest"], one["index"]);
    assert!(pushed["blobs_mounted"].as_u64().unwrap() > 0, "{pushed}");
    // And inspect reads it back from the registry.
    let shown: serde_json::Value = serde_json::from_str(&f.compose.ok(&[
        "--json",
        "inspect",
        &format!("docker://{}/composer/app:v1", registry.host()),
    ]))
    .unwrap();
    assert_eq!((shown["digest"].clone(), shown["format"].as_str()), (one["index"].clone(), Some("registry")));
    assert_eq!(shown["manifests"][0]["platform"], "linux/amd64");
    assert!(shown["manifests"][0]["uncompressed_size"].as_u64() > shown["manifests"][0]["size"].as_u64());

    let two = crate::cache::machine_two(&f);
    let before = registry.requests().len();
    let summary = two.build_json(&f.recipe, &["--cache", &reference, "--trusted-key", &public]);
    assert_eq!(index_digest(&summary), index_digest(&one));
    let steps = summary["steps"].as_array().unwrap();
    assert!(
        steps.iter().filter(|s| s["step"] != "resolve").all(|s| s["substituted"] == reference.as_str()),
        "{steps:?}"
    );
    let deb = sha256_hex(&std::fs::read(f.mirror.root.join("pool/main/app/app_1.0_amd64.deb")).unwrap());
    assert!(!store_has_sha256(&two.store, &deb), "no .deb was fetched");
    two.ok(&["store", "verify"]);
    let requests = registry.requests().len() - before;
    assert!(requests > 0 && requests < 40, "{requests} requests for a two-layer image");

    // A layer altered in the registry's own storage is found and not used.
    let three = crate::cache::machine_two(&f);
    let layer = one["manifests"][0]["digest"].as_str().unwrap();
    let manifest_path = f.compose.cwd.join("out/app/blobs/sha256").join(&layer["sha256:".len()..]);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest_path).unwrap()).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let data = registry.blob_data(&layer["digest"].as_str().unwrap()["sha256:".len()..]);
        let mut bytes = std::fs::read(&data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&data, bytes).unwrap();
    }
    let out = three.run(&["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is not used, building it here"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index_digest(&summary), index_digest(&one));
    three.ok(&["store", "verify"]);
}

#[test]
fn a_registry_behind_tls_and_basic_authentication_takes_the_credentials_users_have() {
    let mut f = Fixture::new(&["app"], "");
    let registry = RegistryServer::start(Access::TlsBasic { user: "ci".into(), password: "s3cret".into() });
    let ca = registry.ca.clone().unwrap();
    let reference = format!("oci://{}/team/cache", registry.host());
    f.compose.env.push(("SSL_CERT_FILE".into(), ca.to_str().unwrap().into()));
    let one = &f.compose;
    let (secret, public) = key(one);
    let no_login = one.fails(&["build", f.recipe_str(), "--cache-to", &reference, "--signing-key", &secret]);
    assert!(no_login.contains("refused the credentials") && no_login.contains("hint:"), "{no_login}");
    one.ok(&[
        "store",
        "push",
        &reference,
        "--recipe",
        f.recipe_str(),
        "--signing-key",
        &secret,
        "--creds",
        "ci:s3cret",
    ]);

    // Other machines are logged in the ways podman and Docker leave them, and trust the
    // registry's CA beside the system's: REGISTRY_AUTH_FILE and --cert-dir; podman's runtime
    // auth.json and its certs.d; Docker's config.json.
    let token = base64_encode(b"ci:s3cret");
    let auths = format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, registry.host());
    let ways: [&LogIn<'_>; 3] = [
        &|c| {
            let auth = c.home.path().join("auth.json");
            std::fs::write(&auth, &auths).unwrap();
            c.env.push(("REGISTRY_AUTH_FILE".into(), auth.to_str().unwrap().into()));
            let certs = c.home.path().join("certs");
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
            vec!["--cert-dir".into(), certs.to_str().unwrap().into()]
        },
        &|c| {
            let runtime = c.home.path().join("run");
            std::fs::create_dir_all(runtime.join("containers")).unwrap();
            std::fs::write(runtime.join("containers/auth.json"), &auths).unwrap();
            c.env.push(("XDG_RUNTIME_DIR".into(), runtime.to_str().unwrap().into()));
            let certs = c.home.path().join("config/containers/certs.d").join(registry.host());
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
            vec![]
        },
        &|c| {
            let docker = c.home.path().join("docker");
            std::fs::create_dir_all(&docker).unwrap();
            std::fs::write(docker.join("config.json"), &auths).unwrap();
            c.env.push(("DOCKER_CONFIG".into(), docker.to_str().unwrap().into()));
            c.env.push(("SSL_CERT_FILE".into(), ca.to_str().unwrap().into()));
            vec![]
        },
    ];
    for way in ways {
        let mut other = crate::cache::machine_two(&f);
        let extra = way(&mut other);
        let mut args = vec!["--cache", &reference, "--trusted-key", &public];
        args.extend(extra.iter().map(String::as_str));
        let summary = other.build_json(&f.recipe, &args);
        assert!(summary["substituted_steps"].as_u64().unwrap() > 0, "{summary}");
    }
}

/// Logs a machine in one way; returns the flags that go with it.
type LogIn<'a> = dyn Fn(&mut Compose) -> Vec<String> + 'a;

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn a_registry_that_is_down_or_failing_costs_a_warning_and_the_build_goes_on() {
    let f = Fixture::new(&["app"], "");
    let (_, public) = key(&f.compose);
    let mut stopped = RegistryServer::start(Access::Open);
    let down = format!("oci://{}/composer/cache", stopped.host());
    stopped.stop();
    let failing = FailingServer::start();
    let erring = format!("oci://127.0.0.1:{}/composer/cache", failing.port);
    for reference in [down, erring] {
        let c = crate::cache::machine_two(&f);
        let started = std::time::Instant::now();
        let out = c.run(&["--json", "build", f.recipe_str(), "--cache", &reference, "--trusted-key", &public]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("cache {reference} is not used")), "{stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    }
}

#[test]
fn a_registry_with_token_authentication_gives_the_cache_and_the_push_a_token() {
    let f = Fixture::new(&["app"], "");
    let registry = RegistryServer::start(Access::Token { user: "ci".into(), password: "tok3n".into() });
    let reference = format!("oci://{}/composer/cache", registry.host());
    let (secret, public) = key(&f.compose);
    let refused = f.compose.fails(&["build", f.recipe_str(), "--cache-to", &reference, "--signing-key", &secret]);
    assert!(refused.contains("refused the credentials (none were given)"), "{refused}");
    let one = f.compose.build_json(
        &f.recipe,
        &[
            "--cache-to",
            &reference,
            "--signing-key",
            &secret,
            "--creds",
            "ci:tok3n",
            "--push",
            &format!("{}/composer/app:v1", registry.host()),
        ],
    );
    let issuer = registry.issuer.as_ref().unwrap();
    let issued = issuer.issued.load(std::sync::atomic::Ordering::SeqCst);
    assert!(issued >= 1, "no token was asked for");

    let two = crate::cache::machine_two(&f);
    let summary = two.build_json(&f.recipe, &["--cache", &reference, "--trusted-key", &public, "--creds", "ci:tok3n"]);
    assert_eq!(index_digest(&summary), index_digest(&one));
    assert!(summary["substituted_steps"].as_u64().unwrap() > 0);
    assert!(issuer.issued.load(std::sync::atomic::Ordering::SeqCst) > issued);
}
