//! The libraries a wheel's ELF files need (`DT_NEEDED`) and the files it carries: what a wheel
//! set asks of the system, read from the wheels themselves before any image is made, so that
//! the packages that ship those libraries can be resolved with the image's own.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

use crate::{WheelError, WheelProblem};

/// An ELF file's header and program headers lie in its first bytes; these are kept as read,
/// and so is whatever of the dynamic string table falls in them (it usually does).
const PREFIX: u64 = 16 << 20;
/// No dynamic section or dynamic string table of a real library is near these.
const MAX_DYNAMIC: u64 = 1 << 20;
const MAX_STRTAB: u64 = 64 << 20;

/// What one wheel needs and brings, by file name (`libstdc++.so.6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelLibraries {
    /// Every library some ELF file of the wheel names in `DT_NEEDED`.
    pub needed: BTreeSet<String>,
    /// The file name of every ELF file the wheel holds (`libscipy_openblas64_-6bb31eeb.so`):
    /// what its own files, or another wheel's, can find in it (`numpy.libs/`). A file that is
    /// not ELF loads nothing, whatever its name.
    pub carried: BTreeSet<String>,
}

/// Reads `wheel` (named `filename` in errors) for its ELF files' needs. An entry that is not a
/// loadable ELF file is not judged here: the loader never loads it, or the image's own check
/// says so. Memory stays bounded whatever an entry inflates to: each ELF file streams, and
/// only its headers, dynamic section and string table are kept.
pub fn libraries(wheel: impl Read + Seek, filename: &str) -> Result<WheelLibraries, WheelError> {
    let bad = |entry: Option<&str>, reason| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: entry.map(str::to_string),
        reason: Box::new(reason),
    };
    let mut archive = zip::ZipArchive::new(wheel).map_err(|e| bad(None, WheelProblem::NotAZip(e)))?;
    let mut found = WheelLibraries::default();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| bad(None, WheelProblem::Zip(e)))?;
        let name = entry.name().map_err(|e| bad(None, WheelProblem::Zip(e)))?.into_owned();
        if !entry.is_file() || entry.size() < 64 {
            continue;
        }
        let read = |e: std::io::Error| bad(Some(&name), WheelProblem::Unreadable(e));
        let mut stream = Forward::new(entry).map_err(read)?;
        if !stream.prefix.starts_with(b"\x7fELF") {
            continue;
        }
        let needs = dynamic_needs(&mut stream).map_err(read)?;
        drop(stream);
        let needed = match needs {
            Needs::Found(needed) => needed,
            Needs::NotElf => continue,
            // The string table lies before the dynamic section, past the prefix: read again.
            Needs::StrtabAt { needs, offset, size } => {
                let entry = archive.by_index(i).map_err(|e| bad(None, WheelProblem::Zip(e)))?;
                let mut again = Forward { inner: entry, pos: 0, prefix: Vec::new() };
                match again.range(offset, size).map_err(read)? {
                    Some(strtab) => needs.names(&strtab),
                    None => continue,
                }
            }
        };
        found.carried.insert(name.rsplit('/').next().unwrap_or(&name).to_string());
        found.needed.extend(needed);
    }
    Ok(found)
}

/// A stream read forwards only: its first bytes kept, any later range read once, in order.
struct Forward<R> {
    inner: R,
    /// How far `inner` has been read.
    pos: u64,
    prefix: Vec<u8>,
}

impl<R: Read> Forward<R> {
    fn new(mut inner: R) -> std::io::Result<Forward<R>> {
        let mut prefix = Vec::new();
        (&mut inner).take(PREFIX).read_to_end(&mut prefix)?;
        Ok(Forward { inner, pos: prefix.len() as u64, prefix })
    }

    /// The bytes `offset..offset + size`, or `None` where they were passed already or the
    /// stream ends first.
    fn range(&mut self, offset: u64, size: u64) -> std::io::Result<Option<Vec<u8>>> {
        let end = offset.saturating_add(size);
        let kept = self.prefix.len() as u64;
        if end <= kept {
            return Ok(Some(self.prefix[offset as usize..end as usize].to_vec()));
        }
        let mut out = Vec::new();
        let from = if offset < kept && self.pos == kept {
            out.extend_from_slice(&self.prefix[offset as usize..]);
            kept
        } else if offset < self.pos {
            return Ok(None);
        } else {
            offset
        };
        std::io::copy(&mut (&mut self.inner).take(from - self.pos), &mut std::io::sink())?;
        self.pos = from;
        let want = end - from;
        let got = (&mut self.inner).take(want).read_to_end(&mut out)? as u64;
        self.pos += got;
        Ok((got == want).then_some(out))
    }
}

enum Needs {
    NotElf,
    Found(Vec<String>),
    StrtabAt { needs: DynamicNeeds, offset: u64, size: u64 },
}

/// The `DT_NEEDED` entries of a dynamic section: offsets into the string table.
struct DynamicNeeds(Vec<usize>);

