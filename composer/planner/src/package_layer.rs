//! A layer straight from its packages' files, and what the system layer keeps of them.
//!
//! An image layer needs each package's bytes once, in tree order. The package is decoded with
//! its contents held for the step ([`Held`]), the layer is written from them, and the store gets
//! the layer and, per package, a *listing*: its tree (paths, kinds, modes, content hashes) and
//! the distribution's metadata, with the contents of the few files the backend's system files
//! read (`Backend::system_reads`) kept inline. No unpacked file becomes a store object: a cold
//! Debian build used to write 190 MB of them (and read them back) to compress 57 MB of layers.
//! Build roots, which are checked out as directories, still unpack into the store, and a package
//! unpacked there is layered from its stored tree rather than decoded a second time.

use std::collections::HashMap;

use base64::Engine;
use composer_oci::LayerBlob;
use composer_store::held::Held;
use composer_store::{
    ActionKey, ActionRecord, BlobInfo, Corruption, EntryKind, Hash, ObjectRef, RefKind, StoreError, Tree, TreeEntry,
};

use crate::lockfile::LockedPackage;
use crate::system::ImageView;
use crate::{BuildError, Session};
use composer_distro::UnpackedPackage;

/// One package as the system layer sees it, stored as a blob (its content hashes name objects
/// that need not exist, so it is not a store tree).
#[derive(serde::Serialize, serde::Deserialize)]
struct Listing {
    entries: Vec<TreeEntry>,
    /// The backend's metadata of the package (opaque here), base64.
    metadata: String,
    /// Contents the backend reads, by BLAKE3, base64.
    kept: Vec<(Hash, String)>,
}

/// What a package layer step records besides the layer itself.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PackageLayerData {
    #[serde(flatten)]
    pub layer: LayerBlob,
    /// Each package's listing, in the step's package order.
    pub listings: Vec<Hash>,
}

