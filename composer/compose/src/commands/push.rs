use std::path::PathBuf;

use composer_client::registry::Registry;
use composer_oci::push::{ImageRef, ImageSource, LayoutImage, PushReport, push_image};
use composer_store::Sha256;

use crate::cli::PushArgs;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: PushArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let reference: ImageRef = args.reference.parse()?;
    let (_unpacked, layout) = match args.source.strip_prefix("oci-archive:") {
        Some(file) => {
            let (dir, root) = composer_oci::push::unpack_archive(&PathBuf::from(file), &settings.temp_dir)?;
            (Some(dir), root)
        }
        None => (None, PathBuf::from(args.source.strip_prefix("oci:").unwrap_or(&args.source))),
    };
    let image = LayoutImage::open(&layout)?;
    let (index, tag) = image.top()?;
    let report = push(&image, &index, &reference, &tag, settings)?;
    show(&report, printer)
}

/// Pushes to `reference`, whose tag wins over `default_tag`; blobs may be mounted from the
/// registry caches on the same host.
pub fn push(
    image: &dyn ImageSource,
    index: &Sha256,
    reference: &ImageRef,
    default_tag: &str,
    settings: &Settings,
) -> anyhow::Result<PushReport> {
    let client = crate::commands::client(settings);
    let registry = Registry::new(&client, &settings.registry, &reference.host, &reference.repository, true);
    let mount_from: Vec<String> = settings
        .caches
        .iter()
        .filter_map(|c| match c.parse::<composer_cache::CacheRef>() {
            Ok(composer_cache::CacheRef::Registry { host, repository }) if host == reference.host => Some(repository),
            _ => None,
        })
        .collect();
    let tag = reference.tag.as_deref().unwrap_or(default_tag);
    let report = push_image(image, index, &registry, tag, &mount_from)
        .map_err(|e| anyhow::Error::new(e).context(format!("pushing to {reference}")))?;
    Ok(report)
}

pub fn show(report: &PushReport, printer: &Printer) -> anyhow::Result<()> {
    if printer.json {
        crate::printer::json_out(report)?;
        return Ok(());
    }
    printer.status(
        "Pushed",
        &format!(
            "{} ({} blob(s) uploaded, {}; {} already there, {} mounted)",
            report.reference,
            report.blobs_uploaded,
            crate::commands::human_bytes(report.bytes_uploaded),
            report.blobs_present,
            report.blobs_mounted
        ),
    );
    crate::out!("{} {}", report.digest, report.reference);
    Ok(())
}
