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
    _file: File,
}

impl StoreLock {
    pub fn acquire(path: &Path, mode: LockMode) -> Result<StoreLock, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("open lock", path, e))?;
        let try_result = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        if try_result.is_err() {
            eprintln!(
                "waiting for the store lock `{}` ({} access; another compose process holds it)",
                path.display(),
                if mode == LockMode::Shared { "shared" } else { "exclusive" }
            );
            let blocking = match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            };
            blocking.map_err(|e| StoreError::io("lock", path, e))?;
        }
        Ok(StoreLock { _file: file })
    }
}
