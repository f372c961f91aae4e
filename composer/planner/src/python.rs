//! The wheel set of a recipe's `[python]` section, per platform: locked by uv for the base's
//! own interpreter, fetched into the store, installed without pip into trees, and layered on
//! top of the base so that a change to the wheels rebuilds only their layers.
//!
//! Steps and their keys (only content hashes and recipe values):
//! - `wheel-install`: wheel sha256, install scheme (paths, interpreter), REQUESTED flag.
//! - `wheel-layer`: the install keys of its wheels, epoch, compression.
//! - `python-env`: the venv's path and interpreter version, epoch, compression.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use composer_oci::members::Precompressed;
use composer_oci::{LayerBlob, LayerDescriptor};
use composer_recipe::{Platform, Python};
use composer_store::{ActionKey, ActionRecord, BlobInfo, EntryKind, Hash, ObjectRef, RefKind, Sha256, Tree};
use composer_wheels::install::entry;
use composer_wheels::pylock::pylock_path;
use composer_wheels::resolve::{Request, find_uv, inputs_digest};
use composer_wheels::{LockedWheel, Scheme, Target, WheelError, WheelLock};
use rayon::prelude::*;

use crate::lockfile::Lockfile;
use crate::{BuildError, LockPolicy, Phase, Session, StepReport, layer_from, layer_record};

const INSTALL_VERSION: u32 = 2;
/// 3: files carry the recipe's epoch, not 1970.
const WHEEL_LAYER_VERSION: u32 = 3;
/// 2: files carry the recipe's epoch, not 1970.
const ENV_VERSION: u32 = 2;
const DOWNLOAD_THREADS: usize = 8;

/// One platform's wheel set and the keys of its steps.
pub(crate) struct WheelPlan {
    pub platform: Platform,
    pub lock: WheelLock,
    pub target: Target,
    pub install_keys: Vec<ActionKey>,
    pub groups: Vec<Vec<usize>>,
    pub layer_keys: Vec<ActionKey>,
    pub env_key: Option<ActionKey>,
    scheme: Scheme,
    venv: Option<String>,
}

/// The key of a `wheel-file` record: which wheels the store holds, for `compose wheels index`.
pub fn wheel_file_key(sha256: &str) -> ActionKey {
    ActionKey::new("wheel-file", 1).with("sha256", sha256)
}

fn install_key(wheel: &LockedWheel, scheme: &Scheme, requested: bool) -> ActionKey {
    ActionKey::new("wheel-install", INSTALL_VERSION)
        .with("sha256", &wheel.sha256)
        .with("purelib", &scheme.purelib)
        .with("scripts", &scheme.scripts)
        .with("headers", &scheme.headers)
        .with("data", &scheme.data)
        .with("interpreter", &scheme.interpreter)
        .with("requested", if requested { "1" } else { "0" })
}

/// Wheels grouped into at most `budget` layers (the largest alone, the rest together), the
/// groups in the name order of their first wheel.
fn group(wheels: &[LockedWheel], budget: usize) -> Vec<Vec<usize>> {
    let items: Vec<(&str, u64)> = wheels.iter().map(|w| (w.name.as_str(), w.size)).collect();
    let mut groups = crate::layers::largest_alone(&items, budget);
    groups.sort_by(|a, b| wheels[a[0]].name.cmp(&wheels[b[0]].name));
    groups
}

