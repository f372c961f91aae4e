//! `compose inspect`: reads an image as users hand it over (an OCI layout directory, `DIR:TAG`,
//! `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, layouts other tools wrote)
//! and reports what it is: the digest of the document it shows (an index or a manifest), each
//! platform's config (entrypoint, cmd, user, workdir, env, ports, labels) and layers, with
//! compressed and uncompressed sizes and the packages each layer holds.
//!
//! Everything in an image is data: files are read beneath the layout without following a
//! symlink, as regular files only (a FIFO would block the read forever), every digest is checked
//! to be `sha256:` and 64 hex digits before it becomes a path, and every descriptor followed must
//! give a sane size (a document at most [`MAX_DOCUMENT`], a blob at most [`MAX_BLOB`]) that the
//! bytes read then match, with their digest: what is shown under a digest is what that digest
//! names.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use composer_store::Sha256;
use composer_store::confined::{Confined, open_regular};
use serde::Serialize;
use serde_json::Value;

use crate::{LayoutProblem, OciError};

/// The largest JSON document read from an image.
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;
/// The largest blob (a layer) a descriptor may claim: far above any real layer, and a size of
/// 2^62 bytes or so is refused before anything is read.
const MAX_BLOB: u64 = 1 << 40;
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct LayerReport {
    pub digest: String,
    pub media_type: String,
    /// As stored (compressed, for compressed layers).
    pub size: u64,
    /// The tar inside.
    pub uncompressed_size: u64,
    pub packages: Vec<String>,
    /// The image history's comment for the layer (what a layer without packages holds).
    pub comment: String,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct ConfigReport {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ManifestReport {
    /// `os/architecture[/variant]`, from the index or, where it does not say, the config.
    pub platform: String,
    /// The manifest's digest (for a docker-archive, which holds none, that of the manifest its
    /// readers make of it, as skopeo shows it).
    pub digest: String,
    pub config: String,
    pub config_details: ConfigReport,
    pub size: u64,
    pub uncompressed_size: u64,
    pub layers: Vec<LayerReport>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ImageReport {
    pub path: String,
    /// `oci-layout`, `oci-archive`, `docker-archive` or `registry`.
    pub format: String,
    /// The tag shown.
    pub reference: Option<String>,
    /// Every tag the image holds.
    pub tags: Vec<String>,
    /// The digest of the document shown, and what it is: an image index or a manifest.
    pub digest: String,
    pub media_type: String,
    /// Kept for readers of the earlier output: the same as `digest`.
    pub index: String,
    pub manifests: Vec<ManifestReport>,
}

/// Where an image's files are: a directory, or the members of a tar archive.
enum Source<'r> {
    Dir(Confined),
    Archive {
        path: PathBuf,
        sizes: HashMap<String, u64>,
    },
    /// A registry repository, read as if it were a layout: `index.json` names the tag's
    /// document, blobs and manifests come by digest.
    Registry {
        registry: &'r composer_client::registry::Registry,
        name: String,
        index: Vec<u8>,
    },
}

impl Source<'_> {
    fn not(&self, reason: LayoutProblem) -> OciError {
        OciError::NotALayout { path: self.path(), reason }
    }

    fn path(&self) -> PathBuf {
        match self {
            Source::Dir(dir) => dir.path().to_path_buf(),
            Source::Archive { path, .. } => path.clone(),
            Source::Registry { name, .. } => PathBuf::from(name),
        }
    }

    /// Calls `f` with a reader of `relative`.
    fn with<T>(&self, relative: &str, f: impl FnOnce(&mut dyn Read) -> io::Result<T>) -> Result<T, OciError> {
        let fail = |source: io::Error| self.not(LayoutProblem::CannotRead { file: relative.to_string(), source });
        match self {
            Source::Dir(dir) => {
                let mut file = dir.open_file(relative).map_err(fail)?;
                f(&mut file).map_err(fail)
            }
            Source::Archive { path, .. } => {
                let file = open_regular(path).map_err(fail)?;
                let mut archive = tar::Archive::new(io::BufReader::new(file));
                for entry in archive.entries().map_err(fail)? {
                    let mut entry = entry.map_err(fail)?;
                    if member_name(&entry) == relative {
                        return f(&mut entry).map_err(fail);
                    }
                }
                Err(self.not(LayoutProblem::NotInArchive(relative.to_string())))
            }
            Source::Registry { registry, index, .. } => {
                if relative == "index.json" {
                    return f(&mut &index[..]).map_err(fail);
                }
                let digest = format!("sha256:{}", relative.trim_start_matches("blobs/sha256/"));
                // A manifest is asked for as a manifest, anything else as a blob.
                let registry_error = |e: composer_client::registry::RegistryError| OciError::Registry(e);
                if let Some(mut blob) = registry.blob(&digest).map_err(registry_error)? {
                    return f(&mut blob).map_err(fail);
                }
                match registry.manifest(&digest).map_err(registry_error)? {
                    Some((bytes, _)) => f(&mut &bytes[..]).map_err(fail),
                    None => Err(self.not(LayoutProblem::NotInRegistry(digest))),
                }
            }
        }
    }

    fn read(&self, relative: &str) -> Result<Vec<u8>, OciError> {
        let data = self.with(relative, |r| {
            let mut data = Vec::new();
            r.take(MAX_DOCUMENT + 1).read_to_end(&mut data)?;
            Ok(data)
        })?;
        if data.len() as u64 > MAX_DOCUMENT {
            return Err(self.not(LayoutProblem::TooLarge { file: relative.to_string(), limit: MAX_DOCUMENT }));
        }
        Ok(data)
    }

    fn json(&self, relative: &str) -> Result<Value, OciError> {
        serde_json::from_slice(&self.read(relative)?)
            .map_err(|source| self.not(LayoutProblem::NotJson { file: relative.to_string(), source }))
    }

    fn exists(&self, relative: &str) -> bool {
        match self {
            // Something that is there but not a regular file exists: reading it says what it is.
            Source::Dir(dir) => !matches!(dir.file_stamp(relative), Ok(None)),
            Source::Archive { sizes, .. } => sizes.contains_key(relative),
            Source::Registry { .. } => relative == "index.json",
        }
    }

    /// The document a descriptor names, once its bytes are the size and digest it gives.
    fn document(&self, descriptor: &Descriptor) -> Result<Value, OciError> {
        let relative = descriptor.file(self)?;
        let bytes = self.with(&relative, |r| {
            let mut bytes = Vec::new();
            r.take(descriptor.size + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        })?;
        descriptor.check(self, &relative, bytes.len() as u64, Sha256::of(&bytes))?;
        serde_json::from_slice(&bytes).map_err(|source| self.not(LayoutProblem::NotJson { file: relative, source }))
    }

    /// The size of the tar inside a layer: decompressed as its media type says, while the layer's
    /// own bytes are checked against its descriptor.
    fn uncompressed_size(&self, descriptor: &Descriptor) -> Result<u64, OciError> {
        let relative = descriptor.file(self)?;
        let media_type = descriptor.media_type.as_str();
        let (uncompressed, size, sha256) = self.with(&relative, |r| {
            let mut raw = composer_store::Sha256Reader::new(r.take(descriptor.size + 1));
            let uncompressed = {
                let mut reader: Box<dyn Read + '_> = if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
                    Box::new(flate2::read::MultiGzDecoder::new(&mut raw))
                } else if media_type.ends_with("+zstd") {
                    Box::new(zstd::stream::read::Decoder::new(&mut raw)?)
                } else {
                    Box::new(&mut raw)
                };
                io::copy(&mut reader, &mut io::sink())?
            };
            // Whatever follows the compressed stream is part of the blob too.
            io::copy(&mut raw, &mut io::sink())?;
            Ok((uncompressed, raw.size(), raw.sha256()))
        })?;
        descriptor.check(self, &relative, size, sha256)?;
        Ok(uncompressed)
    }
}

/// What a descriptor in an index or a manifest says of the blob it names, checked to be sane.
struct Descriptor {
    /// Which descriptor this is, for messages: "index.json's entry", "layer 2 of sha256:...".
    what: String,
    digest: String,
    size: u64,
    media_type: String,
}

impl Descriptor {
    /// Reads `value` as a descriptor of a document (`limit` [`MAX_DOCUMENT`]) or a blob
    /// ([`MAX_BLOB`]): a size that is missing, negative, zero, fractional or past the limit is
    /// refused before anything is read.
    fn parse(source: &Source<'_>, value: &Value, what: String, limit: u64) -> Result<Descriptor, OciError> {
        let digest = value["digest"].as_str().unwrap_or("").to_string();
        let size = match value["size"].as_u64() {
            Some(size) if size > 0 && size <= limit => size,
            _ => {
                let size = value.get("size").map_or("(none)".to_string(), Value::to_string);
                let bad = crate::not_a_layout::BadSize { what, digest, size, limit };
                return Err(source.not(LayoutProblem::BadSize(Box::new(bad))));
            }
        };
        let media_type = value["mediaType"].as_str().unwrap_or("").to_string();
        Ok(Descriptor { what, digest, size, media_type })
    }

    fn file(&self, source: &Source<'_>) -> Result<String, OciError> {
        blob(source, &self.digest)
    }

    /// Refuses bytes that are not the size and digest the descriptor gives.
    fn check(&self, source: &Source<'_>, relative: &str, size: u64, sha256: Sha256) -> Result<(), OciError> {
        if size == self.size && sha256.oci() == self.digest {
            return Ok(());
        }
        let found = if size > self.size { format!("more than {} bytes", self.size) } else { format!("{size} bytes") };
        Err(source.not(LayoutProblem::Altered(Box::new(crate::not_a_layout::Altered {
            what: self.what.clone(),
            digest: self.digest.clone(),
            size: self.size,
            file: relative.to_string(),
            found,
            actual: if size > self.size { "(not computed)".to_string() } else { sha256.oci() },
        }))))
    }
}

fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string()
}

