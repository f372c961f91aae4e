//! Installing a wheel without pip, as the wheel specification (PEP 427 / binary distribution
//! format) describes: the archive becomes a store tree at the scheme's paths. Every file is
//! checked against RECORD before it counts; an entry that would land outside its directory
//! (`..`, an absolute path, a link) rejects the whole wheel.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};

use base64::Engine;
use composer_store::{EntryKind, Store, Tree, TreeEntry};
use sha2::{Digest, Sha256};

use crate::{WheelError, WheelProblem};

/// Where each part of a wheel goes, as absolute image paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub purelib: String,
    pub scripts: String,
    /// Headers go into `<headers>/<distribution>/`.
    pub headers: String,
    pub data: String,
    /// The interpreter that scripts and launchers run with.
    pub interpreter: String,
}

impl Scheme {
    /// A virtual environment at `root` for Python `version` (`3.11`).
    pub fn venv(root: &str, version: &str) -> Scheme {
        let root = root.trim_end_matches('/');
        Scheme {
            purelib: format!("{root}/lib/python{version}/site-packages"),
            scripts: format!("{root}/bin"),
            headers: format!("{root}/include/site/python{version}"),
            data: root.to_string(),
            interpreter: format!("{root}/bin/python"),
        }
    }

    /// The site directory of a CPython installed under `prefix` (built by the recipe).
    pub fn prefix(prefix: &str, version: &str) -> Scheme {
        let prefix = prefix.trim_end_matches('/');
        Scheme {
            purelib: format!("{prefix}/lib/python{version}/site-packages"),
            scripts: format!("{prefix}/bin"),
            headers: format!("{prefix}/include/python{version}"),
            data: prefix.to_string(),
            interpreter: format!("{prefix}/bin/python3"),
        }
    }

    /// Debian's site directory for locally installed packages, beside the distro's own.
    pub fn system(version: &str) -> Scheme {
        Scheme {
            purelib: format!("/usr/local/lib/python{version}/dist-packages"),
            scripts: "/usr/local/bin".into(),
            headers: format!("/usr/local/include/python{version}"),
            data: "/usr/local".into(),
            interpreter: "/usr/bin/python3".into(),
        }
    }
}

pub struct Installed {
    pub tree: Tree,
    /// Files whose content is a zip entry's deflate data as is: layers can reuse it.
    pub deflated: Vec<Deflated>,
    /// The wheel's METADATA (its core metadata, PEP 658 serves it beside the wheel).
    pub metadata: Vec<u8>,
}