impl DynamicNeeds {
    fn names(&self, strtab: &[u8]) -> Vec<String> {
        let name = |at: usize| {
            let rest = strtab.get(at..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            std::str::from_utf8(&rest[..end]).ok().filter(|name| !name.is_empty())
        };
        self.0.iter().filter_map(|&at| name(at)).map(str::to_string).collect()
    }
}

/// Reads an ELF file's needs as it streams past: headers from the prefix, then the dynamic
/// section and its string table wherever the program headers place them.
fn dynamic_needs<R: Read>(stream: &mut Forward<R>) -> std::io::Result<Needs> {
    use goblin::elf::program_header::{PT_DYNAMIC, ProgramHeader};
    let Ok(header) = goblin::elf::Elf::parse_header(&stream.prefix) else { return Ok(Needs::NotElf) };
    let (Ok(container), Ok(endian)) = (header.container(), header.endianness()) else { return Ok(Needs::NotElf) };
    let ctx = goblin::container::Ctx::new(container, endian);
    let Ok(mut headers) = ProgramHeader::parse(&stream.prefix, header.e_phoff as usize, header.e_phnum as usize, ctx)
    else {
        return Ok(Needs::NotElf);
    };
    let Some(dynamic) = headers.iter_mut().find(|h| h.p_type == PT_DYNAMIC) else { return Ok(Needs::Found(vec![])) };
    if dynamic.p_filesz > MAX_DYNAMIC {
        return Ok(Needs::NotElf);
    }
    let Some(bytes) = stream.range(dynamic.p_offset, dynamic.p_filesz)? else { return Ok(Needs::NotElf) };
    // The section as its own buffer: the program header says so, the rest still maps
    // addresses to file offsets (where `DT_STRTAB` points).
    dynamic.p_offset = 0;
    let Ok(Some(parsed)) = goblin::elf::dynamic::Dynamic::parse(&bytes, &headers, ctx) else {
        return Ok(Needs::NotElf);
    };
    let needs = DynamicNeeds(
        parsed.dyns.iter().filter(|d| d.d_tag == goblin::elf::dynamic::DT_NEEDED).map(|d| d.d_val as usize).collect(),
    );
    let (offset, size) = (parsed.info.strtab as u64, parsed.info.strsz as u64);
    if needs.0.is_empty() || size > MAX_STRTAB {
        return Ok(Needs::Found(vec![]));
    }
    match stream.range(offset, size)? {
        Some(strtab) => Ok(Needs::Found(needs.names(&strtab))),
        None => Ok(Needs::StrtabAt { needs, offset, size }),
    }
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
    fn files_that_are_not_elf_are_neither_read_for_needs_nor_carried() {
        // What DT_NEEDED an ELF file names is end-to-end tested with real dynamic sections
        // (tests/e2e/loadable.rs); here, that nothing else is taken for one.
        let bytes = wheel(&[
            ("pkg.libs/libopenblas-1a2b.so", b"not an ELF file, but carried all the same"),
            ("pkg/__init__.py", b"\x7fELF but only its magic and then text, long enough to be read whole......."),
            ("pkg-1.0.dist-info/RECORD", b""),
        ]);
        let found = libraries(Cursor::new(bytes), "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").unwrap();
        assert!(found.needed.is_empty(), "{found:?}");
        assert!(found.carried.is_empty(), "no file of it is ELF: {found:?}");
    }

    /// A 64-bit little-endian shared object whose string table starts at `strtab_at` and whose
    /// dynamic section follows at `dynamic_at` (or comes first, at `strtab_at`, when
    /// `dynamic_first`), padded with zeros between.
    fn elf(needed: &[&str], strtab_at: u64, dynamic_at: u64, dynamic_first: bool) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut offsets = Vec::new();
        for name in needed {
            offsets.push(strings.len() as u64);
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        let (strtab_at, dynamic_at) = match dynamic_first {
            true => (dynamic_at, strtab_at),
            false => (strtab_at, dynamic_at),
        };
        let mut dynamic: Vec<(u64, u64)> = offsets.iter().map(|&at| (1, at)).collect();
        // Addresses equal file offsets: one PT_LOAD maps the whole file at 0.
        dynamic.extend([(5, strtab_at), (10, strings.len() as u64), (0, 0)]);
        let total = (strtab_at + strings.len() as u64).max(dynamic_at + 16 * dynamic.len() as u64);
        let mut out = Vec::with_capacity(total as usize);
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        out.extend_from_slice(&[0; 8]);
        for half in [3u16, 62] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        out.extend_from_slice(&1u32.to_le_bytes());
        for word in [0u64, 64, 0] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        for half in [64u16, 56, 2, 64, 0, 0] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        let dynamic_size = 16 * dynamic.len() as u64;
        for (kind, flags, offset, size) in [(1u32, 5u32, 0u64, total), (2, 6, dynamic_at, dynamic_size)] {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for word in [offset, offset, offset, size, size, 8] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out.resize(total as usize, 0);
        out[strtab_at as usize..][..strings.len()].copy_from_slice(&strings);
        for (i, (tag, value)) in dynamic.iter().enumerate() {
            let at = dynamic_at as usize + 16 * i;
            out[at..at + 8].copy_from_slice(&tag.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    #[test]
    fn needs_are_read_wherever_the_string_table_lies_without_holding_the_file() {
        let needed = ["libstdc++.so.6", "libc.so.6"];
        let far = PREFIX + 4096;
        for (label, bytes) in [
            ("both in the first bytes", elf(&needed, 4096, 8192, false)),
            ("the table before the section, past the first bytes", elf(&needed, far, far + 8192, false)),
            ("the section first, the table after it", elf(&needed, 4096, far, true)),
        ] {
            let wheel = wheel(&[("pkg/_core.so", &bytes), ("pkg.libs/libc.so.6", b"text, not a library")]);
            let found = libraries(Cursor::new(wheel), "pkg-1.0-cp311-cp311-linux_x86_64.whl").unwrap();
            assert_eq!(found.needed, needed.map(String::from).into(), "{label}");
            assert_eq!(found.carried, ["_core.so".to_string()].into(), "{label}: only ELF files are carried");
        }
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_a_bad_wheel_by_name() {
        let error = libraries(Cursor::new(b"PK but no archive".to_vec()), "x-1.0-py3-none-any.whl").unwrap_err();
        assert!(error.to_string().contains("x-1.0-py3-none-any.whl"), "{error}");
    }
}
