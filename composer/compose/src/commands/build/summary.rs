//! The last job: say what was built, as a `--json` document or as status lines, and print the
//! image's digest and output on stdout.

use std::time::Instant;

use super::Request;
use super::image::Built;
use crate::printer::Printer;

pub fn report(built: &Built, request: &Request, started: Instant, printer: &Printer) -> anyhow::Result<()> {
    let Built { outcome, docker } = built;
    let cached = outcome.steps.iter().filter(|s| s.cached).count();
    let substituted = outcome.steps.iter().filter(|s| s.substituted.is_some()).count();
    let downloaded: u64 = outcome.steps.iter().map(|s| s.bytes).sum();
    let output_text = request.output.to_string();
    if printer.json {
        let summary = crate::documents::BuildDocument {
            index: outcome.index.sha256.oci(),
            manifests: outcome
                .manifests
                .iter()
                .map(|(p, m)| crate::documents::PlatformDigest { platform: p.to_string(), digest: m.sha256.oci() })
                .collect(),
            docker_archive: docker.map(|d| crate::documents::DockerArchiveDigests {
                image_id: d.image_id.oci(),
                manifest: d.manifest.oci(),
            }),
            output: output_text.clone(),
            lock_written: outcome.lock_written,
            steps: outcome.steps.clone(),
            cached_steps: cached,
            substituted_steps: substituted,
            total_steps: outcome.steps.len(),
            downloaded_bytes: downloaded,
            seconds: started.elapsed().as_secs_f64(),
        };
        return crate::printer::json_out(&summary);
    }
    for step in &outcome.steps {
        let platform = step.platform.as_deref().map(|p| format!(" [{p}]")).unwrap_or_default();
        printer.detail(&format!(
            "{} {}{platform}: {}",
            step.step,
            step.name,
            match (&step.substituted, step.cached) {
                (Some(cache), _) => format!("from {cache}"),
                (None, true) => "cached".into(),
                (None, false) => "ran".into(),
            }
        ));
    }
    if outcome.lock_written {
        printer.status("Locked", &format!("{}", composer_planner::lockfile::lock_path(&request.recipe_path).display()));
    }
    // Counted as `compose plan` counts them: the steps this build needed (a cached step's inputs
    // are not needed, so a warm build needs fewer), without the resolution.
    let planned = &outcome.steps[outcome.resolution_steps..];
    let (in_store, from_caches) = (
        planned.iter().filter(|s| s.cached && s.substituted.is_none()).count(),
        planned.iter().filter(|s| s.substituted.is_some()).count(),
    );
    printer.status(
        "Built",
        &format!(
            "{}:{} for {} platform(s): {} steps needed, {} run, {in_store} found in the store{}; {} downloaded, in \
             {:.2}s",
            request.recipe.image.name.get_ref(),
            request.tags.join(","),
            outcome.manifests.len(),
            planned.len(),
            planned.len() - in_store - from_caches,
            if from_caches > 0 { format!(", {from_caches} from caches") } else { String::new() },
            crate::commands::human_bytes(downloaded),
            started.elapsed().as_secs_f64()
        ),
    );
    // Each digest by what it is, and where it shows: a docker-archive holds neither the OCI
    // index nor its manifests, and docker and skopeo name it by digests of their own.
    match docker {
        Some(docker) => {
            printer.status("Image ID", &format!("{} (`docker load`, `docker images`)", docker.image_id.oci()));
            printer.status(
                "Manifest",
                &format!("{} (`skopeo inspect docker-archive:{}`)", docker.manifest.oci(), output_text),
            );
            crate::out!("{} {output_text}", docker.image_id.oci());
        }
        None => {
            for (platform, manifest) in &outcome.manifests {
                printer.detail(&format!("manifest {} {platform}", manifest.sha256.oci()));
            }
            printer.status(
                "Index",
                &format!("{} (the image: what a registry shows for its tag)", outcome.index.sha256.oci()),
            );
            crate::out!("{} {output_text}", outcome.index.sha256.oci());
        }
    }
    Ok(())
}
