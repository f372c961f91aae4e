//! A `.deb` (an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`, each tar
//! compressed with gzip, xz or zstd, or not at all) becomes a store tree plus the control data
//! the image's dpkg database needs. Nothing is written outside the store and no maintainer
//! script runs.
//!
//! Paths are checked while streaming: an absolute path, a `..` component, a hard link to a path
//! not seen before or a relative symlink that climbs out of the root rejects the whole package.
//! With `merged_usr`, `/bin`, `/sbin` and `/lib*` move under `/usr`, as the usrmerge package
//! would have moved them.

use std::io::{self, Read};

use composer_store::held::{ContentSink, IntoStore, SinkError};
use composer_store::{EntryKind, Hash, PACK_MAX, Packed, Store, Tree, TreeEntry};

use crate::{DebError, DebProblem};

/// What a package leaves besides its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlData {
    /// The `control` paragraph, verbatim.
    pub control: String,
    pub md5sums: String,
    pub conffiles: String,
    pub postinst: String,
    /// Every path of the data tar as dpkg records it in `info/<pkg>.list` (`/.` first).
    pub paths: Vec<String>,
}

pub struct Unpacked {
    pub tree: Tree,
    pub control: ControlData,
}

const MERGED_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The path after the usrmerge move, or the same path.
pub fn merge_usr(path: &str) -> String {
    let first = path.split('/').next().unwrap_or("");
    if MERGED_DIRS.contains(&first) { format!("usr/{path}") } else { path.to_string() }
}

/// Unpacks into the store: every file's content becomes an object or part of the package's pack.
pub fn unpack(store: &Store, reader: impl Read, what: &str, merged_usr: bool) -> Result<Unpacked, DebError> {
    unpack_into(&mut IntoStore(store), reader, what, merged_usr)
}

/// Unpacks, handing every file's content to `contents` (the store, or held for one step).
pub fn unpack_into(
    contents: &mut dyn ContentSink,
    reader: impl Read,
    what: &str,
    merged_usr: bool,
) -> Result<Unpacked, DebError> {
    let bad =
        |entry: &str, reason: DebProblem| DebError::Deb { file: what.to_string(), entry: entry.to_string(), reason };
    let mut archive = crate::ar::Archive::new(reader);
    let mut control = None;
    let mut tree = None;
    while let Some((name, _)) = archive.next_member().map_err(|e| read_error(e, |r| bad("(ar archive)", r)))? {
        if name == "debian-binary" {
            continue;
        }
        let decoder = decompressor(&name, &mut archive).map_err(|reason| bad(&name, reason))?;
        if name.starts_with("control.tar") {
            control = Some(read_control(decoder, &|r| bad(&name, r))?);
        } else if name.starts_with("data.tar") {
            tree = Some(read_data(contents, decoder, merged_usr, &name, &bad)?);
        }
    }
    let mut control = control.ok_or_else(|| bad("control.tar", DebProblem::Missing))?;
    let (tree, paths) = tree.ok_or_else(|| bad("data.tar", DebProblem::Missing))?;
    control.paths = paths;
    Ok(Unpacked { tree, control })
}

fn decompressor<'a>(name: &str, reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, DebProblem> {
    Ok(match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        // The package file was verified (SHA-256 from the signed index, BLAKE3 as the store
        // reads it) before any of it is decoded, so xz's own CRC-64 would only check again what
        // is known: skipping it saves a tenth of the decoding time.
        Some("xz") => {
            let stream = liblzma::stream::Stream::new_stream_decoder(u64::MAX, liblzma::stream::IGNORE_CHECK)
                .map_err(|e| DebProblem::Decompressor(e.into()))?;
            Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
        }
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(reader).map_err(DebProblem::Decompressor)?),
        Some("tar") => Box::new(reader),
        _ => return Err(DebProblem::UnsupportedMember(name.to_string())),
    })
}

