//! The recipe: TOML, then every check with its located error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = composer_recipe::Recipe::parse_str("/nonexistent/fuzz/recipe.toml".as_ref(), text);
});
