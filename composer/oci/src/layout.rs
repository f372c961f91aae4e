//! The OCI image layout directory: `oci-layout`, `index.json` and `blobs/sha256/`.
//!
//! `index.json` holds one descriptor per tag, the image index (annotated with the tag as
//! `org.opencontainers.image.ref.name`), which lists one manifest per platform. Blobs are copied
//! in first (each verified against its digest while it streams out of the store, through a temp
//! file and a rename, skipped when an identical one is present), `index.json` is replaced
//! atomically last, then the blobs only the replaced image used are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use composer_store::confined::{Confined, FileStamp};
use composer_store::{BlobInfo, Sha256, Store};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::{LayoutProblem, OciError};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> OciError + 'p {
    move |source| OciError::Io { action, path: path.to_path_buf(), source }
}

/// The stored object an OCI digest (`sha256:<hex>`) names.
pub fn stored_blob(store: &Store, digest: &str) -> Result<BlobInfo, OciError> {
    let sha: Sha256 = digest.parse().map_err(|e: composer_store::NotASha256| OciError::Spec(e.to_string()))?;
    store.lookup_sha256(&sha)?.ok_or_else(|| OciError::Spec(format!("blob {digest} is not in the store")))
}

/// Every blob of an image, from its index down: (sha256, media type) in a fixed order.
pub fn image_blobs(store: &Store, index: &BlobInfo) -> Result<Vec<(BlobInfo, String)>, OciError> {
    let mut out = vec![(*index, "application/vnd.oci.image.index.v1+json".to_string())];
    let lookup = |digest: &str| stored_blob(store, digest);
    let index_json: Value =
        serde_json::from_slice(&store.read(&index.id)?).map_err(|e| OciError::Spec(e.to_string()))?;
    for manifest in index_json["manifests"].as_array().into_iter().flatten() {
        let blob = lookup(manifest["digest"].as_str().unwrap_or(""))?;
        out.push((blob, manifest["mediaType"].as_str().unwrap_or("").to_string()));
        let manifest_json: Value =
            serde_json::from_slice(&store.read(&blob.id)?).map_err(|e| OciError::Spec(e.to_string()))?;
        let config = &manifest_json["config"];
        out.push((
            lookup(config["digest"].as_str().unwrap_or(""))?,
            config["mediaType"].as_str().unwrap_or("").to_string(),
        ));
        for layer in manifest_json["layers"].as_array().into_iter().flatten() {
            out.push((
                lookup(layer["digest"].as_str().unwrap_or(""))?,
                layer["mediaType"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|(b, _)| seen.insert(b.sha256));
    Ok(out)
}

/// The top-level `index.json` of a layout holding one tagged image index.
pub fn top_index(index: &BlobInfo, tags: &[String]) -> Vec<u8> {
    let entries: Vec<Value> = tags.iter().map(|tag| tag_entry(index, tag)).collect();
    crate::canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
}

fn tag_entry(index: &BlobInfo, tag: &str) -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": index.sha256.oci(),
        "size": index.size,
        "annotations": { REF_NAME: tag },
    })
}

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The largest `index.json` or manifest read back from a layout: far above any real one, and a
/// bound on what a planted file can make composer read.
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// Where a blob lives in a layout, once its digest is known to be `sha256:` and 64 hex digits:
/// a digest from a document is data, and must never become `../../etc/passwd`.
pub fn blob_path(digest: &str) -> Result<String, OciError> {
    let sha: Sha256 = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| OciError::Spec(format!("digest `{}` is not a sha256 digest", digest.escape_debug())))?
        .parse()
        .map_err(|_| OciError::Spec(format!("digest `{}` is not a sha256 digest", digest.escape_debug())))?;
    Ok(format!("blobs/sha256/{}", sha.to_hex()))
}

