//! The jobs after the build: hand the image to podman or Docker, push it to a registry, push its
//! steps' results to a cache.

use anyhow::Context as _;
use composer_cache::SecretKey;
use composer_oci::Output;
use composer_oci::push::ImageRef;
use composer_planner::BuildOutcome;
use composer_store::Store;

use super::Request;
use super::image::export;
use crate::printer::Printer;
use crate::settings::Settings;

/// Hands one platform of the image to podman (or Docker) through its own `load` of a
/// docker-archive, named `name:tag` as the recipe (or `--tag`) says.
pub fn load(
    store: &Store,
    outcome: &BuildOutcome,
    request: &Request,
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<()> {
    let built: Vec<String> = outcome.manifests.iter().map(|(p, _)| p.to_string()).collect();
    let native = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => other,
    };
    let platform = match (request.platforms.as_slice(), built.as_slice()) {
        ([one], _) => one.to_string(),
        (_, [one]) => one.clone(),
        _ if built.iter().any(|p| p == native) => native.to_string(),
        _ => anyhow::bail!("--load hands over one platform and the image has {}: add --platform", built.join(", ")),
    };
    let tool = ["podman", "docker"]
        .into_iter()
        .find_map(|name| settings.program(name))
        .ok_or_else(|| anyhow::anyhow!("--load needs podman or docker on PATH"))?;
    // Listed for removal on a signal, and named with the process id for `store gc` after a kill.
    let dir = composer_store::staging::Staged::work_dir(&settings.temp_dir, "compose-load-")
        .with_context(|| format!("creating a directory in {}", settings.temp_dir.display()))?;
    let archive = dir.path().join("image.tar");
    let result = (|| -> anyhow::Result<()> {
        export(store, outcome, request, &Output::DockerArchive(archive.clone()), Some(platform.as_str()))?;
        let out = std::process::Command::new(&tool).arg("load").arg("-i").arg(&archive).output()?;
        if !out.status.success() {
            anyhow::bail!("{} load failed: {}", tool.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    })();
    drop(dir);
    result?;
    let image = &request.recipe.image;
    printer.status(
        "Loaded",
        &format!("{}:{} ({platform}) into {}", image.name.get_ref(), image.tag.get_ref(), tool.display()),
    );
    Ok(())
}

/// Pushes the image to `reference`: a reference with a tag pushes that tag; else each of the
/// image's tags, the blobs once (the later pushes find them there).
pub fn push(
    store: &Store,
    outcome: &BuildOutcome,
    reference: &ImageRef,
    tags: &[String],
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<()> {
    let image = composer_oci::push::StoreImage(store);
    let pushed_tags = match reference.tag {
        Some(_) => vec![String::new()],
        None => tags.to_vec(),
    };
    for tag in &pushed_tags {
        let report = crate::commands::push::push(&image, &outcome.index.sha256, reference, tag, settings)?;
        if !printer.json {
            crate::commands::push::show(&report, printer)?;
        }
    }
    Ok(())
}

/// Pushes the results of the image's steps to the cache `reference` names, signed with `key`.
pub fn push_to_cache(
    ctx: &composer_planner::Context<'_>,
    request: &Request,
    reference: &str,
    key: &SecretKey,
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<()> {
    let remote = crate::commands::cache::open_for_writing(reference, settings)?;
    // Layers the image push just uploaded to the same registry are mounted, not sent again.
    let mount_from = match (reference.parse::<composer_cache::CacheRef>(), &request.push) {
        (Ok(composer_cache::CacheRef::Registry { host, .. }), Some(image)) if image.host == host => {
            vec![image.repository.clone()]
        }
        _ => Vec::new(),
    };
    let recipes = [(request.recipe.clone(), request.recipe_path.clone())];
    let stats = crate::commands::cache::push(ctx, &recipes, remote.as_ref(), key, printer, mount_from)?;
    crate::commands::cache::report(&stats, remote.as_ref(), printer);
    Ok(())
}
