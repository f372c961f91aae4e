//! The build planner: turns a recipe into steps, each keyed by the hash of its inputs in the
//! store's action cache, runs only the steps whose outputs are missing, and assembles the image.
//!
//! ```text
//!  recipe.toml ──► resolve (or recipe.lock) ──► per platform: packages
//!                        │                              │
//!                 InRelease ✓ OpenPGP            group into layers ──► layer key cached? ──yes──┐
//!                 Packages  ✓ sha256                    │ no                                     │
//!                                                fetch .deb ✓ sha256 ─► unpack ─► tree ─► layer  │
//!                                                                                      │         │
//!                          system layer (dpkg db, accounts, files, hooks) ─────────────┤◄────────┘
//!                                                                                      ▼
//!                                            config + manifest per platform ─► index ─► output
//! ```
//!
//! Step keys hold only content hashes and recipe values: no paths, host names or clocks.

pub mod backend;
mod bytecode;
mod compile;
pub mod debian;
mod error;
pub mod layers;
mod local;
pub mod lockfile;
pub mod mirror;
mod output;
mod python;
pub mod report;
mod sandbox;
mod sources;
pub mod system;
mod toolchain;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use backend::Backend;
use bytecode::Part;
use composer_client::Client;
use composer_oci::{Compression, LayerBlob, LayerDescriptor};
use composer_recipe::{AllocatorMode, AllocatorName, AllocatorSource, Platform, Recipe};
use composer_store::{ActionKey, ActionRecord, BlobInfo, Hash, ObjectRef, RefKind, Sha256, Store};
use lockfile::LockedPackage;
use rayon::prelude::*;

pub use error::BuildError;
pub use lockfile::Lockfile;
pub use mirror::MirrorSettings;
pub use report::{NoReporter, Phase, Reporter, StepReport};

/// Bumped when unpacking changes what a tree holds for the same .deb.
const UNPACK_VERSION: u32 = 2;
/// Bumped when layer tars change for the same trees (2: entries without a time get the epoch).
const LAYER_VERSION: u32 = 2;
/// Bumped when the system layer's content changes for the same inputs.
const SYSTEM_VERSION: u32 = 2;
const RESOLVE_VERSION: u32 = 1;
/// Concurrent downloads: network-bound, so more than the cores.
const DOWNLOAD_THREADS: usize = 8;

pub struct Context<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    pub mirrors: &'a MirrorSettings,
    pub indexes: &'a composer_wheels::IndexSettings,
    /// No network: resolution with uv runs `--offline` too.
    pub offline: bool,
    pub reporter: &'a dyn Reporter,
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
    pub steps: Vec<StepReport>,
    pub lock_written: bool,
}

/// Package requests of a recipe: its own plus what every image needs (base-files holds
/// /etc/os-release, by which scanners identify the distribution; base-passwd the system
/// accounts) and the allocator's package.
pub fn requests(recipe: &Recipe) -> Vec<String> {
    let mut out: Vec<String> = recipe.base.packages.iter().map(|p| p.get_ref().trim().to_string()).collect();
    out.extend(["base-files".to_string(), "base-passwd".to_string()]);
    if recipe.allocator.name == AllocatorName::Jemalloc && recipe.allocator.source == AllocatorSource::Distro {
        out.push("libjemalloc2".into());
    }
    // A wheel set is installed for the base's own interpreter, unless the recipe builds one.
    if recipe.python.as_ref().is_some_and(|p| p.build.is_none()) {
        out.push("python3".into());
    }
    out.sort();
    out.dedup();
    out
}

/// The development packages whose run-time libraries the image needs: a built CPython's
/// extension modules link to what it was compiled against (libssl3 for libssl-dev, ...).
pub fn runtime_of(recipe: &Recipe) -> Vec<String> {
    match recipe.python.as_ref().and_then(|p| p.build.as_ref()) {
        // pkg-config is a tool, not a library to link to.
        Some(_) => {
            compile::CPYTHON_BUILD_DEPENDS.iter().filter(|p| p.ends_with("-dev")).map(|p| p.to_string()).collect()
        }
        None => Vec::new(),
    }
}

/// The packages of the build root, empty when the recipe builds nothing: `build-essential`,
/// what each build names, and the libraries the CPython and allocator steps compile against.
pub fn build_requests(recipe: &Recipe) -> Vec<String> {
    let interpreter = recipe.python.as_ref().and_then(|p| p.build.as_ref());
    let allocator = &recipe.allocator;
    let builds_allocator = allocator.name == AllocatorName::Jemalloc && allocator.source == AllocatorSource::Build;
    let sdists = recipe.python.as_ref().filter(|p| p.builds_sdists());
    if recipe.builds.is_empty() && interpreter.is_none() && !builds_allocator && sdists.is_none() {
        return Vec::new();
    }
    // `mawk` is Priority: required, not Essential: every Debian build chroot has it (configure
    // scripts call awk), yet build-essential does not pull it in.
    let mut out = vec!["build-essential".to_string(), "mawk".to_string()];
    for build in &recipe.builds {
        out.extend(build.build_depends.iter().map(|p| p.trim().to_string()));
    }
    if interpreter.is_some() {
        out.extend(compile::CPYTHON_BUILD_DEPENDS.iter().map(|p| p.to_string()));
    }
    if let Some(python) = sdists {
        // The PEP 517 backends most sdists name, from the distro: builds have no network.
        out.extend(["python3-setuptools".to_string(), "python3-wheel".to_string()]);
        if interpreter.is_none() {
            out.push("python3-dev".into());
        }
        out.extend(python.build_depends.iter().map(|p| p.trim().to_string()));
    }
    if allocator.mode == AllocatorMode::Link && allocator.source == AllocatorSource::Distro {
        out.push("libjemalloc-dev".into());
    }
    out.sort();
    out.dedup();
    out
}

