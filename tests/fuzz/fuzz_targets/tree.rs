//! A tree manifest read back from a (damaged or hostile) store: parse, validate, merge.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(mut tree) = composer_store::Tree::from_bytes(data) else { return };
    let valid = tree.validate().is_ok();
    if tree.normalize().is_ok() {
        tree.validate().expect("a normalised tree is valid");
    }
    let _ = valid;
});
