//! Resolution: the lock beside the recipe, read and checked, or the recipe's packages resolved
//! against the signed release (per platform, in parallel), and `compose lock` / `outdated`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use composer_recipe::Recipe;
use composer_store::ActionRecord;
use rayon::prelude::*;

use crate::lockfile::{self, LockedPackage, Lockfile};
use crate::{BuildError, Context, LockPolicy, Session, StepReport};
use composer_distro::Wanted;

impl Session<'_> {
    pub(crate) fn keep_platforms(&self, plan: &mut crate::plan::Plan) {
        if let Some(only) = &self.only {
            plan.images.retain(|image| only.contains(&image.platform));
        }
    }

    fn lock_header(&self) -> Lockfile {
        let base = &self.recipe.base;
        Lockfile {
            version: lockfile::LOCK_VERSION,
            distro: self.backend.name().into(),
            suite: base.suite.clone(),
            components: base.components.clone(),
            requests: self.backend.image_requests(self.recipe),
            essential: base.essential,
            build_requests: self.backend.build_requests(self.recipe),
            runtime_of: self.backend.runtime_of(self.recipe),
            cross_build: self.recipe.cross.as_ref().map(|c| c.build.get_ref().to_string()),
            add_system_libraries: self.adds_system_libraries(),
            migrated_from: None,
            platforms: self
                .recipe
                .image
                .platforms
                .get_ref()
                .iter()
                .map(|p| lockfile::LockedPlatform {
                    platform: p.to_string(),
                    release: lockfile::LockedRelease {
                        digest: String::new(),
                        date: String::new(),
                        fields: Default::default(),
                    },
                    system_libraries: Vec::new(),
                    packages: Vec::new(),
                    build_packages: Vec::new(),
                    cross_packages: Vec::new(),
                })
                .collect(),
        }
    }

    /// Resolves every platform against the mirror's current Release.
    pub fn resolve(&self) -> Result<(Lockfile, Vec<StepReport>), BuildError> {
        self.resolve_following(None, None)
    }

    /// Resolves every platform, keeping the versions `previous` locked wherever they still
    /// satisfy the recipe, as cargo and uv do when a manifest changes. `floor` is the lock being
    /// replaced: its Release is the oldest one the resolution may take (see `lock_trust`).
    pub(crate) fn resolve_following(
        &self,
        previous: Option<&Lockfile>,
        floor: Option<&Lockfile>,
    ) -> Result<(Lockfile, Vec<StepReport>), BuildError> {
        self.resolve_at(previous, floor, None)
    }

    /// [`Session::resolve_following`] against `release` where given (the lock's own, when
    /// only requests change), else the mirror's current one.
    pub(crate) fn resolve_at(
        &self,
        previous: Option<&Lockfile>,
        floor: Option<&Lockfile>,
        release: Option<&composer_distro::VerifiedRelease>,
    ) -> Result<(Lockfile, Vec<StepReport>), BuildError> {
        let preferred = |platform: &str, root: Root| -> BTreeMap<String, String> {
            let locked = previous.and_then(|lock| lock.platforms.iter().find(|p| p.platform == platform));
            locked
                .map(|p| match root {
                    Root::Image => &p.packages,
                    Root::Build => &p.build_packages,
                    Root::Cross => &p.cross_packages,
                })
                .into_iter()
                .flatten()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect()
        };
        let platforms: Vec<String> = self.recipe.image.platforms.get_ref().iter().map(|p| p.to_string()).collect();
        self.ctx.reporter.status("Resolving", &format!("{} for {}", self.recipe.base.suite, platforms.join(", ")));
        // Offline, the Release the lock was made from, as the store keeps it (verified again).
        let stored = match (self.ctx.offline, previous.and_then(|p| p.platforms.first())) {
            (true, Some(locked)) => self.backend.stored_release(&locked.release)?,
            _ => None,
        };
        let release = match (release, stored) {
            (Some(release), _) => release.clone(),
            (None, Some(release)) => release,
            (None, None) => self.backend.release()?,
        };
        if let Some(floor) = floor {
            self.check_not_older(&release, floor)?;
        }
        let mut lock = self.lock_header();
        // The packages `previous` adds for the wheels' libraries stay requested: whether they
        // still ship one a wheel needs is `settle_system_libraries`'s to say.
        if lock.add_system_libraries
            && let Some(previous) = previous
        {
            for locked in &mut lock.platforms {
                if let Some(before) = previous.platforms.iter().find(|p| p.platform == locked.platform) {
                    locked.system_libraries = before.system_libraries.clone();
                }
            }
        }
        // Platforms resolve in parallel; the package index borrows its text, so two at once stay
        // well inside the memory budget.
        let build_requests = self.backend.build_requests(self.recipe);
        let runtime_of = self.backend.runtime_of(self.recipe);
        let results: Vec<Result<(Vec<LockedPackage>, bool), BuildError>> = lock
            .platforms
            .par_iter()
            .map(|locked| {
                self.resolve_platform(
                    &release,
                    &self.arch_of(&locked.platform)?,
                    &self.image_requests(locked),
                    &runtime_of,
                    self.recipe.base.essential,
                    &preferred(&locked.platform, Root::Image),
                )
            })
            .collect();
        let build_results: Vec<Result<(Vec<LockedPackage>, bool), BuildError>> = lock
            .platforms
            .par_iter()
            .map(|locked| match build_requests.is_empty() {
                true => Ok((Vec::new(), true)),
                // Build-Depends assume the Essential set (sh, coreutils, tar, sed...) is there.
                false => self.resolve_platform(
                    &release,
                    &self.arch_of(&locked.platform)?,
                    &build_requests,
                    &[],
                    true,
                    &preferred(&locked.platform, Root::Build),
                ),
            })
            .collect();
        // A foreign platform's cross build root: packages of the build platform's architecture.
        let cross_results: Vec<Result<(Vec<LockedPackage>, bool), BuildError>> = self
            .recipe
            .image
            .platforms
            .get_ref()
            .par_iter()
            .map(|platform| match self.recipe.cross_build_for(platform) {
                Some(build) if !build_requests.is_empty() => self.resolve_platform(
                    &release,
                    &self.backend.architecture(build),
                    &self.backend.cross_requests(self.recipe, platform),
                    &[],
                    true,
                    &preferred(&platform.to_string(), Root::Cross),
                ),
                _ => Ok((Vec::new(), true)),
            })
            .collect();
        // The first platform's error, whichever failed first in time.
        let results: Vec<(Vec<LockedPackage>, bool)> = results.into_iter().collect::<Result<_, _>>()?;
        let build_results: Vec<(Vec<LockedPackage>, bool)> = build_results.into_iter().collect::<Result<_, _>>()?;
        let cross_results: Vec<(Vec<LockedPackage>, bool)> = cross_results.into_iter().collect::<Result<_, _>>()?;
        let mut steps = Vec::new();
        for (((locked, (packages, cached)), (build_packages, _)), (cross_packages, _)) in
            lock.platforms.iter_mut().zip(results).zip(build_results).zip(cross_results)
        {
            locked.build_packages = build_packages;
            locked.cross_packages = cross_packages;
            steps.push(StepReport {
                step: "resolve",
                platform: Some(locked.platform.clone()),
                name: self.recipe.base.suite.clone(),
                cached,
                bytes: 0,
                substituted: None,
                cross: None,
            });
            locked.packages = packages;
            locked.release = release.locked.clone();
        }
        Ok((lock, steps))
    }
}

