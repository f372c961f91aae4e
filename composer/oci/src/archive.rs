//! Single-file exports: `oci-archive` (a tar of the OCI layout) and `docker-archive` (the
//! `docker save` format: `manifest.json`, the config and one uncompressed `layer.tar` per layer,
//! for one platform). Both are deterministic tars written through a temp file and a rename.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use composer_store::confined::UnnamedFile;
use composer_store::staging::Staged;
use composer_store::{BlobInfo, Sha256, Store};
use serde_json::{Value, json};

use crate::OciError;

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> OciError + 'p {
    move |source| OciError::Io { action, path: path.to_path_buf(), source }
}

fn header(path: &str, size: u64, directory: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if directory { tar::EntryType::Directory } else { tar::EntryType::Regular });
    h.set_path(path).expect("archive paths are short");
    h.set_mode(if directory { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    h
}

fn with_temp_file(
    dest: &Path,
    write: impl FnOnce(&mut tar::Builder<io::BufWriter<fs::File>>) -> Result<(), OciError>,
) -> Result<(), OciError> {
    if dest.is_dir() {
        return Err(OciError::Io {
            action: "write",
            path: dest.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::IsADirectory,
                "an archive output must be a file, this is a directory",
            ),
        });
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let name = dest.file_name().ok_or_else(|| OciError::Io {
        action: "write",
        path: dest.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "an archive output needs a file name"),
    })?;
    // Only a missing path, an empty file or an earlier archive is replaced; the file type is
    // checked again at the rename, and here so that a FIFO or a device is refused before the work.
    composer_store::staging::check_replaceable_archive(dest).map_err(io_err("write", dest))?;
    composer_store::leftovers::sweep_beside(parent, &name.to_string_lossy());
    // No temp file beside a path the user named: the archive has no name until it is whole.
    match UnnamedFile::create_in(parent) {
        Ok(mut unnamed) => {
            let file = unnamed.file().try_clone().map_err(io_err("create", dest))?;
            let mut builder = tar::Builder::new(io::BufWriter::new(file));
            write(&mut builder)?;
            builder.finish().map_err(io_err("write", dest))?;
            builder.get_mut().flush().map_err(io_err("write", dest))?;
            drop(builder);
            return unnamed.publish(name, dest).map_err(io_err("write", dest));
        }
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(e) => return Err(io_err("create", dest)(e)),
    }
    // A filesystem without O_TMPFILE: a temp file beside it, removed if the write fails.
    let (staged, file) =
        Staged::file(parent, &name.to_string_lossy()).map_err(io_err("create a temp file in", parent))?;
    let temp = staged.path().to_path_buf();
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    write(&mut builder)?;
    builder.finish().map_err(io_err("write", &temp))?;
    builder.get_mut().flush().map_err(io_err("write", &temp))?;
    drop(builder);
    staged.publish_to(dest).map_err(io_err("write", dest))
}

/// A write error, or the store's verdict on a damaged object that was being copied in.
fn write_error(dest: &Path) -> impl Fn(io::Error) -> OciError + '_ {
    move |e| crate::store_or(e, |source| OciError::Io { action: "write", path: dest.to_path_buf(), source })
}

pub fn write_oci_archive(store: &Store, dest: &Path, index: &BlobInfo, tags: &[String]) -> Result<(), OciError> {
    let blobs = crate::layout::image_blobs(store, index)?;
    with_temp_file(dest, |tar| {
        let w = write_error(dest);
        tar.append(&header("oci-layout", crate::layout::OCI_LAYOUT.len() as u64, false), crate::layout::OCI_LAYOUT)
            .map_err(&w)?;
        let top = crate::layout::top_index(index, tags);
        tar.append(&header("index.json", top.len() as u64, false), top.as_slice()).map_err(&w)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            tar.append(&header(dir, 0, true), io::empty()).map_err(&w)?;
        }
        let mut sorted = blobs.clone();
        sorted.sort_by_key(|(b, _)| b.sha256);
        for (blob, _) in sorted {
            let file = store.open_blob(&blob)?;
            tar.append(&header(&format!("blobs/sha256/{}", blob.sha256.to_hex()), blob.size, false), file)
                .map_err(&w)?;
        }
        Ok(())
    })
}

/// The digests a docker-archive is known by elsewhere: neither is the OCI manifest's, which the
/// archive does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DockerDigests {
    /// The config's digest: the image ID `docker load` and `docker images` show.
    pub image_id: Sha256,
    /// The Docker schema 2 manifest that readers of the archive (containers/image: skopeo,
    /// podman) make from it, with each layer as the uncompressed tar it holds: what `skopeo
    /// inspect docker-archive:FILE` shows as `Digest`.
    pub manifest: Sha256,
}

