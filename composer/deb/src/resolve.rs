//! Dependency resolution with the `resolvo` SAT solver (CDCL, as in libsolv/mamba).
//!
//! Each package of the index is a solvable named by its real name. A relation becomes a *set of
//! allowed solvables* per name, so virtual packages need no fake solvables:
//!
//! - `Depends: foo (>= 2) | bar` → a union of: the `foo` packages with version ≥ 2, the packages
//!   whose `Provides` satisfies `foo (>= 2)` (each under its own name), and the same for `bar`.
//! - `Conflicts`/`Breaks: foo (<< 2)` → a constraint on the name `foo` (and on each provider of
//!   a virtual `foo`): if chosen, it must be outside the excluded set. A package never conflicts
//!   with itself through a virtual name it provides.
//!
//! The solver picks the highest version first. Candidates are sorted by version, then name, then
//! digest, so the same index always gives the same set.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;

use resolvo::{
    Candidates, Condition, ConditionId, ConditionalRequirement, Dependencies, DependencyProvider, Interner,
    KnownDependencies, NameId, Problem, Requirement, SolvableId, Solver, SolverCache, StringId, UnsolvableOrCancelled,
    VersionSetId, VersionSetUnionId,
};

use crate::DebError;
use crate::index::{MultiArch, Package, PackageIndex};
use crate::relation::{ArchQualifier, Relation};

struct VersionSet {
    name: NameId,
    allowed: Vec<u32>,
    display: String,
}

struct Provider<'i, 't> {
    index: &'i PackageIndex<'t>,
    /// Versions to choose first where they still satisfy (a lock being followed).
    preferred: &'i std::collections::BTreeMap<String, String>,
    names: std::cell::RefCell<Names>,
    sets: std::cell::RefCell<Sets>,
}

#[derive(Default)]
struct Names {
    ids: HashMap<String, NameId>,
    names: Vec<String>,
}

#[derive(Default)]
struct Sets {
    ids: HashMap<(NameId, Vec<u32>, String), VersionSetId>,
    sets: Vec<VersionSet>,
    unions: Vec<Vec<VersionSetId>>,
    strings: Vec<String>,
}

impl<'i, 't> Provider<'i, 't> {
    fn name(&self, name: &str) -> NameId {
        let mut names = self.names.borrow_mut();
        if let Some(id) = names.ids.get(name) {
            return *id;
        }
        let id = NameId(names.names.len() as u32);
        names.names.push(name.to_string());
        names.ids.insert(name.to_string(), id);
        id
    }

    fn set(&self, name: &str, mut allowed: Vec<u32>, display: String) -> VersionSetId {
        allowed.sort_unstable();
        allowed.dedup();
        let name = self.name(name);
        let mut sets = self.sets.borrow_mut();
        let key = (name, allowed, display);
        if let Some(id) = sets.ids.get(&key) {
            return *id;
        }
        let id = VersionSetId(sets.sets.len() as u32);
        sets.sets.push(VersionSet { name, allowed: key.1.clone(), display: key.2.clone() });
        sets.ids.insert(key, id);
        id
    }

    fn package(&self, id: u32) -> &'i Package<'t> {
        &self.index.packages[id as usize]
    }

    fn real_matches(&self, relation: &Relation) -> Vec<u32> {
        real_matches(self.index, relation)
    }

    fn provider_matches(&self, relation: &Relation) -> BTreeMap<&'t str, Vec<u32>> {
        provider_matches(self.index, relation)
    }

    fn requirement(&self, alternatives: &[Relation]) -> Requirement {
        let mut sets = Vec::new();
        for relation in alternatives {
            let real = self.real_matches(relation);
            if !real.is_empty() {
                sets.push(self.set(&relation.name, real, relation.to_string()));
            }
            for (provider, ids) in self.provider_matches(relation) {
                sets.push(self.set(provider, ids, format!("(provides {relation})")));
            }
        }
        if sets.is_empty() {
            // Nothing can satisfy it: an empty set under the wanted name makes the solver say so.
            sets.push(self.set(&alternatives[0].name, Vec::new(), alternatives[0].to_string()));
        }
        if sets.len() == 1 {
            Requirement::Single(sets[0])
        } else {
            let mut s = self.sets.borrow_mut();
            let id = VersionSetUnionId(s.unions.len() as u32);
            s.unions.push(sets);
            Requirement::Union(id)
        }
    }

    fn constraints(&self, package_id: u32, conflicts: &[Relation]) -> Vec<VersionSetId> {
        let package = self.package(package_id);
        let mut out = Vec::new();
        for conflict in conflicts {
            let mut excluded: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for id in self.real_matches(&Relation { arch: ArchQualifier::None, ..conflict.clone() }) {
                if id != package_id {
                    excluded.entry(self.package(id).name).or_default().push(id);
                }
            }
            for (name, ids) in self.provider_matches(conflict) {
                if name != package.name {
                    excluded.entry(name).or_default().extend(ids);
                }
            }
            for (name, ids) in excluded {
                let allowed: Vec<u32> =
                    self.index.by_name[name].iter().map(|&i| i as u32).filter(|i| !ids.contains(i)).collect();
                out.push(self.set(
                    name,
                    allowed,
                    format!("(not {conflict}, which {} {} conflicts with)", package.name, package.version),
                ));
            }
        }
        out
    }
}

