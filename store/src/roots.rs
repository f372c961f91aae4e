//! GC roots: the inputs (packages, wheels, sources, signed release files, by SHA-256) a lock
//! needs, recorded by every build of that lock and kept by `gc` while the lock was used within
//! the age limit, or for good once pinned (`compose store pin`), as Nix's GC roots keep store
//! paths. Without them a lock could not be built again after the mirror's next point release
//! dropped the versions it pins, and an air-gapped machine would lose its inputs.
//!
//! `roots-v1/<BLAKE3 of the root's name>` holds the root as JSON; its modification time says when
//! it was last used. Roots name files of this machine (a lock's path): they are never shared.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{Hash, Sha256, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// What the root stands for (a lock file's path).
    pub name: String,
    /// A digest of what the inputs were computed from (the lock files' bytes): unchanged, a
    /// build only marks the root used.
    pub source: String,
    pub inputs: Vec<Sha256>,
    #[serde(default)]
    pub pinned: bool,
}

/// A root as `gc` finds it.
#[derive(Debug, Clone)]
pub struct FoundRoot {
    pub root: Root,
    pub last_used: Option<SystemTime>,
}

fn path(store: &Store, name: &str) -> PathBuf {
    store.dir("roots").join(Hash::of(name.as_bytes()).to_hex())
}

impl Store {
    /// The root `name`, if there is one.
    pub fn root_of(&self, name: &str) -> Option<Root> {
        fs::read(path(self, name)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// Marks the root `name` used now; `false` if there is none to mark.
    pub fn touch_root(&self, name: &str) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        fs::File::options()
            .append(true)
            .custom_flags(nofollow)
            .open(path(self, name))
            .and_then(|f| f.set_modified(SystemTime::now()))
            .is_ok()
    }

    /// Records (or replaces) a root; used now.
    pub fn put_root(&self, root: &Root) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(root).expect("roots serialize");
        crate::object::write_atomic(&path(self, &root.name), &bytes)
    }

    /// Removes the root `name`; `false` if there was none.
    pub fn remove_root(&self, name: &str) -> Result<bool, StoreError> {
        let path = path(self, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("remove", &path, e)),
        }
    }

    /// Every readable root (an unreadable one keeps nothing, and gc removes it).
    pub fn roots(&self) -> Result<Vec<(PathBuf, Option<FoundRoot>)>, StoreError> {
        let dir = self.dir("roots");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let found = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Root>(&bytes).ok())
                .map(|root| FoundRoot { root, last_used: fs::metadata(&path).and_then(|m| m.modified()).ok() });
            out.push((path, found));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
