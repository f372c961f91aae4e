//! A PEP 751 lock, as a previous run (or someone else) left it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = composer_wheels::pylock::WheelLock::parse(text, "fuzz.toml".as_ref());
});
