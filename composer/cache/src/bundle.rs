//! Air-gapped transfer: a bundle is one tar of a cache directory (an OCI image layout, the same
//! format as `dir:` caches and registries), holding the signed step results and the inputs
//! (packages, wheels, sources, the signed release files) that recipes' builds use.
//!
//! Writing goes through a temp directory beside the destination and a rename, so a bundle is
//! there whole or not at all (and only over a missing path or a regular file). The lock files
//! it carries are signed with the bundle's key; without one (`--inputs-only` with no key) they
//! travel unsigned, and `compose store import --locks-to` refuses them (see [`crate::locks`]). Importing unpacks into a temp directory, then checks everything
//! (every blob against its digest, every result's signature against the trusted keys, every
//! object of every tree pack against its hash) before a byte enters the store; a bundle with any
//! fault is refused whole and the store is left as it was.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use composer_store::staging::Staged;
use composer_store::{ActionKey, ActionRecord, Hash, RefKind, Sha256, Store};

use crate::claim::{self, INPUTS_TAG_PREFIX, STEP_TAG_PREFIX};
use crate::push::{PushStats, Pusher};
use crate::{ArtifactProblem, CacheError, DirCache, Remote, SecretKey, Substituters, TrustedKeys};
use crate::{archive, layout};

/// Writes a bundle of `results` (signed with `key`, needed when there are results) and
/// `inputs` to `dest`, with `locks` (name, content): signed with `key` too when there is one,
/// else carried unsigned, which `--locks-to` refuses.
pub fn write(
    store: &Store,
    results: &[(ActionKey, ActionRecord)],
    inputs: &[Sha256],
    locks: &[(String, Vec<u8>)],
    key: Option<&SecretKey>,
    dest: &Path,
) -> Result<PushStats, CacheError> {
    for (name, _) in locks {
        crate::locks::check_name(name)
            .map_err(|e| CacheError::BadArtifact { what: dest.display().to_string(), reason: e.into() })?;
    }
    let unused;
    let result_key = match key {
        Some(key) => key,
        // Nothing is signed in a bundle of inputs: their digests are what vouches for them.
        None if results.is_empty() => {
            unused = SecretKey::generate("unused")?;
            &unused
        }
        None => {
            return Err(CacheError::BadArtifact {
                what: dest.display().to_string(),
                reason: ArtifactProblem::UnsignedResults,
            });
        }
    };
    // A FIFO, a device or a file that is not an earlier bundle or archive at `dest` is refused
    // before the work (the file type again at the rename).
    composer_store::staging::check_replaceable_archive(dest).map_err(CacheError::io("replace", dest))?;
    let work = Staged::output_dir(dest).map_err(CacheError::io("create a directory beside", dest))?;
    let layout = work.path().join("layout");
    let cache = DirCache::create(&layout)?;
    let pusher = Pusher::new(store, &cache, result_key, work.path());
    pusher.push_all(results, inputs)?;
    let stats = pusher.stats();
    if !locks.is_empty() {
        let mut listed = Vec::new();
        for (name, bytes) in locks {
            let sha = Sha256::of(bytes);
            cache.put_blob(&sha, bytes.len() as u64, &&bytes[..])?;
            listed.push((name.clone(), sha, bytes.len() as u64));
        }
        let signatures =
            key.map(|key| crate::Signatures::sign(key, &crate::locks::signed_message(&listed))).unwrap_or_default();
        cache.put_blob(&Sha256::of(claim::EMPTY_CONFIG), claim::EMPTY_CONFIG.len() as u64, &claim::EMPTY_CONFIG)?;
        cache.put_manifest(claim::LOCKS_TAG, &claim::locks_manifest(&listed, &signatures))?;
    }
    let temp = work.path().join("bundle.tar");
    archive::write(&layout, &temp)?;
    work.publish_member(&temp, dest).map_err(CacheError::io("write", dest))?;
    Ok(stats)
}

