//! A build session: one recipe against one store and its backend. Only the data; what is done
//! with it lives in the modules that do it (resolution, graph, settle, run), each of which this
//! one knows nothing of.

use std::path::{Path, PathBuf};

use composer_distro::Backend;
use composer_recipe::Recipe;

use crate::lockfile;
use crate::{BuildError, Context};

pub struct Session<'a> {
    pub(crate) ctx: &'a Context<'a>,
    pub(crate) recipe: &'a Recipe,
    pub(crate) recipe_path: PathBuf,
    pub(crate) backend: Box<dyn Backend + 'a>,
    /// Keep a failed build's directory for inspection.
    pub(crate) keep_failed: bool,
    /// Build the images of these platforms only (`--platform`); the lock still covers all.
    pub(crate) only: Option<Vec<composer_recipe::Platform>>,
}

impl<'a> Session<'a> {
    pub fn new(ctx: &'a Context<'a>, recipe: &'a Recipe, recipe_path: &Path) -> Session<'a> {
        let services = composer_distro::Services { store: ctx.store, client: ctx.client, notes: ctx.reporter };
        let backend = ctx.distributions.backend(services, recipe);
        Session { ctx, recipe, recipe_path: recipe_path.to_path_buf(), backend, keep_failed: false, only: None }
    }

    /// The distribution's name for a lock's platform's architecture (the lock names platforms).
    pub(crate) fn arch_of(&self, platform: &str) -> Result<String, BuildError> {
        let parsed: composer_recipe::Platform = platform.parse().map_err(|reason: String| BuildError::Lock {
            path: lockfile::lock_path(&self.recipe_path),
            source: format!("platform `{}`: {reason}", platform.escape_debug()).into(),
        })?;
        Ok(self.backend.architecture(&parsed))
    }

    pub fn keep_failed(mut self, keep: bool) -> Self {
        self.keep_failed = keep;
        self
    }

    /// Builds (and plans) the images of `platforms` only, as buildx's `--platform` does. The
    /// lock is still resolved for every platform of the recipe, so the next full build finds it
    /// whole.
    pub fn only_platforms(mut self, platforms: Vec<composer_recipe::Platform>) -> Self {
        self.only = (!platforms.is_empty()).then_some(platforms);
        self
    }
}
