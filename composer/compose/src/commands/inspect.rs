use crate::cli::InspectArgs;
use crate::commands::human_bytes;
use crate::printer::Printer;

pub fn run(args: InspectArgs, printer: &Printer) -> anyhow::Result<()> {
    let report = composer_oci::inspect::inspect(&args.path)?;
    if printer.json {
        crate::out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    crate::out!("{} ({})", report.path, report.reference.as_deref().unwrap_or("untagged"));
    crate::out!("index {}", report.index);
    for manifest in &report.manifests {
        let total: u64 = manifest.layers.iter().map(|l| l.size).sum();
        crate::out!(
            "\n{}  manifest {}  ({} layers, {})",
            manifest.platform,
            manifest.digest,
            manifest.layers.len(),
            human_bytes(total)
        );
        crate::out!("  config {}", manifest.config);
        for layer in &manifest.layers {
            let what =
                if layer.packages.is_empty() { format!("({})", layer.comment) } else { layer.packages.join(" ") };
            crate::out!("  {:>10}  {}  {what}", human_bytes(layer.size), &layer.digest[..19.min(layer.digest.len())]);
        }
    }
    Ok(())
}
