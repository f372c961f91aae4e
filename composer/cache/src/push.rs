//! Putting results and inputs into a cache: each result as a signed artifact, each blob only if
//! the cache lacks it, several at a time. A rerun after an interruption finds what is already
//! there by digest and uploads the rest; a result the cache already holds with this key's
//! signature costs one small request.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use composer_store::{ActionKey, ActionRecord, Hash, RefKind, Sha256, Store};
use sha2::Digest as _;

use crate::claim::{self, Claim, ClaimedOutput};
use crate::{BlobSource, CacheError, Remote, SecretKey, Signatures, TrustedKeys};
use composer_client::registry::StoreBlob;

/// Uploads at once.
const PUSH_THREADS: usize = 8;

#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PushStats {
    /// Results signed and tagged in this push.
    pub results: u64,
    /// Results the cache already held, signed by this key.
    pub results_present: u64,
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Blobs the cache already held.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the registry instead of uploaded.
    pub blobs_mounted: u64,
}

pub struct Pusher<'a> {
    pub store: &'a Store,
    pub remote: &'a dyn Remote,
    pub key: &'a SecretKey,
    /// Where tree packs are written before upload (their digest is needed first).
    pub temp_dir: &'a Path,
    /// Other repositories of the same registry that may hold blobs (the image just pushed).
    mount_from: Vec<String>,
    empty_present: Mutex<bool>,
    stats: Mutex<PushStats>,
}

