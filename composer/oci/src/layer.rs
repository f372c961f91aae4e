//! Deterministic layer tars.
//!
//! Entries are in tree order (a directory before its contents, siblings by bytes); mtimes are
//! clamped to SOURCE_DATE_EPOCH; owners are numeric only (no user or group names); permission
//! bits keep setuid, setgid and sticky; hard links point at the first path of their group; names
//! and link targets too long for ustar get a PAX extended header. The tar streams through one
//! pinned compressor (gzip level 6 via zlib-rs, or zstd level 3) straight into the store, with
//! the diff_id (SHA-256 of the uncompressed tar) and the blob digests computed in the same pass.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

use composer_store::held::FileContents;
use composer_store::{BlobInfo, EntryKind, Sha256, Store, TreeEntry};
use sha2::Digest;

use crate::OciError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A layer as stored: the compressed blob and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    pub blob: BlobInfo,
    pub diff_id: Sha256,
    /// Size of the uncompressed tar (what a docker-archive holds).
    pub tar_size: u64,
    pub compression: Compression,
}

struct HashingWriter<W> {
    inner: W,
    sha256: sha2::Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An error of a layer write: the store's verdict on a damaged input object, or the I/O error.
fn layer_error(source: io::Error, entries: usize) -> OciError {
    crate::store_or(source, |source| OciError::Layer { what: format!("of {entries} entries"), source })
}

/// Writes `entries` (already in tree order) as a layer blob into the store.
pub fn write_layer(
    store: &Store,
    entries: &[TreeEntry],
    epoch: u64,
    compression: Compression,
) -> Result<LayerBlob, OciError> {
    write_layer_from(store, store, entries, epoch, compression)
}

/// Like [`write_layer`], with the files' contents read from `contents` (held for the step,
/// say, rather than stored): the same entries give the same bytes wherever they are read from.
pub fn write_layer_from(
    store: &Store,
    contents: &dyn FileContents,
    entries: &[TreeEntry],
    epoch: u64,
    compression: Compression,
) -> Result<LayerBlob, OciError> {
    let fail = |source: io::Error| layer_error(source, entries.len());
    let writer = store.writer()?;
    let ((diff_id, tar_size), writer) = match compression {
        Compression::Gzip => {
            let gz = flate2::GzBuilder::new().mtime(0).operating_system(255).write(writer, flate2::Compression::new(6));
            let (sha, gz) = write_tar_inner(contents, entries, epoch, gz, None).map_err(fail)?;
            (sha, gz.finish().map_err(fail)?)
        }
        Compression::Zstd => {
            let zst = zstd::stream::write::Encoder::new(writer, 3).map_err(fail)?;
            let (sha, zst) = write_tar_inner(contents, entries, epoch, zst, None).map_err(fail)?;
            (sha, zst.finish().map_err(fail)?)
        }
    };
    let blob = writer.finish()?;
    Ok(LayerBlob { blob, diff_id, tar_size, compression })
}

/// Like [`write_layer`], but a gzip layer reuses the deflate data `reuse` names for those file
/// contents instead of compressing them again (see `members`). Without reuse, or for zstd, the
/// same bytes as [`write_layer`].
pub fn write_layer_reusing(
    store: &Store,
    entries: &[TreeEntry],
    epoch: u64,
    compression: Compression,
    reuse: &crate::members::Reuse,
) -> Result<LayerBlob, OciError> {
    if reuse.is_empty() || compression != Compression::Gzip {
        return write_layer(store, entries, epoch, compression);
    }
    let fail = |source: io::Error| layer_error(source, entries.len());
    let writer = store.writer()?;
    let signal = crate::members::Signal::default();
    let members = crate::members::MemberWriter::new(writer, signal.clone(), store);
    let ((diff_id, tar_size), members) =
        write_tar_inner(store, entries, epoch, members, Some((reuse, &signal))).map_err(fail)?;
    let blob = members.finish().map_err(fail)?.finish()?;
    Ok(LayerBlob { blob, diff_id, tar_size, compression })
}

/// Writes the uncompressed tar to `out`, returning its SHA-256 and size, and `out`.
pub fn write_tar<W: Write>(store: &Store, entries: &[TreeEntry], epoch: u64, out: W) -> io::Result<((Sha256, u64), W)> {
    write_tar_inner(store, entries, epoch, out, None)
}

type ReuseHook<'a> = Option<(&'a crate::members::Reuse, &'a crate::members::Signal)>;

fn write_tar_inner<W: Write>(
    contents: &dyn FileContents,
    entries: &[TreeEntry],
    epoch: u64,
    out: W,
    reuse: ReuseHook<'_>,
) -> io::Result<((Sha256, u64), W)> {
    let mut builder = tar::Builder::new(HashingWriter { inner: out, sha256: sha2::Sha256::new(), size: 0 });
    // A hard link group's first path in tar order carries the content; the others link to it.
    // Groups are named by the path their links point at.
    let link_targets: HashSet<&str> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Hardlink { target } => Some(target.as_str()),
            _ => None,
        })
        .collect();
    let by_path: HashMap<&str, &TreeEntry> = entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut written_groups: HashMap<&str, &str> = HashMap::new();
    for entry in entries {
        let group_target = match &entry.kind {
            EntryKind::Hardlink { target } => Some(target.as_str()),
            EntryKind::File { .. } if link_targets.contains(entry.path.as_str()) => Some(entry.path.as_str()),
            _ => None,
        };
        if let Some(target) = group_target {
            if let Some(first) = written_groups.get(target) {
                append_link(&mut builder, entry, first, epoch)?;
                continue;
            }
            // This path is the group's first: write the content of the group's file here.
            let source = by_path.get(target).copied().filter(|e| matches!(e.kind, EntryKind::File { .. }));
            let Some(source) = source else {
                return Err(io::Error::other(format!(
                    "hard link `{}` to `{target}`, which is not a file in this layer",
                    entry.path
                )));
            };
            written_groups.insert(target, entry.path.as_str());
            append_file(&mut builder, contents, entry, source, epoch, reuse)?;
            continue;
        }
        match &entry.kind {
            EntryKind::File { .. } => append_file(&mut builder, contents, entry, entry, epoch, reuse)?,
            EntryKind::Dir => append_simple(&mut builder, entry, tar::EntryType::Directory, None, epoch)?,
            EntryKind::Symlink { target } => {
                append_simple(&mut builder, entry, tar::EntryType::Symlink, Some(target), epoch)?
            }
            EntryKind::Hardlink { .. } => unreachable!("handled above"),
        }
    }
    builder.finish()?;
    let hashing = builder.into_inner()?;
    Ok(((Sha256(hashing.sha256.finalize().into()), hashing.size), hashing.inner))
}

