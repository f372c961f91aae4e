//! Immutable objects: `objects-v1/<first two hex>/<blake3 hex>`, with a SHA-256 alias in
//! `sha256-v1/<first two hex>/<sha256 hex>` holding `<blake3 hex> <size>`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;

use crate::{Corruption, Hash, Sha256, Store, StoreError};

/// Both names of a stored object and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobInfo {
    pub id: Hash,
    pub sha256: Sha256,
    pub size: u64,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A suffix for a temporary name that no other call makes, in this process (its id) or in any
/// other thread of it (a counter): two steps running at once never share a temp file.
pub fn temp_suffix() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A temp path unique to this process and call, in the store's `tmp` bucket (same filesystem as
/// the objects, so the final rename is atomic).
pub(crate) fn temp_path(root: &Path) -> PathBuf {
    root.join(crate::bucket("tmp")).join(temp_suffix())
}

/// Writes `data` to `dest` through a temp file beside it and a rename. The temp file lives in
/// `dest`'s own shard directory because a rename within one directory locks only that directory,
/// while a rename across directories takes the filesystem-wide rename lock: with every unpacking
/// thread renaming out of one `tmp` directory, that lock and the `tmp` directory's own lock were
/// a tenth of a cold build's CPU time. The dot name keeps it out of every walk of the buckets.
pub(crate) fn write_atomic(dest: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_atomic_as(dest, data, None)
}

/// Writes an object's bytes as [`write_atomic`] does, with the objects' one mode.
pub(crate) fn write_object(dest: &Path, data: &[u8]) -> Result<(), StoreError> {
    write_atomic_as(dest, data, Some(OBJECT_MODE))
}

/// Creates `path` for writing, new: whatever is already there (a link planted under a name a
/// run will use, which would make it write through the link as root) is never opened, only
/// removed (unlinked, not followed) before the file is made again.
pub(crate) fn create_new_file(path: &Path) -> io::Result<fs::File> {
    let open = || fs::OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

fn write_atomic_as(dest: &Path, data: &[u8], mode: Option<u32>) -> Result<(), StoreError> {
    let dir = dest.parent().expect("store paths have a parent directory");
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", temp_suffix()));
    let write = || create_new_file(&tmp).and_then(|mut file| io::Write::write_all(&mut file, data));
    match write() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
            write().map_err(|e| StoreError::io("write", &tmp, e))?;
        }
        other => other.map_err(|e| StoreError::io("write", &tmp, e))?,
    }
    if let Some(mode) = mode {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(|e| StoreError::io("chmod", &tmp, e))?;
    }
    fs::rename(&tmp, dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        StoreError::io("rename into", dest, e)
    })
}

/// How the name of an in-flight write inside a bucket's shard directory starts. Object, alias and
/// action names are hex, so they never start with a dot.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Renames, creating the destination's shard directory only when it is missing: the common case
/// costs one syscall, which matters for the tens of thousands of files a suite unpacks into.
pub(crate) fn rename_into(tmp: &Path, dest: &Path) -> Result<(), StoreError> {
    match fs::rename(tmp, dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| StoreError::io("create", parent, e))?;
            }
            fs::rename(tmp, dest).map_err(|e| StoreError::io("rename into", dest, e))
        }
        other => other.map_err(|e| StoreError::io("rename into", dest, e)),
    }
}

/// Streams bytes into a temp file while hashing them with BLAKE3 and SHA-256.
pub struct ObjectWriter<'s> {
    store: &'s Store,
    file: io::BufWriter<fs::File>,
    temp: PathBuf,
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    size: u64,
}

