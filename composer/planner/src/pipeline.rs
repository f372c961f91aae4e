//! The pipeline's entry points: graph, settle, the offline check and execution, for a build and
//! for the wheels a recipe's locks name.

use std::path::Path;

use composer_recipe::Recipe;
use composer_store::BlobInfo;

use crate::plan::{Output, StepKind, Work};
use crate::{BuildError, BuildOutcome, Context, LockPolicy, Session};

impl Session<'_> {
    /// Offline, a build that lacks files fails on the first one it reaches; the plan knows all of
    /// them, so the error can name every package and wheel to bring in at once.
    /// `file://` mirrors and indexes are readable offline, so only what comes from elsewhere counts.
    /// It reads the plan it is given, settled: what is still missing after the store and the
    /// caches answered.
    pub(crate) fn offline_preflight(&self, plan: &crate::plan::Plan) -> Result<(), BuildError> {
        if !self.ctx.offline {
            return Ok(());
        }
        let remote = |url: &str| !url.starts_with("file://");
        let mut mirror_remote = None;
        let mut missing = Vec::new();
        for step in plan.missing() {
            let fetched_remotely = match (&step.kind, &step.work) {
                (StepKind::Fetch, _) => match mirror_remote {
                    Some(remote) => remote,
                    None => {
                        let mirror = self.backend.mirror_url(&self.recipe.base.mirror)?;
                        *mirror_remote.insert(remote(&mirror))
                    }
                },
                (StepKind::FetchWheel, Work::FetchWheel { wheel }) => remote(&wheel.url),
                _ => false,
            };
            if fetched_remotely {
                missing.push(step.name.clone());
            }
        }
        match missing.is_empty() {
            true => Ok(()),
            false => Err(BuildError::OfflineMissing(missing)),
        }
    }

    /// Builds the image into the store, executing exactly the plan; see `composer_oci::export`
    /// to write it out.
    pub fn build(&self, policy: LockPolicy) -> Result<BuildOutcome, BuildError> {
        let mut plan = self.graph(policy, true)?;
        let inputs = crate::share::inputs_of(&plan);
        self.keep_platforms(&mut plan);
        let roots = plan.image_roots();
        let plan = self.settle(plan, &roots, crate::settle::Substitute::Fetch)?;
        self.offline_preflight(&plan)?;
        let outcome = self.build_plan(plan)?;
        // Best effort: a read-only store builds what it holds, and keeps no roots.
        let _ = self.record_root(inputs, None);
        Ok(outcome)
    }
}

/// The wheels a recipe's locks name, every platform, in the store (fetched, or built from their
/// sdists, as a build would): (wheel, its blob), deduplicated by sha256.
pub fn recipe_wheels(
    ctx: &Context<'_>,
    recipe: &Recipe,
    recipe_path: &Path,
) -> Result<Vec<(composer_wheels::LockedWheel, BlobInfo)>, BuildError> {
    let session = Session::new(ctx, recipe, recipe_path);
    let plan = session.graph(LockPolicy::UseOrCreate, true)?;
    let roots: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        // Every wheel, fetched or built; an sdist only as what a missing build reads.
        .filter(|(_, s)| match &s.work {
            Work::FetchWheel { wheel } => !wheel.sdist,
            _ => s.kind == StepKind::SdistBuild,
        })
        .map(|(i, _)| i)
        .collect();
    let plan = session.settle(plan, &roots, crate::settle::Substitute::Fetch)?;
    session.offline_preflight(&plan)?;
    let done = session.execute_plan(&plan)?;
    let mut wheels = std::collections::BTreeMap::new();
    for (step, output) in plan.steps.iter().zip(&done.results) {
        let wheel = match (&step.work, output) {
            (Work::FetchWheel { wheel }, _) if !wheel.sdist => wheel.clone(),
            (_, Output::Wheel(built)) => built.clone(),
            _ => continue,
        };
        // Records the wheel for `compose wheels index` if this store got it another way.
        let (blob, _) = session.fetch_one(&wheel)?;
        wheels.insert(wheel.sha256.clone(), (wheel, blob));
    }
    Ok(wheels.into_values().collect())
}