/// What the user named: where the image is, in which format, and which tag.
fn open(target: &str) -> Result<(Source<'static>, Option<String>, &'static str), OciError> {
    let (transport, rest) = match target.split_once(':') {
        Some((t @ ("oci" | "oci-archive" | "docker-archive"), rest)) => (Some(t), rest),
        _ => (None, target),
    };
    // `PATH:TAG`, unless PATH itself (with its colon) is what exists.
    let (path, tag) = match rest.rsplit_once(':') {
        Some((path, tag)) if !Path::new(rest).exists() && Path::new(path).exists() => {
            (PathBuf::from(path), Some(tag.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    };
    let not = |reason: LayoutProblem| OciError::NotALayout { path: path.clone(), reason };
    if path.is_dir() && transport.is_none_or(|t| t == "oci") {
        let dir = Confined::open(&path).map_err(|e| not(LayoutProblem::CannotOpen(e)))?;
        return Ok((Source::Dir(dir), tag, "oci-layout"));
    }
    let io = |e: io::Error| not(LayoutProblem::Unreadable(e));
    let file = open_regular(&path).map_err(io)?;
    let mut sizes = HashMap::new();
    for entry in tar::Archive::new(io::BufReader::new(file)).entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.header().entry_type().is_file() {
            sizes.insert(member_name(&entry), entry.size());
        }
    }
    let format = match transport {
        Some("docker-archive") => "docker-archive",
        Some("oci-archive") => "oci-archive",
        _ if sizes.contains_key("index.json") => "oci-archive",
        _ if sizes.contains_key("manifest.json") => "docker-archive",
        _ => return Err(not(LayoutProblem::UnknownFormat)),
    };
    Ok((Source::Archive { path, sizes }, tag, format))
}

/// Inspects the image a registry holds under `tag` (layers are read through to count their
/// uncompressed size).
pub fn inspect_registry(registry: &composer_client::registry::Registry, tag: &str) -> Result<ImageReport, OciError> {
    let name = format!("{}/{}:{tag}", registry.host(), registry.repository());
    let (bytes, media_type) = registry
        .manifest(tag)
        .map_err(OciError::Registry)?
        .ok_or_else(|| OciError::NotALayout { path: PathBuf::from(&name), reason: LayoutProblem::NoSuchTag })?;
    let media_type = match media_type.split(';').next().unwrap_or("").trim() {
        "" => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_default(),
        other => other.to_string(),
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": composer_store::Sha256::of(&bytes).oci(),
            "size": bytes.len(),
            "annotations": { crate::layout::REF_NAME: tag },
        }],
    }))
    .expect("JSON serializes");
    let source = Source::Registry { registry, name: name.clone(), index };
    let mut report = oci(&source, Some(tag))?;
    report.path = format!("docker://{name}");
    report.format = "registry".to_string();
    Ok(report)
}