impl Interner for Provider<'_, '_> {
    fn display_solvable(&self, solvable: SolvableId) -> impl Display + '_ {
        let p = self.package(solvable.0);
        format!("{} {}", p.name, p.version)
    }
    fn display_name(&self, name: NameId) -> impl Display + '_ {
        self.names.borrow().names[name.0 as usize].clone()
    }
    fn display_version_set(&self, version_set: VersionSetId) -> impl Display + '_ {
        let sets = self.sets.borrow();
        let set = &sets.sets[version_set.0 as usize];
        let name = &self.names.borrow().names[set.name.0 as usize];
        // The display carries the whole relation; strip the name the solver prints before it.
        set.display.strip_prefix(name.as_str()).unwrap_or(&set.display).trim().to_string()
    }
    fn display_string(&self, string_id: StringId) -> impl Display + '_ {
        self.sets.borrow().strings[string_id.0 as usize].clone()
    }
    fn version_set_name(&self, version_set: VersionSetId) -> NameId {
        self.sets.borrow().sets[version_set.0 as usize].name
    }
    fn solvable_name(&self, solvable: SolvableId) -> NameId {
        self.name(self.package(solvable.0).name)
    }
    fn version_sets_in_union(&self, version_set_union: VersionSetUnionId) -> impl Iterator<Item = VersionSetId> {
        self.sets.borrow().unions[version_set_union.0 as usize].clone().into_iter()
    }
    fn resolve_condition(&self, _condition: ConditionId) -> Condition {
        unreachable!("composer never attaches conditions to requirements")
    }
}

impl DependencyProvider for Provider<'_, '_> {
    async fn filter_candidates(
        &self,
        candidates: &[SolvableId],
        version_set: VersionSetId,
        inverse: bool,
    ) -> Vec<SolvableId> {
        let sets = self.sets.borrow();
        let allowed = &sets.sets[version_set.0 as usize].allowed;
        candidates.iter().copied().filter(|c| allowed.binary_search(&c.0).is_ok() != inverse).collect()
    }

    async fn get_candidates(&self, name: NameId) -> Option<Candidates> {
        let name = self.names.borrow().names[name.0 as usize].clone();
        let ids = self.index.by_name.get(name.as_str())?;
        Some(Candidates { candidates: ids.iter().map(|&i| SolvableId(i as u32)).collect(), ..Default::default() })
    }

    async fn sort_candidates(&self, _solver: &SolverCache<Self>, solvables: &mut [SolvableId]) {
        // A locked version first (so a changed recipe changes only what it must), then the
        // newest.
        let preferred = |p: &Package<'_>| self.preferred.get(p.name).is_some_and(|v| v == p.version);
        solvables.sort_by(|a, b| {
            let (pa, pb) = (self.package(a.0), self.package(b.0));
            preferred(pb)
                .cmp(&preferred(pa))
                .then_with(|| crate::version::compare(pb.version, pa.version))
                .then_with(|| pa.sha256_order(pb))
        });
    }

    async fn get_dependencies(&self, solvable: SolvableId) -> Dependencies {
        let package = self.package(solvable.0);
        let (depends, conflicts) = match (package.depends(), package.conflicts()) {
            (Ok(d), Ok(c)) => (d, c),
            (Err(e), _) | (_, Err(e)) => {
                // The package cannot be judged, so it cannot be chosen; the reason shows if needed.
                let mut sets = self.sets.borrow_mut();
                sets.strings.push(e.to_string());
                return Dependencies::Unknown(StringId(sets.strings.len() as u32 - 1));
            }
        };
        let requirements = depends.iter().map(|group| ConditionalRequirement::from(self.requirement(group))).collect();
        Dependencies::Known(KnownDependencies { requirements, constrains: self.constraints(solvable.0, &conflicts) })
    }
}

