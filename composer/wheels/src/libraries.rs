//! The libraries a wheel's ELF files need (`DT_NEEDED`) and the files it carries: what a wheel
//! set asks of the system, read from the wheels themselves before any image is made, so that
//! the packages that ship those libraries can be resolved with the image's own.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

use crate::WheelError;

/// No ELF file of a real wheel is near this (the largest, in GPU wheels, are a few GiB less).
const MAX_ELF: u64 = 4 << 30;

/// What one wheel needs and brings, by file name (`libstdc++.so.6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelLibraries {
    /// Every library some ELF file of the wheel names in `DT_NEEDED`.
    pub needed: BTreeSet<String>,
    /// The last component of every file the wheel holds (`libscipy_openblas64_-6bb31eeb.so`):
    /// what its own files, or another wheel's, can find in it (`numpy.libs/`).
    pub carried: BTreeSet<String>,
}

/// Reads `wheel` (named `filename` in errors) for its ELF files' needs. An entry that is not a
/// loadable ELF file is not judged here: the loader never loads it, or the image's own check
/// says so.
pub fn libraries(wheel: impl Read + Seek, filename: &str) -> Result<WheelLibraries, WheelError> {
    let bad = |entry: Option<&str>, reason: String| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: entry.map(str::to_string),
        reason,
    };
    let mut archive = zip::ZipArchive::new(wheel).map_err(|e| bad(None, format!("is not a zip archive: {e}")))?;
    let mut found = WheelLibraries::default();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| bad(None, e.to_string()))?;
        let name = entry.name().map_err(|e| bad(None, e.to_string()))?.into_owned();
        if !entry.is_file() {
            continue;
        }
        found.carried.insert(name.rsplit('/').next().unwrap_or(&name).to_string());
        // The declared size bounds the read: a zip that inflates past it is cut off there, and
        // the ELF parse then fails on it like on any truncated file.
        let size = entry.size();
        if !(64..=MAX_ELF).contains(&size) {
            continue;
        }
        let mut entry = entry.take(size);
        let mut magic = [0u8; 4];
        if entry.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
            continue;
        }
        // The declared size is the archive's word: memory is taken as bytes arrive.
        let mut bytes = Vec::with_capacity(size.min(64 << 20) as usize);
        bytes.extend_from_slice(&magic);
        entry.read_to_end(&mut bytes).map_err(|e| bad(Some(&name), format!("cannot be read: {e}")))?;
        if let Ok(elf) = goblin::elf::Elf::parse(&bytes) {
            found.needed.extend(elf.libraries.iter().map(|l| l.to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn wheel(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_wheel_carries_each_of_its_files_and_only_elf_files_are_read_for_needs() {
        // What DT_NEEDED an ELF file names is end-to-end tested with real dynamic sections
        // (tests/e2e/loadable.rs); here, that nothing else is taken for one.
        let bytes = wheel(&[
            ("pkg.libs/libopenblas-1a2b.so", b"not an ELF file, but carried all the same"),
            ("pkg/__init__.py", b"\x7fELF but only its magic and then text, long enough to be read whole......."),
            ("pkg-1.0.dist-info/RECORD", b""),
        ]);
        let found = libraries(Cursor::new(bytes), "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").unwrap();
        assert!(found.needed.is_empty(), "{found:?}");
        assert_eq!(found.carried, ["RECORD", "__init__.py", "libopenblas-1a2b.so"].map(String::from).into());
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_a_bad_wheel_by_name() {
        let error = libraries(Cursor::new(b"PK but no archive".to_vec()), "x-1.0-py3-none-any.whl").unwrap_err();
        assert!(error.to_string().contains("x-1.0-py3-none-any.whl"), "{error}");
    }
}
