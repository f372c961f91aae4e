//! The plan as data: a directed acyclic graph of steps, each with its kind, platform, action key,
//! the steps it depends on, whether its result is in the store and what it downloads. `compose
//! plan` prints it; `compose build` executes exactly it ([`crate::run`]).
//!
//! A step whose key is in the store is a leaf: nothing below it is in the plan, so a layer found
//! in the store is never fetched or unpacked again. A step's key may depend on the output of a
//! step below it (a build that uses another build's tree, a wheel built from an sdist); while
//! that output is missing the key is not known yet, and the step counts as missing.

use std::collections::BTreeMap;

use composer_oci::LayerBlob;
use composer_recipe::Platform;
use composer_store::{ActionKey, BlobInfo, Hash, Sha256};

use composer_oci::members::Precompressed;
use composer_wheels::{LockedWheel, Scheme};

use crate::compile::{ImagePart, Job};
use crate::lockfile::LockedPackage;
use crate::report::StepReport;

/// Which modules a bytecode step compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The distro's and the builds' (a built CPython brings its own, so little is left there).
    Distro,
    /// The wheel set's.
    Wheels,
}

impl Part {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Distro => "distro",
            Part::Wheels => "wheels",
        }
    }
}

/// An installed wheel as layers need it: its tree, and which contents have reusable deflate data.
#[derive(Clone)]
pub(crate) struct Installed {
    pub tree: Hash,
    pub deflated: Vec<(Hash, Precompressed)>,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// A `[[sources]]` file into the store.
    Source,
    /// A package file into the store, verified against the signed index.
    Fetch,
    /// A package file into a tree.
    Unpack,
    /// Packages' trees into an image layer.
    Layer,
    /// The package database, accounts and the recipe's files.
    SystemLayer,
    /// The packages a build runs on, as one tree.
    BuildRoot,
    /// A `[[builds]]` entry, the allocator or CPython, in the sandbox.
    Build,
    /// A wheel built from an sdist in the sandbox.
    SdistBuild,
    /// The part of a build's output that goes into the image.
    BuildLayer,
    FetchWheel,
    InstallWheel,
    WheelLayer,
    /// The virtual environment's own files.
    PythonEnv,
    PythonBytecode,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Source => "source",
            StepKind::Fetch => "fetch",
            StepKind::Unpack => "unpack",
            StepKind::Layer => "layer",
            StepKind::SystemLayer => "system-layer",
            StepKind::BuildRoot => "build-root",
            StepKind::Build => "build",
            StepKind::SdistBuild => "sdist-build",
            StepKind::BuildLayer => "build-layer",
            StepKind::FetchWheel => "fetch-wheel",
            StepKind::InstallWheel => "install-wheel",
            StepKind::WheelLayer => "wheel-layer",
            StepKind::PythonEnv => "python-env",
            StepKind::PythonBytecode => "python-bytecode",
        }
    }

    /// Whether the step fetches over the network (its result is found by content, not by key).
    pub fn is_network(self) -> bool {
        matches!(self, StepKind::Source | StepKind::Fetch | StepKind::FetchWheel)
    }

    /// Where the scheduler runs it: fetches, and wheel installs (a wheel is many small files
    /// written, which waits on the disk more than it computes; the wheels benchmark was slower
    /// with installs on the CPU pool), on the download threads.
    pub(crate) fn pool(self) -> crate::execute::Pool {
        match self {
            StepKind::Source | StepKind::Fetch | StepKind::FetchWheel | StepKind::InstallWheel => {
                crate::execute::Pool::Network
            }
            _ => crate::execute::Pool::Cpu,
        }
    }
}

/// One step of the graph.
pub struct Step {
    pub kind: StepKind,
    /// The platform the step is for; `None` for what every platform shares (a package file).
    pub platform: Option<String>,
    pub name: String,
    /// The action key; `None` for files fetched by content (see `sha256`) and for steps whose
    /// key needs the output of a missing step below.
    pub key: Option<ActionKey>,
    /// What a fetch step fetches.
    pub sha256: Option<Sha256>,
    /// Indexes of the steps this one reads the results of (always lower than its own).
    pub deps: Vec<usize>,
    /// Whether the store holds the result.
    pub cached: bool,
    /// Bytes to download when it runs.
    pub bytes: u64,
    /// The cache that serves the result (`compose plan`: would serve it; `compose build`: did).
    pub substituted: Option<String>,
    pub(crate) work: Work,
    /// The result, when the store holds it.
    pub(crate) output: Option<Output>,
}

impl Step {
    pub fn report(&self) -> StepReport {
        StepReport {
            step: self.kind.name(),
            platform: self.platform.clone(),
            name: self.name.clone(),
            cached: self.cached,
            bytes: if self.cached { 0 } else { self.bytes },
            substituted: self.substituted.clone(),
            cross: self.cross(),
        }
    }