/// Where in the wheel a file's content lies as raw deflate data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflated {
    pub content: composer_store::Hash,
    pub offset: u64,
    pub length: u64,
    pub crc32: u32,
    pub size: u64,
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Installs one wheel; `requested` marks a package the recipe asked for by name (REQUESTED).
pub fn install<R: Read + Seek>(
    store: &Store,
    archive: R,
    filename: &str,
    requested: bool,
    scheme: &Scheme,
) -> Result<Installed, WheelError> {
    let bad = |entry: Option<&str>, reason| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: entry.map(str::to_string),
        reason: Box::new(reason),
    };
    let mut zip = zip::ZipArchive::new(archive).map_err(|e| bad(None, WheelProblem::NotAZip(e)))?;
    let dist_info = find_dist_info(&zip).map_err(|reason| bad(None, reason))?;
    let data_dir = format!("{}.data/", dist_info.trim_end_matches(".dist-info"));
    let record_name = format!("{dist_info}/RECORD");
    let record_text = read_entry(&mut zip, &record_name).map_err(|reason| bad(Some(&record_name), reason))?;
    let mut record = parse_record(&record_text).map_err(|reason| bad(Some(&record_name), reason))?;

    let mut out = Output::new(store, scheme);
    let mut metadata = None;
    let mut entry_points = None;
    let mut deflated = Vec::new();
    for i in 0..zip.len() {
        let (name, is_dir, unix_mode, deflated_at, size) = {
            let entry =
                zip.by_index(i).map_err(|source| bad(None, WheelProblem::UnreadableEntry { index: i, source }))?;
            let name = entry
                .name()
                .map_err(|source| bad(None, WheelProblem::UnreadableName { index: i, source }))?
                .into_owned();
            let deflated_at = (entry.compression() == zip::CompressionMethod::Deflated)
                .then(|| entry.data_start().map(|offset| (offset, entry.compressed_size(), entry.crc32())))
                .flatten();
            (name, entry.is_dir(), entry.unix_mode().unwrap_or(0o644), deflated_at, entry.size())
        };
        check_path(&name).map_err(|reason| bad(Some(&name), reason))?;
        if is_dir {
            continue;
        }
        if unix_mode & S_IFMT == S_IFLNK {
            return Err(bad(Some(&name), WheelProblem::Symlink));
        }
        if name == record_name || name == format!("{dist_info}/RECORD.jws") || name == format!("{dist_info}/RECORD.p7s")
        {
            record.remove(&name);
            continue;
        }
        // Deflated entries are inflated here from their raw bytes, which must be exactly one
        // complete deflate stream: layers reuse those bytes as they are.
        let data = match deflated_at {
            Some((_, length, crc32)) => {
                let mut raw = Vec::with_capacity(capacity_hint(length));
                zip.by_index_raw(i)
                    .map_err(|e| bad(Some(&name), WheelProblem::UnreadableZip(e)))?
                    .read_to_end(&mut raw)
                    .map_err(|e| bad(Some(&name), WheelProblem::Unreadable(e)))?;
                inflate_exactly(&raw, size, crc32).map_err(|reason| bad(Some(&name), reason))?
            }
            None => {
                let mut data = Vec::with_capacity(capacity_hint(size));
                zip.by_index(i)
                    .map_err(|e| bad(Some(&name), WheelProblem::UnreadableZip(e)))?
                    .read_to_end(&mut data)
                    .map_err(|e| bad(Some(&name), WheelProblem::Unreadable(e)))?;
                data
            }
        };
        let expected = record.remove(&name).ok_or_else(|| bad(Some(&name), WheelProblem::NotInRecord))?;
        let actual = record_hash(&data);
        match expected {
            Some(hash) if hash == actual => {}
            Some(hash) => {
                return Err(bad(Some(&name), WheelProblem::HashMismatch { actual, recorded: hash }));
            }
            None => return Err(bad(Some(&name), WheelProblem::NoHash)),
        }
        if name == format!("{dist_info}/METADATA") {
            metadata = Some(data.clone());
        }
        if name == format!("{dist_info}/entry_points.txt") {
            entry_points = Some(String::from_utf8_lossy(&data).into_owned());
        }
        let executable = unix_mode & 0o111 != 0;
        let raw = deflated_at;
        let destination = match name.strip_prefix(&data_dir) {
            None => format!("{}/{name}", scheme.purelib),
            Some(rest) => {
                let (kind, path) = rest.split_once('/').ok_or_else(|| bad(Some(&name), WheelProblem::NotInScheme))?;
                match kind {
                    "purelib" | "platlib" => format!("{}/{path}", scheme.purelib),
                    "scripts" => {
                        let data = rewrite_shebang(&data, &scheme.interpreter);
                        out.file(&format!("{}/{path}", scheme.scripts), data, 0o755)?;
                        continue;
                    }
                    "headers" => {
                        let dist = dist_info.split('-').next().unwrap_or_default();
                        format!("{}/{dist}/{path}", scheme.headers)
                    }
                    "data" => format!("{}/{path}", scheme.data),
                    other => return Err(bad(Some(&name), WheelProblem::UnknownScheme(other.to_string()))),
                }
            }
        };
        let size = data.len() as u64;
        let content = out.file(&destination, data, if executable { 0o755 } else { 0o644 })?;
        if let Some((offset, length, crc32)) = raw {
            deflated.push(Deflated { content, offset, length, crc32, size });
        }
    }
    if let Some(missing) = record.keys().find(|path| !path.ends_with('/')) {
        return Err(bad(Some(missing), WheelProblem::NotInArchive));
    }
    let metadata = metadata.ok_or_else(|| bad(None, WheelProblem::NoMetadataIn(dist_info.clone())))?;

    if let Some(text) = entry_points {
        for (name, target) in
            launchers(&text).map_err(|reason| bad(Some(&format!("{dist_info}/entry_points.txt")), reason))?
        {
            let script = launcher(&scheme.interpreter, &target.0, &target.1);
            out.file(&format!("{}/{name}", scheme.scripts), script.into_bytes(), 0o755)?;
        }
    }
    let site = |file: &str| format!("{}/{dist_info}/{file}", scheme.purelib);
    out.file(&site("INSTALLER"), b"composer\n".to_vec(), 0o644)?;
    if requested {
        out.file(&site("REQUESTED"), Vec::new(), 0o644)?;
    }
    let record = out.record(&site("RECORD"));
    out.file(&site("RECORD"), record.into_bytes(), 0o644)?;
    let tree = out.finish().map_err(|e| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: Some(e.path.clone()),
        reason: Box::new(WheelProblem::Tree(e.reason)),
    })?;
    Ok(Installed { tree, deflated, metadata })
}

