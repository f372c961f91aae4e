//! Recipe + locks → the whole graph: every step of every platform's image, in dependency order,
//! with the keys that need no step's output. [`crate::settle`] then asks the store and keeps
//! what the images need.

use std::collections::{BTreeMap, HashMap};

use composer_recipe::Platform;
use composer_store::{ActionKey, Hash};
use composer_wheels::LockedWheel;

use crate::compile::ImagePart;
use crate::keys;
use crate::lockfile::LockedPackage;
use crate::plan::Part;
use crate::plan::{ImageLayer, ImagePlan, Plan, Step, StepKind, WheelKeys, Work};
use crate::python::{WheelPlan, group_name};
use crate::{BuildError, LockPolicy, Session};

struct Graph {
    /// The backend's name: what keys a package file that the store cannot find by its SHA-256.
    distro: &'static str,
    steps: Vec<Step>,
    fetches: HashMap<String, usize>,
    /// Steps by what makes them unique: a package's fetch and unpack by its identity, keyed steps
    /// by key (a layer of `Architecture: all` packages is one step for every platform).
    unpacks: HashMap<String, usize>,
    fetched_wheels: HashMap<String, usize>,
    by_key: HashMap<Hash, usize>,
    sources: BTreeMap<String, usize>,
}

fn step(
    kind: StepKind,
    platform: Option<&Platform>,
    name: String,
    key: Option<ActionKey>,
    deps: Vec<usize>,
    work: Work,
) -> Step {
    Step {
        kind,
        platform: platform.map(|p| p.to_string()),
        name,
        key,
        sha256: None,
        deps,
        cached: false,
        bytes: 0,
        substituted: None,
        work,
        output: None,
    }
}

impl Graph {
    fn push(&mut self, step: Step) -> usize {
        if let Some(key) = &step.key
            && let Some(&i) = self.by_key.get(&key.hash())
        {
            return i;
        }
        if let Some(key) = &step.key {
            self.by_key.insert(key.hash(), self.steps.len());
        }
        self.steps.push(step);
        self.steps.len() - 1
    }

    fn fetch(&mut self, package: &LockedPackage) -> Result<usize, BuildError> {
        let identity = package.identity.key();
        if let Some(&i) = self.fetches.get(&identity) {
            return Ok(i);
        }
        // A file the signed index names by its SHA-256 is found in the store (and any cache) by
        // it; any other is found by the record its verified fetch leaves.
        let key = match package.identity.sha256() {
            Some(_) => None,
            None => Some(keys::package_file_key(self.distro, package)),
        };
        let mut fetch =
            step(StepKind::Fetch, None, deb_name(package), key, vec![], Work::Fetch { package: package.clone() });
        fetch.sha256 = package.identity.sha256();
        fetch.bytes = package.size;
        let i = self.push(fetch);
        self.fetches.insert(identity, i);
        Ok(i)
    }

    /// A package unpacked into the store, for a build root (image layers read package files
    /// straight, see `Work::Layer`).
    fn unpack(&mut self, distro: &str, package: &LockedPackage) -> Result<usize, BuildError> {
        if let Some(&i) = self.unpacks.get(&package.identity.key()) {
            return Ok(i);
        }
        let fetch = self.fetch(package)?;
        let key = keys::unpack_key(distro, package);
        let unpack = self.push(step(
            StepKind::Unpack,
            None,
            deb_name(package),
            Some(key),
            vec![fetch],
            Work::Unpack { package: package.clone() },
        ));
        self.unpacks.insert(package.identity.key(), unpack);
        Ok(unpack)
    }

    fn fetch_wheel(&mut self, wheel: &LockedWheel) -> Result<usize, BuildError> {
        if let Some(&i) = self.fetched_wheels.get(&wheel.sha256) {
            return Ok(i);
        }
        let mut fetch = step(
            StepKind::FetchWheel,
            None,
            wheel.filename.clone(),
            None,
            vec![],
            Work::FetchWheel { wheel: wheel.clone() },
        );
        fetch.sha256 = Some(crate::wheel_steps::wheel_sha(wheel)?);
        fetch.bytes = wheel.size;
        let i = self.push(fetch);
        self.fetched_wheels.insert(wheel.sha256.clone(), i);
        Ok(i)
    }
}