/// The three package sets a platform's lock holds.
#[derive(Clone, Copy)]
enum Root {
    Image,
    Build,
    Cross,
}

impl Session<'_> {
    /// Whether the packages that ship the wheels' libraries join the image.
    pub(crate) fn adds_system_libraries(&self) -> bool {
        self.recipe.python.as_ref().is_some_and(composer_recipe::Python::adds_system_libraries)
    }

    /// What a platform's image is resolved for: the recipe's requests, and the packages the
    /// lock adds for the wheels' libraries (only where the recipe asks for that).
    pub(crate) fn image_requests(&self, locked: &lockfile::LockedPlatform) -> Vec<String> {
        let mut requests = self.backend.image_requests(self.recipe);
        if self.adds_system_libraries() {
            for package in &locked.system_libraries {
                if !requests.contains(package) {
                    requests.push(package.clone());
                }
            }
        }
        requests
    }

    fn resolve_platform(
        &self,
        release: &composer_distro::VerifiedRelease,
        arch: &str,
        requests: &[String],
        runtime_of: &[String],
        essential: bool,
        preferred: &BTreeMap<String, String>,
    ) -> Result<(Vec<LockedPackage>, bool), BuildError> {
        let base = &self.recipe.base;
        let key = crate::keys::resolve_key(
            &release.digest,
            arch,
            &base.components,
            requests,
            essential,
            runtime_of,
            preferred,
        );
        if let Some(record) = self.ctx.store.action_get(&key)?
            && let Ok(packages) = serde_json::from_value(record.data)
        {
            return Ok((packages, true));
        }
        let packages = self.backend.resolve(release, arch, requests, runtime_of, essential, preferred)?;
        // Solved from the signed index just now: nothing to check it against again. A record
        // read back above is checked as a lock is (`check_lock`).
        self.record_verified(&release.digest, arch, &packages, &Wanted { requests, runtime_of, essential });
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
    /// (and `true`: the caller writes it once the rest resolved too); whichever it is, checked
    /// against the signed index before it is returned (`check_lock`).
    pub fn packages(&self, policy: LockPolicy) -> Result<(Lockfile, Vec<StepReport>, bool), BuildError> {
        let (mut lock, steps, resolved) = self.packages_unchecked(policy)?;
        self.check_lock(&lock)?;
        // An older lock is written again in today's form: with its Releases as they are signed,
        // not as the old file claimed them (the digest alone was checked).
        if lock.migrated_from.is_some() {
            for platform in &mut lock.platforms {
                if let Some(signed) = self.backend.locked_release(&platform.release)? {
                    platform.release = signed.locked;
                }
            }
        }
        Ok((lock, steps, resolved))
    }

    /// The lock beside the recipe, or a resolution (and `true`) where it does not cover the
    /// recipe; not yet checked, not yet written.
    fn packages_unchecked(&self, policy: LockPolicy) -> Result<(Lockfile, Vec<StepReport>, bool), BuildError> {
        let path = lockfile::lock_path(&self.recipe_path);
        match Lockfile::read(&path)? {
            Some(lock) => {
                if let Some(reason) = lock.mismatch(&self.lock_header()) {
                    if policy == LockPolicy::Locked {
                        return Err(BuildError::LockOutdated { path, reason: crate::Outdated::Recipe(reason) });
                    }
                    // The lock follows the recipe: resolved again, keeping what still fits.
                    self.ctx.reporter.status("Updating", &format!("{} ({reason})", path.display()));
                    let (new, steps) = self.resolve_following(Some(&lock), Some(&lock))?;
                    for change in crate::lockfile::changes(&lock, &new) {
                        self.ctx.reporter.status("Locking", &change);
                    }
                    return Ok((new, steps, true));
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
                        substituted: None,
                        cross: None,
                    })
                    .collect();
                Ok((lock, steps, false))
            }
            None if policy == LockPolicy::Locked => Err(BuildError::LockMissing { path }),
            None => {
                let (lock, steps) = self.resolve()?;
                Ok((lock, steps, true))
            }
        }
    }
}

