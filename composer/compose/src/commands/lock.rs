use crate::cli::LockArgs;
use crate::commands::{client, context, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: LockArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let recipe = load_recipe(&args.recipe, settings)?;
    let store = open_store(settings)?;
    let client = client(settings);
    let mut ctx = context(settings, &store, &client, printer, None);
    ctx.allow_downgrade = args.allow_downgrade;
    if args.check {
        let changes = composer_planner::outdated(&ctx, &recipe, &args.recipe)?;
        if printer.json {
            return crate::printer::json_out(&crate::documents::OutdatedDocument { outdated: changes });
        }
        for change in &changes {
            crate::out!("{change}");
        }
        printer.status(
            "Checked",
            &match changes.len() {
                0 => "the lock is current with the mirror".to_string(),
                n => format!("{n} newer version(s) on the mirror; `compose lock --upgrade` takes them"),
            },
        );
        return Ok(());
    }
    let upgrade = match (args.upgrade, args.upgrade_packages.is_empty()) {
        (true, _) => composer_planner::Upgrade::All,
        (false, true) => composer_planner::Upgrade::Nothing,
        (false, false) => composer_planner::Upgrade::Packages(args.upgrade_packages.clone()),
    };
    let composer_planner::Locked { lock, path, changes, unchanged } =
        composer_planner::lock(&ctx, &recipe, &args.recipe, &upgrade)?;
    if !printer.json {
        for change in &changes {
            printer.status("Locking", change);
        }
    }
    if printer.json {
        crate::printer::json_out(&crate::documents::LockDocument {
            lock: path,
            unchanged,
            changes,
            platforms: lock
                .platforms
                .iter()
                .map(|p| crate::documents::LockedPlatform { platform: p.platform.clone(), packages: p.packages.len() })
                .collect(),
        })?;
        return Ok(());
    }
    for platform in &lock.platforms {
        printer.status(
            "Resolved",
            &format!(
                "{}: {} packages from {} ({})",
                platform.platform,
                platform.packages.len(),
                platform.release.fields.get("suite").unwrap_or(&lock.suite),
                platform.release.date
            ),
        );
    }
    if unchanged {
        printer.status("Unchanged", &format!("{} is current: nothing changed, nothing was written", path.display()));
    }
    crate::out!("{}", path.display());
    Ok(())
}