impl Session<'_> {
    pub(crate) fn python(&self) -> Option<&Python> {
        self.recipe.python.as_ref().filter(|p| !p.requirements.is_empty() || p.requirements_file.is_some())
    }

    /// The prefix of the CPython the recipe builds, if it builds one.
    pub(crate) fn interpreter_prefix(&self) -> Option<&str> {
        self.recipe.python.as_ref()?.build.as_ref().map(|b| b.prefix.trim_end_matches('/'))
    }

    fn wheel_request(&self, python: &Python) -> Result<Request, BuildError> {
        let read = |file: &Option<toml::Spanned<PathBuf>>| -> Result<Option<(PathBuf, String)>, BuildError> {
            let Some(file) = file else { return Ok(None) };
            let path =
                std::path::absolute(self.recipe.dir.join(file.get_ref())).unwrap_or_else(|_| file.get_ref().clone());
            let text = read_with_includes(&path, 0)?;
            Ok(Some((path, text)))
        };
        Ok(Request {
            requirements: python.requirements.iter().map(|r| r.get_ref().clone()).collect(),
            requirements_file: read(&python.requirements_file)?,
            constraints: python.constraints.iter().map(|r| r.get_ref().clone()).collect(),
            constraints_file: read(&python.constraints_file)?,
            only_binary: python.only_binary.clone(),
            no_binary: python.no_binary.get_ref().clone(),
            index: self.ctx.indexes.resolve(python.index.as_deref()),
            offline: self.ctx.offline,
        })
    }

    /// The wheel lock of every platform: from its pylock file when that was resolved for the
    /// same inputs, else (unless `--locked`) resolved again by uv and written when `write`.
    /// `refresh` resolves whatever the files say (`compose lock`).
    pub(crate) fn wheel_locks(
        &self,
        lock: &Lockfile,
        policy: LockPolicy,
        write: bool,
        refresh: bool,
    ) -> Result<(Vec<WheelPlan>, Vec<StepReport>), BuildError> {
        let Some(python) = self.python() else { return Ok((Vec::new(), Vec::new())) };
        let request = self.wheel_request(python)?;
        let mut uv = None;
        let mut plans = Vec::new();
        let mut steps = Vec::new();
        let platforms = self.recipe.image.platforms.get_ref();
        // Resolve the stale platforms in parallel: uv's time is mostly waiting on the index.
        let mut todo = Vec::new();
        let mut ready: BTreeMap<usize, (Target, WheelLock, bool)> = BTreeMap::new();
        let built_python = self.built_python_version()?;
        for (i, platform) in platforms.iter().enumerate() {
            let locked =
                lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers the recipe");
            let version = |name: &str| {
                locked.packages.iter().find(|p| p.name == name).map(|p| p.version.clone()).ok_or_else(|| {
                    WheelError::Target {
                        platform: platform.to_string(),
                        reason: format!("the base has no `{name}` package to read the interpreter from"),
                    }
                })
            };
            let python_version = match &built_python {
                Some(version) => version.clone(),
                None => version("python3")?,
            };
            let target = Target::from_debian(platform, &python_version, &version("libc6")?)?;
            let path = pylock_path(&self.recipe_path, &platform.to_string());
            let digest = inputs_digest(&request, &target);
            match WheelLock::read(&path)? {
                Some(existing) if !refresh && existing.meta.inputs == digest => {
                    ready.insert(i, (target, existing, true));
                }
                existing => {
                    if policy == LockPolicy::Locked {
                        return Err(match existing {
                            None => BuildError::LockMissing { path },
                            Some(_) => BuildError::LockOutdated {
                                path,
                                reason: "the wheel requirements or the interpreter changed".into(),
                            },
                        });
                    }
                    if uv.is_none() {
                        uv = Some(find_uv()?);
                    }
                    todo.push((i, target, path));
                }
            }
        }
        if !todo.is_empty() {
            self.ctx.reporter.status("Resolving", &format!("wheels for {} platform(s) with uv", todo.len()));
        }
        let resolved: Vec<Result<(usize, Target, WheelLock), BuildError>> = todo
            .into_par_iter()
            .map(|(i, target, path)| {
                let wheel_lock =
                    composer_wheels::resolve::resolve(uv.as_deref().expect("found above"), &request, &target)?;
                if write {
                    wheel_lock.write(&path)?;
                }
                Ok((i, target, wheel_lock))
            })
            .collect();
        for result in resolved {
            let (i, target, wheel_lock) = result?;
            ready.insert(i, (target, wheel_lock, false));
        }
        for (i, (target, wheel_lock, cached)) in ready {
            let platform = platforms[i].clone();
            steps.push(StepReport {
                step: "resolve-wheels",
                platform: Some(platform.to_string()),
                name: format!("{} wheels", wheel_lock.wheels.len()),
                cached,
                bytes: 0,
            });
            plans.push(self.wheel_plan(python, platform, target, wheel_lock));
        }
        Ok((plans, steps))
    }

    /// The keys of one platform's install, layer and venv steps.
    fn wheel_plan(&self, python: &Python, platform: Platform, target: Target, wheel_lock: WheelLock) -> WheelPlan {
        let (epoch, compression) = (crate::epoch(self.recipe), crate::compression(self.recipe));
        let venv = python.venv().map(str::to_string);
        let scheme = match (&venv, self.interpreter_prefix()) {
            (Some(root), _) => Scheme::venv(root, &target.python_version()),
            (None, Some(prefix)) => Scheme::prefix(prefix, &target.python_version()),
            (None, None) => Scheme::system(&target.python_version()),
        };
        let install_keys: Vec<ActionKey> = wheel_lock
            .wheels
            .iter()
            .map(|w| install_key(w, &scheme, wheel_lock.meta.requested.contains(&w.name)))
            .collect();
        let groups = group(&wheel_lock.wheels, python.max_layers);
        let layer_keys = groups
            .iter()
            .map(|g| {
                let mut key = ActionKey::new("wheel-layer", WHEEL_LAYER_VERSION)
                    .with("epoch", epoch.to_string())
                    .with("compression", compression.name());
                for &w in g {
                    key.field("install", &install_keys[w].hash().0);
                }
                key
            })
            .collect();
        let env_key = venv.as_ref().map(|root| {
            ActionKey::new("python-env", ENV_VERSION)
                .with("venv", root)
                .with("python", target.python_full_version())
                .with("home", self.interpreter_prefix().unwrap_or("/usr"))
                .with("epoch", epoch.to_string())
                .with("compression", compression.name())
        });
        WheelPlan { platform, lock: wheel_lock, target, install_keys, groups, layer_keys, env_key, scheme, venv }
    }

    /// The plans with every sdist replaced by the wheel built from it (`built`: by platform and
    /// sdist sha256), and their keys computed again: an install is keyed by the wheel it installs.
    pub(crate) fn with_built_wheels(
        &self,
        plans: Vec<WheelPlan>,
        built: &HashMap<(String, String), LockedWheel>,
    ) -> Vec<WheelPlan> {
        let Some(python) = self.python() else { return plans };
        plans
            .into_iter()
            .map(|plan| {
                if !plan.lock.wheels.iter().any(|w| w.sdist) {
                    return plan;
                }
                let platform = plan.platform.to_string();
                let mut lock = plan.lock;
                for wheel in &mut lock.wheels {
                    if let Some(done) = built.get(&(platform.clone(), wheel.sha256.clone())) {
                        *wheel = done.clone();
                    }
                }
                self.wheel_plan(python, plan.platform, plan.target, lock)
            })
            .collect()
    }

    /// Steps `plan` reports for the wheel sets.
    pub(crate) fn plan_wheels(&self, plans: &[WheelPlan], steps: &mut Vec<StepReport>) -> Result<(), BuildError> {
        let store = self.ctx.store;
        let mut seen = std::collections::HashSet::new();
        for plan in plans {
            let platform = Some(plan.platform.to_string());
            if let Some(key) = &plan.env_key {
                let cached = store.action_get(key)?.is_some();
                steps.push(StepReport {
                    step: "python-env",
                    platform: platform.clone(),
                    name: "venv".into(),
                    cached,
                    bytes: 0,
                });
            }
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                let cached = store.action_get(key)?.is_some();
                steps.push(StepReport {
                    step: "wheel-layer",
                    platform: platform.clone(),
                    name: group_name(&plan.lock.wheels, group),
                    cached,
                    bytes: 0,
                });
                if cached {
                    continue;
                }
                for &w in group {
                    let wheel = &plan.lock.wheels[w];
                    if !seen.insert(plan.install_keys[w].hash()) {
                        continue;
                    }
                    let installed = store.action_get(&plan.install_keys[w])?.is_some();
                    if !installed {
                        let fetched = store.lookup_sha256(&wheel_sha(wheel)?)?.is_some();
                        steps.push(StepReport {
                            step: "fetch-wheel",
                            platform: None,
                            name: wheel.filename.clone(),
                            cached: fetched,
                            bytes: if fetched { 0 } else { wheel.size },
                        });
                    }
                    steps.push(StepReport {
                        step: "install-wheel",
                        platform: platform.clone(),
                        name: wheel.filename.clone(),
                        cached: installed,
                        bytes: 0,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every wheel layer (and venv layer) of every platform, from the cache or built now, with
    /// the descriptors each platform's image gets on top of its base.
    pub(crate) fn wheel_layers(
        &self,
        plans: &[WheelPlan],
        steps: &mut Vec<StepReport>,
    ) -> Result<Vec<Vec<LayerDescriptor>>, BuildError> {
        let store = self.ctx.store;
        let (epoch, compression) = (crate::epoch(self.recipe), crate::compression(self.recipe));
        let mut layers: HashMap<Hash, LayerBlob> = HashMap::new();
        // Installs the missing layers need, deduplicated across platforms (a pure-Python wheel
        // installs the same on every one).
        let mut needed: BTreeMap<Hash, (ActionKey, LockedWheel, String)> = BTreeMap::new();
        for plan in plans {
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                match store.action_get(key)? {
                    Some(record) => {
                        layers.insert(key.hash(), layer_from(&record)?);
                    }
                    None => {
                        for &w in group {
                            let install = &plan.install_keys[w];
                            needed.insert(
                                install.hash(),
                                (install.clone(), plan.lock.wheels[w].clone(), plan.platform.to_string()),
                            );
                        }
                    }
                }
            }
        }
        let mut trees: HashMap<Hash, Installed> = HashMap::new();
        let mut missing = Vec::new();
        for (hash, (key, wheel, platform)) in &needed {
            match store.action_get(key)?.and_then(|r| installed_from(&r)) {
                Some(installed) => {
                    trees.insert(*hash, installed);
                    steps.push(StepReport {
                        step: "install-wheel",
                        platform: Some(platform.clone()),
                        name: wheel.filename.clone(),
                        cached: true,
                        bytes: 0,
                    });
                }
                None => missing.push((*hash, key, wheel, platform)),
            }
        }
        let schemes: HashMap<Hash, (&Scheme, bool)> = plans
            .iter()
            .flat_map(|p| {
                p.install_keys
                    .iter()
                    .zip(&p.lock.wheels)
                    .map(|(k, w)| (k.hash(), (&p.scheme, p.lock.meta.requested.contains(&w.name))))
            })
            .collect();

        // The missing layers, all platforms at once, each with the installs it waits for.
        let mut jobs: Vec<(&ActionKey, Vec<Hash>)> = Vec::new();
        let mut job_seen = std::collections::HashSet::new();
        let mut env_jobs: Vec<(&ActionKey, &WheelPlan)> = Vec::new();
        for plan in plans {
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                if !layers.contains_key(&key.hash()) && job_seen.insert(key.hash()) {
                    jobs.push((key, group.iter().map(|&w| plan.install_keys[w].hash()).collect()));
                }
            }
            if let Some(key) = &plan.env_key {
                match store.action_get(key)? {
                    Some(record) => {
                        layers.insert(key.hash(), layer_from(&record)?);
                    }
                    None if job_seen.insert(key.hash()) => env_jobs.push((key, plan)),
                    None => {}
                }
            }
        }

        // One pipeline: each wheel is fetched (unless the store has it) and installed in one
        // task, and a layer starts as soon as its last wheel is installed, so compression of
        // the first layers overlaps downloads of later wheels.
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut waiting: HashMap<Hash, Vec<usize>> = HashMap::new();
        let remaining: Vec<AtomicUsize> = jobs
            .iter()
            .enumerate()
            .map(|(j, (_, installs))| {
                let mut pending: Vec<Hash> = installs.iter().filter(|h| !trees.contains_key(*h)).copied().collect();
                pending.sort_unstable_by_key(|h| h.0);
                pending.dedup();
                for h in &pending {
                    waiting.entry(*h).or_default().push(j);
                }
                AtomicUsize::new(pending.len())
            })
            .collect();
        let trees = Mutex::new(trees);
        let install_results: Vec<Mutex<Option<Result<bool, BuildError>>>> =
            missing.iter().map(|_| Mutex::new(None)).collect();
        let layer_results: Vec<Mutex<Option<Result<LayerBlob, BuildError>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let env_results: Vec<Mutex<Option<Result<LayerBlob, BuildError>>>> =
            env_jobs.iter().map(|_| Mutex::new(None)).collect();
        let reporter = self.ctx.reporter;
        if !missing.is_empty() {
            let bytes: u64 = missing.iter().map(|(_, _, w, _)| w.size).sum();
            reporter.status(
                "Installing",
                &format!(
                    "{} wheels ({:.1} MiB of archives, fetched where the store lacks them)",
                    missing.len(),
                    bytes as f64 / 1048576.0
                ),
            );
        }
        reporter.start(Phase::Download, missing.iter().map(|(_, _, w, _)| w.size).sum());
        reporter.start(Phase::Unpack, missing.len() as u64);
        reporter.start(Phase::Layers, (jobs.len() + env_jobs.len()) as u64);
        let run_layer = |j: usize| {
            let (key, installs) = &jobs[j];
            let result = (|| {
                let mut tree = Tree::default();
                let mut reuse = composer_oci::members::Reuse::new();
                for h in installs {
                    let installed = trees.lock().expect("trees")[h].clone();
                    tree.entries.extend(store.get_tree(&installed.tree)?.entries);
                    for segment in installed.deflated {
                        reuse.entry(segment.0).or_insert(segment.1);
                    }
                }
                tree.normalize().map_err(composer_store::StoreError::from)?;
                // Members copy deflate data straight out of the wheels: check each wheel whole
                // first, as every other input of a layer is checked while it is read.
                let wheels: std::collections::BTreeSet<Hash> = reuse.values().map(|p| p.object).collect();
                wheels.iter().try_for_each(|id| store.verify_object(id))?;
                let layer = composer_oci::layer::write_layer_reusing(store, &tree.entries, epoch, compression, &reuse)?;
                let inputs = installs
                    .iter()
                    .map(|h| ObjectRef { id: trees.lock().expect("trees")[h].tree, kind: RefKind::Tree })
                    .chain(wheels.iter().map(|id| ObjectRef { id: *id, kind: RefKind::Blob }))
                    .collect::<Vec<_>>();
                store.action_put(key, &layer_record("wheel-layer", &layer).with_inputs(inputs))?;
                reporter.advance(Phase::Layers, 1);
                Ok(layer)
            })();
            *layer_results[j].lock().expect("layer result") = Some(result);
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(DOWNLOAD_THREADS).build().expect("thread pool");
        pool.install(|| {
            rayon::scope(|scope| {
                for (j, count) in remaining.iter().enumerate() {
                    if count.load(Ordering::SeqCst) == 0 {
                        let run_layer = &run_layer;
                        scope.spawn(move |_| run_layer(j));
                    }
                }
                for (e, (key, plan)) in env_jobs.iter().enumerate() {
                    let env_results = &env_results;
                    scope.spawn(move |_| {
                        let result = (|| {
                            let tree = self.env_tree(plan)?;
                            let layer = composer_oci::layer::write_layer(store, &tree.entries, epoch, compression)?;
                            store.action_put(key, &layer_record("python-env", &layer))?;
                            reporter.advance(Phase::Layers, 1);
                            Ok(layer)
                        })();
                        *env_results[e].lock().expect("env result") = Some(result);
                    });
                }
                for (i, (hash, key, wheel, _)) in missing.iter().enumerate() {
                    let (run_layer, trees, remaining, waiting, install_results, schemes) =
                        (&run_layer, &trees, &remaining, &waiting, &install_results, &schemes);
                    scope.spawn(move |scope| {
                        let result = (|| {
                            let (blob, had) = self.fetch_one(wheel)?;
                            let (scheme, requested) = schemes[hash];
                            let tree = self.install_one(key, wheel, &blob, scheme, requested)?;
                            trees.lock().expect("trees").insert(*hash, tree);
                            Ok(had)
                        })();
                        let ok = result.is_ok();
                        *install_results[i].lock().expect("install result") = Some(result);
                        if ok {
                            for &j in waiting.get(hash).into_iter().flatten() {
                                if remaining[j].fetch_sub(1, Ordering::SeqCst) == 1 {
                                    scope.spawn(move |_| run_layer(j));
                                }
                            }
                        }
                    });
                }
            })
        });
        reporter.finish(Phase::Download);
        reporter.finish(Phase::Unpack);
        reporter.finish(Phase::Layers);

        // Errors in wheel order, then layer order, whatever order they happened in.
        for ((_, _, wheel, platform), result) in missing.iter().zip(install_results) {
            let had = result.into_inner().expect("install result").expect("every install ran")?;
            steps.push(StepReport {
                step: "fetch-wheel",
                platform: None,
                name: wheel.filename.clone(),
                cached: had,
                bytes: if had { 0 } else { wheel.size },
            });
            steps.push(StepReport {
                step: "install-wheel",
                platform: Some((*platform).clone()),
                name: wheel.filename.clone(),
                cached: false,
                bytes: 0,
            });
        }
        let mut built = Vec::new();
        for ((key, _), result) in jobs.iter().zip(layer_results) {
            built.push(
                result
                    .into_inner()
                    .expect("layer result")
                    .expect("every layer ran once its wheels were installed")
                    .map(|layer| (key.hash(), layer)),
            );
        }
        for ((key, _), result) in env_jobs.iter().zip(env_results) {
            built.push(result.into_inner().expect("env result").expect("every env layer ran").map(|l| (key.hash(), l)));
        }
        let mut fresh = std::collections::HashSet::new();
        for result in built {
            let (hash, layer) = result?;
            fresh.insert(hash);
            layers.insert(hash, layer);
        }

        let mut out = Vec::new();
        for plan in plans {
            let platform = Some(plan.platform.to_string());
            let mut descriptors = Vec::new();
            if let Some(key) = &plan.env_key {
                steps.push(StepReport {
                    step: "python-env",
                    platform: platform.clone(),
                    name: "venv".into(),
                    cached: !fresh.contains(&key.hash()),
                    bytes: 0,
                });
                descriptors.push(LayerDescriptor {
                    layer: layers[&key.hash()].clone(),
                    packages: vec![],
                    comment: format!("python: virtual environment {}", plan.venv.as_deref().unwrap_or_default()),
                });
            }
            for (group, key) in plan.groups.iter().zip(&plan.layer_keys) {
                let name = group_name(&plan.lock.wheels, group);
                steps.push(StepReport {
                    step: "wheel-layer",
                    platform: platform.clone(),
                    name: name.clone(),
                    cached: !fresh.contains(&key.hash()),
                    bytes: 0,
                });
                descriptors.push(LayerDescriptor {
                    layer: layers[&key.hash()].clone(),
                    packages: group
                        .iter()
                        .map(|&w| format!("{}=={}", plan.lock.wheels[w].name, plan.lock.wheels[w].version))
                        .collect(),
                    comment: format!("wheels: {name}"),
                });
            }
            out.push(descriptors);
        }
        Ok(out)
    }

    /// Fetches wheel files the store lacks (8 at a time).
    fn fetch_wheels(&self, wheels: &[&LockedWheel]) -> Result<Vec<BlobInfo>, BuildError> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(DOWNLOAD_THREADS).build().expect("thread pool");
        let fetched: Vec<Result<(BlobInfo, bool), BuildError>> =
            pool.install(|| wheels.par_iter().map(|wheel| self.fetch_one(wheel)).collect());
        fetched.into_iter().map(|r| r.map(|(blob, _)| blob)).collect()
    }

    /// A wheel file from the store, or fetched into it: checked against its locked sha256 and
    /// size before it is stored. The flag says whether the store had it.
    pub(crate) fn fetch_one(&self, wheel: &LockedWheel) -> Result<(BlobInfo, bool), BuildError> {
        let store = self.ctx.store;
        let sha = wheel_sha(wheel)?;
        let record_file = |blob: &BlobInfo| -> Result<(), BuildError> {
            // Sdists are inputs of builds, not wheels to publish.
            if !wheel.sdist && store.action_get(&wheel_file_key(&wheel.sha256))?.is_none() {
                store.action_put(&wheel_file_key(&wheel.sha256), &wheel_file_record(wheel, blob))?;
            }
            Ok(())
        };
        if let Some(blob) = store.lookup_sha256(&sha)? {
            record_file(&blob)?;
            return Ok((blob, true));
        }
        let size = (wheel.size > 0).then_some(wheel.size);
        let blob = self
            .ctx
            .client
            .fetch_to_store(store, &wheel.url, Some((&sha, size)), &wheel.filename, &|n| {
                self.ctx.reporter.advance(Phase::Download, n)
            })
            .map_err(|source| BuildError::Fetch { what: wheel.filename.clone(), source })?;
        record_file(&blob)?;
        Ok((blob, false))
    }

    /// Installs one stored wheel into a tree and records the step.
    fn install_one(
        &self,
        key: &ActionKey,
        wheel: &LockedWheel,
        blob: &BlobInfo,
        scheme: &Scheme,
        requested: bool,
    ) -> Result<Installed, BuildError> {
        let store = self.ctx.store;
        let file = store.open_verified_file(&blob.id)?;
        let installed = composer_wheels::install::install(
            store,
            std::io::BufReader::new(file),
            &wheel.filename,
            requested,
            scheme,
        )?;
        let tree = store.put_tree(&installed.tree)?;
        let metadata = store.put_content(&installed.metadata)?;
        let deflated: Vec<(Hash, Precompressed)> = installed
            .deflated
            .iter()
            .map(|d| {
                let reused =
                    Precompressed { object: blob.id, offset: d.offset, length: d.length, crc32: d.crc32, size: d.size };
                (d.content, reused)
            })
            .collect();
        // The wheel is an output too: layers read its deflate data, so it lives as long as this.
        let record = ActionRecord {
            inputs: Vec::new(),
            step: "wheel-install".into(),
            outputs: vec![
                ObjectRef { id: tree, kind: RefKind::Tree },
                ObjectRef { id: metadata, kind: RefKind::Blob },
                ObjectRef { id: blob.id, kind: RefKind::Blob },
            ],
            data: serde_json::json!({ "wheel": wheel.filename, "deflated": deflated }),
        };
        store.action_put(key, &record)?;
        self.ctx.reporter.advance(Phase::Unpack, 1);
        Ok(Installed { tree, deflated })
    }

    /// The virtual environment itself: pyvenv.cfg and the interpreter links, as `python -m venv
    /// --without-pip` makes them, with the base's interpreter as `home`.
    fn env_tree(&self, plan: &WheelPlan) -> Result<Tree, BuildError> {
        let root = plan.venv.as_deref().expect("env layers are for venvs").trim_matches('/');
        let version = plan.target.python_version();
        let store = self.ctx.store;
        let mut entries = Vec::new();
        let mut dir = |path: String| entries.push(entry(&path, EntryKind::Dir, 0o755));
        let mut prefix = String::new();
        for part in root.split('/') {
            prefix = if prefix.is_empty() { part.to_string() } else { format!("{prefix}/{part}") };
            dir(prefix.clone());
        }
        for sub in
            ["bin", "include", "lib", &format!("lib/python{version}"), &format!("lib/python{version}/site-packages")]
        {
            dir(format!("{root}/{sub}"));
        }
        let bin = format!("{}/bin", self.interpreter_prefix().unwrap_or("/usr"));
        let cfg = format!(
            "home = {bin}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {bin}/python{version}\ncommand = {bin}/python{version} -m venv /{root}\n",
            plan.target.python_full_version()
        );
        let content = store.put_content(cfg.as_bytes())?;
        entries.push(entry(&format!("{root}/pyvenv.cfg"), EntryKind::File { content, size: cfg.len() as u64 }, 0o644));
        let link = |path: String, target: &str| entry(&path, EntryKind::Symlink { target: target.to_string() }, 0o777);
        entries.push(link(format!("{root}/bin/python"), &format!("{bin}/python{version}")));
        entries.push(link(format!("{root}/bin/python3"), "python"));
        entries.push(link(format!("{root}/bin/python{version}"), "python"));
        entries.push(link(format!("{root}/lib64"), "lib"));
        let mut tree = Tree { entries };
        tree.normalize().map_err(composer_store::StoreError::from)?;
        Ok(tree)
    }

    /// Every wheel of `plans` (deduplicated) with its blob, fetched if the store lacks it.
    pub(crate) fn fetch_locked_wheels(&self, plans: &[WheelPlan]) -> Result<Vec<(LockedWheel, BlobInfo)>, BuildError> {
        let mut unique: BTreeMap<&str, &LockedWheel> = BTreeMap::new();
        for plan in plans {
            for wheel in &plan.lock.wheels {
                unique.insert(&wheel.sha256, wheel);
            }
        }
        let wheels: Vec<&LockedWheel> = unique.into_values().collect();
        let blobs = self.fetch_wheels(&wheels)?;
        Ok(wheels.into_iter().cloned().zip(blobs).collect())
    }

    /// The environment variables a venv target adds to the image config.
    pub(crate) fn python_env(&self) -> Vec<(String, String)> {
        match self.python().and_then(Python::venv) {
            Some(root) => vec![("VIRTUAL_ENV".into(), root.to_string()), ("PATH".into(), format!("{root}/bin"))],
            None => vec![],
        }
    }
}

/// A pip requirements file with the files it includes (`-r`, `-c`) appended, so that a change in
/// any of them changes the lock's input digest. Included constraints are appended as `-c` lines,
/// which never count as requested packages.
fn read_with_includes(path: &std::path::Path, depth: usize) -> Result<String, BuildError> {
    let mut text = std::fs::read_to_string(path)
        .map_err(|source| WheelError::Io { what: format!("reading {}", path.display()), source })?;
    if depth >= 8 {
        return Ok(text);
    }
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut appended = String::new();
    for line in text.lines() {
        let line = line.trim();
        let include = |flag: &str| {
            line.strip_prefix(flag)
                .filter(|r| r.starts_with([' ', '=']))
                .map(|r| r.trim_start_matches([' ', '=']).trim())
        };
        if let Some(file) = include("-r").or_else(|| include("--requirement")) {
            appended.push_str(&read_with_includes(&base.join(file), depth + 1)?);
        } else if let Some(file) = include("-c").or_else(|| include("--constraint")) {
            for constraint in read_with_includes(&base.join(file), depth + 1)?.lines() {
                appended.push_str(&format!("-c {constraint}\n"));
            }
        }
    }
    text.push('\n');
    text.push_str(&appended);
    Ok(text)
}

/// An installed wheel as layers need it: its tree, and which contents have reusable deflate data.
#[derive(Clone)]
struct Installed {
    tree: Hash,
    deflated: Vec<(Hash, Precompressed)>,
}

fn installed_from(record: &ActionRecord) -> Option<Installed> {
    let tree = record.outputs.first()?.id;
    let deflated = serde_json::from_value(record.data.get("deflated")?.clone()).ok()?;
    Some(Installed { tree, deflated })
}

fn wheel_file_record(wheel: &LockedWheel, blob: &BlobInfo) -> ActionRecord {
    ActionRecord {
        inputs: Vec::new(),
        step: "wheel-file".into(),
        outputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
        data: serde_json::json!({
            "filename": wheel.filename,
            "name": wheel.name,
            "version": wheel.version,
            "sha256": wheel.sha256,
            "size": blob.size,
        }),
    }
}

pub(crate) fn wheel_sha(wheel: &LockedWheel) -> Result<Sha256, BuildError> {
    wheel.sha256.parse().map_err(|reason| BuildError::BadDigest { package: wheel.filename.clone(), reason })
}

fn group_name(wheels: &[LockedWheel], group: &[usize]) -> String {
    match group {
        [one] => format!("{}=={}", wheels[*one].name, wheels[*one].version),
        _ => format!("{} and {} more", wheels[group[0]].name, group.len() - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, size: u64) -> LockedWheel {
        LockedWheel {
            name: name.into(),
            version: "1".into(),
            filename: format!("{name}-1-py3-none-any.whl"),
            url: String::new(),
            size,
            sdist: false,
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn largest_wheels_get_their_own_layers() {
        let wheels = [wheel("a", 1), wheel("b", 50), wheel("c", 10), wheel("d", 30)];
        assert_eq!(group(&wheels, 8).len(), 4);
        assert_eq!(group(&wheels, 3), vec![vec![0, 2], vec![1], vec![3]]);
        assert_eq!(group(&wheels, 1), vec![vec![0, 1, 2, 3]]);
    }
}
