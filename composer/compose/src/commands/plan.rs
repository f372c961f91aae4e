use composer_planner::Session;

use crate::cli::PlanArgs;
use crate::commands::{client, context, human_bytes, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: PlanArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let recipe = load_recipe(&args.recipe, settings)?;
    let store = open_store(settings)?;
    let client = client(settings);
    let caches = crate::commands::cache::substituters(settings, printer)?;
    let ctx = context(settings, &store, &client, printer, caches.as_ref());
    let platforms = crate::commands::build::chosen_platforms(&args.platforms, &recipe)?;
    let plan = Session::new(&ctx, &recipe, &args.recipe).only_platforms(platforms).plan()?;
    if !recipe.base.check_valid_until {
        printer.warn(&format!(
            "the Release's Valid-Until is not checked for suite `{}` ([base] check_valid_until = false): \
             an expired or replayed Release would be accepted",
            recipe.base.suite
        ));
    }
    if printer.json {
        crate::printer::json_out(&plan.to_json())?;
        return Ok(());
    }
    let state = |cached: bool, bytes: u64, substituted: Option<&str>| {
        if let Some(cache) = substituted {
            format!("from {cache}")
        } else if cached {
            "cached".to_string()
        } else if bytes > 0 {
            format!("download {}", human_bytes(bytes))
        } else {
            "to run".into()
        }
    };
    for step in &plan.resolution {
        let platform = step.platform.as_deref().unwrap_or("-");
        crate::out!(
            "    {:<15} {:<14} {:<40} {}",
            step.step,
            platform,
            step.name,
            state(step.cached, step.bytes, None)
        );
    }
    for (id, step) in plan.steps.iter().enumerate() {
        let platform = step.platform.as_deref().unwrap_or("-");
        let needs = match step.deps.as_slice() {
            deps if !step.cached && step.substituted.is_none() && !deps.is_empty() => {
                format!(" after {}", deps.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
            }
            _ => String::new(),
        };
        let line = format!(
            "{id:>3} {:<15} {platform:<14} {:<40} {}",
            step.kind.name(),
            step.name,
            state(step.cached, step.bytes, step.substituted.as_deref())
        );
        crate::out!("{line}{}", if printer.verbose { needs } else { String::new() });
    }
    let download: u64 = plan.missing().filter(|s| s.substituted.is_none()).map(|s| s.bytes).sum();
    let todo = plan.missing().filter(|s| s.substituted.is_none()).count();
    let from_caches = plan.steps.iter().filter(|s| s.substituted.is_some()).count();
    let caches = if from_caches > 0 { format!(", {from_caches} from caches") } else { String::new() };
    // Counted as `compose build` counts them: the steps the image needs now (a cached step's
    // inputs are not needed), without the resolution listed above them.
    let in_store = plan.steps.iter().filter(|s| s.cached && s.substituted.is_none()).count();
    printer.status(
        "Plan",
        &format!(
            "{} steps needed, {todo} to run, {in_store} found in the store{caches}; {} to download",
            plan.steps.len(),
            human_bytes(download)
        ),
    );
    Ok(())
}
