//! A registry is not trusted, and neither is what it names: pushes against a registry on
//! loopback that lies about what it holds ([`FakeRegistry`]), token services it names on other
//! hosts over plain HTTP, and passwords written where a host was expected.

use std::time::{Duration, Instant};

use composer_testkit::registry::{FakeRegistry, Lies};

use crate::Fixture;

/// Blobs of the image in `out/app`: every manifest's config and layers.
fn image_blobs(f: &Fixture) -> Vec<String> {
    let layout = f.compose.cwd.join("out/app");
    let blob = |digest: &str| -> serde_json::Value {
        let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let mut out = Vec::new();
    for entry in top["manifests"].as_array().unwrap() {
        let manifest = blob(entry["digest"].as_str().unwrap());
        out.push(manifest["config"]["digest"].as_str().unwrap().to_string());
        for layer in manifest["layers"].as_array().unwrap() {
            out.push(layer["digest"].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn a_registry_that_lies_about_what_it_holds_gets_the_blobs_or_the_push_fails_naming_them() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let layout = f.compose.cwd.join("out/app");
    let blobs = image_blobs(&f);
    let (secret, _) = crate::cache::key(&f.compose, "ci");
    let push = |registry: &FakeRegistry| {
        f.compose.run(&["--json", "push", layout.to_str().unwrap(), &format!("{}/team/app:v1", registry.host())])
    };
    let cache_push = |registry: &FakeRegistry| {
        f.compose.run(&[
            "--json",
            "store",
            "push",
            &format!("oci://{}/team/cache", registry.host()),
            "--recipe",
            f.recipe_str(),
            "--signing-key",
            secret.to_str().unwrap(),
        ])
    };

    // It claims blobs it lacks, with another size and digest: they are uploaded all the same.
    let registry = FakeRegistry::start(Lies { holds_what_it_lacks: true, ..Lies::default() });
    let out = push(&registry);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["blobs_uploaded"].as_u64(), Some(blobs.len() as u64), "{report}");
    assert!(blobs.iter().all(|b| registry.holds(b)), "the registry lacks blobs after a successful push");
    let before = registry.blob_count();
    let out = cache_push(&registry);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(registry.blob_count() > before, "the cache push uploaded nothing");

    // It disagrees even after the upload, or echoes another digest for what it stored: the
    // push fails, naming the registry and what it got wrong, and no tag is written.
    let cases: [(Lies, &str); 4] = [
        (Lies { every_size: true, ..Lies::default() }, "bytes where the blob has"),
        (Lies { every_digest: true, ..Lies::default() }, "it answers for digest sha256:0000"),
        (Lies { upload_digest: true, ..Lies::default() }, "the completed upload is answered with digest"),
        (Lies { manifest_digest: true, ..Lies::default() }, "it was stored as sha256:0000"),
    ];
    for (lies, told) in cases {
        let manifest_lie = lies.manifest_digest;
        for (what, out) in [
            ("push", push(&FakeRegistry::start(lies.clone()))),
            ("store push", {
                let registry = FakeRegistry::start(lies.clone());
                cache_push(&registry)
            }),
        ] {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what} succeeded against a lying registry ({told}): {stderr}");
            assert!(stderr.contains("does not hold what it says") && stderr.contains(told), "{what}: {stderr}");
            assert!(stderr.contains("hint:"), "{stderr}");
            if !manifest_lie {
                assert!(stderr.contains("blob sha256:"), "{what}: {stderr}");
            }
            let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(error["error"]["message"].is_string(), "{error}");
        }
    }
}

#[test]
fn credentials_go_to_a_token_service_only_over_https_loopback_or_an_insecure_registry() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let layout = f.compose.cwd.join("out/app");
    // A loopback registry names a token service elsewhere over plain HTTP: 192.0.2.0/24 is
    // TEST-NET (never routed), and a name that only starts like a loopback address.
    for realm_host in ["192.0.2.1", "127.composer.test"] {
        let registry =
            FakeRegistry::start(Lies { realm: Some(format!("http://{realm_host}/token")), ..Lies::default() });
        let started = Instant::now();
        let out = f.compose.run(&[
            "--json",
            "push",
            layout.to_str().unwrap(),
            &format!("{}/team/app:v1", registry.host()),
            "--creds",
            "ci:SECRETPW",
        ]);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(4), "it tried to reach {realm_host}: {:?}", started.elapsed());
        assert!(
            stderr.contains(&format!("credentials are not sent to {realm_host}"))
                && stderr.contains("plain HTTP")
                && stderr.contains(&format!("--insecure-registry {realm_host}")),
            "{stderr}"
        );
        assert!(!stderr.contains("SECRETPW") && !stdout.contains("SECRETPW"));
        assert!(registry.seen().iter().all(|r| r.authorization.is_none()), "{:?}", registry.seen());
    }

    // A token service on loopback over plain HTTP gets them (the registry's own, here), and
    // only the token goes to the registry.
    let registry = FakeRegistry::start(Lies {
        realm: Some("http://{self}/token".into()),
        token_credentials: Some("ci:SECRETPW".into()),
        ..Lies::default()
    });
    let target = format!("{}/team/app:v1", registry.host());
    let refused = f.compose.fails(&["push", layout.to_str().unwrap(), &target]);
    assert!(refused.contains("refused the credentials (none were given)"), "{refused}");
    f.compose.ok(&["push", layout.to_str().unwrap(), &target, "--creds", "ci:SECRETPW"]);
    let seen = registry.seen();
    let basic =
        |r: &&composer_testkit::registry::Seen| r.authorization.as_deref().is_some_and(|a| a.starts_with("Basic"));
    assert!(seen.iter().filter(basic).all(|r| r.target.starts_with("/token")), "{seen:?}");
    assert!(seen.iter().any(|r| r.target.starts_with("/token") && basic(&r)), "{seen:?}");
}

#[test]
fn a_password_in_a_reference_or_url_is_never_shown() {
    let f = Fixture::new(&["app"], "");
    let (secret, _) = crate::cache::key(&f.compose, "ci");
    let secret = secret.to_str().unwrap();
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let image = format!("ci:SECRETPW@127.0.0.1:{port}/team/app:v1");
    let cache = format!("oci://ci:SECRETPW@127.0.0.1:{port}/team/cache");
    let mirror = format!("local=http://ci:SECRETPW@127.0.0.1:{port}/debian");
    let layout = f.compose.cwd.join("out/app");
    let docker = format!("docker://{image}");
    let runs: [Vec<&str>; 6] = [
        vec!["push", layout.to_str().unwrap(), &image],
        vec!["inspect", &docker],
        vec!["build", f.recipe_str(), "--push", &image],
        vec!["build", f.recipe_str(), "--cache", &cache],
        vec!["store", "push", &cache, "--recipe", f.recipe_str(), "--signing-key", secret],
        vec!["build", f.recipe_str(), "--mirror", &mirror],
    ];
    for args in runs {
        let mut all = vec!["--json"];
        all.extend(args.iter().copied());
        let out = f.compose.run(&all);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("SECRETPW") && !stdout.contains("SECRETPW"), "{args:?}:\n{stdout}\n{stderr}");
        assert!(stderr.contains("***@127.0.0.1"), "{args:?}: {stderr}");
        let documents = serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
        let error = documents.last().unwrap_or_else(|| panic!("{args:?}: no JSON: {stdout}")).unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
    }
}
