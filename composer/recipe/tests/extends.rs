//! Recipes that extend others (`extends`), read from real files: the merge rules, located errors,
//! cycles, depth, and what a base may reach (composer/recipe/src/extend.rs).

// Test code may make temporary directories under TMPDIR and read its environment (clippy.toml
// forbids it to the library).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use composer_recipe::extend::MAX_DEPTH;
use composer_recipe::{Recipe, RecipeError};

const BASE: &str = "[image]\nname = \"base\"\nplatforms = [\"linux/amd64\"]\n\n[base]\nsuite = \"bookworm\"\nmirror = \"debian\"\npackages = [\"a\", \"b\"]\n";

/// A directory of recipes, `(name, text)`; returns it and the first recipe's path.
fn recipes(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let first = dir.path().join(files[0].0);
    (dir, first)
}

fn load(files: &[(&str, &str)]) -> Result<Recipe, RecipeError> {
    let (_dir, first) = recipes(files);
    Recipe::load(&first)
}

/// The error's text with its hint, and the file it names (its name only).
fn failure(files: &[(&str, &str)]) -> (String, String, usize) {
    let err = load(files).unwrap_err();
    let said = format!("{err} | {}", err.hint().unwrap_or_default());
    match err {
        RecipeError::Invalid { path, line, .. } => {
            (said, path.file_name().unwrap().to_string_lossy().into_owned(), line)
        }
        other => panic!("not located: {other}"),
    }
}

fn packages(recipe: &Recipe) -> Vec<&str> {
    recipe.base.packages.iter().map(|p| p.get_ref().as_str()).collect()
}

#[test]
fn tables_merge_by_key_and_the_extending_recipe_wins() {
    let child = "extends = \"base.toml\"\n[image]\nname = \"child\"\n";
    let recipe = load(&[("child.toml", child), ("base.toml", BASE)]).unwrap();
    assert_eq!(recipe.image.name.get_ref(), "child");
    assert_eq!(recipe.image.platforms.get_ref()[0].to_string(), "linux/amd64");
    assert_eq!(recipe.base.suite, "bookworm");
}

#[test]
fn lists_replace_unless_marked_to_append() {
    let replaced = load(&[("c.toml", "extends = \"base.toml\"\n[base]\npackages = [\"c\"]\n"), ("base.toml", BASE)]);
    assert_eq!(packages(&replaced.unwrap()), ["c"]);
    let appended =
        load(&[("c.toml", "extends = \"base.toml\"\n[base]\npackages = { append = [\"c\"] }\n"), ("base.toml", BASE)]);
    assert_eq!(packages(&appended.unwrap()), ["a", "b", "c"]);
    // Through a chain: the middle recipe's append is a list before the last appends to it.
    let chain = load(&[
        ("c.toml", "extends = \"m.toml\"\n[base]\npackages = { append = [\"d\"] }\n"),
        ("m.toml", "extends = \"base.toml\"\n[base]\npackages = { append = [\"c\"] }\n"),
        ("base.toml", BASE),
    ]);
    assert_eq!(packages(&chain.unwrap()), ["a", "b", "c", "d"]);
    // With nothing below, an append is its list.
    let alone = BASE.replace("packages = [\"a\", \"b\"]", "packages = { append = [\"a\"] }");
    assert_eq!(packages(&load(&[("c.toml", "extends = \"base.toml\"\n"), ("base.toml", &alone)]).unwrap()), ["a"]);
}

#[test]
fn arrays_of_tables_merge_by_name_new_names_after_the_base_ones() {
    let base = format!(
        "{BASE}[[builds]]\nname = \"one\"\nscript = \"true\"\n\n[[builds]]\nname = \"two\"\nscript = \"true\"\nbuild_depends = [\"make\"]\n\n\
         [[builds]]\nname = \"three\"\nscript = \"true\"\n"
    );
    let child = "extends = \"base.toml\"\n[[builds]]\nname = \"four\"\nscript = \"false\"\n\n\
                 [[builds]]\nname = \"two\"\nscript = \"exit 0\"\n\n[[builds]]\nname = \"three\"\nremove = true\n";
    let recipe = load(&[("child.toml", child), ("base.toml", &base)]).unwrap();
    let builds: Vec<(&str, &str, &[String])> =
        recipe.builds.iter().map(|b| (b.name.get_ref().as_str(), b.script.as_str(), &b.build_depends[..])).collect();
    let make = ["make".to_string()];
    assert_eq!(builds, [("one", "true", &[][..]), ("two", "exit 0", &make[..]), ("four", "false", &[][..])]);
}

