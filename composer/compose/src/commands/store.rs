use std::time::Duration;

use anyhow::bail;
use composer_store::{GcOptions, LockMode, Store};

use crate::cli::StoreCommand;
use crate::commands::human_bytes;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(command: StoreCommand, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    match command {
        StoreCommand::Pin { recipe: path, remove } => {
            let recipe = crate::commands::load_recipe(&path, settings)?;
            let store = crate::commands::open_store(settings)?;
            let client = crate::commands::client(settings);
            let ctx = crate::commands::context(settings, &store, &client, printer, None);
            let inputs = composer_planner::Session::new(&ctx, &recipe, &path).pin(!remove)?;
            let lock = composer_planner::lockfile::lock_path(&path);
            if printer.json {
                return crate::printer::json_out(&crate::documents::PinDocument { lock, inputs, pinned: !remove });
            }
            match remove {
                false => printer.status("Pinned", &format!("{} inputs of {}", inputs, lock.display())),
                true => printer.status("Unpinned", &format!("{} (kept while it is used)", lock.display())),
            }
        }
        StoreCommand::Import { file, locks_to } => {
            let store = crate::commands::open_store(settings)?;
            let trusted = crate::commands::cache::trusted_keys(settings)?;
            let unchanged = |e: composer_cache::CacheError| {
                anyhow::Error::new(e).context(format!("importing {}; the store is unchanged", file.display()))
            };
            let checked = composer_cache::bundle::check(&file, &trusted, &settings.temp_dir).map_err(unchanged)?;
            // The locks' signature, names and destinations are all checked before anything is
            // written, to the store or beside the recipes.
            let lock_writes = match &locks_to {
                Some(dir) => Some(
                    checked
                        .trusted_locks()
                        .and_then(|locks| composer_cache::locks::plan_writes(dir, locks))
                        .map_err(unchanged)?,
                ),
                None => None,
            };
            let report = checked.add_to(&store).map_err(unchanged)?;
            if let Some(writes) = lock_writes {
                let written = writes.write()?;
                printer.status(
                    "Locks",
                    &format!("{} lock file(s) in {}", written.len(), locks_to.unwrap_or_default().display()),
                );
            } else if !report.locks.is_empty() {
                let note = match &report.locks_signed_by {
                    Some(key) => format!(
                        "the bundle carries {} lock file(s) signed by `{key}`; --locks-to DIR writes them",
                        report.locks.len()
                    ),
                    None => format!(
                        "the bundle carries {} lock file(s) no trusted key signed; --locks-to refuses them",
                        report.locks.len()
                    ),
                };
                printer.status("Note", &note);
            }
            if printer.json {
                crate::printer::json_out(&report)?;
            } else {
                printer.status(
                    "Imported",
                    &format!("{} result(s) and {} input(s) from {}", report.results, report.inputs, file.display()),
                );
            }
        }
        StoreCommand::Push { reference, recipes, signing_key } => {
            let key =
                crate::commands::cache::signing_key(signing_key.as_deref(), settings, printer, "pushing to a cache")?;
            let remote = crate::commands::cache::open_for_writing(&reference, settings)?;
            let recipes = crate::commands::load_recipes(&recipes, settings)?;
            let store = crate::commands::open_store(settings)?;
            let client = crate::commands::client(settings);
            let ctx = crate::commands::context(settings, &store, &client, printer, None);
            let stats = crate::commands::cache::push(&ctx, &recipes, remote.as_ref(), &key, printer, Vec::new())?;
            if printer.json {
                crate::printer::json_out(&stats)?;
            } else {
                crate::commands::cache::report(&stats, remote.as_ref(), printer);
            }
        }
        StoreCommand::Info => {
            let store = Store::open_existing_notifying(&settings.store, LockMode::Shared, crate::printer::waiting)?;
            let info = store.info()?;
            if printer.json {
                crate::printer::json_out(&crate::documents::StoreInfoDocument { path: settings.store.clone(), info })?;
            } else {
                crate::out!("store    {}", settings.store.display());
                crate::out!("format   {}", composer_store::FORMAT);
                crate::out!("objects  {} ({})", info.objects, human_bytes(info.bytes));
                crate::out!("aliases  {}", info.sha256_aliases);
                crate::out!("actions  {}", info.actions);
            }
        }
        StoreCommand::Verify { repair } => {
            let store = Store::open_existing_notifying(&settings.store, LockMode::Shared, crate::printer::waiting)?;
            let report = store.verify(repair)?;
            if printer.json {
                crate::printer::json_out(&report)?;
            } else {
                for problem in &report.problems {
                    crate::printer::problem(&problem.path, &problem.problem);
                }
                printer.status(
                    "Verified",
                    &format!(
                        "{} objects, {} aliases, {} actions: {} problem(s)",
                        report.objects,
                        report.aliases,
                        report.actions,
                        report.problems.len()
                    ),
                );
            }
            if !report.problems.is_empty() && !repair {
                bail!(
                    "the store has {} problem(s); `compose store verify --repair` removes them",
                    report.problems.len()
                );
            }
        }
        StoreCommand::Gc { max_age_days, all, dry_run } => {
            let store = Store::open_existing_notifying(&settings.store, LockMode::Exclusive, crate::printer::waiting)?;
            let max_age = if all { Duration::ZERO } else { Duration::from_secs(max_age_days * 86_400) };
            let mut report = store.gc(&GcOptions { max_age, dry_run })?;
            report.dead_temp_dirs = composer_store::leftovers::sweep_work_dirs(&settings.temp_dir, dry_run);
            if printer.json {
                crate::printer::json_out(&report)?;
            } else {
                for kept in &report.roots_kept {
                    let why = match (kept.pinned, kept.age_seconds) {
                        (true, _) => "pinned".to_string(),
                        (false, Some(age)) => format!("used {} day(s) ago", age / 86_400),
                        (false, None) => "used".to_string(),
                    };
                    printer.detail(&format!("keeping the {} inputs of {} ({why})", kept.inputs, kept.name));
                }
                if dry_run {
                    for kept in &report.roots_kept {
                        crate::out!(
                            "keep {} inputs of {}{}",
                            kept.inputs,
                            kept.name,
                            if kept.pinned { " (pinned)" } else { "" }
                        );
                    }
                }
                printer.status(
                    if dry_run { "Would free" } else { "Freed" },
                    &format!(
                        "{} in {} objects ({} actions, {} aliases, {} temp files, {} directories of killed processes); \
                         kept the inputs of {} lock(s)",
                        human_bytes(report.bytes_freed),
                        report.objects_removed,
                        report.actions_removed,
                        report.aliases_removed,
                        report.temp_files,
                        report.dead_temp_dirs,
                        report.roots_kept.len()
                    ),
                );
            }
        }
    }
    Ok(())
}
