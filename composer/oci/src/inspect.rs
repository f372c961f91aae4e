//! `compose inspect`: reads an OCI image layout and reports its index, each platform's manifest
//! and each layer's size and packages.

use std::fs;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::OciError;

#[derive(Debug, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub packages: Vec<String>,
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

pub fn inspect(layout: &Path) -> Result<ImageReport, OciError> {
    let not = |reason: String| OciError::NotALayout { path: layout.to_path_buf(), reason };
    let read_json = |path: &Path| -> Result<Value, OciError> {
        let bytes = fs::read(path).map_err(|e| not(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| not(format!("{} is not JSON: {e}", path.display())))
    };
    let blob = |digest: &str| layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let top = read_json(&layout.join("index.json"))?;
    let first = top["manifests"].get(0).ok_or_else(|| not("index.json lists no manifest".into()))?;
    let reference = first["annotations"][crate::layout::REF_NAME].as_str().map(str::to_string);
    let index_digest = first["digest"].as_str().unwrap_or("").to_string();
    let index = if first["mediaType"].as_str() == Some("application/vnd.oci.image.index.v1+json") {
        read_json(&blob(&index_digest))?
    } else {
        top.clone()
    };
    let mut manifests = Vec::new();
    for descriptor in index["manifests"].as_array().into_iter().flatten() {
        let digest = descriptor["digest"].as_str().unwrap_or("").to_string();
        let manifest = read_json(&blob(&digest))?;
        let p = &descriptor["platform"];
        let mut platform = format!("{}/{}", p["os"].as_str().unwrap_or("?"), p["architecture"].as_str().unwrap_or("?"));
        if let Some(v) = p["variant"].as_str() {
            platform.push('/');
            platform.push_str(v);
        }
        let layers = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| LayerReport {
                digest: l["digest"].as_str().unwrap_or("").to_string(),
                media_type: l["mediaType"].as_str().unwrap_or("").to_string(),
                size: l["size"].as_u64().unwrap_or(0),
                packages: l["annotations"][crate::image::PACKAGES_ANNOTATION]
                    .as_str()
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
            })
            .collect();
        manifests.push(ManifestReport {
            platform,
            digest,
            config: manifest["config"]["digest"].as_str().unwrap_or("").to_string(),
            layers,
        });
    }
    Ok(ImageReport { path: layout.display().to_string(), reference, index: index_digest, manifests })
}
