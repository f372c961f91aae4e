//! `compose inspect` on a layout whose `index.json` is the input (digests, media types, nesting).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.path().join("index.json"), data).unwrap();
    let _ = composer_oci::inspect::inspect(dir.path().to_str().expect("a temp dir's path is UTF-8"));
});
