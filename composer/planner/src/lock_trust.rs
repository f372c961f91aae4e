//! A lock is a claim, never a source of trust. `recipe.lock` is read from a file anyone may
//! have edited, or that a bundle carried in; a `resolve` record is read from the store's disk.
//! Before either becomes a graph, every package it names (image, build root and cross build
//! root, every platform) must be exactly an entry of the signed `Packages` index of the Release
//! it names, online and offline: [`Session::check_lock`] is the one place that asks the backend
//! ([`composer_distro::Backend::verify_locked`]).
//!
//! A check that passed is recorded in the action cache (`verified-lock`, keyed by the release's
//! digest, the architecture, the components and the exact package list), so that a warm build
//! reads no index. A freshly solved list comes from the verified index itself, and is recorded
//! as checked when it is solved.
//!
//! Time only moves forward too: a resolution that follows a lock never takes a Release older
//! than the lock's unless the caller allowed it ([`crate::Context::allow_downgrade`]).

use std::collections::HashMap;
use std::path::PathBuf;

use composer_store::{ActionKey, ActionRecord, Sha256};

use crate::lockfile::{self, LockedPackage, LockedRelease, Lockfile};
use crate::{BuildError, ReleaseUnavailable, Session};
use composer_distro::{VerifiedRelease, Wanted};