#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct ImportReport {
    pub results: u64,
    pub inputs: u64,
    pub blobs: u64,
    /// The lock files the bundle carries (name, content), checked against their digests; the
    /// caller decides where they go.
    #[serde(skip)]
    pub locks: Vec<(String, Vec<u8>)>,
    pub lock_files: Vec<String>,
    /// The trusted key that signed the lock files, if one did.
    pub locks_signed_by: Option<String>,
}

/// A bundle unpacked and checked whole, not yet in the store.
pub struct Checked {
    file: std::path::PathBuf,
    /// The unpacked bundle, removed when this is dropped.
    _work: Staged,
    layout: std::path::PathBuf,
    substituters: Substituters,
    blobs: usize,
    hits: Vec<crate::Hit>,
    inputs: BTreeMap<Sha256, u64>,
    locks: Vec<(String, Vec<u8>)>,
    locks_signer: Result<String, crate::Untrusted>,
}

/// Checks the bundle at `file` whole, then adds it to the store.
pub fn import(store: &Store, file: &Path, trusted: &TrustedKeys, temp_dir: &Path) -> Result<ImportReport, CacheError> {
    check(file, trusted, temp_dir)?.add_to(store)
}

/// Unpacks the bundle at `file` into `temp_dir` and checks all of it: every blob against its
/// digest, every result's signature and objects, every input list, every lock file's name and
/// digest, and the locks' signature (kept as a verdict: [`Checked::trusted_locks`]).
pub fn check(file: &Path, trusted: &TrustedKeys, temp_dir: &Path) -> Result<Checked, CacheError> {
    // What imports killed before us left (a whole unpacked bundle each) goes first.
    composer_store::leftovers::sweep_work_dirs_of(temp_dir, "compose-import-");
    let work =
        Staged::work_dir(temp_dir, "compose-import-").map_err(CacheError::io("create a directory in", temp_dir))?;
    let layout = work.path().join("layout");
    let blobs = archive::unpack(file, &layout)?;
    let bad = |reason| CacheError::BadArtifact { what: file.display().to_string(), reason };
    layout::check_canonical(&layout, &blobs).map_err(bad)?;
    let cache = DirCache::open(&layout);
    let tags = cache.tag_names()?;
    let substituters = Substituters::new(vec![Box::new(DirCache::open(&layout))], trusted.clone());
    let mut hits = Vec::new();
    let mut inputs: BTreeMap<Sha256, u64> = BTreeMap::new();
    let mut locks = Vec::new();
    let mut locks_signer = Err(crate::Untrusted::Unsigned);
    for tag in &tags {
        if let Some(hex) = tag.strip_prefix(STEP_TAG_PREFIX) {
            if trusted.is_empty() {
                return Err(bad(ArtifactProblem::NoTrustedKey));
            }
            let key: Hash = hex.parse().map_err(|_: String| bad(ArtifactProblem::StepTag(hex.to_string())))?;
            let hit =
                substituters.ask_hash(0, &key, None)?.ok_or_else(|| bad(ArtifactProblem::Incomplete(tag.clone())))?;
            for output in &hit.claim.outputs {
                check_output(&layout, output, &tag.to_string())?;
            }
            hits.push(hit);
        } else if tag == claim::LOCKS_TAG {
            let manifest = cache.manifest(tag)?.ok_or_else(|| bad(ArtifactProblem::TagMissing(tag.clone())))?;
            let (listed, signatures) = claim::parse_locks(&manifest, &file.display().to_string())?;
            locks_signer = trusted.check(&crate::locks::signed_message(&listed), &signatures);
            // A trusted key's name on a signature that does not verify: the locks were changed.
            if let Err(why @ (crate::Untrusted::BadSignature(_) | crate::Untrusted::OtherKey { .. })) = &locks_signer {
                return Err(bad(ArtifactProblem::LockSignature(why.clone())));
            }
            for (name, sha, size) in listed {
                if blobs.get(&sha) != Some(&size) || size > crate::locks::MAX_LOCK {
                    return Err(bad(ArtifactProblem::LockFileMissing(name)));
                }
                let path = layout.join("blobs/sha256").join(sha.to_hex());
                locks.push((name, fs::read(&path).map_err(CacheError::io("read", &path))?));
            }
        } else if tag.starts_with(INPUTS_TAG_PREFIX) {
            let manifest = cache.manifest(tag)?.ok_or_else(|| bad(ArtifactProblem::TagMissing(tag.clone())))?;
            let listed = claim::parse_inputs(&manifest, tag)?;
            if *tag != claim::inputs_tag(&listed) {
                return Err(bad(ArtifactProblem::InputsTag(tag.clone())));
            }
            for (sha, size) in listed {
                if blobs.get(&sha) != Some(&size) {
                    return Err(bad(ArtifactProblem::InputMissing(sha)));
                }
                inputs.insert(sha, size);
            }
        } else {
            return Err(bad(ArtifactProblem::ForeignTag(tag.clone())));
        }
    }
    Ok(Checked {
        file: file.to_path_buf(),
        _work: work,
        layout,
        substituters,
        blobs: blobs.len(),
        hits,
        inputs,
        locks,
        locks_signer,
    })
}