fn epoch(recipe: &Recipe) -> u64 {
    recipe
        .image
        .source_date_epoch
        .as_ref()
        .map(|e| *e.get_ref())
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn compression(recipe: &Recipe) -> Compression {
    match recipe.layers.compression {
        composer_recipe::Compression::Gzip => Compression::Gzip,
        composer_recipe::Compression::Zstd => Compression::Zstd,
    }
}

pub struct Session<'a> {
    ctx: &'a Context<'a>,
    recipe: &'a Recipe,
    recipe_path: PathBuf,
    backend: Box<dyn Backend + 'a>,
    /// Keep a failed build's directory for inspection.
    keep_failed: bool,
    /// The recipe's sources, fetched on first use.
    sources: std::sync::OnceLock<BTreeMap<String, BlobInfo>>,
}

impl<'a> Session<'a> {
    pub fn new(ctx: &'a Context<'a>, recipe: &'a Recipe, recipe_path: &Path) -> Session<'a> {
        let backend: Box<dyn Backend + 'a> = match recipe.base.distro {
            composer_recipe::Distro::Debian => Box::new(debian::Debian::new(ctx, &recipe.base, &recipe.dir)),
        };
        Session {
            ctx,
            recipe,
            recipe_path: recipe_path.to_path_buf(),
            backend,
            keep_failed: false,
            sources: std::sync::OnceLock::new(),
        }
    }

    pub fn keep_failed(mut self, keep: bool) -> Self {
        self.keep_failed = keep;
        self
    }

    /// The recipe's sources in the store, fetched the first time they are asked for.
    fn sources(&self, steps: &mut Vec<StepReport>) -> Result<&BTreeMap<String, BlobInfo>, BuildError> {
        if let Some(sources) = self.sources.get() {
            return Ok(sources);
        }
        let fetched = sources::fetch_sources(self.ctx, self.recipe, steps)?;
        Ok(self.sources.get_or_init(|| fetched))
    }

    /// The version of the CPython the recipe builds, read from its source once, then from the
    /// action cache by the source's pinned sha256, so that `plan` and a build whose steps are all
    /// cached need not fetch the source again.
    fn built_python_version(&self) -> Result<Option<String>, BuildError> {
        let Some(interpreter) = self.recipe.python.as_ref().and_then(|p| p.build.as_ref()) else { return Ok(None) };
        let version_key = |sha256: &str| ActionKey::new("python-version", 1).with("source", sha256);
        let pinned = self.recipe.sources.iter().find(|s| s.name.get_ref() == interpreter.source.get_ref());
        let cached = |key: &ActionKey| -> Result<Option<String>, BuildError> {
            Ok(self.ctx.store.action_get(key)?.and_then(|r| r.data.as_str().map(str::to_string)))
        };
        if let Some(sha256) = pinned.and_then(|s| s.sha256.as_ref()).and_then(|s| s.get_ref().parse::<Sha256>().ok())
            && let Some(version) = cached(&version_key(&sha256.to_string()))?
        {
            return Ok(Some(version));
        }
        let sources = self.sources(&mut Vec::new())?;
        let blob = &sources[interpreter.source.get_ref()];
        let key = version_key(&blob.sha256.to_string());
        if let Some(version) = cached(&key)? {
            return Ok(Some(version));
        }
        let version = compile::cpython_version(self.ctx.store, blob)?;
        let record = ActionRecord {
            inputs: Vec::new(),
            step: "python-version".into(),
            outputs: vec![],
            data: version.clone().into(),
        };
        self.ctx.store.action_put(&key, &record)?;
        Ok(Some(version))
    }

    fn lock_header(&self) -> Lockfile {
        let base = &self.recipe.base;
        Lockfile {
            version: lockfile::LOCK_VERSION,
            distro: "debian".into(),
            suite: base.suite.clone(),
            components: base.components.clone(),
            requests: requests(self.recipe),
            essential: base.essential,
            build_requests: build_requests(self.recipe),
            runtime_of: runtime_of(self.recipe),
            platforms: self
                .recipe
                .image
                .platforms
                .get_ref()
                .iter()
                .map(|p| lockfile::LockedPlatform {
                    platform: p.to_string(),
                    architecture: p.debian_arch().into(),
                    release: lockfile::LockedRelease {
                        suite: String::new(),
                        codename: String::new(),
                        date: String::new(),
                        inrelease_sha256: String::new(),
                    },
                    packages: Vec::new(),
                    build_packages: Vec::new(),
                })
                .collect(),
        }
    }

