//! `compose push` and `compose build --push`: an image to a registry, digests preserved, as the
//! OCI distribution spec has it: every blob the registry lacks (after a HEAD, and a
//! cross-repository mount where one is offered) uploaded, several at a time and large ones in
//! chunks, then each platform's manifest by its digest, and the index last, under the tag. A
//! push stopped midway leaves no tag pointing at a partial image, and a rerun uploads only what
//! is still missing.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use composer_client::registry::{BlobSource, Registry, RegistryError, StoreBlob};
use composer_store::confined::Confined;
use composer_store::staging::Staged;
use composer_store::{Sha256, Store};
use serde_json::Value;
use sha2::Digest as _;

use crate::{LayoutProblem, OciError};

const PUSH_THREADS: usize = 8;
const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// `[docker://]HOST[:PORT]/REPOSITORY[:TAG]`, as podman and skopeo write image references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
}

impl std::str::FromStr for ImageRef {
    type Err = OciError;
    fn from_str(text: &str) -> Result<ImageRef, OciError> {
        // The text is shown redacted: `USER:PASSWORD@` is refused, never repeated.
        let bad = || OciError::Reference(composer_client::redact(text).into_owned());
        let rest = text.strip_prefix("docker://").unwrap_or(text);
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        // The last component may carry the tag; a colon in the host is its port.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        let tag_ok = |t: &str| {
            (1..=128).contains(&t.len())
                && (t.as_bytes()[0].is_ascii_alphanumeric() || t.starts_with('_'))
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !host_ok || !repository.split('/').all(component_ok) || !tag.as_deref().is_none_or(tag_ok) {
            return Err(bad());
        }
        Ok(ImageRef { host: host.to_string(), repository: repository.to_string(), tag })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)?;
        match &self.tag {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        }
    }
}

/// Where the image's documents and blobs are read from.
pub trait ImageSource: Sync {
    /// A JSON document (index or manifest), checked against its digest.
    fn document(&self, sha256: &Sha256) -> Result<Vec<u8>, OciError>;
    /// A blob, opened for each upload attempt; its bytes are checked as they stream.
    fn blob<'s>(&'s self, sha256: &Sha256, size: u64) -> Result<Box<dyn BlobSource + 's>, OciError>;
}

/// An image the store holds (`compose build --push`).
pub struct StoreImage<'s>(pub &'s Store);

impl ImageSource for StoreImage<'_> {
    fn document(&self, sha256: &Sha256) -> Result<Vec<u8>, OciError> {
        let blob = crate::layout::stored_blob(self.0, &sha256.oci())?;
        Ok(self.0.read(&blob.id)?)
    }

    fn blob<'s>(&'s self, sha256: &Sha256, _: u64) -> Result<Box<dyn BlobSource + 's>, OciError> {
        let blob = crate::layout::stored_blob(self.0, &sha256.oci())?;
        Ok(Box::new(StoreBlob { store: self.0, blob }))
    }
}

/// An OCI image layout directory, read beneath it without following a symlink.
pub struct LayoutImage {
    dir: Confined,
}

impl LayoutImage {
    pub fn open(path: &Path) -> Result<LayoutImage, OciError> {
        let dir = Confined::open(path)
            .map_err(|e| OciError::NotALayout { path: path.to_path_buf(), reason: LayoutProblem::CannotOpen(e) })?;
        Ok(LayoutImage { dir })
    }

    /// The image index the layout tags `tag` (or its only one), and the tag.
    pub fn top(&self) -> Result<(Sha256, String), OciError> {
        let not = |reason| OciError::NotALayout { path: self.dir.path().to_path_buf(), reason };
        let mut bytes = Vec::new();
        self.dir
            .open_file("index.json")
            .and_then(|f| f.take(MAX_DOCUMENT).read_to_end(&mut bytes))
            .map_err(|source| not(LayoutProblem::CannotRead { file: "index.json".into(), source }))?;
        let top: Value = serde_json::from_slice(&bytes)
            .map_err(|source| not(LayoutProblem::NotJson { file: "index.json".into(), source }))?;
        let entries = top["manifests"].as_array().cloned().unwrap_or_default();
        let [entry] = entries.as_slice() else {
            return Err(not(LayoutProblem::PushedImages(entries.len())));
        };
        if entry["mediaType"] != "application/vnd.oci.image.index.v1+json" {
            return Err(not(LayoutProblem::NotAnIndex));
        }
        let digest = entry["digest"].as_str().unwrap_or("");
        let sha = crate::layout::blob_path(digest)?;
        let sha: Sha256 =
            sha.trim_start_matches("blobs/sha256/").parse().map_err(|e| OciError::Spec(format!("{e}")))?;
        let tag = entry["annotations"][crate::layout::REF_NAME].as_str().unwrap_or("latest").to_string();
        Ok((sha, tag))
    }
}

