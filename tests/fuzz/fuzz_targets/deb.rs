//! A `.deb` from a mirror: `ar`, tar in gz/xz/zst or none, control files, paths and links.
#![no_main]

use std::sync::OnceLock;

static STORE: OnceLock<(tempfile::TempDir, composer_store::Store)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = composer_store::Store::open(dir.path()).unwrap();
        (dir, store)
    });
    if let Ok(unpacked) = composer_deb::unpack::unpack(store, data, "fuzz.deb", true) {
        // Whatever unpacking accepts must be a tree the store accepts.
        unpacked.tree.validate().expect("an unpacked tree is valid");
        store.put_tree(&unpacked.tree).expect("an unpacked tree is storable");
    }
});
