use composer_wheels::simple::{IndexWheel, write_index};

use crate::cli::WheelsCommand;
use crate::commands::{client, context, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(command: WheelsCommand, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let WheelsCommand::Index { out, recipe } = command;
    let store = open_store(settings)?;
    let wheels: Vec<IndexWheel> = match &recipe {
        Some(recipe_path) => {
            let recipe = load_recipe(recipe_path, settings)?;
            let client = client(settings);
            let caches = crate::commands::cache::substituters(settings, printer)?;
            let ctx = context(settings, &store, &client, printer, caches.as_ref());
            composer_planner::recipe_wheels(&ctx, &recipe, recipe_path)?
                .into_iter()
                .map(|(wheel, blob)| IndexWheel {
                    filename: wheel.filename,
                    sha256: wheel.sha256,
                    size: blob.size,
                    source: store.object_path(&blob.id),
                })
                .collect()
        }
        None => store
            .action_records("wheel-file")?
            .into_iter()
            .filter_map(|record| {
                let text = |key: &str| record.data.get(key).and_then(|v| v.as_str()).map(str::to_string);
                Some(IndexWheel {
                    filename: text("filename")?,
                    sha256: text("sha256")?,
                    size: record.data.get("size").and_then(|v| v.as_u64()).unwrap_or(0),
                    source: store.object_path(&record.outputs.first()?.id),
                })
            })
            .collect(),
    };
    // The index copies the wheels by path: each is checked against its name first.
    for wheel in &wheels {
        if let Some(id) = wheel.source.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
            store.verify_object(&id)?;
        }
    }
    let summary = write_index(&out, &wheels)?;
    if printer.json {
        crate::printer::json_out(&crate::documents::WheelsIndexDocument {
            index: out.clone(),
            projects: summary.projects,
            wheels: summary.wheels,
        })?;
        return Ok(());
    }
    printer.status("Indexed", &format!("{} wheels of {} projects", summary.wheels, summary.projects));
    crate::out!("{}", out.join("simple").display());
    Ok(())
}
