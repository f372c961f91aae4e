//! The image goes to a real OCI registry (Debian's docker-registry, on loopback, started by the
//! test): the registry checks every manifest, index and blob digest on the way in.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Fixture;

/// A docker-registry process on a free loopback port, stopped (by its PID) on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage: {{ filesystem: {{ rootdirectory: {} }} }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (.ci/run installs it)");
        // Owned from here on, so that a panic below still stops it.
        let registry = Registry { child, port, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("skopeo runs");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pushes_to_a_real_registry_with_its_digest_intact() {
    let f = Fixture::new(&["app"], "");
    let summary = f.compose.build_json(&f.recipe, &[]);
    let registry = Registry::start();
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
