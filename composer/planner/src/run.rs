//! Executes a [`Plan`]: every missing step through the one scheduler ([`crate::execute`]), each
//! as soon as the steps below it are done, then the image documents from the layers' results.
//!
//! Whether a step's result is available is asked in one place, [`Session::available`]: at plan
//! time for the steps whose keys are known, and here for those whose keys became known as the
//! steps below them finished.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use composer_oci::LayerDescriptor;
use composer_store::{ActionKey, ActionRecord, BlobInfo, Hash, Sha256};

use crate::execute::{Task, execute};
use crate::keys::{self, KeyInputs};
use crate::plan::{Output, Plan, Step, StepKind, Work};
use crate::records::{BUILT_WHEEL, corrupt_record, layer_from, package_file_record};
use crate::report::{Phase, StepReport};
use crate::{BuildError, BuildOutcome, Session};

impl Session<'_> {
    /// The result of `step` if the store holds it: a fetched file by its sha256, any other step
    /// by its key (`None` while the key is not known). The one question plan and build ask
    /// before running a step; a remote cache is to answer here too.
    pub(crate) fn available(&self, step: &Step, key: Option<&ActionKey>) -> Result<Option<Output>, BuildError> {
        if step.kind.is_network()
            && let Some(sha256) = step.sha256
        {
            return Ok(self.ctx.store.lookup_sha256(&sha256)?.map(Output::Blob));
        }
        let Some(key) = key else { return Ok(None) };
        let Some(record) = self.ctx.store.action_get(key)? else { return Ok(None) };
        if step.kind == StepKind::Fetch {
            return self.package_file_of(&record);
        }
        self.output_of(step, &record)
    }

    /// The package file a `package-file` record names, if the store holds that very blob.
    fn package_file_of(&self, record: &ActionRecord) -> Result<Option<Output>, BuildError> {
        let sha256 = record.data.get("sha256").and_then(|s| s.as_str()).and_then(|s| s.parse::<Sha256>().ok());
        let (Some(sha256), Some(output)) = (sha256, record.outputs.first()) else {
            return Err(BuildError::Store(composer_store::StoreError::Corrupt {
                what: format!("{} record", record.step),
                reason: Box::new(composer_store::Corruption::Unparsable("it names no package file".into())),
            }));
        };
        let blob = self.ctx.store.lookup_sha256(&sha256)?.filter(|blob| blob.id == output.id);
        Ok(blob.map(Output::Blob))
    }

    /// The result a step's record (the store's, or a cache's signed claim) stands for.
    pub(crate) fn output_of(&self, step: &Step, record: &ActionRecord) -> Result<Option<Output>, BuildError> {
        let tree = || record.outputs.first().map(|o| o.id);
        Ok(match step.kind {
            StepKind::Unpack => match (record.outputs.first(), record.outputs.get(1)) {
                (Some(tree), Some(control)) => Some(Output::Unpacked { tree: tree.id, control: control.id }),
                _ => None,
            },
            StepKind::Layer => {
                let data: crate::package_layer::PackageLayerData =
                    serde_json::from_value(record.data.clone()).map_err(|e| corrupt_record(record, e))?;
                Some(Output::PackageLayer { layer: data.layer, listings: data.listings })
            }
            StepKind::SystemLayer | StepKind::WheelLayer | StepKind::PythonEnv => {
                Some(Output::Layer(Some(layer_from(record)?)))
            }
            // Nothing to add is recorded too, so that it is not tried again.
            StepKind::BuildLayer | StepKind::PythonBytecode if record.data.is_null() => Some(Output::Layer(None)),
            StepKind::BuildLayer | StepKind::PythonBytecode => Some(Output::Layer(Some(layer_from(record)?))),
            StepKind::BuildRoot | StepKind::Build => tree().map(Output::Tree),
            StepKind::SdistBuild => match (tree(), &step.work) {
                // A cache's claim names the wheel (see `Session::shareable`): its tree is not here yet.
                (Some(tree), Work::SdistBuild { .. }) if !self.ctx.store.contains(&tree) => {
                    record.data.get(BUILT_WHEEL).and_then(|w| serde_json::from_value(w.clone()).ok()).map(Output::Wheel)
                }
                (Some(tree), Work::SdistBuild { sdist, platform, .. }) => {
                    Some(Output::Wheel(self.built_wheel(sdist, platform, &tree)?))
                }
                _ => None,
            },
            StepKind::InstallWheel => crate::wheel_steps::installed_from(record).map(Output::Installed),
            StepKind::Source | StepKind::Fetch | StepKind::FetchWheel => None,
        })
    }

    /// Runs the plan's missing steps and writes the image documents.
    pub fn build_plan(&self, plan: Plan) -> Result<BuildOutcome, BuildError> {
        let timer = std::time::Instant::now();
        let outputs = self.execute_plan(&plan)?;
        self.ctx.reporter.note(&format!("steps done at {:.2}s", timer.elapsed().as_secs_f64()));
        // One image per core (each reads its own layers); errors in the images' order.
        let checked: Vec<Result<(), BuildError>> =
            plan.images.par_iter().map(|image| self.check_loadable(&plan, image, &outputs.results)).collect();
        checked.into_iter().collect::<Result<Vec<()>, BuildError>>()?;
        let steps = plan.resolution.iter().cloned().chain(outputs.reports).collect();
        let (index, manifests) = self.write_images(&plan, &outputs.results)?;
        Ok(BuildOutcome {
            index,
            manifests,
            steps,
            resolution_steps: plan.resolution.len(),
            lock_written: plan.lock_written,
        })
    }

    /// Every step's result: from the store, or run now.
    pub(crate) fn execute_plan(&self, plan: &Plan) -> Result<Executed, BuildError> {
        let steps = &plan.steps;
        let reporter = self.ctx.reporter;
        let missing = |kinds: &[StepKind]| {
            let kinds = kinds.to_vec();
            steps.iter().filter(move |s| !s.cached && kinds.contains(&s.kind))
        };
        let downloads: u64 = missing(&[StepKind::Fetch, StepKind::FetchWheel]).map(|s| s.bytes).sum();
        self.check_free_space(downloads)?;
        let packages = missing(&[StepKind::Fetch]).count();
        if packages > 0 {
            reporter.status("Fetching", &format!("{packages} packages ({:.1} MiB)", downloads as f64 / 1048576.0));
        }
        let wheels = missing(&[StepKind::InstallWheel]).count();
        if wheels > 0 {
            reporter.status("Installing", &format!("{wheels} wheels (fetched where the store lacks them)"));
        }
        let layer_kinds = [StepKind::Layer, StepKind::SystemLayer, StepKind::WheelLayer, StepKind::PythonEnv];
        let layers = missing(&layer_kinds).count();
        if layers > 0 {
            let compression = crate::compression(self.recipe);
            reporter.status("Layering", &format!("{layers} layers ({})", compression.name()));
        }
        reporter.start(Phase::Download, downloads);
        reporter.start(Phase::Unpack, missing(&[StepKind::Unpack, StepKind::InstallWheel]).count() as u64);
        reporter.start(Phase::Layers, layers as u64);

        let inputs = KeyInputs { epoch: self.epoch(), compression: crate::compression(self.recipe) };
        let keys: Vec<OnceLock<ActionKey>> = steps
            .iter()
            .map(|s| {
                let lock = OnceLock::new();
                if let Some(key) = &s.key {
                    let _ = lock.set(key.clone());
                }
                lock
            })
            .collect();
        let found: Vec<AtomicBool> = steps.iter().map(|s| AtomicBool::new(s.cached)).collect();
        let from_cache: Vec<OnceLock<String>> = steps.iter().map(|_| OnceLock::new()).collect();
        let tasks: Vec<Task> = steps
            .iter()
            .map(|s| Task {
                deps: if s.cached { Vec::new() } else { s.deps.clone() },
                pool: s.kind.pool(),
                weight: s.work.weight(),
            })
            .collect();
        let results = execute(&tasks, |i, done: &[OnceLock<Output>]| -> Result<Output, BuildError> {
            let step = &steps[i];
            if let Some(output) = &step.output {
                reporter.step(&step.report(), 0.0);
                return Ok(output.clone());
            }
            // Asked to stop: what runs ends (a sandbox is killed), nothing starts.
            if self.ctx.interrupted.load(Ordering::Relaxed) {
                return Err(BuildError::Interrupted);
            }
            let started = std::time::Instant::now();
            let finished = |cached: bool, from_cache: Option<&String>| {
                let report = StepReport {
                    cached,
                    bytes: if cached { 0 } else { step.bytes },
                    substituted: from_cache.cloned(),
                    ..step.report()
                };
                reporter.step(&report, started.elapsed().as_secs_f64());
            };
            let key = match keys[i].get() {
                Some(key) => Some(key.clone()),
                None => keys::dynamic_key(steps, i, done, &keys, &inputs),
            };
            if let Some(key) = &key {
                let _ = keys[i].set(key.clone());
            }
            // Another build may have made it since the plan was settled.
            if let Some(output) = self.available(step, key.as_ref())? {
                found[i].store(true, Ordering::SeqCst);
                finished(true, None);
                return Ok(output);
            }
            if let Some((blob, cache)) = self.input_from_caches(step) {
                let _ = from_cache[i].set(cache);
                if step.kind == StepKind::Fetch {
                    finished(false, from_cache[i].get());
                    return Ok(Output::Blob(blob));
                }
                // A wheel or source in the store now: the step records it as it records one it
                // finds there.
            }
            let output = self.run_step(plan, i, key.as_ref(), done)?;
            if layer_kinds.contains(&step.kind) {
                reporter.advance(Phase::Layers, 1);
            }
            finished(false, from_cache[i].get());
            Ok(output)
        });
        reporter.finish(Phase::Download);
        reporter.finish(Phase::Unpack);
        reporter.finish(Phase::Layers);
        let results = results?;
        let reports = steps
            .iter()
            .zip(&found)
            .zip(from_cache)
            .map(|((s, found), cache)| {
                let cached = found.load(Ordering::SeqCst);
                let substituted = cache.into_inner().or_else(|| s.substituted.clone());
                StepReport { cached, bytes: if cached { 0 } else { s.bytes }, substituted, ..s.report() }
            })
            .collect();
        Ok(Executed { results, reports })
    }

    /// An input (package, wheel, source) from the first cache that holds it, before the network:
    /// its SHA-256 comes from a signed index or a pin, so any cache may serve it, unsigned.
    fn input_from_caches(&self, step: &Step) -> Option<(BlobInfo, String)> {
        let caches = self.ctx.substituters.filter(|c| !c.is_empty())?;
        let sha256 = step.sha256.filter(|_| step.kind.is_network())?;
        let size = (step.bytes > 0).then_some(step.bytes);
        let found = caches.fetch_input(self.ctx.store, &sha256, size, &step.name);
        for warning in caches.take_warnings() {
            self.ctx.reporter.warn(&warning);
        }
        found
    }

    /// Runs one step whose result the store lacks, records it under `key` and returns it.
    fn run_step(
        &self,
        plan: &Plan,
        i: usize,
        key: Option<&ActionKey>,
        done: &[OnceLock<Output>],
    ) -> Result<Output, BuildError> {
        let step = &plan.steps[i];
        let store = self.ctx.store;
        let blob = |s: usize| match done[s].get() {
            Some(Output::Blob(blob)) => *blob,
            _ => unreachable!("a fetch step's result is a blob"),
        };
        let tree = |s: usize| match done[s].get() {
            Some(Output::Tree(tree)) => *tree,
            _ => unreachable!("a build step's result is a tree"),
        };
        let key = || key.expect("a step that records its result has a key once its dependencies ran");
        let progress = |n: u64| self.ctx.reporter.advance(Phase::Download, n);
        Ok(match &step.work {
            Work::Source { name } => {
                let source = self.recipe.sources.iter().find(|s| s.name.get_ref() == name).expect("a recipe source");
                let (blob, _) = crate::sources::fetch_one(self.ctx, &*self.backend, self.recipe, source)?;
                self.check_source_version(name, &blob)?;
                Output::Blob(blob)
            }
            Work::Fetch { package } => {
                let blob = self.backend.fetch(package, &progress)?;
                // Verified by the backend against the identity the key is made of.
                if let Some(key) = step.key.as_ref() {
                    store.action_put(key, &package_file_record(&blob))?;
                }
                Output::Blob(blob)
            }
            Work::FetchWheel { wheel } => Output::Blob(self.fetch_one(wheel)?.0),
            Work::Unpack { package } => {
                let (tree, control) = self.unpack_one(package, &blob(step.deps[0]), key())?;
                Output::Unpacked { tree, control }
            }
            Work::Layer { packages } => {
                let blobs: Vec<BlobInfo> = step.deps.iter().map(|&d| blob(d)).collect();
                let data = self.package_layer(packages, &blobs, key())?;
                Output::PackageLayer { layer: data.layer, listings: data.listings }
            }
            Work::SystemLayer => {
                let image = plan.images.iter().find(|im| im.layers.iter().any(|l| l.step == i)).expect("an image's");
                // The image's package layers are below: each package's listing, by its file.
                let mut by_file: HashMap<String, Hash> = HashMap::new();
                for &d in &step.deps {
                    let (Work::Layer { packages }, Some(Output::PackageLayer { listings, .. })) =
                        (&plan.steps[d].work, done[d].get())
                    else {
                        unreachable!("a system layer reads package layers")
                    };
                    by_file.extend(packages.iter().map(|p| p.identity.key()).zip(listings.iter().copied()));
                }
                let listings: Vec<Hash> = image
                    .packages
                    .iter()
                    .map(|p| by_file.get(&p.identity.key()).copied().expect("every package of an image is in a layer"))
                    .collect();
                Output::Layer(Some(self.system_layer(image, &listings, key())?))
            }
            Work::BuildRoot { platform, packages } => {
                let unpacked: Vec<(Hash, Hash)> = step.deps.iter().map(|&d| unpacked(done, d)).collect();
                Output::Tree(self.build_root(key(), platform, packages, &unpacked)?)
            }
            Work::Build { platform, job, env, root, sources, uses } => {
                let sources: BTreeMap<String, BlobInfo> =
                    sources.iter().map(|(mount, s)| (mount.clone(), blob(*s))).collect();
                let uses: Vec<(String, Hash)> = uses.iter().map(|(n, s)| (n.clone(), tree(*s))).collect();
                Output::Tree(self.run_job(job, platform, key(), tree(*root), env.clone(), &sources, &uses)?)
            }
            Work::SdistBuild { platform, sdist, job, env, root, sources, uses } => {
                let sources: BTreeMap<String, BlobInfo> =
                    sources.iter().map(|(mount, s)| (mount.clone(), blob(*s))).collect();
                let uses: Vec<(String, Hash)> = uses.iter().map(|(n, s)| (n.clone(), tree(*s))).collect();
                let built = self.run_job(job, platform, key(), tree(*root), env.clone(), &sources, &uses)?;
                Output::Wheel(self.built_wheel(sdist, platform, &built)?)
            }
            Work::BuildLayer { build, part } => Output::Layer(self.build_layer(&tree(*build), *part, key())?),
            Work::InstallWheel { wheel, source, scheme, requested } => {
                let (wheel, file) = match (wheel, done[*source].get()) {
                    (Some(wheel), Some(Output::Blob(file))) => (wheel.clone(), *file),
                    (None, Some(Output::Wheel(built))) => {
                        let sha: Sha256 = crate::wheel_steps::wheel_sha(built)?;
                        let file = store.lookup_sha256(&sha)?.ok_or_else(|| composer_store::StoreError::Corrupt {
                            what: format!("wheel {}", built.filename),
                            reason: Box::new(composer_store::Corruption::Missing),
                        })?;
                        (built.clone(), file)
                    }
                    _ => unreachable!("an install reads a fetched or built wheel"),
                };
                Output::Installed(self.install_one(key(), &wheel, &file, scheme, *requested)?)
            }
            Work::WheelLayer { installs } => {
                let installed = installs.iter().map(|&s| match done[s].get() {
                    Some(Output::Installed(installed)) => installed.clone(),
                    _ => unreachable!("a wheel layer reads installs"),
                });
                Output::Layer(Some(self.wheel_layer(installed.collect(), key())?))
            }
            Work::PythonEnv { root, version, full_version } => {
                Output::Layer(Some(self.env_layer(root, version, full_version, key())?))
            }
            Work::Bytecode { part, below, .. } => {
                let platform = step.platform.as_deref().expect("bytecode is per platform").parse().expect("a platform");
                let below: Vec<LayerDescriptor> = below
                    .iter()
                    .filter_map(|&s| done[s].get().expect("bytecode runs after the layers below it").layer().cloned())
                    .map(|layer| LayerDescriptor { layer, packages: vec![], comment: String::new() })
                    .collect();
                Output::Layer(self.bytecode_layer(*part, &platform, key(), &below)?)
            }
        })
    }

    /// Refuses to start a build whose downloads, and as much again for the layers made of them,
    /// do not fit in the store's filesystem: a build that runs out of space half-way has spent
    /// its time for nothing and says so in terms of whichever write failed.
    fn check_free_space(&self, downloads: u64) -> Result<(), BuildError> {
        let needed = downloads.saturating_mul(2);
        let root = self.ctx.store.root();
        let Ok(stat) = rustix::fs::statvfs(root) else { return Ok(()) };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        match free >= needed {
            true => Ok(()),
            false => Err(BuildError::NoSpace { store: root.to_path_buf(), needed, free }),
        }
    }

    /// Each platform's manifest and config from its layers' results, and the index.
    fn write_images(
        &self,
        plan: &Plan,
        results: &[Output],
    ) -> Result<(BlobInfo, Vec<(composer_recipe::Platform, BlobInfo)>), BuildError> {
        let store = self.ctx.store;
        let epoch = self.epoch();
        let mut manifests = Vec::new();
        let mut images = Vec::new();
        for image in &plan.images {
            let descriptors: Vec<LayerDescriptor> = image
                .layers
                .iter()
                .filter_map(|l| {
                    results[l.step].layer().map(|layer| LayerDescriptor {
                        layer: layer.clone(),
                        packages: l.packages.clone(),
                        comment: l.comment.clone(),
                    })
                })
                .collect();
            let spec = self.image_spec(&image.platform)?;
            let written = composer_oci::image::write_platform_image(
                store,
                &image.platform.architecture,
                image.platform.oci_variant(),
                &spec,
                &descriptors,
                epoch,
            )?;
            let manifest_sha: Sha256 = written
                .manifest
                .digest()
                .to_string()
                .parse()
                .map_err(|e: composer_store::NotASha256| composer_oci::OciError::Spec(e.to_string()))?;
            let manifest = store.lookup_sha256(&manifest_sha)?.expect("just written");
            manifests.push((image.platform.clone(), manifest));
            images.push(written);
        }
        let index = composer_oci::image::write_index(store, &images, &self.recipe.config.annotations)?;
        Ok((index, manifests))
    }
}

/// What executing a plan gave: each step's result and report, in the plan's order.
pub(crate) struct Executed {
    pub results: Vec<Output>,
    pub reports: Vec<StepReport>,
}

fn unpacked(done: &[OnceLock<Output>], step: usize) -> (Hash, Hash) {
    match done[step].get() {
        Some(Output::Unpacked { tree, control }) => (*tree, *control),
        _ => unreachable!("a package step's result is its unpacked tree"),
    }
}