impl ImageSource for LayoutImage {
    fn document(&self, sha256: &Sha256) -> Result<Vec<u8>, OciError> {
        let path = format!("blobs/sha256/{}", sha256.to_hex());
        let not = |reason| OciError::NotALayout { path: self.dir.path().to_path_buf(), reason };
        let mut bytes = Vec::new();
        self.dir
            .open_file(&path)
            .and_then(|f| f.take(MAX_DOCUMENT).read_to_end(&mut bytes))
            .map_err(|source| not(LayoutProblem::CannotRead { file: path.clone(), source }))?;
        if Sha256::of(&bytes) != *sha256 {
            return Err(not(LayoutProblem::DigestMismatch(path)));
        }
        Ok(bytes)
    }

    fn blob<'s>(&'s self, sha256: &Sha256, size: u64) -> Result<Box<dyn BlobSource + 's>, OciError> {
        Ok(Box::new(LayoutBlob { dir: &self.dir, sha256: *sha256, size }))
    }
}

struct LayoutBlob<'d> {
    dir: &'d Confined,
    sha256: Sha256,
    size: u64,
}

impl BlobSource for LayoutBlob<'_> {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        let file = self.dir.open_file(&format!("blobs/sha256/{}", self.sha256.to_hex()))?;
        Ok(Box::new(Verifying {
            inner: io::BufReader::new(file),
            expected: self.sha256,
            size: self.size,
            seen: 0,
            hasher: sha2::Sha256::new(),
        }))
    }
}

/// Fails the read that would end a blob whose bytes are not the ones its digest names.
struct Verifying<R> {
    inner: R,
    expected: Sha256,
    size: u64,
    seen: u64,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.seen += n as u64;
        if self.seen > self.size || (n == 0 && Sha256(self.hasher.clone().finalize().into()) != self.expected) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {} in the layout does not match its digest", self.expected.oci()),
            ));
        }
        Ok(n)
    }
}

#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PushReport {
    pub digest: String,
    pub reference: String,
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blobs_present: u64,
    pub blobs_mounted: u64,
}

/// Pushes the image whose index is `index` to `registry` under `tag`. `mount_from`: other
/// repositories of the same registry that may hold its blobs (a cache, say).
pub fn push_image(
    source: &dyn ImageSource,
    index: &Sha256,
    registry: &Registry,
    tag: &str,
    mount_from: &[String],
) -> Result<PushReport, OciError> {
    let spec = |e: serde_json::Error| OciError::Spec(e.to_string());
    let index_bytes = source.document(index)?;
    let index_json: Value = serde_json::from_slice(&index_bytes).map_err(spec)?;
    let mut manifests = Vec::new();
    let mut blobs: Vec<(Sha256, u64)> = Vec::new();
    for descriptor in index_json["manifests"].as_array().into_iter().flatten() {
        let sha = digest_of(descriptor)?;
        let bytes = source.document(&sha)?;
        let manifest: Value = serde_json::from_slice(&bytes).map_err(spec)?;
        let media_type = descriptor["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json");
        for blob in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().into_iter().flatten()) {
            blobs.push((digest_of(blob)?, blob["size"].as_u64().unwrap_or(0)));
        }
        manifests.push((sha, media_type.to_string(), bytes));
    }
    blobs.sort();
    blobs.dedup();
    let report = Mutex::new(PushReport::default());
    composer_client::parallel::try_each(&blobs, PUSH_THREADS, |(sha, size)| {
        push_blob(source, registry, sha, *size, mount_from, &report)
    })?;
    for (sha, media_type, bytes) in &manifests {
        registry.put_manifest(&sha.oci(), media_type, bytes).map_err(OciError::Registry)?;
    }
    registry.put_manifest(tag, "application/vnd.oci.image.index.v1+json", &index_bytes).map_err(OciError::Registry)?;
    let mut report = report.into_inner().expect("report");
    report.digest = index.oci();
    report.reference = format!("{}/{}:{tag}", registry.host(), registry.repository());
    Ok(report)
}