fn header_for(entry: &TreeEntry, kind: tar::EntryType, epoch: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(entry.mode);
    header.set_uid(entry.uid as u64);
    header.set_gid(entry.gid as u64);
    // Every layer carries the one epoch: a time after it is clamped to it, and an entry with no
    // time of its own (0: a wheel's files, made by composer) gets it too, so that no file reads
    // as 1970 (Python's zipfile refuses times before 1980) unless the epoch itself is 1970.
    let mtime = if entry.mtime == 0 { epoch } else { entry.mtime.min(epoch) };
    header.set_mtime(mtime);
    header.set_size(0);
    header
}

/// Sets name and link name, adding a PAX header first when either does not fit ustar.
fn append_with_names<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    mut header: tar::Header,
    entry: &TreeEntry,
    link: Option<&str>,
    data: R,
) -> io::Result<()> {
    // Tree paths carry non-UTF-8 bytes escaped; the tar gets the bytes themselves.
    let mut name = composer_store::name_bytes(&entry.path).into_owned();
    if matches!(header.entry_type(), tar::EntryType::Directory) {
        name.push(b'/');
    }
    let link = link.map(|l| composer_store::name_bytes(l).into_owned());
    let binary = std::str::from_utf8(&name).is_err() || link.as_ref().is_some_and(|l| std::str::from_utf8(l).is_err());
    let mut pax = Vec::new();
    if binary {
        // POSIX: path values that are not UTF-8 are declared binary, so readers keep them as is.
        pax_record(&mut pax, "hdrcharset", b"BINARY");
    }
    // Extended attributes (file capabilities, for one) travel as PAX records, as GNU tar and
    // containers/storage write and read them.
    for (key, value) in &entry.xattrs {
        pax_record(&mut pax, &format!("SCHILY.xattr.{key}"), value);
    }
    if binary || header.set_path(std::ffi::OsStr::from_bytes(&name)).is_err() {
        pax_record(&mut pax, "path", &name);
        // The ustar field only stands in for readers without PAX: any printable prefix will do.
        let short: String = match std::str::from_utf8(&name) {
            Ok(text) => text.chars().take(99).collect(),
            // Each byte that is not printable ASCII becomes `_` (never dropped, which could
            // turn `\xff..` into `..`).
            Err(_) => name.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '_' }).take(99).collect(),
        };
        header.set_path(if short.is_empty() { "x".to_string() } else { short })?;
    }
    if let Some(link) = &link
        && (binary || header.set_link_name_literal(link).is_err())
    {
        pax_record(&mut pax, "linkpath", link);
        header.set_link_name_literal(&link[..link.len().min(99)])?;
    }
    if !pax.is_empty() {
        let mut pax_header = tar::Header::new_ustar();
        pax_header.set_entry_type(tar::EntryType::XHeader);
        pax_header.set_path("PaxHeader")?;
        pax_header.set_mode(0o644);
        pax_header.set_mtime(header.mtime()?);
        pax_header.set_size(pax.len() as u64);
        pax_header.set_cksum();
        builder.append(&pax_header, pax.as_slice())?;
    }
    header.set_cksum();
    builder.append(&header, data)
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // The length prefix counts itself, so find the fixed point.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn append_simple<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &TreeEntry,
    kind: tar::EntryType,
    link: Option<&str>,
    epoch: u64,
) -> io::Result<()> {
    let header = header_for(entry, kind, epoch);
    append_with_names(builder, header, entry, link, io::empty())
}

