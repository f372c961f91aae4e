//! `compose build`: the command line checked before anything runs, then one job after another:
//! build and export the image, load it, push it, push its steps to a cache, and report.

mod deliver;
mod image;
mod summary;

use std::path::PathBuf;
use std::time::Instant;

use composer_cache::SecretKey;
use composer_oci::Output;
use composer_oci::push::ImageRef;
use composer_planner::BuildError;
use composer_recipe::{Platform, Recipe};

use crate::cli::BuildArgs;
use crate::commands::{client, context, load_recipe, open_store};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(args: BuildArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    let started = Instant::now();
    let request = Request::check(&args, settings, printer)?;
    let store = open_store(settings)?;
    let client = client(settings);
    let caches = crate::commands::cache::substituters(settings, printer)?;
    let mut ctx = context(settings, &store, &client, printer, caches.as_ref());
    ctx.allow_downgrade = args.allow_downgrade;

    let built = image::build_and_export(&ctx, &request, &args, printer)?;
    if args.load {
        deliver::load(&store, &built.outcome, &request, settings, printer)?;
    }
    if let Some(reference) = &request.push {
        deliver::push(&store, &built.outcome, reference, &request.tags, settings, printer)?;
    }
    if let Some((reference, key)) = &request.cache_to {
        deliver::push_to_cache(&ctx, &request, reference, key, settings, printer)?;
    }
    summary::report(&built, &request, started, printer)
}

/// What the command line asks for, checked before the build so that a mistake in it costs no
/// build time.
struct Request {
    /// The recipe with the command line's tag, labels and annotations applied.
    recipe: Recipe,
    /// The file it was read from (its lock lies beside it).
    recipe_path: PathBuf,
    /// The image's tags: `--tag`s, else the recipe's.
    tags: Vec<String>,
    output: Output,
    /// The platforms `--platform` chose; empty for all of the recipe's.
    platforms: Vec<Platform>,
    /// The one platform a docker-archive holds, when one was chosen.
    platform: Option<Platform>,
    push: Option<ImageRef>,
    /// The cache `--cache-to` names, and the key its pushes are signed with.
    cache_to: Option<(String, SecretKey)>,
}

impl Request {
    fn check(args: &BuildArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<Request> {
        let recipe = load_recipe(&args.recipe, settings)?;
        let push = args.push.as_deref().map(str::parse::<ImageRef>).transpose()?;
        // A missing signing key, or a cache reference that is not one, is found before the build.
        let cache_to = match &args.cache_to {
            Some(reference) => {
                reference.parse::<composer_cache::CacheRef>()?;
                let key =
                    crate::commands::cache::signing_key(args.signing_key.as_deref(), settings, printer, "--cache-to")?;
                Some((reference.clone(), key))
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
        let recipe = overridden(recipe, args)?;
        let tags: Vec<String> = match args.tags.is_empty() {
            true => vec![recipe.image.tag.get_ref().clone()],
            false => args.tags.clone(),
        };
        Ok(Request { recipe, recipe_path: args.recipe.clone(), tags, output, platforms, platform, push, cache_to })
    }
}

/// The platforms `--platform` asks for, each one the recipe builds; empty for all of them.
pub fn chosen_platforms(asked: &[String], recipe: &Recipe) -> anyhow::Result<Vec<Platform>> {
    let known = recipe.image.platforms.get_ref();
    asked
        .iter()
        .map(|asked| {
            let parsed: Option<Platform> = asked.parse().ok();
            parsed.filter(|p| known.contains(p)).ok_or_else(|| {
                let known = known.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
                BuildError::UnknownPlatform { asked: asked.clone(), known }.into()
            })
        })
        .collect()
}

/// The recipe with `--tag`, `--label` and `--annotation` applied: the command line wins, as it
/// does for buildx (a CI job stamps the commit it built).
fn overridden(mut recipe: Recipe, args: &BuildArgs) -> anyhow::Result<Recipe> {
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
