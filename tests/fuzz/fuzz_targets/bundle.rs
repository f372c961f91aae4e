//! A bundle from another machine (`compose store import FILE`): whatever its bytes, the import
//! either takes it whole or refuses it, and a refused bundle leaves the store as it was.
#![no_main]

use composer_cache::{PublicKey, TrustedKeys, bundle};

/// The public half of the key the seed bundle is signed with (`bundle-seed`), so that mutations
/// of a signed bundle get past the signature to the checks behind it.
pub const SEED_PUBLIC_KEY: &str = include_str!("bundle_seed.pub");

fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => todo.push(entry.path()),
                _ => out.push(entry.path()),
            }
        }
    }
    out.sort();
    out
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.bundle");
    std::fs::write(&file, data).unwrap();
    let store_dir = dir.path().join("store");
    let store = composer_store::Store::open(&store_dir).unwrap();
    let before = files_under(&store_dir);
    let trusted = TrustedKeys::new(vec![PublicKey::parse(SEED_PUBLIC_KEY.trim()).unwrap()]);
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    if bundle::import(&store, &file, &trusted, &temp).is_err() {
        assert_eq!(files_under(&store_dir), before, "a refused bundle changed the store");
    }
    assert!(files_under(&temp).is_empty(), "the import left files in its temporary directory");
});
