//! The versions of the CPython and the musl a recipe builds, which its wheel set's target and its
//! virtual environment follow. Known without downloading the tarball where it can be: the version
//! recorded when this store last read that tarball (by its pinned SHA-256), else read from the
//! tarball if the store holds it, else the one its file name states (`python3.13_3.13.5.orig.tar.xz`, `Python-3.13.5.tar.xz`, `musl_1.2.5.orig.tar.gz`),
//! a claim the executor checks against the tarball when it fetches it ([`Session::check_source_version`]),
//! else read from the tarball now. A cold `compose plan` thus fetches indexes, not sources.

use composer_recipe::Source;
use composer_store::{ActionKey, ActionRecord, BlobInfo, Sha256};

use crate::compile::VersionOf;
use crate::{BuildError, Session};

/// A version as file names write it: two to four dot-separated numbers, the last of which may
/// carry a pre-release (`3.14.0rc1`).
fn plausible(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    let Some((last, leading)) = parts.split_last() else { return false };
    (2..=4).contains(&parts.len())
        && leading.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && last.starts_with(|c: char| c.is_ascii_digit())
        && last.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The version a source's file name states: after the last `_` (Debian's `NAME_VERSION.orig`)
/// or `-` (upstream's `NAME-VERSION`), before the archive's extensions.
pub(crate) fn stated_version(source: &Source) -> Option<String> {
    let location = match (&source.url, &source.path) {
        (Some(url), _) => url.get_ref().clone(),
        (None, Some(path)) => path.get_ref().to_string_lossy().into_owned(),
        (None, None) => return None,
    };
    let file = location.rsplit('/').next()?;
    let stem =
        [".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tgz", ".tar"].iter().find_map(|ext| file.strip_suffix(ext))?;
    let stem = stem.strip_suffix(".orig").unwrap_or(stem);
    let version = stem.rsplit_once('_').or_else(|| stem.rsplit_once('-'))?.1;
    plausible(version).then(|| version.to_string())
}

fn version_key(of: VersionOf, sha256: &str) -> ActionKey {
    crate::keys::source_version_key(of.step(), sha256)
}

impl Session<'_> {
    /// The version of the CPython the recipe builds.
    pub(crate) fn built_python_version(&self) -> Result<Option<String>, BuildError> {
        let Some(interpreter) = self.recipe.python.as_ref().and_then(|p| p.build.as_ref()) else { return Ok(None) };
        self.source_version(interpreter.source.get_ref(), VersionOf::Cpython).map(Some)
    }

    /// The version of the musl a musl image builds (its musllinux tags follow it).
    pub(crate) fn built_musl_version(&self) -> Result<Option<String>, BuildError> {
        if !self.recipe.base.musl() {
            return Ok(None);
        }
        self.source_version(composer_recipe::MUSL_BUILD, VersionOf::Musl).map(Some)
    }

    /// What the version of `name` is taken from, and which: see the module's comment.
    fn versioned_source(&self, name: &str) -> Option<(&Source, VersionOf)> {
        let source = self.recipe.sources.iter().find(|s| s.name.get_ref() == name)?;
        let interpreter = self.recipe.python.as_ref().and_then(|p| p.build.as_ref()).map(|b| b.source.get_ref());
        if interpreter.is_some_and(|s| s == name) {
            return Some((source, VersionOf::Cpython));
        }
        (self.recipe.base.musl() && name == composer_recipe::MUSL_BUILD).then_some((source, VersionOf::Musl))
    }

    fn recorded_version(&self, of: VersionOf, sha256: &str) -> Result<Option<String>, BuildError> {
        Ok(self.ctx.store.action_get(&version_key(of, sha256))?.and_then(|r| r.data.as_str().map(str::to_string)))
    }

    fn source_version(&self, name: &str, of: VersionOf) -> Result<String, BuildError> {
        let source = self.recipe.sources.iter().find(|s| s.name.get_ref() == name);
        let source = source.expect("validated: the source is a recipe source");
        let pinned = source.sha256.as_ref().and_then(|s| s.get_ref().parse::<Sha256>().ok());
        if let Some(sha256) = &pinned
            && let Some(version) = self.recorded_version(of, &sha256.to_string())?
        {
            if let Some(stated) = stated_version(source).filter(|stated| *stated != version) {
                return Err(misnamed(name, &stated, &version));
            }
            return Ok(version);
        }
        // A tarball the store already holds (a bundle brought it, an older run fetched it) is
        // read, not named: only a download is worth avoiding.
        if let Some(sha256) = &pinned
            && let Some(blob) = self.ctx.store.lookup_sha256(sha256)?
        {
            let version = self.read_version(&blob, of)?;
            if let Some(stated) = stated_version(source).filter(|stated| *stated != version) {
                return Err(misnamed(name, &stated, &version));
            }
            return Ok(version);
        }
        if pinned.is_some()
            && let Some(stated) = stated_version(source)
        {
            return Ok(stated);
        }
        let (blob, _) = crate::sources::fetch_one(self.ctx, &*self.backend, self.recipe, source)?;
        self.read_version(&blob, of)
    }

    /// The version in the tarball `blob`, recorded by its SHA-256 once read.
    fn read_version(&self, blob: &BlobInfo, of: VersionOf) -> Result<String, BuildError> {
        let sha256 = blob.sha256.to_string();
        if let Some(version) = self.recorded_version(of, &sha256)? {
            return Ok(version);
        }
        let version = crate::compile::source_version(self.ctx.store, blob, of)?;
        let record =
            ActionRecord { inputs: Vec::new(), step: of.step().into(), outputs: vec![], data: version.clone().into() };
        self.ctx.store.action_put(&version_key(of, &sha256), &record)?;
        Ok(version)
    }

    /// Run by the executor on a source it fetched: where the plan took the interpreter's or the
    /// C library's version from the file's name, the tarball must hold that version.
    pub(crate) fn check_source_version(&self, name: &str, blob: &BlobInfo) -> Result<(), BuildError> {
        let Some((source, of)) = self.versioned_source(name) else { return Ok(()) };
        let Some(stated) = stated_version(source) else { return Ok(()) };
        let version = self.read_version(blob, of)?;
        match version == stated {
            true => Ok(()),
            false => Err(misnamed(name, &stated, &version)),
        }
    }
}

fn misnamed(name: &str, stated: &str, version: &str) -> BuildError {
    BuildError::Source {
        name: name.into(),
        reason: Box::new(crate::SourceProblem::Misnamed { stated: stated.into(), version: version.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(url: &str) -> Source {
        let text = format!("name = \"s\"\nurl = \"{url}\"\nsha256 = \"{}\"\n", "0".repeat(64));
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_version_is_read_from_the_file_names_debian_and_upstreams_give() {
        for (url, version) in [
            ("mirror://debian/pool/main/p/python3.13/python3.13_3.13.5.orig.tar.xz", Some("3.13.5")),
            ("https://example.invalid/Python-3.14.0rc1.tar.xz", Some("3.14.0rc1")),
            ("mirror://debian/pool/main/m/musl/musl_1.2.5.orig.tar.gz", Some("1.2.5")),
            ("https://example.invalid/musl-1.2.5.tar.gz", Some("1.2.5")),
            ("mirror://debian/pool/main/z/zlib/zlib_1.3.dfsg+really1.3.1.orig.tar.gz", None),
            ("https://example.invalid/cpython.tar.xz", None),
            ("https://example.invalid/Python-3.tar.xz", None),
            ("https://example.invalid/python-3.13.5.zip", None),
        ] {
            assert_eq!(stated_version(&source(url)).as_deref(), version, "{url}");
        }
    }
}