    /// The platform whose root a build runs on with cross compilers for its own.
    fn cross(&self) -> Option<String> {
        match &self.work {
            Work::Build { job, .. } | Work::SdistBuild { job, .. } => job.cross.as_ref().map(|on| on.to_string()),
            _ => None,
        }
    }
}

/// What running a step needs beyond its dependencies' outputs.
#[derive(Clone)]
#[expect(clippy::large_enum_variant, reason = "one per step, a few thousand at most, built once")]
pub(crate) enum Work {
    Source {
        name: String,
    },
    Fetch {
        package: LockedPackage,
    },
    Unpack {
        package: LockedPackage,
    },
    /// One layer straight from its packages' files (the step's dependencies, in this order).
    Layer {
        packages: Vec<LockedPackage>,
    },
    /// The system layer, from the listings of the image's package layers (its dependencies).
    SystemLayer,
    BuildRoot {
        platform: Platform,
        packages: Vec<LockedPackage>,
    },
    /// `uses`: (name, step) of the builds whose outputs lie over the root; `sources`: (mount
    /// name, source step).
    /// `env`: what the script sees, without the job count (not part of the key).
    Build {
        platform: Platform,
        job: Job,
        env: BTreeMap<String, String>,
        root: usize,
        sources: Vec<(String, usize)>,
        uses: Vec<(String, usize)>,
    },
    SdistBuild {
        platform: Platform,
        sdist: LockedWheel,
        job: Job,
        env: BTreeMap<String, String>,
        root: usize,
        /// The sdist (`sdist`) and the wheels it builds with (`build-wheels/FILE`): fetch steps.
        sources: Vec<(String, usize)>,
        uses: Vec<(String, usize)>,
    },
    BuildLayer {
        build: usize,
        part: ImagePart,
    },
    FetchWheel {
        wheel: LockedWheel,
    },
    /// `wheel` is `None` when it comes out of the `source` step (an sdist build).
    InstallWheel {
        wheel: Option<LockedWheel>,
        source: usize,
        scheme: Scheme,
        requested: bool,
    },
    WheelLayer {
        installs: Vec<usize>,
    },
    PythonEnv {
        root: String,
        version: String,
        full_version: String,
    },
    /// `prefix`: the key's fields known before any step runs; `debs`: the image's packages.
    Bytecode {
        part: Part,
        prefix: ActionKey,
        debs: Vec<String>,
        below: Vec<usize>,
        system: usize,
        builds: Vec<(String, usize)>,
        wheels: Option<WheelKeys>,
    },
}

impl Work {
    /// How much work the step is, for the scheduler's heaviest-first order: the bytes of the
    /// package files it reads (what decoding and compressing scale with); 0 when not known.
    pub(crate) fn weight(&self) -> u64 {
        match self {
            Work::Fetch { package } | Work::Unpack { package } => package.size,
            Work::Layer { packages } | Work::BuildRoot { packages, .. } => packages.iter().map(|p| p.size).sum(),
            Work::FetchWheel { wheel } => wheel.size,
            _ => 0,
        }
    }
}

/// The steps whose keys a wheel bytecode key holds.
#[derive(Clone)]
pub(crate) struct WheelKeys {
    pub layers: Vec<usize>,
    pub env: Option<usize>,
}

/// A step's result.
#[derive(Clone)]
pub(crate) enum Output {
    Blob(BlobInfo),
    Unpacked {
        tree: Hash,
        control: Hash,
    },
    /// `None`: nothing to add to the image (a bytecode step with nothing left to compile, a build
    /// whose output has nothing to run).
    Layer(Option<LayerBlob>),
    /// A layer made from packages, and each package's listing (in the step's package order):
    /// what the system layer reads of them.
    PackageLayer {
        layer: LayerBlob,
        listings: Vec<Hash>,
    },
    Tree(Hash),
    Wheel(LockedWheel),
    Installed(Installed),
}

impl Output {
    /// The layer this result adds to an image, if it adds one.
    pub(crate) fn layer(&self) -> Option<&LayerBlob> {
        match self {
            Output::Layer(layer) => layer.as_ref(),
            Output::PackageLayer { layer, .. } => Some(layer),
            _ => None,
        }
    }
}

/// One layer of a platform's image, in order.
#[derive(Clone)]
pub(crate) struct ImageLayer {
    pub step: usize,
    pub packages: Vec<String>,
    pub comment: String,
}

/// What one platform's image is made of.
#[derive(Clone)]
pub(crate) struct ImagePlan {
    pub platform: Platform,
    /// The signed Release the packages were locked from (what a hint about a missing library
    /// asks which package ships it).
    pub release: crate::lockfile::LockedRelease,
    pub packages: Vec<LockedPackage>,
    pub layers: Vec<ImageLayer>,
}

