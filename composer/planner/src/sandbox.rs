//! The build sandbox: bubblewrap, with every namespace unshared (user, mount, pid, network, uts,
//! ipc, cgroup), the build root read-only as `/`, only `/build` and `/out` writable, a fresh
//! `/tmp` of a bounded size (`[limits] scratch`), no network but its own loopback, and a fixed
//! environment. No daemon and no setuid
//! helper: bubblewrap runs as the invoking user. Foreign-architecture roots run through the
//! host's binfmt_misc qemu-user handlers, which the kernel opens at registration (the `F` flag),
//! so nothing of qemu needs to be inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use composer_store::staging::Staged;

use crate::BuildError;

impl crate::Session<'_> {
    /// bubblewrap, or why there is none.
    pub(crate) fn bwrap(&self) -> Result<&Path, BuildError> {
        self.ctx.tools.bwrap.as_deref().ok_or(BuildError::NoSandbox)
    }
}

#[derive(Clone)]
pub struct Run<'a> {
    pub root: &'a Path,
    pub build_dir: &'a Path,
    pub out_dir: &'a Path,
    /// (name under /sources, host file)
    pub sources: Vec<(String, PathBuf)>,
    pub script: &'a Path,
    /// The command, when not `sh -eu` on the script (a root without a shell, such as an image
    /// that only has its interpreter, runs that directly); the script is still at
    /// `/sources/.script`.
    pub argv: Option<&'a [String]>,
    pub env: &'a BTreeMap<String, String>,
    pub log: &'a Path,
    /// The size of the tmpfs at `/tmp` in bytes (`None`: the kernel's default, half the memory,
    /// where bubblewrap cannot set one; see [`tmpfs_size_supported`]).
    pub scratch: Option<u64>,
}

/// Whether this bubblewrap sets the size of a tmpfs (`--size`, bubblewrap 0.7 and later; Debian
/// 12 has 0.8). Asked once per process: the answer is the same for every step.
pub fn tmpfs_size_supported(bwrap: &Path) -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        Command::new(bwrap)
            .arg("--help")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--size"))
    })
}

/// Mount points the root must hold: bubblewrap cannot create them in a read-only root.
pub const MOUNT_POINTS: &[&str] = &["build", "out", "sources", "tmp", "proc", "dev"];

/// The bubblewrap command of `run`, without its standard streams.
fn command(bwrap: &Path, run: &Run<'_>) -> Command {
    let mut command = Command::new(bwrap);
    command
        .args(["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"])
        .args(["--uid", "0", "--gid", "0", "--hostname", "composer"])
        .arg("--ro-bind")
        .args([run.root, Path::new("/")])
        .args(["--proc", "/proc", "--dev", "/dev"]);
    // A tmpfs takes memory: a build that fills its /tmp gets ENOSPC at the limit, not the
    // machine's memory (the kernel's default size is half of it).
    if let Some(size) = run.scratch {
        command.args(["--size", &size.to_string()]);
    }
    command
        .args(["--tmpfs", "/tmp", "--tmpfs", "/sources"])
        .arg("--bind")
        .args([run.build_dir, Path::new("/build")])
        .arg("--bind")
        .args([run.out_dir, Path::new("/out")]);
    for (name, file) in &run.sources {
        command.arg("--ro-bind").arg(file).arg(format!("/sources/{name}"));
    }
    command.arg("--ro-bind").arg(run.script).arg("/sources/.script");
    command.args(["--remount-ro", "/sources", "--chdir", "/build", "--clearenv"]);
    for (key, value) in run.env {
        command.args(["--setenv", key, value]);
    }
    match run.argv {
        Some(argv) => command.arg("--").args(argv),
        None => command.args(["--", "/bin/sh", "-c", "umask 022 && exec /bin/sh -eu /sources/.script"]),
    };
    command
}

