//! The one interface between the planner and a distribution.
//!
//! The planner (resolution caching, locks, layers, the image) is the same for every
//! distribution; what differs sits behind [`Backend`]: how a suite's signed index is verified and
//! solved, how a package file is fetched and verified, how it becomes a tree, and what the
//! package manager's own database and post-install effects look like. Debian is the
//! implementation today (`crate::debian`); Alpine (`.apk`, musl) is the next.

use composer_store::{BlobInfo, Tree};

use crate::BuildError;
use crate::lockfile::{LockedPackage, LockedRelease};
use crate::system::ImageView;

/// A verified release of a suite: what the lock records, and the digest that keys resolution.
#[derive(Debug, Clone)]
pub struct VerifiedRelease {
    pub locked: LockedRelease,
    /// Digest of the signed document; equal digests mean equal indexes.
    pub digest: [u8; 32],
}

/// A package turned into a tree, and the distribution's metadata about it (opaque to the
/// planner; handed back to [`Backend::system_files`]).
pub struct UnpackedPackage {
    pub tree: Tree,
    pub metadata: Vec<u8>,
}

/// What the distribution adds to the system layer.
#[derive(Debug, Default)]
pub struct SystemFiles {
    /// Files (path relative to the root, content, mode).
    pub files: Vec<(String, Vec<u8>, u32)>,
    /// Symlinks (absolute path, target).
    pub links: Vec<(String, String)>,
    /// The system accounts the recipe's are appended to (passwd and group lines).
    pub passwd: String,
    pub group: String,
}

pub trait Backend: Sync {
    /// Fetches and verifies the suite's signed index.
    fn release(&self) -> Result<VerifiedRelease, BuildError>;

    /// The dependency closure of `requests` for one architecture, in that release, plus the
    /// run-time libraries of the development packages `runtime_of` (what a program compiled
    /// against them links to), so that an image carries what its built binaries need without
    /// the recipe naming each library.
    fn resolve(
        &self,
        release: &VerifiedRelease,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
        essential: bool,
    ) -> Result<Vec<LockedPackage>, BuildError>;

    /// Downloads the package file into the store, verified against the signed index. The
    /// planner calls it only for files the store lacks.
    fn fetch(&self, package: &LockedPackage, progress: &(dyn Fn(u64) + Sync)) -> Result<BlobInfo, BuildError>;

    /// Turns a fetched package file into a tree, refusing unsafe content.
    fn unpack(&self, package: &LockedPackage, file: &BlobInfo) -> Result<UnpackedPackage, BuildError>;

    /// Whether the package whose metadata is `metadata` declares that it may overwrite files of
    /// `other` (Debian's `Replaces`): two packages shipping one path is otherwise a conflict.
    fn replaces(&self, _metadata: &[u8], _other: &str) -> bool {
        false
    }

    /// The package database and the effects of install scripts, for the packages of one image.
    fn system_files(
        &self,
        packages: &[(&LockedPackage, &[u8])],
        view: &ImageView<'_>,
    ) -> Result<SystemFiles, BuildError>;
}
