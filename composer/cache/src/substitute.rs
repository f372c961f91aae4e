//! Taking results from caches: asked in the order given, many keys at once, each hit checked
//! against a claim a trusted key signed and each byte against the claim before it enters the
//! store. A cache that fails to answer is left alone for the rest of the run; whatever goes
//! wrong with one result, the caller builds that step itself, told why.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use composer_store::{ActionKey, BlobInfo, Hash, RefKind, Sha256, Store};

use crate::claim::{self, Claim};
use crate::{ArtifactProblem, CacheError, Remote, TrustedKeys};

/// Parallel questions to a cache at once; each is one small request.
const QUERY_THREADS: usize = 8;

/// Results not used, by (cache, reason): how many, and the first step.
type Refused = Mutex<BTreeMap<(usize, String), (usize, String)>>;

/// A result a cache holds for a key, with a claim a trusted key signed.
#[derive(Clone)]
pub struct Hit {
    /// Which cache, in the order given.
    pub cache: usize,
    /// The action key's hash.
    pub key: Hash,
    pub claim: Claim,
    /// The name of the key that signed it.
    pub signer: String,
}

pub struct Substituters {
    remotes: Vec<Box<dyn Remote>>,
    trusted: TrustedKeys,
    down: Vec<AtomicBool>,
    warnings: Mutex<Vec<String>>,
}

impl Substituters {
    pub fn new(remotes: Vec<Box<dyn Remote>>, trusted: TrustedKeys) -> Substituters {
        let down = remotes.iter().map(|_| AtomicBool::new(false)).collect();
        Substituters { remotes, trusted, down, warnings: Mutex::new(Vec::new()) }
    }

    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    pub fn name(&self, cache: usize) -> &str {
        self.remotes[cache].name()
    }

