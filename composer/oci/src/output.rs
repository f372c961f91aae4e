//! Where a built image goes: an OCI layout, an `oci-archive` or a `docker-archive` (one
//! platform), each written from the store.

use std::path::PathBuf;

use composer_store::{BlobInfo, Store};

use crate::OciError;

/// Where a build goes.
#[derive(Debug, Clone)]
pub enum Output {
    Layout(PathBuf),
    OciArchive(PathBuf),
    DockerArchive(PathBuf),
}

impl Output {
    pub fn parse(text: &str) -> Result<Output, OciError> {
        Ok(match text.split_once(':') {
            Some(("oci-archive", path)) if !path.is_empty() => Output::OciArchive(path.into()),
            Some(("docker-archive", path)) if !path.is_empty() => Output::DockerArchive(path.into()),
            Some(("oci", path)) if !path.is_empty() => Output::Layout(path.into()),
            Some(("oci-archive" | "docker-archive" | "oci", _)) => return Err(OciError::Output(text.into())),
            // `docker://x`, `containers-storage:x`: a transport composer does not write, not a
            // directory to create under that name.
            Some((transport, _))
                if !transport.is_empty()
                    && !transport.contains('/')
                    && transport.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'+' || b == b'.') =>
            {
                return Err(OciError::UnknownTransport { output: text.into(), transport: transport.into() });
            }
            _ => Output::Layout(text.into()),
        })
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Layout(p) => write!(f, "{}", p.display()),
            Output::OciArchive(p) => write!(f, "oci-archive:{}", p.display()),
            Output::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
        }
    }
}

/// A built image in the store: its index and each platform's manifest.
pub struct Image<'a> {
    pub index: &'a BlobInfo,
    /// (platform as `os/arch[/variant]`, manifest)
    pub manifests: &'a [(String, BlobInfo)],
    pub name: &'a str,
    /// Every tag the output names the image by (at least one).
    pub tags: &'a [String],
}

/// Writes a built image out. A docker-archive holds one platform: `platform` picks it (required
/// when the image has several); its digests, which are not the OCI image's, are returned.
pub fn export(
    store: &Store,
    image: &Image<'_>,
    output: &Output,
    platform: Option<&str>,
) -> Result<Option<crate::archive::DockerDigests>, OciError> {
    let tags = image.tags;
    Ok(match output {
        Output::Layout(dir) => {
            crate::layout::write_layout(store, dir, image.index, tags)?;
            None
        }
        Output::OciArchive(file) => {
            crate::archive::write_oci_archive(store, file, image.index, tags)?;
            None
        }
        Output::DockerArchive(file) => {
            let have = || image.manifests.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>();
            let chosen = match platform {
                Some(p) => image.manifests.iter().find(|(q, _)| q == p),
                None if image.manifests.len() == 1 => image.manifests.first(),
                None => return Err(OciError::OnePlatform { platforms: have() }),
            };
            let (_, manifest) = chosen.ok_or_else(|| OciError::PlatformNotInImage {
                asked: platform.unwrap_or_default().to_string(),
                have: have(),
            })?;
            let repo_tags: Vec<String> = tags.iter().map(|tag| format!("{}:{tag}", image.name)).collect();
            Some(crate::archive::write_docker_archive(store, file, manifest, &repo_tags)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn outputs_parse_by_transport() {
        assert!(matches!(Output::parse("out/x").unwrap(), Output::Layout(p) if p == Path::new("out/x")));
        assert!(matches!(Output::parse("oci:dir").unwrap(), Output::Layout(p) if p == Path::new("dir")));
        assert!(matches!(Output::parse("oci-archive:a.tar").unwrap(), Output::OciArchive(_)));
        assert!(matches!(Output::parse("docker-archive:a.tar").unwrap(), Output::DockerArchive(_)));
        assert!(matches!(Output::parse("oci-archive:"), Err(OciError::Output(_))));
        assert!(
            matches!(Output::parse("docker://x/y"), Err(OciError::UnknownTransport { transport, .. }) if transport == "docker")
        );
        // A path with a colon inside a directory name is a path.
        assert!(matches!(Output::parse("./a:b").unwrap(), Output::Layout(_)));
    }
}
