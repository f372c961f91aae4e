//! Built wheels made portable, as `auditwheel repair` does for the wheels it accepts: a build
//! backend names what it built for the machine it ran on (`linux_x86_64`), which pip on another
//! machine will not take. A wheel whose binaries are for the target's architecture and need no
//! library beyond the C library (and those the wheel carries) is retagged with the target's
//! portable platform tag (`musllinux_1_2_x86_64`); one that needs more is refused by name,
//! since copying libraries into a wheel is not done here.

use std::collections::BTreeSet;
use std::io::{Cursor, Read, Write};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{WheelError, WheelProblem};

/// A wheel under its new name.
#[derive(Debug)]
pub struct Retagged {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// What makes a wheel a musllinux one on a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MusllinuxPolicy {
    /// `musllinux_1_2_aarch64`.
    pub platform_tag: String,
    /// The machine its binaries are for: `aarch64`.
    pub machine: &'static str,
    /// The one library it may need from the system (auditwheel's musllinux policy): musl's,
    /// by the name Alpine gives it, `libc.musl-aarch64.so.1`.
    pub libc: String,
}

/// Retags `wheel` (named `filename`, its bytes) from `linux_<machine>` to the policy's platform
/// tag after checking its ELF files: `None` when it is not a `linux_<machine>` wheel (a pure
/// wheel, or one already portable).
pub fn musllinux(wheel: &[u8], filename: &str, policy: &MusllinuxPolicy) -> Result<Option<Retagged>, WheelError> {
    let (platform_tag, machine) = (policy.platform_tag.as_str(), policy.machine);
    let bad = |entry: Option<&str>, reason| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: entry.map(str::to_string),
        reason: Box::new(reason),
    };
    let Some(stem) = filename.strip_suffix(".whl") else { return Err(bad(None, WheelProblem::NotAWheelName)) };
    let (head, platform) = stem.rsplit_once('-').ok_or_else(|| bad(None, WheelProblem::NotAWheelName))?;
    if platform != format!("linux_{machine}") {
        return Ok(None);
    }
    let new_name = format!("{head}-{platform_tag}.whl");

    let mut archive = zip::ZipArchive::new(Cursor::new(wheel)).map_err(|e| bad(None, WheelProblem::NotAZip(e)))?;
    check_binaries(&mut archive, policy, &bad)?;

    // The new WHEEL first: RECORD, wherever it is in the archive, must hash it.
    let dist_info_file = |name: &str| -> Option<String> {
        name.split_once(".dist-info/").filter(|(dir, _)| !dir.contains('/')).map(|(_, f)| f.to_string())
    };
    let mut wheel_file = None;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(None, WheelProblem::Zip(e)))?;
        let name = entry.name().map_err(|e| bad(None, WheelProblem::Zip(e)))?.into_owned();
        if dist_info_file(&name).as_deref() == Some("WHEEL") {
            let text = read_text(&mut entry, &name, &bad)?;
            wheel_file = Some((name, retag_wheel_file(&text, platform, platform_tag)));
            break;
        }
    }
    let (wheel_name, wheel_text) = wheel_file.ok_or_else(|| bad(None, WheelProblem::NoWheelFile))?;

    let mut out = zip::ZipWriter::new(Cursor::new(Vec::with_capacity(wheel.len())));
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(None, WheelProblem::Zip(e)))?;
        let name = entry.name().map_err(|e| bad(None, WheelProblem::Zip(e)))?.into_owned();
        let new_text = match dist_info_file(&name).as_deref() {
            Some("WHEEL") if name == wheel_name => Some(wheel_text.clone()),
            Some("RECORD") => {
                let text = read_text(&mut entry, &name, &bad)?;
                Some(update_record(&text, &[(wheel_name.as_str(), wheel_text.as_bytes())]))
            }
            _ => None,
        };
        let write_err = |e: zip::result::ZipError| bad(Some(&name), WheelProblem::CannotWrite(e));
        match new_text {
            None => out.raw_copy_file(entry).map_err(write_err)?,
            Some(text) => {
                // The entry keeps its time and mode: the same wheel in gives the same bytes out.
                let mut options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .unix_permissions(entry.unix_mode().unwrap_or(0o644));
                if let Some(time) = entry.last_modified() {
                    options = options.last_modified_time(time);
                }
                drop(entry);
                out.start_file(name.as_str(), options).map_err(write_err)?;
                out.write_all(text.as_bytes()).map_err(|e| bad(Some(&name), WheelProblem::CannotWriteIo(e)))?;
            }
        }
    }
    let bytes = out.finish().map_err(|e| bad(None, WheelProblem::CannotWrite(e)))?.into_inner();
    Ok(Some(Retagged { filename: new_name, bytes }))
}