fn append_link<W: Write>(builder: &mut tar::Builder<W>, entry: &TreeEntry, first: &str, epoch: u64) -> io::Result<()> {
    let header = header_for(entry, tar::EntryType::Link, epoch);
    append_with_names(builder, header, entry, Some(first), io::empty())
}

fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    contents: &dyn FileContents,
    entry: &TreeEntry,
    source: &TreeEntry,
    epoch: u64,
    reuse: ReuseHook<'_>,
) -> io::Result<()> {
    let EntryKind::File { content, size, .. } = &source.kind else { unreachable!("callers pass files") };
    let mut header = header_for(entry, tar::EntryType::Regular, epoch);
    header.set_size(*size);
    // Verified as tar copies it: a damaged object fails the layer before it is recorded.
    let reader = contents.open_file(&source.kind)?;
    match reuse {
        Some((segments, signal)) if *size > 0 => {
            let segment = segments.get(content).copied().filter(|s| s.size == *size);
            let reader = crate::members::SignalReader { inner: reader, signal: signal.clone(), segment };
            append_with_names(builder, header, entry, None, reader)
        }
        _ => append_with_names(builder, header, entry, None, reader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_and_xattrs_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content = store.put_content(b"data").unwrap();
        let long = format!("usr/share/{}/file", "x".repeat(150));
        let entries = vec![TreeEntry {
            path: long.clone(),
            kind: EntryKind::File { content, size: 4, packed: None },
            mode: 0o4755,
            uid: 0,
            gid: 0,
            mtime: 2_000_000_000,
            xattrs: vec![("security.capability".into(), vec![1, 0, 0, 2])],
        }];
        let ((_, size), tar) = write_tar(&store, &entries, 1_000, Vec::new()).unwrap();
        assert_eq!(size as usize, tar.len());
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), long);
        assert_eq!(entry.header().mode().unwrap(), 0o4755);
        assert_eq!(entry.header().mtime().unwrap(), 1_000, "mtime is clamped to the epoch");
        let xattr = entry
            .pax_extensions()
            .unwrap()
            .unwrap()
            .flatten()
            .find(|e| e.key() == Ok("SCHILY.xattr.security.capability"))
            .unwrap();
        assert_eq!(xattr.value_bytes(), [1, 0, 0, 2]);
    }

    #[test]
    fn an_entry_without_a_time_gets_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = |path: &str, mtime| TreeEntry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: vec![],
        };
        let entries = vec![entry("a", 0), entry("b", 5), entry("c", 2_000_000_000)];
        let (_, tar) = write_tar(&store, &entries, 1_700_000_000, Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let times: Vec<u64> = archive.entries().unwrap().map(|e| e.unwrap().header().mtime().unwrap()).collect();
        assert_eq!(times, [1_700_000_000, 5, 1_700_000_000]);
    }

    #[test]
    fn names_that_are_not_utf8_reach_the_tar_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content = store.put_content(b"x").unwrap();
        let path = composer_store::escape_name(b"usr/share/caf\xe9");
        let entries = vec![TreeEntry {
            path,
            kind: EntryKind::File { content, size: 1, packed: None },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        }];
        let (_, tar) = write_tar(&store, &entries, 0, Vec::new()).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path_bytes().as_ref(), b"usr/share/caf\xe9");
    }

    #[test]
    fn pax_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'a'; 200]);
        let text = String::from_utf8(out.clone()).unwrap();
        let len: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, out.len());
    }
}
