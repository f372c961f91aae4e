//! What killed processes of ours left: SIGKILL, the OOM killer or a power cut run no cleanup,
//! so a temp file or directory beside an output (`.NAME.tmp-PID-TOKEN`, see
//! [`crate::staging::staging_name`]) or a working directory in the temp directory
//! (`compose-import-PID-TOKEN`, `compose-build-LABEL-PID-TOKEN`, ...) would stay forever, up to a whole
//! unpacked bundle each.
//!
//! An entry is removed only when all of these hold: its name is exactly one of ours; it is a
//! regular file or a directory (a symbolic link is neither removed nor followed); it belongs to
//! the user running compose; no process has the id in its name (`kill(pid, 0)` answers `ESRCH`;
//! a reused id only keeps it longer); nobody holds the `flock` every live staged path holds (a
//! process in another PID namespace sharing the directory, whose id means nothing here); and it
//! was last changed more than [`MIN_AGE`] ago (the moment between making a path and locking it).
//! A directory the user asked to keep (`--keep-failed`) holds [`KEPT_MARKER`] and stays.
//!
//! Paths beside a user's output are swept only when compose writes that same output again
//! ([`sweep_beside`]); the temp directory by `compose store gc` ([`sweep_work_dirs`]).

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};

/// The file in a working directory the user asked to keep (`--keep-failed`): never swept.
pub const KEPT_MARKER: &str = ".compose-kept";

/// How long a leftover must have been left alone before it is taken.
pub const MIN_AGE: Duration = Duration::from_secs(120);

/// The working directories' name prefixes, and whether a label comes between prefix and id.
const WORK_DIRS: &[(&str, bool)] = &[
    ("compose-import-", false),
    ("compose-push-", false),
    ("compose-uv-", false),
    ("compose-load-", false),
    ("compose-build-", true),
];

/// The random part of every temp name of ours: 16 lowercase hex digits, from the system's
/// random source. With the process id it is what tells our leftovers from a user's files: a
/// date-like name (`compose-import-2025-01`) or one a user chose is never taken for one.
pub fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{random:016x}")
}

/// The process id of `PID-TOKEN`: a decimal id, then exactly a [`token`].
fn pid_and_token(rest: &str) -> Option<i32> {
    let (pid, token) = rest.split_once('-')?;
    let fits = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    let token_fits = token.len() == 16 && token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !fits || !token_fits {
        return None;
    }
    pid.parse().ok().filter(|&pid: &i32| pid > 0)
}

/// The process id in `name` if it is a temp name of `final_name` (`.{final_name}.tmp-PID-TOKEN`).
pub fn staged_pid(name: &str, final_name: &str) -> Option<i32> {
    pid_and_token(name.strip_prefix('.')?.strip_prefix(final_name)?.strip_prefix(".tmp-")?)
}

/// The process id in `name` if it is one of our working directories' names.
pub fn work_dir_pid(name: &str) -> Option<i32> {
    WORK_DIRS.iter().find_map(|(prefix, labelled)| {
        let rest = name.strip_prefix(prefix)?;
        if !labelled {
            return pid_and_token(rest);
        }
        // LABEL-PID-TOKEN: the id is the second field from the end.
        let (head, token) = rest.rsplit_once('-')?;
        let (label, pid) = head.rsplit_once('-')?;
        (!label.is_empty()).then_some(())?;
        pid_and_token(&format!("{pid}-{token}"))
    })
}

/// Removes what dead processes left beside `parent/final_name` under its temp names. Best
/// effort: returns how many it removed.
pub fn sweep_beside(parent: &Path, final_name: &str) -> u64 {
    sweep(parent, |name| staged_pid(name, final_name), MIN_AGE, false)
}

/// Removes (or with `dry_run`, counts) the working directories dead processes left in
/// `temp_dir`.
pub fn sweep_work_dirs(temp_dir: &Path, dry_run: bool) -> u64 {
    sweep(temp_dir, work_dir_pid, MIN_AGE, dry_run)
}

/// Removes the working directories named `<prefix>PID-TOKEN` (one kind) dead processes left.
pub fn sweep_work_dirs_of(temp_dir: &Path, prefix: &str) -> u64 {
    sweep(temp_dir, |name| name.starts_with(prefix).then(|| work_dir_pid(name)).flatten(), MIN_AGE, false)
}

fn sweep(dir: &Path, ours: impl Fn(&str) -> Option<i32>, min_age: Duration, dry_run: bool) -> u64 {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let (Ok(fd), Ok(entries)) = (rustix::fs::open(dir, flags, Mode::empty()), std::fs::read_dir(dir)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&ours) else { continue };
        let Some((kind, _lock)) = dead_leftover(&fd, &name, pid, min_age) else { continue };
        if dry_run {
            removed += 1;
            continue;
        }
        let gone = match kind {
            FileType::RegularFile => rustix::fs::unlinkat(&fd, &name, AtFlags::empty()).is_ok(),
            // remove_dir_all removes the links a directory holds, never what they point to.
            _ => std::fs::remove_dir_all(dir.join(&name)).is_ok(),
        };
        removed += u64::from(gone);
    }
    removed
}