fn read_text(
    entry: &mut impl Read,
    name: &str,
    bad: &dyn Fn(Option<&str>, WheelProblem) -> WheelError,
) -> Result<String, WheelError> {
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(|e| bad(Some(name), WheelProblem::NotUtf8(e)))?;
    Ok(text)
}

/// Every ELF file of the wheel is for `machine` and needs only the C library or files of the
/// wheel itself.
fn check_binaries(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    policy: &MusllinuxPolicy,
    bad: &dyn Fn(Option<&str>, WheelProblem) -> WheelError,
) -> Result<(), WheelError> {
    let machine = policy.machine;
    let mut carried = BTreeSet::new();
    let mut needs: Vec<(String, String)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(None, WheelProblem::Zip(e)))?;
        let name = entry.name().map_err(|e| bad(None, WheelProblem::Zip(e)))?.into_owned();
        if !entry.is_file() {
            continue;
        }
        let mut magic = [0u8; 4];
        if entry.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
            continue;
        }
        let mut bytes = magic.to_vec();
        entry.read_to_end(&mut bytes).map_err(|e| bad(Some(&name), WheelProblem::Unreadable(e)))?;
        let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| bad(Some(&name), WheelProblem::NotElf(e)))?;
        let built_for = elf_machine(elf.header.e_machine);
        if built_for != Some(machine) {
            let built_for = built_for.unwrap_or("another architecture").to_string();
            return Err(bad(Some(&name), WheelProblem::OtherMachine { built_for, machine: machine.to_string() }));
        }
        carried.insert(name.rsplit('/').next().unwrap_or(&name).to_string());
        needs.extend(elf.libraries.iter().map(|l| (name.clone(), l.to_string())));
    }
    for (file, library) in needs {
        if library != policy.libc && !carried.contains(&library) {
            return Err(bad(Some(&file), WheelProblem::ForeignLibrary(library)));
        }
    }
    Ok(())
}

fn elf_machine(e_machine: u16) -> Option<&'static str> {
    use goblin::elf::header::*;
    Some(match e_machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_ARM => "armv7l",
        EM_386 => "i686",
        EM_PPC64 => "ppc64le",
        EM_S390 => "s390x",
        EM_RISCV => "riscv64",
        _ => return None,
    })
}

/// The `.dist-info/WHEEL` text with each `Tag:` line's platform replaced.
fn retag_wheel_file(text: &str, old: &str, new: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("Tag:").map(str::trim) {
            Some(tag) => match tag.strip_suffix(old) {
                Some(rest) => format!("Tag: {rest}{new}\n"),
                None => format!("{line}\n"),
            },
            None => format!("{line}\n"),
        })
        .collect()
}

