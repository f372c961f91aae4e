//! A lock's claim about one package, checked against a signed `Packages` index: a lock is
//! written by compose but read from a file anyone (or a bundle) may have edited, so what it pins
//! is used only if the signed index holds exactly that entry.

use std::collections::{BTreeMap, BTreeSet};

use crate::PackageIndex;
use crate::relation::{ArchQualifier, Relation};
use crate::resolve::{essential_requests, provider_matches, real_matches};

/// What a lock says of one package: everything that picks the file and how it is verified.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub architecture: &'a str,
    pub filename: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

impl Claim<'_> {
    /// `name_version_arch`, as Debian names the file.
    pub fn label(&self) -> String {
        format!("{}_{}_{}", self.name, self.version, self.architecture)
    }
}

/// `Ok` when `index` holds an entry equal to `claim` in name, version, architecture, filename,
/// size and SHA-256; else why not, in words whose every value comes from the index (what the
/// lock says is named as the lock's).
pub fn check(index: &PackageIndex<'_>, claim: &Claim<'_>) -> Result<(), String> {
    let candidates = index.by_name.get(claim.name).map(Vec::as_slice).unwrap_or_default();
    let same_version: Vec<_> = candidates
        .iter()
        .map(|&i| &index.packages[i])
        .filter(|p| p.version == claim.version && p.architecture == claim.architecture)
        .collect();
    // The digest compares as text in lower case, as indexes spell it; a lock spelling it in
    // upper case matches nothing, which is no loss.
    if same_version.iter().any(|p| {
        p.filename == claim.filename && p.size == claim.size && p.sha256().is_ok_and(|s| s.to_hex() == claim.sha256)
    }) {
        return Ok(());
    }
    if let Some(entry) = same_version.first() {
        let sha256 = entry.sha256().map(|s| s.to_hex()).unwrap_or_else(|_| "(unreadable)".into());
        let mut differs = Vec::new();
        if entry.filename != claim.filename {
            differs.push(format!("file `{}` (the lock says `{}`)", entry.filename, claim.filename));
        }
        if entry.size != claim.size {
            differs.push(format!("size {} bytes (the lock says {})", entry.size, claim.size));
        }
        if sha256 != claim.sha256 {
            differs.push(format!("sha256 {sha256} (the lock says {})", claim.sha256));
        }
        return Err(format!("the signed index lists it with {}", differs.join(", ")));
    }
    let mut versions: Vec<String> =
        candidates.iter().map(|&i| &index.packages[i]).map(|p| format!("{}_{}", p.version, p.architecture)).collect();
    versions.sort();
    versions.dedup();
    Err(match versions.is_empty() {
        true => "the signed index has no package of that name".into(),
        false => format!("the signed index has only {}", versions.join(", ")),
    })
}

