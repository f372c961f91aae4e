//! A tree result travels as one blob: a tar whose first member is the tree's manifest and whose
//! other members are the objects it refers to (contents and packs), each named by its BLAKE3 hex,
//! in name order, with fixed metadata. The same tree always gives the same bytes, so a second
//! push finds the blob already there by its digest.
//!
//! Unpacking streams each member into the store only if it is an object the manifest refers to
//! and its bytes hash to its name; the manifest enters the store last, once every object it needs
//! is there, so the store never holds a tree with missing or unverified contents.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use composer_store::{Hash, Store, StoreError, Tree};

use crate::{ArtifactProblem, CacheError};

fn header(name: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).expect("hex names fit a ustar header");
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

/// Writes the pack of tree `id` to `out`.
pub fn write(store: &Store, id: &Hash, out: impl Write) -> Result<(), CacheError> {
    let manifest = store.read(id)?;
    let tree = store.get_tree(id)?;
    let contents: BTreeSet<Hash> = tree.contents().copied().collect();
    let mut builder = tar::Builder::new(out);
    let io = |e: io::Error| CacheError::Io { action: "pack", what: format!("tree {id}"), source: e };
    builder.append(&header(&id.to_hex(), manifest.len() as u64), &manifest[..]).map_err(io)?;
    for content in &contents {
        let mut reader = store.open_object(content)?;
        let size = reader.size();
        // The reader fails the read that would deliver a damaged object's last byte, so no
        // damaged object can be packed whole.
        builder.append(&header(&content.to_hex(), size), &mut reader).map_err(|e| match StoreError::carried(e) {
            Ok(store) => CacheError::Store(store),
            Err(e) => io(e),
        })?;
    }
    builder.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(())
}

/// Reads the pack of tree `id` from `input` into the store.
pub fn read(store: &Store, id: &Hash, input: impl Read, what: &str) -> Result<(), CacheError> {
    unpack(Some(store), id, input, what)
}

/// Checks the pack of tree `id` whole (manifest, every member's hash, nothing missing) without
/// storing anything: a bundle is verified entirely before any of it enters the store.
pub fn check(id: &Hash, input: impl Read, what: &str) -> Result<(), CacheError> {
    unpack(None, id, input, what)
}

fn unpack(store: Option<&Store>, id: &Hash, input: impl Read, what: &str) -> Result<(), CacheError> {
    let bad = |reason| CacheError::BadArtifact { what: what.to_string(), reason };
    let io = |e: io::Error| CacheError::Io { action: "unpack", what: what.to_string(), source: e };
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(io)?;
    let mut first = entries.next().ok_or_else(|| bad(ArtifactProblem::EmptyPack))?.map_err(io)?;
    if first.path_bytes().as_ref() != id.to_hex().as_bytes() {
        return Err(bad(ArtifactProblem::PackStart));
    }
    let mut manifest = Vec::new();
    (&mut first).take(64 << 20).read_to_end(&mut manifest).map_err(io)?;
    if Hash::of(&manifest) != *id {
        return Err(bad(ArtifactProblem::OtherTree(*id)));
    }
    let tree = Tree::from_bytes(&manifest).map_err(|e| bad(ArtifactProblem::Manifest(e)))?;
    tree.validate().map_err(|e| bad(ArtifactProblem::BadTree(e)))?;
    let mut wanted: BTreeSet<Hash> = tree.contents().copied().collect();
    for entry in entries {
        let mut entry = entry.map_err(io)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let content: Hash = name.parse().map_err(|_| bad(ArtifactProblem::MemberName(name.clone())))?;
        if !wanted.remove(&content) {
            return Err(bad(ArtifactProblem::StrayObject(content)));
        }
        let Some(store) = store else {
            let mut hasher = blake3::Hasher::new();
            io::copy(&mut entry, &mut hasher).map_err(io)?;
            if Hash(*hasher.finalize().as_bytes()) != content {
                return Err(bad(ArtifactProblem::ObjectDigest(content)));
            }
            continue;
        };
        if store.contains(&content) {
            continue;
        }
        let mut writer = store.writer()?;
        io::copy(&mut entry, &mut writer).map_err(io)?;
        writer
            .finish_expecting(&content, None, None, &format!("member {content} of {what}"))
            .map_err(|e| bad(ArtifactProblem::Store(e)))?;
    }
    match store {
        Some(store) => {
            if let Some(missing) = wanted.iter().find(|c| !store.contains(c)) {
                return Err(bad(ArtifactProblem::ObjectMissing(*missing)));
            }
            store.put_tree(&tree)?;
        }
        // A pack always carries every object (a pusher never knows what the reader has).
        None if !wanted.is_empty() => {
            return Err(bad(ArtifactProblem::ObjectsMissing(wanted.len())));
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use composer_store::{EntryKind, TreeEntry};

    use super::*;

    fn file(store: &Store, path: &str, data: &[u8]) -> TreeEntry {
        let content = store.put_content(data).unwrap();
        let kind = EntryKind::File { content, size: data.len() as u64, packed: None };
        TreeEntry { path: path.into(), kind, mode: 0o644, uid: 0, gid: 0, mtime: 0, xattrs: vec![] }
    }

    fn stored_tree(store: &Store) -> Hash {
        let mut tree = Tree { entries: vec![file(store, "a", b"alpha"), file(store, "b", b"beta")] };
        tree.normalize().unwrap();
        store.put_tree(&tree).unwrap()
    }

    #[test]
    fn a_pack_is_deterministic_and_fills_another_store() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = Store::open(one.path()).unwrap();
        let id = stored_tree(&source);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        write(&source, &id, &mut first).unwrap();
        write(&source, &id, &mut second).unwrap();
        assert_eq!(first, second);
        let target = Store::open(two.path()).unwrap();
        read(&target, &id, &first[..], "test").unwrap();
        assert_eq!(target.get_tree(&id).unwrap(), source.get_tree(&id).unwrap());
        assert!(target.verify(false).unwrap().problems.is_empty());
    }

    #[test]
    fn a_pack_with_a_flipped_byte_leaves_no_tree() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = Store::open(one.path()).unwrap();
        let id = stored_tree(&source);
        let mut pack = Vec::new();
        write(&source, &id, &mut pack).unwrap();
        let at = pack.windows(5).rposition(|w| w == b"alpha").unwrap();
        pack[at] = b'A';
        let target = Store::open(two.path()).unwrap();
        assert!(matches!(read(&target, &id, &pack[..], "test"), Err(CacheError::BadArtifact { .. })));
        assert!(!target.contains(&id));
    }
}