#[test]
fn removing_what_no_base_has_is_located_in_the_extending_recipe() {
    let child = "extends = \"base.toml\"\n[[builds]]\nname = \"ghost\"\nremove = true\n";
    let (said, file, line) = failure(&[("child.toml", child), ("base.toml", BASE)]);
    assert!(said.contains("`remove = true` takes out the entry with name = \"ghost\""), "{said}");
    assert_eq!((file.as_str(), line), ("child.toml", 4));
}

#[test]
fn errors_are_located_in_the_file_that_wrote_the_value() {
    // A syntax error in the base.
    let (said, file, line) =
        failure(&[("child.toml", "extends = \"base.toml\"\n"), ("base.toml", &format!("{BASE}oops = \n"))]);
    assert_eq!((file.as_str(), line), ("base.toml", 9), "{said}");
    // An unknown key in the base, and in the extending recipe.
    let (said, file, line) =
        failure(&[("child.toml", "extends = \"base.toml\"\n"), ("base.toml", &BASE.replace("suite", "suit"))]);
    assert!(said.contains("unknown field `suit`"), "{said}");
    assert_eq!((file.as_str(), line), ("base.toml", 6));
    let (said, file, line) =
        failure(&[("child.toml", "extends = \"base.toml\"\n\n[base]\nmirrorr = \"x\"\n"), ("base.toml", BASE)]);
    assert!(said.contains("unknown field `mirrorr`") && said.contains("did you mean"), "{said}");
    assert_eq!((file.as_str(), line), ("child.toml", 4));
    // A bad platform (refused while deserializing) in the extending recipe.
    let (said, file, line) = failure(&[
        ("child.toml", "extends = \"base.toml\"\n[image]\nplatforms = [\"linux/z80\"]\n"),
        ("base.toml", BASE),
    ]);
    assert_eq!((file.as_str(), line), ("child.toml", 3), "{said}");
    // A bad package name (refused by validation) in the base, another in the extending recipe.
    let bad = BASE.replace("\"b\"]", "\"b c\"]");
    let (said, file, line) = failure(&[("child.toml", "extends = \"base.toml\"\n"), ("base.toml", &bad)]);
    assert!(said.contains("`b c` is not a package request"), "{said}");
    assert_eq!((file.as_str(), line), ("base.toml", 8));
    let child = "extends = \"base.toml\"\n[base]\npackages = { append = [\"c d\"] }\n";
    let (said, file, line) = failure(&[("child.toml", child), ("base.toml", BASE)]);
    assert!(said.contains("`c d` is not a package request") && said.contains("append"), "{said}");
    assert_eq!((file.as_str(), line), ("child.toml", 3));
    // A build that uses one no recipe defines, in the base: its line, its file.
    let base = format!("{BASE}\n[[builds]]\nname = \"b\"\nuses = [\"nothing\"]\nscript = \"true\"\n");
    let (said, file, line) = failure(&[("child.toml", "extends = \"base.toml\"\n"), ("base.toml", &base)]);
    assert!(said.contains("uses `nothing`"), "{said}");
    assert_eq!((file.as_str(), line), ("base.toml", 12));
}

#[test]
fn a_cycle_is_refused_naming_the_chain() {
    let (said, file, line) = failure(&[
        ("a.toml", "extends = \"b.toml\"\n"),
        ("b.toml", "\nextends = \"c.toml\"\n"),
        ("c.toml", "extends = \"b.toml\"\n"),
    ]);
    assert!(
        said.contains("in a cycle") && said.contains("b.toml` extends `") && said.contains("c.toml` extends `"),
        "{said}"
    );
    assert_eq!((file.as_str(), line), ("c.toml", 1));
    let (said, _, _) = failure(&[("a.toml", "extends = \"a.toml\"\n")]);
    assert!(said.contains("in a cycle"), "{said}");
}

#[test]
fn a_chain_deeper_than_the_limit_is_refused() {
    let names: Vec<String> = (0..=MAX_DEPTH + 1).map(|i| format!("r{i}.toml")).collect();
    let texts: Vec<String> = (0..=MAX_DEPTH + 1)
        .map(|i| match i == MAX_DEPTH + 1 {
            true => BASE.to_string(),
            false => format!("extends = \"r{}.toml\"\n", i + 1),
        })
        .collect();
    let files: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(texts.iter().map(String::as_str)).collect();
    let (said, file, _) = failure(&files);
    assert!(said.contains(&format!("more than {MAX_DEPTH} deep")), "{said}");
    assert_eq!(file, format!("r{MAX_DEPTH}.toml"));
    // One shorter is fine.
    let mut shorter = files[1..].to_vec();
    shorter[0].0 = "r1.toml";
    assert!(load(&shorter).is_ok());
}

