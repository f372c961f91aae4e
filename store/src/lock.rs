//! The store lock.
//!
//! Every `compose build` holds `locks-v1/store.lock` *shared* from start to end: many builds can
//! run on one store at once, because every write is an atomic rename of a complete object and
//! two builds writing the same object write the same bytes. `compose store gc` takes it
//! *exclusive*, so it never deletes an object that a running build has looked up but not yet
//! referenced from an action entry. The lock is an OS file lock (flock), so a killed process
//! releases it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

pub struct StoreLock {
    _file: Option<File>,
}

/// Opens the lock file, read-only where the store's filesystem is: flock works on either. A link
/// planted in its place is not followed (the store's disk is not trusted).
fn open(path: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    match OpenOptions::new().create(true).truncate(false).read(true).write(true).custom_flags(nofollow).open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.raw_os_error() == Some(30 /* EROFS */) || e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(path).map_err(|_| StoreError::io("open lock", path, e))
        }
        Err(e) => Err(StoreError::io("open lock", path, e)),
    }
}

impl StoreLock {
    /// The exclusive lock if no other process holds the store now; never waits.
    pub(crate) fn try_exclusive(path: &Path) -> Option<StoreLock> {
        let file = open(path).ok()?;
        file.try_lock().ok()?;
        Some(StoreLock { _file: Some(file) })
    }

    /// Turns a held exclusive lock into a shared one, without a moment unlocked.
    pub(crate) fn downgrade(self, path: &Path) -> Result<StoreLock, StoreError> {
        if let Some(file) = &self._file {
            file.lock_shared().map_err(|e| StoreError::io("lock", path, e))?;
        }
        Ok(self)
    }

    /// Holds nothing (see [`crate::Store::lock_named`]).
    pub(crate) fn none() -> StoreLock {
        StoreLock { _file: None }
    }

    /// Takes the lock, waiting for it if another process holds it; `waiting` is told once, with
    /// what to show the user (`what` is locked, and which processes hold it), when the wait is
    /// more than a moment.
    pub fn acquire(path: &Path, mode: LockMode, what: &str, waiting: fn(&str)) -> Result<StoreLock, StoreError> {
        let file = open(path)?;
        let try_lock = || match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        // Another build may hold it exclusively for the moment it takes to clean temp files:
        // not worth a message.
        let mut try_result = try_lock();
        for _ in 0..20 {
            if try_result.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            try_result = try_lock();
        }
        if try_result.is_err() {
            let access = if mode == LockMode::Shared { "shared" } else { "exclusive" };
            let holders = holders(&file);
            let held_by = match holders.is_empty() {
                true => "another process holds it".to_string(),
                false => format!("held by {}", holders.join(", ")),
            };
            waiting(&format!("waiting for {what} ({access} access): {held_by}"));
            let blocking = match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            };
            blocking.map_err(|e| StoreError::io("lock", path, e))?;
        }
        Ok(StoreLock { _file: Some(file) })
    }
}

/// The processes that hold a lock on `file`, as `process PID (COMMAND)`, from the kernel's table
/// of locks: the lock file itself says nothing, and a note written beside it could be stale.
/// Empty where the table cannot be read (no `/proc`).
fn holders(file: &File) -> Vec<String> {
    let Ok(stat) = rustix::fs::fstat(file) else { return Vec::new() };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else { return Vec::new() };
    let device =
        format!("{:02x}:{:02x}:{}", rustix::fs::major(stat.st_dev), rustix::fs::minor(stat.st_dev), stat.st_ino);
    let mut pids: Vec<u32> = lock_holders(&table, &device);
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter().map(|pid| format!("process {pid} ({})", command_of(pid))).collect()
}

/// The PIDs of `/proc/locks` lines that hold (not wait for: `->`) a lock on `device`
/// (`MAJOR:MINOR:INODE`, as the table spells it).
fn lock_holders(table: &str, device: &str) -> Vec<u32> {
    table
        .lines()
        .filter(|line| !line.contains("->"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`
            let (pid, on) = (fields.get(4)?, fields.get(5)?);
            (*on == device).then(|| pid.parse().ok()).flatten()
        })
        .collect()
}

/// What a process is, as its program's name and its first words (`compose store gc`): enough to
/// recognise it, never a value such as a path, a reference or credentials.
fn command_of(pid: u32) -> String {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return "gone".into() };
    command_words(&cmdline)
}

fn command_words(cmdline: &[u8]) -> String {
    let mut args = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).map(String::from_utf8_lossy);
    let program = args.next().map(|p| p.rsplit('/').next().unwrap_or_default().to_string()).unwrap_or_default();
    let mut words = vec![program];
    let mut after_secret_flag = false;
    for arg in args {
        let skip = std::mem::replace(&mut after_secret_flag, false);
        if let Some(flag) = arg.strip_prefix('-') {
            // A flag's value is the next argument unless the flag says `=`: a secret's flag has
            // it skipped whatever it looks like.
            after_secret_flag =
                !flag.contains('=') && ["cred", "key", "pass", "token", "auth"].iter().any(|s| flag.contains(s));
            continue;
        }
        // Words are lower-case letters and dashes; anything else (a path, a reference, a
        // number) is a value, and a value is never shown.
        let word = arg.len() <= 16 && arg.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !skip && word {
            words.push(arg.into_owned());
            if words.len() == 3 {
                break;
            }
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read_from_the_kernels_table() {
        let table = "1: FLOCK  ADVISORY  READ  4242 fd:01:1311 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 777 fd:01:1311 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 99 fd:01:1312 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 5 fd:01:1311 0 EOF\n";
        assert_eq!(lock_holders(table, "fd:01:1311"), vec![4242, 5]);
    }

    #[test]
    fn a_command_is_named_by_its_words_never_its_values() {
        assert_eq!(command_words(b"/usr/bin/compose\0store\0gc\0"), "compose store gc");
        assert_eq!(command_words(b"compose\0--json\0build\0recipes/app.toml\0"), "compose build");
        assert_eq!(command_words(b"compose\0push\0user:secret@host/repo\0"), "compose push");
        assert_eq!(command_words(b"compose\0--store\0/var/s\0build\0app.toml\0"), "compose build");
        assert_eq!(command_words(b"compose\0--creds\0lowercase\0build\0"), "compose build");
        assert_eq!(command_words(b"compose\0--signing-key\0secret\0store\0push\0x\0"), "compose store push");
    }

    #[test]
    fn a_waiting_process_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.lock");
        let held = StoreLock::acquire(&path, LockMode::Exclusive, "the store", |_| {}).unwrap();
        // flock locks belong to the open file: a second open in this process waits as another
        // process would, so a thread stands in for it.
        static SAID: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
        let waiter = std::thread::spawn(move || {
            StoreLock::acquire(&path, LockMode::Shared, "the store", |said| *SAID.lock().unwrap() = said.to_string())
                .map(drop)
        });
        while SAID.lock().unwrap().is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(held);
        waiter.join().unwrap().unwrap();
        let said = SAID.lock().unwrap().clone();
        let me = std::process::id();
        assert!(said.starts_with("waiting for the store (shared access): held by process "), "{said}");
        assert!(said.contains(&format!("process {me} (")), "{said}");
    }
}