    /// Resolves every platform against the mirror's current Release.
    pub fn resolve(&self) -> Result<(Lockfile, Vec<StepReport>), BuildError> {
        let platforms: Vec<String> = self.recipe.image.platforms.get_ref().iter().map(|p| p.to_string()).collect();
        self.ctx.reporter.status("Resolving", &format!("{} for {}", self.recipe.base.suite, platforms.join(", ")));
        let release = self.backend.release()?;
        let mut lock = self.lock_header();
        // Platforms resolve in parallel; the Debian index borrows its text, so two at once stay
        // well inside the memory budget.
        let build_requests = build_requests(self.recipe);
        let runtime_of = runtime_of(self.recipe);
        let results: Vec<Result<(Vec<LockedPackage>, bool), BuildError>> = lock
            .platforms
            .par_iter()
            .map(|locked| {
                self.resolve_platform(
                    &release,
                    &locked.architecture,
                    &requests(self.recipe),
                    &runtime_of,
                    self.recipe.base.essential,
                )
            })
            .collect();
        let build_results: Vec<Result<(Vec<LockedPackage>, bool), BuildError>> = lock
            .platforms
            .par_iter()
            .map(|locked| match build_requests.is_empty() {
                true => Ok((Vec::new(), true)),
                // Build-Depends assume the Essential set (sh, coreutils, tar, sed...) is there.
                false => self.resolve_platform(&release, &locked.architecture, &build_requests, &[], true),
            })
            .collect();
        // The first platform's error, whichever failed first in time.
        let results: Vec<(Vec<LockedPackage>, bool)> = results.into_iter().collect::<Result<_, _>>()?;
        let build_results: Vec<(Vec<LockedPackage>, bool)> = build_results.into_iter().collect::<Result<_, _>>()?;
        let mut steps = Vec::new();
        for ((locked, (packages, cached)), (build_packages, _)) in
            lock.platforms.iter_mut().zip(results).zip(build_results)
        {
            locked.build_packages = build_packages;
            steps.push(StepReport {
                step: "resolve",
                platform: Some(locked.platform.clone()),
                name: self.recipe.base.suite.clone(),
                cached,
                bytes: 0,
            });
            locked.packages = packages;
            locked.release = release.locked.clone();
        }
        Ok((lock, steps))
    }

    fn resolve_platform(
        &self,
        release: &backend::VerifiedRelease,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
        essential: bool,
    ) -> Result<(Vec<LockedPackage>, bool), BuildError> {
        let base = &self.recipe.base;
        let mut key = ActionKey::new("resolve", RESOLVE_VERSION)
            .with("release", release.digest)
            .with("arch", arch)
            .with("components", base.components.join(","))
            .with("requests", requests.join("\n"))
            .with("essential", [essential as u8]);
        if !runtime_of.is_empty() {
            key.field("runtime-of", runtime_of.join("\n").as_bytes());
        }
        if let Some(record) = self.ctx.store.action_get(&key)?
            && let Ok(packages) = serde_json::from_value(record.data)
        {
            return Ok((packages, true));
        }
        let packages = self.backend.resolve(release, arch, requests, runtime_of, essential)?;
        let record = ActionRecord {
            inputs: Vec::new(),
            step: "resolve".into(),
            outputs: vec![],
            data: serde_json::to_value(&packages).expect("serializes"),
        };
        self.ctx.store.action_put(&key, &record)?;
        Ok((packages, false))
    }

    /// The packages to build from: the lock if it covers the recipe, else a fresh resolution
    /// (written as the lock when `write` is set).
    pub fn packages(&self, policy: LockPolicy, write: bool) -> Result<(Lockfile, Vec<StepReport>, bool), BuildError> {
        let path = lockfile::lock_path(&self.recipe_path);
        match Lockfile::read(&path)? {
            Some(lock) => {
                if let Some(reason) = lock.mismatch(&self.lock_header()) {
                    return Err(BuildError::LockOutdated { path, reason });
                }
                let steps = self
                    .recipe
                    .image
                    .platforms
                    .get_ref()
                    .iter()
                    .map(|p| StepReport {
                        step: "resolve",
                        platform: Some(p.to_string()),
                        name: "recipe.lock".into(),
                        cached: true,
                        bytes: 0,
                    })
                    .collect();
                Ok((lock, steps, false))
            }
            None if policy == LockPolicy::Locked => Err(BuildError::LockMissing { path }),
            None => {
                let (lock, steps) = self.resolve()?;
                if write {
                    lock.write(&path)?;
                }
                Ok((lock, steps, write))
            }
        }
    }
}

/// Writes `recipe.lock` from a fresh resolution.
pub fn lock(ctx: &Context<'_>, recipe: &Recipe, recipe_path: &Path) -> Result<(Lockfile, PathBuf), BuildError> {
    let session = Session::new(ctx, recipe, recipe_path);
    let (lock, _) = session.resolve()?;
    let path = lockfile::lock_path(recipe_path);
    lock.write(&path)?;
    session.wheel_locks(&lock, LockPolicy::UseOrCreate, true, true)?;
    Ok((lock, path))
}

struct CacheState {
    /// Layers already in the store, by action key.
    layers: HashMap<Hash, LayerBlob>,
    /// Packages the missing layers need, by sha256 (deduplicated across platforms).
    needed: BTreeMap<String, LockedPackage>,
}

struct PlatformPlan {
    platform: Platform,
    packages: Vec<LockedPackage>,
    groups: Vec<Vec<usize>>,
    layer_keys: Vec<ActionKey>,
    system_key: ActionKey,
}

fn layer_key(packages: &[&LockedPackage], epoch: u64, compression: Compression) -> ActionKey {
    let mut key = ActionKey::new("layer", LAYER_VERSION)
        .with("unpack-version", UNPACK_VERSION.to_le_bytes())
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name());
    for p in packages {
        key.field("deb", p.sha256.as_bytes());
    }
    key
}

