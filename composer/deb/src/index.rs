//! A `Packages` index: every binary package of one suite, component set and architecture.

use composer_store::Sha256;
use rustc_hash::FxHashMap;

use crate::relation::{Alternatives, Relation, parse_field, parse_relation};
use crate::{DebError, IndexProblem};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiArch {
    No,
    Same,
    Foreign,
    Allowed,
}

/// One package of an index. Fields borrow the decompressed index text (a suite's index is about
/// 45 MB per architecture; copying it into 63 000 structs cost more time and memory than the
/// solver). Relations are parsed when the solver asks for them, for the few hundred packages it
/// visits; `Provides` is parsed up front because it builds the provider map.
#[derive(Debug, Clone)]
pub struct Package<'t> {
    pub name: &'t str,
    pub version: &'t str,
    pub architecture: &'t str,
    pub multi_arch: MultiArch,
    pub essential: bool,
    pub source: &'t str,
    pre_depends: &'t str,
    depends: &'t str,
    conflicts: &'t str,
    breaks: &'t str,
    pub provides: Vec<Relation>,
    pub filename: &'t str,
    pub size: u64,
    /// As the index spells it: checked by [`Package::sha256`] for the packages a resolution
    /// keeps, not for the 60,000 it passes over.
    sha256_hex: &'t str,
    what: &'t str,
}

impl Package<'_> {
    fn bad(&self, reason: impl Into<IndexProblem>) -> DebError {
        DebError::Index { what: format!("{} (package {})", self.what, self.name), reason: reason.into() }
    }

    /// The package file's SHA-256, as the signed index gives it.
    pub fn sha256(&self) -> Result<Sha256, DebError> {
        self.sha256_hex.parse().map_err(|r| self.bad(IndexProblem::BadSha256(r)))
    }

    /// Orders packages by their SHA-256 text: a tie-break that never depends on the index's
    /// order (the index spells digests in lower case, so this is the digests' own order).
    pub fn sha256_order(&self, other: &Package<'_>) -> std::cmp::Ordering {
        self.sha256_hex.cmp(other.sha256_hex)
    }

    /// `Pre-Depends` and `Depends` together: both must hold for the package to work.
    pub fn depends(&self) -> Result<Vec<Alternatives>, DebError> {
        let mut groups = parse_field(self.pre_depends).map_err(|r| self.bad(r))?;
        groups.extend(parse_field(self.depends).map_err(|r| self.bad(r))?);
        Ok(groups)
    }

    /// `Conflicts` and `Breaks`: composer installs nothing half-configured, so both exclude.
    pub fn conflicts(&self) -> Result<Vec<Relation>, DebError> {
        let mut all: Vec<Relation> =
            parse_field(self.conflicts).map_err(|r| self.bad(r))?.into_iter().flatten().collect();
        all.extend(parse_field(self.breaks).map_err(|r| self.bad(r))?.into_iter().flatten());
        Ok(all)
    }
}

/// The fields resolution reads, by their slot in a paragraph's field array.
const FIELDS: usize = 14;
const PACKAGE: usize = 0;
const VERSION: usize = 1;
const ARCHITECTURE: usize = 2;
const MULTI_ARCH: usize = 3;
const ESSENTIAL: usize = 4;
const SOURCE: usize = 5;
const DEPENDS: usize = 6;
const PRE_DEPENDS: usize = 7;
const CONFLICTS: usize = 8;
const BREAKS: usize = 9;
const PROVIDES: usize = 10;
const FILENAME: usize = 11;
const SIZE: usize = 12;
const SHA256: usize = 13;

/// The slot and value of a field line resolution reads; `None` for any other line. The first
/// byte picks the few names to try, so that most lines (`Description`, `Maintainer`, `MD5sum`...)
/// are passed over without looking for their colon.
fn field(line: &str) -> Option<(usize, &str)> {
    let names: &[(&str, usize)] = match line.as_bytes().first()? {
        b'P' => &[("Package:", PACKAGE), ("Pre-Depends:", PRE_DEPENDS), ("Provides:", PROVIDES)],
        b'V' => &[("Version:", VERSION)],
        b'A' => &[("Architecture:", ARCHITECTURE)],
        b'M' => &[("Multi-Arch:", MULTI_ARCH)],
        b'E' => &[("Essential:", ESSENTIAL)],
        b'S' => &[("Source:", SOURCE), ("Size:", SIZE), ("SHA256:", SHA256)],
        b'D' => &[("Depends:", DEPENDS)],
        b'C' => &[("Conflicts:", CONFLICTS)],
        b'B' => &[("Breaks:", BREAKS)],
        b'F' => &[("Filename:", FILENAME)],
        _ => return None,
    };
    names.iter().find_map(|(name, slot)| line.strip_prefix(name).map(|value| (*slot, value)))
}

