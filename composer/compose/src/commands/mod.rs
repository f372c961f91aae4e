//! One short file per subcommand; each is a thin wrapper around the library crates.

pub mod build;
mod bundle;
mod cache;
mod inspect;
mod key;
mod lock;
mod plan;
mod push;
mod recipe;
mod store;
mod wheels;

use composer_client::{Client, ClientOptions};
use composer_recipe::Recipe;
use composer_store::Store;

use crate::cli::{Cli, Command};
use crate::printer::Printer;
use crate::settings::Settings;

/// A failure the command has printed itself; `main` only sets the exit status.
#[derive(Debug, thiserror::Error)]
#[error("the failure was reported above")]
pub struct Reported;

pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<()> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Build(args) => build::run(args, &settings, printer),
        Command::Plan(args) => plan::run(args, &settings, printer),
        Command::Lock(args) => lock::run(args, &settings, printer),
        Command::Inspect(args) => inspect::run(args, &settings, printer),
        Command::Store(command) => store::run(command, &settings, printer),
        Command::Wheels(command) => wheels::run(command, &settings, printer),
        Command::Key(command) => key::run(command, printer),
        Command::Recipe(command) => recipe::run(command, &settings, printer),
        Command::Push(args) => push::run(args, &settings, printer),
        Command::Bundle(args) => bundle::run(args, &settings, printer),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "compose", &mut std::io::stdout());
            Ok(())
        }
        Command::JsonSchema { name, out } => {
            let schemas = crate::documents::schemas();
            if let Some(dir) = out {
                std::fs::create_dir_all(&dir)?;
                for (name, schema) in &schemas {
                    std::fs::write(
                        dir.join(format!("{name}.schema.json")),
                        serde_json::to_string_pretty(schema)? + "\n",
                    )?;
                }
                return Ok(());
            }
            match name {
                None => schemas.iter().for_each(|(name, _)| crate::out!("{name}")),
                Some(name) => match schemas.iter().find(|(n, _)| *n == name) {
                    Some((_, schema)) => crate::out!("{}", serde_json::to_string_pretty(schema)?),
                    None => anyhow::bail!("no document `{name}`; `compose json-schema` lists them"),
                },
            }
            Ok(())
        }
        Command::RecipeSchema => {
            crate::out!("{}", serde_json::to_string_pretty(&composer_recipe::json_schema())?);
            Ok(())
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)?;
            printer.status("Wrote", &format!("man pages into {}", dir.display()));
            Ok(())
        }
    }
}

pub fn load_recipe(path: &std::path::Path, settings: &Settings) -> anyhow::Result<Recipe> {
    Ok(Recipe::load_allowing(path, &settings.allow_paths)?)
}

/// Each recipe with its path, for the commands that take several.
pub fn load_recipes(
    paths: &[std::path::PathBuf],
    settings: &Settings,
) -> anyhow::Result<Vec<(Recipe, std::path::PathBuf)>> {
    paths.iter().map(|path| Ok((load_recipe(path, settings)?, path.clone()))).collect()
}

pub fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Store::open_notifying(&settings.store, composer_store::LockMode::Shared, crate::printer::waiting)
        .map_err(|e| anyhow::Error::new(e).context("opening the store"))
}

pub fn client(settings: &Settings) -> Client {
    Client::new(ClientOptions {
        offline: settings.offline,
        ca_file: settings.ca_file.clone(),
        ..ClientOptions::default()
    })
}

/// What every library step needs, from the resolved settings: one place for its fields.
pub fn context<'a>(
    settings: &'a Settings,
    store: &'a Store,
    client: &'a Client,
    printer: &'a Printer,
    substituters: Option<&'a composer_cache::Substituters>,
) -> composer_planner::Context<'a> {
    composer_planner::Context {
        store,
        client,
        distributions: settings,
        indexes: &settings.indexes,
        offline: settings.offline,
        reporter: printer,
        source_date_epoch: settings.source_date_epoch,
        tools: &settings.tools,
        temp_dir: &settings.temp_dir,
        substituters,
        interrupted: crate::interrupt::flag(),
        allow_downgrade: false,
    }
}

pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", units[unit]) }
}