/// The one `*.dist-info` directory at the top of the archive that holds WHEEL.
fn find_dist_info<R: Read + Seek>(zip: &zip::ZipArchive<R>) -> Result<String, WheelProblem> {
    let mut found: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .filter_map(|n| n.strip_suffix("/WHEEL").map(str::to_string))
        .filter(|d| d.ends_with(".dist-info") && !d.contains('/'))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(WheelProblem::NoWheelFile),
        _ => Err(WheelProblem::SeveralDistInfo(found)),
    }
}

fn read_entry<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Result<String, WheelProblem> {
    let mut entry = zip.by_name(name).map_err(|_| WheelProblem::Missing)?;
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(WheelProblem::Unreadable)?;
    Ok(text)
}

/// RECORD: `path,sha256=<urlsafe base64>,size` per line; path → hash (without `sha256=`).
fn parse_record(text: &str) -> Result<HashMap<String, Option<String>>, WheelProblem> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut out = HashMap::new();
    for row in reader.records() {
        let row = row.map_err(WheelProblem::NotCsv)?;
        let path = row.get(0).unwrap_or_default().to_string();
        if path.is_empty() {
            continue;
        }
        let hash = match row.get(1).unwrap_or_default() {
            "" => None,
            h => match h.split_once('=') {
                Some(("sha256", digest)) => Some(digest.to_string()),
                Some((algorithm, _)) if algorithm != "md5" && algorithm != "sha1" => {
                    // A stronger hash than sha256 is fine to accept but composer checks sha256.
                    return Err(WheelProblem::OtherHash(algorithm.to_string()));
                }
                _ => return Err(WheelProblem::UnusableHash { hash: h.to_string(), path }),
            },
        };
        out.insert(path, hash);
    }
    Ok(out)
}

fn record_hash(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data))
}

/// Inflates one raw deflate stream that must use every byte of `raw` and give `size` bytes with
/// CRC-32 `crc32`.
/// Sizes in a zip are the archive's word, not a fact: memory is reserved for at most 64 MiB up
/// front (a wheel claiming 4 GiB for a 1 KiB entry then costs nothing), and grows with what is
/// really read.
fn capacity_hint(declared: u64) -> usize {
    declared.min(64 << 20) as usize
}

/// Deflate cannot expand data by more than 1032 to 1.
const MAX_DEFLATE_RATIO: u64 = 1032;

