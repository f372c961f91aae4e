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

/// Opens the lock file, read-only where the store's filesystem is: flock works on either.
fn open(path: &Path) -> Result<File, StoreError> {
    match OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path) {
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
    /// what to show the user, when the wait is more than a moment.
    pub fn acquire(path: &Path, mode: LockMode, waiting: fn(&str)) -> Result<StoreLock, StoreError> {
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
            waiting(&format!(
                "waiting for the store lock `{}` ({} access; another compose process holds it)",
                path.display(),
                if mode == LockMode::Shared { "shared" } else { "exclusive" }
            ));
            let blocking = match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            };
            blocking.map_err(|e| StoreError::io("lock", path, e))?;
        }
        Ok(StoreLock { _file: Some(file) })
    }
}