/// The RECORD text with the hash and size of each rewritten file brought up to date.
fn update_record(text: &str, changed: &[(&str, &[u8])]) -> String {
    text.lines()
        .map(|line| {
            let path = line.split(',').next().unwrap_or_default();
            match changed.iter().find(|(name, _)| *name == path) {
                Some((name, bytes)) => {
                    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
                    format!("{name},sha256={digest},{}\n", bytes.len())
                }
                None => format!("{line}\n"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header and nothing else: a binary that needs no library.
    fn bare_elf(e_machine: u16) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little endian
        elf[6] = 1; // version
        elf[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        elf[18..20].copy_from_slice(&e_machine.to_le_bytes());
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf
    }

    fn policy(machine: &'static str) -> MusllinuxPolicy {
        MusllinuxPolicy {
            platform_tag: format!("musllinux_1_2_{machine}"),
            machine,
            libc: format!("libc.musl-{machine}.so.1"),
        }
    }

    fn wheel(extension: &[u8]) -> Vec<u8> {
        wheel_in_order(extension, false)
    }

    /// A wheel with its RECORD last, as every backend writes it, or (`record_first`) not.
    fn wheel_in_order(extension: &[u8], record_first: bool) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        let mut files: [(&str, &[u8]); 3] = [
            ("ext/_speedups.so", extension),
            ("ext-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp313-cp313-linux_x86_64\n"),
            (
                "ext-1.0.dist-info/RECORD",
                b"ext/_speedups.so,sha256=x,64\next-1.0.dist-info/WHEEL,sha256=old,70\next-1.0.dist-info/RECORD,,\n",
            ),
        ];
        if record_first {
            files.swap(0, 2);
        }
        for (name, bytes) in files {
            out.start_file(name, options).unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    fn entry(bytes: &[u8], name: &str) -> Vec<u8> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut out = Vec::new();
        archive.by_name(name).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_wheel_needing_only_libc_is_retagged_musllinux_with_its_record_kept_true() {
        let built = wheel(&bare_elf(goblin::elf::header::EM_X86_64));
        let name = "ext-1.0-cp313-cp313-linux_x86_64.whl";
        let fixed = musllinux(&built, name, &policy("x86_64")).unwrap().unwrap();
        assert_eq!(fixed.filename, "ext-1.0-cp313-cp313-musllinux_1_2_x86_64.whl");
        let wheel_file = entry(&fixed.bytes, "ext-1.0.dist-info/WHEEL");
        assert!(String::from_utf8_lossy(&wheel_file).contains("Tag: cp313-cp313-musllinux_1_2_x86_64\n"));
        let record = String::from_utf8(entry(&fixed.bytes, "ext-1.0.dist-info/RECORD")).unwrap();
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&wheel_file));
        assert!(
            record.contains(&format!("ext-1.0.dist-info/WHEEL,sha256={digest},{}\n", wheel_file.len())),
            "{record}"
        );
        assert!(record.starts_with("ext/_speedups.so,sha256=x,64\n"), "{record}");
        assert_eq!(entry(&fixed.bytes, "ext/_speedups.so"), bare_elf(goblin::elf::header::EM_X86_64));
        // The same wheel in, the same bytes out.
        assert_eq!(musllinux(&built, name, &policy("x86_64")).unwrap().unwrap().bytes, fixed.bytes);
    }

    #[test]
    fn the_record_hashes_the_new_wheel_file_wherever_it_stands() {
        let built = wheel_in_order(&bare_elf(goblin::elf::header::EM_X86_64), true);
        let name = "ext-1.0-cp313-cp313-linux_x86_64.whl";
        let fixed = musllinux(&built, name, &policy("x86_64")).unwrap().unwrap();
        let wheel_file = entry(&fixed.bytes, "ext-1.0.dist-info/WHEEL");
        let record = String::from_utf8(entry(&fixed.bytes, "ext-1.0.dist-info/RECORD")).unwrap();
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&wheel_file));
        assert!(record.contains(&format!("WHEEL,sha256={digest},")), "{record}");
    }

    #[test]
    fn pure_and_already_portable_wheels_are_left_as_they_are() {
        let built = wheel(b"not elf");
        assert!(musllinux(&built, "ext-1.0-py3-none-any.whl", &policy("x86_64")).unwrap().is_none());
        let name = "ext-1.0-cp313-cp313-musllinux_1_1_x86_64.whl";
        assert!(musllinux(&built, name, &policy("x86_64")).unwrap().is_none());
    }

    #[test]
    fn binaries_of_another_architecture_or_needing_other_libraries_are_refused() {
        let name = "ext-1.0-cp313-cp313-linux_x86_64.whl";
        let arm = wheel(&bare_elf(goblin::elf::header::EM_AARCH64));
        let error = musllinux(&arm, name, &policy("x86_64")).unwrap_err();
        assert!(error.to_string().ends_with("entry ext/_speedups.so: is built for aarch64, not x86_64"), "{error}");
        // This test's own executable needs glibc's libraries (libgcc_s, libc.so.6).
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let machine = elf_machine(goblin::elf::Elf::parse(&exe).unwrap().header.e_machine).unwrap();
        let name = format!("ext-1.0-cp313-cp313-linux_{machine}.whl");
        let error = musllinux(&wheel(&exe), &name, &policy(machine)).unwrap_err();
        let said = error.to_string();
        assert!(
            said.contains(": needs lib") && said.contains(", which is neither musl's C library nor in the wheel"),
            "{said}"
        );
    }
}