impl<'s> ObjectWriter<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Self, StoreError> {
        let temp = temp_path(store.root());
        let file = create_new_file(&temp).map_err(|e| StoreError::io("create", &temp, e))?;
        Ok(ObjectWriter {
            store,
            file: io::BufWriter::with_capacity(256 * 1024, file),
            temp,
            blake3: blake3::Hasher::new(),
            sha256: sha2::Sha256::new(),
            size: 0,
        })
    }

    pub fn temp_path(&self) -> PathBuf {
        self.temp.clone()
    }

    /// Completes the object: it becomes visible under its BLAKE3 name.
    pub fn finish(self) -> Result<BlobInfo, StoreError> {
        self.finish_checked(None, None)
    }

    /// Completes the object only if its bytes hash to `id` (and, when given, have this SHA-256
    /// and size, as a signed claim names them); otherwise nothing enters the store. For objects
    /// from another machine, which must not leave even a validly named stray object behind.
    pub fn finish_expecting(
        self,
        id: &Hash,
        sha256: Option<&Sha256>,
        size: Option<u64>,
        what: &str,
    ) -> Result<BlobInfo, StoreError> {
        let actual = Hash(*self.blake3.finalize().as_bytes());
        if actual != *id {
            let _ = fs::remove_file(&self.temp);
            return Err(StoreError::Corrupt {
                what: what.to_string(),
                reason: Box::new(Corruption::Blake3Mismatch { expected: *id, actual }),
            });
        }
        let sha256 = sha256.copied().unwrap_or_else(|| Sha256(self.sha256.clone().finalize().into()));
        self.finish_checked(Some((&sha256, what)), size)
    }

    /// Completes the object only if it has the expected SHA-256 (and size); otherwise the temp
    /// file is removed and nothing enters the store.
    pub fn finish_checked(
        mut self,
        expected: Option<(&Sha256, &str)>,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo, StoreError> {
        self.file.flush().map_err(|e| StoreError::io("write", &self.temp, e))?;
        let info = BlobInfo {
            id: Hash(*self.blake3.finalize().as_bytes()),
            sha256: Sha256(self.sha256.clone().finalize().into()),
            size: self.size,
        };
        let temp = self.temp.clone();
        let discard = |err: StoreError| {
            let _ = fs::remove_file(&temp);
            Err(err)
        };
        if let Some((want, what)) = expected {
            if let Some(size) = expected_size
                && size != info.size
            {
                return discard(StoreError::SizeMismatch { what: what.to_string(), expected: size, actual: info.size });
            }
            if *want != info.sha256 {
                return discard(StoreError::Sha256Mismatch {
                    what: what.to_string(),
                    expected: want.to_hex(),
                    actual: info.sha256.to_hex(),
                });
            }
        }
        let dest = self.store.object_path(&info.id);
        if dest.exists() {
            let _ = fs::remove_file(&temp);
        } else {
            fs::set_permissions(&temp, fs::Permissions::from_mode(OBJECT_MODE))
                .map_err(|e| StoreError::io("chmod", &temp, e))?;
            rename_into(&temp, &dest)?;
        }
        record_alias(self.store, &info)?;
        Ok(info)
    }
}

impl Write for ObjectWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.blake3.update(&buf[..n]);
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        // An abandoned writer leaves nothing behind; after `finish` the temp is already gone.
        let _ = fs::remove_file(&self.temp);
    }
}

/// Every object's mode, whatever the umask of the process that wrote it: a build root is a
/// checkout of hard links to objects, so an object's mode is what a build sees (and `cp` copies
/// into its output); a store written under umask 077 must not give another image.
pub(crate) const OBJECT_MODE: u32 = 0o444;

fn alias_path(store: &Store, sha: &Sha256) -> PathBuf {
    let hex = sha.to_hex();
    store.dir("sha256").join(&hex[..2]).join(hex)
}

pub(crate) fn record_alias(store: &Store, info: &BlobInfo) -> Result<(), StoreError> {
    let path = alias_path(store, &info.sha256);
    if path.exists() {
        return Ok(());
    }
    let line = format!("{} {}\n", info.id.to_hex(), info.size);
    write_atomic(&path, line.as_bytes())
}

pub(crate) fn parse_alias(text: &str) -> Option<(Hash, u64)> {
    let mut parts = text.split_whitespace();
    let id = parts.next()?.parse().ok()?;
    let size = parts.next()?.parse().ok()?;
    Some((id, size))
}

pub(crate) fn lookup_sha256(store: &Store, sha: &Sha256) -> Result<Option<BlobInfo>, StoreError> {
    let path = alias_path(store, sha);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", &path, e)),
    };
    let Some((id, size)) = parse_alias(&text) else {
        return Err(StoreError::Corrupt {
            what: format!("alias {}", path.display()),
            reason: Box::new(Corruption::Alias),
        });
    };
    if !store.contains(&id) {
        return Ok(None);
    }
    Ok(Some(BlobInfo { id, sha256: *sha, size }))
}