impl Session<'_> {
    /// Decodes `packages` (their files `blobs`), writes their layer, stores a listing of each and
    /// records the step.
    pub(crate) fn package_layer(
        &self,
        packages: &[LockedPackage],
        blobs: &[BlobInfo],
        key: &ActionKey,
    ) -> Result<PackageLayerData, BuildError> {
        let store = self.ctx.store;
        let mut held = Held::new(store);
        let mut tree = Tree::default();
        let mut listings = Vec::with_capacity(packages.len());
        // What the step read, for `store verify` to trace a damaged object to what it made.
        let mut inputs = Vec::with_capacity(packages.len());
        for (package, blob) in packages.iter().zip(blobs) {
            // A package a build root unpacked into the store is read from there, not decoded
            // again; either way the entries, and so the layer's bytes, are the same.
            let unpacked = match self.stored_unpack(package)? {
                Some((unpacked, tree)) => {
                    inputs.push(ObjectRef { id: tree, kind: RefKind::Tree });
                    unpacked
                }
                None => {
                    inputs.push(ObjectRef { id: blob.id, kind: RefKind::Blob });
                    self.backend.unpack(package, blob, &mut held)?
                }
            };
            let mut kept = Vec::new();
            for entry in &unpacked.tree.entries {
                if let EntryKind::File { content, .. } = &entry.kind
                    && self.backend.system_reads(&entry.path)
                {
                    let data = match held.read(&entry.kind)? {
                        Some(data) => data,
                        None => store.read_file_entry(&entry.kind)?.expect("a file entry"),
                    };
                    kept.push((*content, base64::engine::general_purpose::STANDARD.encode(data)));
                }
            }
            let listing = Listing {
                entries: unpacked.tree.entries,
                metadata: base64::engine::general_purpose::STANDARD.encode(&unpacked.metadata),
                kept,
            };
            listings.push(store.put_content(&serde_json::to_vec(&listing).expect("a listing serializes"))?);
            tree.entries.extend(listing.entries);
        }
        tree.normalize().map_err(StoreError::from)?;
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let layer = composer_oci::layer::write_layer_from(store, &held, &tree.entries, epoch, compression)?;
        let mut outputs = vec![ObjectRef { id: layer.blob.id, kind: RefKind::Blob }];
        outputs.extend(listings.iter().map(|&id| ObjectRef { id, kind: RefKind::Blob }));
        let data = PackageLayerData { layer, listings };
        let record = ActionRecord {
            inputs,
            step: "layer".into(),
            outputs,
            data: serde_json::to_value(&data).expect("a layer record serializes"),
        };
        store.action_put(key, &record)?;
        Ok(data)
    }

    /// The package as the store holds it unpacked (for a build root), with its tree's name.
    fn stored_unpack(&self, package: &LockedPackage) -> Result<Option<(UnpackedPackage, Hash)>, BuildError> {
        let store = self.ctx.store;
        let key = crate::keys::unpack_key(self.backend.name(), package);
        let Some(record) = store.action_get(&key)? else { return Ok(None) };
        let (Some(tree), Some(control)) = (record.outputs.first(), record.outputs.get(1)) else { return Ok(None) };
        let unpacked = UnpackedPackage { tree: store.get_tree(&tree.id)?, metadata: store.read(&control.id)? };
        Ok(Some((unpacked, tree.id)))
    }

    /// The image as its packages' listings describe it (each in the image's package order).
    pub(crate) fn listed_view(&self, listings: &[Hash], packages: &[LockedPackage]) -> Result<Listed<'_>, BuildError> {
        let store = self.ctx.store;
        let mut view = ImageView::new(store);
        let mut metadata = Vec::with_capacity(listings.len());
        // Which package a path came from, to name both when a second one ships it too.
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut shared = Vec::new();
        for (i, (id, package)) in listings.iter().zip(packages).enumerate() {
            let corrupt =
                |reason| StoreError::Corrupt { what: format!("listing of {}", package.name), reason: Box::new(reason) };
            let unparsable = |e: Box<dyn std::error::Error + Send + Sync>| corrupt(Corruption::Unparsable(e));
            let listing: Listing = serde_json::from_slice(&store.read(id)?).map_err(|e| unparsable(e.into()))?;
            let decode = |text: &str| base64::engine::general_purpose::STANDARD.decode(text);
            metadata.push(decode(&listing.metadata).map_err(|e| unparsable(e.into()))?);
            for (content, data) in &listing.kept {
                let data = decode(data).map_err(|e| unparsable(e.into()))?;
                let actual = Hash::of(&data);
                if actual != *content {
                    return Err(corrupt(Corruption::Blake3Mismatch { expected: *content, actual }).into());
                }
                view.kept.insert(*content, data);
            }
            for entry in listing.entries {
                if !matches!(entry.kind, EntryKind::Dir) {
                    if let Some(&first) = owner.get(&entry.path)
                        && view.entries.get(&entry.path).is_some_and(|old| !same_content(&old.kind, &entry.kind))
                    {
                        shared.push((entry.path.clone(), first, i));
                    }
                    owner.insert(entry.path.clone(), i);
                }
                view.entries.insert(entry.path.clone(), entry);
            }
        }
        Ok(Listed { view, metadata, shared })
    }
}

/// What the listings of an image's packages say together.
pub(crate) struct Listed<'a> {
    pub view: ImageView<'a>,
    /// Each package's metadata, in the image's package order.
    pub metadata: Vec<Vec<u8>>,
    /// Paths two packages ship with different contents: (path, first package, second package).
    pub shared: Vec<(String, usize, usize)>,
}

/// Whether two entries hold the same thing: where a small file lies (which package's pack) does
/// not matter, its content does.
fn same_content(a: &EntryKind, b: &EntryKind) -> bool {
    match (a, b) {
        (EntryKind::File { content: a, size: x, .. }, EntryKind::File { content: b, size: y, .. }) => a == b && x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use composer_store::Packed;

    #[test]
    fn one_content_in_two_packs_is_the_same_file() {
        let content = Hash::of(b"x");
        let in_pack = |pack: &[u8], offset| EntryKind::File {
            content,
            size: 1,
            packed: Some(Packed { pack: Hash::of(pack), offset }),
        };
        assert!(same_content(&in_pack(b"one", 0), &in_pack(b"two", 7)));
        assert!(!same_content(
            &in_pack(b"one", 0),
            &EntryKind::File { content: Hash::of(b"y"), size: 1, packed: None }
        ));
        assert!(!same_content(&in_pack(b"one", 0), &EntryKind::Dir));
    }
}
