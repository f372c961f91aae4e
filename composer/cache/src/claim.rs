//! What a pushed step result says about itself, and the OCI artifact that carries it.
//!
//! A result is one image manifest (`artifactType` [`ARTIFACT_TYPE`]) tagged `step-<key>`: its
//! config blob is the [`Claim`] (store format, action key, step, and each output's BLAKE3, SHA-256
//! and size), its layers are the outputs in the claim's order (an object as itself, so a layer
//! result is the very blob its image holds; a tree as one [`crate::treepack`]), and the
//! annotation [`SIGNATURES_ANNOTATION`] holds the Ed25519 signatures over the claim's bytes.

use std::collections::HashMap;
use std::str::FromStr;

use composer_store::{ActionKey, ActionRecord, Hash, ObjectRef, RefKind, Sha256};
use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, ImageManifest, ImageManifestBuilder, MediaType};
use serde::{Deserialize, Serialize};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::signing::Signatures;
use crate::{ArtifactProblem, CacheError};

pub const ARTIFACT_TYPE: &str = "application/vnd.composer.step.v1";
pub const CLAIM_MEDIA_TYPE: &str = "application/vnd.composer.claim.v1+json";
pub const OBJECT_MEDIA_TYPE: &str = "application/vnd.composer.object.v1";
pub const TREE_MEDIA_TYPE: &str = "application/vnd.composer.tree.v1.tar";
pub const SIGNATURES_ANNOTATION: &str = "dev.composer.signatures";
/// The public keys of those who signed (`NAME:BASE64`, space-separated), as they say: only for
/// telling a key of a trusted name apart from the trusted key in an error.
pub const SIGNERS_ANNOTATION: &str = "dev.composer.signers";

/// The tag a step result is found by.
pub fn step_tag(key: &ActionKey) -> String {
    format!("{STEP_TAG_PREFIX}{}", key.hash().to_hex())
}

pub const STEP_TAG_PREFIX: &str = "step-";
/// Tags of the manifests that list inputs (packages, wheels, sources) so that a registry keeps
/// them: `inputs-<first 16 hex digits of the SHA-256 of their sorted digests>`.
pub const INPUTS_TAG_PREFIX: &str = "inputs-";
pub const INPUTS_ARTIFACT_TYPE: &str = "application/vnd.composer.inputs.v1";

/// The tag of the manifest that lists `inputs`.
pub fn inputs_tag(inputs: &[(Sha256, u64)]) -> String {
    let listed: String = inputs.iter().map(|(sha, _)| sha.oci() + "\n").collect();
    format!("{INPUTS_TAG_PREFIX}{}", &Sha256::of(listed.as_bytes()).to_hex()[..16])
}

/// The manifest that lists `inputs`, and its tag.
pub fn inputs_manifest(inputs: &[(Sha256, u64)]) -> (String, Vec<u8>) {
    let tag = inputs_tag(inputs);
    let empty = EMPTY_CONFIG;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(INPUTS_ARTIFACT_TYPE.to_string()))
        .config(descriptor(EMPTY_MEDIA_TYPE, &Sha256::of(empty), empty.len() as u64))
        .layers(inputs.iter().map(|(sha, size)| descriptor(OBJECT_MEDIA_TYPE, sha, *size)).collect::<Vec<_>>())
        .build()
        .expect("manifest fields are set");
    (tag, composer_oci::canonical_json(&manifest))
}

/// The blobs an inputs manifest lists.
pub fn parse_inputs(bytes: &[u8], what: &str) -> Result<Vec<(Sha256, u64)>, CacheError> {
    let bad = |reason| CacheError::BadArtifact { what: what.to_string(), reason };
    let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| bad(ArtifactProblem::Manifest(e)))?;
    if manifest.artifact_type().as_ref().map(|t| t.to_string()).as_deref() != Some(INPUTS_ARTIFACT_TYPE) {
        return Err(bad(ArtifactProblem::NotInputs));
    }
    manifest.layers().iter().map(|l| Ok((sha256_of(l.digest())?, l.size()))).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedOutput {
    pub kind: RefKind,
    /// The object's BLAKE3 (for a tree, its manifest's).
    pub blake3: Hash,
    /// The transported blob's SHA-256 and size: the object itself, or the tree's pack.
    pub sha256: Sha256,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub format: String,
    /// The action key's hex.
    pub key: String,
    pub step: String,
    pub outputs: Vec<ClaimedOutput>,
    /// The action record's step-specific data, as the pushing store recorded it.
    pub data: serde_json::Value,
}

impl Claim {
    pub fn to_bytes(&self) -> Vec<u8> {
        composer_oci::canonical_json(self)
    }