/// Writes one platform's image (`manifest` is its manifest blob) in `docker save` format.
pub fn write_docker_archive(
    store: &Store,
    dest: &Path,
    manifest: &BlobInfo,
    repo_tags: &[String],
) -> Result<DockerDigests, OciError> {
    let spec = |e: String| OciError::Spec(e);
    let manifest_json: Value = serde_json::from_slice(&store.read(&manifest.id)?).map_err(|e| spec(e.to_string()))?;
    let lookup = |digest: &str| crate::layout::stored_blob(store, digest);
    let config = lookup(manifest_json["config"]["digest"].as_str().unwrap_or(""))?;
    let config_json: Value = serde_json::from_slice(&store.read(&config.id)?).map_err(|e| spec(e.to_string()))?;
    // Each becomes a name in the archive: a digest, checked as one, never a path.
    let diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let text = d.as_str().unwrap_or("");
            text.parse::<composer_store::Sha256>()
                .ok()
                .filter(|_| text.starts_with("sha256:"))
                .map(|sha| sha.oci())
                .ok_or_else(|| spec(format!("diff_id `{}` is not a sha256 digest", text.escape_debug())))
        })
        .collect::<Result<_, _>>()?;
    let layers: Vec<(BlobInfo, String)> = manifest_json["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| Ok((lookup(l["digest"].as_str().unwrap_or(""))?, l["mediaType"].as_str().unwrap_or("").to_string())))
        .collect::<Result<_, OciError>>()?;
    if layers.len() != diff_ids.len() {
        return Err(spec("the config's diff_ids do not match the manifest's layers".into()));
    }
    let mut sizes: Vec<(String, u64)> = Vec::new();
    with_temp_file(dest, |tar| {
        let w = write_error(dest);
        let config_name = format!("{}.json", config.sha256.to_hex());
        let config_bytes = store.read(&config.id)?;
        tar.append(&header(&config_name, config_bytes.len() as u64, false), config_bytes.as_slice()).map_err(&w)?;
        let mut layer_names = Vec::new();
        for ((blob, media_type), diff_id) in layers.iter().zip(&diff_ids) {
            let hex = diff_id.trim_start_matches("sha256:");
            let name = format!("{hex}/layer.tar");
            if layer_names.contains(&name) {
                continue;
            }
            // The uncompressed size is needed up front; decompress once to count, once to copy.
            let size = io::copy(&mut decompress(store, blob, media_type)?, &mut io::sink()).map_err(&w)?;
            sizes.push((diff_id.clone(), size));
            tar.append(&header(&format!("{hex}/"), 0, true), io::empty()).map_err(&w)?;
            tar.append(&header(&name, size, false), decompress(store, blob, media_type)?).map_err(&w)?;
            layer_names.push(name);
        }
        let all_layers: Vec<String> =
            diff_ids.iter().map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:"))).collect();
        let manifest =
            crate::canonical_json(&json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": all_layers }]));
        tar.append(&header("manifest.json", manifest.len() as u64, false), manifest.as_slice()).map_err(&w)?;
        Ok(())
    })?;
    let size_of = |diff_id: &String| sizes.iter().find(|(d, _)| d == diff_id).map_or(0, |(_, size)| *size);
    let layers: Vec<(String, u64)> = diff_ids.iter().map(|d| (d.clone(), size_of(d))).collect();
    Ok(DockerDigests {
        image_id: config.sha256,
        manifest: docker_manifest_digest(&config.sha256.oci(), config.size, &layers),
    })
}

/// The digest of the Docker schema 2 manifest containers/image makes from a docker-archive: its
/// config, and each layer by its diff_id and uncompressed size, under the gzip layer media type
/// (which it gives every layer of such an archive), serialized as Go's `encoding/json` does.
/// Checked against skopeo by `tests/e2e/docker.rs`.
/// `layers`: each layer's diff_id and uncompressed size, in order.
pub(crate) fn docker_manifest_digest(config_digest: &str, config_size: u64, layers: &[(String, u64)]) -> Sha256 {
    let layers: Vec<String> = layers
        .iter()
        .map(|(diff_id, size)| {
            format!(
                r#"{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{size},"digest":"{diff_id}"}}"#
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{}"}},"layers":[{}]}}"#,
        config_size,
        config_digest,
        layers.join(",")
    );
    Sha256::of(manifest.as_bytes())
}

fn decompress<'s>(store: &'s Store, blob: &BlobInfo, media_type: &str) -> Result<Box<dyn Read + 's>, OciError> {
    let file = io::BufReader::new(store.open_blob(blob)?);
    Ok(if media_type.ends_with("+zstd") {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(|e| OciError::Spec(e.to_string()))?)
    } else if media_type.ends_with("+gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

#[cfg(test)]
mod docker_digest_tests {
    use super::*;

    /// The digest skopeo 1.9 printed (`skopeo inspect docker-archive:`) for an archive of this
    /// config and these layers, as composer writes one.
    #[test]
    fn the_docker_manifest_digest_is_the_one_skopeo_shows() {
        let config = "sha256:5355f22cf35b5459a6623031d224328afe3de8aec621eee6484c7b0bf9069451";
        let layers = [
            (4608, "d1b46b0e0b8243ab700c086f84428fd99542cc8a54a3900339328a84c0e8c866"),
            (4608, "1a4847808c0e19581cdf1ad8b75654f3c527e3fc05932cf2da2385e186993dc8"),
            (4608, "c5034c579b5d6de7e911ef9b6d51842da0364d9d1fe3474b5aa7e3f4f1e63037"),
            (4608, "c01f82e99843f769ec6cb059d97b9413edc987b25832194984eb5ce2fcc3cae2"),
            (4608, "1804c5eb49533ebcd8f046728f065fc8dc990c091d177ab4009ef637f2195641"),
            (4608, "b24bc64d81d9a1eb908d23128ee514895c3a4c0aaeed6775fadb7d3596abe63c"),
            (19456, "683edfecee53acd888f89fcb809502b7c890b446656856568b10dc85c9277565"),
        ];
        let layers: Vec<(String, u64)> = layers.iter().map(|(size, hex)| (format!("sha256:{hex}"), *size)).collect();
        assert_eq!(
            docker_manifest_digest(config, 1410, &layers).to_hex(),
            "44ca81a8059bcc3f103e61011a8253be86b58f319593dbccb90935149c16cf84"
        );
    }
}
