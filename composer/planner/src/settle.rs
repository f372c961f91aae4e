//! From the whole graph to the plan: starting at the steps asked for (an image's layers), each
//! step's key is computed and the store asked for its result; a step found there is a leaf, and
//! only a missing step's dependencies are visited in turn. So a fully cached build looks up its
//! layers and nothing below them, and a key that holds a dependency's output (a build that uses
//! another build's tree) looks that dependency up, without needing what lies below it.
//!
//! With caches to substitute from, the steps still missing at each depth are asked about
//! together (one batch of parallel requests per depth, top down), and a signed claim found for
//! a step stands for its result: the step is a leaf, and a key that needs its output can be
//! computed from the claim. Only then, when the plan is known, are the results that are still
//! needed downloaded; one that fails its checks is dropped and the plan settled again without
//! it, so the build goes on as if that cache had not had it.

use std::collections::HashSet;
use std::sync::OnceLock;

use composer_store::ActionKey;

use crate::keys::{self, KeyInputs};
use crate::plan::{Output, Plan, StepKind, Work};
use crate::{BuildError, Session};

/// What a plan does with the caches given (`Context::substituters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Substitute {
    /// Say which cache would serve each missing step (`compose plan`).
    Query,
    /// Download what they serve before the build (`compose build`).
    Fetch,
}

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

/// Whether a cache may serve the step's result. Fetches are found by content instead (the
/// executor asks caches for them).
fn substitutable(kind: StepKind) -> bool {
    !kind.is_network()
}

struct Settling<'p> {
    plan: &'p Plan,
    inputs: KeyInputs,
    outputs: Vec<OnceLock<Output>>,
    keys: Vec<OnceLock<ActionKey>>,
    resolved: Vec<bool>,
    visited: Vec<bool>,
    /// Steps the caches were asked about already.
    asked: Vec<bool>,
    /// The cache hit a step's output stands for.
    hits: Vec<Option<composer_cache::Hit>>,
}

