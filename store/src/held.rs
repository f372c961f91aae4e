//! Where the file contents of an unpacked archive go: into the store, as objects and packs that
//! trees name ([`IntoStore`]), or only held for as long as one step needs them ([`Held`]).
//!
//! A layer made straight from a package needs every byte of it once, in tree order, and nothing
//! of it afterwards: writing each file into the store and reading it back cost a cold Debian
//! build a third of its system time. Held contents are in memory, or, for the largest files, in
//! an unnamed scratch file inside the store's temp directory that disappears with the step.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use crate::{EntryKind, Hash, Store, StoreError};

/// Where an unpacker puts a file's content.
pub trait ContentSink {
    /// Takes a file too large for a pack, `size` bytes read from `reader`, and returns its
    /// BLAKE3. An error reading `reader` comes back as [`SinkError::Read`]: the archive's fault.
    fn file(&mut self, reader: &mut dyn Read, size: u64) -> Result<Hash, SinkError>;

    /// Takes an archive's small files, one after another (a pack), and returns the pack's BLAKE3.
    fn pack(&mut self, pack: Vec<u8>) -> Result<Hash, SinkError>;
}

/// A sink's failure: reading the archive, or keeping what was read.
#[derive(Debug)]
pub enum SinkError {
    Read(io::Error),
    Store(StoreError),
}

impl From<StoreError> for SinkError {
    fn from(e: StoreError) -> Self {
        SinkError::Store(e)
    }
}

/// Into the store: one object per large file, one for the pack (what trees name and build-root
/// checkouts link from).
pub struct IntoStore<'s>(pub &'s Store);

impl ContentSink for IntoStore<'_> {
    fn file(&mut self, reader: &mut dyn Read, size: u64) -> Result<Hash, SinkError> {
        let store = self.0;
        if size <= 8 * 1024 * 1024 {
            let data = read_exact_size(reader, size)?;
            return Ok(store.put_content(&data)?);
        }
        let mut writer = store.writer()?;
        copy_counted(reader, &mut writer, size)
            .map_err(|e| e.into_sink(|e| StoreError::io("write", &writer.temp_path(), e)))?;
        Ok(writer.finish()?.id)
    }

    fn pack(&mut self, pack: Vec<u8>) -> Result<Hash, SinkError> {
        Ok(self.0.put_content(&pack)?)
    }
}

/// Files from this size on are held in a scratch file rather than in memory, and so is whatever
/// comes once a step holds this much in memory: a step holding a large package (a compiler, with
/// files of 30 MB and more; vim's runtime, 36 MB of small files) stays within a modest peak.
const SCRATCH_FROM: u64 = 16 * 1024 * 1024;
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

/// Held for one step, never stored. A file entry that is not held is read from the store (a
/// package some earlier step unpacked there).
pub struct Held<'s> {
    store: &'s Store,
    /// Single files and packs alike, by BLAKE3.
    held: HashMap<Hash, HeldBytes>,
    in_memory: u64,
}

enum HeldBytes {
    Memory(Vec<u8>),
    Scratch(File),
}

impl<'s> Held<'s> {
    pub fn new(store: &'s Store) -> Self {
        Held { store, held: HashMap::new(), in_memory: 0 }
    }

    /// Where a file entry's bytes are held: which bytes, from what offset.
    fn locate(&self, kind: &EntryKind) -> Option<(&HeldBytes, u64, u64)> {
        match kind {
            EntryKind::File { size, packed: Some(packed), .. } => {
                Some((self.held.get(&packed.pack)?, packed.offset, *size))
            }
            EntryKind::File { content, size, .. } => Some((self.held.get(content)?, 0, *size)),
            _ => None,
        }
    }

    /// The bytes of a file held here, by its entry; `None` when it is not held.
    pub fn read(&self, kind: &EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((bytes, offset, size)) = self.locate(kind) else { return Ok(None) };
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        bytes
            .reader(offset, size)
            .and_then(|mut reader| reader.read_to_end(&mut out))
            .map_err(|e| StoreError::io("read a scratch file in", &self.store.dir("tmp"), e))?;
        Ok(Some(out))
    }

