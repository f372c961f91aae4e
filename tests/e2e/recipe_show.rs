//! Recipes that extend others (`extends`): what `compose recipe show` prints, errors located in
//! the file that wrote the value, and two recipes on one base sharing its steps' keys.

use std::path::{Path, PathBuf};

use composer_testkit::{Compose, Deb, LocalMirror};

use crate::keyring_beside;

/// `shared/base.toml` (the fixture mirror, its keyring beside it, one build) and the recipes of
/// `children` (name, text) beside `shared/`.
struct Family {
    mirror: LocalMirror,
    compose: Compose,
}

fn family(children: &[(&str, &str)]) -> (Family, Vec<PathBuf>) {
    // The fixture archive, and what a build step's root needs (stand-ins: nothing runs here).
    let mirror = LocalMirror::new();
    let mut debs = crate::fixture_packages("1.0");
    debs.push(Deb::new("build-essential", "12.9").file("usr/share/doc/build-essential/README", b"stand-in"));
    debs.push(Deb::new("mawk", "1.3").file("usr/bin/mawk", b"stand-in"));
    mirror.publish("stable", &debs);
    let mut compose = crate::compose();
    compose.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let f = Family { mirror, compose };
    let base = f.compose.cwd.join("shared/base.toml");
    std::fs::create_dir_all(base.parent().unwrap()).unwrap();
    let keyring = keyring_beside(&base, &f.mirror.keyring);
    std::fs::write(
        &base,
        format!(
            "[image]\nname = \"base\"\nplatforms = [\"linux/amd64\"]\nsource_date_epoch = 1700000000\n\n\
             [base]\nsuite = \"stable\"\nmirror = \"local\"\nkeyring = \"{keyring}\"\npackages = [\"app\"]\n\n\
             [[builds]]\nname = \"shared\"\nscript = \"mkdir -p $DESTDIR/etc && echo shared > $DESTDIR/etc/shared\"\n"
        ),
    )
    .unwrap();
    let paths = children
        .iter()
        .map(|(name, text)| {
            let path = f.compose.cwd.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    (f, paths)
}

const CHILD: &str =
    "extends = \"shared/base.toml\"\n\n[image]\nname = \"child\"\n\n[base]\npackages = { append = [\"docs\"] }\n";

#[test]
fn recipe_show_prints_the_effective_recipe_with_where_each_value_came_from() {
    let (f, paths) = family(&[("child.toml", CHILD)]);
    let child = paths[0].to_str().unwrap();
    let shown = f.compose.ok(&["recipe", "show", child]);
    let base = f.compose.cwd.join("shared/base.toml");
    let line = |text: &str| shown.lines().find(|l| l.starts_with(text)).unwrap_or_else(|| panic!("{text}:\n{shown}"));
    assert_eq!(line("name = \"child\""), format!("name = \"child\"  # {child}:4"));
    assert_eq!(line("suite = "), format!("suite = \"stable\"  # {}:7", base.display()));
    // The keyring is the base's file, named from the extending recipe's directory.
    assert!(line("keyring = ").starts_with("keyring = \"shared/keyring-"), "{shown}");
    assert_eq!(line("packages = "), format!("packages = [\"app\", \"docs\"]  # {child}:7"));
    assert!(shown.contains(&format!("[[builds]]  # {}:12\nname = \"shared\"", base.display())), "{shown}");

    // Written beside the recipe, the shown text is a recipe without `extends` that means the same.
    let effective = f.compose.cwd.join("effective.toml");
    std::fs::write(&effective, &shown).unwrap();
    let json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&f.compose.ok(&["--json", "recipe", "show", path.to_str().unwrap()])).unwrap()
    };
    let (of_child, of_effective) = (json(&paths[0]), json(&effective));
    assert_eq!(of_child["effective"], of_effective["effective"]);
    assert_eq!(of_child["extends"], serde_json::json!([base]));
    assert_eq!(of_effective["extends"], serde_json::json!([]));
    let origin = |pointer: &str| {
        let all = of_child["origins"].as_array().unwrap();
        let found = all.iter().find(|o| o["pointer"] == pointer).unwrap_or_else(|| panic!("{pointer}: {all:?}"));
        (found["file"].as_str().unwrap().to_string(), found["line"].as_u64().unwrap())
    };
    assert_eq!(origin("/base/suite"), (base.display().to_string(), 7));
    assert_eq!(origin("/base/packages/0"), (base.display().to_string(), 10));
    assert_eq!(origin("/base/packages/1"), (child.to_string(), 7));
    assert_eq!(origin("/builds/0/script"), (base.display().to_string(), 14));
    // The document is the published one.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json/recipe-show.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(docs).unwrap()).unwrap();
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(&of_child));
}

