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
/// module (after `#[cfg(test)]`) left out, and a unit-test module of its own file
/// (`foo/tests.rs`, which `foo.rs` declares as `#[cfg(test)] mod tests;`) left out whole.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let code = text.split("#[cfg(test)]").next().unwrap();
    let code = if text.starts_with(TEST_MODULE_MARK) { "" } else { code };
    code.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")).map(|(n, l)| (n + 1, l))
}

/// What [`read_source`] puts before the text of a unit-test module's own file.
const TEST_MODULE_MARK: &str = "// test module\n";

/// A source file's text, marked when it is a unit-test module of its own (`tests.rs`, declared
/// by its parent under `#[cfg(test)]`: the parent is checked to say so).
fn read_source(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        let dir = file.parent().unwrap();
        let parent = dir.with_extension("rs");
        let parent = if parent.exists() { parent } else { dir.join("mod.rs") };
        let declares = std::fs::read_to_string(&parent).is_ok_and(|p| p.contains("#[cfg(test)]\nmod tests;"));
        if declares {
            return format!("{TEST_MODULE_MARK}{text}");
        }
    }
    text
}

/// The library crates: everything but the binary and the tests.
const LIBRARIES: &[&str] = &[
    "store",
    "composer/recipe",
    "composer/client",
    "composer/cache",
    "composer/deb",
    "composer/distro",
    "composer/oci",
    "composer/planner",
    "composer/wheels",
];