/// Inspects the image `target` names.
pub fn inspect(target: &str) -> Result<ImageReport, OciError> {
    let (source, tag, format) = open(target)?;
    let mut report = match format {
        "docker-archive" => docker_archive(&source)?,
        _ => oci(&source, tag.as_deref())?,
    };
    report.path = source.path().display().to_string();
    report.format = format.to_string();
    Ok(report)
}

fn blob(source: &Source<'_>, digest: &str) -> Result<String, OciError> {
    crate::layout::blob_path(digest).map_err(|_| source.not(LayoutProblem::BadDigest(digest.to_string())))
}

fn oci(source: &Source<'_>, tag: Option<&str>) -> Result<ImageReport, OciError> {
    if !source.exists("index.json") {
        return Err(source.not(LayoutProblem::NoIndex));
    }
    let top = source.json("index.json")?;
    let entries = top["manifests"].as_array().cloned().unwrap_or_default();
    let tag_of = |e: &Value| e["annotations"][crate::layout::REF_NAME].as_str().map(str::to_string);
    let tags: Vec<String> = entries.iter().filter_map(tag_of).collect();
    let entry = match tag {
        Some(tag) => entries
            .iter()
            .find(|e| tag_of(e).as_deref() == Some(tag))
            .ok_or_else(|| source.not(LayoutProblem::NoSuchImageTag { tag: tag.to_string(), tags: tags.clone() }))?,
        None => match entries.as_slice() {
            [one] => one,
            [] => return Err(source.not(LayoutProblem::NoImage)),
            _ => {
                return Err(source.not(LayoutProblem::SeveralImages { count: entries.len(), tags }));
            }
        },
    };
    let top_entry = match tag_of(entry) {
        Some(tag) => format!("index.json's entry for `{}`", tag.escape_debug()),
        None => "index.json's entry".to_string(),
    };
    let shown = Descriptor::parse(source, entry, top_entry, MAX_DOCUMENT)?;
    let (digest, media_type) = (shown.digest.clone(), shown.media_type.clone());
    let manifests = if media_type == INDEX_TYPE {
        let index = source.document(&shown)?;
        let mut manifests = Vec::new();
        for (i, descriptor) in index["manifests"].as_array().into_iter().flatten().enumerate() {
            let what = format!("manifest {i} of index {digest}");
            manifests.push(oci_manifest(
                source,
                descriptor,
                Descriptor::parse(source, descriptor, what, MAX_DOCUMENT)?,
            )?);
        }
        manifests
    } else {
        vec![oci_manifest(source, entry, shown)?]
    };
    Ok(ImageReport {
        path: String::new(),
        format: String::new(),
        reference: tag_of(entry),
        tags,
        index: digest.clone(),
        digest,
        media_type,
        manifests,
    })
}

