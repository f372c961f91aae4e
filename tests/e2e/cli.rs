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

#[test]
fn progress_streams_each_step_as_a_line_or_a_json_event() {
    let f = crate::Fixture::new(&["app"], "");
    let out = f.compose.run(&["--progress", "json", "build", f.recipe_str()]);
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let steps: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "step").collect();
    assert!(steps.iter().any(|s| s["step"] == "layer" && s["cached"] == false), "{events:?}");
    assert!(steps.iter().all(|s| s["seconds"].is_number() && s["name"].is_string()));
    assert!(events.iter().any(|e| e["event"] == "status" && e["label"] == "Built"), "{events:?}");

    let out = f.compose.run(&["--progress", "plain", "build", f.recipe_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.trim_start().starts_with("step layer") && l.ends_with("cached")), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr}");
}
