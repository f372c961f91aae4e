//! The image goes to a real OCI registry (Debian's docker-registry, on loopback, started by the
//! test): the registry checks every manifest, index and blob digest on the way in.

use std::process::Command;

use composer_testkit::registry::{Access, RegistryServer};

use crate::Fixture;

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("skopeo runs");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pushes_to_a_real_registry_with_its_digest_intact() {
    let f = Fixture::new(&["app"], "");
    let summary = f.compose.build_json(&f.recipe, &[]);
    let registry = RegistryServer::start(Access::Open);
    let layout = f.compose.cwd.join("out/app");
    let dest = format!("docker://127.0.0.1:{}/composer/app:latest", registry.port);
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &dest,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]);
    let pushed = composer_testkit::sha256_hex(raw.as_bytes());
    assert_eq!(format!("sha256:{pushed}"), summary["index"].as_str().unwrap(), "the registry holds a different index");
}
