//! Every example recipe parses and validates, offline: a recipe the README points at never rots.

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]

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

/// The recipe JSON Schema in docs/ is the one the types generate, and every example recipe
/// validates against it (what an editor with a TOML language server checks as one types).
#[test]
fn the_published_recipe_schema_is_current_and_every_example_validates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let generated = composer_recipe::json_schema();
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("docs/recipe.schema.json")).unwrap()).unwrap();
    assert!(
        published == generated,
        "docs/recipe.schema.json is stale: run `compose recipe-schema > docs/recipe.schema.json`"
    );
    let validator = jsonschema::validator_for(&generated).unwrap();
    let mut count = 0;
    for entry in std::fs::read_dir(root.join("recipes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        // A recipe that extends another is a part: the schema checks what it means, merged.
        let chain = composer_recipe::extend::Chain::load(&path, &[]).unwrap();
        let (json, _) = composer_recipe::show::json(&chain, &chain.merged().unwrap());
        let errors: Vec<String> =
            validator.iter_errors(&json).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        count += 1;
    }
    assert!(count >= 5);
    // And it does refuse what the parser refuses: an unknown key.
    let wrong = serde_json::json!({"image": {"name": "x", "platforms": ["linux/amd64"], "tagg": "x"}, "base": {"suite": "s", "mirror": "m"}});
    assert!(!validator.is_valid(&wrong));
}

/// The musl examples extend one another (issue 28): what each means once merged is recorded in
/// tests/golden/recipes/, from before they did, so that no value reaching a step key or the image
/// changed with the split. `COMPOSE_BLESS=1` records them anew: only for a deliberate change.
#[test]
fn the_musl_examples_mean_what_they_meant_before_they_extended_one_another() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["python-musl-baseline", "python-musl", "python-musl-app"] {
        let recipe = composer_recipe::Recipe::load(&root.join(format!("recipes/{name}.toml"))).unwrap();
        let effective = serde_json::to_string_pretty(&recipe).unwrap() + "\n";
        let golden = root.join(format!("tests/golden/recipes/{name}.json"));
        if std::env::var_os("COMPOSE_BLESS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &effective).unwrap();
            continue;
        }
        let recorded = std::fs::read_to_string(&golden).unwrap();
        assert!(effective == recorded, "{name}: the effective recipe is not the recorded one ({})", golden.display());
    }
}

/// What `compose recipe show` prints is a recipe without `extends` that means the same: written
/// beside the recipe, it loads as the same recipe (paths rebased, `append` applied).
#[test]
fn the_shown_effective_recipe_is_the_recipe() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let chain = composer_recipe::extend::Chain::load(&path, &[]).unwrap();
        let shown = composer_recipe::show::annotated_toml(&chain, &chain.merged().unwrap());
        let again = composer_recipe::Recipe::parse_str(&path, &shown).unwrap_or_else(|e| panic!("{e}"));
        let recipe = composer_recipe::Recipe::load(&path).unwrap();
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&recipe).unwrap(),
            "{}",
            path.display()
        );
    }
}