/// A relation naming each package of the index marked `Essential: yes`, by name, sorted: what
/// a resolution with the Essential set asks for besides the requests, as debootstrap does.
pub(crate) fn essential_requests(index: &PackageIndex<'_>) -> Vec<Relation> {
    let mut names: Vec<&str> = index
        .by_name
        .iter()
        .filter(|(_, ids)| ids.iter().any(|&i| index.packages[i].essential))
        .map(|(n, _)| *n)
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| Relation { name: name.to_string(), arch: ArchQualifier::None, constraint: None })
        .collect()
}

/// The packages named `relation.name` whose version and architecture satisfy it.
pub(crate) fn real_matches(index: &PackageIndex<'_>, relation: &Relation) -> Vec<u32> {
    let Some(ids) = index.by_name.get(relation.name.as_str()) else { return Vec::new() };
    ids.iter()
        .filter(|&&i| {
            let p = &index.packages[i];
            relation.constraint.as_ref().is_none_or(|c| c.matches(p.version))
                && (relation.arch != ArchQualifier::Any || p.multi_arch == MultiArch::Allowed)
        })
        .map(|&i| i as u32)
        .collect()
}

/// Providers of `relation.name` whose `Provides` satisfies the relation, grouped by their real
/// name.
pub(crate) fn provider_matches<'t>(index: &PackageIndex<'t>, relation: &Relation) -> BTreeMap<&'t str, Vec<u32>> {
    let mut out: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for &i in index.providers.get(&relation.name).into_iter().flatten() {
        let p = &index.packages[i];
        let satisfies = p.provides.iter().any(|provided| {
            provided.name == relation.name
                && match (&relation.constraint, &provided.constraint) {
                    (None, _) => true,
                    (Some(want), Some(have)) => have.op == crate::relation::Op::Eq && want.matches(&have.version),
                    (Some(_), None) => false,
                }
        });
        if satisfies {
            out.entry(p.name).or_default().push(i as u32);
        }
    }
    out
}