/// `Ok` when `chosen` (each an entry of `index`, as [`check`] found it) is a set a resolution of
/// `requests` could give: every request and every dependency of every chosen package is
/// satisfied within the set, no two chosen packages conflict, and every chosen package is needed
/// (reached from a request or, with `essential`, from the Essential set through dependencies).
/// So a lock can neither add a package the recipe never asked for nor drop one it needs, though
/// each entry is signed. It may still pick another alternative (`a | b`) than compose would:
/// both are packages of the signed index that satisfy what the recipe asks.
pub fn check_resolution(
    index: &PackageIndex<'_>,
    chosen: &[Claim<'_>],
    requests: &[Relation],
    essential: bool,
) -> Result<(), String> {
    let mut ids: Vec<u32> = Vec::with_capacity(chosen.len());
    for claim in chosen {
        let id = index.by_name.get(claim.name).into_iter().flatten().find(|&&i| {
            let p = &index.packages[i];
            p.version == claim.version && p.architecture == claim.architecture && p.filename == claim.filename
        });
        ids.push(*id.ok_or_else(|| format!("{} is not in the signed index", claim.label()))? as u32);
    }
    let set: BTreeSet<u32> = ids.iter().copied().collect();
    let label = |id: u32| {
        let p = &index.packages[id as usize];
        format!("{} {}", p.name, p.version)
    };
    // The chosen packages that satisfy any of `alternatives`.
    let within = |alternatives: &[Relation]| -> Vec<u32> {
        let mut found = Vec::new();
        for relation in alternatives {
            found.extend(real_matches(index, relation).into_iter().filter(|id| set.contains(id)));
            found.extend(provider_matches(index, relation).into_values().flatten().filter(|id| set.contains(id)));
        }
        found
    };
    let mut roots: Vec<(String, Vec<u32>)> =
        requests.iter().map(|r| (format!("the request `{r}`"), within(std::slice::from_ref(r)))).collect();
    if essential {
        for relation in essential_requests(index) {
            roots.push((format!("the Essential package `{}`", relation.name), within(std::slice::from_ref(&relation))));
        }
    }
    for (what, found) in &roots {
        if found.is_empty() {
            return Err(format!("nothing in the lock satisfies {what}"));
        }
    }
    let mut needs: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &id in &set {
        let package = &index.packages[id as usize];
        for group in package.depends().map_err(|e| e.to_string())? {
            let found = within(&group);
            if found.is_empty() {
                let group: Vec<String> = group.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "{} depends on `{}` and nothing in the lock satisfies it",
                    label(id),
                    group.join(" | ")
                ));
            }
            needs.entry(id).or_default().extend(found);
        }
        for conflict in package.conflicts().map_err(|e| e.to_string())? {
            let plain = Relation { arch: ArchQualifier::None, ..conflict.clone() };
            let real = real_matches(index, &plain).into_iter().filter(|&other| other != id);
            let provided = provider_matches(index, &conflict)
                .into_iter()
                .filter(|(name, _)| *name != package.name)
                .flat_map(|(_, ids)| ids);
            if let Some(other) = real.chain(provided).find(|other| set.contains(other)) {
                return Err(format!("{} conflicts with `{conflict}`, and the lock holds {}", label(id), label(other)));
            }
        }
    }
    let mut reached: BTreeSet<u32> = BTreeSet::new();
    let mut queue: Vec<u32> = roots.into_iter().flat_map(|(_, found)| found).collect();
    while let Some(id) = queue.pop() {
        if reached.insert(id) {
            queue.extend(needs.get(&id).into_iter().flatten().copied());
        }
    }
    match set.difference(&reached).next() {
        Some(&extra) => Err(format!("{} is in the lock, but nothing the recipe asks for needs it", label(extra))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

    fn index_text() -> String {
        format!(
            "Package: app\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/main/a/app_1.0_amd64.deb\nSize: 100\n\
             SHA256: {SHA}\n\nPackage: docs\nVersion: 1\nArchitecture: all\nFilename: pool/main/d/docs_1_all.deb\n\
             Size: 7\nSHA256: {}\n",
            "2".repeat(64)
        )
    }

    fn claim<'a>(version: &'a str, filename: &'a str, size: u64, sha256: &'a str) -> Claim<'a> {
        Claim { name: "app", version, architecture: "amd64", filename, size, sha256 }
    }

    #[test]
    fn only_an_exact_entry_of_the_signed_index_passes() {
        let text = index_text();
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "stable/main/binary-amd64/Packages").unwrap();
        let file = "pool/main/a/app_1.0_amd64.deb";
        assert_eq!(check(&index, &claim("1.0", file, 100, SHA)), Ok(()));
        let docs = Claim {
            name: "docs",
            version: "1",
            architecture: "all",
            filename: "pool/main/d/docs_1_all.deb",
            size: 7,
            sha256: &"2".repeat(64),
        };
        assert_eq!(check(&index, &docs), Ok(()));

        // Another file under the same name and version: every value said is the index's.
        let crafted = "3".repeat(64);
        let error = check(&index, &claim("1.0", file, 999, &crafted)).unwrap_err();
        assert!(error.contains("size 100 bytes (the lock says 999)"), "{error}");
        assert!(error.contains(&format!("sha256 {SHA} (the lock says {crafted})")), "{error}");
        let error = check(&index, &claim("1.0", "pool/evil.deb", 100, SHA)).unwrap_err();
        assert!(error.contains("file `pool/main/a/app_1.0_amd64.deb` (the lock says `pool/evil.deb`)"), "{error}");

        // A version the index does not hold, a name it does not hold, another architecture.
        let error = check(&index, &claim("9.9", file, 100, SHA)).unwrap_err();
        assert_eq!(error, "the signed index has only 1.0_amd64");
        let error = check(&index, &Claim { name: "backdoor", ..claim("1.0", file, 100, SHA) }).unwrap_err();
        assert_eq!(error, "the signed index has no package of that name");
        assert!(check(&index, &Claim { architecture: "all", ..claim("1.0", file, 100, SHA) }).is_err());
        assert!(check(&index, &claim("1.0", file, 100, &SHA.to_uppercase())).is_err());
    }

    /// A small index: app needs lib and one of two shells; backdoor is signed but unasked for.
    fn resolution_index() -> String {
        let stanzas = [
            "Package: app\nVersion: 1\nDepends: lib (>= 2), sh-a | sh-b",
            "Package: lib\nVersion: 2",
            "Package: sh-a\nVersion: 1",
            "Package: sh-b\nVersion: 1\nConflicts: sh-a",
            "Package: base\nVersion: 1\nEssential: yes",
            "Package: backdoor\nVersion: 1",
        ];
        stanzas
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!("{t}\nArchitecture: amd64\nFilename: pool/{i}.deb\nSize: 1\nSHA256: {:064x}\n\n", i + 1)
            })
            .collect()
    }

    #[test]
    fn a_lock_must_be_a_resolution_of_the_requests_neither_more_nor_less() {
        let text = resolution_index();
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "test").unwrap();
        index.finish();
        let files: Vec<String> = (0..6).map(|i| format!("pool/{i}.deb")).collect();
        let claim = |name: &'static str| {
            let at = ["app", "lib", "sh-a", "sh-b", "base", "backdoor"].iter().position(|n| *n == name).unwrap();
            Claim {
                name,
                version: if name == "lib" { "2" } else { "1" },
                architecture: "amd64",
                filename: &files[at],
                size: 1,
                sha256: "",
            }
        };
        let requests = [crate::index::parse_request("app").unwrap()];
        let set = |names: &[&'static str]| names.iter().map(|n| claim(n)).collect::<Vec<_>>();

        assert_eq!(check_resolution(&index, &set(&["app", "lib", "sh-a", "base"]), &requests, true), Ok(()));
        // The other alternative is as good: both satisfy what the recipe asks.
        assert_eq!(check_resolution(&index, &set(&["app", "lib", "sh-b"]), &requests, false), Ok(()));

        let error = check_resolution(&index, &set(&["app", "lib", "sh-a", "backdoor"]), &requests, false).unwrap_err();
        assert_eq!(error, "backdoor 1 is in the lock, but nothing the recipe asks for needs it");
        let error = check_resolution(&index, &set(&["app", "sh-a"]), &requests, false).unwrap_err();
        assert_eq!(error, "app 1 depends on `lib (>= 2)` and nothing in the lock satisfies it");
        let error = check_resolution(&index, &set(&["lib", "sh-a"]), &requests, false).unwrap_err();
        assert_eq!(error, "nothing in the lock satisfies the request `app`");
        let error = check_resolution(&index, &set(&["app", "lib", "sh-a"]), &requests, true).unwrap_err();
        assert_eq!(error, "nothing in the lock satisfies the Essential package `base`");
        let error = check_resolution(&index, &set(&["app", "lib", "sh-a", "sh-b"]), &requests, false).unwrap_err();
        assert_eq!(error, "sh-b 1 conflicts with `sh-a`, and the lock holds sh-a 1");
    }
}
