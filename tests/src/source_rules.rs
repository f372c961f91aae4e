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

/// The code of a source file, line by line with numbers: comments and a trailing unit-test
/// module (after `#[cfg(test)]`) left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let code = text.split("#[cfg(test)]").next().unwrap();
    code.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")).map(|(n, l)| (n + 1, l))
}

/// The library crates: everything but the binary and the tests.
const LIBRARIES: &[&str] = &[
    "store",
    "composer/recipe",
    "composer/client",
    "composer/cache",
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
        for (n, line) in code_lines(&text) {
            for pattern in FORBIDDEN.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{}:{n}: {pattern}", file.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "library code reads the environment or prints:\n{}", found.join("\n"));
}

/// Debian's package names, paths and fields: none may appear in the planner outside its Debian
/// backend, so that another distribution is one more module beside it.
#[test]
fn the_planner_names_nothing_of_debian_outside_its_backend() {
    const DEBIAN_NAMES: &[&str] = &[
        "base-files",
        "base-passwd",
        "libjemalloc2",
        "libjemalloc-dev",
        "build-essential",
        "mawk",
        "dpkg",
        "python3-setuptools",
        "python3-wheel",
        "python3-dev",
        "dist-packages",
        "libc6",
        "libssl-dev",
        "zlib1g",
        "InRelease",
        "Packages.xz",
        "Replaces",
        "debian_arch",
        "\"debian\"",
        ".deb\"",
        "/var/lib/",
    ];
    let src = repo().join("composer/planner/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the scan found the sources");
    let backend = [src.join("backend/debian.rs"), src.join("backend/mirror.rs")];
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !backend.contains(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            for name in DEBIAN_NAMES.iter().filter(|name| line.contains(*name)) {
                found.push(format!("{}:{n}: {name}", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "Debian names outside the Debian backend:\n{}", found.join("\n"));
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

/// A gzip file may be several members one after the other (RFC 1952), and composer's own wheel
/// layers are: a reader that stops after the first member reads a layer, a package or an sdist
/// only in part, without an error. Every gzip reader decodes every member.
#[test]
fn gzip_is_read_to_its_last_member() {
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]) {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            if line.contains("GzDecoder::new") && !line.contains("MultiGzDecoder::new") {
                found.push(format!("{}:{n}", file.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "single-member gzip readers (use MultiGzDecoder):\n{}", found.join("\n"));
}

/// Outputs never replace what compose did not write (a character device, a FIFO, a symbolic
/// link at an output path): every rename into a path a user named goes through
/// `composer_store::staging` (`Staged::publish_to`, `replace_at`, `rename_new`), which replaces
/// only a missing path or a regular file. A bare rename is allowed only there and in the
/// store's own buckets, which no user names.
#[test]
fn renames_into_user_paths_go_through_the_one_replace_rule() {
    const RENAMES: &[&str] = &["fs::rename(", "renameat(", "renameat_with("];
    const ALLOWED: &[&str] = &["store/src/staging.rs", "store/src/object.rs", "store/src/checkout.rs"];
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]) {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        if ALLOWED.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            for pattern in RENAMES.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{rel}:{n}: {pattern}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "renames that bypass composer_store::staging::replace_at (use Staged::publish_to or replace_at):\n{}",
        found.join("\n")
    );
}
