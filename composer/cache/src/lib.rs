//! Sharing the store between machines: step results and inputs in an OCI registry, an OCI image
//! layout directory or a single archive file, signed with Ed25519 keys the way Nix binary caches
//! are.
//!
//! ```text
//!  push:   store ─► claim (format, key, step, outputs' BLAKE3/SHA-256/size) ─► sign ─► artifact
//!          outputs: objects as themselves (layers keep their image digest), trees as one pack
//!  pull:   step-<key> manifest ─► claim ✓ digest ─► signature ✓ trusted key ─► blobs ✓ hashes
//!          ─► objects, then trees, then the action record (the record is written last)
//!  inputs: a .deb, wheel or source by its SHA-256: trusted by the signed index that names it,
//!          so taken from any cache unsigned
//! ```
//!
//! A cache can withhold a result, never change one: every result is checked against a claim a
//! trusted key signed, and every byte against the claim before anything enters the store.

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod archive;
pub mod bundle;
pub mod claim;
pub(crate) mod layout;
pub mod locks;
mod problems;
pub mod push;
mod reference;
mod registry;
pub mod signing;
pub mod substitute;
pub mod treepack;

use std::io::Read;

pub use composer_client::registry::BlobSource;
use composer_store::{Sha256, StoreError};

pub use layout::DirCache;
pub use problems::{ArtifactProblem, BadLockName, KeyProblem, LockFileProblem, LocksDirProblem, Untrusted};
pub use reference::CacheRef;
pub use registry::RegistryCache;
pub use signing::{KeyError, PublicKey, SecretKey, Signatures, TrustedKeys};
pub use substitute::{Hit, Substituters};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("`{text}` is not a cache reference")]
    Reference { text: String, hint: &'static str },
    #[error("the cache `{cache}` cannot be used")]
    Unavailable {
        cache: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: {reason}")]
    BadArtifact {
        what: String,
        #[source]
        reason: ArtifactProblem,
    },
    #[error("failed to {action} `{what}`")]
    Io {
        action: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    LockFile {
        path: std::path::PathBuf,
        #[source]
        reason: LockFileProblem,
    },
    /// `--locks-to DIR` names no directory lock files can be written into.
    #[error("--locks-to {}: {reason}", path.display())]
    LocksDir {
        path: std::path::PathBuf,
        #[source]
        reason: LocksDirProblem,
    },
    #[error("the lock files in {bundle} are not written: {why}")]
    UntrustedLocks { bundle: String, why: Untrusted },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Registry(#[from] composer_client::registry::RegistryError),
}

impl CacheError {
    /// An I/O error on `what`, for `map_err`.
    pub(crate) fn io<'p>(
        action: &'static str,
        what: &'p std::path::Path,
    ) -> impl Fn(std::io::Error) -> CacheError + 'p {
        move |source| CacheError::Io { action, what: what.display().to_string(), source }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            CacheError::Reference { hint, .. } => Some(hint.to_string()),
            CacheError::Registry(e) => e.hint(),
            CacheError::LockFile { .. } => Some(
                "compare it with the bundle's and remove it if the bundle's is the one you want, or import \
                 without --locks-to"
                    .into(),
            ),
            CacheError::LocksDir { .. } => {
                Some("name the directory of the recipes the bundle's locks belong to (it must exist)".into())
            }
            CacheError::UntrustedLocks { .. } => Some(
                "a lock pins what a build uses, so --locks-to takes only locks a trusted key signed: make the \
                 bundle with --signing-key (with --inputs-only too) and import it with that key's public half \
                 as --trusted-key; or import without --locks-to and lock on this machine"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Where results are kept: a registry repository, a layout directory, an archive.
pub trait Remote: Send + Sync {
    /// The reference as the user wrote it, for messages.
    fn name(&self) -> &str;
    /// The manifest tagged `tag`, if there is one.
    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// A blob's bytes as they stream; the caller verifies them.
    fn blob(&self, sha256: &Sha256) -> Result<Option<Box<dyn Read + Send + '_>>, CacheError>;
    /// Whether the cache holds the blob (of `size` bytes, where known): a registry's answer
    /// counts only if it is about this digest and size.
    fn has_blob(&self, sha256: &Sha256, size: Option<u64>) -> Result<bool, CacheError>;
    /// Stores a blob whose digest and size are known; refused if the bytes do not match them.
    /// The source may be opened more than once (an upload tried again).
    fn put_blob(&self, sha256: &Sha256, size: u64, data: &dyn BlobSource) -> Result<(), CacheError>;
    /// Stores a manifest under `tag`, replacing what the tag named before.
    fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<(), CacheError>;
    /// Makes a blob another repository of the same registry holds available here without
    /// uploading it; `false` where that is not possible.
    fn mount(&self, _sha256: &Sha256, _size: u64, _from: &str) -> Result<bool, CacheError> {
        Ok(false)
    }
}
