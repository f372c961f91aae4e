//! `compose inspect`: reads an OCI image layout (or an oci-archive of one) and reports its index,
//! each platform's manifest and each layer's size and packages.

use std::fs;
use std::io::Read;
use std::path::Path;

use composer_store::confined::Confined;

use serde::Serialize;
use serde_json::Value;

use crate::OciError;

#[derive(Debug, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub packages: Vec<String>,
    /// The image history's comment for the layer (what a layer without packages holds).
    pub comment: String,
}

#[derive(Debug, Serialize)]
pub struct ManifestReport {
    pub platform: String,
    pub digest: String,
    pub config: String,
    pub layers: Vec<LayerReport>,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub path: String,
    pub reference: Option<String>,
    pub index: String,
    pub manifests: Vec<ManifestReport>,
}

/// Inspects an OCI image layout directory, or an `oci-archive` tar of one.
pub fn inspect(layout: &Path) -> Result<ImageReport, OciError> {
    let not = |reason: String| OciError::NotALayout { path: layout.to_path_buf(), reason };
    let files = if layout.is_file() { Some(archive_documents(layout)?) } else { None };
    let dir = match files {
        Some(_) => None,
        None => Some(Confined::open(layout).map_err(|e| not(format!("cannot open it: {e}")))?),
    };
    // Documents are read beneath the layout without following a symlink, and bounded: a layout
    // is data, and may have been made to point elsewhere.
    let read = |relative: &str| -> Result<Vec<u8>, OciError> {
        match (&files, &dir) {
            (Some(files), _) => {
                files.get(relative).cloned().ok_or_else(|| not(format!("the archive holds no {relative}")))
            }
            (None, Some(dir)) => {
                let file = dir.open_file(relative).map_err(|e| not(format!("cannot read {relative}: {e}")))?;
                let mut data = Vec::new();
                file.take(MAX_DOCUMENT + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| not(format!("cannot read {relative}: {e}")))?;
                if data.len() as u64 > MAX_DOCUMENT {
                    return Err(not(format!("{relative} is larger than {MAX_DOCUMENT} bytes")));
                }
                Ok(data)
            }
            (None, None) => unreachable!("a layout is an archive or a directory"),
        }
    };
    let read_json = |relative: &str| -> Result<Value, OciError> {
        serde_json::from_slice(&read(relative)?).map_err(|e| not(format!("{relative} is not JSON: {e}")))
    };
    let blob = |digest: &str| crate::layout::blob_path(digest).map_err(|e| not(e.to_string()));
    let top = read_json("index.json")?;
    let first = top["manifests"].get(0).ok_or_else(|| not("index.json lists no manifest".into()))?;
    let reference = first["annotations"][crate::layout::REF_NAME].as_str().map(str::to_string);
    let index_digest = first["digest"].as_str().unwrap_or("").to_string();
    let index = if first["mediaType"].as_str() == Some("application/vnd.oci.image.index.v1+json") {
        read_json(&blob(&index_digest)?)?
    } else {
        top.clone()
    };
    let mut manifests = Vec::new();
    for descriptor in index["manifests"].as_array().into_iter().flatten() {
        let digest = descriptor["digest"].as_str().unwrap_or("").to_string();
        let manifest = read_json(&blob(&digest)?)?;
        let p = &descriptor["platform"];
        let mut platform = format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?"));
        if let Some(v) = p["variant"].as_str() {
            platform.push('/');
            platform.push_str(v);
        }
        // History entries of non-empty layers line up with the manifest's layers.
        let config_digest = manifest["config"]["digest"].as_str().unwrap_or("").to_string();
        let comments: Vec<String> = read_json(&blob(&config_digest)?)
            .ok()
            .and_then(|config| config["history"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|h| h["empty_layer"] != true)
            .map(|h| h["comment"].as_str().unwrap_or("").to_string())
            .collect();
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, l)| LayerReport {
                comment: comments.get(i).cloned().unwrap_or_default(),
                digest: l["digest"].as_str().unwrap_or("").to_string(),
                media_type: l["mediaType"].as_str().unwrap_or("").to_string(),
                size: l["size"].as_u64().unwrap_or(0),
                packages: l["annotations"][crate::image::PACKAGES_ANNOTATION]
                    .as_str()
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
            })
            .collect();
        manifests.push(ManifestReport { platform, digest, config: config_digest, layers });
    }
    Ok(ImageReport { path: layout.display().to_string(), reference, index: index_digest, manifests })
}

/// The largest JSON document read from a layout.
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// The small files of an `oci-archive` (index.json and JSON-sized blobs), by path. Layers are
/// skipped: their sizes are in the manifests.
fn archive_documents(path: &Path) -> Result<std::collections::HashMap<String, Vec<u8>>, OciError> {
    let io = |source: std::io::Error| OciError::Io { action: "read archive", path: path.to_path_buf(), source };
    let file = fs::File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut out = std::collections::HashMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let name = entry.path().map_err(io)?.to_string_lossy().trim_start_matches("./").to_string();
        if entry.header().entry_type().is_file() && entry.size() <= 4 * 1024 * 1024 {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(io)?;
            out.insert(name, data);
        }
    }
    Ok(out)
}