/// Writes `recipe.lock` from a fresh resolution.
/// What `compose lock` may move, as uv's `--upgrade` and `--upgrade-package` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Keep every locked version that still satisfies the recipe.
    Nothing,
    /// Take the newest of everything (the wheel locks are resolved again too).
    All,
    /// Take the newest of these packages, keep the rest.
    Packages(Vec<String>),
}

/// What the mirror's current Release offers over the lock: the changes `--upgrade` would make,
/// written nowhere. Empty when the lock is current (or there is none to compare).
pub fn outdated(ctx: &Context<'_>, recipe: &Recipe, recipe_path: &Path) -> Result<Vec<String>, BuildError> {
    let session = Session::new(ctx, recipe, recipe_path);
    let Some(old) = Lockfile::read(&lockfile::lock_path(recipe_path))? else { return Ok(Vec::new()) };
    // Nothing preferred, but the packages the lock adds for the wheels' libraries still asked
    // for: they are the recipe's wheels' needs, not versions to move.
    let mut requests_only = old.clone();
    for platform in &mut requests_only.platforms {
        platform.packages.clear();
        platform.build_packages.clear();
        platform.cross_packages.clear();
    }
    // Against the mirror's current Release, offline too (where it fails saying so): `previous`
    // would otherwise make an offline resolution take the lock's own.
    let current = session.backend.release()?;
    let (newest, _) = session.resolve_at(Some(&requests_only), None, Some(&current))?;
    Ok(lockfile::changes(&old, &newest))
}

