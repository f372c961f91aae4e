//! The one interface between the planner and a distribution.
//!
//! The planner (resolution caching, locks, layers, the image) is the same for every
//! distribution; what differs sits behind [`Backend`]: how a suite's signed index is verified and
//! solved, how a package file is fetched and verified, how it becomes a tree, and what the
//! package manager's own database and post-install effects look like, which packages every image
//! and every build root needs, where the allocator and the interpreter live. Debian's
//! implementation is `composer_deb::backend`; another distribution is a crate of its own beside it
//! and one arm where the binary chooses ([`Distributions`]). A test (`tests/src/source_rules.rs`)
//! keeps distribution names out of the planner.

use composer_client::Client;
use composer_recipe::{Platform, Recipe};
use composer_store::held::ContentSink;
use composer_store::{BlobInfo, Store, Tree};
use composer_wheels::Target;

use crate::{DistroError, ImageView, LockedPackage, LockedRelease, SystemFiles};

/// What a backend may use: the store, the one network client, and where to say what it chose
/// (which mirror, which keyring) for `-v`.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    pub notes: &'a dyn Notes,
}

/// Where a backend's remarks go; the caller decides whether they are shown.
pub trait Notes: Sync {
    fn note(&self, _message: &str) {}
}

/// The distributions a caller offers: the backend of a recipe's `[base] distro`. The binary
/// chooses; the planner only asks.
pub trait Distributions: Sync {
    fn backend<'a>(&'a self, services: Services<'a>, recipe: &'a Recipe) -> Box<dyn Backend + 'a>;
}

/// A verified release of a suite: what the lock records, and the digest that keys resolution.
#[derive(Debug, Clone)]
pub struct VerifiedRelease {
    pub locked: LockedRelease,
    /// Digest of the signed document; equal digests mean equal indexes.
    pub digest: [u8; 32],
}

/// A locked package the signed index does not hold as locked.
#[derive(Debug)]
pub struct Unlisted {
    /// `name_version_arch`.
    pub package: String,
    /// The signed index it was looked for in (suite, component/arch `Packages`).
    pub index: String,
    /// What the index holds instead, in the index's own values.
    pub reason: Box<dyn std::error::Error + Send + Sync>,
}

/// What a package set was resolved for.
pub struct Wanted<'a> {
    pub requests: &'a [String],
    /// Development packages whose run-time libraries are requested too.
    pub runtime_of: &'a [String],
    /// Whether the distribution's essential set is requested.
    pub essential: bool,
}

/// What the signed index says of a locked package set.
#[derive(Debug, Default)]
pub struct LockCheck {
    /// The packages it does not hold as locked.
    pub unlisted: Vec<Unlisted>,
    /// Why the set, each of whose packages it holds, is not a resolution of what was wanted.
    pub not_a_resolution: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// A package turned into a tree, and the distribution's metadata about it (opaque to the
/// planner; handed back to [`Backend::system_files`]).
pub struct UnpackedPackage {
    pub tree: Tree,
    pub metadata: Vec<u8>,
}

pub trait Backend: Sync {
    /// The distribution's name, as locks and step keys record it.
    fn name(&self) -> &'static str;

    /// The distribution's name for `platform`'s architecture, as its indexes spell it.
    fn architecture(&self, platform: &Platform) -> String;

    /// The package manager that would refuse two packages shipping one path, for warnings.
    fn package_manager(&self) -> &'static str;

    /// The history comment of the system layer.
    fn system_layer_comment(&self) -> &'static str;

    /// What the image's packages are resolved from: the recipe's own requests plus what every
    /// image needs (identification, system accounts), the allocator's package when it comes
    /// from the distribution, and the interpreter a wheel set is installed for.
    fn image_requests(&self, recipe: &Recipe) -> Vec<String>;

    /// The development packages whose run-time libraries the image needs: what a program the
    /// recipe builds links to.
    fn runtime_of(&self, recipe: &Recipe) -> Vec<String>;

    /// The packages of the build root, empty when the recipe builds nothing.
    fn build_requests(&self, recipe: &Recipe) -> Vec<String>;

    /// The packages of the root that cross-compiles for `target` on the recipe's build
    /// platform: the build root's and the cross compilers for `target`.
    fn cross_requests(&self, recipe: &Recipe, target: &Platform) -> Vec<String>;

    /// The GNU triplet the distribution's toolchain gives `platform` (`aarch64-linux-gnu` on
    /// Debian): what its cross compilers are prefixed with, and what builds pass as `--host`.
    fn triplet(&self, platform: &Platform) -> String;