    /// What went wrong since last asked, for the caller to show.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().expect("warnings"))
    }

    fn warn(&self, message: String) {
        self.warnings.lock().expect("warnings").push(message);
    }

    /// A cache that did not answer is not asked again in this run.
    fn give_up(&self, cache: usize, error: &CacheError) {
        if !self.down[cache].swap(true, Ordering::SeqCst) {
            let why = match error {
                CacheError::Unavailable { source, .. } => composer_store::error_chain(source.as_ref()),
                other => composer_store::error_chain(other),
            };
            self.warn(format!("cache {} is not used for the rest of this build: {why}", self.name(cache)));
        }
    }

    fn usable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.remotes.len()).filter(|&i| !self.down[i].load(Ordering::SeqCst))
    }

    /// For each key, the first cache's trusted result, asking up to [`QUERY_THREADS`] at a time.
    /// Results not used are told once per cache and reason, with how many and the first step.
    pub fn query(&self, keys: &[ActionKey]) -> Vec<Option<Hit>> {
        // Without a trusted key no result can be used: nothing to ask.
        if self.trusted.is_empty() {
            return keys.iter().map(|_| None).collect();
        }
        let refused: Refused = Mutex::new(BTreeMap::new());
        let results = composer_client::parallel::map(keys, QUERY_THREADS, |key| self.query_one(key, &refused));
        for ((cache, why), (count, first)) in refused.into_inner().expect("refused") {
            let others = if count > 1 { format!(" and {} more", count - 1) } else { String::new() };
            self.warn(format!("cache {}: the results of {first}{others} are not used: {why}", self.name(cache)));
        }
        results
    }

    fn query_one(&self, key: &ActionKey, refused: &Refused) -> Option<Hit> {
        for cache in self.usable() {
            match self.ask(cache, key) {
                Ok(Some(hit)) => return Some(hit),
                Ok(None) => {}
                Err(error @ (CacheError::Unavailable { .. } | CacheError::Io { .. })) => self.give_up(cache, &error),
                Err(error) => {
                    // The reason without the tag it was found under, so that alike ones add up.
                    let why = match &error {
                        CacheError::BadArtifact { reason, .. } => composer_store::error_chain(reason),
                        other => composer_store::error_chain(other),
                    };
                    let step = format!("{} {}", key.step(), &key.hash().to_hex()[..12]);
                    let mut refused = refused.lock().expect("refused");
                    let entry = refused.entry((cache, why)).or_insert((0, step));
                    entry.0 += 1;
                }
            }
        }
        None
    }

    fn ask(&self, cache: usize, key: &ActionKey) -> Result<Option<Hit>, CacheError> {
        self.ask_hash(cache, &key.hash(), Some(key.step()))
    }

    /// The result filed under the key whose hash is `key` in `cache`, if its claim is signed by a
    /// trusted key and lists the blobs its manifest does (and is for `step`, when known).
    pub fn ask_hash(&self, cache: usize, key: &Hash, step: Option<&str>) -> Result<Option<Hit>, CacheError> {
        let remote = &self.remotes[cache];
        let tag = format!("{}{}", claim::STEP_TAG_PREFIX, key.to_hex());
        let Some(manifest) = remote.manifest(&tag)? else { return Ok(None) };
        let found = claim::parse_manifest(&manifest, &tag)?;
        let bad = |reason| CacheError::BadArtifact { what: tag.clone(), reason };
        let claim_bytes =
            claim::claim_bytes(remote.as_ref(), &found, &tag)?.ok_or_else(|| bad(ArtifactProblem::ClaimMissing))?;
        let signer =
            self.trusted.check(&claim_bytes, &found.signatures).map_err(|why| bad(ArtifactProblem::Untrusted(why)))?;
        let claim = Claim::parse(&claim_bytes, &key.to_hex(), step)?;
        let listed: Vec<(Sha256, u64)> = claim.outputs.iter().map(|o| (o.sha256, o.size)).collect();
        if listed != found.layers {
            return Err(bad(ArtifactProblem::BlobsDiffer));
        }
        Ok(Some(Hit { cache, key: *key, claim, signer }))
    }

    /// Downloads a hit's outputs into the store, each checked against the claim, and records
    /// the result last.
    pub fn fetch(&self, store: &Store, hit: &Hit) -> Result<(), CacheError> {
        let remote = &self.remotes[hit.cache];
        let what =
            |o: &claim::ClaimedOutput| format!("{} of {} from {}", o.sha256.oci(), hit.claim.step, remote.name());
        for output in &hit.claim.outputs {
            if store.contains(&output.blake3) {
                continue;
            }
            let reader = remote
                .blob(&output.sha256)?
                .ok_or_else(|| CacheError::BadArtifact { what: what(output), reason: ArtifactProblem::NoBlob })?;
            match output.kind {
                RefKind::Blob => {
                    // The store's writer hashes both ways as it writes; the claim's digests are
                    // checked before the object becomes visible.
                    let mut writer = store.writer()?;
                    composer_store::copy_large(&mut reader.take(output.size + 1), &mut writer)
                        .map_err(|e| unavailable(remote.as_ref(), e))?;
                    writer
                        .finish_expecting(&output.blake3, Some(&output.sha256), Some(output.size), &what(output))
                        .map_err(|e| CacheError::BadArtifact {
                            what: what(output),
                            reason: ArtifactProblem::Store(e),
                        })?;
                }
                RefKind::Tree => {
                    let mut hashing = composer_store::Sha256Reader::new(reader.take(output.size + 1));
                    crate::treepack::read(store, &output.blake3, &mut hashing, &what(output))?;
                    io::copy(&mut hashing, &mut io::sink()).map_err(|e| unavailable(remote.as_ref(), e))?;
                    let actual = hashing.sha256();
                    if actual != output.sha256 || hashing.size() != output.size {
                        return Err(CacheError::BadArtifact {
                            what: what(output),
                            reason: ArtifactProblem::PackDigest { actual, size: hashing.size() },
                        });
                    }
                }
            }
        }
        store.action_put_hash(&hit.key, &hit.claim.record())?;
        Ok(())
    }

    /// For each input, the first cache that holds it (`compose plan`), asking up to
    /// [`QUERY_THREADS`] at a time.
    pub fn holders(&self, inputs: &[Sha256]) -> Vec<Option<usize>> {
        composer_client::parallel::map(inputs, QUERY_THREADS, |sha| {
            for cache in self.usable() {
                match self.remotes[cache].has_blob(sha, None) {
                    Ok(true) => return Some(cache),
                    Ok(false) => {}
                    Err(error) => self.give_up(cache, &error),
                }
            }
            None
        })
    }

    /// An input named by its SHA-256 (a `.deb`, a wheel, a source) from the first cache that
    /// has it. No signature is needed: whoever named the hash is trusted already, and the bytes
    /// enter the store only if they match it.
    pub fn fetch_input(
        &self,
        store: &Store,
        sha256: &Sha256,
        size: Option<u64>,
        what: &str,
    ) -> Option<(BlobInfo, String)> {
        for cache in self.usable() {
            let remote = &self.remotes[cache];
            let attempt = (|| -> Result<Option<BlobInfo>, CacheError> {
                let Some(reader) = remote.blob(sha256)? else { return Ok(None) };
                let mut writer = store.writer()?;
                io::copy(&mut reader.take(size.map_or(u64::MAX, |s| s + 1)), &mut writer)
                    .map_err(|e| unavailable(remote.as_ref(), e))?;
                Ok(Some(writer.finish_checked(Some((sha256, what)), size)?))
            })();
            match attempt {
                Ok(Some(blob)) => return Some((blob, remote.name().to_string())),
                Ok(None) => {}
                Err(error @ (CacheError::Unavailable { .. } | CacheError::Io { .. })) => self.give_up(cache, &error),
                Err(error) => self.warn(format!(
                    "cache {}: {what} is not used: {}",
                    remote.name(),
                    composer_store::error_chain(&error)
                )),
            }
        }
        None
    }
}

fn unavailable(remote: &dyn Remote, e: io::Error) -> CacheError {
    CacheError::Unavailable { cache: remote.name().to_string(), source: Box::new(e) }
}