/// Everything a build does, as planned from the recipe, its locks and the store.
pub struct Plan {
    /// The steps in dependency order (a step's dependencies come before it).
    pub steps: Vec<Step>,
    /// Resolution, done before the graph exists: the lock and the wheel locks, read or resolved.
    pub resolution: Vec<StepReport>,
    pub lock_written: bool,
    pub(crate) images: Vec<ImagePlan>,
}

impl Plan {
    pub fn missing(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| !s.cached)
    }

    /// Keeps the steps marked in `needed`; indexes in `deps`, in the steps' work and in the
    /// images follow.
    pub(crate) fn retain(mut self, needed: &[bool]) -> Plan {
        let mut new_index: Vec<Option<usize>> = vec![None; self.steps.len()];
        let mut kept = Vec::new();
        for (i, step) in std::mem::take(&mut self.steps).into_iter().enumerate() {
            if needed[i] {
                new_index[i] = Some(kept.len());
                kept.push(step);
            }
        }
        // A cached step's dependencies may be gone: it never reads them.
        let map = |i: usize| new_index[i];
        for step in &mut kept {
            step.deps = step.deps.iter().filter_map(|&d| map(d)).collect();
            remap_work(&mut step.work, &new_index);
        }
        for image in &mut self.images {
            image.layers.retain_mut(|layer| match map(layer.step) {
                Some(i) => {
                    layer.step = i;
                    true
                }
                None => false,
            });
        }
        self.steps = kept;
        self
    }

    /// The graph as `compose plan --json` prints it (documented in docs/architecture.md).
    pub fn document(&self) -> PlanDocument {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(id, s)| PlanStep {
                id,
                step: s.kind.name(),
                platform: s.platform.clone(),
                name: s.name.clone(),
                key: s.key.as_ref().map(|k| k.hash().to_hex()),
                sha256: s.sha256.map(|h| h.to_string()),
                deps: s.deps.clone(),
                cached: s.cached,
                substituted: s.substituted.clone(),
                bytes: if s.cached { 0 } else { s.bytes },
                cross: s.cross(),
            })
            .collect();
        let images =
            self.images.iter().map(|i| (i.platform.to_string(), i.layers.iter().map(|l| l.step).collect())).collect();
        PlanDocument { resolution: self.resolution.clone(), steps, images }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.document()).expect("a plan serializes")
    }
}

/// `compose plan --json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PlanDocument {
    /// The lock and wheel-lock steps, done before the graph exists.
    pub resolution: Vec<StepReport>,
    /// In dependency order: every `deps` entry is the `id` of an earlier step.
    pub steps: Vec<PlanStep>,
    /// Per platform, the steps whose layers make the image, bottom first.
    pub images: BTreeMap<String, Vec<usize>>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PlanStep {
    pub id: usize,
    pub step: &'static str,
    pub platform: Option<String>,
    pub name: String,
    /// The action key (BLAKE3 hex); null for files fetched by content and for keys that need a
    /// missing step's output.
    pub key: Option<String>,
    pub sha256: Option<String>,
    pub deps: Vec<usize>,
    pub cached: bool,
    /// The cache that would serve the step.
    pub substituted: Option<String>,
    pub bytes: u64,
    /// The platform whose root a build runs on with cross compilers for its own (`[cross]`).
    pub cross: Option<String>,
}

/// Step indexes inside a step's work, after the steps were renumbered. A cached step's work
/// never runs, so an index to a dropped step may stay as it was.
fn remap_work(work: &mut Work, new_index: &[Option<usize>]) {
    let map = |i: &mut usize| {
        if let Some(n) = new_index[*i] {
            *i = n;
        }
    };
    match work {
        Work::Build { root, sources, uses, .. } | Work::SdistBuild { root, sources, uses, .. } => {
            map(root);
            sources.iter_mut().for_each(|(_, i)| map(i));
            uses.iter_mut().for_each(|(_, i)| map(i));
        }
        Work::BuildLayer { build, .. } => map(build),
        Work::InstallWheel { source, .. } => map(source),
        Work::WheelLayer { installs } => installs.iter_mut().for_each(map),
        Work::Bytecode { below, system, builds, wheels, .. } => {
            below.iter_mut().for_each(map);
            map(system);
            builds.iter_mut().for_each(|(_, i)| map(i));
            if let Some(w) = wheels {
                w.layers.iter_mut().for_each(map);
                w.env.iter_mut().for_each(map);
            }
        }
        Work::Source { .. }
        | Work::Fetch { .. }
        | Work::Unpack { .. }
        | Work::Layer { .. }
        | Work::SystemLayer
        | Work::BuildRoot { .. }
        | Work::FetchWheel { .. }
        | Work::PythonEnv { .. } => {}
    }
}
