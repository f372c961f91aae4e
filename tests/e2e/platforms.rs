//! The command line over the recipe, as buildx users expect: `--platform` picks platforms,
//! `--tag`, `--label` and `--annotation` stamp the image, `--load` hands it to podman.

use composer_testkit::{Deb, LocalMirror, base_packages, store_objects};

use crate::{compose, write_recipe};

/// A recipe of the base packages for three platforms, on a mirror that has all three.
fn three_platforms() -> (LocalMirror, composer_testkit::Compose, std::path::PathBuf) {
    let mirror = LocalMirror::new();
    let mut debs: Vec<Deb> = Vec::new();
    for arch in ["amd64", "arm64", "armhf"] {
        debs.extend(base_packages(arch));
    }
    mirror.publish("stable", &debs);
    let mut c = compose();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
    let recipe = c.cwd.join("three.toml");
    write_recipe(&recipe, &mirror.keyring, &[], "");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("platforms = [\"linux/amd64\"]", "platforms = [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]");
    std::fs::write(&recipe, text).unwrap();
    (mirror, c, recipe)
}

fn manifests(layout: &std::path::Path) -> Vec<serde_json::Value> {
    let top: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

#[test]
fn platform_picks_what_is_built_and_the_lock_still_covers_every_platform() {
    let (_mirror, c, recipe) = three_platforms();
    let out = c.cwd.join("one");
    let summary = c.build_json(&recipe, &["--platform", "linux/arm64", "-o", out.to_str().unwrap()]);
    let built = manifests(&out);
    assert_eq!(built.len(), 1, "{built:?}");
    assert_eq!(built[0]["platform"]["architecture"], "arm64");
    assert_eq!(summary["manifests"].as_array().unwrap().len(), 1);
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    assert_eq!(lock.matches("[[platform]]").count(), 3, "the lock covers the recipe, not the build");
    let plan = c.ok(&["plan", recipe.to_str().unwrap(), "--platform", "linux/amd64"]);
    let steps: Vec<&str> = plan.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert!(steps.iter().any(|l| l.contains("linux/amd64")), "{plan}");
    assert!(steps.iter().all(|l| !l.contains("linux/arm")), "only amd64 steps are planned: {plan}");
    // Two platforms, then all of them from the same lock.
    let two = c.cwd.join("two");
    c.build_json(&recipe, &["--platform", "linux/amd64", "--platform", "linux/arm/v7", "-o", two.to_str().unwrap()]);
    assert_eq!(manifests(&two).len(), 2);
    let all = c.cwd.join("all");
    c.build_json(&recipe, &["--locked", "-o", all.to_str().unwrap()]);
    assert_eq!(manifests(&all).len(), 3);

    // Said before anything is built, as the reason itself, not wrapped into a parse error.
    let fresh = compose();
    let stderr = fresh.fails(&["build", recipe.to_str().unwrap(), "-o", "docker-archive:x.tar"]);
    assert!(
        stderr.contains(
            "a docker-archive holds one platform, and the image has 3: linux/amd64, linux/arm64, linux/arm/v7"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("add `--platform linux/amd64`"), "{stderr}");
    assert!(!stderr.contains("not understood"), "{stderr}");
    assert!(store_objects(&fresh.store).is_empty(), "nothing was fetched or built before the refusal");
    // Platforms as people write them: the kernel's and Debian's names.
    let aarch64 = c.cwd.join("aarch64.tar");
    let out = format!("docker-archive:{}", aarch64.display());
    c.build_json(&recipe, &["--platform", "linux/aarch64", "-o", &out]);
    assert!(aarch64.is_file());
    let armhf = c.cwd.join("armhf");
    c.build_json(&recipe, &["--platform", "linux/armhf", "-o", armhf.to_str().unwrap()]);
    assert_eq!(manifests(&armhf)[0]["platform"]["variant"], "v7");
    let stderr = c.fails(&["build", recipe.to_str().unwrap(), "--platform", "linux/s390x"]);
    assert!(stderr.contains("linux/s390x"), "{stderr}");
}

#[test]
fn tag_labels_and_annotations_on_the_command_line_win_over_the_recipe() {
    let (_mirror, c, recipe) = three_platforms();
    let out = c.cwd.join("stamped");
    c.build_json(
        &recipe,
        &[
            "--platform",
            "linux/amd64",
            "--tag",
            "commit-abc123",
            "--label",
            "org.opencontainers.image.revision=abc123",
            "--annotation",
            "org.opencontainers.image.source=local",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let top: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "commit-abc123");
    let manifest = composer_testkit::manifest(&out, "amd64");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.source"], "local", "{manifest}");
    let config = composer_testkit::image_config(&out, "amd64");
    assert_eq!(config["config"]["Labels"]["org.opencontainers.image.revision"], "abc123", "{config}");
    let stderr = c.fails(&["build", recipe.to_str().unwrap(), "--tag", "a b"]);
    assert!(stderr.contains("--tag a b"), "{stderr}");

    // --tag repeats: every tag names the image, in a layout, an oci-archive and a docker-archive.
    let tags = ["--tag", "1.2.3", "--tag", "1.2", "--tag", "latest"];
    let multi = c.cwd.join("multi");
    let mut args = vec!["--platform", "linux/amd64", "-o", multi.to_str().unwrap()];
    args.extend(tags);
    let built = c.build_json(&recipe, &args);
    let top: serde_json::Value = serde_json::from_slice(&std::fs::read(multi.join("index.json")).unwrap()).unwrap();
    let named: Vec<&str> = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["1.2.3", "1.2", "latest"]);
    assert!(top["manifests"].as_array().unwrap().iter().all(|m| m["digest"] == built["index"]));
    // A second build with one of the tags moves that tag alone.
    c.build_json(&recipe, &["--platform", "linux/amd64", "-o", multi.to_str().unwrap(), "--tag", "1.2"]);
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(multi.join("index.json")).unwrap()).unwrap();
    assert_eq!(again["manifests"].as_array().unwrap().len(), 3, "{again}");
    let docker = c.cwd.join("multi.tar");
    let out = format!("docker-archive:{}", docker.display());
    let mut args = vec!["--platform", "linux/amd64", "-o", &out];
    args.extend(tags);
    c.build_json(&recipe, &args);
    let listed = tar_member(&docker, "manifest.json");
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(listed[0]["RepoTags"], serde_json::json!(["app:1.2.3", "app:1.2", "app:latest"]));
    assert!(c.fails(&["build", recipe.to_str().unwrap(), "--label", "novalue"]).contains("KEY=VALUE"));
}

#[cfg(feature = "live-tests")]
#[test]
fn load_hands_the_image_to_podman() {
    let (_mirror, c, recipe) = three_platforms();
    let tag = format!("load-{}", std::process::id());
    c.build_json(&recipe, &["--platform", "linux/amd64", "--tag", &tag, "--load"]);
    let name = format!("localhost/app:{tag}");
    let exists = std::process::Command::new("podman").args(["image", "exists", &name]).status().unwrap();
    let _ = std::process::Command::new("podman").args(["rmi", "-f", &name]).output();
    assert!(exists.success(), "podman has no {name}");
}

/// The bytes of `name` in the tar at `path`.
fn tar_member(path: &std::path::Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("{name} is not in {}", path.display());
}