/// Writes `recipe.lock` (and the wheel locks): resolved against the mirror's current Release,
/// keeping what `upgrade` does not move. Returns the lock, its path and what changed.
/// What `compose lock` did.
#[derive(Debug)]
pub struct Locked {
    pub lock: Lockfile,
    pub path: PathBuf,
    /// `add NAME VERSION [platform]`, ... (see [`lockfile::changes`]).
    pub changes: Vec<String>,
    /// Whether the lock and every wheel lock were current already: nothing was written.
    pub unchanged: bool,
}

/// Resolves the recipe and writes its lock and wheel locks. The lock is written last, after
/// everything else resolved, so that a recipe that fails to resolve leaves no new lock behind;
/// an unchanged lock is not written again.
pub fn lock(ctx: &Context<'_>, recipe: &Recipe, recipe_path: &Path, upgrade: &Upgrade) -> Result<Locked, BuildError> {
    let session = Session::new(ctx, recipe, recipe_path);
    session.check_local_files()?;
    let path = lockfile::lock_path(recipe_path);
    // An unreadable old lock is resolved over, as if there were none.
    let old = Lockfile::read(&path).ok().flatten();
    let mut previous = old.clone().filter(|_| *upgrade != Upgrade::All);
    if let (Some(previous), Upgrade::Packages(names)) = (&mut previous, upgrade) {
        for platform in &mut previous.platforms {
            platform.packages.retain(|p| !names.contains(&p.name));
            platform.build_packages.retain(|p| !names.contains(&p.name));
        }
    }
    let (lock, _) = session.resolve_following(previous.as_ref(), old.as_ref())?;
    session.check_lock(&lock)?;
    let (wheel_plans, wheel_steps) = session.wheel_locks(&lock, LockPolicy::UseOrCreate, *upgrade == Upgrade::All)?;
    // A table for no sdist fails `compose lock` as it fails a build, before anything is written.
    if let Some(python) = session.python() {
        session.check_package_tables(python, &wheel_plans)?;
    }
    let (lock, _) = session.settle_system_libraries(lock, &wheel_plans, LockPolicy::UseOrCreate)?;
    session.write_wheel_locks(&wheel_plans, &wheel_steps)?;
    // An older lock is rewritten in today's form even when it says the same.
    let same_lock = old.as_ref().is_some_and(|old| old.migrated_from.is_none() && old.to_toml() == lock.to_toml());
    if !same_lock {
        lock.write(&path)?;
    }
    let changes = old.map(|old| lockfile::changes(&old, &lock)).unwrap_or_default();
    let unchanged = same_lock && wheel_steps.iter().all(|step| step.cached);
    Ok(Locked { lock, path, changes, unchanged })
}
