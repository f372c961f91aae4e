//! `[python] system_libraries = "add"`: the distribution packages that ship the libraries the
//! locked wheels need (`libstdc++6` for numpy's `libstdc++.so.6`) join the image's requests and
//! are recorded in the lock, per platform (`system_libraries`), so that a build resolves them
//! with everything else and a lock says why each is there.
//!
//! What the wheels need is read from the wheels themselves (each ELF file's `DT_NEEDED`, less
//! the files the wheel set carries, such as `numpy.libs/`); which package ships a library, from
//! the distribution (Debian's `Contents` index). A library counts as present when one of the
//! packages that ship it is locked. The lock's list is a claim like the rest of the lock: a
//! package it adds that ships none of the libraries the wheels need is refused (`--locked`) or
//! dropped. Wheels built from sdists are known only once built: the image's own check
//! (`loadable`) still reads every wheel layer, and names the package for those.

use std::collections::{BTreeMap, BTreeSet};

use composer_store::{ActionRecord, ObjectRef, RefKind};
use composer_wheels::LockedWheel;
use composer_wheels::libraries::WheelLibraries;

use crate::lockfile::{LockedPlatform, LockedRelease, Lockfile};
use crate::python::WheelPlan;
use crate::{BuildError, LockPolicy, Session};
use crate::{Outdated, Unsettled};
use composer_distro::VerifiedRelease;

/// A platform's packages for the wheels' libraries, as they should be.
#[derive(Debug, Default)]
struct Verdict {
    /// The list the lock should hold.
    wanted: Vec<String>,
    /// (package, library, wheel) for each package to add.
    added: Vec<(String, String, String)>,
    /// Packages the lock adds that ship no library a wheel needs.
    stale: Vec<String>,
}

impl Verdict {
    fn settled(&self) -> bool {
        self.added.is_empty() && self.stale.is_empty()
    }

    /// What is not settled: called only for a verdict that is not.
    fn reason(&self, platform: &str) -> Unsettled {
        let platform = platform.to_string();
        match (self.added.first(), self.stale.first()) {
            (Some((package, library, wheel)), _) => {
                Unsettled::Needed { platform, wheel: wheel.clone(), library: library.clone(), package: package.clone() }
            }
            (_, Some(package)) => Unsettled::Stale { platform, package: package.clone() },
            (None, None) => unreachable!("an unsettled verdict adds or drops a package"),
        }
    }
}

