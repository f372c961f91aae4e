//! A bundle is refused whole when any one of its bytes differs from what `compose bundle` wrote:
//! every byte is either checked against a digest or must be exactly the canonical framing
//! (tar headers, padding, the end of the archive, `oci-layout`, `index.json`).

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use common::result_with;
use composer_cache::{SecretKey, TrustedKeys, bundle};
use composer_store::Store;

mod common;

/// Every file under `root` with its bytes: what an import must leave as it was.
fn listing(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                todo.push(entry.path());
            } else {
                out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_single_byte_changed_anywhere_in_a_bundle_is_refused_and_the_store_is_unchanged() {
    let [one_dir, two_dir, work] = std::array::from_fn(|_| tempfile::tempdir().unwrap());
    let one = Store::open(one_dir.path()).unwrap();
    let result = result_with(&one, serde_json::json!({"name": "faults"}));
    let input = one.put_bytes(b"an input, a package or a wheel").unwrap();
    let key = SecretKey::generate("faults").unwrap();
    let file = work.path().join("good.bundle");
    let locks = [("app.lock".to_string(), b"version = 1\n".to_vec())];
    bundle::write(&one, std::slice::from_ref(&result), &[input.sha256], &locks, Some(&key), &file).unwrap();
    let good = std::fs::read(&file).unwrap();
    let trusted = TrustedKeys::new(vec![key.public()]);

    let two = Store::open(two_dir.path()).unwrap();
    let before = listing(two_dir.path());
    let damaged = work.path().join("damaged.bundle");
    let mut accepted = Vec::new();
    for position in 0..good.len() {
        // 0x20 turns a checksum's trailing space into the NUL a lenient tar reader also takes.
        for flip in [0x01u8, 0x20] {
            let mut bytes = good.clone();
            bytes[position] ^= flip;
            std::fs::write(&damaged, &bytes).unwrap();
            if bundle::import(&two, &damaged, &trusted, work.path()).is_ok() {
                accepted.push((position, flip));
                break;
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "{} of {} damaged bundles were accepted: {:?}",
        accepted.len(),
        good.len(),
        &accepted[..accepted.len().min(20)]
    );
    assert_eq!(listing(two_dir.path()), before);

    // Cut short anywhere, or with anything after it: refused too.
    for bytes in [&good[..good.len() - 1], &good[..good.len() - 1024], &[&good[..], &[0u8; 512]].concat()] {
        std::fs::write(&damaged, bytes).unwrap();
        let error = bundle::import(&two, &damaged, &trusted, work.path()).unwrap_err().to_string();
        assert!(error.contains("end marker"), "{error}");
    }
    assert_eq!(listing(two_dir.path()), before);

    // The bundle as written goes in, with its result.
    let report = bundle::import(&two, &file, &trusted, work.path()).unwrap();
    assert_eq!((report.results, report.inputs, report.lock_files.len()), (1, 1, 1));
    assert!(two.action_get(&result.0).unwrap().is_some());
}
