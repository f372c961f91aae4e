//! Reading objects back, verified while they stream.
//!
//! The store's disk is not trusted: a flipped bit, a truncated write or a hand edit must never
//! reach an image or the input of a step. So every read of an object goes through an
//! [`ObjectReader`], which hashes the bytes as the caller consumes them (BLAKE3 against the
//! object's name; SHA-256 and size too when the caller publishes the object under its OCI digest)
//! and turns the read that delivers the last byte into an error if anything disagrees. A consumer
//! therefore sees the error before it can finish, and whatever it was writing is discarded.
//!
//! A mismatch quarantines the object: it is deleted with every action record that refers to it
//! (as an output, or through a tree's contents), so that the step which made it runs again.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::Digest;

use crate::{BlobInfo, Corruption, Hash, Sha256, Store, StoreError};

/// What a reader checks when its last byte is read.
enum Expect {
    Blake3(Hash),
    Blob(Sha256),
}

/// A verifying reader over one object; see the module docs.
pub struct ObjectReader<'s> {
    store: &'s Store,
    file: fs::File,
    path: PathBuf,
    id: Hash,
    expect: Expect,
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    size: u64,
    read: u64,
    checked: bool,
}

impl<'s> ObjectReader<'s> {
    fn open(store: &'s Store, id: &Hash, expect: Expect, size: Option<u64>) -> Result<Self, StoreError> {
        let path = store.object_path(id);
        let file = fs::File::open(&path).map_err(|e| StoreError::io("open object", &path, e))?;
        let on_disk = file.metadata().map_err(|e| StoreError::io("stat object", &path, e))?.len();
        let mut reader = ObjectReader {
            store,
            file,
            path,
            id: *id,
            expect,
            blake3: blake3::Hasher::new(),
            sha256: sha2::Sha256::new(),
            size: size.unwrap_or(on_disk),
            read: 0,
            checked: false,
        };
        if on_disk != reader.size {
            let reason = Corruption::Size { on_disk, recorded: reader.size };
            return Err(reader.corrupt(reason));
        }
        if reader.size == 0 {
            reader.check().map_err(|e| reader.corrupt(e))?;
        }
        Ok(reader)
    }

    /// The object's size, as recorded (and, once read, as verified).
    pub fn size(&self) -> u64 {
        self.size
    }

    fn check(&mut self) -> Result<(), Corruption> {
        self.checked = true;
        match &self.expect {
            Expect::Blake3(id) => {
                let actual = Hash(*self.blake3.finalize().as_bytes());
                if actual != *id {
                    return Err(Corruption::Blake3(actual));
                }
            }
            Expect::Blob(sha) => {
                let actual = Sha256(self.sha256.clone().finalize().into());
                if actual != *sha {
                    return Err(Corruption::Sha256 { actual, expected: *sha });
                }
            }
        }
        Ok(())
    }

    fn corrupt(&self, reason: Corruption) -> StoreError {
        quarantine(self.store, &self.id);
        StoreError::Corrupt { what: format!("store object {}", self.path.display()), reason: Box::new(reason) }
    }

    /// Copies the object to `out` in large reads (few system calls and hash updates for a big
    /// layer); the error of a damaged object arrives before its last byte is written.
    pub fn copy_to(&mut self, out: &mut dyn io::Write) -> io::Result<u64> {
        copy_large(self, out)
    }

    /// Reads what is left and checks it, for callers that may stop before the end (an `ar`
    /// reader, say) but must not record anything derived from unverified bytes.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.finish_ref()
    }

    fn finish_ref(&mut self) -> Result<(), StoreError> {
        if !self.checked {
            io::copy(self, &mut io::sink())
                .map_err(|e| StoreError::carried(e).unwrap_or_else(|e| StoreError::io("read object", &self.path, e)))?;
        }
        Ok(())
    }
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.checked {
            // Past the recorded size: an object that grew is caught here, not silently cut.
            let probe = buf.len().min(1);
            let n = self.file.read(&mut buf[..probe])?;
            return match n {
                0 => Ok(0),
                _ => Err(io::Error::other(self.corrupt(Corruption::Longer))),
            };
        }
        let want = buf.len().min((self.size - self.read) as usize);
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            let reason = Corruption::Ends { read: self.read, size: self.size };
            return Err(io::Error::other(self.corrupt(reason)));
        }
        match self.expect {
            Expect::Blake3(_) => {
                self.blake3.update(&buf[..n]);
            }
            Expect::Blob(_) => self.sha256.update(&buf[..n]),
        }
        self.read += n as u64;
        if self.read == self.size {
            // The last byte is handed over only once all of them are known to be right.
            self.check().map_err(|reason| io::Error::other(self.corrupt(reason)))?;
        }
        Ok(n)
    }
}