fn system_key(
    recipe: &Recipe,
    platform: &Platform,
    packages: &[LockedPackage],
    epoch: u64,
    compression: Compression,
) -> Result<ActionKey, BuildError> {
    let mut key = ActionKey::new("system-layer", SYSTEM_VERSION)
        .with("unpack-version", UNPACK_VERSION.to_le_bytes())
        .with("platform", platform.to_string())
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name())
        .with("accounts", serde_json::to_vec(&recipe.accounts).expect("serializes"));
    for p in packages {
        key.field("deb", p.sha256.as_bytes());
    }
    for file in &recipe.files {
        key.field("file", &serde_json::to_vec(file).expect("serializes"));
        if let (None, Some(source)) = (&file.content, &file.source) {
            let (_, data) = local::read(recipe, source, local::MAX_FILE).map_err(|reason| BuildError::File {
                target: file.path.get_ref().clone(),
                source_path: source.clone(),
                reason,
            })?;
            key.field("file-content", &Hash::of(&data).0);
        }
    }
    Ok(key)
}

impl Session<'_> {
    fn plan_platforms(&self, lock: &Lockfile) -> Result<Vec<PlatformPlan>, BuildError> {
        let (epoch, compression) = (epoch(self.recipe), compression(self.recipe));
        self.recipe
            .image
            .platforms
            .get_ref()
            .iter()
            .map(|platform| {
                let locked =
                    lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers the recipe");
                let packages = locked.packages.clone();
                let groups = layers::group(&packages, self.recipe.layers.strategy, self.recipe.layers.max_layers);
                let layer_keys = groups
                    .iter()
                    .map(|g| layer_key(&g.iter().map(|&i| &packages[i]).collect::<Vec<_>>(), epoch, compression))
                    .collect();
                let system_key = system_key(self.recipe, platform, &packages, epoch, compression)?;
                Ok(PlatformPlan { platform: platform.clone(), packages, groups, layer_keys, system_key })
            })
            .collect()
    }

    /// Which layers the store already holds (system layers included), and which packages the
    /// missing ones need: the one answer `plan` reports and `build` acts on.
    fn cache_state(&self, plans: &[PlatformPlan]) -> Result<CacheState, BuildError> {
        let store = self.ctx.store;
        let mut state = CacheState { layers: HashMap::new(), needed: BTreeMap::new() };
        for plan in plans {
            // The system layer reads every package of its platform; a layer only its own.
            let system = store.action_get(&plan.system_key)?;
            let mut need = |p: &LockedPackage| {
                state.needed.insert(p.sha256.clone(), p.clone());
            };
            match &system {
                Some(record) => {
                    state.layers.insert(plan.system_key.hash(), layer_from(record)?);
                }
                None => plan.packages.iter().for_each(&mut need),
            }
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                match store.action_get(key)? {
                    Some(record) => {
                        state.layers.insert(key.hash(), layer_from(&record)?);
                    }
                    None => group.iter().for_each(|&i| need(&plan.packages[i])),
                }
            }
        }
        Ok(state)
    }

    /// Lists every step as cached or not, with download sizes, without building anything.
    pub fn plan(&self) -> Result<Vec<StepReport>, BuildError> {
        let (lock, mut steps, _) = self.packages(LockPolicy::UseOrCreate, false)?;
        let sources = sources::source_digests(self.ctx, self.recipe, &mut steps)?;
        let built = self.plan_builds(&lock, &sources, &mut steps)?;
        let (wheel_plans, wheel_steps) = self.wheel_locks(&lock, LockPolicy::UseOrCreate, false, false)?;
        steps.extend(wheel_steps);
        let built_wheels = self.sdist_builds(&lock, &wheel_plans, &built, &mut steps, compile::Mode::Plan)?;
        let wheel_plans = self.with_built_wheels(wheel_plans, &built_wheels);
        let plans = self.plan_platforms(&lock)?;
        let store = self.ctx.store;
        let CacheState { layers, needed } = self.cache_state(&plans)?;
        for plan in &plans {
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                steps.push(StepReport {
                    step: "layer",
                    platform: Some(plan.platform.to_string()),
                    name: layer_name(&plan.packages, group),
                    cached: layers.contains_key(&key.hash()),
                    bytes: 0,
                });
            }
            steps.push(StepReport {
                step: "system-layer",
                platform: Some(plan.platform.to_string()),
                name: "system".into(),
                cached: layers.contains_key(&plan.system_key.hash()),
                bytes: 0,
            });
            let platform_built = built.get(&plan.platform.to_string()).map_or(&[][..], Vec::as_slice);
            let wheels = wheel_plans.iter().find(|w| w.platform == plan.platform);
            for part in [Part::Distro, Part::Wheels] {
                if !self.bytecode_wanted() || (part == Part::Wheels && wheels.is_none()) {
                    continue;
                }
                let key =
                    self.bytecode_key(part, &plan.platform, &plan.packages, &plan.system_key, platform_built, wheels);
                let cached = match key {
                    Some(key) => store.action_get(&key)?.is_some(),
                    None => false,
                };
                steps.push(StepReport {
                    step: "python-bytecode",
                    platform: Some(plan.platform.to_string()),
                    name: part.name().into(),
                    cached,
                    bytes: 0,
                });
            }
        }
        for package in needed.values() {
            let key = unpack_key(package);
            let unpacked = store.action_get(&key)?.is_some();
            let fetched = store.lookup_sha256(&package_sha(package)?)?.is_some();
            if !unpacked {
                steps.push(StepReport {
                    step: "fetch",
                    platform: None,
                    name: deb_name(package),
                    cached: fetched,
                    bytes: if fetched { 0 } else { package.size },
                });
            }
            steps.push(StepReport {
                step: "unpack",
                platform: None,
                name: deb_name(package),
                cached: unpacked,
                bytes: 0,
            });
        }
        self.plan_wheels(&wheel_plans, &mut steps)?;
        Ok(steps)
    }

    /// Offline, a build that lacks files fails on the first one it reaches; the plan knows all of
    /// them, so the error can name every package and wheel to bring in at once.
    /// `file://` mirrors and indexes are readable offline, so only what comes from elsewhere counts.
    fn offline_preflight(&self) -> Result<(), BuildError> {
        let remote = |url: &str| !url.starts_with("file://");
        let mirror = self.ctx.mirrors.resolve(&self.recipe.base.mirror, &self.recipe.base.suite, None)?;
        let (lock, _, _) = self.packages(LockPolicy::UseOrCreate, false)?;
        let (wheel_plans, _) = self.wheel_locks(&lock, LockPolicy::UseOrCreate, false, false)?;
        let remote_wheels: std::collections::HashSet<&str> = wheel_plans
            .iter()
            .flat_map(|p| &p.lock.wheels)
            .filter(|w| remote(&w.url))
            .map(|w| w.filename.as_str())
            .collect();
        let missing: Vec<String> = self
            .plan()?
            .into_iter()
            .filter(|s| !s.cached)
            .filter(|s| match s.step {
                "fetch" => remote(&mirror.url),
                "fetch-wheel" => remote_wheels.contains(s.name.as_str()),
                _ => false,
            })
            .map(|s| s.name)
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(BuildError::OfflineMissing(missing)),
        }
    }

    /// Builds the image into the store; see [`export`] to write it out.
    pub fn build(&self, policy: LockPolicy) -> Result<BuildOutcome, BuildError> {
        let timer = std::time::Instant::now();
        let lap = |what: &str| self.ctx.reporter.note(&format!("{what} done at {:.2}s", timer.elapsed().as_secs_f64()));
        let (lock, mut steps, lock_written) = self.packages(policy, true)?;
        // After the lock, so that `--locked` without one says so rather than what it lacks.
        if self.ctx.offline {
            self.offline_preflight()?;
        }
        let sources = self.sources(&mut steps)?;
        let (wheel_plans, wheel_steps) = self.wheel_locks(&lock, policy, true, false)?;
        steps.extend(wheel_steps);
        lap("resolution");
        let mut built = self.run_builds(&lock, sources, &mut steps)?;
        let built_wheels = self.sdist_builds(&lock, &wheel_plans, &built, &mut steps, compile::Mode::Build)?;
        let wheel_plans = self.with_built_wheels(wheel_plans, &built_wheels);
        if !built.is_empty() || !built_wheels.is_empty() {
            lap("builds");
        }
        let plans = self.plan_platforms(&lock)?;
        let store = self.ctx.store;
        let (epoch, compression) = (epoch(self.recipe), compression(self.recipe));

        let CacheState { layers: mut cached_layers, needed } = self.cache_state(&plans)?;

        // Missing layers, all platforms at once (arch: all packages give one shared layer).
        let mut jobs: BTreeMap<Hash, (ActionKey, Vec<LockedPackage>)> = BTreeMap::new();
        for plan in &plans {
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                if !cached_layers.contains_key(&key.hash()) {
                    let packages = group.iter().map(|&i| plan.packages[i].clone()).collect();
                    jobs.insert(key.hash(), (key.clone(), packages));
                }
            }
        }
        let (unpacked, layered) =
            self.unpack_and_layer(needed.values().collect(), jobs, &mut steps, epoch, compression)?;
        lap("fetch, unpack and layers");
        let mut wheel_layers: HashMap<String, Vec<LayerDescriptor>> = wheel_plans
            .iter()
            .map(|p| p.platform.to_string())
            .zip(self.wheel_layers(&wheel_plans, &mut steps)?)
            .collect();
        if !wheel_plans.is_empty() {
            lap("wheels");
        }
        let built_keys: std::collections::HashSet<Hash> = layered.iter().map(|(h, _)| *h).collect();
        cached_layers.extend(layered);

        let mut manifests = Vec::new();
        let mut images = Vec::new();
        for plan in &plans {
            let platform_name = plan.platform.to_string();
            let mut descriptors = Vec::new();
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                let name = layer_name(&plan.packages, group);
                steps.push(StepReport {
                    step: "layer",
                    platform: Some(platform_name.clone()),
                    name: name.clone(),
                    cached: !built_keys.contains(&key.hash()),
                    bytes: 0,
                });
                descriptors.push(LayerDescriptor {
                    layer: cached_layers[&key.hash()].clone(),
                    packages: group
                        .iter()
                        .map(|&i| format!("{}={}", plan.packages[i].name, plan.packages[i].version))
                        .collect(),
                    comment: format!("packages: {name}"),
                });
            }
            let system_cached = cached_layers.contains_key(&plan.system_key.hash());
            let system = match cached_layers.get(&plan.system_key.hash()) {
                Some(layer) => layer.clone(),
                None => {
                    let layer = self.system_layer(plan, &unpacked, epoch, compression)?;
                    let inputs = plan.packages.iter().flat_map(|p| {
                        let (tree, control) = unpacked[&p.sha256];
                        [ObjectRef { id: tree, kind: RefKind::Tree }, ObjectRef { id: control, kind: RefKind::Blob }]
                    });
                    store.action_put(&plan.system_key, &layer_record("system-layer", &layer).with_inputs(inputs))?;
                    layer
                }
            };
            steps.push(StepReport {
                step: "system-layer",
                platform: Some(platform_name.clone()),
                name: "system".into(),
                cached: system_cached,
                bytes: 0,
            });
            descriptors.push(LayerDescriptor {
                layer: system,
                packages: vec![],
                comment: "system: dpkg database, accounts, files".into(),
            });
            let platform_built = built.remove(&platform_name).unwrap_or_default();
            let (build_layers, build_steps) = self.build_layers(&platform_built, epoch, compression)?;
            descriptors.extend(build_layers);
            steps.extend(build_steps.into_iter().map(|s| StepReport { platform: Some(platform_name.clone()), ..s }));
            let wheels = wheel_plans.iter().find(|w| w.platform == plan.platform);
            // Each part's bytecode sits right above the layers whose modules it compiles.
            let mut add_bytecode = |part, descriptors: &mut Vec<LayerDescriptor>| -> Result<(), BuildError> {
                let key =
                    self.bytecode_key(part, &plan.platform, &plan.packages, &plan.system_key, &platform_built, wheels);
                if let Some(key) = key {
                    descriptors.extend(self.bytecode_layer(part, &plan.platform, &key, descriptors, &mut steps)?);
                }
                Ok(())
            };
            add_bytecode(Part::Distro, &mut descriptors)?;
            descriptors.extend(wheel_layers.remove(&platform_name).unwrap_or_default());
            add_bytecode(Part::Wheels, &mut descriptors)?;

            let spec = self.image_spec(&plan.platform)?;
            let image = composer_oci::image::write_platform_image(
                store,
                &plan.platform.architecture,
                plan.platform.oci_variant(),
                &spec,
                &descriptors,
                epoch,
            )?;
            let manifest_sha: Sha256 =
                image.manifest.digest().to_string().parse().map_err(composer_oci::OciError::Spec)?;
            let manifest = store.lookup_sha256(&manifest_sha)?.expect("just written");
            manifests.push((plan.platform.clone(), manifest));
            images.push(image);
        }
        let annotations: BTreeMap<String, String> = self.recipe.config.annotations.clone();
        let index = composer_oci::image::write_index(store, &images, &annotations)?;
        lap("system layers and image documents");
        Ok(BuildOutcome { index, manifests, steps, lock_written })
    }

    /// Fetches and unpacks `packages` and writes the layer `jobs`. A layer starts as soon as its
    /// last package is unpacked, so compression of early layers overlaps the unpacking of later
    /// packages instead of waiting for all of them.
    #[expect(clippy::type_complexity, reason = "two result maps, named at the call site")]
    fn unpack_and_layer(
        &self,
        packages: Vec<&LockedPackage>,
        jobs: BTreeMap<Hash, (ActionKey, Vec<LockedPackage>)>,
        steps: &mut Vec<StepReport>,
        epoch: u64,
        compression: Compression,
    ) -> Result<(HashMap<String, (Hash, Hash)>, Vec<(Hash, LayerBlob)>), BuildError> {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let store = self.ctx.store;
        let reporter = self.ctx.reporter;
        let mut cached = HashMap::new();
        let mut missing = Vec::new();
        for package in packages {
            let record = store.action_get(&unpack_key(package))?;
            match record.as_ref().map(|r| (r.outputs.first(), r.outputs.get(1))) {
                Some((Some(tree), Some(control))) => {
                    cached.insert(package.sha256.clone(), (tree.id, control.id));
                    steps.push(StepReport {
                        step: "unpack",
                        platform: None,
                        name: deb_name(package),
                        cached: true,
                        bytes: 0,
                    });
                }
                _ => missing.push(package),
            }
        }
        let fetched = self.fetch_all(&missing, steps)?;

        let jobs: Vec<(Hash, ActionKey, Vec<LockedPackage>)> = jobs.into_iter().map(|(h, (k, p))| (h, k, p)).collect();
        // For each package being unpacked, the jobs waiting for it; for each job, how many it waits for.
        let mut waiting: HashMap<&str, Vec<usize>> = HashMap::new();
        let remaining: Vec<AtomicUsize> = jobs
            .iter()
            .enumerate()
            .map(|(j, (_, _, packages))| {
                let mut shas: Vec<&str> =
                    packages.iter().map(|p| p.sha256.as_str()).filter(|s| !cached.contains_key(*s)).collect();
                shas.sort_unstable();
                shas.dedup();
                for sha in &shas {
                    waiting.entry(sha).or_default().push(j);
                }
                AtomicUsize::new(shas.len())
            })
            .collect();
        let unpacked = Mutex::new(cached);
        let unpack_results: Vec<Mutex<Option<Result<(), BuildError>>>> =
            missing.iter().map(|_| Mutex::new(None)).collect();
        let layer_results: Vec<Mutex<Option<Result<LayerBlob, BuildError>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();

        if !jobs.is_empty() {
            reporter.status("Layering", &format!("{} layers ({})", jobs.len(), compression.name()));
        }
        reporter.start(Phase::Unpack, missing.len() as u64);
        reporter.start(Phase::Layers, jobs.len() as u64);
        let run_layer = |j: usize| {
            let (_, key, packages) = &jobs[j];
            let result = (|| {
                let mut tree = composer_store::Tree::default();
                let mut inputs = Vec::new();
                for p in packages {
                    let tree_id = unpacked.lock().expect("unpacked")[&p.sha256].0;
                    tree.entries.extend(store.get_tree(&tree_id)?.entries);
                    inputs.push(ObjectRef { id: tree_id, kind: RefKind::Tree });
                }
                tree.normalize().map_err(composer_store::StoreError::from)?;
                let layer = composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?;
                store.action_put(key, &layer_record("layer", &layer).with_inputs(inputs))?;
                reporter.advance(Phase::Layers, 1);
                Ok(layer)
            })();
            *layer_results[j].lock().expect("layer result") = Some(result);
        };
        rayon::scope(|scope| {
            for (j, count) in remaining.iter().enumerate() {
                if count.load(Ordering::SeqCst) == 0 {
                    scope.spawn(move |_| run_layer(j));
                }
            }
            for (i, (package, blob)) in missing.iter().zip(&fetched).enumerate() {
                let (run_layer, unpacked, remaining, waiting, unpack_results) =
                    (&run_layer, &unpacked, &remaining, &waiting, &unpack_results);
                scope.spawn(move |scope| {
                    let result = self.unpack_one(package, blob).map(|ids| {
                        unpacked.lock().expect("unpacked").insert(package.sha256.clone(), ids);
                        for &j in waiting.get(package.sha256.as_str()).into_iter().flatten() {
                            if remaining[j].fetch_sub(1, Ordering::SeqCst) == 1 {
                                scope.spawn(move |_| run_layer(j));
                            }
                        }
                    });
                    *unpack_results[i].lock().expect("unpack result") = Some(result);
                });
            }
        });
        reporter.finish(Phase::Unpack);
        reporter.finish(Phase::Layers);

        // Errors are reported in package order, then layer order, whatever order they happened in.
        for (package, result) in missing.iter().zip(unpack_results) {
            result.into_inner().expect("unpack result").expect("every unpack ran")?;
            steps.push(StepReport { step: "unpack", platform: None, name: deb_name(package), cached: false, bytes: 0 });
        }
        let mut built = Vec::new();
        for ((hash, _, _), result) in jobs.iter().zip(layer_results) {
            built.push((
                *hash,
                result.into_inner().expect("layer result").expect("every layer ran once its packages were unpacked")?,
            ));
        }
        Ok((unpacked.into_inner().expect("unpacked"), built))
    }

    /// Unpacks one fetched package into the store and records the step.
    fn unpack_one(&self, package: &LockedPackage, blob: &BlobInfo) -> Result<(Hash, Hash), BuildError> {
        let store = self.ctx.store;
        let unpacked = self.backend.unpack(package, blob)?;
        let tree = store.put_tree(&unpacked.tree)?;
        let control = store.put_content(&unpacked.metadata)?;
        let record = ActionRecord {
            inputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
            step: "unpack".into(),
            outputs: vec![ObjectRef { id: tree, kind: RefKind::Tree }, ObjectRef { id: control, kind: RefKind::Blob }],
            data: serde_json::json!({ "package": package.name, "version": package.version }),
        };
        store.action_put(&unpack_key(package), &record)?;
        self.ctx.reporter.advance(Phase::Unpack, 1);
        Ok((tree, control))
    }

    /// Fetches package files (8 at a time: network-bound), verified by the backend.
    fn fetch_all(&self, missing: &[&LockedPackage], steps: &mut Vec<StepReport>) -> Result<Vec<BlobInfo>, BuildError> {
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.ctx.store;
        let reporter = self.ctx.reporter;
        let total: u64 = missing.iter().map(|p| p.size).sum();
        reporter.status(
            "Fetching",
            &format!("{} packages ({:.1} MiB) and unpacking them", missing.len(), total as f64 / 1048576.0),
        );
        reporter.start(Phase::Download, total);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(DOWNLOAD_THREADS).build().expect("thread pool");
        let fetched: Vec<Result<(BlobInfo, bool), BuildError>> = pool.install(|| {
            missing
                .par_iter()
                .map(|p| match store.lookup_sha256(&package_sha(p)?)? {
                    Some(blob) => {
                        reporter.advance(Phase::Download, blob.size);
                        Ok((blob, true))
                    }
                    None => Ok((self.backend.fetch(p, &|n| reporter.advance(Phase::Download, n))?, false)),
                })
                .collect()
        });
        // Errors in package order, whichever failed first in time.
        let fetched: Vec<(BlobInfo, bool)> = fetched.into_iter().collect::<Result<_, _>>()?;
        reporter.finish(Phase::Download);
        for (p, (_, had)) in missing.iter().zip(&fetched) {
            steps.push(StepReport {
                step: "fetch",
                platform: None,
                name: deb_name(p),
                cached: *had,
                bytes: if *had { 0 } else { p.size },
            });
        }
        Ok(fetched.into_iter().map(|(blob, _)| blob).collect())
    }

    fn system_layer(
        &self,
        plan: &PlatformPlan,
        unpacked: &HashMap<String, (Hash, Hash)>,
        epoch: u64,
        compression: Compression,
    ) -> Result<LayerBlob, BuildError> {
        let store = self.ctx.store;
        let mut view = system::ImageView { store, entries: HashMap::new() };
        let mut metadata: Vec<Vec<u8>> = Vec::new();
        // Which package a path came from, to name both when a second one ships it too.
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut shared: Vec<(String, usize, usize)> = Vec::new();
        for (i, p) in plan.packages.iter().enumerate() {
            let (tree, control) = unpacked[&p.sha256];
            for entry in store.get_tree(&tree)?.entries {
                if !matches!(entry.kind, composer_store::EntryKind::Dir) {
                    if let Some(&first) = owner.get(&entry.path)
                        && view.entries.get(&entry.path).is_some_and(|old| old.kind != entry.kind)
                    {
                        shared.push((entry.path.clone(), first, i));
                    }
                    owner.insert(entry.path.clone(), i);
                }
                view.entries.insert(entry.path.clone(), entry);
            }
            metadata.push(store.read(&control)?);
        }
        for (path, first, second) in &shared {
            let (a, b) = (&plan.packages[*first], &plan.packages[*second]);
            if !self.backend.replaces(&metadata[*second], &a.name) && !self.backend.replaces(&metadata[*first], &b.name)
            {
                self.ctx.reporter.warn(&format!(
                    "packages `{}` and `{}` both ship /{path}, with different content ({}); \
                     dpkg would refuse to install both unless one Replaces the other",
                    a.name, b.name, plan.platform
                ));
            }
        }
        let packages: Vec<(&LockedPackage, &[u8])> =
            plan.packages.iter().zip(&metadata).map(|(p, m)| (p, m.as_slice())).collect();
        let distro = self.backend.system_files(&packages, &view)?;
        let inputs = system::SystemInputs { recipe: self.recipe, distro, epoch };
        let tree = system::system_tree(store, &view, &inputs)?;
        if self.recipe.allocator.name == AllocatorName::Jemalloc
            && self.recipe.allocator.source == AllocatorSource::Distro
        {
            let path = jemalloc_path(&plan.platform);
            if !view.exists(&path) {
                return Err(BuildError::Allocator { platform: plan.platform.to_string(), path });
            }
        }
        Ok(composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?)
    }

    fn image_spec(&self, platform: &Platform) -> Result<composer_oci::ImageSpec, BuildError> {
        let config = &self.recipe.config;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        for (key, value) in self.python_env() {
            let value = match env.get(&key) {
                Some(old) if key == "PATH" => format!("{value}:{old}"),
                _ => value,
            };
            env.insert(key, value);
        }
        let allocator = &self.recipe.allocator;
        if allocator.name == AllocatorName::Jemalloc {
            if allocator.mode == AllocatorMode::Preload {
                let path = match allocator.source {
                    AllocatorSource::Distro => jemalloc_path(platform),
                    AllocatorSource::Build => "/usr/local/lib/libjemalloc.so.2".into(),
                };
                env.insert("LD_PRELOAD".into(), path);
            }
            if let Some(conf) = &self.recipe.allocator.malloc_conf {
                env.insert("MALLOC_CONF".into(), conf.clone());
            }
        }
        env.extend(config.env.clone());
        Ok(composer_oci::ImageSpec {
            entrypoint: config.entrypoint.clone(),
            cmd: config.cmd.clone(),
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: config.workdir.clone(),
            user: config.user.clone(),
            labels: config.labels.clone(),
            exposed_ports: config.exposed_ports.clone(),
            volumes: config.volumes.clone(),
            stop_signal: config.stop_signal.clone(),
            annotations: config.annotations.clone(),
        })
    }
}

