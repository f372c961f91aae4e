//! The reasons of [`crate::BuildError`]'s variants that name one: each a fixed condition with
//! what was seen, or the underlying error kept as its source.

use std::path::PathBuf;

use composer_store::{NotASha256, Sha256};

/// Why a lock does not cover the recipe (`--locked` refuses it; otherwise it is resolved again).
#[derive(Debug, thiserror::Error)]
pub enum Outdated {
    /// What the lock's header and the recipe's disagree on.
    #[error(transparent)]
    Recipe(LockMismatch),
    #[error("its platforms name different Releases, which `system_libraries = \"add\"` cannot judge")]
    DifferentReleases,
    #[error(transparent)]
    SystemLibraries(Box<Unsettled>),
    #[error("it locks no build requirements for its sdists")]
    NoBuildRequirements,
    #[error("its own build requirement sets are not the sdists [python.packages] gives build_requires")]
    BuildRequirementSets,
    #[error("the wheel requirements or the interpreter changed")]
    WheelInputs,
}

/// A platform whose packages for the wheels' libraries are not settled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsettled {
    #[error("on {platform}, {} needs {}, which no locked package ships (`{}` does)", wheel.escape_debug(), library.escape_debug(), package.escape_debug())]
    Needed { platform: String, wheel: String, library: String, package: String },
    #[error("on {platform}, the lock adds `{}`, which ships no library the wheels need", package.escape_debug())]
    Stale { platform: String, package: String },
    /// Still so after this many resolutions: the index disagrees with itself.
    #[error("{unsettled}, still after {rounds} resolutions")]
    StillAfter { unsettled: Box<Unsettled>, rounds: usize },
}

/// Why the signed Release a lock names cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseUnavailable {
    #[error("is not in the store, and composer is offline")]
    Offline,
    #[error(
        "is not in the store, and the mirror now serves another (dated {date}, sha256 {digest}): the lock is stale"
    )]
    Replaced { date: String, digest: String },
}

/// Why Python bytecode cannot be compiled for a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytecodeProblem {
    #[error("the image has no {0} to compile with")]
    NoInterpreter(String),
}

/// Why a `[python.packages.NAME]` table cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdistSettingsProblem {
    #[error("its patches hold {total} bytes, more than {limit_mib} MiB")]
    PatchesTooLarge { total: usize, limit_mib: usize },
    #[error("the patch `{}` is empty", .0.display().to_string().escape_debug())]
    EmptyPatch(PathBuf),
    #[error("`{name}` is installed from a wheel ({filename}), not built from its sdist")]
    FromWheel { name: String, filename: String },
    #[error("no package `{0}` is in the Python lock")]
    NotLocked(String),
    #[error("`{0}` is set by composer for the build, and may not be replaced")]
    ReservedVariable(String),
}

/// Why a source (a `[[sources]]` entry, or the CPython or musl tarball) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceProblem {
    #[error("bad sha256: {0}")]
    BadSha256(#[source] NotASha256),
    /// A `file://` URL that names no local path.
    #[error(transparent)]
    FileUrl(composer_store::userfile::NotALocalPath),
    /// A local file that is not the pinned one. Its own digest is not shown: the recipe may name
    /// a file it was not meant to read, and a digest tells whether a guess at a secret is right.
    #[error(
        "`{}` does not have the sha256 the recipe pins ({pin}); if it is the file meant, pin the digest `sha256sum` gives",
        path.display()
    )]
    PinMismatch { path: PathBuf, pin: Sha256 },
    #[error("it cannot be read as a tarball")]
    Unreadable(#[source] std::io::Error),
    #[error("not a gzip or xz tarball")]
    NotATarball,
    #[error("{0} holds no version")]
    NoVersion(String),
    #[error("the tarball has no {file}: is it {name}'s source?")]
    NotTheSource { file: String, name: String },
    /// The version a source's file name states, which the plan took, is not the tarball's.
    #[error(
        "its file name says version {stated}, but the tarball holds {version}: the plan took the version from \
         the name; rename the file or pin the tarball meant"
    )]
    Misnamed { stated: String, version: String },
}

/// What a lock's header and the recipe disagree on: why the lock no longer covers the recipe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockMismatch {
    #[error("the lock is for {locked}, the recipe asks for {wanted}")]
    Suite { locked: String, wanted: String },
    #[error("the lock covers components {locked:?}, the recipe asks for {wanted:?}")]
    Components { locked: Vec<String>, wanted: Vec<String> },
    #[error("the recipe's `essential` setting changed")]
    Essential,
    #[error("the recipe's `[python] system_libraries` setting changed")]
    SystemLibraries,
    #[error("package `{0}` is not in the lock")]
    NewRequest(String),
    #[error("the lock holds `{0}`, which the recipe no longer asks for")]
    DroppedRequest(String),
    #[error("the lock's build root holds {locked:?}, the recipe's builds need {wanted:?}")]
    BuildRoot { locked: Vec<String>, wanted: Vec<String> },
    #[error("the lock's builds {}, the recipe's {}", cross_said(locked), cross_said(wanted))]
    Cross { locked: Option<String>, wanted: Option<String> },
    #[error("the lock's image has the run-time libraries of {locked:?}, the recipe's build needs those of {wanted:?}")]
    RuntimeOf { locked: Vec<String>, wanted: Vec<String> },
    #[error("platform `{0}` is not in the lock")]
    Platform(String),
}

fn cross_said(on: &Option<String>) -> String {
    match on {
        Some(platform) => format!("cross-compile on {platform}"),
        None => "build on each platform's own root".to_string(),
    }
}
