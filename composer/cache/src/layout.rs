//! `dir:PATH`: results kept in an OCI image layout directory, tagged by
//! `org.opencontainers.image.ref.name` in its `index.json`, so that any static web server or
//! object store can serve the directory and OCI tools can read it.
//!
//! What the directory holds is data: every file is read beneath it without following a symlink,
//! as a regular file only (a FIFO planted as a manifest would block a build forever), and
//! documents bounded in size ([`composer_store::confined`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use composer_store::Sha256;
use composer_store::confined::Confined;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::{ArtifactProblem, BlobSource, CacheError, Remote};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// No manifest or index a cache writes comes near this; a bigger one is not ours.
const MAX_DOCUMENT: u64 = 16 << 20;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

pub struct DirCache {
    name: String,
    root: PathBuf,
    /// Tag to manifest digest, read once.
    tags: Mutex<Option<BTreeMap<String, Sha256>>>,
}

impl DirCache {
    /// A layout to read from. Nothing is read until a result is asked for: a build that needs
    /// no cache never touches one, and one that is missing costs a warning then.
    pub fn open(root: &Path) -> DirCache {
        DirCache { name: format!("dir:{}", root.display()), root: root.to_path_buf(), tags: Mutex::new(None) }
    }

    /// A layout to write to, made if the directory is missing or empty. A directory that holds
    /// anything else is refused: the cache never writes among files it did not make.
    pub fn create(root: &Path) -> Result<DirCache, CacheError> {
        let cache =
            DirCache { name: format!("dir:{}", root.display()), root: root.to_path_buf(), tags: Mutex::new(None) };
        if Confined::open(root).and_then(|root| root.file_size("oci-layout")).is_ok_and(|size| size.is_some()) {
            return Ok(cache);
        }
        let empty = match fs::read_dir(root) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(cache.unavailable(e)),
        };
        if !empty {
            return Err(cache.unavailable(io::Error::other("the directory holds files and is not an OCI layout")));
        }
        // The root is the user's to name (a link they made is theirs); nothing beneath it is
        // followed if it is a link, on this write or any later one.
        fs::create_dir_all(root).map_err(|e| cache.unavailable(e))?;
        let mut layout = Confined::open(root).map_err(|e| cache.unavailable(e))?;
        layout.create_dir_all("blobs/sha256").map_err(cache.unavailable_at("blobs/sha256"))?;
        layout.write_atomic("oci-layout", OCI_LAYOUT).map_err(cache.unavailable_at("oci-layout"))?;
        let index = Index { schema_version: 2, media_type: INDEX_MEDIA_TYPE.into(), manifests: vec![] };
        layout
            .write_atomic("index.json", &serde_json::to_vec(&index).expect("index serializes"))
            .map_err(cache.unavailable_at("index.json"))?;
        Ok(cache)
    }

    fn unavailable(&self, e: io::Error) -> CacheError {
        CacheError::Unavailable { cache: self.name.clone(), source: Box::new(e) }
    }

    /// [`DirCache::unavailable`] for what happened at `rel` beneath the layout, named: a link or
    /// a FIFO where a file should be says where it is.
    fn unavailable_at<'s>(&'s self, rel: &'s str) -> impl Fn(io::Error) -> CacheError + 's {
        move |source| CacheError::Unavailable {
            cache: self.name.clone(),
            source: Box::new(AtFile { path: self.root.join(rel), source }),
        }
    }

    fn blob_name(sha256: &Sha256) -> String {
        format!("blobs/sha256/{}", sha256.to_hex())
    }

    /// The layout's root, through which every write goes (no symlink beneath it followed).
    fn writable(&self) -> Result<Confined, CacheError> {
        Confined::open(&self.root).map_err(|e| self.unavailable(e))
    }

    /// Opens the regular file `rel` beneath the layout (see [`Confined::open_file`]).
    fn open_file(&self, rel: &str) -> io::Result<fs::File> {
        Confined::open(&self.root)?.open_file(rel)
    }

    fn read_index(&self) -> Result<Index, CacheError> {
        if !self.root.join("oci-layout").is_file() {
            let missing = io::Error::new(io::ErrorKind::NotFound, "no OCI layout here (no `oci-layout`)");
            return Err(self.unavailable(missing));
        }
        let bytes = Confined::open(&self.root)
            .map_err(|e| self.unavailable(e))?
            .read_file("index.json", MAX_DOCUMENT)
            .map_err(self.unavailable_at("index.json"))?;
        serde_json::from_slice(&bytes).map_err(|e| CacheError::BadArtifact {
            what: format!("{}/index.json", self.name),
            reason: ArtifactProblem::Unparsable(e),
        })
    }

    fn tags(index: &Index) -> BTreeMap<String, Sha256> {
        index
            .manifests
            .iter()
            .filter_map(|m| {
                let tag = m.annotations.get(REF_NAME)?;
                let sha = m.digest.strip_prefix("sha256:")?.parse().ok()?;
                Some((tag.clone(), sha))
            })
            .collect()
    }
}

