//! The composer store: a content-addressed store of immutable objects, directory trees and an
//! action cache, shared by every build on a machine and, later, between machines.
//!
//! This crate knows nothing about recipes, distributions or images. It offers:
//!
//! - [`Store::writer`]: stream bytes into the store; BLAKE3 (the object's name) and SHA-256 (its
//!   OCI digest) are computed in the same pass, and the object becomes visible only by an atomic
//!   rename once it is complete (and, if asked, verified against an expected SHA-256).
//! - [`Tree`]: a Merkle manifest of a directory tree (type, mode, owner, link target, content hash
//!   of every entry), itself stored as an object.
//! - [`ActionKey`] / [`Store::action_get`] / [`Store::action_put`]: the action cache, mapping the
//!   input hash of a build step to the objects it produced.
//! - [`StoreLock`]: builds hold the store shared; `gc` holds it exclusively.
//!
//! ```no_run
//! let store = composer_store::Store::open("/tmp/store".as_ref()).unwrap();
//! let info = store.put_bytes(b"hello").unwrap();
//! assert!(store.contains(&info.id));
//! ```
//!
//! Nothing in an object, a tree or an action key depends on the machine: no absolute paths, no
//! host names, no clocks. See `docs/store-format.md` for the on-disk format.

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod action;
mod checkout;
pub mod confined;
mod error;
mod gc;
mod hash;
pub mod held;
pub mod leftovers;
mod lock;
mod object;
mod read;
mod roots;
pub mod staging;
mod tree;
pub mod userfile;
mod verify;

pub use action::{ActionKey, ActionRecord, ObjectRef, RefKind};
pub use error::{Corruption, StoreError, causes, error_chain};
pub use gc::{GcOptions, GcReport, KeptRoot};
pub use hash::{Hash, NotASha256, Sha256, Sha256Reader};
pub use lock::{LockMode, StoreLock};
pub use object::{BlobInfo, ObjectWriter, temp_suffix};
pub use read::{ObjectReader, copy_large};
pub use roots::{FoundRoot, Root};

pub use read::FileReader;
pub use tree::{
    EntryKind, PACK_MAX, Packed, Tree, TreeEntry, TreeError, TreeProblem, check_path, escape_name, name_bytes,
};
pub use verify::{VerifyProblem, VerifyReport};

use std::fs;
use std::path::{Path, PathBuf};

/// The store format version. A change of layout bumps it; the bucket names carry it.
pub const FORMAT: &str = "composer-store-v1";

/// An open store. Holds the store lock (shared or exclusive) for as long as it lives.
pub struct Store {
    root: PathBuf,
    _lock: StoreLock,
    /// Told when a lock is long in coming (the library does not print).
    waiting: fn(&str),
}

/// Waiting for a lock without saying so.
pub fn wait_silently(_: &str) {}