fn oci_manifest(source: &Source<'_>, descriptor: &Value, checked: Descriptor) -> Result<ManifestReport, OciError> {
    let digest = checked.digest.clone();
    let manifest = source.document(&checked)?;
    let config_descriptor =
        Descriptor::parse(source, &manifest["config"], format!("the config of manifest {digest}"), MAX_DOCUMENT)?;
    let config_digest = config_descriptor.digest.clone();
    let config = source.document(&config_descriptor)?;
    let platform = platform_of(&descriptor["platform"]).unwrap_or_else(|| platform_of(&config).unwrap_or("?".into()));
    let comments = layer_comments(&config);
    let mut layers = Vec::new();
    for (i, layer) in manifest["layers"].as_array().into_iter().flatten().enumerate() {
        let checked = Descriptor::parse(source, layer, format!("layer {i} of manifest {digest}"), MAX_BLOB)?;
        let uncompressed_size = source.uncompressed_size(&checked)?;
        let Descriptor { digest, size, media_type, .. } = checked;
        layers.push(LayerReport {
            comment: comments.get(i).cloned().unwrap_or_default(),
            size,
            uncompressed_size,
            packages: layer["annotations"][crate::image::PACKAGES_ANNOTATION]
                .as_str()
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            digest,
            media_type,
        });
    }
    Ok(manifest_report(platform, digest, config_digest, &config, layers))
}