#[test]
fn a_base_outside_the_recipes_directory_is_refused_without_showing_it() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.toml");
    std::fs::write(&secret, "password = \"hunter2\"\n").unwrap();
    let relative = format!("../{}/secret.toml", outside.path().file_name().unwrap().to_str().unwrap());
    for named in [relative.as_str(), secret.to_str().unwrap(), "link.toml", "../../../../../../etc/passwd"] {
        let (dir, child) = recipes(&[("child.toml", &format!("extends = \"{named}\"\n"))]);
        std::os::unix::fs::symlink(&secret, dir.path().join("link.toml")).unwrap();
        let err = Recipe::load(&child).unwrap_err();
        let said = format!("{err} | {}", err.hint().unwrap_or_default());
        assert!(said.contains("is outside the recipe's directory") && said.contains("--allow-path"), "{named}: {said}");
        assert!(!said.contains("hunter2") && !said.contains("root:"), "{named}: {said}");
        assert!(matches!(err, RecipeError::Invalid { line: 1, .. }), "{named}: {said}");
    }
    // Allowed by the person who runs the build, it is read (and then fails as the non-recipe it is).
    let (_dir, child) = recipes(&[("child.toml", &format!("extends = \"{}\"\n", secret.display()))]);
    let err = Recipe::load_allowing(&child, &[outside.path().to_path_buf()]).unwrap_err();
    assert!(err.to_string().contains("unknown field `password`"), "{err}");
}

#[test]
fn paths_in_a_base_keep_naming_the_files_beside_it_and_stay_confined() {
    let base = format!(
        "{}keyring = \"keys/k.gpg\"\n\n[[files]]\npath = \"/etc/a\"\nsource = \"a.conf\"\n\n[[files]]\npath = \"/etc/b\"\nsource = \"/abs/b.conf\"\n\n\
         [[sources]]\nname = \"s\"\npath = \"../../outside.tar\"\n",
        BASE
    );
    let child = "extends = \"shared/base.toml\"\n\n[[files]]\npath = \"/etc/c\"\nsource = \"c.conf\"\n";
    let (_dir, first) = recipes(&[
        ("r/child.toml", child),
        ("r/shared/base.toml", &base),
        ("r/shared/keys/k.gpg", "k"),
        ("r/shared/a.conf", "a"),
        ("outside.tar", "x"),
    ]);
    let recipe = Recipe::load(&first).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recipe.base.keyring.as_deref(), Some(Path::new("shared/keys/k.gpg")));
    let sources: Vec<Option<&Path>> = recipe.files.iter().map(|f| f.source.as_deref()).collect();
    assert_eq!(sources, [Some(Path::new("shared/a.conf")), Some(Path::new("/abs/b.conf")), Some(Path::new("c.conf"))]);
    let source = recipe.sources[0].path.as_ref().unwrap().get_ref();
    assert_eq!(source, Path::new("shared/../../outside.tar"));
    // Read as the recipe reads it: refused, though the base named it.
    let policy = recipe.file_policy(composer_store::userfile::Kind::LOCAL_SOURCE);
    let err = composer_store::userfile::read(&policy.join(source), &policy).unwrap_err();
    assert!(err.to_string().contains("outside the recipe's directory"), "{err}");
    let keyring = recipe.base.keyring.as_ref().unwrap();
    assert_eq!(composer_store::userfile::read(&policy.join(keyring), &policy).unwrap(), b"k");
}

/// `extends` may name any file the recipe can reach (a signing key, a credentials file): an
/// error in it keeps its place, never its lines, whether TOML or the recipe's own checks
/// refuse it.
#[test]
fn a_base_that_is_no_recipe_never_has_its_lines_shown() {
    for (secret, wanted) in [
        ("ci-cache:XZVnSECRETVALUEGA==\n", "signing.key:1"),
        ("password = \"hunter2-SECRETVALUE\"\n", "unknown field `password`"),
    ] {
        let (said, file, _) = failure(&[("r.toml", "extends = \"signing.key\"\n"), ("signing.key", secret)]);
        assert!(!said.contains("SECRETVALUE"), "{said}");
        assert!(said.contains(wanted) && file == "signing.key", "{said}");
    }
    // The recipe's own lines are still shown where it is wrong.
    let (said, file, _) =
        failure(&[("r.toml", "extends = \"base.toml\"\n[image]\nname = \"BAD NAME\"\n"), ("base.toml", BASE)]);
    assert!(said.contains("name = \"BAD NAME\"") && file == "r.toml", "{said}");
}

