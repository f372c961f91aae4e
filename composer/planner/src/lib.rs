//! The build planner: turns a recipe into a graph of steps ([`Plan`]), each keyed by the hash of
//! its inputs in the store's action cache, runs only the steps whose results are missing, through
//! one scheduler, and assembles the image.
//!
//! ```text
//!  recipe.toml ─► lock (resolve, or recipe.lock) ─► wheel locks ─► graph ─► keys ─► Plan
//!                 signed Release ✓ OpenPGP                          │       │ store: cached?
//!                 Packages ✓ sha256                                 │       ▼
//!                                                                    │   keep what the images need
//!                                                                    ▼   (a cached step is a leaf)
//!   execute: fetch ─► unpack ─► layer ─┐   build root ─► build ─► build layer ─┐
//!            (network pool)  (rayon)   ├─ system layer, wheels, bytecode ──────┴─► images ─► index
//! ```
//!
//! Everything distribution-specific sits behind [`composer_distro::Backend`]; step keys hold only content
//! hashes and recipe values: no paths, host names or clocks.

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod builds;
mod bytecode;
mod compile;
mod error;
mod execute;
mod graph;
mod image;
mod keys;
pub mod layers;
mod loadable;
mod local;
mod lock_trust;
pub mod lockfile;
mod output;
mod package_layer;
mod pipeline;
pub mod plan;
mod problems;
mod python;
mod records;
pub mod report;
mod resolution;
mod run;
mod sandbox;
mod scripts;
mod sdist_settings;
mod session;
mod settle;
mod share;
mod sources;
pub mod system;
mod system_libraries;
mod toolchain;
mod versions;
mod wheel_steps;

use composer_client::Client;
use composer_oci::Compression;
use composer_recipe::{Platform, Recipe};
use composer_store::{BlobInfo, Store};

pub use composer_distro as distro;
pub use error::BuildError;
pub use execute::DOWNLOAD_THREADS;
pub use keys::wheel_file_key;
pub use lockfile::Lockfile;
pub use pipeline::recipe_wheels;
pub use plan::{Plan, PlanDocument, PlanStep, Step, StepKind};
pub use problems::{BytecodeProblem, Outdated, ReleaseUnavailable, SdistSettingsProblem, SourceProblem, Unsettled};
pub use report::{NoReporter, Notes, Phase, Reporter, StepReport};
pub use resolution::{Locked, Upgrade, lock, outdated};
pub use session::Session;
pub use share::Shareable;

pub struct Context<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    /// The backends on offer; the recipe's `[base] distro` picks one.
    pub distributions: &'a dyn composer_distro::Distributions,
    pub indexes: &'a composer_wheels::IndexSettings,
    /// No network: resolution with uv runs `--offline` too.
    pub offline: bool,
    pub reporter: &'a dyn Reporter,
    /// The image timestamp when the recipe sets none (`SOURCE_DATE_EPOCH`, resolved by the caller).
    pub source_date_epoch: Option<u64>,
    pub tools: &'a Tools,
    /// Where build directories and the logs of failed builds go.
    pub temp_dir: &'a std::path::Path,
    /// Caches to take results and inputs from, in order (`--cache`); `None`: the store alone.
    pub substituters: Option<&'a composer_cache::Substituters>,
    /// Set by the caller to stop a build (a signal): the running sandboxes are killed, no step
    /// starts any more, every build directory is removed, and the build returns
    /// [`BuildError::Interrupted`].
    pub interrupted: &'a std::sync::atomic::AtomicBool,
    /// A resolution may take a Release older than the one the lock it replaces was made from
    /// (`--allow-downgrade`); without it, time only moves forward.
    pub allow_downgrade: bool,
}

/// The programs composer runs, as the caller found them (`None`: not installed).
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// bubblewrap, the build sandbox.
    pub bwrap: Option<std::path::PathBuf>,
    /// uv, which resolves wheel sets.
    pub uv: Option<std::path::PathBuf>,
    /// python3, whose pip fetches the pinned uv when there is none.
    pub python: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// Use the lock if there is one, else resolve and write it (as cargo does).
    UseOrCreate,
    /// The lock must exist and cover the recipe.
    Locked,
}

pub struct BuildOutcome {
    pub index: BlobInfo,
    pub manifests: Vec<(Platform, BlobInfo)>,
    /// The resolution steps (the lock's, the wheel locks'), then the plan's steps.
    pub steps: Vec<StepReport>,
    /// How many of `steps` are resolution steps.
    pub resolution_steps: usize,
    pub lock_written: bool,
}

impl Session<'_> {
    /// The recipe's `source_date_epoch`, else the caller's default, else 0.
    pub(crate) fn epoch(&self) -> u64 {
        self.recipe.image.source_date_epoch.as_ref().map(|e| *e.get_ref()).or(self.ctx.source_date_epoch).unwrap_or(0)
    }
}

fn compression(recipe: &Recipe) -> Compression {
    match recipe.layers.compression {
        composer_recipe::Compression::Gzip => Compression::Gzip,
        composer_recipe::Compression::Zstd => Compression::Zstd,
    }
}