impl Session<'_> {
    /// The plan kept to what `roots` need, each kept step with its key (where known), whether
    /// the store holds its result, and which cache would serve it.
    pub(crate) fn settle(&self, mut plan: Plan, roots: &[usize], mode: Substitute) -> Result<Plan, BuildError> {
        let mut rejected: HashSet<usize> = HashSet::new();
        let (mut settled, needed) = loop {
            let (settled, needed) = self.settle_once(&plan, roots, &rejected)?;
            if mode == Substitute::Query {
                break (settled, needed);
            }
            let failed = self.fetch_hits(&settled, &needed);
            if failed.is_empty() {
                break (settled, needed);
            }
            rejected.extend(failed);
        };
        if mode == Substitute::Fetch {
            // What was downloaded is read back as the store now holds it (an sdist build's
            // wheel is stored and recorded from its tree).
            for (i, step) in plan.steps.iter().enumerate() {
                if needed[i] && settled.hits[i].is_some() {
                    let key = settled.keys[i].get().cloned();
                    if let Some(output) = self.available(step, key.as_ref())? {
                        settled.outputs[i] = OnceLock::from(output);
                    }
                }
            }
        }
        let held = match mode {
            Substitute::Query => self.inputs_held(&settled, &needed),
            Substitute::Fetch => vec![None; plan.steps.len()],
        };
        let Settling { outputs, keys, hits, .. } = settled;
        for ((((step, output), key), hit), held) in plan.steps.iter_mut().zip(outputs).zip(keys).zip(hits).zip(held) {
            step.output = output.into_inner();
            step.substituted =
                hit.map(|hit| hit.cache).or(held).map(|cache| self.substituters().name(cache).to_string());
            // A result the build downloaded is in the store now; one a plan only found is not.
            step.cached = step.output.is_some() && (step.substituted.is_none() || mode == Substitute::Fetch);
            if let Some(key) = key.into_inner() {
                step.key = Some(key);
            }
        }
        Ok(plan.retain(&needed))
    }

    /// Which cache holds each input the plan still has to fetch (a build asks them first).
    fn inputs_held(&self, s: &Settling<'_>, needed: &[bool]) -> Vec<Option<usize>> {
        let mut held = vec![None; s.plan.steps.len()];
        let Some(caches) = self.ctx.substituters.filter(|c| !c.is_empty()) else { return held };
        let wanted: Vec<usize> = (0..s.plan.steps.len())
            .filter(|&i| needed[i] && s.plan.steps[i].kind.is_network() && s.outputs[i].get().is_none())
            .filter(|&i| s.plan.steps[i].sha256.is_some())
            .collect();
        let shas: Vec<_> = wanted.iter().map(|&i| s.plan.steps[i].sha256.expect("filtered")).collect();
        for (i, holder) in wanted.into_iter().zip(caches.holders(&shas)) {
            held[i] = holder;
        }
        for warning in caches.take_warnings() {
            self.ctx.reporter.warn(&warning);
        }
        held
    }

    fn substituters(&self) -> &composer_cache::Substituters {
        self.ctx.substituters.expect("hits come only from substituters")
    }

    fn settle_once<'p>(
        &self,
        plan: &'p Plan,
        roots: &[usize],
        rejected: &HashSet<usize>,
    ) -> Result<(Settling<'p>, Vec<bool>), BuildError> {
        let n = plan.steps.len();
        let mut s = Settling {
            plan,
            inputs: KeyInputs { epoch: self.epoch(), compression: crate::compression(self.recipe) },
            outputs: (0..n).map(|_| OnceLock::new()).collect(),
            keys: (0..n).map(|_| OnceLock::new()).collect(),
            resolved: vec![false; n],
            visited: vec![false; n],
            asked: vec![false; n],
            hits: vec![None; n],
        };
        let caches = self.ctx.substituters.filter(|c| !c.is_empty());
        let mut frontier: Vec<usize> = roots.to_vec();
        while !frontier.is_empty() {
            let mut fresh = Vec::new();
            for i in std::mem::take(&mut frontier) {
                if !std::mem::replace(&mut s.visited[i], true) {
                    self.look_up(&mut s, i)?;
                    fresh.push(i);
                }
            }
            if let Some(caches) = caches {
                self.ask_caches(&mut s, caches, rejected)?;
            }
            for i in fresh {
                if s.outputs[i].get().is_none() {
                    frontier.extend(plan.steps[i].deps.iter().copied());
                }
            }
        }
        // What is needed: the roots, and below each step that has no result, what it reads. A
        // step whose output a later depth's hit made known stops the walk like a cached one.
        let mut needed = vec![false; n];
        let mut todo = roots.to_vec();
        while let Some(i) = todo.pop() {
            if !std::mem::replace(&mut needed[i], true) && s.outputs[i].get().is_none() {
                todo.extend(plan.steps[i].deps.iter().copied());
            }
        }
        Ok((s, needed))
    }

    /// Asks the caches about the steps visited and still missing, and about any step whose
    /// key a hit has just made computable, until no new key turns up.
    fn ask_caches(
        &self,
        s: &mut Settling<'_>,
        caches: &composer_cache::Substituters,
        rejected: &HashSet<usize>,
    ) -> Result<(), BuildError> {
        loop {
            let candidates: Vec<usize> = (0..s.plan.steps.len())
                .filter(|&i| {
                    s.visited[i]
                        && !s.asked[i]
                        && !rejected.contains(&i)
                        && s.outputs[i].get().is_none()
                        && substitutable(s.plan.steps[i].kind)
                })
                .collect();
            let ask: Vec<usize> = candidates.into_iter().filter(|&i| self.key_now(s, i).is_some()).collect();
            if ask.is_empty() {
                return Ok(());
            }
            let keys: Vec<ActionKey> = ask.iter().map(|&i| s.keys[i].get().cloned().expect("filtered")).collect();
            let answers = caches.query(&keys);
            for warning in caches.take_warnings() {
                self.ctx.reporter.warn(&warning);
            }
            for (&i, answer) in ask.iter().zip(answers) {
                s.asked[i] = true;
                let Some(hit) = answer else { continue };
                match self.output_of(&s.plan.steps[i], &hit.claim.record())? {
                    Some(output) => {
                        let _ = s.outputs[i].set(output);
                        s.hits[i] = Some(hit);
                    }
                    None => self.ctx.reporter.warn(&format!(
                        "cache {}: the result of {} does not say what it holds; building it here",
                        caches.name(hit.cache),
                        s.plan.steps[i].name
                    )),
                }
            }
        }
    }

    /// Step `i`'s key, computing it if the outputs it needs have become known.
    fn key_now(&self, s: &mut Settling<'_>, i: usize) -> Option<ActionKey> {
        if let Some(key) = s.keys[i].get() {
            return Some(key.clone());
        }
        let key = match &s.plan.steps[i].key {
            Some(key) => Some(key.clone()),
            None => keys::dynamic_key(&s.plan.steps, i, &s.outputs, &s.keys, &s.inputs),
        }?;
        let _ = s.keys[i].set(key.clone());
        Some(key)
    }

    /// Downloads the hits the plan needs, in parallel; returns the steps whose download failed
    /// (warned about), so that the plan is settled again without them.
    fn fetch_hits(&self, s: &Settling<'_>, needed: &[bool]) -> Vec<usize> {
        let wanted: Vec<usize> = (0..s.plan.steps.len()).filter(|&i| needed[i] && s.hits[i].is_some()).collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let caches = self.substituters();
        let bytes: u64 = wanted
            .iter()
            .filter_map(|&i| s.hits[i].as_ref())
            .flat_map(|hit| hit.claim.outputs.iter().filter(|o| !self.ctx.store.contains(&o.blake3)).map(|o| o.size))
            .sum();
        self.ctx.reporter.status(
            "Fetching",
            &format!("{} step results from caches ({:.1} MiB)", wanted.len(), bytes as f64 / 1048576.0),
        );
        let fetched = composer_client::parallel::map(&wanted, crate::DOWNLOAD_THREADS, |&i| {
            let hit = s.hits[i].as_ref().expect("wanted");
            let result = caches.fetch(self.ctx.store, hit);
            if let Err(e) = &result {
                self.ctx.reporter.warn(&format!(
                    "cache {}: the result of {} is not used, building it here: {}",
                    caches.name(hit.cache),
                    s.plan.steps[i].name,
                    composer_store::error_chain(e)
                ));
            }
            result.is_err()
        });
        wanted.into_iter().zip(fetched).filter(|(_, failed)| *failed).map(|(i, _)| i).collect()
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