impl Store {
    /// Opens (creating if needed) the store at `root` for building: a shared lock, so that other
    /// builds may run beside it and `gc` waits.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, LockMode::Shared)
    }

    /// Opens the store holding its lock in `mode`, creating it if it does not exist.
    pub fn open_with(root: &Path, mode: LockMode) -> Result<Store, StoreError> {
        Self::open_notifying(root, mode, wait_silently)
    }

    /// [`Store::open_with`], telling `waiting` when the store lock is long in coming.
    pub fn open_notifying(root: &Path, mode: LockMode, waiting: fn(&str)) -> Result<Store, StoreError> {
        let marker = root.join("FORMAT");
        if !marker.exists() {
            for dir in ["objects", "sha256", "actions", "tmp", "locks"] {
                let path = root.join(bucket(dir));
                fs::create_dir_all(&path).map_err(|e| StoreError::io("create", &path, e))?;
            }
            object::write_atomic(&marker, FORMAT.as_bytes())?;
        }
        Self::open_existing_notifying(root, mode, waiting)
    }

    /// Opens a store that must already exist (it has a `FORMAT` file): commands that only read
    /// or clean a store never turn a mistyped path into a new one. On a read-only filesystem the
    /// store opens too, for builds served wholly from it and for `verify`.
    pub fn open_existing(root: &Path, mode: LockMode) -> Result<Store, StoreError> {
        Self::open_existing_notifying(root, mode, wait_silently)
    }

    /// [`Store::open_existing`], telling `waiting` when the store lock is long in coming.
    pub fn open_existing_notifying(root: &Path, mode: LockMode, waiting: fn(&str)) -> Result<Store, StoreError> {
        let marker = root.join("FORMAT");
        let found = match fs::read_to_string(&marker) {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotAStore { path: root.to_path_buf() });
            }
            Err(e) => return Err(StoreError::io("read", &marker, e)),
        };
        if found.trim() != FORMAT {
            return Err(StoreError::Format { path: root.to_path_buf(), found: found.trim().to_string() });
        }
        let locks = root.join(bucket("locks"));
        if let Err(e) = fs::create_dir_all(&locks)
            && !locks.is_dir()
        {
            return Err(StoreError::io("create", &locks, e));
        }
        let store_lock = locks.join("store.lock");
        if mode == LockMode::Shared
            && let Some(exclusive) = StoreLock::try_exclusive(&store_lock)
        {
            // No other process uses the store this moment: what a killed build left is garbage.
            let store = Store { root: root.to_path_buf(), _lock: exclusive, waiting };
            gc::clean_temps(&store);
            let lock = store._lock.downgrade(&store_lock)?;
            return Ok(Store { root: store.root, _lock: lock, waiting });
        }
        let lock = StoreLock::acquire(&store_lock, mode, "the store", waiting)?;
        Ok(Store { root: root.to_path_buf(), _lock: lock, waiting })
    }

    /// An exclusive lock on `name` (an output path, say), held until the returned value drops.
    /// Its file lives in the store, never beside a path the user named.
    /// On a read-only store that has no such lock file yet, no lock is taken: nothing can be
    /// written into that store, so only outputs elsewhere race, as they would without composer.
    pub fn lock_named(&self, name: &str) -> Result<StoreLock, StoreError> {
        let file = format!("named-{}.lock", Hash::of(name.as_bytes()).to_hex());
        let what = format!("the lock on {name}");
        match StoreLock::acquire(&self.dir("locks").join(file), LockMode::Exclusive, &what, self.waiting) {
            Err(StoreError::Io { source, .. }) if source.raw_os_error() == Some(30 /* EROFS */) => {
                Ok(StoreLock::none())
            }
            other => other,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A machine-local note about files outside the store (which output blobs were checked, by
    /// their stamps), by name. Notes are never shared and never part of a result: a note that is
    /// missing or unreadable only costs the check it would have saved.
    pub fn local_note(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.note_path(name)).ok()
    }

    /// Replaces the note `name`. On a read-only store it does nothing and says so by `Err`.
    pub fn set_local_note(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        object::write_atomic(&self.note_path(name), data)
    }

    fn note_path(&self, name: &str) -> PathBuf {
        self.dir("notes").join(Hash::of(name.as_bytes()).to_hex())
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.root.join(bucket(name))
    }

    /// A file without a name in the store's temp directory (`O_TMPFILE`; elsewhere a temp file
    /// removed at once), for bytes a step holds only while it runs: it disappears with the
    /// handle, even when the process is killed.
    pub fn scratch_file(&self) -> Result<fs::File, StoreError> {
        let dir = self.dir("tmp");
        let flags = rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC;
        match rustix::fs::open(&dir, flags, rustix::fs::Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(fs::File::from(fd)),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {
                let path = object::temp_path(&self.root);
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| StoreError::io("create", &path, e))?;
                fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
                Ok(file)
            }
            Err(e) => Err(StoreError::io("create a scratch file in", &dir, e.into())),
        }
    }

    /// Where the object `id` lives (whether or not it exists).
    pub fn object_path(&self, id: &Hash) -> PathBuf {
        let hex = id.to_hex();
        self.dir("objects").join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.object_path(id).exists()
    }

    /// Stores `data` and records its SHA-256, returning both digests. Writes nothing when the
    /// store already holds it (so that a read-only store serves a build whose steps are cached).
    pub fn put_bytes(&self, data: &[u8]) -> Result<BlobInfo, StoreError> {
        // Both digests once, here; the bytes are in memory, so no streaming writer is needed.
        let info = BlobInfo { id: Hash::of(data), sha256: Sha256::of(data), size: data.len() as u64 };
        if !self.contains(&info.id) {
            object::write_object(&self.object_path(&info.id), data)?;
        }
        object::record_alias(self, &info)?;
        Ok(info)
    }

    /// Starts streaming a new object into the store.
    pub fn writer(&self) -> Result<ObjectWriter<'_>, StoreError> {
        ObjectWriter::new(self)
    }

    /// Finds a stored object by its SHA-256 (the OCI digest or a distribution's checksum).
    pub fn lookup_sha256(&self, sha: &Sha256) -> Result<Option<BlobInfo>, StoreError> {
        object::lookup_sha256(self, sha)
    }

    /// Stores a tree manifest; its object id names the tree. Trees never become OCI blobs, so
    /// they get no SHA-256 alias. A tree that fails [`Tree::validate`] is refused: no tree in
    /// the store can lead a checkout or a layer outside its root.
    pub fn put_tree(&self, tree: &Tree) -> Result<Hash, StoreError> {
        tree.validate().map_err(|e| StoreError::BadTree(Box::new(e)))?;
        self.put_content(&tree.to_bytes())
    }

    /// Reads a tree, verified against its name and checked again with [`Tree::validate`].
    pub fn get_tree(&self, id: &Hash) -> Result<Tree, StoreError> {
        let bytes = self.read(id)?;
        let tree = Tree::from_bytes(&bytes).map_err(|e| StoreError::Corrupt {
            what: format!("tree {id}"),
            reason: Box::new(Corruption::Unparsable(e.into())),
        })?;
        tree.validate().map_err(|e| StoreError::Corrupt { what: format!("tree {id}"), reason: Box::new(e.into()) })?;
        Ok(tree)
    }

    /// Looks up a step's result in the action cache. A hit refreshes the entry's age for `gc`.
    pub fn action_get(&self, key: &ActionKey) -> Result<Option<ActionRecord>, StoreError> {
        action::get(self, key)
    }

    /// Records a step's result. The referenced objects must already be in the store.
    pub fn action_put(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), StoreError> {
        action::put(self, key, record)
    }

    /// Checks every object against its name, every alias and action against its targets.
    /// Records a result another store made, known by its key's hash (a shared cache's signed
    /// claim names the key, not its inputs). The referenced objects must already be here.
    pub fn action_put_hash(&self, key: &Hash, record: &ActionRecord) -> Result<(), StoreError> {
        action::put_hash(self, key, record)
    }

    /// The records of one kind of step (e.g. every wheel the store holds), in no set order.
    pub fn action_records(&self, step: &str) -> Result<Vec<ActionRecord>, StoreError> {
        action::records_of(self, step)
    }

    pub fn verify(&self, repair: bool) -> Result<VerifyReport, StoreError> {
        verify::run(self, repair)
    }

    /// Removes what nothing refers to. Needs the store opened with [`LockMode::Exclusive`].
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport, StoreError> {
        gc::run(self, options)
    }

    /// Counts objects, bytes and action entries.
    pub fn info(&self) -> Result<StoreInfo, StoreError> {
        let mut info = StoreInfo::default();
        for (_, path) in object::walk_objects(self)? {
            info.objects += 1;
            info.bytes += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
        info.actions = action::walk(self)?.len() as u64;
        info.sha256_aliases = object::walk_aliases(self)?.len() as u64;
        Ok(info)
    }
}

#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct StoreInfo {
    pub objects: u64,
    pub bytes: u64,
    pub actions: u64,
    pub sha256_aliases: u64,
}

/// Bucket names carry the format version, so that a format change never misreads old data.
fn bucket(name: &str) -> String {
    format!("{name}-v1")
}

impl Store {
    /// Stores file content that never becomes an OCI blob: hashed with BLAKE3 only, and written
    /// only if not already present (the common case for a shared library seen before).
    pub fn put_content(&self, data: &[u8]) -> Result<Hash, StoreError> {
        let id = Hash::of(data);
        let dest = self.object_path(&id);
        if !dest.exists() {
            object::write_object(&dest, data)?;
        }
        Ok(id)
    }
}