fn read_control(reader: impl Read, bad: &dyn Fn(DebProblem) -> DebError) -> Result<ControlData, DebError> {
    let mut data = ControlData::default();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| read_error(e, bad))? {
        let mut entry = entry.map_err(|e| read_error(e, bad))?;
        let path = entry
            .path()
            .map_err(|e| bad(DebProblem::BadName(e)))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let slot = match path.as_str() {
            "control" => &mut data.control,
            "md5sums" => &mut data.md5sums,
            "conffiles" => &mut data.conffiles,
            "postinst" => &mut data.postinst,
            _ => continue,
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| read_error(e, bad))?;
        *slot = String::from_utf8_lossy(&bytes).into_owned();
    }
    if data.control.is_empty() {
        return Err(bad(DebProblem::NoControl));
    }
    Ok(data)
}

/// Normalises a tar path to `a/b/c` and refuses anything that could leave the root.
fn safe_path(raw: &str) -> Result<String, DebProblem> {
    if raw.starts_with('/') {
        return Err(DebProblem::AbsolutePath(raw.to_string()));
    }
    let mut parts = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => continue,
            ".." => return Err(DebProblem::ClimbingPath(raw.to_string())),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a relative symlink target against the link's directory; `None` if it climbs out.
fn resolve_relative(link_path: &str, target: &str) -> Option<String> {
    let mut stack: Vec<&str> = link_path.split('/').collect();
    stack.pop();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            c => stack.push(c),
        }
    }
    Some(stack.join("/"))
}

type Bad<'a> = dyn Fn(&str, DebProblem) -> DebError + 'a;

fn read_data(
    contents: &mut dyn ContentSink,
    reader: impl Read,
    merged_usr: bool,
    member: &str,
    bad: &Bad<'_>,
) -> Result<(Tree, Vec<String>), DebError> {
    let mut tree = Tree::default();
    // The package's small files, one after another: stored as one object, the pack.
    let mut pack: Vec<u8> = Vec::new();
    let mut packed: Vec<usize> = Vec::new();
    let mut paths = vec!["/.".to_string()];
    let mut seen = std::collections::HashSet::new();
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| read_error(e, |r| bad(member, r)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| read_error(e, |r| bad(member, r)))?;
        // Names that are not UTF-8 are kept byte for byte (escaped; see `escape_name`).
        let raw = composer_store::escape_name(&entry.path_bytes());
        let original = safe_path(&raw).map_err(|r| bad(&raw, r))?;
        if original.is_empty() {
            continue;
        }
        let path = if merged_usr { merge_usr(&original) } else { original.clone() };
        let header = entry.header();
        let mode = header.mode().map_err(|e| bad(&raw, DebProblem::BadHeader(e)))? & 0o7777;
        let uid = header.uid().map_err(|e| bad(&raw, DebProblem::BadHeader(e)))? as u32;
        let gid = header.gid().map_err(|e| bad(&raw, DebProblem::BadHeader(e)))? as u32;
        let mtime = header.mtime().unwrap_or(0);
        let link = || -> Result<String, DebError> {
            let target = entry.link_name_bytes().ok_or_else(|| bad(&raw, DebProblem::NoLinkTarget))?;
            Ok(composer_store::escape_name(&target))
        };
        // A package that ships the usrmerge links itself (`lib -> usr/lib`, as trixie's
        // base-files does) would, moved under /usr, become a link at `usr/lib` over the very
        // directory it names. The merged layout's links come from the system layer; dpkg still
        // records the package as owning the path.
        if merged_usr && header.entry_type() == tar::EntryType::Symlink && MERGED_DIRS.contains(&original.as_str()) {
            paths.push(format!("/{original}"));
            continue;
        }
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target = link()?;
                let target = if target.starts_with('/') {
                    target
                } else {
                    let resolved = resolve_relative(&original, &target)
                        .ok_or_else(|| bad(&raw, DebProblem::SymlinkEscapes(target.clone())))?;
                    if path != original && target.contains("..") {
                        // The link moved under /usr; its relative target would now miss.
                        format!("/{}", if merged_usr { merge_usr(&resolved) } else { resolved })
                    } else {
                        target
                    }
                };
                EntryKind::Symlink { target }
            }
            tar::EntryType::Link => {
                let target = safe_path(&link()?).map_err(|r| bad(&raw, DebProblem::HardLinkPath(Box::new(r))))?;
                let target = if merged_usr { merge_usr(&target) } else { target };
                if !seen.contains(&target) {
                    return Err(bad(&raw, DebProblem::HardLinkToNothing(target)));
                }
                EntryKind::Hardlink { target }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                match read_small(&mut entry, size, &mut pack, &|e| read_error(e, |r| bad(&raw, r)))? {
                    Some(offset) => {
                        let content = Hash::of(&pack[offset..]);
                        let offset = offset as u64;
                        packed.push(tree.entries.len());
                        // The pack's name is known once it is complete; see below.
                        EntryKind::File { content, size, packed: Some(Packed { pack: Hash([0; 32]), offset }) }
                    }
                    None => {
                        let content = contents.file(&mut entry, size).map_err(|e| sink_error(e, &|r| bad(&raw, r)))?;
                        EntryKind::File { content, size, packed: None }
                    }
                }
            }
            other => return Err(bad(&raw, DebProblem::UnsupportedEntry(other))),
        };
        let mut xattrs = Vec::new();
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for ext in extensions.flatten() {
                if let Ok(key) = ext.key()
                    && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        paths.push(format!("/{original}"));
        seen.insert(path.clone());
        tree.entries.push(TreeEntry { path, kind, mode, uid, gid, mtime, xattrs });
    }
    if !pack.is_empty() || !packed.is_empty() {
        let id = contents.pack(pack).map_err(|e| sink_error(e, &|r| bad(member, r)))?;
        for &i in &packed {
            if let EntryKind::File { packed: Some(p), .. } = &mut tree.entries[i].kind {
                p.pack = id;
            }
        }
    }
    // Within one package, an entry beneath one of its own symlinks is refused (dpkg would
    // write through the link); across packages, merging resolves it (see `Tree::normalize`).
    tree.validate().map_err(|e| bad(&e.path, DebProblem::Tree(e.reason)))?;
    tree.normalize().map_err(|e| bad(&e.path, DebProblem::Tree(e.reason)))?;
    Ok((tree, paths))
}

