//! A lock's claims against a signed `Packages` index: `locked::check` for each claim and
//! `locked::check_resolution` for the set, as a build does before it trusts a lock. The index,
//! the requests and the lock all come from the input, so crafted dependency graphs (cycles,
//! providers of providers, conflicts with oneself) reach the resolution check.
//!
//! Input: the index text, a line `---`, request lines, a line `---`, then one claim per line:
//! `name version architecture filename size sha256`.
#![no_main]

use composer_deb::locked::{Claim, check, check_resolution};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, "\n---\n");
    let (Some(index_text), Some(requests), Some(claims)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let mut index = composer_deb::PackageIndex::default();
    if index.parse(index_text, "amd64", "fuzz").is_err() {
        return;
    }
    index.finish();
    let requests: Vec<_> = requests.lines().take(64).filter_map(composer_deb::index::parse_request).collect();
    let mut chosen = Vec::new();
    for line in claims.lines().take(256) {
        let fields: Vec<&str> = line.split(' ').collect();
        let [name, version, architecture, filename, size, sha256] = fields[..] else { continue };
        let Ok(size) = size.parse() else { continue };
        let claim = Claim { name, version, architecture, filename, size, sha256 };
        let _ = check(&index, &claim);
        chosen.push(claim);
    }
    let _ = check_resolution(&index, &chosen, &requests, true);
    let _ = check_resolution(&index, &chosen, &requests, false);
});
