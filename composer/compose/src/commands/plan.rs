use composer_planner::Session;

use crate::cli::PlanArgs;
use crate::commands::{client, context, human_bytes, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: PlanArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let recipe = load_recipe(&args.recipe, settings)?;
    let store = open_store(settings)?;
    let client = client(settings);
    let ctx = context(settings, &store, &client, printer);
    let steps = Session::new(&ctx, &recipe, &args.recipe).plan()?;
    if !recipe.base.check_valid_until {
        printer.warn(&format!(
            "the Release's Valid-Until is not checked for suite `{}` ([base] check_valid_until = false): \
             an expired or replayed Release would be accepted",
            recipe.base.suite
        ));
    }
    if printer.json {
        crate::out!("{}", serde_json::to_string_pretty(&steps)?);
        return Ok(());
    }
    for step in &steps {
        let platform = step.platform.as_deref().unwrap_or("-");
        let state = if step.cached {
            "cached".to_string()
        } else if step.bytes > 0 {
            format!("download {}", human_bytes(step.bytes))
        } else {
            "to run".into()
        };
        crate::out!("{:<15} {:<14} {:<40} {state}", step.step, platform, step.name);
    }
    let download: u64 = steps.iter().map(|s| s.bytes).sum();
    let todo = steps.iter().filter(|s| !s.cached).count();
    printer.status("Plan", &format!("{todo} of {} steps to run, {} to download", steps.len(), human_bytes(download)));
    Ok(())
}