impl Session<'_> {
    /// Resolution (the lock and the wheel locks, read or resolved and written when `write`), then
    /// the whole graph with the keys known before anything is looked up. What the store holds,
    /// and so what is needed, is [`Session::settle`]'s to find.
    pub(crate) fn graph(&self, policy: LockPolicy, write: bool) -> Result<Plan, BuildError> {
        // The recipe's own files first: a recipe that fails on them costs no resolution against
        // the mirror and leaves no lock behind.
        self.check_local_files()?;
        let sources = crate::sources::source_digests(self.recipe)?;
        let (lock, mut resolution, resolved) = self.packages(policy)?;
        let (wheel_plans, wheel_steps) = self.wheel_locks(&lock, policy, false)?;
        if let Some(python) = self.python() {
            self.check_package_tables(python, &wheel_plans)?;
        }
        let (lock, libraries_added) = self.settle_system_libraries(lock, &wheel_plans, policy)?;
        // Written once everything they lead to resolved and was checked: a recipe whose wheels
        // fail to resolve, or whose tables name no sdist, leaves the locks as they were.
        if write {
            self.write_wheel_locks(&wheel_plans, &wheel_steps)?;
        }
        resolution.extend(wheel_steps);
        // A lock of an older format is written again in today's, as it reads (nothing resolved).
        let migrated = lock.migrated_from.is_some() && policy != LockPolicy::Locked;
        let lock_written = (resolved || libraries_added || migrated) && write;
        if lock_written {
            lock.write(&crate::lockfile::lock_path(&self.recipe_path))?;
        }

        let mut g = Graph {
            distro: self.backend.name(),
            steps: Vec::new(),
            fetches: HashMap::new(),
            unpacks: HashMap::new(),
            fetched_wheels: HashMap::new(),
            by_key: HashMap::new(),
            sources: BTreeMap::new(),
        };
        for (name, sha256) in &sources {
            let mut source =
                step(StepKind::Source, None, name.clone(), None, vec![], Work::Source { name: name.clone() });
            source.sha256 = Some(*sha256);
            let i = g.push(source);
            g.sources.insert(name.clone(), i);
        }
        let mut images = Vec::new();
        for platform in self.recipe.image.platforms.get_ref() {
            let locked =
                lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers the recipe");
            let wheels = wheel_plans.iter().find(|w| &w.platform == platform);
            images.push(self.platform_graph(&mut g, platform, locked, wheels)?);
        }
        Ok(Plan { steps: g.steps, resolution, lock_written, images })
    }

    fn platform_graph(
        &self,
        g: &mut Graph,
        platform: &Platform,
        locked: &crate::lockfile::LockedPlatform,
        wheels: Option<&WheelPlan>,
    ) -> Result<ImagePlan, BuildError> {
        let packages = &locked.packages;
        let distro = self.backend.name();
        let (epoch, compression) = (self.epoch(), crate::compression(self.recipe));
        let p = Some(platform);
        let mut layers = Vec::new();
        let mut package_layers = Vec::new();

        for group in crate::layers::group(packages, self.recipe.layers.strategy, self.recipe.layers.max_layers) {
            let members: Vec<&LockedPackage> = group.iter().map(|&i| &packages[i]).collect();
            let deps = members.iter().map(|m| g.fetch(m)).collect::<Result<_, _>>()?;
            let key = keys::layer_key(&members, epoch, compression);
            let name = layer_name(&members);
            let work = Work::Layer { packages: members.iter().map(|&m| m.clone()).collect() };
            let i = g.push(step(StepKind::Layer, p, name.clone(), Some(key), deps, work));
            package_layers.push(i);
            layers.push(ImageLayer {
                step: i,
                packages: members.iter().map(|m| format!("{}={}", m.name, m.version)).collect(),
                comment: format!("packages: {name}"),
            });
        }
        let key = keys::system_key(self.recipe, platform, packages, epoch, compression)?;
        let system =
            g.push(step(StepKind::SystemLayer, p, "system".into(), Some(key), package_layers, Work::SystemLayer));
        layers.push(ImageLayer { step: system, packages: vec![], comment: self.backend.system_layer_comment().into() });

        // Builds, on the platform's own build root, or on the build platform's root with cross
        // compilers for this one.
        let jobs = crate::compile::jobs(self, platform);
        let sdists: Vec<&LockedWheel> =
            wheels.map(|w| w.lock.wheels.iter().filter(|w| w.sdist).collect()).unwrap_or_default();
        let build_root = |g: &mut Graph, on: &Platform, packages: &[LockedPackage]| -> Result<usize, BuildError> {
            let deps = packages.iter().map(|m| g.unpack(distro, m)).collect::<Result<_, _>>()?;
            let work = Work::BuildRoot { platform: on.clone(), packages: packages.to_vec() };
            let key = keys::root_key(on, packages);
            let name = match on == platform {
                true => format!("{} packages", packages.len()),
                false => format!("{} packages of {on}, with cross compilers", packages.len()),
            };
            Ok(g.push(step(StepKind::BuildRoot, p, name, Some(key), deps, work)))
        };
        let sdists_native = !sdists.is_empty() && !self.sdists_cross(platform);
        let root = match jobs.iter().any(|j| j.cross.is_none()) || sdists_native {
            true => Some(build_root(g, platform, &locked.build_packages)?),
            false => None,
        };
        let cross_root = match jobs.iter().find_map(|j| j.cross.as_ref()) {
            Some(on) => Some(build_root(g, on, &locked.cross_packages)?),
            None => None,
        };
        let mut builds: Vec<(String, usize)> = Vec::new();
        for job in jobs {
            let root = match job.cross {
                Some(_) => cross_root.expect("a cross root when a job cross-compiles"),
                None => root.expect("a root when there are jobs"),
            };
            let env = crate::compile::job_env(self, &job, platform);
            let sources: Vec<(String, usize)> =
                job.sources.iter().map(|(mount, name)| (mount.clone(), g.sources[name])).collect();
            let uses: Vec<(String, usize)> = job.uses.iter().map(|u| (u.clone(), lookup(&builds, u))).collect();
            let mut deps = vec![root];
            deps.extend(sources.iter().map(|(_, s)| *s));
            deps.extend(uses.iter().map(|(_, s)| *s));
            let name = job.name.clone();
            let work = Work::Build { platform: platform.clone(), job, env, root, sources, uses };
            let i = g.push(step(StepKind::Build, p, name.clone(), None, deps, work));
            builds.push((name, i));
        }
        for (name, build) in &builds {
            let Work::Build { job, .. } = &g.steps[*build].work else { unreachable!("a build") };
            let part = job.image;
            if part == ImagePart::None {
                continue;
            }
            let i = g.push(step(
                StepKind::BuildLayer,
                p,
                name.clone(),
                None,
                vec![*build],
                Work::BuildLayer { build: *build, part },
            ));
            layers.push(ImageLayer { step: i, packages: vec![], comment: format!("build: {name}") });
        }

        let bytecode = |g: &mut Graph, part: Part, layers: &[ImageLayer], system: usize, wheels: Option<WheelKeys>| {
            let below: Vec<usize> = layers.iter().map(|l| l.step).collect();
            let mut deps = below.clone();
            deps.extend(builds.iter().map(|(_, s)| *s));
            let work = Work::Bytecode {
                part,
                prefix: self.bytecode_key_prefix(part, platform),
                debs: packages.iter().map(|p| p.identity.key()).collect(),
                below,
                system,
                builds: builds.clone(),
                wheels,
            };
            let i = g.push(step(StepKind::PythonBytecode, p, part.name().into(), None, deps, work));
            ImageLayer { step: i, packages: vec![], comment: format!("python bytecode: {}", part.name()) }
        };
        if self.bytecode_wanted() {
            let layer = bytecode(g, Part::Distro, &layers, system, None);
            layers.push(layer);
        }

        let Some(plan) = wheels else {
            return Ok(ImagePlan {
                platform: platform.clone(),
                release: locked.release.clone(),
                packages: packages.to_vec(),
                layers,
            });
        };
        let python = self.python().expect("a wheel plan comes from [python]");
        // Wheels: fetched (or built from their sdist), installed, grouped into layers.
        let mut installs = Vec::new();
        let mut install_keys: Vec<Option<ActionKey>> = Vec::new();
        for wheel in &plan.lock.wheels {
            let requested = plan.lock.meta.requested.contains(&wheel.name);
            let (source, known) = if wheel.sdist {
                let mut sources = vec![("sdist".to_string(), g.fetch_wheel(wheel)?)];
                for build_wheel in plan.lock.build_wheels_for(&wheel.name) {
                    sources.push((format!("build-wheels/{}", build_wheel.filename), g.fetch_wheel(build_wheel)?));
                }
                let settings = self.package_settings(python, &wheel.name, platform)?;
                let job = self.sdist_job(python, wheel, platform, settings.as_ref());
                let root = match job.cross {
                    Some(_) => cross_root.expect("a cross root when the sdists cross-compile"),
                    None => root.expect("a root when there are sdists"),
                };
                let mut env = crate::compile::job_env(self, &job, platform);
                if let Some(settings) = &settings {
                    crate::sdist_settings::add_env(&mut env, &settings.settings, &self.recipe_path, &wheel.name)?;
                }
                let uses: Vec<(String, usize)> = job.uses.iter().map(|u| (u.clone(), lookup(&builds, u))).collect();
                let mut deps = vec![root];
                deps.extend(sources.iter().map(|(_, s)| *s));
                deps.extend(uses.iter().map(|(_, s)| *s));
                let work = Work::SdistBuild {
                    platform: platform.clone(),
                    sdist: wheel.clone(),
                    job,
                    env,
                    root,
                    sources,
                    uses,
                };
                (g.push(step(StepKind::SdistBuild, p, wheel.filename.clone(), None, deps, work)), None)
            } else {
                (g.fetch_wheel(wheel)?, Some(wheel.clone()))
            };
            let key = known.as_ref().map(|w| keys::install_key(w, &plan.scheme, requested));
            let work = Work::InstallWheel { wheel: known, source, scheme: plan.scheme.clone(), requested };
            install_keys.push(key.clone());
            installs.push(g.push(step(StepKind::InstallWheel, p, wheel.filename.clone(), key, vec![source], work)));
        }
        let mut wheel_keys = WheelKeys { layers: Vec::new(), env: None };
        if let Some(venv) = &plan.venv {
            let home = self.interpreter_prefix().unwrap_or("/usr");
            let full = plan.target.python_full_version();
            let key = keys::env_key(venv, &full, home, epoch, compression);
            let work =
                Work::PythonEnv { root: venv.clone(), version: plan.target.python_version(), full_version: full };
            let i = g.push(step(StepKind::PythonEnv, p, "venv".into(), Some(key), vec![], work));
            wheel_keys.env = Some(i);
            layers.push(ImageLayer {
                step: i,
                packages: vec![],
                comment: format!("python: virtual environment {venv}"),
            });
        }
        for group in crate::python::group(&plan.lock.wheels, python.max_layers) {
            let deps: Vec<usize> = group.iter().map(|&w| installs[w]).collect();
            let known: Option<Vec<&ActionKey>> = group.iter().map(|&w| install_keys[w].as_ref()).collect();
            let key = known.map(|k| keys::wheel_layer_key(k, epoch, compression));
            let name = group_name(&plan.lock.wheels, &group);
            let i = g.push(step(
                StepKind::WheelLayer,
                p,
                name.clone(),
                key,
                deps.clone(),
                Work::WheelLayer { installs: deps },
            ));
            wheel_keys.layers.push(i);
            layers.push(ImageLayer {
                step: i,
                packages: group
                    .iter()
                    .map(|&w| format!("{}=={}", plan.lock.wheels[w].name, plan.lock.wheels[w].version))
                    .collect(),
                comment: format!("wheels: {name}"),
            });
        }
        if self.bytecode_wanted() {
            let layer = bytecode(g, Part::Wheels, &layers, system, Some(wheel_keys));
            layers.push(layer);
        }
        Ok(ImagePlan {
            platform: platform.clone(),
            release: locked.release.clone(),
            packages: packages.to_vec(),
            layers,
        })
    }

    /// `compose plan` and `compose build`: the graph kept to what the images need.
    pub fn plan(&self) -> Result<Plan, BuildError> {
        let mut plan = self.graph(LockPolicy::UseOrCreate, false)?;
        self.keep_platforms(&mut plan);
        let roots = plan.image_roots();
        self.settle(plan, &roots, crate::settle::Substitute::Query)
    }

    /// The bytecode key's fields that no step's output changes.
    fn bytecode_key_prefix(&self, part: Part, platform: &Platform) -> ActionKey {
        keys::bytecode_key_prefix(
            part,
            platform,
            &self.interpreter(),
            &self.bytecode_roots(part),
            crate::bytecode::COMPILE,
            self.epoch(),
            crate::compression(self.recipe),
        )
    }
}

impl Plan {
    /// Every layer of every image: what a build must have.
    pub(crate) fn image_roots(&self) -> Vec<usize> {
        self.images.iter().flat_map(|i| i.layers.iter().map(|l| l.step)).collect()
    }
}

fn lookup(builds: &[(String, usize)], name: &str) -> usize {
    builds.iter().find(|(n, _)| n == name).map(|(_, i)| *i).expect("validated: uses name an earlier build")
}

pub(crate) fn deb_name(p: &LockedPackage) -> String {
    format!("{}_{}_{}", p.name, p.version, p.architecture)
}

fn layer_name(members: &[&LockedPackage]) -> String {
    match members {
        [one] => one.name.clone(),
        many => format!("{} packages ({}, ...)", many.len(), many[0].name),
    }
}