#[test]
fn errors_in_a_base_or_its_extending_recipe_name_the_file_and_line_that_wrote_them() {
    let (f, paths) = family(&[
        ("typo.toml", "extends = \"shared/base.toml\"\n\n[base]\npakages = [\"x\"]\n"),
        ("bad-uses.toml", "extends = \"shared/base.toml\"\n\n[[builds]]\nname = \"shared\"\nuses = [\"nothing\"]\n"),
        ("outside.toml", "# reaches out\nextends = \"../../../../../../../etc/passwd\"\n"),
        ("gone.toml", "extends = \"shared/nothing.toml\"\n"),
        ("plain.toml", "extends = \"shared/base.toml\"\n"),
    ]);
    let fails = |path: &Path| f.compose.fails(&["plan", path.to_str().unwrap()]);
    let stderr = fails(&paths[0]);
    assert!(stderr.contains("typo.toml:4:1") && stderr.contains("did you mean `packages`?"), "{stderr}");
    let stderr = fails(&paths[1]);
    assert!(stderr.contains("bad-uses.toml:5:9") && stderr.contains("uses `nothing`"), "{stderr}");
    let stderr = fails(&paths[2]);
    assert!(stderr.contains("outside.toml:2:11") && stderr.contains("outside the recipe's directory"), "{stderr}");
    assert!(stderr.contains("--allow-path") && !stderr.contains("root:"), "{stderr}");
    let stderr = fails(&paths[3]);
    assert!(stderr.contains("gone.toml:1:11") && stderr.contains("shared/nothing.toml"), "{stderr}");
    // The base's own mistake, in the base, seen through either recipe.
    let base = f.compose.cwd.join("shared/base.toml");
    let text = std::fs::read_to_string(&base).unwrap().replace("suite", "suit");
    std::fs::write(&base, text).unwrap();
    let stderr = f.compose.fails(&["recipe", "show", paths[4].to_str().unwrap()]);
    assert!(stderr.contains("shared/base.toml:7:1") && stderr.contains("unknown field `suit`"), "{stderr}");
    // Nothing was written: no lock, no output.
    assert!(!f.compose.cwd.join("out").exists() && !f.compose.cwd.join("typo.lock").exists());
}

/// Point 5 of issue 28: a step two recipes share through their base keeps one key, so the cache
/// is shared, though the images differ.
#[test]
fn two_recipes_extending_one_base_plan_one_key_for_their_shared_build() {
    let other = "extends = \"shared/base.toml\"\n\n[image]\nname = \"other\"\n\n[config]\ncmd = [\"/bin/true\"]\n";
    let (f, paths) = family(&[("child.toml", CHILD), ("other.toml", other)]);
    let key = |path: &Path| {
        let plan: serde_json::Value =
            serde_json::from_str(&f.compose.ok(&["--json", "plan", path.to_str().unwrap()])).unwrap();
        let steps = plan["steps"].as_array().unwrap();
        let shared = steps.iter().find(|s| s["step"] == "build" && s["name"] == "shared").expect("the shared build");
        shared["key"].as_str().expect("a planned build has its key").to_string()
    };
    assert_eq!(key(&paths[0]), key(&paths[1]));
    // And a change to the shared build is a change for both.
    let base = f.compose.cwd.join("shared/base.toml");
    let before = key(&paths[0]);
    let text = std::fs::read_to_string(&base).unwrap().replace("echo shared", "echo changed");
    std::fs::write(&base, text).unwrap();
    assert_ne!(key(&paths[0]), before);
    assert_eq!(key(&paths[0]), key(&paths[1]));
}