    /// The claim in `bytes`, which must be for the key whose hex is `key` (and, when known, for
    /// `step`): a result filed under another key's tag is refused.
    pub fn parse(bytes: &[u8], key: &str, step: Option<&str>) -> Result<Claim, CacheError> {
        let what = || format!("step-{key}");
        let claim: Claim = serde_json::from_slice(bytes)
            .map_err(|e| CacheError::BadArtifact { what: what(), reason: ArtifactProblem::ClaimUnparsable(e) })?;
        let bad = |reason| Err(CacheError::BadArtifact { what: what(), reason });
        if claim.format != composer_store::FORMAT {
            return bad(ArtifactProblem::StoreFormat { found: claim.format });
        }
        if claim.key != key || step.is_some_and(|s| s != claim.step) {
            return bad(ArtifactProblem::OtherStep { step: claim.step, key: claim.key });
        }
        Ok(claim)
    }

    /// The action record the claim stands for, as this store records it. The pushing store's
    /// `inputs` (what the step read there) are not carried: this store never held them.
    pub fn record(&self) -> ActionRecord {
        ActionRecord {
            step: self.step.clone(),
            outputs: self.outputs.iter().map(|o| ObjectRef { id: o.blake3, kind: o.kind }).collect(),
            inputs: vec![],
            data: self.data.clone(),
        }
    }
}

pub fn digest(sha256: &Sha256) -> Digest {
    Digest::from_str(&sha256.oci()).expect("sha256 digests are valid")
}

/// The SHA-256 of an OCI digest, refusing any other algorithm or form: a digest becomes a path
/// or a URL, so it is checked before it is used anywhere.
pub fn sha256_of(digest: &Digest) -> Result<Sha256, CacheError> {
    let text = digest.to_string();
    text.strip_prefix("sha256:")
        .and_then(|hex| Sha256::from_str(hex).ok())
        .ok_or_else(|| CacheError::BadArtifact { what: text.clone(), reason: ArtifactProblem::NotSha256 })
}

fn descriptor(media_type: &str, sha256: &Sha256, size: u64) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::Other(media_type.to_string()))
        .digest(digest(sha256))
        .size(size)
        .build()
        .expect("descriptor fields are set")
}

/// A claim up to this size travels inside its manifest (base64 in [`CLAIM_ANNOTATION`]), so
/// that one request answers whether a result is there and who signed it; a larger one (a wheel
/// install lists every file) is the manifest's config blob.
pub const INLINE_CLAIM_MAX: usize = 16 * 1024;
pub const CLAIM_ANNOTATION: &str = "dev.composer.claim";
/// The empty JSON object, the config of manifests that carry no config of their own.
pub const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The artifact manifest of a claim whose bytes are `claim_bytes`.
pub fn manifest(claim: &Claim, claim_bytes: &[u8], signatures: &Signatures) -> Vec<u8> {
    let layers = claim
        .outputs
        .iter()
        .map(|o| {
            let media_type = match o.kind {
                RefKind::Blob => OBJECT_MEDIA_TYPE,
                RefKind::Tree => TREE_MEDIA_TYPE,
            };
            descriptor(media_type, &o.sha256, o.size)
        })
        .collect::<Vec<_>>();
    let mut annotations = signature_annotations(signatures);
    let config = if claim_bytes.len() <= INLINE_CLAIM_MAX {
        annotations.insert(CLAIM_ANNOTATION.to_string(), STANDARD.encode(claim_bytes));
        descriptor(EMPTY_MEDIA_TYPE, &Sha256::of(EMPTY_CONFIG), EMPTY_CONFIG.len() as u64)
    } else {
        descriptor(CLAIM_MEDIA_TYPE, &Sha256::of(claim_bytes), claim_bytes.len() as u64)
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(ARTIFACT_TYPE.to_string()))
        .config(config)
        .layers(layers)
        .annotations(annotations)
        .build()
        .expect("manifest fields are set");
    composer_oci::canonical_json(&manifest)
}

/// The annotations that carry `signatures`: none for an unsigned document.
fn signature_annotations(signatures: &Signatures) -> HashMap<String, String> {
    let mut annotations = HashMap::new();
    if !signatures.by.is_empty() {
        annotations.insert(SIGNATURES_ANNOTATION.to_string(), signatures.by.join(" "));
    }
    if !signatures.signers.is_empty() {
        annotations.insert(SIGNERS_ANNOTATION.to_string(), signatures.signers.join(" "));
    }
    annotations
}

