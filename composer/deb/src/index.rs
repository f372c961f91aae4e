//! A `Packages` index: every binary package of one suite, component set and architecture.

use std::collections::HashMap;

use composer_store::Sha256;

use crate::DebError;
use crate::relation::{Alternatives, Relation, parse_field, parse_relation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiArch {
    No,
    Same,
    Foreign,
    Allowed,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    pub source: String,
    /// `Pre-Depends` and `Depends` together: both must hold for the package to work.
    pub depends: Vec<Alternatives>,
    /// `Conflicts` and `Breaks`: composer installs nothing half-configured, so both exclude.
    pub conflicts: Vec<Relation>,
    pub provides: Vec<Relation>,
    pub filename: String,
    pub size: u64,
    pub sha256: Sha256,
}

const FIELDS: [&str; 14] = [
    "Package",
    "Version",
    "Architecture",
    "Multi-Arch",
    "Essential",
    "Source",
    "Depends",
    "Pre-Depends",
    "Conflicts",
    "Breaks",
    "Provides",
    "Filename",
    "Size",
    "SHA256",
];

#[derive(Debug, Default)]
pub struct PackageIndex {
    pub packages: Vec<Package>,
    pub by_name: HashMap<String, Vec<usize>>,
    /// Virtual (and real) name → packages providing it.
    pub providers: HashMap<String, Vec<usize>>,
}

impl PackageIndex {
    /// Parses `Packages` text, keeping packages of `arch` and `all`.
    pub fn parse(&mut self, text: &str, arch: &str, what: &str) -> Result<(), DebError> {
        for paragraph in text.split("\n\n") {
            if paragraph.trim().is_empty() {
                continue;
            }
            // Only the fields resolution needs; a match beats a map per paragraph (63k of them).
            let mut fields: [Option<&str>; FIELDS.len()] = [None; FIELDS.len()];
            for line in paragraph.lines() {
                if line.starts_with([' ', '\t']) {
                    continue;
                }
                if let Some((k, v)) = line.split_once(':')
                    && let Some(slot) = FIELDS.iter().position(|f| *f == k)
                {
                    fields[slot] = Some(v.trim());
                }
            }
            let get = |k: &str| FIELDS.iter().position(|f| *f == k).and_then(|i| fields[i]);
            let Some(name) = get("Package") else { continue };
            let architecture = get("Architecture").unwrap_or("");
            if architecture != arch && architecture != "all" {
                continue;
            }
            let bad = |reason: String| DebError::Index { what: format!("{what} (package {name})"), reason };
            let relations = |key: &str| parse_field(get(key).unwrap_or("")).map_err(&bad);
            let mut depends = relations("Pre-Depends")?;
            depends.extend(relations("Depends")?);
            let mut conflicts: Vec<Relation> = relations("Conflicts")?.into_iter().flatten().collect();
            conflicts.extend(relations("Breaks")?.into_iter().flatten());
            let provides = relations("Provides")?.into_iter().flatten().collect();
            let package = Package {
                name: name.to_string(),
                version: get("Version").ok_or_else(|| bad("no Version".into()))?.to_string(),
                architecture: architecture.to_string(),
                multi_arch: match get("Multi-Arch") {
                    Some("same") => MultiArch::Same,
                    Some("foreign") => MultiArch::Foreign,
                    Some("allowed") => MultiArch::Allowed,
                    _ => MultiArch::No,
                },
                essential: get("Essential") == Some("yes"),
                source: get("Source")
                    .map(|s| s.split_whitespace().next().unwrap_or(name).to_string())
                    .unwrap_or_else(|| name.to_string()),
                depends,
                conflicts,
                provides,
                filename: get("Filename").ok_or_else(|| bad("no Filename".into()))?.to_string(),
                size: get("Size").and_then(|s| s.parse().ok()).ok_or_else(|| bad("no Size".into()))?,
                sha256: get("SHA256").ok_or_else(|| bad("no SHA256".into()))?.parse().map_err(bad)?,
            };
            if package.filename.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(bad(format!("unsafe Filename `{}`", package.filename)));
            }
            self.push(package);
        }
        Ok(())
    }

    pub fn push(&mut self, package: Package) {
        let index = self.packages.len();
        self.by_name.entry(package.name.clone()).or_default().push(index);
        for provided in &package.provides {
            self.providers.entry(provided.name.clone()).or_default().push(index);
        }
        self.packages.push(package);
    }

    /// Sorts every candidate list highest version first, so the result never depends on the
    /// order of the index files.
    pub fn finish(&mut self) {
        let packages = &self.packages;
        let order = |a: &usize, b: &usize| {
            let (pa, pb) = (&packages[*a], &packages[*b]);
            crate::version::compare(&pb.version, &pa.version)
                .then_with(|| pa.name.cmp(&pb.name))
                .then_with(|| pa.sha256.cmp(&pb.sha256))
        };
        for list in self.by_name.values_mut().chain(self.providers.values_mut()) {
            list.sort_by(order);
            list.dedup_by(|a, b| packages[*a].sha256 == packages[*b].sha256);
        }
    }
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
