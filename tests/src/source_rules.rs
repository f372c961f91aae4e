//! Rules of the code base that a compiler does not check, checked over the sources.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The library crates: everything but the binary and the tests.
const LIBRARIES: &[&str] = &[
    "store",
    "composer/recipe",
    "composer/client",
    "composer/deb",
    "composer/oci",
    "composer/planner",
    "composer/wheels",
];

/// Library crates read no environment variable (the binary resolves settings and passes them in)
/// and print nothing (they report through callbacks). A file's unit tests, after its
/// `#[cfg(test)]`, may do either.
#[test]
fn library_crates_neither_read_the_environment_nor_print() {
    const FORBIDDEN: &[&str] = &[
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "env::temp_dir(",
        "tempfile::tempdir()",
        ".tempdir()",
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "dbg!(",
    ];
    let mut files = Vec::new();
    for crate_dir in LIBRARIES {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    assert!(files.len() > 40, "the scan found the sources");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for pattern in FORBIDDEN.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{}:{}: {pattern}", file.strip_prefix(repo()).unwrap().display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "library code reads the environment or prints:\n{}", found.join("\n"));
}

/// No crate folder is named like build output, which global ignore files and tools hide.
#[test]
fn no_crate_folder_is_named_like_build_output() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() > 5, "{members:?}");
    for member in members {
        let folder = Path::new(member).file_name().unwrap().to_str().unwrap();
        assert!(!["build", "out", "target", "dist"].contains(&folder), "crate folder `{member}`");
    }
}