/// The signatures a manifest's annotations carry.
fn signatures_of(annotations: Option<&HashMap<String, String>>) -> Signatures {
    let words = |name: &str| -> Vec<String> {
        annotations
            .and_then(|a| a.get(name))
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    Signatures { by: words(SIGNATURES_ANNOTATION), signers: words(SIGNERS_ANNOTATION) }
}

/// Where a manifest's claim is.
pub enum ClaimAt {
    Inline(Vec<u8>),
    Blob(Sha256, u64),
}

/// A manifest found under a step tag: its claim, its signatures and its blobs.
pub struct Found {
    pub claim: ClaimAt,
    pub signatures: Signatures,
    pub layers: Vec<(Sha256, u64)>,
}

/// The claim's bytes: from the manifest, or fetched from the cache and checked against the
/// manifest's digest. `None` when the cache lacks the blob.
pub fn claim_bytes(remote: &dyn crate::Remote, found: &Found, what: &str) -> Result<Option<Vec<u8>>, CacheError> {
    let (sha, size) = match &found.claim {
        ClaimAt::Inline(bytes) => return Ok(Some(bytes.clone())),
        ClaimAt::Blob(sha, size) => (*sha, *size),
    };
    let Some(reader) = remote.blob(&sha)? else { return Ok(None) };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, size.min(MAX_CLAIM) + 1), &mut bytes)
        .map_err(|e| CacheError::Unavailable { cache: remote.name().to_string(), source: Box::new(e) })?;
    if Sha256::of(&bytes) != sha {
        return Err(CacheError::BadArtifact { what: what.to_string(), reason: ArtifactProblem::ClaimTampered });
    }
    Ok(Some(bytes))
}

/// No claim a cache writes comes near this; a bigger one is not read.
const MAX_CLAIM: u64 = 64 << 20;

pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<Found, CacheError> {
    let bad = |reason| CacheError::BadArtifact { what: what.to_string(), reason };
    let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| bad(ArtifactProblem::Manifest(e)))?;
    if manifest.artifact_type().as_ref().map(|t| t.to_string()).as_deref() != Some(ARTIFACT_TYPE) {
        let artifact_type = manifest.artifact_type().as_ref().map(|t| t.to_string());
        return Err(bad(ArtifactProblem::NotAResult(artifact_type)));
    }
    let config = manifest.config();
    let annotation = |name: &str| manifest.annotations().as_ref().and_then(|a| a.get(name));
    let signatures = signatures_of(manifest.annotations().as_ref());
    let claim = match annotation(CLAIM_ANNOTATION) {
        Some(text) => ClaimAt::Inline(STANDARD.decode(text).map_err(|e| bad(ArtifactProblem::ClaimEncoding(e)))?),
        None => ClaimAt::Blob(sha256_of(config.digest())?, config.size()),
    };
    let layers = manifest
        .layers()
        .iter()
        .map(|l| Ok((sha256_of(l.digest())?, l.size())))
        .collect::<Result<Vec<_>, CacheError>>()?;
    Ok(Found { claim, signatures, layers })
}

/// The tag of a bundle's lock files (`recipe.lock`, pylocks), each a layer titled by its name.
pub const LOCKS_TAG: &str = "locks";
pub const LOCKS_ARTIFACT_TYPE: &str = "application/vnd.composer.locks.v1";
const TITLE: &str = "org.opencontainers.image.title";

/// The manifest that lists a bundle's lock files (name, digest, size), with the signatures over
/// [`crate::locks::signed_message`] of them.
pub fn locks_manifest(files: &[(String, Sha256, u64)], signatures: &Signatures) -> Vec<u8> {
    let empty = EMPTY_CONFIG;
    let layers = files
        .iter()
        .map(|(name, sha, size)| {
            let mut layer = descriptor("application/toml", sha, *size);
            layer.set_annotations(Some(HashMap::from([(TITLE.to_string(), name.clone())])));
            layer
        })
        .collect::<Vec<_>>();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(LOCKS_ARTIFACT_TYPE.to_string()))
        .config(descriptor(EMPTY_MEDIA_TYPE, &Sha256::of(empty), empty.len() as u64))
        .layers(layers)
        .annotations(signature_annotations(signatures))
        .build()
        .expect("manifest fields are set");
    composer_oci::canonical_json(&manifest)
}

/// A bundle's lock files (name, digest, size), each name one compose gives a lock
/// ([`crate::locks::check_name`]) and none twice, and the signatures over them.
pub type ListedLocks = (Vec<(String, Sha256, u64)>, Signatures);

pub fn parse_locks(bytes: &[u8], what: &str) -> Result<ListedLocks, CacheError> {
    let bad = |reason| CacheError::BadArtifact { what: what.to_string(), reason };
    let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| bad(ArtifactProblem::Manifest(e)))?;
    if manifest.artifact_type().as_ref().map(|t| t.to_string()).as_deref() != Some(LOCKS_ARTIFACT_TYPE) {
        return Err(bad(ArtifactProblem::NotLocks));
    }
    let mut seen = std::collections::HashSet::new();
    let files = manifest
        .layers()
        .iter()
        .map(|l| {
            let name = l.annotations().as_ref().and_then(|a| a.get(TITLE)).cloned().unwrap_or_default();
            crate::locks::check_name(&name).map_err(|e| bad(e.into()))?;
            if !seen.insert(name.clone()) {
                return Err(bad(ArtifactProblem::LockListedTwice(name)));
            }
            Ok((name, sha256_of(l.digest())?, l.size()))
        })
        .collect::<Result<Vec<_>, CacheError>>()?;
    Ok((files, signatures_of(manifest.annotations().as_ref())))
}
