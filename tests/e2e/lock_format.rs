//! Locks written before package identities had kinds (`version = 1`: `sha256` per package,
//! `inrelease_sha256` per release, the distribution's architecture per platform) keep working:
//! read without resolving again, building the same image, written again in today's form by a
//! build that may write the lock and left alone under `--locked`.

use crate::{Fixture, index_digest};

/// A version-2 lock as the writer of version 1 wrote it.
fn as_version_1(lock: &str) -> String {
    let mut out = Vec::new();
    for line in lock.lines() {
        if line == "version = 2" {
            out.push("version = 1".to_string());
        } else if let Some(sha) = line.strip_prefix("identity = [\"sha256:") {
            out.push(format!("sha256 = \"{}\"", sha.trim_end_matches("\"]")));
        } else if let Some(digest) = line.strip_prefix("digest = ") {
            out.push(format!("inrelease_sha256 = {digest}"));
        } else if line.starts_with("codename = ") {
            // A claim the signed Release overrules when the lock is written again.
            out.push("codename = \"claimed\"".to_string());
        } else if line == "platform = \"linux/amd64\"" {
            out.push(line.to_string());
            out.push("architecture = \"amd64\"".to_string());
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n") + "\n"
}

#[test]
fn a_version_1_lock_builds_the_same_image_and_is_rewritten_without_resolving() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    let lock_path = f.recipe.with_extension("lock");
    let current = std::fs::read_to_string(&lock_path).unwrap();
    assert!(current.contains("version = 2") && current.contains("identity = [\"sha256:"), "{current}");
    let old = as_version_1(&current);
    assert!(old.contains("inrelease_sha256") && !old.contains("identity"), "{old}");

    // Under --locked the old file is read, builds the same bytes, and is not touched.
    std::fs::write(&lock_path, &old).unwrap();
    let locked = f.compose.build_json(&f.recipe, &["--locked"]);
    assert_eq!(index_digest(&locked), index_digest(&first));
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), old, "--locked writes no lock");

    // A build that may write the lock writes it in today's form: the same claims, nothing
    // resolved again (the mirror is gone, so a resolution would fail).
    std::fs::remove_dir_all(f.mirror.root.join("dists")).unwrap();
    let rebuilt = f.compose.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&rebuilt), index_digest(&first));
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), current, "the Release as signed, not as claimed");

    // `compose lock` writes it again too, though it locks the same packages.
    std::fs::write(&lock_path, &old).unwrap();
    f.compose.ok(&["--offline", "lock", f.recipe.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), current);
}
