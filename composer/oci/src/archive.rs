//! Single-file exports: `oci-archive` (a tar of the OCI layout) and `docker-archive` (the
//! `docker save` format: `manifest.json`, the config and one uncompressed `layer.tar` per layer,
//! for one platform). Both are deterministic tars written through a temp file and a rename.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use composer_store::confined::UnnamedFile;
use composer_store::staging::Staged;
use composer_store::{BlobInfo, Store};
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

pub fn write_oci_archive(store: &Store, dest: &Path, index: &BlobInfo, tag: &str) -> Result<(), OciError> {
    let blobs = crate::layout::image_blobs(store, index)?;
    with_temp_file(dest, |tar| {
        let w = write_error(dest);
        tar.append(&header("oci-layout", crate::layout::OCI_LAYOUT.len() as u64, false), crate::layout::OCI_LAYOUT)
            .map_err(&w)?;
        let top = crate::layout::top_index(index, tag);
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

/// Writes one platform's image (`manifest` is its manifest blob) in `docker save` format.
pub fn write_docker_archive(store: &Store, dest: &Path, manifest: &BlobInfo, repo_tag: &str) -> Result<(), OciError> {
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
            tar.append(&header(&format!("{hex}/"), 0, true), io::empty()).map_err(&w)?;
            tar.append(&header(&name, size, false), decompress(store, blob, media_type)?).map_err(&w)?;
            layer_names.push(name);
        }
        let all_layers: Vec<String> =
            diff_ids.iter().map(|d| format!("{}/layer.tar", d.trim_start_matches("sha256:"))).collect();
        let manifest =
            crate::canonical_json(&json!([{ "Config": config_name, "RepoTags": [repo_tag], "Layers": all_layers }]));
        tar.append(&header("manifest.json", manifest.len() as u64, false), manifest.as_slice()).map_err(&w)?;
        Ok(())
    })
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