impl Session<'_> {
    /// The lock with each platform's packages for the wheels' libraries settled (resolved again
    /// when they change, against the lock's own Release, so that nothing else moves), and
    /// whether it changed. Under [`LockPolicy::Locked`] a lock that is not settled already is an
    /// error.
    pub(crate) fn settle_system_libraries(
        &self,
        mut lock: Lockfile,
        wheel_plans: &[WheelPlan],
        policy: LockPolicy,
    ) -> Result<(Lockfile, bool), BuildError> {
        if !self.adds_system_libraries() {
            return Ok((lock, false));
        }
        // Every platform is judged against, and resolved again from, the one Release a lock is
        // made from (`compose lock` makes no other kind).
        if lock.platforms.windows(2).any(|w| w[0].release.digest != w[1].release.digest) {
            return Err(BuildError::LockOutdated {
                path: crate::lockfile::lock_path(&self.recipe_path),
                reason: Outdated::DifferentReleases,
            });
        }
        let mut release = None;
        let mut changed = false;
        // A package added brings its dependencies, which may ship another library needed: a
        // round or two settles any real set; more means the index disagrees with itself.
        const ROUNDS: usize = 4;
        for round in 1..=ROUNDS {
            let mut verdicts = Vec::new();
            for plan in wheel_plans {
                let platform = plan.platform.to_string();
                let locked =
                    lock.platforms.iter().find(|p| p.platform == platform).expect("the lock covers the recipe");
                verdicts.push((platform, self.verdict(locked, plan, &mut release)?));
            }
            let Some((platform, unsettled)) = verdicts.iter().find(|(_, v)| !v.settled()) else {
                return Ok((lock, changed));
            };
            let (platform, reason) = (platform.clone(), unsettled.reason(platform));
            if policy == LockPolicy::Locked {
                let path = crate::lockfile::lock_path(&self.recipe_path);
                return Err(BuildError::LockOutdated { path, reason: Outdated::SystemLibraries(Box::new(reason)) });
            }
            if round == ROUNDS {
                let reason = Box::new(Unsettled::StillAfter { unsettled: Box::new(reason), rounds: ROUNDS });
                return Err(BuildError::SystemLibraries { platform, reason, source: None });
            }
            let mut wanted = lock.clone();
            for (platform, verdict) in verdicts {
                for (package, library, wheel) in &verdict.added {
                    let (package, library, wheel) =
                        (package.escape_debug(), library.escape_debug(), wheel.escape_debug());
                    self.ctx.reporter.status("Adding", &format!("{package} to {platform}: {wheel} needs {library}"));
                }
                for package in &verdict.stale {
                    self.ctx.reporter.status("Dropping", &format!("{package} from {platform}: no wheel needs it"));
                }
                let locked = wanted.platforms.iter_mut().find(|p| p.platform == platform).expect("same platforms");
                locked.system_libraries = verdict.wanted;
            }
            let at = self.lock_release(&lock.platforms[0].release, &mut release)?.clone();
            let (resolved, _) = self.resolve_at(Some(&wanted), Some(&lock), Some(&at)).map_err(|e| {
                BuildError::SystemLibraries { platform, reason: Box::new(reason), source: Some(Box::new(e)) }
            })?;
            self.check_lock(&resolved)?;
            lock = resolved;
            changed = true;
        }
        unreachable!("the last round returns")
    }

    /// The lock's own signed Release, verified once: what the packages are judged and resolved
    /// against, whatever the mirror serves now.
    fn lock_release<'r>(
        &self,
        locked: &LockedRelease,
        release: &'r mut Option<VerifiedRelease>,
    ) -> Result<&'r VerifiedRelease, BuildError> {
        if release.is_none() {
            let digest = self.locked_digest(locked)?;
            *release = Some(self.release_of_lock(locked, &digest)?);
        }
        Ok(release.as_ref().expect("just set"))
    }

    fn verdict(
        &self,
        locked: &LockedPlatform,
        plan: &WheelPlan,
        release: &mut Option<VerifiedRelease>,
    ) -> Result<Verdict, BuildError> {
        // Each library needed, with the first wheel (by name) that needs it.
        let mut needed: BTreeMap<String, String> = BTreeMap::new();
        let mut carried = BTreeSet::new();
        for wheel in plan.lock.wheels.iter().filter(|w| !w.sdist) {
            let found = self.wheel_libraries(wheel)?;
            for library in found.needed {
                needed.entry(library).or_insert_with(|| wheel.name.clone());
            }
            carried.extend(found.carried);
        }
        needed.retain(|library, _| !carried.contains(library));
        if needed.is_empty() {
            // Nothing to look up: any package the lock adds is one nobody needs.
            let stale = locked.system_libraries.clone();
            return Ok(Verdict { wanted: Vec::new(), added: Vec::new(), stale });
        }
        // A package the lock adds counts as there even where the resolver satisfied the request
        // through another package's `Provides` (an index mid-rename): the image's own check
        // still reads what is really there.
        let present: BTreeSet<&str> = locked
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .chain(locked.system_libraries.iter().map(String::as_str))
            .collect();
        // Judged against one Release's `Contents`, for one set of packages: the key says which.
        let key = crate::keys::system_libraries_key(
            &locked.release.digest,
            &self.recipe.base.components,
            &self.arch_of(&locked.platform)?,
            &needed.keys().cloned().collect::<Vec<_>>(),
            &locked.system_libraries,
            &present.iter().copied().collect::<Vec<_>>(),
        );
        let store = self.ctx.store;
        if store.action_get(&key)?.is_some() {
            return Ok(Verdict { wanted: locked.system_libraries.clone(), ..Verdict::default() });
        }
        let libraries: BTreeSet<&str> = needed.keys().map(String::as_str).collect();
        let release = self.lock_release(&locked.release, release)?;
        let providers = self.backend.library_packages(release, &plan.platform, &libraries)?;
        let mut verdict = Verdict::default();
        let mut useful = BTreeSet::new();
        for (library, wheel) in &needed {
            // A library no package ships (the built interpreter's `libpython`) is not the
            // distribution's to add: the image's own check judges it.
            let Some(packages) = providers.get(library).filter(|p| !p.is_empty()) else { continue };
            useful.extend(packages.iter().cloned());
            if packages.iter().any(|p| present.contains(p.as_str())) {
                continue;
            }
            let package = preferred(packages);
            if !verdict.added.iter().any(|(p, _, _)| *p == package) {
                verdict.added.push((package, library.clone(), wheel.clone()));
            }
        }
        verdict.stale = locked.system_libraries.iter().filter(|p| !useful.contains(*p)).cloned().collect();
        let mut wanted: BTreeSet<String> =
            locked.system_libraries.iter().filter(|p| useful.contains(*p)).cloned().collect();
        wanted.extend(verdict.added.iter().map(|(p, _, _)| p.clone()));
        verdict.wanted = wanted.into_iter().collect();
        if verdict.settled() {
            store.action_put(&key, &crate::records::empty_record("system-libraries"))?;
        }
        Ok(verdict)
    }

    /// What one wheel needs and carries, read once (recorded by the wheel's sha256).
    fn wheel_libraries(&self, wheel: &LockedWheel) -> Result<WheelLibraries, BuildError> {
        let store = self.ctx.store;
        let key = crate::keys::wheel_libraries_key(&wheel.sha256);
        if let Some(record) = store.action_get(&key)?
            && let Ok(found) = serde_json::from_value(record.data)
        {
            return Ok(found);
        }
        let (blob, _) = self.fetch_one(wheel)?;
        let file = std::io::BufReader::new(store.open_verified_file(&blob.id)?);
        let found = composer_wheels::libraries::libraries(file, &wheel.filename)?;
        let record = ActionRecord {
            inputs: vec![ObjectRef { id: blob.id, kind: RefKind::Blob }],
            step: "wheel-libraries".into(),
            outputs: vec![],
            data: serde_json::to_value(&found).expect("serializes"),
        };
        store.action_put(&key, &record)?;
        Ok(found)
    }
}

