//! A lock's claim about one package, checked against a signed `Packages` index: a lock is
//! written by compose but read from a file anyone (or a bundle) may have edited, so what it pins
//! is used only if the signed index holds exactly that entry.

use std::collections::{BTreeMap, BTreeSet};

use crate::PackageIndex;
use crate::problems::{Difference, NotAResolution, NotListed};
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
pub fn check(index: &PackageIndex<'_>, claim: &Claim<'_>) -> Result<(), NotListed> {
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
            differs.push(Difference::File { index: entry.filename.to_string(), lock: claim.filename.to_string() });
        }
        if entry.size != claim.size {
            differs.push(Difference::Size { index: entry.size, lock: claim.size });
        }
        if sha256 != claim.sha256 {
            differs.push(Difference::Sha256 { index: sha256, lock: claim.sha256.to_string() });
        }
        return Err(NotListed::Differs(differs));
    }
    let mut versions: Vec<String> =
        candidates.iter().map(|&i| &index.packages[i]).map(|p| format!("{}_{}", p.version, p.architecture)).collect();
    versions.sort();
    versions.dedup();
    Err(match versions.is_empty() {
        true => NotListed::NoSuchName,
        false => NotListed::OtherVersions(versions),
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
) -> Result<(), NotAResolution> {
    let mut ids: Vec<u32> = Vec::with_capacity(chosen.len());
    for claim in chosen {
        let id = index.by_name.get(claim.name).into_iter().flatten().find(|&&i| {
            let p = &index.packages[i];
            p.version == claim.version && p.architecture == claim.architecture && p.filename == claim.filename
        });
        ids.push(*id.ok_or_else(|| NotAResolution::NotListed(claim.label()))? as u32);
    }
    // One version of a package, once: a resolution never holds two, and a lock that did would
    // lay the older one's files over the newer one's while the package database names both.
    let mut by_name: BTreeMap<&str, &Claim<'_>> = BTreeMap::new();
    for claim in chosen {
        if let Some(first) = by_name.insert(claim.name, claim) {
            return Err(match first.version == claim.version {
                true => NotAResolution::Twice(claim.label()),
                false => NotAResolution::TwoVersions {
                    name: claim.name.to_string(),
                    first: first.version.to_string(),
                    second: claim.version.to_string(),
                },
            });
        }
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
            return Err(NotAResolution::Unsatisfied(what.clone()));
        }
    }
    // Every group the set must satisfy (a request, an Essential package, a dependency of a chosen
    // package), with the chosen packages that satisfy it.
    let mut groups: Vec<(String, Vec<u32>)> = roots.iter().map(|(what, found)| (what.clone(), found.clone())).collect();
    let mut needs: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &id in &set {
        let package = &index.packages[id as usize];
        for group in package.depends().map_err(|e| NotAResolution::Index(Box::new(e)))? {
            let found = within(&group);
            if found.is_empty() {
                let group: Vec<String> = group.iter().map(ToString::to_string).collect();
                return Err(NotAResolution::Dependency { package: label(id), group: group.join(" | ") });
            }
            needs.entry(id).or_default().extend(found.iter().copied());
            let group: Vec<String> = group.iter().map(ToString::to_string).collect();
            groups.push((format!("`{}` of {}", group.join(" | "), label(id)), found));
        }
        for conflict in package.conflicts().map_err(|e| NotAResolution::Index(Box::new(e)))? {
            let plain = Relation { arch: ArchQualifier::None, ..conflict.clone() };
            let real = real_matches(index, &plain).into_iter().filter(|&other| other != id);
            let provided = provider_matches(index, &conflict)
                .into_iter()
                .filter(|(name, _)| *name != package.name)
                .flat_map(|(_, ids)| ids);
            if let Some(other) = real.chain(provided).find(|other| set.contains(other)) {
                return Err(NotAResolution::Conflict {
                    package: label(id),
                    conflict: conflict.to_string(),
                    other: label(other),
                });
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
    if let Some(&extra) = set.difference(&reached).next() {
        return Err(NotAResolution::Unneeded(label(extra)));
    }
    // Each package must be the only one of the set to satisfy something: a lock that adds a
    // second alternative of `a | b`, or another provider of a virtual package, is reached like
    // the first but needed by nothing.
    let mut sole: BTreeSet<u32> = BTreeSet::new();
    for (_, found) in &mut groups {
        found.sort_unstable();
        found.dedup();
        if let [only] = found.as_slice() {
            sole.insert(*only);
        }
    }
    let Some(&extra) = set.difference(&sole).next() else { return Ok(()) };
    // A resolver may still choose so (an alternative taken before another choice forced its
    // sibling in): what compose's own resolver gives for these versions passes.
    let preferred: BTreeMap<String, String> =
        chosen.iter().map(|c| (c.name.to_string(), c.version.to_string())).collect();
    let key = |p: &crate::Package<'_>| (p.name.to_string(), p.version.to_string(), p.filename.to_string());
    if let Ok(again) = crate::resolve::resolve(index, requests, essential, &preferred, "", "") {
        let again: BTreeSet<_> = again.into_iter().map(key).collect();
        let ours: BTreeSet<_> = set.iter().map(|&id| key(&index.packages[id as usize])).collect();
        if again == ours {
            return Ok(());
        }
    }
    let (what, found) =
        groups.iter().find(|(_, found)| found.contains(&extra)).expect("a reached package satisfies a group");
    let others: Vec<String> = found.iter().filter(|&&id| id != extra).map(|&id| label(id)).collect();
    Err(NotAResolution::SpareAlternative { extra: label(extra), others, what: what.clone() })
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
        let error = error.to_string();
        assert!(error.contains("size 100 bytes (the lock says 999)"), "{error}");
        assert!(error.contains(&format!("sha256 {SHA} (the lock says {crafted})")), "{error}");
        let error = check(&index, &claim("1.0", "pool/evil.deb", 100, SHA)).unwrap_err();
        let error = error.to_string();
        assert!(error.contains("file `pool/main/a/app_1.0_amd64.deb` (the lock says `pool/evil.deb`)"), "{error}");

        // A version the index does not hold, a name it does not hold, another architecture.
        let error = check(&index, &claim("9.9", file, 100, SHA)).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "the signed index has only 1.0_amd64");
        let error = check(&index, &Claim { name: "backdoor", ..claim("1.0", file, 100, SHA) }).unwrap_err();
        let error = error.to_string();
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

        assert!(check_resolution(&index, &set(&["app", "lib", "sh-a", "base"]), &requests, true).is_ok());
        // The other alternative is as good: both satisfy what the recipe asks.
        assert!(check_resolution(&index, &set(&["app", "lib", "sh-b"]), &requests, false).is_ok());

        let error = check_resolution(&index, &set(&["app", "lib", "sh-a", "backdoor"]), &requests, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "backdoor 1 is in the lock, but nothing the recipe asks for needs it");
        let error = check_resolution(&index, &set(&["app", "sh-a"]), &requests, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "app 1 depends on `lib (>= 2)` and nothing in the lock satisfies it");
        let error = check_resolution(&index, &set(&["lib", "sh-a"]), &requests, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "nothing in the lock satisfies the request `app`");
        let error = check_resolution(&index, &set(&["app", "lib", "sh-a"]), &requests, true).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "nothing in the lock satisfies the Essential package `base`");
        let error = check_resolution(&index, &set(&["app", "lib", "sh-a", "sh-b"]), &requests, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "sh-b 1 declares Conflicts or Breaks `sh-a`, and the lock holds sh-a 1");
    }

    /// Found by an outside attack: a lock that holds two versions of one package (the older one's
    /// files laid over the newer one's), or every alternative and provider where one is needed.
    #[test]
    fn a_lock_holds_one_version_of_a_package_and_no_alternative_nobody_needs() {
        let text = format!(
            "{}\nPackage: lib\nVersion: 1\nArchitecture: amd64\nFilename: pool/lib1.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000065\n\n\
             Package: mta-a\nVersion: 1\nArchitecture: amd64\nProvides: mail-transport-agent\nFilename: pool/mta-a.deb\n\
             Size: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000066\n\nPackage: mta-b\nVersion: 1\nArchitecture: amd64\nProvides: mail-transport-agent\n\
             Filename: pool/mta-b.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000067\n\nPackage: mailer\nVersion: 1\nArchitecture: amd64\n\
             Depends: mail-transport-agent\nFilename: pool/mailer.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000068\n\n\
             Package: either\nVersion: 1\nArchitecture: amd64\nDepends: mta-a | mta-b\nFilename: pool/either.deb\n\
             Size: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000069\n",
            resolution_index()
        );
        let mut index = PackageIndex::default();
        index.parse(&text, "amd64", "test").unwrap();
        index.finish();
        let entry = |name: &'static str, version: &'static str, filename: &'static str| Claim {
            name,
            version,
            architecture: "amd64",
            filename,
            size: 1,
            sha256: "",
        };
        let (app, lib2, lib1, sh_a) = (
            entry("app", "1", "pool/0.deb"),
            entry("lib", "2", "pool/1.deb"),
            entry("lib", "1", "pool/lib1.deb"),
            entry("sh-a", "1", "pool/2.deb"),
        );
        let app_request = [crate::index::parse_request("app").unwrap()];
        let error = check_resolution(&index, &[app, lib2, sh_a, lib1], &app_request, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "the lock holds lib twice, as 2 and 1; a resolution holds one version of a package");
        let error = check_resolution(&index, &[app, lib2, sh_a, lib2], &app_request, false).unwrap_err();
        let error = error.to_string();
        assert_eq!(error, "the lock holds lib_2_amd64 twice");

        let (mailer, either) = (entry("mailer", "1", "pool/mailer.deb"), entry("either", "1", "pool/either.deb"));
        let (mta_a, mta_b) = (entry("mta-a", "1", "pool/mta-a.deb"), entry("mta-b", "1", "pool/mta-b.deb"));
        let mailer_request = [crate::index::parse_request("mailer").unwrap()];
        assert!(check_resolution(&index, &[mailer, mta_b], &mailer_request, false).is_ok());
        let error = check_resolution(&index, &[mailer, mta_a, mta_b], &mailer_request, false).unwrap_err();
        let error = error.to_string();
        assert!(error.starts_with("mta-a 1 is in the lock beside mta-b 1, which satisfies"), "{error}");
        let either_request = [crate::index::parse_request("either").unwrap()];
        assert!(check_resolution(&index, &[either, mta_a], &either_request, false).is_ok());
        let error = check_resolution(&index, &[either, mta_a, mta_b], &either_request, false).unwrap_err();
        let error = error.to_string();
        assert!(error.contains("beside") && error.contains("`mta-a | mta-b` of either 1"), "{error}");
    }
}