/// Resolves `requests` (top-level relations) against `index`, returning the chosen packages
/// sorted by name. `essential` adds every `Essential: yes` package, as debootstrap does.
/// `preferred` (name to version) is chosen wherever it still satisfies, else the newest.
pub fn resolve<'i, 't>(
    index: &'i PackageIndex<'t>,
    requests: &[Relation],
    essential: bool,
    preferred: &'i std::collections::BTreeMap<String, String>,
    suite: &str,
    arch: &str,
) -> Result<Vec<&'i Package<'t>>, DebError> {
    for request in requests {
        if !index.by_name.contains_key(request.name.as_str()) && !index.providers.contains_key(&request.name) {
            return Err(DebError::UnknownPackage {
                name: request.name.clone(),
                suite: suite.to_string(),
                arch: arch.to_string(),
                near: index.nearest_names(&request.name, 3),
            });
        }
    }
    let provider = Provider { index, preferred, names: Default::default(), sets: Default::default() };
    let mut requirements: Vec<ConditionalRequirement> =
        requests.iter().map(|r| provider.requirement(std::slice::from_ref(r)).into()).collect();
    if essential {
        for relation in essential_requests(index) {
            requirements.push(provider.requirement(&[relation]).into());
        }
    }
    let mut solver = Solver::new(provider);
    match solver.solve(Problem::new().requirements(requirements)) {
        Ok(solvables) => {
            let mut chosen: Vec<&Package<'t>> = solvables.iter().map(|s| &index.packages[s.0 as usize]).collect();
            chosen.sort_by(|a, b| a.name.cmp(b.name));
            Ok(chosen)
        }
        Err(UnsolvableOrCancelled::Unsolvable(conflict)) => Err(DebError::Unsolvable {
            suite: suite.to_string(),
            arch: arch.to_string(),
            explanation: conflict.display_user_friendly(&solver).to_string(),
        }),
        Err(UnsolvableOrCancelled::Cancelled(_)) => unreachable!("composer never cancels the solver"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index text from short stanzas, each given a distinct digest.
    fn index_text(stanzas: &[&str]) -> String {
        stanzas
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!("{t}\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 1\nSHA256: {:064x}\n\n", i + 1)
            })
            .collect()
    }

    fn parse(text: &str) -> PackageIndex<'_> {
        let mut index = PackageIndex::default();
        index.parse(text, "amd64", "test").unwrap();
        index.finish();
        index
    }

    fn names(index: &PackageIndex<'_>, request: &str) -> Result<Vec<String>, DebError> {
        let request = crate::index::parse_request(request).unwrap();
        resolve(index, &[request], false, &Default::default(), "test", "amd64")
            .map(|ps| ps.iter().map(|p| format!("{}={}", p.name, p.version)).collect())
    }

    #[test]
    fn a_preferred_version_is_kept_while_it_satisfies_and_dropped_when_it_does_not() {
        let text = index_text(&[
            "Package: app\nVersion: 1\nDepends: libc (>= 2)",
            "Package: libc\nVersion: 1",
            "Package: libc\nVersion: 2",
            "Package: libc\nVersion: 3",
        ]);
        let index = parse(&text);
        let request = crate::index::parse_request("app").unwrap();
        let chosen = |preferred: &[(&str, &str)]| -> Vec<String> {
            let preferred = preferred.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            resolve(&index, std::slice::from_ref(&request), false, &preferred, "t", "amd64")
                .unwrap()
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .collect()
        };
        assert_eq!(chosen(&[]), ["app=1", "libc=3"]);
        assert_eq!(chosen(&[("libc", "2")]), ["app=1", "libc=2"]);
        assert_eq!(chosen(&[("libc", "1")]), ["app=1", "libc=3"], "1 no longer satisfies app");
    }

    #[test]
    fn picks_highest_versions_and_follows_alternatives_and_provides() {
        let text = index_text(&[
            "Package: app\nVersion: 1\nDepends: libc (>= 2), mta | exim\nPre-Depends: py",
            "Package: libc\nVersion: 1",
            "Package: libc\nVersion: 3",
            "Package: postfix\nVersion: 1\nProvides: mta",
            "Package: python3\nVersion: 3.11\nProvides: py (= 3.11)",
        ]);
        assert_eq!(names(&parse(&text), "app").unwrap(), ["app=1", "libc=3", "postfix=1", "python3=3.11"]);
    }

    #[test]
    fn respects_conflicts_by_choosing_another_alternative() {
        let text = index_text(&[
            "Package: app\nVersion: 1\nDepends: a | b, c",
            "Package: a\nVersion: 1",
            "Package: b\nVersion: 1",
            "Package: c\nVersion: 1\nConflicts: a",
        ]);
        assert_eq!(names(&parse(&text), "app").unwrap(), ["app=1", "b=1", "c=1"]);
    }

    #[test]
    fn explains_the_failing_chain() {
        let text = index_text(&["Package: app\nVersion: 1\nDepends: lib (>= 5)", "Package: lib\nVersion: 4"]);
        let index = parse(&text);
        let err = names(&index, "app").unwrap_err().to_string();
        assert!(err.contains("app") && err.contains("lib"), "{err}");
        let unknown = names(&index, "nope").unwrap_err().to_string();
        assert!(unknown.contains("nope") && unknown.contains("test"), "{unknown}");
    }

    #[test]
    fn essential_packages_only_when_asked() {
        let text = index_text(&["Package: app\nVersion: 1", "Package: coreutils\nVersion: 9\nEssential: yes"]);
        let index = parse(&text);
        let request = crate::index::parse_request("app").unwrap();
        let without: Vec<&str> =
            resolve(&index, std::slice::from_ref(&request), false, &Default::default(), "t", "amd64")
                .unwrap()
                .iter()
                .map(|p| p.name)
                .collect();
        assert_eq!(without, ["app"]);
        let with: Vec<&str> = resolve(&index, &[request], true, &Default::default(), "t", "amd64")
            .unwrap()
            .iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(with, ["app", "coreutils"]);
    }

    #[test]
    fn any_qualifier_needs_multi_arch_allowed() {
        let text = index_text(&[
            "Package: a\nVersion: 1\nDepends: py:any",
            "Package: py\nVersion: 1\nMulti-Arch: allowed",
            "Package: b\nVersion: 1\nDepends: lib:any",
            "Package: lib\nVersion: 1",
        ]);
        let index = parse(&text);
        assert_eq!(names(&index, "a").unwrap(), ["a=1", "py=1"]);
        assert!(names(&index, "b").is_err());
    }

    #[test]
    fn a_package_with_unparsable_depends_is_never_chosen() {
        let text = index_text(&["Package: app\nVersion: 2\nDepends: lib (>= )", "Package: app\nVersion: 1"]);
        assert_eq!(names(&parse(&text), "app").unwrap(), ["app=1"]);
    }

    #[test]
    fn same_index_same_answer_whatever_the_order() {
        let mut stanzas = vec![
            "Package: app\nVersion: 1\nDepends: x | y",
            "Package: x\nVersion: 2",
            "Package: y\nVersion: 1",
            "Package: x\nVersion: 1",
        ];
        let forward = index_text(&stanzas);
        stanzas.reverse();
        let backward = index_text(&stanzas);
        assert_eq!(names(&parse(&forward), "app").unwrap(), names(&parse(&backward), "app").unwrap());
    }
}