fn package_sha(package: &LockedPackage) -> Result<Sha256, BuildError> {
    package.sha256.parse().map_err(|reason| BuildError::BadDigest { package: package.name.clone(), reason })
}

pub fn jemalloc_path(platform: &Platform) -> String {
    format!("/usr/lib/{}/libjemalloc.so.2", platform.triplet())
}

fn unpack_key(package: &LockedPackage) -> ActionKey {
    ActionKey::new("unpack", UNPACK_VERSION)
        .with("distro", "debian")
        .with("package", package.sha256.as_bytes())
        .with("merged-usr", [1u8])
}

fn deb_name(p: &LockedPackage) -> String {
    format!("{}_{}_{}", p.name, p.version, p.architecture)
}

fn layer_name(packages: &[LockedPackage], group: &[usize]) -> String {
    match group {
        [one] => packages[*one].name.clone(),
        many => format!("{} packages ({}, ...)", many.len(), packages[many[0]].name),
    }
}

fn layer_record(step: &str, layer: &LayerBlob) -> ActionRecord {
    ActionRecord {
        inputs: Vec::new(),
        step: step.into(),
        outputs: vec![ObjectRef { id: layer.blob.id, kind: RefKind::Blob }],
        data: serde_json::to_value(layer).expect("serializes"),
    }
}

