//! The `docker-archive:` output as Docker itself takes it: a dockerd of the test's own (Debian's
//! docker.io, all its state in a temp dir, no bridge, no iptables, so the host is untouched)
//! loads the archive and runs the image.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::live_debian::{CHECK, copy_recipe, live_build, live_compose};

/// A dockerd process, stopped by its PID on drop (SIGTERM, so that it also stops the containerd
/// it started).
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = tempfile::Builder::new().prefix("dockerd").tempdir().unwrap();
        let root = dir.path();
        // Debian puts the daemon in /usr/sbin, which a non-login PATH may lack.
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|dir| dir.join("dockerd").is_file()))
            .unwrap_or(false);
        let child = Command::new(if on_path { "dockerd" } else { "/usr/sbin/dockerd" })
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"])
            .arg(format!("--host=unix://{}", root.join("docker.sock").display()))
            .arg(format!("--data-root={}", root.join("data").display()))
            .arg(format!("--exec-root={}", root.join("exec").display()))
            .arg(format!("--pidfile={}", root.join("docker.pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd runs (.ci/run installs docker.io)");
        // Owned from here on, so that a panic below still stops it.
        let daemon = Dockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if daemon.docker(&["version"]).status.success() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("dockerd did not start:\n{}", std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap());
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg(format!("--host=unix://{}", self.dir.path().join("docker.sock").display()))
            .args(args)
            .output()
            .expect("the docker client runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}\ndockerd's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn archive_path(dir: &Path) -> String {
    format!("docker-archive:{}", dir.join("debian-python.docker.tar").display())
}

#[test]
fn docker_loads_and_runs_the_docker_archive() {
    let c = live_compose();
    let recipe = copy_recipe(&c, "debian-python.toml");
    let output = archive_path(&c.cwd);
    let summary = live_build(&c, &recipe, &["--platform", "linux/amd64", "-o", &output]);
    // The digests compose gives for the archive are the ones docker and skopeo show for it.
    let image_id = summary["docker_archive"]["image_id"].as_str().expect("an image ID").to_string();
    let manifest = summary["docker_archive"]["manifest"].as_str().expect("a manifest digest").to_string();
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", &output])
        .output()
        .expect("skopeo runs");
    assert_eq!(String::from_utf8_lossy(&skopeo.stdout).trim(), manifest, "{skopeo:?}");

    let daemon = Dockerd::start();
    let loaded = daemon.ok(&["load", "-i", output.trim_start_matches("docker-archive:")]);
    assert!(loaded.contains("Loaded image: debian-python:latest"), "{loaded}");
    let id = daemon.ok(&["image", "inspect", "debian-python:latest", "--format", "{{.Id}}"]);
    assert_eq!(id.trim(), image_id);
    let seen = daemon.ok(&[
        "image",
        "inspect",
        "debian-python:latest",
        "--format",
        "{{.Os}}/{{.Architecture}} {{.Config.User}} {{len .RootFS.Layers}}",
    ]);
    let fields: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(fields[..2], ["linux/amd64", "app"], "{seen}");
    assert!(fields[2].parse::<u32>().unwrap() > 10, "one layer per package: {seen}");

    let said = daemon.ok(&["run", "--rm", "--network=none", "debian-python:latest", "python3", "-c", CHECK]);
    let report: serde_json::Value = serde_json::from_str(said.trim()).unwrap();
    assert_eq!(report["machine"], "x86_64", "{report}");
    assert_eq!(report["jemalloc"], true, "jemalloc not preloaded under docker: {report}");
    assert!(report["ca"].as_u64().unwrap() > 100, "{report}");
}