/// The kind of `name` in `dir`, locked, if it is a leftover of the dead process `pid`.
fn dead_leftover(dir: &OwnedFd, name: &OsStr, pid: i32, min_age: Duration) -> Option<(FileType, OwnedFd)> {
    if pid == rustix::process::getpid().as_raw_nonzero().get() {
        return None;
    }
    let process = rustix::process::Pid::from_raw(pid)?;
    if rustix::process::test_kill_process(process) != Err(rustix::io::Errno::SRCH) {
        return None;
    }
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if !matches!(kind, FileType::RegularFile | FileType::Directory)
        || stat.st_uid != rustix::process::geteuid().as_raw()
    {
        return None;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    if now.saturating_sub(stat.st_mtime) < min_age.as_secs() as i64 {
        return None;
    }
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if kind == FileType::Directory {
        flags |= OFlags::DIRECTORY;
    }
    let fd = rustix::fs::openat(dir, name.as_bytes(), flags, Mode::empty()).ok()?;
    let opened = rustix::fs::fstat(&fd).ok()?;
    if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino) {
        return None;
    }
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    if kind == FileType::Directory && rustix::fs::statat(&fd, KEPT_MARKER, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return None;
    }
    Some((kind, fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The id of a process that has ended.
    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// A token per number, as [`token`] makes them.
    fn t(n: u32) -> String {
        format!("{n:016x}")
    }

    #[test]
    fn names_are_ours_only_exactly() {
        assert_eq!(staged_pid(&format!(".out.bundle.tmp-123-{}", t(0)), "out.bundle"), Some(123));
        for not in [".out.bundle.tmp-123", ".out.bundle.tmp-123-0", ".out.bundle.tmp-x-0", "out.bundle.tmp-1-0"] {
            assert_eq!(staged_pid(not, "out.bundle"), None, "{not}");
        }
        assert_eq!(staged_pid(&format!(".other.tmp-1-{}", t(0)), "out.bundle"), None);
        assert_eq!(work_dir_pid(&format!("compose-import-77-{}", t(3))), Some(77));
        assert_eq!(work_dir_pid(&format!("compose-build-app-amd64-77-{}", t(3))), Some(77));
        assert_eq!(token().len(), 16);
        assert_eq!(work_dir_pid(&format!("compose-uv-77-{}", token())), Some(77));
        // What a user may have named so: dates, short or capital hex, a suffix.
        for not in [
            "compose-import-2025-01".to_string(),
            "compose-build-notes-2023-10".into(),
            "compose-uv-1999-cafe".into(),
            format!("compose-import-77-{}-kept", t(3)),
            format!("compose-import-x-77-{}", t(3)),
            format!("compose-failed-app-77-{}", t(3)),
            format!("compose-build-77-{}", t(3)),
            "compose-uv-77-0A1B2C3D4E5F6071".into(),
        ] {
            assert_eq!(work_dir_pid(&not), None, "{not}");
        }
        assert_eq!(staged_pid(".a.tar.tmp-2025-01", "a.tar"), None);
    }

    #[test]
    fn only_what_dead_processes_left_is_swept_and_no_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        fs::write(target.path().join("precious"), b"x").unwrap();
        let dead = dead_pid();
        let alive = std::process::id();
        let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
        let own = format!(".out.tmp-{alive}-{t0}");
        fs::write(dir.path().join(format!(".out.tmp-{dead}-{t0}")), b"left").unwrap();
        fs::create_dir(dir.path().join(format!(".out.tmp-{dead}-{t1}"))).unwrap();
        fs::write(dir.path().join(format!(".out.tmp-{dead}-{t1}/inner")), b"left").unwrap();
        fs::write(dir.path().join(&own), b"mine").unwrap();
        fs::write(dir.path().join(format!(".other.tmp-{dead}-{t0}")), b"another output's").unwrap();
        fs::write(dir.path().join("out"), b"the output").unwrap();
        std::os::unix::fs::symlink(target.path(), dir.path().join(format!(".out.tmp-{dead}-{t2}"))).unwrap();
        // A live process elsewhere holds its lock, whatever its id says here.
        let held = dir.path().join(format!(".out.tmp-{dead}-{t3}"));
        fs::write(&held, b"held").unwrap();
        let lock = fs::File::open(&held).unwrap();
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();

        assert_eq!(sweep_beside(dir.path(), "out"), 0, "nothing younger than MIN_AGE is taken");
        assert_eq!(sweep(dir.path(), |n| staged_pid(n, "out"), Duration::ZERO, true), 2, "a dry run counts");
        assert_eq!(sweep(dir.path(), |n| staged_pid(n, "out"), Duration::ZERO, false), 2);
        let mut expected = vec![
            own,
            format!(".other.tmp-{dead}-{t0}"),
            format!(".out.tmp-{dead}-{t2}"),
            format!(".out.tmp-{dead}-{t3}"),
            "out".to_string(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
        assert_eq!(names(target.path()), ["precious"], "the link was not followed");
        drop(lock);
        assert_eq!(sweep(dir.path(), |n| staged_pid(n, "out"), Duration::ZERO, false), 1, "unlocked, it goes");
    }

    #[test]
    fn dead_working_directories_are_swept_and_kept_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let (t0, t4, t5) = (t(0), t(4), t(5));
        for name in [
            format!("compose-import-{dead}-{t0}"),
            format!("compose-build-app-amd64-{dead}-{t4}"),
            format!("compose-build-app-amd64-{dead}-{t5}"),
            format!("compose-failed-app-{dead}-{t0}"),
            format!("compose-import-{}-{t0}", std::process::id()),
        ] {
            fs::create_dir(dir.path().join(&name)).unwrap();
            fs::write(dir.path().join(&name).join("blob"), b"x").unwrap();
        }
        fs::write(dir.path().join(format!("compose-build-app-amd64-{dead}-{t5}")).join(KEPT_MARKER), b"").unwrap();
        assert_eq!(sweep(dir.path(), work_dir_pid, Duration::ZERO, false), 2);
        let mut expected = vec![
            format!("compose-build-app-amd64-{dead}-{t5}"),
            format!("compose-failed-app-{dead}-{t0}"),
            format!("compose-import-{}-{t0}", std::process::id()),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }
}
