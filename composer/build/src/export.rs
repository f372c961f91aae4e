//! Where a built image goes: an OCI layout, an `oci-archive` or a `docker-archive` (one
//! platform), written from the store by `composer-oci`.

use std::path::PathBuf;

use composer_recipe::{Platform, Recipe};
use composer_store::Store;

use crate::{BuildError, BuildOutcome};

/// Where a build goes.
#[derive(Debug, Clone)]
pub enum Output {
    Layout(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
}

impl Output {
    pub fn parse(text: &str) -> Result<Output, BuildError> {
        Ok(match text.split_once(':') {
            Some(("oci-archive", path)) if !path.is_empty() => Output::OciArchive(path.into()),
            Some(("docker-archive", path)) if !path.is_empty() => Output::DockerArchive(path.into()),
            Some(("oci", path)) if !path.is_empty() => Output::Layout(path.into()),
            Some(("oci-archive" | "docker-archive" | "oci", _)) => return Err(BuildError::Output(text.into())),
            // `docker://x`, `containers-storage:x`: a transport composer does not write, not a
            // directory to create under that name.
            Some((transport, _))
                if !transport.is_empty()
                    && !transport.contains('/')
                    && transport.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+' || b == b'.') =>
            {
                return Err(BuildError::UnknownTransport { output: text.into(), transport: transport.into() });
            }
            _ => Output::Layout(text.into()),
        })
    }
}

/// Writes a built image out. A docker-archive holds one platform: `platform` picks it (required
/// when the image has several).
pub fn export(
    store: &Store,
    recipe: &Recipe,
    outcome: &BuildOutcome,
    output: &Output,
    platform: Option<&Platform>,
) -> Result<(), BuildError> {
    let tag = recipe.image.tag.get_ref();
    match output {
        Output::Layout(dir) => composer_oci::layout::write_layout(store, dir, &outcome.index, tag)?,
        Output::OciArchive(file) => composer_oci::archive::write_oci_archive(store, file, &outcome.index, tag)?,
        Output::DockerArchive(file) => {
            let chosen = match platform {
                Some(p) => outcome.manifests.iter().find(|(q, _)| q == p),
                None if outcome.manifests.len() == 1 => outcome.manifests.first(),
                None => {
                    return Err(BuildError::Output(format!(
                        "docker-archive holds one platform and the image has {}: add --platform",
                        outcome.manifests.len()
                    )));
                }
            };
            let (_, manifest) = chosen.ok_or_else(|| {
                BuildError::Output(format!(
                    "platform {} is not in the recipe",
                    platform.map(|p| p.to_string()).unwrap_or_default()
                ))
            })?;
            composer_oci::archive::write_docker_archive(
                store,
                file,
                manifest,
                &format!("{}:{tag}", recipe.image.name.get_ref()),
            )?;
        }
    }
    Ok(())
}