    fn keep(&mut self, id: Hash, data: Vec<u8>) -> Result<(), SinkError> {
        if self.held.contains_key(&id) {
            return Ok(());
        }
        let size = data.len() as u64;
        let bytes = if size < SCRATCH_FROM && self.in_memory + size <= MEMORY_BUDGET {
            self.in_memory += size;
            HeldBytes::Memory(data)
        } else {
            let mut file = self.store.scratch_file()?;
            file.write_all(&data).map_err(|e| SinkError::Store(self.scratch_error(e)))?;
            HeldBytes::Scratch(file)
        };
        self.held.insert(id, bytes);
        Ok(())
    }

    fn scratch_error(&self, e: io::Error) -> StoreError {
        StoreError::io("write a scratch file in", &self.store.dir("tmp"), e)
    }
}

impl HeldBytes {
    fn reader(&self, offset: u64, size: u64) -> io::Result<Box<dyn Read + '_>> {
        match self {
            HeldBytes::Memory(data) => {
                let range = usize::try_from(offset)
                    .ok()
                    .and_then(|start| Some(start..start.checked_add(usize::try_from(size).ok()?)?))
                    .and_then(|range| data.get(range));
                match range {
                    Some(bytes) => Ok(Box::new(bytes)),
                    None => Err(io::Error::other("a held file lies outside what was held")),
                }
            }
            HeldBytes::Scratch(file) => Ok(Box::new(ScratchReader { file, at: offset, end: offset + size })),
        }
    }
}

impl ContentSink for Held<'_> {
    fn file(&mut self, reader: &mut dyn Read, size: u64) -> Result<Hash, SinkError> {
        if size < SCRATCH_FROM && self.in_memory + size <= MEMORY_BUDGET {
            let data = read_exact_size(reader, size)?;
            let id = Hash::of(&data);
            self.keep(id, data)?;
            return Ok(id);
        }
        let scratch = self.store.scratch_file()?;
        let mut hashing = HashingFile { file: scratch, blake3: blake3::Hasher::new() };
        copy_counted(reader, &mut hashing, size).map_err(|e| e.into_sink(|e| self.scratch_error(e)))?;
        let id = Hash(hashing.blake3.finalize().into());
        self.held.entry(id).or_insert(HeldBytes::Scratch(hashing.file));
        Ok(id)
    }

    fn pack(&mut self, pack: Vec<u8>) -> Result<Hash, SinkError> {
        let id = Hash::of(&pack);
        self.keep(id, pack)?;
        Ok(id)
    }
}

/// Where a layer writer reads file contents from.
pub trait FileContents {
    /// The content of a file entry, checked against it as it streams where it comes from disk.
    fn open_file<'a>(&'a self, kind: &EntryKind) -> io::Result<Box<dyn Read + 'a>>;
}

impl FileContents for Store {
    fn open_file<'a>(&'a self, kind: &EntryKind) -> io::Result<Box<dyn Read + 'a>> {
        let EntryKind::File { content, size, packed } = kind else {
            return Err(io::Error::other("not a file entry"));
        };
        let reader = self.open_file_entry(content, *size, packed.as_ref()).map_err(io::Error::other)?;
        Ok(Box::new(io::BufReader::with_capacity(128 * 1024, reader)))
    }
}

impl FileContents for Held<'_> {
    fn open_file<'a>(&'a self, kind: &EntryKind) -> io::Result<Box<dyn Read + 'a>> {
        match self.locate(kind) {
            Some((bytes, offset, size)) => bytes.reader(offset, size),
            None => self.store.open_file(kind),
        }
    }
}

/// Reads part of a scratch file without moving a shared position, so that two entries with one
/// content (hard links, or two packages), or two files of one pack, can each read theirs.
struct ScratchReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for ScratchReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a scratch file is shorter than what was held"));
        }
        self.at += n as u64;
        Ok(n)
    }
}

