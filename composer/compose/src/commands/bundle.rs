use crate::cli::BundleArgs;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: BundleArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    // An inputs-only bundle needs no key; given one, it signs the lock files, which
    // `store import --locks-to` takes only when signed.
    let key = match args.inputs_only && args.signing_key.is_none() && settings.signing_key.is_none() {
        true => None,
        false => Some(crate::commands::cache::signing_key(
            args.signing_key.as_deref(),
            settings,
            printer,
            "a bundle of results (`--inputs-only` makes one of inputs without a key)",
        )?),
    };
    let recipes = crate::commands::load_recipes(&args.recipes, settings)?;
    let store = crate::commands::open_store(settings)?;
    let client = crate::commands::client(settings);
    let ctx = crate::commands::context(settings, &store, &client, printer, None);
    let mut shared = crate::commands::cache::shareable(&ctx, &recipes, printer)?;
    if args.inputs_only {
        shared.results.clear();
    }
    // A machine without network also resolves from the release files it checks itself.
    shared.inputs.append(&mut shared.release_files);
    shared.inputs.sort();
    shared.inputs.dedup();
    let (results, inputs) = (&shared.results, &shared.inputs);
    let locks = lock_files(&recipes)?;
    let stats = composer_cache::bundle::write(&store, results, inputs, &locks, key.as_ref(), &args.output)?;
    if printer.json {
        crate::printer::json_out(&stats)?;
    } else {
        printer.status(
            "Bundled",
            &format!(
                "{} result(s) and {} input(s) into {} ({})",
                results.len(),
                inputs.len(),
                args.output.display(),
                crate::commands::human_bytes(std::fs::metadata(&args.output).map(|m| m.len()).unwrap_or(0))
            ),
        );
    }
    Ok(())
}

/// Each recipe's lock and wheel locks, by file name, as they lie beside it.
fn lock_files(recipes: &[(composer_recipe::Recipe, std::path::PathBuf)]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (recipe, path) in recipes {
        let mut files = vec![composer_planner::lockfile::lock_path(path)];
        for platform in recipe.image.platforms.get_ref() {
            files.push(composer_wheels::pylock::pylock_path(path, &platform.to_string()));
        }
        for file in files {
            match std::fs::read(&file) {
                Ok(bytes) => {
                    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                    out.push((name, bytes));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", file.display()))),
            }
        }
    }
    Ok(out)
}