/// Writes (or updates) an OCI layout at `dir` with the image whose index is `index` under each
/// of `tags`. Other images of the layout (other tags) keep their entries and their blobs; the only
/// blobs removed are the ones these tags' previous images used that no entry reaches any more; a
/// directory that is not a layout is refused. Every file operation stays beneath `dir` without
/// following a symlink, and writers of one layout are serialised by a lock in the store.
pub fn write_layout(store: &Store, dir: &Path, index: &BlobInfo, tags: &[String]) -> Result<(), OciError> {
    let not_layout = |reason| OciError::NotALayout { path: dir.to_path_buf(), reason };
    match fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() && !fs::metadata(dir).is_ok_and(|m| m.is_dir()) => {
            return Err(not_layout(LayoutProblem::NotADirectory));
        }
        Ok(_) => {
            let is_layout = dir.join("oci-layout").is_file();
            if !is_layout && fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
                return Err(not_layout(LayoutProblem::OtherFiles));
            }
        }
        Err(_) => fs::create_dir_all(dir).map_err(io_err("create", dir))?,
    }
    let canonical = dir.canonicalize().map_err(io_err("resolve", dir))?;
    let _lock = store.lock_named(&format!("the output `{}`", canonical.display()))?;
    let mut root = Confined::open(dir).map_err(io_err("open", dir))?;
    let rel_err = |action: &'static str, rel: &str, root: &Confined| {
        let path = root.display(rel);
        move |source| OciError::Io { action, path, source }
    };

    let previous = read_top_index(&root)?;
    let blobs = image_blobs(store, index)?;
    // Blobs this layout was seen to hold, by stamp: one that is still the same file is not read
    // again (a no-op build would otherwise hash every layer it already wrote).
    let note = format!("layout-blobs:{}", canonical.display());
    let mut checked: BTreeMap<String, (FileStamp, String)> =
        store.local_note(&note).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    // First, so that a write cut short leaves a directory that is recognisably a layout (and
    // the next write may finish it), never a stray directory composer then refuses.
    write_atomic(&mut root, "oci-layout", OCI_LAYOUT)?;
    let blob_dir = root.beneath("blobs/sha256").map_err(rel_err("create", "blobs/sha256", &root))?;
    // Blobs are placed in parallel: each is hashed as it streams out of the store, and an image's
    // layers are most of what a build writes after its last step. Errors come in the image's order.
    let placed: Vec<Result<Option<FileStamp>, OciError>> = blobs
        .par_iter()
        .map_init(
            || blob_dir.beneath(""),
            |dir, (blob, _)| {
                let dir = dir.as_mut().map_err(|e| OciError::Io {
                    action: "open",
                    path: blob_dir.path().to_path_buf(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                })?;
                let rel = format!("blobs/sha256/{}", blob.sha256.to_hex());
                let seen = checked.get(&rel).filter(|(_, sha)| *sha == blob.sha256.to_hex()).map(|(s, _)| s);
                place_blob(store, dir, blob, seen)
            },
        )
        .collect();
    for ((blob, _), placed) in blobs.iter().zip(placed) {
        let rel = format!("blobs/sha256/{}", blob.sha256.to_hex());
        checked.remove(&rel);
        if let Some(now) = placed? {
            checked.insert(rel, (now, blob.sha256.to_hex()));
        }
    }

    // These tags' entries replace the ones they had; every other entry stays as it was.
    let ours = |m: &Value| m["annotations"][REF_NAME].as_str().is_some_and(|t| tags.iter().any(|tag| tag == t));
    let mut entries: Vec<Value> = previous
        .as_ref()
        .and_then(|top| top["manifests"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !ours(m))
        .collect();
    let replaced: Vec<Value> = previous
        .as_ref()
        .and_then(|top| top["manifests"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| ours(m))
        .collect();
    entries.extend(tags.iter().map(|tag| tag_entry(index, tag)));
    let top = crate::canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }));
    write_atomic(&mut root, "index.json", &top)?;

    // Blobs the replaced image reached that nothing reaches now: ours to remove, nothing else.
    if !replaced.is_empty() {
        let mut live = BTreeSet::new();
        for entry in &entries {
            reachable(&root, entry, &mut live, 0)?;
        }
        let mut old = BTreeSet::new();
        for entry in &replaced {
            reachable(&root, entry, &mut old, 0)?;
        }
        for rel in old.difference(&live) {
            let _ = root.remove_file(rel);
            checked.remove(rel);
        }
    }
    // Best effort: a read-only store only means the next write checks again.
    let _ = store.set_local_note(&note, &serde_json::to_vec(&checked).expect("notes serialize"));
    Ok(())
}