fn layer_from(record: &ActionRecord) -> Result<LayerBlob, BuildError> {
    serde_json::from_value(record.data.clone()).map_err(|e| {
        BuildError::Store(composer_store::StoreError::Corrupt {
            what: format!("{} record", record.step),
            reason: e.to_string(),
        })
    })
}

/// The wheels a recipe's locks name, every platform, fetched into the store if missing:
/// (wheel, its blob), deduplicated by sha256.
pub fn recipe_wheels(
    ctx: &Context<'_>,
    recipe: &Recipe,
    recipe_path: &Path,
) -> Result<Vec<(composer_wheels::LockedWheel, BlobInfo)>, BuildError> {
    let session = Session::new(ctx, recipe, recipe_path);
    let (lock, mut steps, _) = session.packages(LockPolicy::UseOrCreate, true)?;
    let (plans, _) = session.wheel_locks(&lock, LockPolicy::UseOrCreate, true, false)?;
    // Wheels built from sdists are published too: build them (a cache hit after `compose build`).
    let plans = if plans.iter().any(|p| p.lock.wheels.iter().any(|w| w.sdist)) {
        let sources = session.sources(&mut steps)?;
        let built = session.run_builds(&lock, sources, &mut steps)?;
        let wheels = session.sdist_builds(&lock, &plans, &built, &mut steps, compile::Mode::Build)?;
        session.with_built_wheels(plans, &wheels)
    } else {
        plans
    };
    session.fetch_locked_wheels(&plans)
}
