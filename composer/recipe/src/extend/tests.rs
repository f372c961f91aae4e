use std::path::Path;

use super::{PATH_KEYS, rebase};

/// Every field the recipe types as a path is rebased in a base: a path field added later and not
/// listed would name a file beside the extending recipe instead.
#[test]
fn every_path_typed_field_is_rebased() {
    let listed: Vec<&str> = PATH_KEYS.iter().map(|keys| *keys.last().unwrap()).collect();
    for (file, text) in [
        ("types.rs", include_str!("../types.rs")),
        ("toolchain.rs", include_str!("../toolchain.rs")),
        ("sdist_settings.rs", include_str!("../sdist_settings.rs")),
    ] {
        for line in text.lines().map(str::trim) {
            let Some(field) = line.strip_prefix("pub ").and_then(|l| l.split_once(": ")) else { continue };
            if field.1.contains("PathBuf") && !matches!(field.0, "dir" | "allowed_paths") {
                assert!(listed.contains(&field.0), "{file}: `{}` is a path but not in extend::PATH_KEYS", field.0);
            }
        }
    }
}

/// Paths by name in a table (`[python.packages.NAME]`) and lists of paths are rebased too, for
/// settings of that shape.
#[test]
fn paths_in_tables_by_name_and_in_lists_are_rebased() {
    let text = "[p.one]\nfiles = [\"a.patch\", \"/abs.patch\"]\n[p.two]\nfiles = [\"b.patch\"]\nother = \"c\"\n";
    let table = toml::de::DeTable::parse(text).unwrap();
    let mut value = toml::de::DeValue::Table(table.into_inner());
    rebase(&mut value, &["p", "*", "files"], Path::new("shared"));
    let table = value.as_table().unwrap();
    let files = |name: &str| -> Vec<String> {
        let entry = table.get("p").unwrap().get_ref().get(name).unwrap().get_ref();
        entry
            .get("files")
            .unwrap()
            .get_ref()
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.get_ref().as_str().unwrap().into())
            .collect()
    };
    assert_eq!(files("one"), ["shared/a.patch", "/abs.patch"]);
    assert_eq!(files("two"), ["shared/b.patch"]);
    let other = table.get("p").unwrap().get_ref().get("two").unwrap().get_ref().get("other").unwrap();
    assert_eq!(other.get_ref().as_str(), Some("c"));
}