impl<'a> Pusher<'a> {
    pub fn new(store: &'a Store, remote: &'a dyn Remote, key: &'a SecretKey, temp_dir: &'a Path) -> Pusher<'a> {
        Pusher {
            store,
            remote,
            key,
            temp_dir,
            mount_from: Vec::new(),
            empty_present: Mutex::new(false),
            stats: Mutex::new(PushStats::default()),
        }
    }

    /// Tries these repositories of the same registry for a blob before uploading it.
    pub fn mount_from(mut self, repositories: Vec<String>) -> Self {
        self.mount_from = repositories;
        self
    }

    pub fn stats(&self) -> PushStats {
        self.stats.lock().expect("stats").clone()
    }

    /// Pushes results and inputs, [`PUSH_THREADS`] at a time; the first error stops the rest.
    pub fn push_all(&self, results: &[(ActionKey, ActionRecord)], inputs: &[Sha256]) -> Result<(), CacheError> {
        let jobs: Vec<Job<'_>> =
            inputs.iter().map(Job::Input).chain(results.iter().map(|(k, r)| Job::Result(k, r))).collect();
        composer_client::parallel::try_each(&jobs, PUSH_THREADS, |job| match job {
            Job::Input(sha) => self.push_input(sha),
            Job::Result(key, record) => self.push_result(key, record),
        })?;
        self.list_inputs(inputs)
    }

    /// Tags a manifest that lists the inputs, so that a registry's garbage collection keeps
    /// them and a bundle's reader knows them.
    fn list_inputs(&self, inputs: &[Sha256]) -> Result<(), CacheError> {
        if inputs.is_empty() {
            return Ok(());
        }
        let mut listed = Vec::new();
        for sha in inputs {
            let blob = self.store.lookup_sha256(sha)?.ok_or_else(|| CacheError::BadArtifact {
                what: sha.oci(),
                reason: crate::ArtifactProblem::NotInStore,
            })?;
            listed.push((*sha, blob.size));
        }
        let (tag, manifest) = claim::inputs_manifest(&listed);
        if self.remote.manifest(&tag)?.is_some_and(|existing| existing == manifest) {
            return Ok(());
        }
        self.empty_config()?;
        self.remote.put_manifest(&tag, &manifest)
    }

    /// An input (a `.deb`, wheel or source) by its SHA-256, as the store holds it.
    pub fn push_input(&self, sha256: &Sha256) -> Result<(), CacheError> {
        let blob = self.store.lookup_sha256(sha256)?.ok_or_else(|| CacheError::BadArtifact {
            what: sha256.oci(),
            reason: crate::ArtifactProblem::NotInStore,
        })?;
        if self.remote.has_blob(sha256, Some(blob.size))? {
            self.stats.lock().expect("stats").blobs_present += 1;
            return Ok(());
        }
        self.upload(sha256, blob.size, &StoreBlob { store: self.store, blob })
    }

    fn upload(&self, sha256: &Sha256, size: u64, data: &dyn BlobSource) -> Result<(), CacheError> {
        for repository in &self.mount_from {
            if self.remote.mount(sha256, size, repository)? {
                self.stats.lock().expect("stats").blobs_mounted += 1;
                return Ok(());
            }
        }
        self.remote.put_blob(sha256, size, data).map_err(|e| match e {
            // A damaged store object stops the read with the store's verdict inside.
            CacheError::Unavailable { source, .. } if source.is::<io::Error>() => {
                match source.downcast::<io::Error>().map(|e| composer_store::StoreError::carried(*e)) {
                    Ok(Ok(store)) => CacheError::Store(store),
                    Ok(Err(io)) => CacheError::Unavailable { cache: self.remote.name().into(), source: Box::new(io) },
                    Err(source) => CacheError::Unavailable { cache: self.remote.name().into(), source },
                }
            }
            other => other,
        })?;
        let mut stats = self.stats.lock().expect("stats");
        stats.blobs_uploaded += 1;
        stats.bytes_uploaded += size;
        Ok(())
    }

    /// The claim the cache holds under `tag`, with its signatures.
    fn present(&self, tag: &str) -> Result<Option<Signed>, CacheError> {
        let Some(manifest) = self.remote.manifest(tag)? else { return Ok(None) };
        let Ok(found) = claim::parse_manifest(&manifest, tag) else { return Ok(None) };
        let bytes = match claim::claim_bytes(self.remote, &found, tag) {
            Ok(Some(bytes)) => bytes,
            // Damaged or missing: pushed again.
            Ok(None) | Err(CacheError::BadArtifact { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Signed { claim: bytes, signatures: found.signatures }))
    }

    pub fn push_result(&self, key: &ActionKey, record: &ActionRecord) -> Result<(), CacheError> {
        let tag = claim::step_tag(key);
        let existing = self.present(&tag)?;
        let ours = TrustedKeys::new(vec![self.key.public()]);
        if let Some(signed) = &existing
            && ours.check(&signed.claim, &signed.signatures).is_ok()
        {
            self.stats.lock().expect("stats").results_present += 1;
            return Ok(());
        }
        let mut outputs = Vec::new();
        for output in &record.outputs {
            outputs.push(match output.kind {
                RefKind::Blob => self.push_object(&output.id)?,
                RefKind::Tree => self.push_tree(&output.id)?,
            });
        }
        let claim = Claim {
            format: composer_store::FORMAT.to_string(),
            key: key.hash().to_hex(),
            step: key.step().to_string(),
            outputs,
            data: record.data.clone(),
        };
        let bytes = claim.to_bytes();
        let mut signatures = Signatures::sign(self.key, &bytes);
        // Other keys' signatures over the very same claim stay beside ours.
        if let Some(signed) = existing
            && signed.claim == bytes
        {
            signatures.merge(signed.signatures);
        }
        // The claim's blob, or the empty config of a manifest that carries its claim inline.
        if bytes.len() <= claim::INLINE_CLAIM_MAX {
            self.empty_config()?;
        } else {
            let claim_sha = Sha256::of(&bytes);
            if !self.remote.has_blob(&claim_sha, Some(bytes.len() as u64))? {
                self.upload(&claim_sha, bytes.len() as u64, &&bytes[..])?;
            }
        }
        self.remote.put_manifest(&tag, &claim::manifest(&claim, &bytes, &signatures))?;
        self.stats.lock().expect("stats").results += 1;
        Ok(())
    }

    /// The empty config blob that manifests without a config of their own name, once per push.
    fn empty_config(&self) -> Result<(), CacheError> {
        let mut present = self.empty_present.lock().expect("empty config");
        if !*present {
            let sha = Sha256::of(claim::EMPTY_CONFIG);
            if !self.remote.has_blob(&sha, Some(claim::EMPTY_CONFIG.len() as u64))? {
                self.upload(&sha, claim::EMPTY_CONFIG.len() as u64, &claim::EMPTY_CONFIG)?;
            }
            *present = true;
        }
        Ok(())
    }

    fn push_object(&self, id: &Hash) -> Result<ClaimedOutput, CacheError> {
        // The SHA-256 is not kept for every object: one read to learn it, checked as it streams.
        let mut reader = self.store.open_object(id)?;
        let mut hasher = HashingWriter::default();
        io::copy(&mut reader, &mut hasher).map_err(|e| store_read(e, id, self.store))?;
        let (sha256, size) = hasher.finish();
        if self.remote.has_blob(&sha256, Some(size))? {
            self.stats.lock().expect("stats").blobs_present += 1;
        } else {
            let blob = composer_store::BlobInfo { id: *id, sha256, size };
            self.upload(&sha256, size, &StoreBlob { store: self.store, blob })?;
        }
        Ok(ClaimedOutput { kind: RefKind::Blob, blake3: *id, sha256, size })
    }

    fn push_tree(&self, id: &Hash) -> Result<ClaimedOutput, CacheError> {
        let temp = tempfile::tempfile_in(self.temp_dir).map_err(|e| CacheError::Io {
            action: "create a temporary file in",
            what: self.temp_dir.display().to_string(),
            source: e,
        })?;
        let mut out = HashingWriter { file: Some(io::BufWriter::new(temp)), ..Default::default() };
        crate::treepack::write(self.store, id, &mut out)?;
        let file = out.file.take().expect("set above");
        let file = file.into_inner().map_err(|e| CacheError::Io {
            action: "write",
            what: "a tree pack".into(),
            source: e.into_error(),
        })?;
        let (sha256, size) = out.finish();
        if self.remote.has_blob(&sha256, Some(size))? {
            self.stats.lock().expect("stats").blobs_present += 1;
        } else {
            self.upload(&sha256, size, &TempFile(file))?;
        }
        Ok(ClaimedOutput { kind: RefKind::Tree, blake3: *id, sha256, size })
    }
}

/// A tree pack written for the upload, read from its start for each attempt.
struct TempFile(std::fs::File);

impl BlobSource for TempFile {
    fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(ReadAt { file: &self.0, offset: 0 }))
    }
}

struct ReadAt<'f> {
    file: &'f std::fs::File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

struct Signed {
    claim: Vec<u8>,
    signatures: Signatures,
}

enum Job<'j> {
    Input(&'j Sha256),
    Result(&'j ActionKey, &'j ActionRecord),
}

fn store_read(e: io::Error, id: &Hash, store: &Store) -> CacheError {
    match composer_store::StoreError::carried(e) {
        Ok(e) => CacheError::Store(e),
        Err(e) => CacheError::Store(composer_store::StoreError::io("read object", &store.object_path(id), e)),
    }
}

/// Hashes what passes through, and writes it on to a file when there is one.
#[derive(Default)]
struct HashingWriter {
    file: Option<io::BufWriter<std::fs::File>>,
    sha256: sha2::Sha256,
    size: u64,
}

impl HashingWriter {
    fn finish(&self) -> (Sha256, u64) {
        (Sha256(self.sha256.clone().finalize().into()), self.size)
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.file {
            Some(file) => file.write(buf)?,
            None => buf.len(),
        };
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}
