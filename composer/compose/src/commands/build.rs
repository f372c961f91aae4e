use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;

use composer_oci::Output;
use composer_planner::{BuildError, LockPolicy, Session};

use crate::cli::BuildArgs;
use crate::commands::{client, context, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: BuildArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let started = Instant::now();
    let recipe = load_recipe(&args.recipe, settings)?;
    if let Some(reference) = &args.push {
        reference.parse::<composer_oci::push::ImageRef>()?;
    }
    // A missing signing key, or a cache reference that is not one, is found before the build.
    let signing_key = match &args.cache_to {
        Some(reference) => {
            reference.parse::<composer_cache::CacheRef>()?;
            Some(crate::commands::cache::signing_key(args.signing_key.as_deref(), settings, printer, "--cache-to")?)
        }
        None => None,
    };
    let output = match &args.output {
        Some(text) => Output::parse(text)?,
        None => Output::Layout(PathBuf::from("out").join(recipe.image.name.get_ref())),
    };
    let platforms = chosen_platforms(&args.platforms, &recipe)?;
    // A docker-archive holds one platform: the one chosen, or the recipe's only one. Said
    // before the build, not after it.
    let platform = match platforms.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let built = if platforms.is_empty() { recipe.image.platforms.get_ref() } else { &platforms };
    if matches!(output, Output::DockerArchive(_)) && platform.is_none() && built.len() != 1 {
        let platforms = built.iter().map(ToString::to_string).collect();
        return Err(composer_oci::OciError::OnePlatform { platforms }.into());
    }
    let recipe = overridden(recipe, &args)?;
    let tags: Vec<String> = match args.tags.is_empty() {
        true => vec![recipe.image.tag.get_ref().clone()],
        false => args.tags.clone(),
    };
    let store = open_store(settings)?;
    let client = client(settings);
    let caches = crate::commands::cache::substituters(settings, printer)?;
    let mut ctx = context(settings, &store, &client, printer, caches.as_ref());
    ctx.allow_downgrade = args.allow_downgrade;
    let policy = if args.locked { LockPolicy::Locked } else { LockPolicy::UseOrCreate };
    let build = || -> Result<_, BuildError> {
        let _signals = crate::interrupt::Catch::signals();
        let session = Session::new(&ctx, &recipe, &args.recipe)
            .keep_failed(args.keep_failed || args.debug_shell)
            .only_platforms(platforms.clone());
        let outcome = session.build(policy)?;
        let platform = platform.as_ref().map(|p| p.to_string());
        let docker = export(&store, &outcome, &recipe, &tags, &output, platform.as_deref())?;
        Ok((outcome, docker))
    };
    let (outcome, docker) = match build() {
        Err(BuildError::BuildFailed(failed)) if args.debug_shell && failed.shell.is_some() => {
            let shell = failed.shell.clone().expect("checked above");
            printer.error(&anyhow::Error::new(BuildError::BuildFailed(failed)));
            printer
                .status("Debugging", "a shell in the failed step's sandbox; `exit` ends it (the build stays failed)");
            let _ = std::process::Command::new(&shell[0]).args(&shell[1..]).status();
            return Err(crate::commands::Reported.into());
        }
        // The store removed the damaged object and what was derived from it; every other step
        // is still cached, so building again redoes only what the damage touched.
        Err(error) if error.is_damaged_store_object() => {
            printer.warn(&format!("{error}; it was removed with the results made from it, building again"));
            build()?
        }
        result => result?,
    };

    if args.load {
        load(&store, &outcome, &recipe, &tags, &platforms, settings, printer)?;
    }
    if let Some(reference) = &args.push {
        let reference: composer_oci::push::ImageRef = reference.parse()?;
        let image = composer_oci::push::StoreImage(&store);
        // A reference with a tag pushes that tag; else each of the image's tags, the blobs
        // once (the later pushes find them there).
        let pushed_tags = match reference.tag {
            Some(_) => vec![String::new()],
            None => tags.clone(),
        };
        for tag in &pushed_tags {
            let report = crate::commands::push::push(&image, &outcome.index.sha256, &reference, tag, settings)?;
            if !printer.json {
                crate::commands::push::show(&report, printer)?;
            }
        }
    }
    if let (Some(reference), Some(key)) = (&args.cache_to, signing_key) {
        let remote = crate::commands::cache::open_for_writing(reference, settings)?;
        // Layers the image push just uploaded to the same registry are mounted, not sent again.
        let mount_from = match (reference.parse::<composer_cache::CacheRef>(), &args.push) {
            (Ok(composer_cache::CacheRef::Registry { host, .. }), Some(image)) => image
                .parse::<composer_oci::push::ImageRef>()
                .ok()
                .filter(|image| image.host == host)
                .map(|image| vec![image.repository])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let recipes = [(recipe.clone(), args.recipe.clone())];
        let stats = crate::commands::cache::push(&ctx, &recipes, remote.as_ref(), &key, printer, mount_from)?;
        crate::commands::cache::report(&stats, remote.as_ref(), printer);
    }

    let cached = outcome.steps.iter().filter(|s| s.cached).count();
    let substituted = outcome.steps.iter().filter(|s| s.substituted.is_some()).count();
    let downloaded: u64 = outcome.steps.iter().map(|s| s.bytes).sum();
    let output_text = output.to_string();
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
        crate::printer::json_out(&summary)?;
        return Ok(());
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
        printer.status("Locked", &format!("{}", composer_planner::lockfile::lock_path(&args.recipe).display()));
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
            recipe.image.name.get_ref(),
            tags.join(","),
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

/// The platforms `--platform` asks for, each one the recipe builds; empty for all of them.
pub fn chosen_platforms(
    asked: &[String],
    recipe: &composer_recipe::Recipe,
) -> anyhow::Result<Vec<composer_recipe::Platform>> {
    let known = recipe.image.platforms.get_ref();
    asked
        .iter()
        .map(|asked| {
            let parsed: Option<composer_recipe::Platform> = asked.parse().ok();
            parsed.filter(|p| known.contains(p)).ok_or_else(|| {
                let known = known.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
                BuildError::UnknownPlatform { asked: asked.clone(), known }.into()
            })
        })
        .collect()
}

/// The recipe with `--tag`, `--label` and `--annotation` applied: the command line wins, as it
/// does for buildx (a CI job stamps the commit it built).
fn overridden(mut recipe: composer_recipe::Recipe, args: &BuildArgs) -> anyhow::Result<composer_recipe::Recipe> {
    for tag in &args.tags {
        composer_recipe::check_tag(tag).map_err(|reason| anyhow::anyhow!("`--tag {tag}`: {reason}"))?;
    }
    if let Some(first) = args.tags.first() {
        recipe.image.tag = toml::Spanned::new(0..0, first.clone());
    }
    for (flag, pairs, into) in [
        ("--label", &args.labels, &mut recipe.config.labels),
        ("--annotation", &args.annotations, &mut recipe.config.annotations),
    ] {
        for pair in pairs {
            let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                anyhow::bail!("`{flag} {pair}` is not KEY=VALUE");
            };
            into.insert(key.to_string(), value.to_string());
        }
    }
    Ok(recipe)
}

/// Hands one platform of the image to podman (or Docker) through its own `load` of a
/// docker-archive, named `name:tag` as the recipe (or `--tag`) says.
fn load(
    store: &composer_store::Store,
    outcome: &composer_planner::BuildOutcome,
    recipe: &composer_recipe::Recipe,
    tags: &[String],
    chosen: &[composer_recipe::Platform],
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<()> {
    let built: Vec<String> = outcome.manifests.iter().map(|(p, _)| p.to_string()).collect();
    let native = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => other,
    };
    let platform = match (chosen, built.as_slice()) {
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
        export(store, outcome, recipe, tags, &Output::DockerArchive(archive.clone()), Some(platform.as_str()))?;
        let out = std::process::Command::new(&tool).arg("load").arg("-i").arg(&archive).output()?;
        if !out.status.success() {
            anyhow::bail!("{} load failed: {}", tool.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    })();
    drop(dir);
    result?;
    printer.status(
        "Loaded",
        &format!("{}:{} ({platform}) into {}", recipe.image.name.get_ref(), recipe.image.tag.get_ref(), tool.display()),
    );
    Ok(())
}

/// Writes the built image (its platform `platform`, for a docker-archive) to `output`.
fn export(
    store: &composer_store::Store,
    outcome: &composer_planner::BuildOutcome,
    recipe: &composer_recipe::Recipe,
    tags: &[String],
    output: &Output,
    platform: Option<&str>,
) -> Result<Option<composer_oci::archive::DockerDigests>, composer_oci::OciError> {
    let manifests: Vec<(String, composer_store::BlobInfo)> =
        outcome.manifests.iter().map(|(p, m)| (p.to_string(), *m)).collect();
    let image =
        composer_oci::Image { index: &outcome.index, manifests: &manifests, name: recipe.image.name.get_ref(), tags };
    composer_oci::export(store, &image, output, platform)
}