/// Appends a small file's content to the package's pack (one store file for all of them rather
/// than one each: creating files is most of a cold unpack's system time) and returns where it
/// starts; `None` for a larger one, which becomes an object of its own.
fn read_small(
    reader: &mut impl Read,
    size: u64,
    pack: &mut Vec<u8>,
    bad: &dyn Fn(io::Error) -> DebError,
) -> Result<Option<usize>, DebError> {
    if size > PACK_MAX {
        return Ok(None);
    }
    // Straight onto the end of the pack: one copy of the package's small files fewer.
    let offset = pack.len();
    reader.take(size).read_to_end(pack).map_err(bad)?;
    if (pack.len() - offset) as u64 != size {
        return Err(bad(io::Error::new(io::ErrorKind::UnexpectedEof, "the entry is shorter than its header says")));
    }
    Ok(Some(offset))
}

/// A failed read of the package: the store's verdict when it is the package file's own object
/// that is damaged (so that the build puts it aside and fetches it again), else the package's
/// fault (`bad`).
fn read_error(error: io::Error, bad: impl FnOnce(DebProblem) -> DebError) -> DebError {
    match composer_store::StoreError::carried(error) {
        Ok(store) => DebError::Store(store),
        Err(error) => bad(DebProblem::Unreadable(error)),
    }
}

/// A sink's failure: a read error is the package's fault (`bad`); a store error (a full disk,
/// say) is reported as such.
fn sink_error(error: SinkError, bad: &dyn Fn(DebProblem) -> DebError) -> DebError {
    match error {
        SinkError::Read(e) => read_error(e, bad),
        SinkError::Store(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_leave_the_root() {
        assert!(safe_path("/etc/passwd").is_err());
        assert!(safe_path("./usr/../../etc").is_err());
        assert_eq!(safe_path("./usr/bin/").unwrap(), "usr/bin");
        assert_eq!(resolve_relative("usr/lib/x", "../../../etc"), None);
        assert_eq!(resolve_relative("usr/lib/x", "../share/y").as_deref(), Some("usr/share/y"));
    }

    #[test]
    fn moves_root_directories_under_usr() {
        assert_eq!(merge_usr("bin/sh"), "usr/bin/sh");
        assert_eq!(merge_usr("lib64"), "usr/lib64");
        assert_eq!(merge_usr("library/x"), "library/x");
        assert_eq!(merge_usr("etc/passwd"), "etc/passwd");
    }
}