struct HashingFile {
    file: File,
    blake3: blake3::Hasher,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.blake3.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A copy that fails on either side, told apart.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

impl CopyError {
    fn into_sink(self, write: impl FnOnce(io::Error) -> StoreError) -> SinkError {
        match self {
            CopyError::Read(e) => SinkError::Read(e),
            CopyError::Write(e) => SinkError::Store(write(e)),
        }
    }
}

/// Copies exactly `size` bytes; fewer is the reader's error.
fn copy_counted(reader: &mut dyn Read, out: &mut dyn Write, size: u64) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want]).map_err(CopyError::Read)?;
        if n == 0 {
            return Err(CopyError::Read(short()));
        }
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n as u64;
    }
    out.flush().map_err(CopyError::Write)
}

fn read_exact_size(reader: &mut dyn Read, size: u64) -> Result<Vec<u8>, SinkError> {
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    reader.take(size).read_to_end(&mut data).map_err(SinkError::Read)?;
    if data.len() as u64 != size {
        return Err(SinkError::Read(short()));
    }
    Ok(data)
}

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the entry is shorter than its header says")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_contents_read_back_as_stored_ones_do_and_leave_no_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let big: Vec<u8> = (0..SCRATCH_FROM as usize + 10).map(|i| (i % 251) as u8).collect();
        let mut held = Held::new(&store);
        let small = held.file(&mut &b"hello"[..], 5).unwrap();
        let large = held.file(&mut big.as_slice(), big.len() as u64).unwrap();
        let pack = held.pack(b"abcdef".to_vec()).unwrap();
        assert_eq!(small, Hash::of(b"hello"));
        assert_eq!(large, Hash::of(&big));
        let read = |kind: &EntryKind| {
            let mut out = Vec::new();
            held.open_file(kind).unwrap().read_to_end(&mut out).unwrap();
            out
        };
        let file = |content, size, packed| EntryKind::File { content, size, packed };
        assert_eq!(read(&file(small, 5, None)), b"hello");
        let packed = Some(crate::Packed { pack, offset: 2 });
        assert_eq!(read(&file(Hash::of(b"cd"), 2, packed)), b"cd");
        // Read twice (hard links): each reader starts at the beginning.
        assert_eq!(read(&file(large, big.len() as u64, None)), big);
        assert_eq!(read(&file(large, big.len() as u64, None)), big);
        assert!(!store.contains(&small) && !store.contains(&large) && !store.contains(&pack));
        // Not held: read from the store, where it is not either.
        assert!(held.open_file(&file(Hash::of(b"other"), 5, None)).is_err());
        let stored = store.put_content(b"stored").unwrap();
        assert_eq!(read(&file(stored, 6, None)), b"stored");
        assert_eq!(held.read(&file(small, 5, None)).unwrap().unwrap(), b"hello");
        // A file beyond its pack's end is an error, not a short read.
        let beyond = Some(crate::Packed { pack, offset: 5 });
        assert!(held.open_file(&file(Hash::of(b"fg"), 2, beyond)).is_err());
        // A reader shorter than its size is the archive's fault.
        assert!(matches!(held.file(&mut &b"abc"[..], 5), Err(SinkError::Read(_))));
    }

    #[test]
    fn past_the_memory_budget_contents_go_to_scratch_files_and_read_back_alike() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut held = Held::new(&store);
        let chunk: Vec<u8> = (0..(SCRATCH_FROM - 1) as usize).map(|i| (i % 253) as u8).collect();
        let mut ids = Vec::new();
        for i in 0..6u8 {
            let mut data = chunk.clone();
            data[0] = i;
            ids.push((held.pack(data.clone()).unwrap(), data));
        }
        assert!(held.in_memory <= MEMORY_BUDGET);
        assert!(held.held.values().any(|b| matches!(b, HeldBytes::Scratch(_))));
        for (pack, data) in &ids {
            let kind = EntryKind::File {
                content: Hash::of(&data[10..20]),
                size: 10,
                packed: Some(crate::Packed { pack: *pack, offset: 10 }),
            };
            assert_eq!(held.read(&kind).unwrap().unwrap(), &data[10..20]);
        }
    }

    #[test]
    fn into_store_keeps_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut sink = IntoStore(&store);
        let id = sink.file(&mut &b"content"[..], 7).unwrap();
        assert_eq!(store.read(&id).unwrap(), b"content");
        let pack = sink.pack(b"xy".to_vec()).unwrap();
        assert!(store.contains(&pack));
    }
}