impl Checked {
    /// The bundle's lock files (name, content), whoever signed them.
    pub fn lock_files(&self) -> &[(String, Vec<u8>)] {
        &self.locks
    }

    /// The bundle's lock files, if a trusted key signed them: what may be written beside recipes.
    pub fn trusted_locks(&self) -> Result<&[(String, Vec<u8>)], CacheError> {
        match &self.locks_signer {
            Ok(_) => Ok(&self.locks),
            Err(_) if self.locks.is_empty() => Ok(&[]),
            Err(why) => Err(CacheError::UntrustedLocks { bundle: self.file.display().to_string(), why: why.clone() }),
        }
    }

    /// Adds what was checked to the store: results after the objects they name.
    pub fn add_to(self, store: &Store) -> Result<ImportReport, CacheError> {
        for hit in &self.hits {
            self.substituters.fetch(store, hit)?;
        }
        for (sha, size) in &self.inputs {
            if store.lookup_sha256(sha)?.is_some() {
                continue;
            }
            let path = self.layout.join("blobs/sha256").join(sha.to_hex());
            let mut source = fs::File::open(&path).map_err(CacheError::io("open", &path))?;
            let mut writer = store.writer()?;
            io::copy(&mut source, &mut writer).map_err(CacheError::io("read", &path))?;
            writer.finish_checked(Some((sha, &sha.oci())), Some(*size))?;
        }
        let lock_files = self.locks.iter().map(|(name, _)| name.clone()).collect();
        Ok(ImportReport {
            results: self.hits.len() as u64,
            inputs: self.inputs.len() as u64,
            blobs: self.blobs as u64,
            locks_signed_by: self.locks_signer.ok(),
            locks: self.locks,
            lock_files,
        })
    }
}

/// The objects a result names, checked in the unpacked bundle: a blob's BLAKE3, a tree pack's
/// manifest and members.
fn check_output(layout: &Path, output: &claim::ClaimedOutput, tag: &str) -> Result<(), CacheError> {
    let path = layout.join("blobs/sha256").join(output.sha256.to_hex());
    let file = fs::File::open(&path).map_err(|source| CacheError::BadArtifact {
        what: tag.to_string(),
        reason: ArtifactProblem::BlobMissing { blob: output.sha256, source },
    })?;
    let mut reader = io::BufReader::new(file);
    match output.kind {
        RefKind::Blob => {
            let mut hasher = blake3::Hasher::new();
            io::copy(&mut reader, &mut hasher).map_err(CacheError::io("read", &path))?;
            if Hash(*hasher.finalize().as_bytes()) != output.blake3 {
                return Err(CacheError::BadArtifact {
                    what: tag.to_string(),
                    reason: ArtifactProblem::NotTheClaimedObject(output.sha256),
                });
            }
            Ok(())
        }
        RefKind::Tree => crate::treepack::check(&output.blake3, reader, tag),
    }
}