/// Makes `dir` (a layout's `blobs/sha256`) hold `blob`: left alone when it is the file `seen`
/// before (same stamp) or holds exactly the blob's bytes, else copied from the store through a
/// temp file and a rename. Returns the file's stamp as it is now.
fn place_blob(
    store: &Store,
    dir: &mut Confined,
    blob: &BlobInfo,
    seen: Option<&FileStamp>,
) -> Result<Option<FileStamp>, OciError> {
    let name = blob.sha256.to_hex();
    let stamp = |dir: &Confined| {
        dir.file_stamp(&name).map_err(|source| OciError::Io { action: "inspect", path: dir.display(&name), source })
    };
    if let Some(seen) = seen
        && stamp(dir)?.is_some_and(|now| now == *seen && now.size == blob.size)
    {
        return Ok(Some(seen.clone()));
    }
    if !existing_blob_is(dir, &name, blob)? {
        let (staged, temp, mut out) = dir.staged_file(&name).map_err(|source| OciError::Io {
            action: "create",
            path: dir.display(&name),
            source,
        })?;
        store.open_blob(blob)?.copy_to(&mut out).map_err(|e| copy_error(e, &dir.display(&temp)))?;
        staged.publish(|_| dir.rename(&temp, &name)).map_err(|source| OciError::Io {
            action: "rename into",
            path: dir.display(&name),
            source,
        })?;
    }
    stamp(dir)
}

fn copy_error(e: std::io::Error, path: &Path) -> OciError {
    crate::store_or(e, |source| OciError::Io { action: "write", path: path.to_path_buf(), source })
}

/// Whether the layout already holds exactly this blob (a blob file that differs, a truncated
/// copy say, is written again).
fn existing_blob_is(root: &Confined, rel: &str, blob: &BlobInfo) -> Result<bool, OciError> {
    let size = match root.file_size(rel) {
        Ok(size) => size,
        Err(source) => return Err(OciError::Io { action: "inspect", path: root.display(rel), source }),
    };
    if size != Some(blob.size) {
        return Ok(false);
    }
    let mut file =
        root.open_file(rel).map_err(|source| OciError::Io { action: "open", path: root.display(rel), source })?;
    let mut hasher = Sha256Writer::default();
    std::io::copy(&mut (&mut file).take(blob.size + 1), &mut hasher).map_err(|source| OciError::Io {
        action: "read",
        path: root.display(rel),
        source,
    })?;
    Ok(hasher.finish() == blob.sha256)
}

#[derive(Default)]
struct Sha256Writer(sha2::Sha256);

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sha256Writer {
    fn finish(self) -> Sha256 {
        Sha256(sha2::Digest::finalize(self.0).into())
    }
}

fn write_atomic(root: &mut Confined, rel: &str, data: &[u8]) -> Result<(), OciError> {
    root.write_atomic(rel, data).map_err(|source| OciError::Io { action: "write", path: root.display(rel), source })
}

/// Reads a JSON document of the layout: a regular file (never a FIFO that would block), bounded
/// in size and never through a symlink.
fn read_document(root: &Confined, rel: &str) -> Result<Option<Value>, OciError> {
    let not = |reason| OciError::NotALayout { path: root.path().to_path_buf(), reason };
    let bytes = match root.read_file(rel, MAX_DOCUMENT) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(not(LayoutProblem::CannotRead { file: rel.to_string(), source })),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| not(LayoutProblem::NotJson { file: rel.to_string(), source }))
}

fn read_top_index(root: &Confined) -> Result<Option<Value>, OciError> {
    read_document(root, "index.json")
}

/// Adds the blobs a descriptor reaches within the layout (itself, and for an index or manifest
/// what it lists). A blob the layout does not hold ends that branch.
fn reachable(root: &Confined, descriptor: &Value, out: &mut BTreeSet<String>, depth: usize) -> Result<(), OciError> {
    let Some(digest) = descriptor["digest"].as_str() else { return Ok(()) };
    let Ok(rel) = blob_path(digest) else { return Ok(()) };
    if !out.insert(rel.clone()) || depth > 8 {
        return Ok(());
    }
    let media = descriptor["mediaType"].as_str().unwrap_or("");
    if !(media.ends_with("index.v1+json") || media.ends_with("manifest.v1+json")) {
        return Ok(());
    }
    let Ok(Some(document)) = read_document(root, &rel) else { return Ok(()) };
    for child in document["manifests"].as_array().into_iter().flatten() {
        reachable(root, child, out, depth + 1)?;
    }
    if document["config"].is_object() {
        reachable(root, &document["config"], out, depth + 1)?;
    }
    for child in document["layers"].as_array().into_iter().flatten() {
        reachable(root, child, out, depth + 1)?;
    }
    Ok(())
}
