//! The command line as a shell and `man` see it.

use crate::compose;

#[test]
fn completions_and_man_pages_are_generated_for_every_command() {
    let c = compose();
    for shell in ["bash", "zsh", "fish"] {
        let script = c.ok(&["completions", shell]);
        for command in ["build", "plan", "push", "bundle", "store"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let dir = c.home.path().join("man1");
    c.ok(&["man", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("compose.1")).unwrap();
    assert!(page.contains(".TH compose") && page.contains(r"\-\-trusted\-key"), "{page}");
    assert!(dir.join("compose-store-push.1").is_file() && dir.join("compose-build.1").is_file());
    // Each subcommand's help ends with examples.
    assert!(c.ok(&["build", "--help"]).contains("Examples:"));
}

#[test]
fn json_output_is_an_object_with_its_schema_version_and_so_is_a_failure() {
    let f = crate::Fixture::new(&["app"], "");
    let summary = f.compose.build_json(&f.recipe, &[]);
    assert_eq!(summary["schema_version"], 1, "{summary}");
    for args in [vec!["--json", "plan", f.recipe_str()], vec!["--json", "store", "info"]] {
        let out: serde_json::Value = serde_json::from_str(&f.compose.ok(&args)).unwrap();
        assert_eq!(out["schema_version"], 1, "{args:?}: {out}");
    }
    let failed = f.compose.run(&["--json", "build", "no-such-recipe.toml"]);
    assert!(!failed.status.success());
    let error: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(error["schema_version"], 1);
    assert!(error["error"]["message"].as_str().unwrap().contains("no-such-recipe.toml"), "{error}");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("error:"), "the message still goes to stderr");
}
