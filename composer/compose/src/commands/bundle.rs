use crate::cli::BundleArgs;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: BundleArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let key = match args.inputs_only {
        true => None,
        false => Some(crate::commands::cache::signing_key(args.signing_key.as_deref(), settings)?),
    };
    let recipes = args
        .recipes
        .iter()
        .map(|path| Ok((crate::commands::load_recipe(path, settings)?, path.clone())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = crate::commands::open_store(settings)?;
    let client = crate::commands::client(settings);
    let ctx = crate::commands::context(settings, &store, &client, printer, None);
    let mut shared = crate::commands::cache::shareable(&ctx, &recipes, printer)?;
    if args.inputs_only {
        shared.results.clear();
    }
    let (results, inputs) = (&shared.results, &shared.inputs);
    let stats = composer_cache::bundle::write(&store, results, inputs, key.as_ref(), &args.output)?;
    if printer.json {
        crate::out!("{}", serde_json::to_string_pretty(&stats)?);
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
