//! Image config, manifest and index documents, built with `oci-spec` types and written as
//! canonical JSON into the store.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use composer_store::{BlobInfo, Store};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};

use crate::{LayerBlob, OciError, canonical_json};

/// Annotation on each layer descriptor listing the packages the layer holds.
pub const PACKAGES_ANNOTATION: &str = "dev.composer.layer.packages";

#[derive(Debug, Clone)]
pub struct LayerDescriptor {
    pub layer: LayerBlob,
    /// What the layer holds, for history and `compose inspect`.
    pub packages: Vec<String>,
    pub comment: String,
}

/// The runtime configuration of an image (OCI `config.config`).
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One platform's image: its manifest descriptor (with platform) for the index.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub manifest: Descriptor,
    pub config: BlobInfo,
}

fn spec_err(e: impl std::fmt::Display) -> OciError {
    OciError::Spec(e.to_string())
}

pub fn digest(blob: &BlobInfo) -> Digest {
    Digest::from_str(&blob.sha256.oci()).expect("sha256 digests are valid")
}

pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil-from-days (H. Hinnant), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Writes the config and manifest of one platform into the store.
pub fn write_platform_image(
    store: &Store,
    architecture: &str,
    variant: Option<&str>,
    spec: &ImageSpec,
    layers: &[LayerDescriptor],
    epoch: u64,
) -> Result<PlatformImage, OciError> {
    let created = rfc3339(epoch);
    let mut config = ConfigBuilder::default();
    if let Some(v) = &spec.entrypoint {
        config = config.entrypoint(v.clone());
    }
    if let Some(v) = &spec.cmd {
        config = config.cmd(v.clone());
    }
    if !spec.env.is_empty() {
        config = config.env(spec.env.clone());
    }
    if let Some(v) = &spec.workdir {
        config = config.working_dir(v.clone());
    }
    if let Some(v) = &spec.user {
        config = config.user(v.clone());
    }
    if !spec.labels.is_empty() {
        config = config.labels(spec.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    if !spec.exposed_ports.is_empty() {
        config = config.exposed_ports(spec.exposed_ports.clone());
    }
    if !spec.volumes.is_empty() {
        config = config.volumes(spec.volumes.clone());
    }
    if let Some(v) = &spec.stop_signal {
        config = config.stop_signal(v.clone());
    }
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(created.clone())
                // The tool, not its version: a new release of composer that builds the same
                // layers gives the same image (and cache hits); which version built an image is
                // provenance's to record, not the image's.
                .created_by("composer")
                .comment(l.comment.clone())
                .build()
                .map_err(spec_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.layer.diff_id.oci()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)?;
    let mut image = ImageConfigurationBuilder::default()
        .architecture(Arch::from(architecture))
        .os(Os::Linux)
        .created(created)
        .config(config.build().map_err(spec_err)?)
        .rootfs(rootfs)
        .history(history);
    if let Some(v) = variant {
        image = image.variant(v.to_string());
    }
    let image = image.build().map_err(spec_err)?;
    let config_blob = store.put_bytes(&canonical_json(&image))?;

    let layer_descriptors = layers
        .iter()
        .map(|l| {
            let mut annotations = HashMap::new();
            if !l.packages.is_empty() {
                annotations.insert(PACKAGES_ANNOTATION.to_string(), l.packages.join(" "));
            }
            DescriptorBuilder::default()
                .media_type(MediaType::from(l.layer.compression.media_type()))
                .digest(digest(&l.layer.blob))
                .size(l.layer.blob.size)
                .annotations(annotations)
                .build()
                .map_err(spec_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config_descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageConfig)
        .digest(digest(&config_blob))
        .size(config_blob.size)
        .build()
        .map_err(spec_err)?;
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(layer_descriptors);
    if !spec.annotations.is_empty() {
        manifest = manifest.annotations(spec.annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let manifest = manifest.build().map_err(spec_err)?;
    let manifest_blob = store.put_bytes(&canonical_json(&manifest))?;

    let mut platform = PlatformBuilder::default().architecture(Arch::from(architecture)).os(Os::Linux);
    if let Some(v) = variant {
        platform = platform.variant(v.to_string());
    }
    let descriptor = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(digest(&manifest_blob))
        .size(manifest_blob.size)
        .platform(platform.build().map_err(spec_err)?)
        .build()
        .map_err(spec_err)?;
    Ok(PlatformImage { manifest: descriptor, config: config_blob })
}

/// Writes the image index over every platform's manifest.
pub fn write_index(
    store: &Store,
    images: &[PlatformImage],
    annotations: &BTreeMap<String, String>,
) -> Result<BlobInfo, OciError> {
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(images.iter().map(|i| i.manifest.clone()).collect::<Vec<_>>());
    if !annotations.is_empty() {
        index = index.annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let index = index.build().map_err(spec_err)?;
    Ok(store.put_bytes(&canonical_json(&index))?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_epochs_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
