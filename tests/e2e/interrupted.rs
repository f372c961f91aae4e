//! A build stopped by a signal (CI cancelling a job, `timeout`, Ctrl-C): its sandbox is killed,
//! its directories are removed, it exits as the signal would have made it, and nothing of the
//! step is recorded.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::toolchain::{probe_recipe, toolchain_compose, turn};

/// Waits for `ready` to hold, failing with the build's output if it ended first.
fn wait_for(child: &mut Child, what: &str, within: Duration, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("the build ended ({status}) before {what}: {stderr}");
        }
        assert!(started.elapsed() < within, "no {what} after {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn a_build_stopped_by_a_signal_kills_its_sandbox_and_leaves_nothing() {
    let _turn = turn();
    let c = toolchain_compose();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    // A sleep no other process has: how the test finds it, and that it is gone.
    let sleep = format!("100000.{nonce}");
    let recipe = probe_recipe(&c, &format!("touch /build/started\nsleep {sleep}"));
    let mut build = c.command(&["build", recipe.to_str().unwrap()]);
    let mut child = build.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();

    let temp = c.home.path().join("tmp");
    wait_for(&mut child, "its build directory", Duration::from_secs(600), || {
        !entries_starting(&temp, "compose-build-probe-").is_empty()
    });
    let work = temp.join(&entries_starting(&temp, "compose-build-probe-")[0]);
    wait_for(&mut child, "the step running", Duration::from_secs(60), || work.join("build/started").exists());
    assert!(!processes_with(&sleep).is_empty(), "the step's sleep is not running");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the build still runs 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!stderr.contains("failed"), "an interrupted step is no failed build: {stderr}");
    // The sandbox's processes went with it (bubblewrap's --die-with-parent); give the kernel a
    // moment to reap them.
    let gone = Instant::now();
    while !processes_with(&sleep).is_empty() {
        assert!(gone.elapsed() < Duration::from_secs(10), "left running: {:?}", processes_with(&sleep));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!work.exists(), "{} is left", work.display());
    assert_eq!(entries_starting(&temp, "compose-"), Vec::<String>::new(), "left in the temporary directory");
    // Nothing of the step was recorded: the probe plans as not built.
    let plan: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    let probe = plan["steps"].as_array().unwrap().iter().find(|s| s["step"] == "build" && s["name"] == "probe");
    assert_eq!(probe.map(|s| &s["cached"]), Some(&serde_json::json!(false)), "{plan}");
}