    /// Where the distribution's allocator library lives on `platform`.
    fn allocator_library(&self, platform: &Platform) -> String;

    /// The interpreter and C library a wheel set is chosen for, read from the image's locked
    /// packages (`built_python`: the version of a CPython the recipe builds instead).
    fn wheel_target(
        &self,
        platform: &Platform,
        packages: &[LockedPackage],
        built_python: Option<&str>,
    ) -> Result<Target, DistroError>;

    /// The packages of the distribution in `release` that ship each of `libraries` (a library's
    /// file name, as `DT_NEEDED` names it) where `platform`'s loader looks by default: what a
    /// build's error offers when the image lacks one, and what `system_libraries = "add"` adds.
    /// Empty where the distribution cannot say.
    fn library_packages(
        &self,
        _release: &VerifiedRelease,
        _platform: &Platform,
        _libraries: &std::collections::BTreeSet<&str>,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, DistroError> {
        Ok(std::collections::BTreeMap::new())
    }

    /// Where the distribution's Python modules live (`{ver}`: the interpreter's major.minor):
    /// what bytecode is compiled for.
    fn python_module_dirs(&self) -> &'static [&'static str];

    /// The URL the mirror named `name` points at (`mirror://NAME/...` in a recipe's sources), as
    /// the distribution's configuration resolves it.
    fn mirror_url(&self, name: &str) -> Result<String, DistroError>;

    /// When `release` was published, in seconds since the epoch, as its signed document says:
    /// time only moves forward between locks. `None` where it does not say.
    fn release_time(&self, release: &LockedRelease) -> Option<u64>;

    /// Fetches and verifies the suite's signed index.
    fn release(&self) -> Result<VerifiedRelease, DistroError>;

    /// The release a lock records, from the store alone (for resolving offline), verified as a
    /// fetched one is; `None` when the store lacks it.
    fn stored_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError>;

    /// The release a lock names, from the store alone, verified against the keyring as a fetched
    /// one is, but not for expiry (a lock pins its release on purpose); `None` when the store
    /// lacks it.
    fn locked_release(&self, locked: &LockedRelease) -> Result<Option<VerifiedRelease>, DistroError>;

    /// Checks `packages` against the signed index of `release` for `arch` and the recipe's
    /// components: a lock and a cached resolution are claims, and this is where they are checked.
    /// Each must be exactly an entry (name, version, architecture, file, size, SHA-256) of the
    /// index, and together they must be a resolution of `wanted`: nothing missing, nothing
    /// conflicting, nothing the requests do not need.
    fn verify_locked(
        &self,
        release: &VerifiedRelease,
        arch: &str,
        packages: &[LockedPackage],
        wanted: &Wanted<'_>,
    ) -> Result<LockCheck, DistroError>;

    /// The signed release files a lock's platform was resolved from, and the indexes read from
    /// them, as far as the store holds them (by SHA-256): what another machine needs to verify
    /// and read that release itself.
    fn release_files(&self, release: &LockedRelease, arch: &str) -> Result<Vec<composer_store::Sha256>, DistroError>;

    /// The dependency closure of `requests` for one architecture, in that release, plus the
    /// run-time libraries of the development packages `runtime_of` (what a program compiled
    /// against them links to), so that an image carries what its built binaries need without
    /// the recipe naming each library.
    /// `preferred` (name to version, from the lock being followed) is kept wherever it still
    /// satisfies the requests, so a changed recipe changes only what it must.
    fn resolve(
        &self,
        release: &VerifiedRelease,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
        essential: bool,
        preferred: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<LockedPackage>, DistroError>;

    /// Downloads the package file into the store, verified against the signed index. The
    /// planner calls it only for files the store lacks.
    fn fetch(&self, package: &LockedPackage, progress: &(dyn Fn(u64) + Sync)) -> Result<BlobInfo, DistroError>;

    /// Turns a fetched package file into a tree, refusing unsafe content; the files' contents go
    /// to `contents` (into the store for a build root, held for a layer written straight away).
    fn unpack(
        &self,
        package: &LockedPackage,
        file: &BlobInfo,
        contents: &mut dyn ContentSink,
    ) -> Result<UnpackedPackage, DistroError>;

    /// Whether [`Backend::system_files`] reads the content of `path` (relative to the root): a
    /// layer written straight from a package keeps those contents with the package's listing and
    /// no others.
    fn system_reads(&self, path: &str) -> bool;

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
    ) -> Result<SystemFiles, DistroError>;
}