impl Session<'_> {
    fn lock_file(&self) -> PathBuf {
        lockfile::lock_path(&self.recipe_path)
    }

    /// The key of the record that says `packages` are entries of the signed index of the
    /// release whose digest is `release`, for `arch` and the recipe's components, and a
    /// resolution of `wanted`.
    fn verified_key(
        &self,
        release: &[u8; 32],
        arch: &str,
        packages: &[LockedPackage],
        wanted: &Wanted<'_>,
    ) -> ActionKey {
        crate::keys::verified_lock_key(
            release,
            arch,
            &self.recipe.base.components,
            packages,
            wanted.requests,
            wanted.runtime_of,
            wanted.essential,
        )
    }

    /// Records that `packages` were checked against (or solved from) the signed index. Best
    /// effort: a read-only store checks again next time.
    pub(crate) fn record_verified(
        &self,
        release: &[u8; 32],
        arch: &str,
        packages: &[LockedPackage],
        wanted: &Wanted<'_>,
    ) {
        let record =
            ActionRecord { inputs: Vec::new(), step: "verified-lock".into(), outputs: vec![], data: true.into() };
        let _ = self.ctx.store.action_put(&self.verified_key(release, arch, packages, wanted), &record);
    }

    /// Checks every package `lock` names for the recipe's platforms against the signed index of
    /// the Release it names; see the module's documentation.
    pub(crate) fn check_lock(&self, lock: &Lockfile) -> Result<(), BuildError> {
        let mut releases: HashMap<[u8; 32], VerifiedRelease> = HashMap::new();
        for platform in self.recipe.image.platforms.get_ref() {
            let Some(locked) = lock.platforms.iter().find(|p| p.platform == platform.to_string()) else { continue };
            // The architecture is the recipe's, never the lock's word for it.
            let arch = self.backend.architecture(platform);
            let cross_arch = self
                .recipe
                .cross_build_for(platform)
                .map(|build| self.backend.architecture(build))
                .unwrap_or(arch.clone());
            // What each set is resolved for, as `resolve_following` resolves it: the build
            // roots assume the Essential set; a set with nothing to resolve must be empty.
            let requests = self.image_requests(locked);
            let runtime_of = self.backend.runtime_of(self.recipe);
            let build_requests = self.backend.build_requests(self.recipe);
            let cross_requests = match self.recipe.cross_build_for(platform) {
                Some(_) if !build_requests.is_empty() => self.backend.cross_requests(self.recipe, platform),
                _ => Vec::new(),
            };
            let image = Wanted { requests: &requests, runtime_of: &runtime_of, essential: self.recipe.base.essential };
            let build = Wanted { requests: &build_requests, runtime_of: &[], essential: !build_requests.is_empty() };
            let cross = Wanted { requests: &cross_requests, runtime_of: &[], essential: !cross_requests.is_empty() };
            for (set, arch, packages, wanted) in [
                ("image", &arch, &locked.packages, image),
                ("build root", &arch, &locked.build_packages, build),
                ("cross build root", &cross_arch, &locked.cross_packages, cross),
            ] {
                if packages.is_empty() && wanted.requests.is_empty() && !wanted.essential {
                    continue;
                }
                let digest = self.locked_digest(&locked.release)?;
                let key = self.verified_key(&digest, arch, packages, &wanted);
                if self.ctx.store.action_get(&key)?.is_some() {
                    continue;
                }
                let release = match releases.get(&digest) {
                    Some(release) => release.clone(),
                    None => {
                        let release = self.release_of_lock(&locked.release, &digest)?;
                        releases.insert(digest, release.clone());
                        release
                    }
                };
                let check = self.backend.verify_locked(&release, arch, packages, &wanted)?;
                if !check.unlisted.is_empty() {
                    return Err(BuildError::Unlisted { lock: self.lock_file(), packages: check.unlisted });
                }
                if let Some(reason) = check.not_a_resolution {
                    return Err(BuildError::LockNotAResolution {
                        lock: self.lock_file(),
                        platform: platform.to_string(),
                        set,
                        reason,
                    });
                }
                self.record_verified(&digest, arch, packages, &wanted);
            }
        }
        Ok(())
    }

    pub(crate) fn locked_digest(&self, release: &LockedRelease) -> Result<[u8; 32], BuildError> {
        let digest: Sha256 = release.digest.parse().map_err(|reason: composer_store::NotASha256| BuildError::Lock {
            path: self.lock_file(),
            source: format!("its release digest is unusable: {reason}").into(),
        })?;
        Ok(digest.0)
    }

    /// The signed Release a lock names: the store's copy, verified again against the keyring;
    /// online, when the store lacks it, the mirror's current one if it is that Release.
    pub(crate) fn release_of_lock(
        &self,
        locked: &LockedRelease,
        digest: &[u8; 32],
    ) -> Result<VerifiedRelease, BuildError> {
        if let Some(release) = self.backend.locked_release(locked)? {
            return Ok(release);
        }
        let unavailable = |reason| BuildError::LockReleaseUnavailable {
            lock: self.lock_file(),
            date: locked.date.clone(),
            digest: locked.digest.clone(),
            reason: Box::new(reason),
        };
        if self.ctx.offline {
            return Err(unavailable(ReleaseUnavailable::Offline));
        }
        let current = self.backend.release()?;
        if &current.digest != digest {
            return Err(unavailable(ReleaseUnavailable::Replaced {
                date: current.locked.date.clone(),
                digest: current.locked.digest.clone(),
            }));
        }
        Ok(current)
    }

    /// Refuses to move from the Release `previous` was resolved from to an older one, unless the
    /// caller allowed it. The older date is the signed one where the store holds the lock's
    /// Release, else the lock's word for it.
    pub(crate) fn check_not_older(&self, release: &VerifiedRelease, previous: &Lockfile) -> Result<(), BuildError> {
        let Some(locked) = previous.platforms.first().map(|p| &p.release) else { return Ok(()) };
        if locked.digest == release.locked.digest {
            return Ok(());
        }
        let (locked_date, was) = match self.backend.locked_release(locked) {
            Ok(Some(signed)) => (signed.locked.date.clone(), self.backend.release_time(&signed.locked)),
            _ => (locked.date.clone(), self.backend.release_time(locked)),
        };
        let Some(now) = self.backend.release_time(&release.locked) else { return Ok(()) };
        // A lock whose date cannot be read (and whose Release the store does not hold) proves
        // nothing about time: moving on from it counts as moving back, unless allowed.
        let was = was.unwrap_or(u64::MAX);
        if now >= was {
            return Ok(());
        }
        if self.ctx.allow_downgrade {
            self.ctx.reporter.warn(&format!(
                "moving to an older Release (dated {}) than the lock's (dated {locked_date}), as --allow-downgrade asks",
                release.locked.date
            ));
            return Ok(());
        }
        Err(BuildError::ReleaseDowngrade {
            lock: self.lock_file(),
            locked: locked_date,
            offered: release.locked.date.clone(),
        })
    }
}