fn docker_archive(source: &Source<'_>) -> Result<ImageReport, OciError> {
    let manifest = source.json("manifest.json")?;
    let images = manifest.as_array().cloned().unwrap_or_default();
    let [image] = images.as_slice() else {
        return Err(source.not(LayoutProblem::DockerImages(images.len())));
    };
    let config_path = image["Config"].as_str().unwrap_or("").to_string();
    let config = source.json(&config_path)?;
    let config_digest = format!("sha256:{}", config_path.trim_end_matches(".json").rsplit('/').next().unwrap_or(""));
    let comments = layer_comments(&config);
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let mut layers = Vec::new();
    for (i, path) in image["Layers"].as_array().into_iter().flatten().filter_map(|l| l.as_str()).enumerate() {
        let size = match source {
            Source::Archive { sizes, .. } => sizes.get(path).copied().unwrap_or(0),
            Source::Dir(_) | Source::Registry { .. } => 0,
        };
        layers.push(LayerReport {
            digest: diff_ids.get(i).cloned().unwrap_or_default(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            size,
            uncompressed_size: size,
            packages: Vec::new(),
            comment: comments.get(i).cloned().unwrap_or_default(),
        });
    }
    let platform = platform_of(&config).unwrap_or("?".into());
    let tags: Vec<String> =
        image["RepoTags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_string)).collect();
    // The archive holds no manifest: the one shown is the manifest its readers make of it
    // (skopeo shows the same digest), and the config's digest is shown as the config.
    let config_size = match source {
        Source::Archive { sizes, .. } => sizes.get(&config_path).copied().unwrap_or(0),
        Source::Dir(_) | Source::Registry { .. } => 0,
    };
    let sized: Vec<(String, u64)> = layers.iter().map(|l| (l.digest.clone(), l.uncompressed_size)).collect();
    let digest = crate::archive::docker_manifest_digest(&config_digest, config_size, &sized).oci();
    Ok(ImageReport {
        path: String::new(),
        format: String::new(),
        reference: tags.first().cloned(),
        tags,
        digest: digest.clone(),
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        index: digest.clone(),
        manifests: vec![manifest_report(platform, digest, config_digest, &config, layers)],
    })
}

fn manifest_report(
    platform: String,
    digest: String,
    config_digest: String,
    config: &Value,
    layers: Vec<LayerReport>,
) -> ManifestReport {
    ManifestReport {
        platform,
        digest,
        config: config_digest,
        config_details: config_details(config),
        size: layers.iter().map(|l| l.size).sum(),
        uncompressed_size: layers.iter().map(|l| l.uncompressed_size).sum(),
        layers,
    }
}

/// `os/architecture[/variant]` of a platform object or an image config.
fn platform_of(value: &Value) -> Option<String> {
    let (os, arch) = (value["os"].as_str()?, value["architecture"].as_str()?);
    Some(match value["variant"].as_str() {
        Some(variant) => format!("{os}/{arch}/{variant}"),
        None => format!("{os}/{arch}"),
    })
}

/// The history comments of the layers that are not empty, in layer order.
fn layer_comments(config: &Value) -> Vec<String> {
    config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["empty_layer"] != true)
        .map(|h| h["comment"].as_str().unwrap_or("").to_string())
        .collect()
}

fn config_details(config: &Value) -> ConfigReport {
    let c = &config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
    };
    ConfigReport {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        user: c["User"].as_str().unwrap_or("").to_string(),
        workdir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
        env: strings(&c["Env"]),
        exposed_ports: c["ExposedPorts"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
        labels: c["Labels"]
            .as_object()
            .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default(),
    }
}