/// The command line that opens an interactive shell in `run`'s sandbox, as the step saw it (its
/// root, sources, build and output directories, environment): for `--debug-shell`.
pub fn shell_command(bwrap: &Path, run: &Run<'_>) -> Vec<std::ffi::OsString> {
    let argv = ["/bin/sh".to_string(), "-i".to_string()];
    let command = command(bwrap, &Run { argv: Some(&argv), ..run.clone() });
    // A shell for a person needs the terminal: the session of its own that keeps a build from
    // injecting input into the terminal (TIOCSTI) would take it away.
    let args = command.get_args().filter(|a| *a != "--new-session").map(|a| a.to_os_string());
    std::iter::once(command.get_program().to_os_string()).chain(args).collect()
}

/// Runs the step to its end, or until `interrupted` is set: then bubblewrap is killed (its
/// `--die-with-parent` takes the sandbox's processes with it) and the step is
/// [`BuildError::Interrupted`].
pub fn run(bwrap: &Path, run: &Run<'_>, interrupted: &AtomicBool) -> Result<std::process::ExitStatus, BuildError> {
    let mut command = command(bwrap, run);
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(run.log)
            .map_err(|e| BuildError::Io { action: "create", path: run.log.to_path_buf(), source: e })?
    };
    let err =
        log.try_clone().map_err(|e| BuildError::Io { action: "duplicate", path: run.log.to_path_buf(), source: e })?;
    command.stdin(Stdio::null()).stdout(log).stderr(err);
    let mut child =
        command.spawn().map_err(|e| BuildError::Io { action: "start", path: bwrap.to_path_buf(), source: e })?;
    let waiting = |e| BuildError::Io { action: "wait for", path: bwrap.to_path_buf(), source: e };
    loop {
        if interrupted.load(Ordering::Relaxed) {
            let _ = child.kill();
            child.wait().map_err(waiting)?;
            return Err(BuildError::Interrupted);
        }
        if let Some(status) = child.try_wait().map_err(waiting)? {
            // A terminal's Ctrl-C reaches bubblewrap too: a step it ended is no failed build.
            if !status.success() && interrupted.load(Ordering::Relaxed) {
                return Err(BuildError::Interrupted);
            }
            return Ok(status);
        }
        std::thread::sleep(INTERRUPT_POLL);
    }
}

/// How soon a running step notices that it is to stop; no build is short enough to feel it.
const INTERRUPT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The environment every build starts from; the toolchain's variables are added to it.
pub fn base_env(epoch: u64, jobs: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOME".into(), "/build".into()),
        ("TMPDIR".into(), "/tmp".into()),
        ("TZ".into(), "UTC".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("SOURCE_DATE_EPOCH".into(), epoch.to_string()),
        ("DESTDIR".into(), "/out".into()),
        ("PREFIX".into(), "/usr/local".into()),
        ("JOBS".into(), jobs.to_string()),
        ("SHELL".into(), "/bin/sh".into()),
        // Root in the namespace, yet only one id is mapped: tar must not try to chown.
        ("TAR_OPTIONS".into(), "--no-same-owner".into()),
    ])
}

/// Copies a failed step's log into a directory of its own, made with a random name and mode 0700
/// (so that no other user can predict, replace or read it), opened with `O_EXCL | O_NOFOLLOW`.
pub(crate) fn keep_log(temp_dir: &Path, label: &str, text: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("compose-failed-{label}-"))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(temp_dir)?
        .keep();
    let path = dir.join("build.log");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)?;
    file.write_all(text)?;
    Ok(path)
}

/// A step's working directory, removed when it is dropped: whichever way the step ends (done,
/// failed, an error on the way, interrupted), nothing of it stays unless the caller keeps it
/// (`--keep-failed`).
pub(crate) fn tempdir(temp_dir: &Path, label: &str) -> Result<Staged, BuildError> {
    // Private to the user who builds: nobody else may read or plant anything in it. Listed, so
    // that a signal that ends the process at once removes it too.
    Staged::work_dir(temp_dir, &format!("compose-build-{label}-")).map_err(|e| BuildError::Io {
        action: "create a build directory in",
        path: temp_dir.to_path_buf(),
        source: e,
    })
}