/// `io::copy` with a 256 KiB buffer instead of 8 KiB: a big layer or a fast network does not
/// become many small reads, writes and hash updates.
pub fn copy_large(from: &mut dyn Read, to: &mut dyn io::Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Deletes a damaged object and every action record that refers to it, so that the step that
/// made it runs again. Best effort: a record that cannot be removed now is caught the next time
/// it is read (its output is missing).
pub(crate) fn quarantine(store: &Store, id: &Hash) {
    let _ = fs::remove_file(store.object_path(id));
    let Ok(actions) = crate::action::walk(store) else { return };
    use rayon::prelude::*;
    actions.par_iter().for_each(|(_, path)| {
        let Some(record) = fs::read(path).ok().and_then(|b| serde_json::from_slice::<crate::ActionRecord>(&b).ok())
        else {
            return;
        };
        if record.refers_to(store, id) {
            let _ = fs::remove_file(path);
        }
    });
}

impl Store {
    /// Opens an object for reading, verified against its BLAKE3 name as it streams.
    pub fn open_object(&self, id: &Hash) -> Result<ObjectReader<'_>, StoreError> {
        ObjectReader::open(self, id, Expect::Blake3(*id), None)
    }

    /// Opens an object whose size is recorded elsewhere (a tree entry): a different size on disk
    /// is an error before a byte is read.
    pub fn open_object_sized(&self, id: &Hash, size: u64) -> Result<ObjectReader<'_>, StoreError> {
        ObjectReader::open(self, id, Expect::Blake3(*id), Some(size))
    }

    /// Opens an object to publish it under its OCI digest: SHA-256 and size are checked.
    pub fn open_blob(&self, blob: &BlobInfo) -> Result<ObjectReader<'_>, StoreError> {
        ObjectReader::open(self, &blob.id, Expect::Blob(blob.sha256), Some(blob.size))
    }

    /// A file entry's content, verified while it streams: from its own object, or from the
    /// part of a pack that holds it (checked against the entry's BLAKE3; a pack that does not
    /// hold it is quarantined like any damaged object).
    pub fn open_file_entry<'a>(
        &'a self,
        content: &Hash,
        size: u64,
        packed: Option<&crate::Packed>,
    ) -> Result<FileReader<'a>, StoreError> {
        match packed {
            Some(packed) => Ok(FileReader::Packed(PackedReader::open(self, packed, content, size)?)),
            None => Ok(FileReader::Object(self.open_object_sized(content, size)?)),
        }
    }

    /// A file entry's whole content, verified; `None` for an entry that is not a file.
    pub fn read_file_entry(&self, kind: &crate::EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        let crate::EntryKind::File { content, size, packed } = kind else { return Ok(None) };
        match packed {
            Some(_) => {
                let mut out = Vec::with_capacity(*size as usize);
                let mut reader = self.open_file_entry(content, *size, packed.as_ref())?;
                reader.read_to_end(&mut out).map_err(|e| {
                    StoreError::carried(e)
                        .unwrap_or_else(|e| StoreError::io("read object", &self.object_path(content), e))
                })?;
                Ok(Some(out))
            }
            None => self.read(content).map(Some),
        }
    }

    /// Reads a whole object, verified; for small objects (trees, metadata) only.
    pub fn read(&self, id: &Hash) -> Result<Vec<u8>, StoreError> {
        let mut reader = self.open_object(id)?;
        let mut out = Vec::with_capacity(reader.size() as usize);
        reader.read_to_end(&mut out).map_err(|e| {
            StoreError::carried(e).unwrap_or_else(|e| StoreError::io("read object", &self.object_path(id), e))
        })?;
        Ok(out)
    }

    /// A plain file handle on an object that has been read through and checked first, for
    /// readers that must seek (a wheel is a zip). Costs one extra read of the object.
    pub fn open_verified_file(&self, id: &Hash) -> Result<fs::File, StoreError> {
        let mut reader = self.open_object(id)?;
        reader.finish_ref()?;
        let mut file = reader.file;
        io::Seek::rewind(&mut file).map_err(|e| StoreError::io("seek", &reader.path, e))?;
        Ok(file)
    }

    /// A plain file handle on an object, not verified here: only for an object that the caller
    /// checked with [`Store::verify_object`] in the same step (deflate data that many layer
    /// members copy from one wheel, each at its own offset).
    pub fn open_object_prechecked(&self, id: &Hash) -> Result<fs::File, StoreError> {
        let path = self.object_path(id);
        fs::File::open(&path).map_err(|e| StoreError::io("open object", &path, e))
    }

    /// Reads an object through once, checking it, for files handed to other programs by path
    /// (a source tarball mounted into a sandbox, a wheel copied into an index).
    pub fn verify_object(&self, id: &Hash) -> Result<(), StoreError> {
        self.open_object(id)?.finish()
    }
}

/// A file entry's content as [`Store::open_file_entry`] gives it.
pub enum FileReader<'a> {
    Object(ObjectReader<'a>),
    Packed(PackedReader<'a>),
}

impl Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            FileReader::Object(reader) => reader.read(buf),
            FileReader::Packed(reader) => reader.read(buf),
        }
    }
}

/// One file's bytes inside a pack, verified against the file's BLAKE3 as they stream: the last
/// byte is handed over only once all of them are known to be right.
pub struct PackedReader<'s> {
    store: &'s Store,
    file: io::Take<fs::File>,
    pack: Hash,
    content: Hash,
    blake3: blake3::Hasher,
    size: u64,
    read: u64,
}

