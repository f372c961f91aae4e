//! Every example recipe parses and validates, offline: a recipe the README points at never rots.

#[test]
fn every_example_recipe_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let recipe = composer_recipe::Recipe::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!recipe.image.platforms.get_ref().is_empty(), "{}", path.display());
        count += 1;
    }
    assert!(count >= 5, "found {count} recipes");
}
