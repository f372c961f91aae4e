//! No import loop between the modules of a crate: a module that another imports from does not
//! import from it, directly or through others, so that each crate has layers and a module can be
//! read, tested and moved with what lies below it only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The top-level module a source file belongs to (`src/foo.rs` and `src/foo/*.rs`: `foo`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its unit tests and comments.
fn code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Names the crate root re-exports from a module (`pub use error::BuildError;`,
/// `pub use plan::{Plan, Step};`): `crate::BuildError` is a use of `error`.
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ").or_else(|| line.trim().strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else { continue };
        if !modules.contains(module) {
            continue;
        }
        let names = names.trim_end_matches(';').trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or_default();
            let name = name.split(" as ").last().unwrap_or_default().trim();
            if !name.is_empty() && name != "self" {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// Each module's imports of the crate's other modules.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(src, &mut all);
    let modules: BTreeSet<String> = all.iter().filter_map(|f| module_of(src, f)).collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let reexported = reexports(&lib, &modules);
    let mut edges: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &all {
        let Some(from) = module_of(src, file) else { continue };
        let text = code(&std::fs::read_to_string(file).unwrap());
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let mut used: Vec<String> = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                used.extend(group.split(',').map(|n| n.trim().split("::").next().unwrap_or_default().to_string()));
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                used.push(name);
            }
            for name in used {
                let target = match modules.contains(&name) {
                    true => Some(name),
                    false => reexported.get(&name).cloned(),
                };
                if let Some(target) = target.filter(|t| *t != from) {
                    edges.get_mut(&from).unwrap().insert(target);
                }
            }
        }
    }
    edges
}

/// The import loops of a graph: its strongly connected parts of more than one module.
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for next in &edges[&m] {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reaches(m))).collect();
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for m in edges.keys() {
        let part: BTreeSet<String> =
            edges.keys().filter(|n| *n == m || (reach[m].contains(*n) && reach[n].contains(m))).cloned().collect();
        if part.len() > 1 && !found.contains(&part) {
            found.push(part);
        }
    }
    found
}

#[test]
fn no_crate_has_an_import_loop_between_its_modules() {
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(repo().join("composer")).unwrap().flatten().map(|e| e.path()).collect();
    crates.push(repo().join("store"));
    crates.sort();
    let mut problems = Vec::new();
    for krate in crates {
        let src = krate.join("src");
        if !src.join("lib.rs").exists() && !src.join("main.rs").exists() {
            continue;
        }
        for part in loops(&graph(&src)) {
            let name = krate.file_name().unwrap().to_string_lossy().into_owned();
            problems.push(format!("{name}: {}", part.into_iter().collect::<Vec<_>>().join(", ")));
        }
    }
    assert!(
        problems.is_empty(),
        "modules that import from each other, directly or through others:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_loop_finder_finds_a_loop_and_only_a_loop() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            out.entry(a.to_string()).or_default().insert(b.to_string());
            out.entry(b.to_string()).or_default();
        }
        out
    };
    assert!(loops(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    let found = loops(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(found, vec![["a", "b", "c"].into_iter().map(String::from).collect::<BTreeSet<_>>()]);
}