#[derive(Debug, Default)]
pub struct PackageIndex<'t> {
    pub packages: Vec<Package<'t>>,
    pub by_name: FxHashMap<&'t str, Vec<usize>>,
    /// Virtual (and real) name → packages providing it.
    pub providers: FxHashMap<String, Vec<usize>>,
}

impl<'t> PackageIndex<'t> {
    /// Parses `Packages` text, keeping packages of `arch` and `all`.
    ///
    /// One pass over the lines (a suite's index is some 50 MB per architecture, and reading it is
    /// most of a cold resolution): a field line fills its slot, an empty line ends the paragraph;
    /// continuation lines (a long `Description`) are skipped, as are the fields not asked for.
    pub fn parse(&mut self, text: &'t str, arch: &str, what: &'t str) -> Result<(), DebError> {
        // About 800 bytes per paragraph in Debian's indexes: the tables are sized once instead
        // of rehashed a dozen times on the way to 60,000 entries.
        let expected = text.len() / 800;
        self.packages.reserve(expected);
        self.by_name.reserve(expected);
        let mut fields: [Option<&'t str>; FIELDS] = [None; FIELDS];
        let mut open = false;
        let mut start = 0;
        let bytes = text.as_bytes();
        // Lines end at `\n` (a byte that never occurs inside a UTF-8 sequence), so the slices
        // stay on character boundaries.
        let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
        for end in ends {
            let line = &text[start..end];
            start = end + 1;
            match line.as_bytes().first() {
                None => {
                    if open {
                        self.paragraph(&fields, arch, what)?;
                        fields = [None; FIELDS];
                        open = false;
                    }
                }
                Some(b' ' | b'\t') => {}
                Some(_) => {
                    open = true;
                    if let Some((slot, value)) = field(line) {
                        fields[slot] = Some(value.trim());
                    }
                }
            }
        }
        if open {
            self.paragraph(&fields, arch, what)?;
        }
        Ok(())
    }

    fn paragraph(&mut self, fields: &[Option<&'t str>; FIELDS], arch: &str, what: &'t str) -> Result<(), DebError> {
        let Some(name) = fields[PACKAGE] else { return Ok(()) };
        let architecture = fields[ARCHITECTURE].unwrap_or("");
        if architecture != arch && architecture != "all" {
            return Ok(());
        }
        let bad = |reason: IndexProblem| DebError::Index { what: format!("{what} (package {name})"), reason };
        let provides =
            parse_field(fields[PROVIDES].unwrap_or("")).map_err(|e| bad(e.into()))?.into_iter().flatten().collect();
        let package = Package {
            name,
            version: fields[VERSION].ok_or_else(|| bad(IndexProblem::NoField("Version")))?,
            architecture,
            multi_arch: match fields[MULTI_ARCH] {
                Some("same") => MultiArch::Same,
                Some("foreign") => MultiArch::Foreign,
                Some("allowed") => MultiArch::Allowed,
                _ => MultiArch::No,
            },
            essential: fields[ESSENTIAL] == Some("yes"),
            source: fields[SOURCE].map(|s| s.split_whitespace().next().unwrap_or(name)).unwrap_or(name),
            pre_depends: fields[PRE_DEPENDS].unwrap_or(""),
            depends: fields[DEPENDS].unwrap_or(""),
            conflicts: fields[CONFLICTS].unwrap_or(""),
            breaks: fields[BREAKS].unwrap_or(""),
            provides,
            filename: fields[FILENAME].ok_or_else(|| bad(IndexProblem::NoField("Filename")))?,
            size: fields[SIZE].and_then(|s| s.parse().ok()).ok_or_else(|| bad(IndexProblem::NoField("Size")))?,
            sha256_hex: fields[SHA256].ok_or_else(|| bad(IndexProblem::NoField("SHA256")))?,
            what,
        };
        if package.filename.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(bad(IndexProblem::UnsafeFilename(package.filename.to_string())));
        }
        self.push(package);
        Ok(())
    }

    pub fn push(&mut self, package: Package<'t>) {
        let index = self.packages.len();
        self.by_name.entry(package.name).or_default().push(index);
        for provided in &package.provides {
            self.providers.entry(provided.name.clone()).or_default().push(index);
        }
        self.packages.push(package);
    }

    /// The package and virtual names most like `name`, best first, for "did you mean": at most
    /// `count`, and none that are far off (Jaro–Winkler below 0.8, as clap's suggestions).
    pub fn nearest_names(&self, name: &str, count: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .by_name
            .keys()
            .copied()
            .chain(self.providers.keys().map(String::as_str))
            .filter(|candidate| *candidate != name)
            .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
            .filter(|(score, _)| *score >= 0.8)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(count).map(|(_, candidate)| candidate.to_string()).collect()
    }

    /// Sorts every candidate list highest version first, so the result never depends on the
    /// order of the index files.
    pub fn finish(&mut self) {
        let packages = &self.packages;
        let order = |a: &usize, b: &usize| {
            let (pa, pb) = (&packages[*a], &packages[*b]);
            crate::version::compare(pb.version, pa.version)
                .then_with(|| pa.name.cmp(pb.name))
                .then_with(|| pa.sha256_order(pb))
        };
        for list in self.by_name.values_mut().chain(self.providers.values_mut()) {
            list.sort_by(order);
            list.dedup_by(|a, b| packages[*a].sha256_hex == packages[*b].sha256_hex);
        }
    }
}

/// The run-time library packages of a development package: the dependencies of `libfoo-dev`
/// built from its own source that are shared libraries (`Multi-Arch: same`, not `-dev`), e.g.
/// `libssl3` for `libssl-dev`. A program compiled against the -dev package needs them at run
/// time; `ncurses-bin` (same source, `Multi-Arch: foreign`) and `libc6-dev` (other source) are
/// not among them. Unknown names give nothing: resolution reports those.
pub fn runtime_libraries(index: &PackageIndex<'_>, dev: &str) -> Result<Vec<String>, DebError> {
    let Some(&first) = index.by_name.get(dev).and_then(|c| c.first()) else { return Ok(Vec::new()) };
    let package = &index.packages[first];
    let mut out = Vec::new();
    for group in package.depends()? {
        for relation in &group {
            let library =
                index.by_name.get(relation.name.as_str()).and_then(|c| c.first()).map(|&i| &index.packages[i]).filter(
                    |l| l.source == package.source && l.multi_arch == MultiArch::Same && !l.name.ends_with("-dev"),
                );
            if let Some(library) = library {
                out.push(library.name.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parses one relation for a top-level request (`python3`, `python3 (>= 3.11)`, `pkg=1.2-3`).
pub fn parse_request(text: &str) -> Option<Relation> {
    match text.split_once('=') {
        Some((name, version)) if !name.contains('(') => {
            parse_relation(&format!("{} (= {})", name.trim(), version.trim()))
        }
        _ => parse_relation(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraph(name: &str, source: &str, multi_arch: &str, depends: &str) -> String {
        format!(
            "Package: {name}\nSource: {source}\nVersion: 1.0-1\nArchitecture: amd64\nMulti-Arch: {multi_arch}\n\
             Depends: {depends}\nFilename: pool/main/{name}_1.0-1_amd64.deb\nSize: 1\nSHA256: {}\n",
            "0".repeat(64)
        )
    }

    #[test]
    fn a_bad_digest_is_an_error_for_the_package_that_is_kept_and_only_for_it() {
        let good = paragraph("zlib1g", "zlib", "same", "libc6");
        let bad = paragraph("libc6", "glibc", "same", "").replace(&"0".repeat(64), "not-a-digest");
        let text = [good, bad].join("\n");
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "fixture").unwrap();
        index.finish();
        let package = |name: &str| &index.packages[index.by_name[name][0]];
        assert_eq!(package("zlib1g").sha256().unwrap(), Sha256([0; 32]));
        let error = package("libc6").sha256().unwrap_err().to_string();
        assert!(error.contains("fixture (package libc6)") && error.contains("SHA256"), "{error}");
    }

    #[test]
    fn a_dev_package_names_the_shared_libraries_of_its_own_source() {
        let text = [
            paragraph(
                "libncurses-dev",
                "ncurses",
                "same",
                "libtinfo6 (= 1.0-1), libncursesw6 (= 1.0-1), libc6-dev | libc-dev, ncurses-bin (>= 1.0)",
            ),
            paragraph("libtinfo6", "ncurses", "same", "libc6"),
            paragraph("libncursesw6", "ncurses", "same", "libtinfo6"),
            paragraph("ncurses-bin", "ncurses", "foreign", "libc6"),
            paragraph("libc6-dev", "glibc", "same", "libc6"),
            paragraph("libc6", "glibc", "same", ""),
            paragraph("zlib1g-dev", "zlib", "same", "zlib1g (= 1.0-1), libc6-dev | libc-dev"),
            paragraph("zlib1g", "zlib", "same", "libc6"),
        ]
        .join("\n");
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "fixture").unwrap();
        index.finish();
        assert_eq!(runtime_libraries(&index, "libncurses-dev").unwrap(), ["libncursesw6", "libtinfo6"]);
        assert_eq!(runtime_libraries(&index, "zlib1g-dev").unwrap(), ["zlib1g"]);
        assert!(runtime_libraries(&index, "no-such-dev").unwrap().is_empty());
    }
}