/// The entries of a bucket's shard directories: its stored names, or with `temps` only the
/// in-flight writes (which a killed build can leave behind).
fn walk_bucket(dir: &Path, temps: bool) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let shards = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for shard in shards {
        let shard = shard.map_err(|e| StoreError::io("list", dir, e))?.path();
        let entries = fs::read_dir(&shard).map_err(|e| StoreError::io("list", &shard, e))?;
        for entry in entries {
            let path = entry.map_err(|e| StoreError::io("list", &shard, e))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) == temps {
                out.push((name, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn walk_objects(store: &Store) -> Result<Vec<(String, PathBuf)>, StoreError> {
    walk_bucket(&store.dir("objects"), false)
}

pub(crate) fn walk_aliases(store: &Store) -> Result<Vec<(String, PathBuf)>, StoreError> {
    walk_bucket(&store.dir("sha256"), false)
}

pub(crate) fn walk_bucket_pub(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    walk_bucket(dir, false)
}

/// In-flight writes in the shard directories of every bucket; only `gc`, under the exclusive
/// lock, may remove them.
pub(crate) fn walk_temps(store: &Store) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for bucket in ["objects", "sha256", "actions"] {
        out.extend(walk_bucket(&store.dir(bucket), true)?.into_iter().map(|(_, path)| path));
    }
    // Notes are one flat directory.
    if let Ok(entries) = fs::read_dir(store.dir("notes")) {
        out.extend(
            entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)).map(|e| e.path()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::{ActionKey, ActionRecord, GcOptions, LockMode, ObjectRef, RefKind, Sha256, Store};

    /// A run writes its temp files under names anyone with the store's disk can guess; a link
    /// planted at one is removed, never written through (as root, it would have truncated any
    /// file on the machine).
    #[test]
    fn a_temp_file_is_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, b"keep me").unwrap();
        let temp = dir.path().join(".tmp-1-1");
        std::os::unix::fs::symlink(&precious, &temp).unwrap();
        let mut file = super::create_new_file(&temp).unwrap();
        file.write_all(b"store bytes").unwrap();
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&temp).unwrap().file_type().is_file());
        assert_eq!(std::fs::read(&temp).unwrap(), b"store bytes");
    }

    fn files_in(dir: &std::path::Path) -> usize {
        walkdir(dir)
    }

    fn walkdir(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walkdir(&e.path()) } else { 1 }).sum())
            .unwrap_or(0)
    }

    #[test]
    fn a_mismatched_download_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = store.writer().unwrap();
        writer.write_all(b"not what was promised").unwrap();
        let expected = Sha256::of(b"the promised bytes");
        let err = writer.finish_checked(Some((&expected, "x.deb")), None).unwrap_err();
        assert!(err.to_string().contains("x.deb"), "{err}");
        assert_eq!(files_in(&dir.path().join("objects-v1")), 0);
        assert_eq!(files_in(&dir.path().join("tmp-v1")), 0);
        assert!(store.lookup_sha256(&Sha256::of(b"not what was promised")).unwrap().is_none());
    }

    #[test]
    fn every_object_has_the_one_mode_whichever_way_it_was_written() {
        // A checkout links to objects, so their mode is what a build sees and copies.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = store.writer().unwrap();
        writer.write_all(b"streamed").unwrap();
        let streamed = writer.finish().unwrap().id;
        let ids = [store.put_content(b"content").unwrap(), store.put_bytes(b"bytes").unwrap().id, streamed];
        for id in ids {
            let mode = std::fs::metadata(store.object_path(&id)).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, super::OBJECT_MODE, "{id}");
        }
    }

    #[test]
    fn objects_are_found_by_both_digests_and_dropped_writers_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"hello").unwrap();
        assert_eq!(info.sha256, Sha256::of(b"hello"));
        assert_eq!(store.lookup_sha256(&info.sha256).unwrap(), Some(info));
        assert_eq!(store.read(&info.id).unwrap(), b"hello");
        let mut abandoned = store.writer().unwrap();
        abandoned.write_all(b"partial").unwrap();
        drop(abandoned);
        assert_eq!(files_in(&dir.path().join("tmp-v1")), 0);
    }

    #[test]
    fn gc_keeps_what_actions_reach_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, dropped, key) = {
            let store = Store::open(dir.path()).unwrap();
            let kept = store.put_bytes(b"kept").unwrap();
            let dropped = store.put_bytes(b"dropped").unwrap();
            let key = ActionKey::new("test", 1).with("input", b"x");
            let record = ActionRecord {
                inputs: Vec::new(),
                step: "test".into(),
                outputs: vec![ObjectRef { id: kept.id, kind: RefKind::Blob }],
                data: serde_json::Value::Null,
            };
            store.action_put(&key, &record).unwrap();
            (kept, dropped, key)
        };
        let store = Store::open_with(dir.path(), LockMode::Exclusive).unwrap();
        let report = store.gc(&GcOptions { max_age: std::time::Duration::from_secs(3600), dry_run: false }).unwrap();
        assert_eq!(report.objects_removed, 1);
        assert!(store.contains(&kept.id) && !store.contains(&dropped.id));
        assert!(store.action_get(&key).unwrap().is_some());
        assert!(store.verify(false).unwrap().problems.is_empty());
    }

    #[test]
    fn a_write_killed_before_its_rename_is_invisible_and_gc_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let id = store.put_content(b"whole").unwrap();
            // What a build killed between write and rename leaves: a temp beside the objects.
            let shard = store.object_path(&id).parent().unwrap().to_path_buf();
            std::fs::write(shard.join(format!("{}999-1", super::TEMP_PREFIX)), b"half").unwrap();
            assert_eq!(store.info().unwrap().objects, 1);
            assert!(store.verify(false).unwrap().problems.is_empty(), "a temp is not a corrupt object");
        }
        let store = Store::open_with(dir.path(), LockMode::Exclusive).unwrap();
        let report = store.gc(&GcOptions { max_age: std::time::Duration::from_secs(3600), dry_run: false }).unwrap();
        assert_eq!(report.temp_files, 1);
        assert_eq!(files_in(&dir.path().join("objects-v1")), 0, "no action reaches the object, and the temp is gone");
    }

    #[test]
    fn action_keys_separate_their_fields() {
        let a = ActionKey::new("s", 1).with("a", b"bc").hash();
        let b = ActionKey::new("s", 1).with("ab", b"c").hash();
        assert_ne!(a, b);
        assert_ne!(ActionKey::new("s", 1).hash(), ActionKey::new("s", 2).hash());
    }
}
