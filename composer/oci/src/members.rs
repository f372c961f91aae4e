//! Gzip layers that reuse deflate data compressed elsewhere (a wheel's zip entries) instead of
//! compressing those bytes again. RFC 1952 lets a gzip file be several members, and every
//! common reader (Go's compress/gzip, containers/image, Python's gzip, GNU gzip) reads them as
//! one stream. The tar headers and padding are compressed as before, in members between the
//! reused ones; each reused file becomes a member of its own: a fixed header, the raw deflate
//! data as the zip holds it, its CRC-32 and size. The output depends only on the entries and the
//! reused bytes, so it is as reproducible as a plain gzip layer.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use composer_store::{Hash, Store};

/// Raw deflate data, inside a store object, that inflates to a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Precompressed {
    /// The object holding the deflate data (e.g. a wheel).
    pub object: Hash,
    pub offset: u64,
    pub length: u64,
    pub crc32: u32,
    /// Uncompressed size.
    pub size: u64,
}

/// Set by a file's content reader when tar starts copying it: the bytes that follow are that
/// file's content.
pub(crate) type Signal = Rc<Cell<Option<Precompressed>>>;

/// Sets the signal on the first read, so the writer knows where the content starts.
pub(crate) struct SignalReader<R> {
    pub inner: R,
    pub signal: Signal,
    pub segment: Option<Precompressed>,
}

impl<R: Read> Read for SignalReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(segment) = self.segment.take() {
            self.signal.set(Some(segment));
        }
        self.inner.read(buf)
    }
}

enum State<W: Write> {
    Compressing(Box<flate2::write::GzEncoder<W>>),
    Idle(W),
    Moved,
}

/// A gzip writer that ends the current member and copies a precompressed one when signalled,
/// then swallows the file's uncompressed bytes that tar writes.
pub(crate) struct MemberWriter<'a, W: Write> {
    state: State<W>,
    signal: Signal,
    skip: u64,
    store: &'a Store,
}

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

impl<'a, W: Write> MemberWriter<'a, W> {
    pub fn new(out: W, signal: Signal, store: &'a Store) -> Self {
        MemberWriter { state: State::Idle(out), signal, skip: 0, store }
    }

    fn idle(&mut self) -> io::Result<&mut W> {
        if let State::Compressing(_) = self.state {
            let State::Compressing(encoder) = std::mem::replace(&mut self.state, State::Moved) else { unreachable!() };
            self.state = State::Idle((*encoder).finish()?);
        }
        match &mut self.state {
            State::Idle(out) => Ok(out),
            _ => Err(io::Error::other("gzip member writer used after an error")),
        }
    }

    fn copy_member(&mut self, segment: Precompressed) -> io::Result<()> {
        // The caller verified every object that segments name before this layer started.
        let mut object = self.store.open_object_prechecked(&segment.object).map_err(io::Error::other)?;
        object.seek(SeekFrom::Start(segment.offset))?;
        let out = self.idle()?;
        out.write_all(&GZIP_HEADER)?;
        let copied = io::copy(&mut object.take(segment.length), out)?;
        if copied != segment.length {
            return Err(io::Error::other("reused deflate data is shorter than recorded"));
        }
        out.write_all(&segment.crc32.to_le_bytes())?;
        out.write_all(&(segment.size as u32).to_le_bytes())?;
        self.skip = segment.size;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.idle()?;
        match std::mem::replace(&mut self.state, State::Moved) {
            State::Idle(out) => Ok(out),
            _ => unreachable!("idle() left it idle"),
        }
    }
}

impl<W: Write> Write for MemberWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(segment) = self.signal.take() {
            self.copy_member(segment)?;
        }
        if self.skip > 0 {
            let n = (buf.len() as u64).min(self.skip) as usize;
            self.skip -= n as u64;
            return Ok(n);
        }
        if let State::Idle(_) = self.state {
            let State::Idle(out) = std::mem::replace(&mut self.state, State::Moved) else { unreachable!() };
            self.state = State::Compressing(Box::new(
                flate2::GzBuilder::new().mtime(0).operating_system(255).write(out, flate2::Compression::new(6)),
            ));
        }
        match &mut self.state {
            State::Compressing(encoder) => encoder.write(buf),
            _ => Err(io::Error::other("gzip member writer used after an error")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Compressing(encoder) => encoder.flush(),
            State::Idle(out) => out.flush(),
            State::Moved => Ok(()),
        }
    }
}

/// Which file contents have reusable deflate data.
pub type Reuse = HashMap<Hash, Precompressed>;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use composer_store::{EntryKind, Store, TreeEntry};

    use super::*;
    use crate::layer::{Compression, write_layer_reusing, write_tar};

    #[test]
    fn reused_deflate_data_gives_the_same_tar_as_compressing_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let id = store.put_content(&content).unwrap();
        // A "zip" object: some prefix, then the raw deflate data of the content.
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
        raw.write_all(&content).unwrap();
        let raw = raw.finish().unwrap();
        let mut zip = b"prefix".to_vec();
        zip.extend_from_slice(&raw);
        let zip_id = store.put_content(&zip).unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(&content);
        let entry = |path: &str, kind| TreeEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        };
        let entries = vec![
            entry("a", EntryKind::Dir),
            entry("a/big", EntryKind::File { content: id, size: content.len() as u64, packed: None }),
            entry("a/small", EntryKind::File { content: store.put_content(b"x").unwrap(), size: 1, packed: None }),
        ];
        let reuse: Reuse = [(
            id,
            Precompressed {
                object: zip_id,
                offset: 6,
                length: raw.len() as u64,
                crc32: crc.sum(),
                size: content.len() as u64,
            },
        )]
        .into();

        let layer = write_layer_reusing(&store, &entries, 0, Compression::Gzip, &reuse).unwrap();
        let again = write_layer_reusing(&store, &entries, 0, Compression::Gzip, &reuse).unwrap();
        assert_eq!(layer, again, "reproducible");
        let ((diff_id, _), tar) = write_tar(&store, &entries, 0, Vec::new()).unwrap();
        assert_eq!(layer.diff_id, diff_id);
        let mut unpacked = Vec::new();
        flate2::read::MultiGzDecoder::new(store.open_object(&layer.blob.id).unwrap())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, tar, "the members decompress to the plain tar");
    }
}
