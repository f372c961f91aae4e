//! What a recipe's build has in the store to share: every step result of its whole graph and
//! every input (package, wheel, source) it was made from, for `compose store push` and
//! `--cache-to`.

use composer_store::{ActionKey, ActionRecord, Sha256};

use crate::plan::Work;
use crate::settle::Substitute;
use crate::{BuildError, LockPolicy, Session};

#[derive(Default)]
pub struct Shareable {
    pub results: Vec<(ActionKey, ActionRecord)>,
    pub inputs: Vec<Sha256>,
    /// Steps of the graph whose result or input the store does not hold (not built yet).
    pub missing: usize,
}

impl Session<'_> {
    /// Every step of the recipe's graph the store holds, whatever the images need of it: a
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
            match &step.key {
                Some(key) => match self.ctx.store.action_get(key)? {
                    Some(mut record) => {
                        // An sdist build's wheel is found here through a record keyed by its
                        // output tree; the shared record names it, so that a machine that takes
                        // the build knows the wheel before it has the tree.
                        if let (Work::SdistBuild { sdist, .. }, Some(tree)) = (&step.work, record.outputs.first()) {
                            let wheel = self.built_wheel(sdist, &tree.id)?;
                            let data = serde_json::to_value(wheel).expect("a wheel serializes");
                            if let Some(fields) = record.data.as_object_mut() {
                                fields.insert(crate::run::BUILT_WHEEL.into(), data);
                            }
                        }
                        out.results.push((key.clone(), record));
                    }
                    None => out.missing += 1,
                },
                None => out.missing += 1,
            }
        }
        let (lock, _, _) = self.packages(LockPolicy::Locked, false)?;
        for platform in &lock.platforms {
            out.inputs.extend(self.backend.release_files(&platform.release, &platform.architecture)?);
        }
        out.inputs.sort();
        out.inputs.dedup();
        Ok(out)
    }
}
