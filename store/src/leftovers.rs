//! What killed processes of ours left: SIGKILL, the OOM killer or a power cut run no cleanup,
//! so a temp file or directory beside an output (`.NAME.tmp-PID-N`, see
//! [`crate::staging::staging_name`]) or a working directory in the temp directory
//! (`compose-import-PID-RANDOM`, `compose-build-LABEL-PID-RANDOM`, ...) would stay forever, up to a whole
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

/// The process id of `PID-N`: a decimal id, then a counter (decimal) or a random part (hex).
fn pid_and_counter(rest: &str) -> Option<i32> {
    let (pid, counter) = rest.split_once('-')?;
    let fits = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    let counter_fits = !counter.is_empty()
        && counter.len() <= 20
        && counter.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !fits || !counter_fits {
        return None;
    }
    pid.parse().ok().filter(|&pid: &i32| pid > 0)
}

/// The process id in `name` if it is a temp name of `final_name` (`.{final_name}.tmp-PID-N`).
pub fn staged_pid(name: &str, final_name: &str) -> Option<i32> {
    pid_and_counter(name.strip_prefix('.')?.strip_prefix(final_name)?.strip_prefix(".tmp-")?)
}

/// The process id in `name` if it is one of our working directories' names.
pub fn work_dir_pid(name: &str) -> Option<i32> {
    WORK_DIRS.iter().find_map(|(prefix, labelled)| {
        let rest = name.strip_prefix(prefix)?;
        if !labelled {
            return pid_and_counter(rest);
        }
        // LABEL-PID-N: the id is the second field from the end.
        let (head, counter) = rest.rsplit_once('-')?;
        let (label, pid) = head.rsplit_once('-')?;
        (!label.is_empty()).then_some(())?;
        pid_and_counter(&format!("{pid}-{counter}"))
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

/// Removes the working directories named `<prefix>PID-N` (one kind) dead processes left.
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

    #[test]
    fn names_are_ours_only_exactly() {
        assert_eq!(staged_pid(".out.bundle.tmp-123-0", "out.bundle"), Some(123));
        for not in [".out.bundle.tmp-123", ".out.bundle.tmp-123-0-x", ".out.bundle.tmp-x-0", "out.bundle.tmp-1-0"] {
            assert_eq!(staged_pid(not, "out.bundle"), None, "{not}");
        }
        assert_eq!(staged_pid(".other.tmp-1-0", "out.bundle"), None);
        assert_eq!(work_dir_pid("compose-import-77-3"), Some(77));
        assert_eq!(work_dir_pid("compose-build-app-amd64-77-3"), Some(77));
        assert_eq!(work_dir_pid("compose-uv-77-0a1b2c3d"), Some(77));
        for not in [
            "compose-import-77-3-kept",
            "compose-import-x-77-3",
            "compose-failed-app-77-3",
            "compose-build-77-3",
            "compose-uv-77-0A",
        ] {
            assert_eq!(work_dir_pid(not), None, "{not}");
        }
    }

    #[test]
    fn only_what_dead_processes_left_is_swept_and_no_link_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        fs::write(target.path().join("precious"), b"x").unwrap();
        let dead = dead_pid();
        let alive = std::process::id();
        let own = format!(".out.tmp-{alive}-0");
        fs::write(dir.path().join(format!(".out.tmp-{dead}-0")), b"left").unwrap();
        fs::create_dir(dir.path().join(format!(".out.tmp-{dead}-1"))).unwrap();
        fs::write(dir.path().join(format!(".out.tmp-{dead}-1/inner")), b"left").unwrap();
        fs::write(dir.path().join(&own), b"mine").unwrap();
        fs::write(dir.path().join(format!(".other.tmp-{dead}-0")), b"another output's").unwrap();
        fs::write(dir.path().join("out"), b"the output").unwrap();
        std::os::unix::fs::symlink(target.path(), dir.path().join(format!(".out.tmp-{dead}-2"))).unwrap();
        // A live process elsewhere holds its lock, whatever its id says here.
        let held = dir.path().join(format!(".out.tmp-{dead}-3"));
        fs::write(&held, b"held").unwrap();
        let lock = fs::File::open(&held).unwrap();
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();

        assert_eq!(sweep_beside(dir.path(), "out"), 0, "nothing younger than MIN_AGE is taken");
        assert_eq!(sweep(dir.path(), |n| staged_pid(n, "out"), Duration::ZERO, true), 2, "a dry run counts");
        assert_eq!(sweep(dir.path(), |n| staged_pid(n, "out"), Duration::ZERO, false), 2);
        let mut expected = vec![
            own,
            format!(".other.tmp-{dead}-0"),
            format!(".out.tmp-{dead}-2"),
            format!(".out.tmp-{dead}-3"),
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
        for name in [
            format!("compose-import-{dead}-0"),
            format!("compose-build-app-amd64-{dead}-4"),
            format!("compose-build-app-amd64-{dead}-5"),
            format!("compose-failed-app-{dead}-0"),
            format!("compose-import-{}-0", std::process::id()),
        ] {
            fs::create_dir(dir.path().join(&name)).unwrap();
            fs::write(dir.path().join(&name).join("blob"), b"x").unwrap();
        }
        fs::write(dir.path().join(format!("compose-build-app-amd64-{dead}-5")).join(KEPT_MARKER), b"").unwrap();
        assert_eq!(sweep(dir.path(), work_dir_pid, Duration::ZERO, false), 2);
        let mut expected = vec![
            format!("compose-build-app-amd64-{dead}-5"),
            format!("compose-failed-app-{dead}-0"),
            format!("compose-import-{}-0", std::process::id()),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }
}