/// Paths a base appends (`{ append = [...] }`) name files beside the base, as its other paths
/// do; `./` is dropped, so a file is named one way however the path was written.
#[test]
fn paths_a_base_appends_are_rebased_and_every_path_is_folded() {
    let base = format!("files = {{ append = [{{ path = \"/etc/app.conf\", source = \"./app.conf\" }}] }}\n{BASE}");
    let (dir, first) = recipes(&[
        ("r.toml", "extends = \"./shared/base.toml\"\n"),
        ("shared/base.toml", &base),
        ("shared/app.conf", "x"),
    ]);
    let recipe = Recipe::load(&first).unwrap();
    assert_eq!(recipe.files[0].source.as_deref(), Some(Path::new("shared/app.conf")));
    drop(dir);
}

/// One file names an entry of an array of tables once, with `extends` as without; an entry that
/// takes a base's out says nothing else.
#[test]
fn an_entry_named_twice_in_one_file_and_a_removal_with_settings_are_refused() {
    let base = format!("{BASE}[[accounts.users]]\nname = \"app\"\nuid = 1000\n");
    let twice = "extends = \"base.toml\"\n[[accounts.users]]\nname = \"app\"\nuid = 1001\n\
                 [[accounts.users]]\nname = \"app\"\nuid = 1002\n";
    let (said, file, line) = failure(&[("r.toml", twice), ("base.toml", &base)]);
    assert!(said.contains("the entry with name = \"app\" is listed twice") && file == "r.toml" && line == 5, "{said}");
    let removal = "extends = \"base.toml\"\n[[accounts.users]]\nname = \"app\"\nremove = true\nuid = 7\n";
    let (said, _, _) = failure(&[("r.toml", removal), ("base.toml", &base)]);
    assert!(said.contains("an entry with `remove = true` says only which entry it takes out"), "{said}");
}

/// A check that names a table (`[layers]`) points at the file and line of its header, not at
/// the same words in a comment of the extending recipe.
#[test]
fn a_tables_error_is_located_at_its_header_in_the_base() {
    let base = format!("{BASE}\n[layers]\nmax_layers = 0\n");
    let (said, file, line) =
        failure(&[("r.toml", "# see [layers] in the base\nextends = \"base.toml\"\n"), ("base.toml", &base)]);
    assert!(file == "base.toml" && line == 10, "{said}");
}

/// Merging is linear in the entries: a recipe of thousands of `[[files]]` over a base of as many
/// loads in moments, not minutes (each entry once looked up every entry before it).
#[test]
fn thousands_of_entries_merge_in_moments() {
    let entries = |dir: &str| -> String {
        (0..10_000).map(|i| format!("[[files]]\npath = \"/{dir}/{i}\"\ncontent = \"\"\n")).collect()
    };
    let base = format!("{BASE}{}", entries("b"));
    let child = format!("extends = \"base.toml\"\n{}", entries("c"));
    let started = std::time::Instant::now();
    let recipe = load(&[("r.toml", &child), ("base.toml", &base)]).unwrap();
    assert_eq!(recipe.files.len(), 20_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// A base's entry is replaced whole by taking it out and writing the new one (a `[[files]]`
/// entry cannot go from `source` to `content` key by key); `append` over what is no list says so.
#[test]
fn a_base_entry_is_replaced_whole_by_removing_it_first_and_append_needs_a_list() {
    let base = format!("{BASE}[[files]]\npath = \"/etc/app.conf\"\nsource = \"app.conf\"\n");
    let child = "extends = \"base.toml\"\n[[files]]\npath = \"/etc/app.conf\"\nremove = true\n\n\
                 [[files]]\npath = \"/etc/app.conf\"\ncontent = \"inline\"\n";
    let recipe = load(&[("r.toml", child), ("base.toml", &base)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recipe.files.len(), 1);
    assert_eq!((recipe.files[0].source.as_deref(), recipe.files[0].content.as_deref()), (None, Some("inline")));
    let (said, file, _) =
        failure(&[("r.toml", "extends = \"base.toml\"\n[image]\nname = { append = [\"x\"] }\n"), ("base.toml", BASE)]);
    assert!(said.contains("appends to a list, and the base's value here is not one") && file == "r.toml", "{said}");
}