/// Of the packages that ship a library, the one to add: the shortest name (`libstdc++6` over a
/// debug or compatibility package), then the first by name, so the choice never depends on the
/// index's order.
fn preferred(packages: &[String]) -> String {
    packages.iter().min_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b))).cloned().expect("not empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_added_is_the_plainest_of_those_that_ship_the_library() {
        let packages = ["libstdc++6-14-dbg", "libstdc++6", "lib64stdc++6"].map(String::from);
        assert_eq!(preferred(&packages), "libstdc++6");
        assert_eq!(preferred(&["zlib1g".into(), "zlib1f".into()]), "zlib1f");
    }

    #[test]
    fn a_verdict_says_what_is_missing_before_what_is_stale() {
        let verdict = Verdict {
            wanted: vec![],
            added: vec![("libstdc++6".into(), "libstdc++.so.6".into(), "numpy".into())],
            stale: vec!["libfoo1".into()],
        };
        assert_eq!(
            verdict.reason("linux/amd64").to_string(),
            "on linux/amd64, numpy needs libstdc++.so.6, which no locked package ships (`libstdc++6` does)"
        );
        let stale = Verdict { stale: vec!["libfoo1".into()], ..Verdict::default() };
        assert!(
            stale.reason("linux/arm64").to_string().contains("adds `libfoo1`, which ships no library the wheels need")
        );
    }
}
