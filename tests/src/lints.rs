//! The rules the compiler enforces through clippy (clippy.toml and the workspace's lint table)
//! rather than a scan of the source text: shown to bite on a scratch library crate that takes the
//! repository's lint settings as they are.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's lint tables (`[workspace.lints.*]`), as the repository's Cargo.toml has them.
fn workspace_lints() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let mut tables = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            inside = line.starts_with("[workspace.lints.");
        }
        if inside {
            tables.push_str(line);
            tables.push('\n');
        }
    }
    assert!(tables.contains("print_stdout") && tables.contains("disallowed_methods"), "{tables}");
    tables
}

/// A library crate, no dependencies, set up as every library of the workspace is (`[lints]
/// workspace = true`, the repository's clippy.toml), whose whole code is `code`.
struct ScratchLibrary {
    dir: tempfile::TempDir,
}

impl ScratchLibrary {
    fn new() -> ScratchLibrary {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            "[workspace]\n\n{}\n[package]\nname = \"scratch-library\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[lints]\nworkspace = true\n",
            workspace_lints()
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        std::fs::copy(repo().join("clippy.toml"), dir.path().join("clippy.toml")).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        ScratchLibrary { dir }
    }

    /// `cargo clippy -- -D warnings` over the library holding `code`, as CI runs it: success, and
    /// what clippy said.
    fn clippy(&self, code: &str) -> (bool, String) {
        std::fs::write(self.dir.path().join("src/lib.rs"), format!("//! A scratch library.\n\n{code}\n")).unwrap();
        let out = Command::new(env!("CARGO"))
            .args(["clippy", "--offline", "--quiet", "--", "-D", "warnings"])
            .current_dir(self.dir.path())
            .env("CARGO_TARGET_DIR", self.dir.path().join("target"))
            .env("CLIPPY_CONF_DIR", self.dir.path())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Library crates print nothing and read no environment variable: `println!`, `eprintln!` and
/// `std::env::var` each fail clippy with `-D warnings` (as `.ci/run` runs it), naming the lint,
/// and the same library without them passes.
#[test]
fn a_library_that_prints_or_reads_the_environment_fails_clippy() {
    let library = ScratchLibrary::new();
    let (clean, said) = library.clippy("pub fn answer() -> u32 {\n    42\n}");
    assert!(clean, "a library that neither prints nor reads the environment passes:\n{said}");

    let (passed, said) = library.clippy("pub fn answer() -> u32 {\n    println!(\"thinking\");\n    42\n}");
    assert!(!passed && said.contains("print_stdout") && said.contains("src/lib.rs:4"), "{said}");

    let (passed, said) = library.clippy("pub fn answer() -> u32 {\n    eprintln!(\"thinking\");\n    42\n}");
    assert!(!passed && said.contains("print_stderr") && said.contains("src/lib.rs:4"), "{said}");

    let (passed, said) = library.clippy("pub fn answer() -> Option<String> {\n    std::env::var(\"ANSWER\").ok()\n}");
    assert!(!passed && said.contains("disallowed method `std::env::var`") && said.contains("src/lib.rs:4"), "{said}");
    assert!(said.contains("library crates read no environment"), "the reason is given: {said}");

    let (passed, said) = library.clippy("pub fn answer() -> bool {\n    std::env::var_os(\"ANSWER\").is_some()\n}");
    assert!(!passed && said.contains("disallowed method `std::env::var_os`"), "{said}");
}
