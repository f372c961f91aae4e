//! A wheel from an index: zip, RECORD, METADATA, entry points, paths.
#![no_main]

use std::sync::OnceLock;

static STORE: OnceLock<(tempfile::TempDir, composer_store::Store)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = composer_store::Store::open(dir.path()).unwrap();
        (dir, store)
    });
    let scheme = composer_wheels::install::Scheme::venv("/opt/venv", "3.11");
    if let Ok(installed) =
        composer_wheels::install::install(store, std::io::Cursor::new(data), "fuzz-1.0-py3-none-any.whl", true, &scheme)
    {
        installed.tree.validate().expect("an installed tree is valid");
    }
});
