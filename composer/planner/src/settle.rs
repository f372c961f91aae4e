//! From the whole graph to the plan: starting at the steps asked for (an image's layers), each
//! step's key is computed and the store asked for its result; a step found there is a leaf, and
//! only a missing step's dependencies are visited in turn. So a fully cached build looks up its
//! layers and nothing below them, and a key that holds a dependency's output (a build that uses
//! another build's tree) looks that dependency up, without needing what lies below it.

use std::sync::OnceLock;

use composer_store::ActionKey;

use crate::keys::{self, KeyInputs};
use crate::plan::{Output, Plan, Work};
use crate::{BuildError, Session};

/// The steps whose results (or keys) a step's key is made from.
fn key_deps(work: &Work) -> Vec<usize> {
    match work {
        Work::Build { root, uses, .. } | Work::SdistBuild { root, uses, .. } => {
            std::iter::once(*root).chain(uses.iter().map(|(_, s)| *s)).collect()
        }
        Work::BuildLayer { build, .. } => vec![*build],
        Work::InstallWheel { wheel: None, source, .. } => vec![*source],
        Work::WheelLayer { installs } => installs.clone(),
        Work::Bytecode { system, builds, wheels, .. } => {
            let mut out = vec![*system];
            out.extend(builds.iter().map(|(_, s)| *s));
            if let Some(wheels) = wheels {
                out.extend(&wheels.layers);
                out.extend(wheels.env);
            }
            out
        }
        _ => Vec::new(),
    }
}

struct Settling<'p> {
    plan: &'p Plan,
    inputs: KeyInputs,
    outputs: Vec<OnceLock<Output>>,
    keys: Vec<OnceLock<ActionKey>>,
    resolved: Vec<bool>,
    needed: Vec<bool>,
}

impl Session<'_> {
    /// The plan kept to what `roots` need, each kept step with its key (where known) and whether
    /// the store holds its result.
    pub(crate) fn settle(&self, mut plan: Plan, roots: &[usize]) -> Result<Plan, BuildError> {
        let n = plan.steps.len();
        let mut s = Settling {
            plan: &plan,
            inputs: KeyInputs { epoch: self.epoch(), compression: crate::compression(self.recipe) },
            outputs: (0..n).map(|_| OnceLock::new()).collect(),
            keys: (0..n).map(|_| OnceLock::new()).collect(),
            resolved: vec![false; n],
            needed: vec![false; n],
        };
        let mut todo: Vec<usize> = roots.to_vec();
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut s.needed[i], true) {
                continue;
            }
            self.look_up(&mut s, i)?;
            if s.outputs[i].get().is_none() {
                todo.extend(plan.steps[i].deps.iter().copied());
            }
        }
        let Settling { outputs, keys, needed, .. } = s;
        for ((step, output), key) in plan.steps.iter_mut().zip(outputs).zip(keys) {
            step.output = output.into_inner();
            step.cached = step.output.is_some();
            if let Some(key) = key.into_inner() {
                step.key = Some(key);
            }
        }
        Ok(plan.retain(&needed))
    }

    /// Step `i`'s key and, if the store holds its result, the result; the steps its key is made
    /// of first.
    fn look_up(&self, s: &mut Settling<'_>, i: usize) -> Result<(), BuildError> {
        // Dependencies have lower indexes: an explicit stack in index order avoids recursion.
        let mut order = vec![i];
        let mut at = 0;
        while at < order.len() {
            for d in key_deps(&s.plan.steps[order[at]].work) {
                if !s.resolved[d] && !order.contains(&d) {
                    order.push(d);
                }
            }
            at += 1;
        }
        order.sort_unstable();
        for j in order {
            if std::mem::replace(&mut s.resolved[j], true) {
                continue;
            }
            let step = &s.plan.steps[j];
            let key = match &step.key {
                Some(key) => Some(key.clone()),
                None => keys::dynamic_key(&s.plan.steps, j, &s.outputs, &s.keys, &s.inputs),
            };
            let output = self.available(step, key.as_ref())?;
            if let Some(key) = key {
                let _ = s.keys[j].set(key);
            }
            if let Some(output) = output {
                let _ = s.outputs[j].set(output);
            }
        }
        Ok(())
    }
}
