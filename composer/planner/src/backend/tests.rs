//! The seam holds: no Debian name in the planner outside the Debian backend.

/// Debian's package names, paths and fields: none may appear in the planner outside the
/// Debian backend (comments aside), so that another distribution is one more module.
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

fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_planner_names_nothing_of_debian_outside_its_backend() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let debian = [src.join("backend/debian.rs"), src.join("backend/mirror.rs"), src.join("backend/tests.rs")];
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !debian.contains(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for name in DEBIAN_NAMES.iter().filter(|name| line.contains(*name)) {
                found.push(format!("{}:{}: {name}", file.strip_prefix(&src).unwrap().display(), n + 1));
            }
        }
    }
    assert!(files.len() > 10, "the scan found the sources");
    assert!(found.is_empty(), "Debian names outside the Debian backend:\n{}", found.join("\n"));
}
