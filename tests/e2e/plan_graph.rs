//! The plan is what a build does: for a cold store, a store that holds only the downloads and
//! unpacked packages (the image's epoch changed, so every layer is new) and a warm store, the
//! steps `build` runs are exactly those `plan --json` listed as missing, step for step.

use std::collections::BTreeSet;
use std::path::Path;

use composer_testkit::Compose;

use crate::Fixture;

type StepId = (String, Option<String>, String);

fn id(step: &serde_json::Value) -> StepId {
    (
        step["step"].as_str().unwrap().to_string(),
        step["platform"].as_str().map(str::to_string),
        step["name"].as_str().unwrap().to_string(),
    )
}

/// The missing steps of `plan --json`, after checking the documented shape: every step has an
/// id equal to its place, its dependencies come before it, a cached step has its key.
fn planned_missing(c: &Compose, recipe: &Path) -> BTreeSet<StepId> {
    let plan: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    let steps = plan["steps"].as_array().expect("plan --json has steps");
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["id"], i, "{step}");
        for dep in step["deps"].as_array().unwrap() {
            assert!(dep.as_u64().unwrap() < i as u64, "a dependency after its step: {step}");
        }
        if step["cached"] == true && !matches!(step["step"].as_str(), Some("fetch" | "fetch-wheel" | "source")) {
            assert!(step["key"].is_string(), "a cached step without its key: {step}");
        }
    }
    for layers in plan["images"].as_object().expect("plan --json has images").values() {
        for layer in layers.as_array().unwrap() {
            assert!(layer.as_u64().unwrap() < steps.len() as u64);
        }
    }
    steps.iter().filter(|s| s["cached"] == false).map(id).collect()
}

/// The steps a build ran (resolution aside: it happens before the graph exists).
fn built(c: &Compose, recipe: &Path) -> BTreeSet<StepId> {
    let out = c.run(&["--json", "build", recipe.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["cached"] == false && !matches!(s["step"].as_str(), Some("resolve" | "resolve-wheels")))
        .map(id)
        .collect()
}

/// Cold, half-warm and warm: plan and build agree each time.
fn plan_is_build(c: &Compose, recipe: &Path) {
    // The lock first, so that plan and build resolve nothing differently.
    c.ok(&["lock", recipe.to_str().unwrap()]);
    let cold = planned_missing(c, recipe);
    assert!(!cold.is_empty());
    assert_eq!(built(c, recipe), cold, "cold: build ran other steps than plan listed");

    let text = std::fs::read_to_string(recipe).unwrap();
    let line = text.lines().find(|l| l.starts_with("source_date_epoch = ")).expect("the recipe sets the epoch");
    let epoch: u64 = line.trim_start_matches("source_date_epoch = ").trim().parse().unwrap();
    let moved = text.replace(line, &format!("source_date_epoch = {}", epoch + 1));
    std::fs::write(recipe, moved).unwrap();
    let half = planned_missing(c, recipe);
    assert!(!half.is_empty() && half.iter().all(|(step, _, _)| step != "fetch" && step != "unpack"), "{half:?}");
    assert_eq!(built(c, recipe), half, "half-warm: build ran other steps than plan listed");

    assert!(planned_missing(c, recipe).is_empty(), "warm: the plan still lists steps");
    assert!(built(c, recipe).is_empty(), "warm: a build ran steps");
}

#[test]
fn plan_is_build_for_fixture_recipes() {
    for (packages, extra) in [
        (&["app"][..], ""),
        (&["app", "docs"][..], "[[files]]\npath = \"/etc/a\"\ncontent = \"a\"\n\n[layers]\nstrategy = \"single\"\n"),
    ] {
        let f = Fixture::new(packages, extra);
        plan_is_build(&f.compose, &f.recipe);
    }
    let wheels = crate::wheels::WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    plan_is_build(&wheels.compose, Path::new(wheels.recipe()));
}

#[cfg(feature = "live-tests")]
#[test]
fn plan_is_build_for_example_recipes() {
    use crate::live_debian::{copy_recipe, live_compose};
    let c = live_compose();
    // Every example CI builds (the CPython ones, 6 and 27 minutes, are planned only).
    for example in ["debian-python.toml", "debian-trixie-tools.toml", "python-app.toml"] {
        let recipe = copy_recipe(&c, example);
        plan_is_build(&c, &recipe);
    }
    // Builds: a cold store compiles jemalloc once for amd64.
    let recipe = copy_recipe(&c, "jemalloc-hello.toml");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("platforms = [\"linux/amd64\", \"linux/arm64\"]", "platforms = [\"linux/amd64\"]");
    std::fs::write(&recipe, text).unwrap();
    plan_is_build(&c, &recipe);
}
