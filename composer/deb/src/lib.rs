//! The Debian backend: everything composer knows about Debian archives.
//!
//! - [`backend::Debian`]: the planner's [`composer_distro::Backend`] for Debian, built on what
//!   follows; [`mirror`]: where a recipe's mirror name points.
//! - [`sources`]: the host's apt sources (one-line and deb822), to find a mirror and its keyring.
//! - [`release`]: `InRelease` verified with OpenPGP, then trusted for index checksums.
//! - [`repo::Repository`]: fetches `InRelease`, `Packages` indexes and `.deb` files through the one
//!   client, verifying each against the level above before it enters the store.
//! - [`index`], [`relation`], [`version`]: the `Packages` format and Debian's version order.
//! - [`resolve`]: the dependency closure, solved by `resolvo`.
//! - [`locked`]: a lock's package checked against the signed index it claims to come from.
//! - [`unpack`]: a `.deb` into a store tree, without maintainer scripts.
//! - [`dpkg`]: the dpkg database (`status`, `info/*.list`, `info/*.md5sums`) for scanners.
//! - [`hooks`]: what maintainer scripts would have done that an image needs, done declaratively.

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod ar;
pub mod backend;
pub mod contents;
pub mod control;
pub mod dpkg;
pub mod hooks;
pub mod index;
pub mod locked;
pub mod mirror;
pub mod platform;
pub mod problems;
pub mod relation;
pub mod release;
pub mod repo;
pub mod resolve;
pub mod sources;
pub mod unpack;
pub mod version;

use std::path::PathBuf;

pub use index::{Package, PackageIndex};
pub use problems::{DebProblem, Difference, IndexProblem, Mismatch, NotAResolution, NotListed, SignatureProblem};
pub use release::Release;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read keyring `{}`", path.display())]
    Keyring {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("signature check failed for {what}: {reason}")]
    BadSignature {
        what: String,
        #[source]
        reason: SignatureProblem,
    },
    #[error("{what} is invalid: {reason}")]
    Index {
        what: String,
        #[source]
        reason: IndexProblem,
    },
    #[error("{what} is for suite `{suite}` (codename `{codename}`), not the `{asked}` asked for")]
    WrongSuite { what: String, asked: String, suite: String, codename: String },
    #[error("{what} expired on {valid_until} (its Valid-Until); an old Release may hide security updates")]
    Expired { what: String, valid_until: String },
    #[error("{what} is dated {date}, more than a day ahead of this machine's clock")]
    FutureDate { what: String, date: String },
    #[error("{what} does not match its Release file: {reason}")]
    IndexMismatch {
        what: String,
        #[source]
        reason: Mismatch,
    },
    #[error("the Release file of suite `{suite}` does not list `{path}`")]
    MissingIndex { suite: String, path: String },
    #[error("package `{name}` is not in suite `{suite}` for architecture `{arch}`")]
    UnknownPackage {
        name: String,
        suite: String,
        arch: String,
        /// The index's names nearest to it, best first.
        near: Vec<String>,
    },
    #[error("the packages asked for cannot be installed together ({suite}, {arch}):\n{explanation}")]
    Unsolvable { suite: String, arch: String, explanation: String },
    #[error("package file `{file}` is unsafe or corrupt at `{entry}`: {reason}")]
    Deb {
        file: String,
        entry: String,
        #[source]
        reason: DebProblem,
    },
    #[error("failed to fetch {what}")]
    Fetch {
        what: String,
        #[source]
        source: composer_client::FetchError,
    },
    #[error(transparent)]
    Store(#[from] composer_store::StoreError),
    #[error(transparent)]
    Wheels(#[from] composer_wheels::WheelError),
    #[error("no mirror named `{name}` is configured (needed for suite `{suite}`)")]
    NoMirror {
        name: String,
        suite: String,
        env: String,
        apt_dir: PathBuf,
        /// The configured names (and `debian`) nearest to it.
        near: Box<[String]>,
    },
    #[error("cannot read config `{}`", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl composer_distro::DistributionError for DebError {
    fn hint(&self) -> Option<String> {
        DebError::hint(self)
    }
}

/// The planner acts on the store's and the wheel crate's errors (a damaged object is removed
/// and built again), so those stay themselves across the seam.
impl From<DebError> for composer_distro::DistroError {
    fn from(error: DebError) -> Self {
        match error {
            DebError::Store(e) => composer_distro::DistroError::Store(e),
            DebError::Wheels(e) => composer_distro::DistroError::Wheels(e),
            other => composer_distro::DistroError::distribution(other),
        }
    }
}

impl DebError {
    /// A next step for the user, printed after the error.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            DebError::UnknownPackage { suite, near, .. } if near.is_empty() => {
                format!("check the name with `apt-cache search` on a {suite} system, or pick another suite")
            }
            DebError::UnknownPackage { near, .. } => {
                let quoted: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
                format!("did you mean {}? The suite's index has those names", quoted.join(" or "))
            }
            DebError::WrongSuite { .. } => {
                return Some(
                    "the mirror serves another suite under this name: check the mirror, or name the suite it holds"
                        .into(),
                );
            }
            DebError::Expired { .. } => {
                return Some(
                    "the mirror is stale or replaying an old Release; for a snapshot mirror, set `check_valid_until = false` in [base]".into(),
                );
            }
            DebError::FutureDate { .. } => {
                "the mirror's Release claims a date to come: check this machine's clock (`date -u`), or the mirror"
                    .into()
            }
            DebError::BadSignature { .. } => {
                "the mirror is not signed by a key of the keyring: set `keyring` in [base], or check the mirror".into()
            }
            DebError::IndexMismatch { .. } => {
                "the mirror may be mid-update or tampered with; retry later or use another mirror".into()
            }
            DebError::Deb { .. } => {
                "the file does not match what the signed index promised or holds unsafe paths; nothing of it was stored"
                    .into()
            }
            DebError::Unsolvable { .. } => "relax or drop the package pins that conflict".into(),
            DebError::NoMirror { name, env, apt_dir, near, .. } => {
                let near: Vec<&str> = near.iter().map(String::as_str).collect();
                let guess = match near.is_empty() {
                    true => String::new(),
                    false => format!("{} Else ", composer_recipe::suggest::did_you_mean(&near)),
                };
                // Only `debian` falls back to the host's apt sources: offering one for any other
                // name would be advice that cannot work.
                let apt = match name == mirror::APT_NAME {
                    true => format!(", or an apt source for the suite under {}", apt_dir.display()),
                    false => String::new(),
                };
                format!(
                    "{guess}set one with `--mirror {name}=URL`, the environment variable {env} or a `[mirrors]` entry \
                     `{name} = \"URL\"` in $XDG_CONFIG_HOME/compose/config.toml{apt}"
                )
            }
            DebError::Fetch { source: composer_client::FetchError::NotFound { .. }, .. } => {
                "the mirror no longer has this file (superseded by a newer version?): run `compose lock` to resolve \
                 again, or point the mirror at a snapshot archive"
                    .into()
            }
            DebError::Fetch { source: composer_client::FetchError::Offline { .. }, .. } => {
                "build once online to fill the store, or drop --offline".into()
            }
            _ => return None,
        })
    }
}
