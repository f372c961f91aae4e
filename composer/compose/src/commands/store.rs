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
            let report = composer_cache::bundle::import(&store, &file, &trusted, &settings.temp_dir).map_err(|e| {
                anyhow::Error::new(e).context(format!("importing {}; the store is unchanged", file.display()))
            })?;
            if let Some(dir) = &locks_to {
                write_locks(dir, &report.locks)?;
            } else if !report.locks.is_empty() {
                printer.status(
                    "Note",
                    &format!("the bundle carries {} lock file(s); --locks-to DIR writes them", report.locks.len()),
                );
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
            let key = crate::commands::cache::signing_key(signing_key.as_deref(), settings, printer)?;
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
                    eprintln!("{}: {}", problem.path.display(), problem.problem);
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
            let report = store.gc(&GcOptions { max_age, dry_run })?;
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
                        "{} in {} objects ({} actions, {} aliases, {} temp files); kept the inputs of {} lock(s)",
                        human_bytes(report.bytes_freed),
                        report.objects_removed,
                        report.actions_removed,
                        report.aliases_removed,
                        report.temp_files,
                        report.roots_kept.len()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Writes lock files beside the recipes: new ones are created, identical ones left alone, and a
/// different file is never replaced (it may be newer than the bundle).
fn write_locks(dir: &std::path::Path, locks: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    use std::io::Write;
    for (name, bytes) in locks {
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(existing) if existing == *bytes => continue,
            Ok(_) => bail!("{} exists and differs from the bundle's; it is left as it is", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))?;
        file.write_all(bytes).map_err(|e| anyhow::Error::new(e).context(format!("writing {}", path.display())))?;
    }
    Ok(())
}
