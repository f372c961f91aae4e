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

/// Arguments clap refuses are a failure like any other: under `--json`, a JSON error document
/// on stdout (clap's message still on stderr, its exit code 2); `--help` and `--version` answer
/// as ever.
#[test]
fn json_answers_in_json_when_the_arguments_are_refused() {
    let c = compose();
    for args in [
        vec!["--json", "build", "--no-such-flag"],
        vec!["build", "r.toml", "--json", "--platform"],
        vec!["--json", "no-such-command"],
        vec!["--json"],
        vec!["--json", "store"],
    ] {
        let out = c.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let error: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(error["schema_version"], 1, "{error}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty(), "{error}");
        assert!(error["error"]["hint"].is_string(), "{error}");
        assert!(!out.stderr.is_empty(), "{args:?}: clap's message still goes to stderr");
    }
    let out = c.run(&["--json", "build", "--no-such-flag"]);
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("--no-such-flag"), "{error}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    // Without --json, stdout stays empty; after `--`, `--json` is no flag.
    for args in [vec!["build", "--no-such-flag"], vec!["build", "--no-such-flag", "--", "--json"]] {
        let out = c.run(&args);
        assert_eq!((out.status.code(), out.stdout.is_empty()), (Some(2), true), "{args:?}");
    }
    for args in [["--json", "--help"], ["--json", "--version"]] {
        let out = c.run(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_err(), "{args:?}: help is text");
    }
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

/// The published schemas of the `--json` documents are the ones the types generate, and what
/// each command prints validates against its schema.
#[test]
fn every_json_document_validates_against_its_published_schema() {
    let f = crate::Fixture::new(&["app"], "");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json");
    let generated = f.compose.home.path().join("schemas");
    f.compose.ok(&["json-schema", "--out", generated.to_str().unwrap()]);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&generated).unwrap().flatten() {
        let name = entry.file_name().to_str().unwrap().to_string();
        let published = std::fs::read_to_string(docs.join(&name)).unwrap_or_default();
        let current = std::fs::read_to_string(entry.path()).unwrap();
        assert_eq!(published, current, "docs/json/{name} is stale: run `compose json-schema --out docs/json`");
        names.push(name.trim_end_matches(".schema.json").to_string());
    }
    for name in ["build", "plan", "lock", "inspect", "store-gc", "error", "push", "wheels-index"] {
        assert!(names.iter().any(|n| n == name), "no published schema for {name}");
    }
    let check = |name: &str, stdout: &str| {
        let schema = std::fs::read_to_string(docs.join(format!("{name}.schema.json"))).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
        let document: serde_json::Value =
            serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {stdout}"));
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&document).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}\n{document}");
    };

    let home = f.compose.home.path();
    let (recipe, secret, bundle) = (f.recipe_str(), home.join("k.secret"), home.join("app.bundle"));
    let (secret, bundle) = (secret.to_str().unwrap(), bundle.to_str().unwrap());
    let key = f.compose.ok(&["--json", "key", "generate", "k", "-o", secret]);
    check("key-generate", &key);
    let public = serde_json::from_str::<serde_json::Value>(&key).unwrap()["public_key"].as_str().unwrap().to_string();
    let layout = f.compose.cwd.join("out/app");
    let cache = format!("dir:{}", home.join("cache").display());
    let runs: [(&str, Vec<&str>); 11] = [
        ("build", vec!["build", recipe]),
        ("plan", vec!["plan", recipe]),
        ("lock", vec!["lock", recipe]),
        ("lock-check", vec!["lock", recipe, "--check"]),
        ("inspect", vec!["inspect", layout.to_str().unwrap()]),
        ("store-info", vec!["store", "info"]),
        ("store-verify", vec!["store", "verify"]),
        ("store-gc", vec!["store", "gc", "--dry-run"]),
        ("store-pin", vec!["store", "pin", recipe]),
        ("bundle", vec!["bundle", recipe, "-o", bundle, "--signing-key", secret]),
        ("store-push", vec!["store", "push", &cache, "--recipe", recipe, "--signing-key", secret]),
    ];
    for (name, args) in runs {
        check(name, &f.compose.ok(&[&["--json"], args.as_slice()].concat()));
    }
    let other = crate::compose();
    check("store-import", &other.ok(&["--json", "store", "import", bundle, "--trusted-key", &public]));
    let failed = f.compose.run(&["--json", "build", "missing.toml"]);
    check("error", &String::from_utf8_lossy(&failed.stdout));
}