fn digest_of(descriptor: &Value) -> Result<Sha256, OciError> {
    let path = crate::layout::blob_path(descriptor["digest"].as_str().unwrap_or(""))?;
    path.trim_start_matches("blobs/sha256/").parse().map_err(|e| OciError::Spec(format!("{e}")))
}

fn push_blob(
    source: &dyn ImageSource,
    registry: &Registry,
    sha: &Sha256,
    size: u64,
    mount_from: &[String],
    report: &Mutex<PushReport>,
) -> Result<(), OciError> {
    let digest = sha.oci();
    if registry.has_blob(&digest, Some(size)).map_err(OciError::Registry)? {
        report.lock().expect("report").blobs_present += 1;
        return Ok(());
    }
    for other in mount_from.iter().filter(|r| *r != registry.repository()) {
        if registry.mount(&digest, size, other).map_err(OciError::Registry)? {
            report.lock().expect("report").blobs_mounted += 1;
            return Ok(());
        }
    }
    let blob = source.blob(sha, size)?;
    registry.put_blob(&digest, size, blob.as_ref()).map_err(|e| match e {
        RegistryError::Transport { source, .. } if source.is::<io::Error>() => {
            let io = *source.downcast::<io::Error>().expect("checked");
            crate::store_or(io, |io| OciError::Layer { what: digest.clone(), source: io })
        }
        other => OciError::Registry(other),
    })?;
    let mut report = report.lock().expect("report");
    report.blobs_uploaded += 1;
    report.bytes_uploaded += size;
    Ok(())
}

/// An `oci-archive` unpacked for a push: only `oci-layout`, `index.json` and `blobs/sha256/<hex>`
/// members are taken, into a fresh directory under `temp_dir` that is removed when dropped.
pub fn unpack_archive(archive: &Path, temp_dir: &Path) -> Result<(Staged, PathBuf), OciError> {
    let io = |source: io::Error| OciError::Io { action: "read archive", path: archive.to_path_buf(), source };
    let dir = Staged::work_dir(temp_dir, "compose-push-").map_err(io)?;
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("blobs/sha256")).map_err(io)?;
    // A FIFO or a device named as the archive would block or never end.
    let policy = composer_store::userfile::Policy::anywhere(composer_store::userfile::Kind::IMAGE_ARCHIVE);
    let file = composer_store::userfile::open(archive, &policy).map_err(|e| io(io::Error::other(e)))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    for entry in tar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(io)?.to_string_lossy().trim_start_matches("./").to_string();
        let target = match name.as_str() {
            "oci-layout" | "index.json" => root.join(&name),
            blob => match blob.strip_prefix("blobs/sha256/").map(str::parse::<Sha256>) {
                Some(Ok(sha)) => root.join("blobs/sha256").join(sha.to_hex()),
                _ => continue,
            },
        };
        let mut out = std::fs::File::create(&target).map_err(io)?;
        io::copy(&mut entry, &mut out).map_err(io)?;
    }
    Ok((dir, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_parse_as_podman_writes_them() {
        let r: ImageRef = "127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        let r: ImageRef = "docker://registry.test/app".parse().unwrap();
        assert_eq!((r.host.as_str(), r.repository.as_str(), r.tag), ("registry.test", "app", None));
        for bad in ["app", "host/App", "host/app:bad tag", "host//app", "host/app:"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
        for with_password in ["ci:SECRETPW@127.0.0.1:5000/team/app:v1", "docker://ci:SECRETPW@registry.test/app"] {
            let refused = with_password.parse::<ImageRef>().unwrap_err();
            assert!(!refused.to_string().contains("SECRETPW") && refused.to_string().contains("***@"), "{refused}");
            assert!(refused.hint().unwrap().contains("--creds"));
        }
    }
}
