//! The caches a command uses, opened from the resolved settings, and pushing to one.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use composer_cache::push::{PushStats, Pusher};
use composer_cache::{CacheRef, DirCache, PublicKey, RegistryCache, Remote, SecretKey, Substituters, TrustedKeys};
use composer_client::Client;
use composer_client::registry::Registry;
use composer_planner::Session;
use composer_store::userfile;

use crate::printer::Printer;
use crate::settings::Settings;

/// The caches to substitute from; `None` when there are none. A cache that cannot be opened is
/// left out with a warning: a build never fails for a cache.
pub fn substituters(settings: &Settings, printer: &Printer) -> anyhow::Result<Option<Substituters>> {
    if settings.caches.is_empty() {
        return Ok(None);
    }
    let trusted = trusted_keys(settings)?;
    if trusted.is_empty() {
        printer.warn(
            "no trusted keys are set (--trusted-key): only packages, wheels and sources are taken from caches, \
             no step results",
        );
    }
    let client = crate::commands::client(settings);
    let mut remotes: Vec<Box<dyn Remote>> = Vec::new();
    for text in &settings.caches {
        let reference: CacheRef = text.parse()?;
        match open(&reference, settings, &client, false) {
            Ok(remote) => remotes.push(remote),
            Err(e) => printer.warn(&format!("cache {reference} is not used: {}", crate::hints::one_line(&e))),
        }
    }
    Ok(Some(Substituters::new(remotes, trusted)))
}

/// Every trusted public key the settings name.
pub fn trusted_keys(settings: &Settings) -> anyhow::Result<TrustedKeys> {
    let keys = settings
        .trusted_keys
        .iter()
        .map(|text| {
            PublicKey::parse(text)
                .with_context(|| "a trusted key (--trusted-key, COMPOSE_TRUSTED_KEYS or [cache] trusted-keys)")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(TrustedKeys::new(keys))
}

fn open(reference: &CacheRef, settings: &Settings, client: &Client, push: bool) -> anyhow::Result<Box<dyn Remote>> {
    match reference {
        CacheRef::Dir(path) if push => Ok(Box::new(DirCache::create(path)?)),
        CacheRef::Dir(path) => Ok(Box::new(DirCache::open(path))),
        CacheRef::Registry { host, repository } => {
            let registry = Registry::new(client, &settings.registry, host, repository, push);
            Ok(Box::new(RegistryCache::new(reference.to_string(), registry)))
        }
    }
}

pub fn open_for_writing(text: &str, settings: &Settings) -> anyhow::Result<Box<dyn Remote>> {
    let reference: CacheRef = text.parse()?;
    open(&reference, settings, &crate::commands::client(settings), true)
}

/// The secret key from `--signing-key`, else `COMPOSE_SIGNING_KEY`, else the config file's. As
/// ssh does, a key file others may read is used with a warning.
/// `needed_for` says what needs it, for the error when there is none.
pub fn signing_key(
    flag: Option<&Path>,
    settings: &Settings,
    printer: &Printer,
    needed_for: &str,
) -> anyhow::Result<SecretKey> {
    let Some(path) = flag.map(Path::to_path_buf).or_else(|| settings.signing_key.clone()) else {
        bail!(
            "{needed_for} needs a key to sign with: --signing-key FILE, COMPOSE_SIGNING_KEY or [cache] signing-key \
             (make one with `compose key generate NAME`)"
        );
    };
    let policy = userfile::Policy::anywhere(userfile::Kind::SIGNING_KEY);
    let file = userfile::open(&path, &policy)?;
    if file.open_to_others() {
        printer.warn(&format!(
            "the signing key {} is readable or writable by others (mode {:04o}); `chmod 600 {}` keeps it yours",
            path.display(),
            file.mode(),
            path.display()
        ));
    }
    let bytes = file.read_all()?;
    // The key's own words stay out of the error: a path named by mistake may be another secret.
    let parsed = std::str::from_utf8(&bytes).ok().map(SecretKey::parse);
    match parsed {
        Some(Ok(key)) => Ok(key),
        Some(Err(composer_cache::KeyError::Value { reason, .. })) => {
            bail!("the signing key {} is not a composer secret key: {reason}", path.display())
        }
        _ => bail!(
            "the signing key {} is not a composer secret key (NAME:BASE64, as `compose key generate` writes; its \
             contents are not shown)",
            path.display()
        ),
    }
}

/// Pushes the results and inputs of each recipe's build (all in the store already).
pub fn push(
    ctx: &composer_planner::Context<'_>,
    recipes: &[(composer_recipe::Recipe, PathBuf)],
    remote: &dyn Remote,
    key: &SecretKey,
    printer: &Printer,
    mount_from: Vec<String>,
) -> anyhow::Result<PushStats> {
    let shared = shareable(ctx, recipes, printer)?;
    let pusher = Pusher::new(ctx.store, remote, key, ctx.temp_dir).mount_from(mount_from);
    pusher.push_all(&shared.results, &shared.inputs).with_context(|| format!("pushing to {}", remote.name()))?;
    Ok(pusher.stats())
}

/// The results and inputs of the recipes' builds, each once.
pub fn shareable(
    ctx: &composer_planner::Context<'_>,
    recipes: &[(composer_recipe::Recipe, PathBuf)],
    printer: &Printer,
) -> anyhow::Result<composer_planner::Shareable> {
    let mut results = Vec::new();
    let mut inputs = Vec::new();
    let mut release_files = Vec::new();
    for (recipe, path) in recipes {
        let shareable = Session::new(ctx, recipe, path).shareable()?;
        if shareable.missing > 0 {
            printer.warn(&format!(
                "{}: {} step(s) of its build are not in the store and are not pushed (build it first)",
                path.display(),
                shareable.missing
            ));
        }
        results.extend(shareable.results);
        inputs.extend(shareable.inputs);
        release_files.extend(shareable.release_files);
    }
    inputs.sort();
    inputs.dedup();
    let mut seen = std::collections::HashSet::new();
    results.retain(|(key, _)| seen.insert(key.hash()));
    release_files.sort();
    release_files.dedup();
    Ok(composer_planner::Shareable { results, inputs, release_files, missing: 0 })
}

pub fn report(stats: &PushStats, remote: &dyn Remote, printer: &Printer) {
    printer.status(
        "Pushed",
        &format!(
            "{} result(s) to {} ({} already there), {} blob(s) uploaded ({}), {} already there, {} mounted",
            stats.results,
            remote.name(),
            stats.results_present,
            stats.blobs_uploaded,
            crate::commands::human_bytes(stats.bytes_uploaded),
            stats.blobs_present,
            stats.blobs_mounted
        ),
    );
}