impl DirCache {
    /// Every tag of the layout.
    pub fn tag_names(&self) -> Result<Vec<String>, CacheError> {
        Ok(Self::tags(&self.read_index()?).into_keys().collect())
    }
}

impl Remote for DirCache {
    fn name(&self) -> &str {
        &self.name
    }

    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let digest = {
            let mut tags = self.tags.lock().expect("tags");
            if tags.is_none() {
                *tags = Some(Self::tags(&self.read_index()?));
            }
            tags.as_ref().expect("just read").get(tag).copied()
        };
        let Some(digest) = digest else { return Ok(None) };
        let Some(reader) = self.blob(&digest)? else { return Ok(None) };
        let mut bytes = Vec::new();
        reader.take(MAX_DOCUMENT).read_to_end(&mut bytes).map_err(|e| self.unavailable(e))?;
        if Sha256::of(&bytes) != digest {
            return Err(CacheError::BadArtifact {
                what: format!("{} tag {tag}", self.name),
                reason: ArtifactProblem::ManifestDigest,
            });
        }
        Ok(Some(bytes))
    }

    fn blob(&self, sha256: &Sha256) -> Result<Option<Box<dyn Read + Send + '_>>, CacheError> {
        match self.open_file(&Self::blob_name(sha256)) {
            Ok(file) => Ok(Some(Box::new(io::BufReader::new(file)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    fn has_blob(&self, sha256: &Sha256, size: Option<u64>) -> Result<bool, CacheError> {
        let found = Confined::open(&self.root).and_then(|root| root.file_size(&Self::blob_name(sha256)));
        Ok(found.ok().flatten().is_some_and(|found| size.is_none_or(|size| found == size)))
    }

    fn put_blob(&self, sha256: &Sha256, size: u64, source: &dyn BlobSource) -> Result<(), CacheError> {
        let name = Self::blob_name(sha256);
        let mut layout = self.writable()?;
        if layout.file_size(&name).map_err(self.unavailable_at(&name))?.is_some() {
            return Ok(());
        }
        let mut data = source.open().map_err(|e| self.unavailable(e))?;
        let (staged, temp_name, file) = layout.staged_file(&name).map_err(self.unavailable_at(&name))?;
        let mut temp = io::BufWriter::new(file);
        let mut hasher = sha2::Sha256::new();
        let mut written = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = data.read(&mut buf).map_err(|e| self.unavailable(e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
            temp.write_all(&buf[..n]).map_err(|e| self.unavailable(e))?;
        }
        let actual = Sha256(hasher.finalize().into());
        if actual != *sha256 || written != size {
            return Err(CacheError::BadArtifact {
                what: format!("blob {} for {}", sha256.oci(), self.name),
                reason: ArtifactProblem::BytesGiven { actual, size: written },
            });
        }
        temp.flush().map_err(|e| self.unavailable(e))?;
        staged.publish(|_| layout.rename(&temp_name, &name)).map_err(|e| self.unavailable(e))
    }

    fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), CacheError> {
        let sha256 = Sha256::of(manifest);
        self.put_blob(&sha256, manifest.len() as u64, &manifest)?;
        // Pushes from several processes each add their tags: one at a time rewrites the index.
        let lock = self.writable()?.lock_file("index.json.lock").map_err(self.unavailable_at("index.json.lock"))?;
        lock.lock().map_err(self.unavailable_at("index.json.lock"))?;
        let mut index = self.read_index()?;
        index.manifests.retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
        index.manifests.push(IndexEntry {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest: sha256.oci(),
            size: manifest.len() as u64,
            annotations: BTreeMap::from([(REF_NAME.to_string(), tag.to_string())]),
        });
        index.manifests.sort_by(|a, b| a.annotations.get(REF_NAME).cmp(&b.annotations.get(REF_NAME)));
        self.writable()?
            .write_atomic("index.json", &serde_json::to_vec(&index).expect("index serializes"))
            .map_err(self.unavailable_at("index.json"))?;
        *self.tags.lock().expect("tags") = Some(Self::tags(&index));
        Ok(())
    }
}

/// Checks that the layout at `root`, unpacked from a bundle whose blobs are `blobs`, has the
/// `oci-layout` and `index.json` that composer writes, byte for byte: each manifest named by
/// exactly one tag, in tag order, present with the size the index gives. An index that merely
/// parses could differ in bytes nothing reads (a field name's case, an annotation), and a bundle
/// is refused for any byte that differs from what was written.
pub(crate) fn check_canonical(root: &Path, blobs: &BTreeMap<Sha256, u64>) -> Result<(), ArtifactProblem> {
    let read = |file: &'static str| {
        Confined::open(root)
            .and_then(|root| root.read_file(file, MAX_DOCUMENT))
            .map_err(|source| ArtifactProblem::Unreadable { file, source })
    };
    if read("oci-layout")? != OCI_LAYOUT {
        return Err(ArtifactProblem::ForeignLayoutMarker);
    }
    let bytes = read("index.json")?;
    let index: Index = serde_json::from_slice(&bytes).map_err(ArtifactProblem::IndexUnparsable)?;
    if index.schema_version != 2 || index.media_type != INDEX_MEDIA_TYPE {
        return Err(ArtifactProblem::NotAnIndex);
    }
    let mut previous: Option<&String> = None;
    for entry in &index.manifests {
        let tag = match entry.annotations.get(REF_NAME) {
            Some(tag) if entry.annotations.len() == 1 && previous.is_none_or(|p| p < tag) => tag,
            _ => return Err(ArtifactProblem::UntaggedManifest),
        };
        let sha = entry.digest.strip_prefix("sha256:").and_then(|hex| hex.parse::<Sha256>().ok());
        let sha = sha.filter(|sha| sha.oci() == entry.digest);
        if entry.media_type != MANIFEST_MEDIA_TYPE || sha.and_then(|sha| blobs.get(&sha)) != Some(&entry.size) {
            return Err(ArtifactProblem::TaggedManifest(tag.clone()));
        }
        previous = Some(tag);
    }
    if serde_json::to_vec(&index).map_err(ArtifactProblem::IndexUnparsable)? != bytes {
        return Err(ArtifactProblem::ForeignIndexForm);
    }
    Ok(())
}
/// An I/O error at a file of a `dir:` cache, with the file's path.
#[derive(Debug, thiserror::Error)]
#[error("`{}`", path.display())]
struct AtFile {
    path: PathBuf,
    #[source]
    source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by an outside attack: a link or a FIFO where the cache's lock file should be was
    /// reported as a bare `Too many levels of symbolic links`, naming no file.
    #[test]
    fn a_link_or_fifo_in_the_layout_is_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cache = DirCache::create(&root).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "mine").unwrap();
        std::os::unix::fs::symlink(&target, root.join("index.json.lock")).unwrap();
        let error = cache.put_manifest("t", b"{}").unwrap_err();
        let chain: Vec<String> = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
        let said = chain.join(": ");
        assert!(said.contains(&format!("`{}`", root.join("index.json.lock").display())), "{said}");
        assert!(said.contains("symbolic links"), "{said}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine");
    }
}
