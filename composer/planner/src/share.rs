//! What a recipe's build has in the store to share: the step results of its whole graph that
//! are worth moving, every input (package, wheel, source) it was made from, and the signed
//! release files it was resolved from, for `compose store push`, `--cache-to` and bundles.
//!
//! Unpacked packages and build roots are left out: each is a pure function of packages the
//! cache holds, several times their size (debian-python: 190 MB of trees from 39 MB of
//! packages), and remade from them faster than it would download. Everything an image or a
//! build is made of is shared: layers, builds, wheel installs, bytecode.

use composer_store::{ActionKey, ActionRecord, Sha256};

use crate::plan::{StepKind, Work};
use crate::settle::Substitute;
use crate::{BuildError, LockPolicy, Session};

#[derive(Default)]
pub struct Shareable {
    pub results: Vec<(ActionKey, ActionRecord)>,
    pub inputs: Vec<Sha256>,
    /// The signed release files and the indexes read from them: what resolving again on a
    /// machine without network needs (bundles carry them; caches need not).
    pub release_files: Vec<Sha256>,
    /// Steps of the graph whose result or input the store does not hold (not built yet).
    pub missing: usize,
}

impl Session<'_> {
    /// Every step of the recipe's graph the store holds that is worth sharing (see above): a
    /// machine that takes these can build this recipe, or one that shares most of its steps,
    /// without running or fetching any of them.
    pub fn shareable(&self) -> Result<Shareable, BuildError> {
        let plan = self.graph(LockPolicy::Locked, false)?;
        let roots: Vec<usize> = (0..plan.steps.len()).collect();
        let plan = self.settle(plan, &roots, Substitute::Query)?;
        let mut out = Shareable::default();
        for step in &plan.steps {
            if step.kind.is_network() {
                match step.sha256 {
                    Some(sha) if self.ctx.store.lookup_sha256(&sha)?.is_some() => out.inputs.push(sha),
                    _ => out.missing += 1,
                }
                continue;
            }
            if matches!(step.kind, StepKind::Unpack | StepKind::BuildRoot) {
                continue;
            }
            match &step.key {
                Some(key) => match self.ctx.store.action_get(key)? {
                    Some(mut record) => {
                        // An sdist build's wheel is found here through a record keyed by its
                        // output tree; the shared record names it, so that a machine that takes
                        // the build knows the wheel before it has the tree.
                        if let (Work::SdistBuild { sdist, platform, .. }, Some(tree)) =
                            (&step.work, record.outputs.first())
                        {
                            let wheel = self.built_wheel(sdist, platform, &tree.id)?;
                            let data = serde_json::to_value(wheel).expect("a wheel serializes");
                            if let Some(fields) = record.data.as_object_mut() {
                                fields.insert(crate::records::BUILT_WHEEL.into(), data);
                            }
                        }
                        out.results.push((key.clone(), record));
                    }
                    None => out.missing += 1,
                },
                None => out.missing += 1,
            }
        }
        let (lock, _, _) = self.packages(LockPolicy::Locked)?;
        for platform in &lock.platforms {
            out.release_files
                .extend(self.backend.release_files(&platform.release, &self.arch_of(&platform.platform)?)?);
        }
        out.release_files.sort();
        out.release_files.dedup();
        out.inputs.sort();
        out.inputs.dedup();
        Ok(out)
    }
}

/// The inputs a graph fetches by content: packages, wheels, sources.
pub(crate) fn inputs_of(plan: &crate::plan::Plan) -> Vec<Sha256> {
    let mut inputs: Vec<Sha256> = plan.steps.iter().filter(|s| s.kind.is_network()).filter_map(|s| s.sha256).collect();
    inputs.sort();
    inputs.dedup();
    inputs
}

impl Session<'_> {
    /// The GC root's name for this recipe's lock: its path, made absolute.
    fn root_name(&self) -> String {
        let lock = crate::lockfile::lock_path(&self.recipe_path);
        let absolute = std::path::absolute(&lock).unwrap_or(lock);
        absolute.display().to_string()
    }

    /// What the root's inputs come from: the bytes of the lock and the wheel locks.
    fn root_source(&self) -> String {
        use composer_store::userfile::{Kind, Policy, read};
        let mut digest = Vec::new();
        let lock = crate::lockfile::lock_path(&self.recipe_path);
        digest.extend(read(&lock, &Policy::anywhere(Kind::LOCK)).unwrap_or_default());
        for platform in self.recipe.image.platforms.get_ref() {
            let pylock = composer_wheels::pylock::pylock_path(&self.recipe_path, &platform.to_string());
            digest.extend(read(&pylock, &Policy::anywhere(Kind::PYLOCK)).unwrap_or_default());
        }
        Sha256::of(&digest).to_hex()
    }

    /// Records that this lock's inputs are in use (`pinned`: `Some` sets or clears the pin, `None`
    /// keeps it). A root already recorded for the same lock files is only marked used.
    pub(crate) fn record_root(&self, inputs: Vec<Sha256>, pinned: Option<bool>) -> Result<(), BuildError> {
        let store = self.ctx.store;
        let name = self.root_name();
        let source = self.root_source();
        let existing = store.root_of(&name);
        if let Some(existing) = &existing
            && existing.source == source
            && pinned.is_none_or(|p| p == existing.pinned)
            && store.touch_root(&name)
        {
            return Ok(());
        }
        let mut inputs = inputs;
        // The release files are kept where the mirror's settings let them be found; the
        // packages, wheels and sources are kept whatever happens to those.
        if let Ok((lock, _, _)) = self.packages(LockPolicy::Locked) {
            for platform in &lock.platforms {
                inputs.extend(
                    self.arch_of(&platform.platform)
                        .and_then(|arch| Ok(self.backend.release_files(&platform.release, &arch)?))
                        .unwrap_or_default(),
                );
            }
        }
        inputs.sort();
        inputs.dedup();
        let pinned = pinned.unwrap_or(existing.is_some_and(|e| e.pinned));
        store.put_root(&composer_store::Root { name, source, inputs, pinned })?;
        Ok(())
    }

    /// Pins (or, with `pin` false, unpins) the inputs of this recipe's lock against `gc`; returns
    /// how many inputs the root names.
    pub fn pin(&self, pin: bool) -> Result<usize, BuildError> {
        let plan = self.graph(LockPolicy::Locked, false)?;
        self.record_root(inputs_of(&plan), Some(pin))?;
        Ok(self.ctx.store.root_of(&self.root_name()).map_or(0, |r| r.inputs.len()))
    }
}
