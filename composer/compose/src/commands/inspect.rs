use crate::cli::InspectArgs;
use crate::commands::human_bytes;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: InspectArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let report = match args.image.strip_prefix("docker://") {
        Some(reference) => {
            let reference: composer_oci::push::ImageRef = reference.parse()?;
            let client = crate::commands::client(settings);
            let registry = composer_client::registry::Registry::new(
                &client,
                &settings.registry,
                &reference.host,
                &reference.repository,
                false,
            );
            composer_oci::inspect::inspect_registry(&registry, reference.tag.as_deref().unwrap_or("latest"))?
        }
        None => composer_oci::inspect::inspect(&args.image)?,
    };
    if printer.json {
        crate::printer::json_out(&report)?;
        return Ok(());
    }
    let what = if report.media_type.ends_with("index.v1+json") { "index" } else { "manifest" };
    crate::out!("{} ({}, {})", report.path, report.format, report.reference.as_deref().unwrap_or("untagged"));
    if report.tags.len() > 1 {
        crate::out!("tags {}", report.tags.join(", "));
    }
    crate::out!("{what} {}", report.digest);
    crate::out!("sizes: as stored (compressed), then the tar inside");
    for manifest in &report.manifests {
        crate::out!(
            "\n{}  manifest {}  ({} layers, {}, {} uncompressed)",
            manifest.platform,
            manifest.digest,
            manifest.layers.len(),
            human_bytes(manifest.size),
            human_bytes(manifest.uncompressed_size)
        );
        crate::out!("  config {}", manifest.config);
        let c = &manifest.config_details;
        let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { format!("{v:?}") };
        crate::out!("    entrypoint {}  cmd {}", list(&c.entrypoint), list(&c.cmd));
        crate::out!(
            "    user {}  workdir {}",
            if c.user.is_empty() { "root (unset)" } else { &c.user },
            if c.workdir.is_empty() { "/" } else { &c.workdir }
        );
        for env in &c.env {
            crate::out!("    env {env}");
        }
        if !c.exposed_ports.is_empty() {
            crate::out!("    ports {}", c.exposed_ports.join(", "));
        }
        for (key, value) in &c.labels {
            crate::out!("    label {key}={value}");
        }
        for layer in &manifest.layers {
            let what =
                if layer.packages.is_empty() { format!("({})", layer.comment) } else { layer.packages.join(" ") };
            crate::out!(
                "  {:>10} {:>10}  {}  {what}",
                human_bytes(layer.size),
                human_bytes(layer.uncompressed_size),
                &layer.digest[..19.min(layer.digest.len())]
            );
        }
    }
    Ok(())
}
