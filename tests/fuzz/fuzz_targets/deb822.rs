//! deb822 paragraphs, a Release file and a Packages index: what a mirror serves.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = composer_deb::control::parse(text);
    if let Ok(release) = composer_deb::release::parse_release(text, "fuzz") {
        let _ = composer_deb::release::check_release(&release, "stable", 1_700_000_000, true, "fuzz");
    }
    let _ = composer_deb::release::parse_date(text);
    let mut index = composer_deb::PackageIndex::default();
    if index.parse(text, "amd64", "fuzz").is_ok() {
        index.finish();
    }
    for line in text.lines().take(64) {
        let _ = composer_deb::index::parse_request(line);
    }
});