impl<'s> PackedReader<'s> {
    fn open(store: &'s Store, packed: &crate::Packed, content: &Hash, size: u64) -> Result<Self, StoreError> {
        use std::io::Seek;
        let path = store.object_path(&packed.pack);
        let mut file = fs::File::open(&path).map_err(|e| StoreError::io("open object", &path, e))?;
        let on_disk = file.metadata().map_err(|e| StoreError::io("stat object", &path, e))?.len();
        if packed.offset.checked_add(size).is_none_or(|end| end > on_disk) {
            quarantine(store, &packed.pack);
            return Err(StoreError::Corrupt {
                what: format!("store object {}", path.display()),
                reason: Box::new(Corruption::PackTooShort { on_disk, offset: packed.offset, size }),
            });
        }
        file.seek(io::SeekFrom::Start(packed.offset)).map_err(|e| StoreError::io("seek in object", &path, e))?;
        let reader = PackedReader {
            store,
            file: file.take(size),
            pack: packed.pack,
            content: *content,
            blake3: blake3::Hasher::new(),
            size,
            read: 0,
        };
        if size == 0 {
            reader.check().map_err(|reason| reader.corrupt(reason))?;
        }
        Ok(reader)
    }

    fn check(&self) -> Result<(), Corruption> {
        let actual = Hash(*self.blake3.finalize().as_bytes());
        if actual != self.content {
            return Err(Corruption::PackedFile { content: self.content, actual });
        }
        Ok(())
    }

    fn corrupt(&self, reason: Corruption) -> StoreError {
        quarantine(self.store, &self.pack);
        let what = format!("store object {}", self.store.object_path(&self.pack).display());
        StoreError::Corrupt { what, reason: Box::new(reason) }
    }
}

impl Read for PackedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && self.read < self.size {
            let reason = Corruption::EndsInFile { read: self.read, size: self.size };
            return Err(io::Error::other(self.corrupt(reason)));
        }
        self.blake3.update(&buf[..n]);
        self.read += n as u64;
        if n > 0 && self.read == self.size {
            self.check().map_err(|reason| io::Error::other(self.corrupt(reason)))?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use crate::{ActionKey, ActionRecord, ObjectRef, RefKind, Store, StoreError};

    fn damage(store: &Store, id: &crate::Hash, edit: impl FnOnce(&mut Vec<u8>)) {
        let path = store.object_path(id);
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        #[expect(clippy::permissions_set_readonly_false, reason = "a test damages a read-only object on purpose")]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn a_flipped_byte_fails_the_read_that_would_finish_and_removes_what_refers_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(&vec![7u8; 300_000]).unwrap();
        let key = ActionKey::new("test", 1);
        let record = ActionRecord {
            inputs: Vec::new(),
            step: "test".into(),
            outputs: vec![ObjectRef { id: info.id, kind: RefKind::Blob }],
            data: serde_json::Value::Null,
        };
        store.action_put(&key, &record).unwrap();
        damage(&store, &info.id, |b| b[299_999] ^= 1);
        let mut out = Vec::new();
        let err = store.open_object(&info.id).unwrap().read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
        assert!(!store.contains(&info.id), "the damaged object is gone");
        assert!(store.action_get(&key).unwrap().is_none(), "and so is the record that pointed at it");
    }

    #[test]
    fn verify_finds_what_was_made_from_a_damaged_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content = store.put_content(&vec![1u8; 1000]).unwrap();
        let made = store.put_bytes(b"a layer made from it").unwrap();
        let key = ActionKey::new("layer", 1);
        let record = ActionRecord {
            inputs: vec![ObjectRef { id: content, kind: RefKind::Blob }],
            step: "layer".into(),
            outputs: vec![ObjectRef { id: made.id, kind: RefKind::Blob }],
            data: serde_json::Value::Null,
        };
        store.action_put(&key, &record).unwrap();
        damage(&store, &content, |b| b[10] ^= 1);
        let report = store.verify(true).unwrap();
        assert!(
            report.problems.iter().any(|p| p.problem.contains("made from damaged object")),
            "{:?}",
            report.problems
        );
        assert!(store.action_get(&key).unwrap().is_none(), "--repair removes the derived record");
    }

    #[test]
    fn a_truncated_blob_is_refused_before_a_byte_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"a layer of some length").unwrap();
        damage(&store, &info.id, |b| b.truncate(5));
        let Err(StoreError::Corrupt { reason, .. }) = store.open_blob(&info) else { panic!("must fail") };
        assert!(matches!(*reason, crate::Corruption::Size { on_disk: 5, recorded: 22 }), "{reason}");
    }

    #[test]
    fn a_good_object_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let info = store.put_bytes(b"fine").unwrap();
        assert_eq!(store.read(&info.id).unwrap(), b"fine");
        let mut out = Vec::new();
        store.open_blob(&info).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"fine");
        store.verify_object(&info.id).unwrap();
    }
}
