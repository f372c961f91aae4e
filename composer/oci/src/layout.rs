//! The OCI image layout directory: `oci-layout`, `index.json` and `blobs/sha256/`.
//!
//! `index.json` holds one descriptor, the image index (annotated with the tag as
//! `org.opencontainers.image.ref.name`), which lists one manifest per platform. Blobs are copied
//! in first (each through a temp file and a rename, skipped when already present), `index.json`
//! is replaced atomically last, then blobs nothing refers to are removed. A lock file beside the
//! directory serialises writers of the same output.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use composer_store::{BlobInfo, Sha256, Store};
use serde_json::{Value, json};

use crate::OciError;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> OciError + 'p {
    move |source| OciError::Io { action, path: path.to_path_buf(), source }
}

/// The stored object an OCI digest (`sha256:<hex>`) names.
pub fn stored_blob(store: &Store, digest: &str) -> Result<BlobInfo, OciError> {
    let sha: Sha256 = digest.parse().map_err(OciError::Spec)?;
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
pub fn top_index(index: &BlobInfo, tag: &str) -> Vec<u8> {
    crate::canonical_json(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index.sha256.oci(),
            "size": index.size,
            "annotations": { REF_NAME: tag },
        }],
    }))
}

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes (or updates) an OCI layout at `dir` for the image whose index is `index`.
pub fn write_layout(store: &Store, dir: &Path, index: &BlobInfo, tag: &str) -> Result<(), OciError> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let lock_path = parent.join(format!(".{}.lock", dir.file_name().unwrap_or_default().to_string_lossy()));
    let lock = fs::File::create(&lock_path).map_err(io_err("create", &lock_path))?;
    lock.lock().map_err(io_err("lock", &lock_path))?;

    if dir.exists()
        && !dir.join("oci-layout").exists()
        && fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
    {
        return Err(OciError::NotALayout {
            path: dir.to_path_buf(),
            reason: "the directory exists, is not empty and holds no `oci-layout`; composer will not write into it"
                .into(),
        });
    }
    let blobs_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir).map_err(io_err("create", &blobs_dir))?;
    let blobs = image_blobs(store, index)?;
    for (blob, _) in &blobs {
        let dest = blobs_dir.join(blob.sha256.to_hex());
        if fs::metadata(&dest).is_ok_and(|m| m.len() == blob.size) {
            continue;
        }
        let temp = temp_beside(&dest);
        copy_object(store, blob, &temp)?;
        fs::rename(&temp, &dest).map_err(io_err("rename into", &dest))?;
    }
    write_file_atomic(&dir.join("oci-layout"), OCI_LAYOUT)?;
    write_file_atomic(&dir.join("index.json"), &top_index(index, tag))?;

    let keep: BTreeSet<String> = blobs.iter().map(|(b, _)| b.sha256.to_hex()).collect();
    for entry in fs::read_dir(&blobs_dir).map_err(io_err("list", &blobs_dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    drop(lock);
    Ok(())
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

pub(crate) fn write_file_atomic(path: &Path, data: &[u8]) -> Result<(), OciError> {
    let temp = temp_beside(path);
    fs::write(&temp, data).map_err(io_err("write", &temp))?;
    fs::rename(&temp, path).map_err(io_err("rename into", path))
}

fn copy_object(store: &Store, blob: &BlobInfo, dest: &Path) -> Result<(), OciError> {
    let mut source = store.open_object(&blob.id)?.take(blob.size);
    let mut out = fs::File::create(dest).map_err(io_err("create", dest))?;
    std::io::copy(&mut source, &mut out).map_err(io_err("write", dest))?;
    Ok(())
}