fn inflate_exactly(raw: &[u8], size: u64, crc32: u32) -> Result<Vec<u8>, WheelProblem> {
    if size > (raw.len() as u64 + 1) * MAX_DEFLATE_RATIO {
        return Err(WheelProblem::ClaimsTooMuch { size, raw: raw.len() });
    }
    let mut out = Vec::with_capacity(capacity_hint(size));
    let mut inflater = flate2::Decompress::new(false);
    loop {
        let (consumed, produced) = (inflater.total_in() as usize, out.len());
        out.reserve(64 * 1024);
        let status = inflater
            .decompress_vec(&raw[consumed..], &mut out, flate2::FlushDecompress::Finish)
            .map_err(WheelProblem::NotDeflate)?;
        if status == flate2::Status::StreamEnd {
            break;
        }
        if out.len() as u64 > size {
            return Err(WheelProblem::InflatesTooMuch);
        }
        if inflater.total_in() as usize == consumed && out.len() == produced {
            return Err(WheelProblem::EndsEarly);
        }
    }
    if inflater.total_in() as usize != raw.len() {
        return Err(WheelProblem::TrailingBytes);
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if out.len() as u64 != size || crc.sum() != crc32 {
        return Err(WheelProblem::SizeOrCrc);
    }
    Ok(out)
}

/// An archive path must stay inside the directory it is installed into.
fn check_path(name: &str) -> Result<(), WheelProblem> {
    if name.starts_with('/') {
        return Err(WheelProblem::AbsolutePath);
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(WheelProblem::BadCharacter);
    }
    if name.trim_end_matches('/').split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(WheelProblem::Escapes);
    }
    Ok(())
}

/// `#!python` (or `#!pythonw`) becomes the target interpreter, as installers do.
fn rewrite_shebang(data: &[u8], interpreter: &str) -> Vec<u8> {
    let first_line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let first = &data[..first_line_end];
    if first == b"#!python" || first == b"#!pythonw" || first == b"#!python\r" {
        let mut out = format!("#!{interpreter}").into_bytes();
        out.extend_from_slice(&data[first_line_end..]);
        return out;
    }
    data.to_vec()
}

/// Console and GUI scripts from entry_points.txt: name → (module, attribute path).
fn launchers(text: &str) -> Result<BTreeMap<String, (String, String)>, WheelProblem> {
    let mut section = "";
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else { continue };
        let name = name.trim();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(WheelProblem::EntryPointName(name.to_string()));
        }
        let value = value.split('[').next().unwrap_or_default().trim();
        let (module, attribute) = value.split_once(':').unwrap_or((value, ""));
        let valid = |s: &str| s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if !valid(module.trim()) || (!attribute.is_empty() && !valid(attribute.trim())) {
            return Err(WheelProblem::EntryPointForm { name: name.to_string(), value: value.to_string() });
        }
        out.insert(name.to_string(), (module.trim().to_string(), attribute.trim().to_string()));
    }
    Ok(out)
}

/// A launcher script: imports the entry point and exits with what it returns.
fn launcher(interpreter: &str, module: &str, attribute: &str) -> String {
    let (import, call) = if attribute.is_empty() {
        (format!("import {module}"), module.to_string())
    } else {
        let head = attribute.split('.').next().unwrap_or(attribute);
        (format!("from {module} import {head}"), attribute.to_string())
    };
    let call = if attribute.is_empty() { format!("{call}.main") } else { call };
    format!(
        "#!{interpreter}\nimport re\nimport sys\n{import}\nif __name__ == \"__main__\":\n    \
         sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit({call}())\n"
    )
}

/// The tree being written, and the RECORD lines of what went into it.
struct Output<'a> {
    store: &'a Store,
    purelib: String,
    entries: BTreeMap<String, TreeEntry>,
    record: Vec<(String, String, u64)>,
}

