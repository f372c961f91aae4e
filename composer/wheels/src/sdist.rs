//! What an sdist needs to be built: its `pyproject.toml`'s `[build-system] requires` (PEP 518),
//! read from the archive as a stream, so that the build requirements are locked with the wheel
//! set instead of taken from whatever the build machine has.

use std::io::Read;

use crate::{SdistProblem, WheelError};

/// What PEP 517 front ends assume of an sdist that declares no build system (pip's fallback).
pub const LEGACY_REQUIRES: &[&str] = &["setuptools>=40.8.0", "wheel"];

/// `pyproject.toml` is small; a larger one is not read whole.
const MAX_PYPROJECT: u64 = 1 << 20;

/// The build requirements of the sdist `filename` whose bytes `reader` gives (`.tar.gz` or
/// `.zip`, with one top directory as PEP 625 has it).
pub fn build_requires(reader: impl Read + std::io::Seek, filename: &str) -> Result<Vec<String>, WheelError> {
    let text = if filename.ends_with(".zip") {
        pyproject_of_zip(reader, filename)?
    } else {
        pyproject_of_tar(reader, filename)?
    };
    let Some(text) = text else { return Ok(LEGACY_REQUIRES.iter().map(|r| r.to_string()).collect()) };
    requires_of(&text).map_err(|reason| bad(filename, reason))
}

fn bad(filename: &str, reason: SdistProblem) -> WheelError {
    WheelError::BadSdist { sdist: filename.to_string(), reason }
}

/// `requires` of `[build-system]`; the legacy requirements when the table is missing.
fn requires_of(text: &str) -> Result<Vec<String>, SdistProblem> {
    let value: toml::Table = toml::from_str(text).map_err(|e| SdistProblem::NotToml(Box::new(e)))?;
    let Some(system) = value.get("build-system") else {
        return Ok(LEGACY_REQUIRES.iter().map(|r| r.to_string()).collect());
    };
    let Some(requires) = system.get("requires") else {
        // PEP 518: a build-system table must say what it requires.
        return Err(SdistProblem::NoRequires);
    };
    let list = requires.as_array().ok_or(SdistProblem::RequiresNotAList)?;
    list.iter().map(|r| r.as_str().map(|s| s.trim().to_string()).ok_or(SdistProblem::RequiresNotAString)).collect()
}

/// Whether `path` is `<top>/pyproject.toml`.
fn is_top_pyproject(path: &str) -> bool {
    let mut parts = path.trim_start_matches("./").split('/').filter(|p| !p.is_empty());
    matches!((parts.next(), parts.next(), parts.next()), (Some(_), Some("pyproject.toml"), None))
}

fn read_limited(entry: impl Read, filename: &str) -> Result<String, WheelError> {
    let mut text = String::new();
    entry.take(MAX_PYPROJECT + 1).read_to_string(&mut text).map_err(|e| bad(filename, SdistProblem::NotUtf8(e)))?;
    if text.len() as u64 > MAX_PYPROJECT {
        return Err(bad(filename, SdistProblem::TooLarge(MAX_PYPROJECT)));
    }
    Ok(text)
}

fn pyproject_of_tar(reader: impl Read, filename: &str) -> Result<Option<String>, WheelError> {
    let unreadable = |e: std::io::Error| bad(filename, SdistProblem::NotATarGz(e));
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(reader));
    for entry in archive.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.to_string_lossy().into_owned();
        if is_top_pyproject(&path) && entry.header().entry_type().is_file() {
            return read_limited(entry, filename).map(Some);
        }
    }
    Ok(None)
}

fn pyproject_of_zip(reader: impl Read + std::io::Seek, filename: &str) -> Result<Option<String>, WheelError> {
    let unreadable = |e: zip::result::ZipError| bad(filename, SdistProblem::NotAZip(e));
    let mut archive = zip::ZipArchive::new(reader).map_err(unreadable)?;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(unreadable)?;
        if entry.is_file() && is_top_pyproject(&entry.name().map_err(unreadable)?) {
            return read_limited(entry, filename).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, text.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn the_top_pyproject_says_what_the_build_requires() {
        let sdist = tar_gz(&[
            ("multidict-7.2/tests/pyproject.toml", "[build-system]\nrequires = [\"nope\"]\n"),
            (
                "multidict-7.2/pyproject.toml",
                "[build-system]\nrequires = [\"setuptools >= 77.0\", \"cython; python_version < '3.13'\"]\n",
            ),
        ]);
        let requires = build_requires(std::io::Cursor::new(sdist), "multidict-7.2.tar.gz").unwrap();
        assert_eq!(requires, ["setuptools >= 77.0", "cython; python_version < '3.13'"]);
    }

    #[test]
    fn an_sdist_without_a_build_system_gets_the_legacy_one() {
        let sdist = tar_gz(&[("old-1.0/setup.py", "")]);
        assert_eq!(build_requires(std::io::Cursor::new(sdist), "old-1.0.tar.gz").unwrap(), LEGACY_REQUIRES);
        let sdist = tar_gz(&[("old-1.0/pyproject.toml", "[tool.black]\n")]);
        assert_eq!(build_requires(std::io::Cursor::new(sdist), "old-1.0.tar.gz").unwrap(), LEGACY_REQUIRES);
    }

    #[test]
    fn a_broken_build_system_is_named_with_its_file() {
        let sdist = tar_gz(&[("x-1/pyproject.toml", "[build-system]\nrequires = \"setuptools\"\n")]);
        let error = build_requires(std::io::Cursor::new(sdist), "x-1.tar.gz").unwrap_err();
        assert_eq!(error.to_string(), "sdist x-1.tar.gz: pyproject.toml [build-system] requires is not a list");
        let error = build_requires(std::io::Cursor::new(b"not gzip".to_vec()), "x-1.tar.gz").unwrap_err();
        assert!(error.to_string().starts_with("sdist x-1.tar.gz: is not a readable .tar.gz"), "{error}");
    }
}