/// Library crates read no environment variable and print nothing: clippy enforces it (the
/// workspace's lint table and clippy.toml; `lints::a_library_that_prints_or_reads_the_environment_fails_clippy`
/// shows it biting). What could still bypass it is a crate leaving the workspace's lints or an
/// `allow` of them: every member takes the table, no library allows them outside its unit tests,
/// and the binary only in the one module that prints and the one that reads the environment.
#[test]
fn the_print_and_environment_lints_are_allowed_nowhere_else() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = manifest.split("members = [").nth(1).unwrap().split(']').next().unwrap();
    let members: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 10, "{members:?}");
    for member in &members {
        let text = std::fs::read_to_string(repo().join(member).join("Cargo.toml")).unwrap();
        assert!(text.contains("[lints]\nworkspace = true"), "{member}/Cargo.toml does not take the workspace's lints");
    }

    const LINTS: &[&str] = &["clippy::print_stdout", "clippy::print_stderr", "clippy::disallowed_methods"];
    const UNIT_TESTS_ONLY: &str = "#![cfg_attr(test, allow(clippy::disallowed_methods))]";
    const BINARY_MODULES: &[&str] = &["composer/compose/src/printer.rs", "composer/compose/src/settings.rs"];
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]) {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let mut found = Vec::new();
    for file in &files {
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        if BINARY_MODULES.contains(&name.as_str()) {
            continue;
        }
        let text = read_source(file);
        for (n, line) in code_lines(&text).filter(|(_, l)| l.trim() != UNIT_TESTS_ONLY) {
            for lint in LINTS.iter().filter(|lint| line.contains(*lint)) {
                found.push(format!("{name}:{n}: {lint}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the print and environment lints are allowed outside their places:\n{}",
        found.join("\n")
    );
}

/// Debian's package names, paths and fields: none may appear in the planner or the seam below it,
/// and neither depends on the Debian crate, so that another distribution is one more crate beside
/// `composer/deb`, chosen in the binary.
#[test]
fn the_planner_names_nothing_of_debian() {
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
    let mut found = Vec::new();
    for krate in ["composer/planner", "composer/distro"] {
        let manifest = std::fs::read_to_string(repo().join(krate).join("Cargo.toml")).unwrap();
        if manifest.contains("composer-deb") {
            found.push(format!("{krate}/Cargo.toml depends on composer-deb"));
        }
        let src = repo().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        assert!(!files.is_empty(), "the scan found the sources of {krate}");
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (n, line) in code_lines(&text) {
                for name in DEBIAN_NAMES.iter().filter(|name| line.contains(*name)) {
                    found.push(format!("{}:{n}: {name}", file.strip_prefix(repo()).unwrap().display()));
                }
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

/// A file a user names (a recipe, a lock, a keyring, a key, a requirements file, a config file, a
/// `file://` source...) is read only through `composer_store::userfile`, which confines it where
/// a recipe names it, refuses FIFOs and devices and bounds its size. A plain read is allowed only
/// where the path is composer's own: the store's files under its root, what a step or uv wrote in
/// composer's work directory, and the few places listed with their reason.
#[test]
fn user_named_files_are_read_only_through_the_one_reader() {
    const PLAIN_READS: &[&str] = &["fs::read(", "fs::read_to_string(", "File::open("];
    const ALLOWED: &[(&str, &str)] = &[
        ("store/src/object.rs", "the store's own files, under its root"),
        ("store/src/action.rs", "the store's own files, under its root"),
        ("store/src/roots.rs", "the store's own files, under its root"),
        ("store/src/lock.rs", "the store's own lock file"),
        ("store/src/read.rs", "objects, verified against their hash as they are read"),
        ("store/src/verify.rs", "the store's own files, under its root"),
        ("store/src/lib.rs", "the store's own files, under its root"),
        ("store/src/gc.rs", "the store's own files, under its root"),
        ("composer/cache/src/layout.rs", "a dir: cache's blobs, checked against their digests"),
        ("composer/cache/src/archive.rs", "a bundle: streamed, each member checked against its digest"),
        ("composer/cache/src/bundle.rs", "a bundle's lock files and blobs, composer's own writes"),
        ("composer/oci/src/inspect.rs", "a layout or archive `compose inspect` shows, streamed"),
        ("composer/planner/src/builds.rs", "a step's log, in composer's work directory"),
        ("composer/planner/src/bytecode.rs", "a step's log, in composer's work directory"),
        ("composer/wheels/src/resolve.rs", "uv's pylock.toml, in composer's work directory"),
        ("composer/wheels/src/bootstrap.rs", "the uv wheel pip downloaded into composer's work directory"),
        ("composer/wheels/src/simple.rs", "wheels checked out of the store"),
        ("composer/compose/src/commands/bundle.rs", "lock files compose wrote, bundled with their recipe"),
        ("composer/compose/src/commands/store.rs", "a lock file being replaced, compared with the new one"),
    ];
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]) {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    assert!(files.len() > 40, "the scan found the sources");
    let mut found = Vec::new();
    for file in &files {
        let name = file.strip_prefix(repo()).unwrap().to_string_lossy().into_owned();
        if ALLOWED.iter().any(|(allowed, _)| name == *allowed) {
            continue;
        }
        let text = read_source(file);
        for (n, line) in code_lines(&text) {
            for pattern in PLAIN_READS.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{name}:{n}: {pattern}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "plain reads of files a user may name (read them with composer_store::userfile):\n{}",
        found.join("\n")
    );
}

/// A URL or reference a user gave may hold `USER:PASSWORD@`: an error message shows one only
/// through `composer_client::redact`, and the binary's printer passes every error and warning
/// through it too.
#[test]
fn urls_and_references_are_shown_only_redacted() {
    const RAW: &[&str] = &["{url}", "{uri}", "{reference}", "{realm}", "{location}"];
    let mut files = Vec::new();
    for crate_dir in LIBRARIES {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text).filter(|(_, l)| l.contains("#[error(")) {
            for pattern in RAW.iter().filter(|p| line.contains(*p)) {
                found.push(format!("{}:{n}: {pattern}", file.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "error messages show a URL or reference unredacted:\n{}", found.join("\n"));
    let printer = std::fs::read_to_string(repo().join("composer/compose/src/printer.rs")).unwrap();
    for function in ["pub fn error(", "pub fn warn("] {
        let body = printer.split(function).nth(1).and_then(|rest| rest.split("\n    pub fn ").next()).unwrap();
        assert!(body.contains("composer_client::redact("), "Printer::{function}..) does not redact what it prints");
    }
}

/// A lock is a claim: the packages a graph is made from come from `Session::packages`, which
/// checks every one against the signed index (`check_lock`) before it returns. A lock read
/// anywhere else could reach a graph unchecked, so the lock is read in resolution alone (where
/// `compose lock` and `--check` read the old one only to prefer its versions, compare with it,
/// and keep its Release as the floor), and `packages` keeps its check.
#[test]
fn locks_are_read_only_where_their_packages_are_checked() {
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]) {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let allowed = [repo().join("composer/planner/src/resolution.rs"), repo().join("composer/planner/src/lockfile.rs")];
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !allowed.contains(f)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            if line.contains("Lockfile::read(") || line.contains("lockfile::Lockfile::read(") {
                found.push(format!("{}:{n}", file.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "locks read outside resolution, unchecked:\n{}", found.join("\n"));
    let session = std::fs::read_to_string(&allowed[0]).unwrap();
    let packages = session.split("pub fn packages(").nth(1).expect("Session::packages");
    let body = &packages[..packages.find("\n    }\n").expect("its end")];
    assert!(body.contains("self.check_lock(&lock)?"), "Session::packages checks the lock it returns");
    let lock = session.split("pub fn lock(").nth(1).expect("lock()");
    assert!(lock[..lock.find("\n}\n").unwrap()].contains("check_lock(&lock)?"), "compose lock checks what it writes");
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

/// Action keys are made in one module (`composer/planner/src/keys.rs`): what a step's key holds,
/// and the version that invalidates it, is read in one place, and a key made elsewhere cannot
/// drift from it.
#[test]
fn action_keys_are_made_in_one_module() {
    let mut files = Vec::new();
    for crate_dir in LIBRARIES.iter().chain(&["composer/compose"]).filter(|c| **c != "store") {
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
    }
    let keys = repo().join("composer/planner/src/keys.rs");
    assert!(files.contains(&keys));
    let mut found = Vec::new();
    for file in files.iter().filter(|f| **f != keys) {
        let text = read_source(file);
        for (n, line) in code_lines(&text) {
            if line.contains("ActionKey::new(") {
                found.push(format!("{}:{n}", file.strip_prefix(repo()).unwrap().display()));
            }
        }
    }
    assert!(found.is_empty(), "action keys made outside keys.rs:\n{}", found.join("\n"));
}