impl<'a> Output<'a> {
    fn new(store: &'a Store, scheme: &Scheme) -> Output<'a> {
        Output { store, purelib: scheme.purelib.clone(), entries: BTreeMap::new(), record: Vec::new() }
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<composer_store::Hash, WheelError> {
        let path = path.trim_start_matches('/').to_string();
        let content = self.store.put_content(&data)?;
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            self.entries.entry(dir.to_string()).or_insert_with(|| entry(dir, EntryKind::Dir, 0o755));
            parent = dir;
        }
        self.record.push((
            relative_to(&path, self.purelib.trim_start_matches('/')),
            record_hash(&data),
            data.len() as u64,
        ));
        self.entries.insert(
            path.clone(),
            entry(&path, EntryKind::File { content, size: data.len() as u64, packed: None }, mode),
        );
        Ok(content)
    }

    /// The rewritten RECORD: installed paths relative to site-packages, RECORD itself unhashed.
    fn record(&mut self, record_path: &str) -> String {
        let own = relative_to(record_path.trim_start_matches('/'), self.purelib.trim_start_matches('/'));
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        self.record.sort();
        for (path, hash, size) in &self.record {
            writer.write_record([path.as_str(), &format!("sha256={hash}"), &size.to_string()]).expect("in memory");
        }
        writer.write_record([own.as_str(), "", ""]).expect("in memory");
        String::from_utf8(writer.into_inner().expect("in memory")).expect("paths are UTF-8")
    }

    fn finish(self) -> Result<Tree, composer_store::TreeError> {
        let mut tree = Tree { entries: self.entries.into_values().collect() };
        tree.normalize()?;
        Ok(tree)
    }
}

/// A root-owned tree entry (what a wheel installs, and the venv around it).
pub fn entry(path: &str, kind: EntryKind, mode: u32) -> TreeEntry {
    TreeEntry { path: path.to_string(), kind, mode, uid: 0, gid: 0, mtime: 0, xattrs: vec![] }
}

/// `path` as seen from directory `base` (both relative to the image root).
fn relative_to(path: &str, base: &str) -> String {
    let path: Vec<&str> = path.split('/').collect();
    let base: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = std::iter::repeat_n("..", base.len() - common).collect();
    out.extend(&path[common..]);
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_site_packages() {
        let site = "opt/venv/lib/python3.11/site-packages";
        assert_eq!(relative_to("opt/venv/lib/python3.11/site-packages/a/b.py", site), "a/b.py");
        assert_eq!(relative_to("opt/venv/bin/x", site), "../../../bin/x");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for name in ["../evil", "a/../../b", "/etc/passwd", "a//b", "a\\..\\b", "./a"] {
            assert!(check_path(name).is_err(), "{name}");
        }
        assert!(check_path("pkg/sub/mod.py").is_ok());
    }

    #[test]
    fn launchers_import_and_call_the_entry_point() {
        let eps = launchers("[console_scripts]\nfoo = pkg.cli:main.run [extra]\n[other]\nx = y:z\n").unwrap();
        assert_eq!(eps["foo"], ("pkg.cli".to_string(), "main.run".to_string()));
        assert_eq!(eps.len(), 1);
        let script = launcher("/opt/venv/bin/python", "pkg.cli", "main.run");
        assert!(script.starts_with("#!/opt/venv/bin/python\n"));
        assert!(script.contains("from pkg.cli import main\n") && script.contains("sys.exit(main.run())"));
        assert!(launchers("[console_scripts]\n../x = a:b\n").is_err());
        assert!(launchers("[console_scripts]\nx = a;rm:b\n").is_err());
    }

    #[test]
    fn deflate_data_must_be_exactly_one_stream() {
        use std::io::Write;
        let data = b"hello hello hello hello".repeat(1000);
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data).unwrap();
        let raw = encoder.finish().unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        assert_eq!(inflate_exactly(&raw, data.len() as u64, crc.sum()).unwrap(), data);
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(
            inflate_exactly(&trailing, data.len() as u64, crc.sum()).unwrap_err().to_string().contains("after the end")
        );
        assert!(inflate_exactly(&raw[..raw.len() - 3], data.len() as u64, crc.sum()).is_err());
        assert!(inflate_exactly(&raw, data.len() as u64, crc.sum() ^ 1).unwrap_err().to_string().contains("CRC-32"));
    }

    #[test]
    fn shebangs_point_at_the_target_interpreter() {
        assert_eq!(rewrite_shebang(b"#!python\nprint(1)\n", "/usr/bin/python3"), b"#!/usr/bin/python3\nprint(1)\n");
        assert_eq!(rewrite_shebang(b"#!/bin/sh\necho\n", "/usr/bin/python3"), b"#!/bin/sh\necho\n");
    }
}
