//! The first job: build the image in the store and export it to the output the command line
//! names.

use composer_oci::Output;
use composer_oci::archive::DockerDigests;
use composer_planner::{BuildError, BuildOutcome, Context, LockPolicy, Session};
use composer_store::Store;

use super::Request;
use crate::cli::BuildArgs;
use crate::printer::Printer;

/// The image built and written out.
pub struct Built {
    pub outcome: BuildOutcome,
    /// The digests a docker-archive output is known by; none for the other outputs.
    pub docker: Option<DockerDigests>,
}

/// Builds and exports the image. A damaged store object found on the way has been removed with
/// what was made from it, so one more attempt redoes only what the damage touched; with
/// `--debug-shell`, a failed build step opens a shell in its sandbox before the error returns.
pub fn build_and_export(
    ctx: &Context<'_>,
    request: &Request,
    args: &BuildArgs,
    printer: &Printer,
) -> anyhow::Result<Built> {
    let attempt = || -> Result<Built, BuildError> {
        let _signals = crate::interrupt::Catch::signals();
        let outcome = build(ctx, request, args)?;
        let platform = request.platform.as_ref().map(|p| p.to_string());
        let docker = export(ctx.store, &outcome, request, &request.output, platform.as_deref())?;
        Ok(Built { outcome, docker })
    };
    match attempt() {
        Err(BuildError::BuildFailed(failed)) if args.debug_shell && failed.shell.is_some() => {
            let shell = failed.shell.clone().expect("checked above");
            printer.error(&anyhow::Error::new(BuildError::BuildFailed(failed)));
            printer
                .status("Debugging", "a shell in the failed step's sandbox; `exit` ends it (the build stays failed)");
            let _ = std::process::Command::new(&shell[0]).args(&shell[1..]).status();
            Err(crate::commands::Reported.into())
        }
        Err(error) if error.is_damaged_store_object() => {
            printer.warn(&format!("{error}; it was removed with the results made from it, building again"));
            Ok(attempt()?)
        }
        result => Ok(result?),
    }
}

/// Runs the plan's steps (or finds their results) and assembles the image in the store.
fn build(ctx: &Context<'_>, request: &Request, args: &BuildArgs) -> Result<BuildOutcome, BuildError> {
    let policy = if args.locked { LockPolicy::Locked } else { LockPolicy::UseOrCreate };
    Session::new(ctx, &request.recipe, &request.recipe_path)
        .keep_failed(args.keep_failed || args.debug_shell)
        .only_platforms(request.platforms.clone())
        .build(policy)
}

/// Writes the built image (its platform `platform`, for a docker-archive) to `output`.
pub fn export(
    store: &Store,
    outcome: &BuildOutcome,
    request: &Request,
    output: &Output,
    platform: Option<&str>,
) -> Result<Option<DockerDigests>, composer_oci::OciError> {
    let manifests: Vec<(String, composer_store::BlobInfo)> =
        outcome.manifests.iter().map(|(p, m)| (p.to_string(), *m)).collect();
    let image = composer_oci::Image {
        index: &outcome.index,
        manifests: &manifests,
        name: request.recipe.image.name.get_ref(),
        tags: &request.tags,
    };
    composer_oci::export(store, &image, output, platform)
}
