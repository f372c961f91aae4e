//! Air-gapped transfer: a bundle is one tar of a cache directory (an OCI image layout, the same
//! format as `dir:` caches and registries), holding the signed step results and the inputs
//! (packages, wheels, sources, the signed release files) that recipes' builds use.
//!
//! Writing goes through a temp directory beside the destination and a rename, so a bundle is
//! there whole or not at all. Importing unpacks into a temp directory, then checks everything
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
use crate::{CacheError, DirCache, Remote, SecretKey, Substituters, TrustedKeys};
use crate::{archive, layout};

/// Writes a bundle of `results` (signed with `key`, needed when there are results) and
/// `inputs` to `dest`.
pub fn write(
    store: &Store,
    results: &[(ActionKey, ActionRecord)],
    inputs: &[Sha256],
    locks: &[(String, Vec<u8>)],
    key: Option<&SecretKey>,
    dest: &Path,
) -> Result<PushStats, CacheError> {
    let unused;
    let key = match key {
        Some(key) => key,
        // Nothing is signed in a bundle of inputs: their digests are what vouches for them.
        None if results.is_empty() => {
            unused = SecretKey::generate("unused")?;
            &unused
        }
        None => {
            return Err(CacheError::BadArtifact {
                what: dest.display().to_string(),
                reason: "step results in a bundle must be signed: give a signing key, or --inputs-only".into(),
            });
        }
    };
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("bundle");
    let work = Staged::dir(parent, name).map_err(CacheError::io(parent))?;
    let layout = work.path().join("layout");
    let cache = DirCache::create(&layout)?;
    let pusher = Pusher::new(store, &cache, key, work.path());
    pusher.push_all(results, inputs)?;
    let stats = pusher.stats();
    if !locks.is_empty() {
        let mut listed = Vec::new();
        for (name, bytes) in locks {
            let sha = Sha256::of(bytes);
            cache.put_blob(&sha, bytes.len() as u64, &&bytes[..])?;
            listed.push((name.clone(), sha, bytes.len() as u64));
        }
        cache.put_blob(&Sha256::of(claim::EMPTY_CONFIG), claim::EMPTY_CONFIG.len() as u64, &claim::EMPTY_CONFIG)?;
        cache.put_manifest(claim::LOCKS_TAG, &claim::locks_manifest(&listed))?;
    }
    let temp = work.path().join("bundle.tar");
    archive::write(&layout, &temp)?;
    work.publish(|_| fs::rename(&temp, dest)).map_err(CacheError::io(dest))?;
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
}

/// Checks the bundle at `file` whole, then adds it to the store.
pub fn import(store: &Store, file: &Path, trusted: &TrustedKeys, temp_dir: &Path) -> Result<ImportReport, CacheError> {
    let work = Staged::work_dir(temp_dir, "compose-import-").map_err(CacheError::io(temp_dir))?;
    let layout = work.path().join("layout");
    let blobs = archive::unpack(file, &layout)?;
    let bad = |reason: String| CacheError::BadArtifact { what: file.display().to_string(), reason };
    layout::check_canonical(&layout, &blobs).map_err(bad)?;
    let cache = DirCache::open(&layout);
    let tags = cache.tag_names()?;
    let substituters = Substituters::new(vec![Box::new(DirCache::open(&layout))], trusted.clone());
    let mut hits = Vec::new();
    let mut inputs: BTreeMap<Sha256, u64> = BTreeMap::new();
    let mut locks = Vec::new();
    for tag in &tags {
        if let Some(hex) = tag.strip_prefix(STEP_TAG_PREFIX) {
            if trusted.is_empty() {
                return Err(bad(
                    "it holds step results and no trusted key is set (--trusted-key), or make it with --inputs-only"
                        .into(),
                ));
            }
            let key: Hash = hex.parse().map_err(|e: String| bad(e))?;
            let hit = substituters.ask_hash(0, &key, None)?.ok_or_else(|| bad(format!("{tag} is incomplete")))?;
            for output in &hit.claim.outputs {
                check_output(&layout, output, &tag.to_string())?;
            }
            hits.push(hit);
        } else if tag == claim::LOCKS_TAG {
            let manifest = cache.manifest(tag)?.ok_or_else(|| bad(format!("{tag} is missing")))?;
            for (name, sha, size) in claim::parse_locks(&manifest, tag)? {
                if blobs.get(&sha) != Some(&size) || size > 64 << 20 {
                    return Err(bad(format!("lock file {name} is missing or of another size")));
                }
                let path = layout.join("blobs/sha256").join(sha.to_hex());
                locks.push((name, fs::read(&path).map_err(CacheError::io(&path))?));
            }
        } else if tag.starts_with(INPUTS_TAG_PREFIX) {
            let manifest = cache.manifest(tag)?.ok_or_else(|| bad(format!("{tag} is missing")))?;
            let listed = claim::parse_inputs(&manifest, tag)?;
            if *tag != claim::inputs_tag(&listed) {
                return Err(bad(format!("tag `{tag}` is not the one its inputs list is tagged by")));
            }
            for (sha, size) in listed {
                if blobs.get(&sha) != Some(&size) {
                    return Err(bad(format!("input {} is missing or of another size", sha.oci())));
                }
                inputs.insert(sha, size);
            }
        } else {
            return Err(bad(format!("tag `{tag}` is not one composer writes")));
        }
    }
    // Everything checked: now into the store, results after the objects they name.
    for hit in &hits {
        substituters.fetch(store, hit)?;
    }
    for (sha, size) in &inputs {
        if store.lookup_sha256(sha)?.is_some() {
            continue;
        }
        let path = layout.join("blobs/sha256").join(sha.to_hex());
        let mut source = fs::File::open(&path).map_err(CacheError::io(&path))?;
        let mut writer = store.writer()?;
        io::copy(&mut source, &mut writer).map_err(CacheError::io(&path))?;
        writer.finish_checked(Some((sha, &sha.oci())), Some(*size))?;
    }
    let lock_files = locks.iter().map(|(name, _)| name.clone()).collect();
    Ok(ImportReport {
        results: hits.len() as u64,
        inputs: inputs.len() as u64,
        blobs: blobs.len() as u64,
        locks,
        lock_files,
    })
}

/// The objects a result names, checked in the unpacked bundle: a blob's BLAKE3, a tree pack's
/// manifest and members.
fn check_output(layout: &Path, output: &claim::ClaimedOutput, tag: &str) -> Result<(), CacheError> {
    let path = layout.join("blobs/sha256").join(output.sha256.to_hex());
    let file = fs::File::open(&path).map_err(|e| CacheError::BadArtifact {
        what: tag.to_string(),
        reason: format!("blob {} is missing ({e})", output.sha256.oci()),
    })?;
    let mut reader = io::BufReader::new(file);
    match output.kind {
        RefKind::Blob => {
            let mut hasher = blake3::Hasher::new();
            io::copy(&mut reader, &mut hasher).map_err(CacheError::io(&path))?;
            if Hash(*hasher.finalize().as_bytes()) != output.blake3 {
                return Err(CacheError::BadArtifact {
                    what: tag.to_string(),
                    reason: format!("blob {} is not the object its claim names", output.sha256.oci()),
                });
            }
            Ok(())
        }
        RefKind::Tree => crate::treepack::check(&output.blake3, reader, tag),
    }
}
