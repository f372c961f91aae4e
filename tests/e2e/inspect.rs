//! `compose inspect` on what users hand it: layouts with several tags, archives of both kinds,
//! layouts other tools wrote.

use crate::Fixture;

fn inspect(f: &Fixture, image: &str) -> serde_json::Value {
    serde_json::from_str(&f.compose.ok(&["--json", "inspect", image])).unwrap()
}

#[test]
fn inspect_reads_tagged_layouts_and_both_archives_with_their_configs() {
    let f = Fixture::new(
        &["app"],
        "[config]\ncmd = [\"/usr/bin/app\"]\nuser = \"1000\"\nworkdir = \"/srv\"\nenv = { MODE = \"test\" }\nlabels = { team = \"x\" }\n",
    );
    let layout = f.compose.cwd.join("layout");
    let latest = f.compose.build_json(&f.recipe, &["-o", layout.to_str().unwrap()]);
    let v2 = f.compose.build_json(&f.recipe, &["-o", layout.to_str().unwrap(), "--tag", "v2", "--label", "team=y"]);

    // Two tags: one must be named.
    let stderr = f.compose.fails(&["inspect", layout.to_str().unwrap()]);
    assert!(stderr.contains("name one as PATH:TAG") && stderr.contains("latest") && stderr.contains("v2"), "{stderr}");
    let shown = inspect(&f, &format!("oci:{}:v2", layout.display()));
    assert_eq!(shown["digest"], v2["index"]);
    assert_eq!(shown["media_type"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(shown["tags"].as_array().unwrap().len(), 2);
    let manifest = &shown["manifests"][0];
    assert_eq!(manifest["platform"], "linux/amd64");
    let config = &manifest["config_details"];
    assert_eq!(config["cmd"], serde_json::json!(["/usr/bin/app"]));
    assert_eq!((config["user"].as_str(), config["workdir"].as_str()), (Some("1000"), Some("/srv")));
    assert!(config["env"].as_array().unwrap().iter().any(|e| e == "MODE=test"));
    assert_eq!(config["labels"]["team"], "y");
    assert!(manifest["uncompressed_size"].as_u64() > manifest["size"].as_u64(), "{manifest}");
    assert_eq!(inspect(&f, &format!("{}:latest", layout.display()))["digest"], latest["index"]);

    let text = f.compose.ok(&["inspect", &format!("{}:latest", layout.display())]);
    assert!(
        text.contains("index sha256:") && text.contains("cmd [\"/usr/bin/app\"]") && text.contains("uncompressed"),
        "{text}"
    );

    let archive = f.compose.cwd.join("image.tar");
    let built = f.compose.build_json(&f.recipe, &["-o", &format!("docker-archive:{}", archive.display())]);
    let docker = inspect(&f, &format!("docker-archive:{}", archive.display()));
    assert_eq!(docker["format"], "docker-archive");
    // Each digest by what it is: the manifest its readers make of it (which the build printed
    // too, and skopeo shows), and the config, which is the image ID docker shows.
    assert_eq!(docker["digest"], built["docker_archive"]["manifest"], "{docker} {built}");
    assert_eq!(docker["manifests"][0]["digest"], built["docker_archive"]["manifest"]);
    assert_eq!(docker["manifests"][0]["config"], built["docker_archive"]["image_id"]);
    assert_ne!(docker["digest"], docker["manifests"][0]["config"]);
    assert!(built.get("index").is_some(), "{built}");
    assert_eq!(docker["manifests"][0]["platform"], "linux/amd64");
    assert_eq!(docker["manifests"][0]["config_details"]["labels"]["team"], "x");
    assert_eq!(docker["reference"], "app:latest");
    // The same file named without its transport is recognised too.
    assert_eq!(inspect(&f, archive.to_str().unwrap())["format"], "docker-archive");
}

#[cfg(feature = "live-tests")]
#[test]
fn inspect_reads_a_layout_skopeo_wrote_for_one_platform() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let ours = f.compose.cwd.join("out/app");
    let theirs = f.compose.cwd.join("skopeo-layout");
    let copy = std::process::Command::new("skopeo")
        .args(["copy", &format!("oci:{}:latest", ours.display()), &format!("oci:{}:copied", theirs.display())])
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let shown = inspect(&f, &format!("{}:copied", theirs.display()));
    // skopeo wrote one platform's manifest, no index: the platform comes from the config.
    assert_eq!(shown["media_type"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(shown["manifests"][0]["platform"], "linux/amd64");
    assert_eq!(shown["manifests"][0]["digest"], shown["digest"]);
}
