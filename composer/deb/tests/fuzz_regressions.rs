//! Inputs the fuzzers (`tests/fuzz`) once crashed on, kept so that each stays an error and never
//! a panic again. Each file is the input as libFuzzer saved it.

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]

#[test]
fn crafted_debs_that_once_panicked_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = composer_store::Store::open(&dir.path().join("store")).unwrap();
    let inputs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions")).unwrap();
    let mut seen = 0;
    for input in inputs {
        let path = input.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = composer_deb::unpack::unpack(&store, bytes.as_slice(), "regression.deb", true);
        assert!(result.is_err(), "{} was accepted", path.display());
        seen += 1;
    }
    assert!(seen >= 2, "the regression inputs are there");
}
