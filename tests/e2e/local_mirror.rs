//! Builds from a signed local archive: resolution, unpacking, layer contents, outputs, locks,
//! caching and reproducibility.

use composer_testkit::{Deb, layer_entries, manifest};

use crate::{Fixture, fixture_packages, index_digest};

#[test]
fn resolves_and_assembles_a_working_tree() {
    let f = Fixture::new(
        &["app"],
        "[config]\ncmd = [\"/usr/bin/app\"]\nenv = { A = \"1\" }\n\n[[accounts.users]]\nname = \"svc\"\nuid = 990\n\n\
         [[files]]\npath = \"/etc/app.conf\"\ncontent = \"x = 1\\n\"\nmode = \"0600\"\nuid = 990\n",
    );
    let summary = f.compose.build_json(&f.recipe, &[]);
    let layout = f.compose.cwd.join("out/app");
    let entries = layer_entries(&layout, "amd64");
    let find =
        |p: &str| entries.iter().find(|e| e.path.trim_end_matches('/') == p).unwrap_or_else(|| panic!("{p} missing"));

    // Highest satisfying version; a virtual package satisfied through Provides; arch: all.
    assert_eq!(find("usr/lib/libfoo.so.1").data, b"new");
    assert!(!entries.iter().any(|e| e.path == "usr/lib/libfoo.so.0"));
    assert_eq!(find("usr/sbin/postfix").data, b"mta");
    assert!(entries.iter().any(|e| e.path == "usr/share/doc/docs/README"));

    // Setuid kept, hard link kept, long name through PAX, mtime clamped to the epoch.
    assert_eq!(find("usr/bin/app-setuid").mode, 0o4755);
    let app = find("usr/bin/app");
    let again = find("usr/bin/app-again");
    assert!(
        (again.kind == tar::EntryType::Link && again.link.as_deref() == Some("usr/bin/app"))
            || (app.kind == tar::EntryType::Link && app.link.as_deref() == Some("usr/bin/app-again")),
        "hard link lost: {app:?} {again:?}"
    );
    assert!(entries.iter().any(|e| e.path.len() > 100 && e.path.ends_with("README")), "long path lost");
    assert!(entries.iter().all(|e| e.mtime <= 1_700_000_000));
    assert_eq!(find("usr/lib/libapp.so").link.as_deref(), Some("../bin/app"));

    // System layer: dpkg database, accounts, recipe files, usrmerge links.
    let status = String::from_utf8(find("var/lib/dpkg/status").data.clone()).unwrap();
    assert!(status.contains("Package: app\nStatus: install ok installed\nVersion: 1.0"), "{status}");
    assert!(find("var/lib/dpkg/info/app.list").data.starts_with(b"/.\n"));
    let passwd = String::from_utf8(find("etc/passwd").data.clone()).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0") && passwd.contains("svc:x:990:990::/home/svc:/usr/sbin/nologin"),
        "{passwd}"
    );
    let conf = find("etc/app.conf");
    assert_eq!((conf.mode, conf.uid, conf.data.as_slice()), (0o600, 990, b"x = 1\n".as_slice()));
    assert_eq!(find("bin").link.as_deref(), Some("usr/bin"));

    // Image config and one layer per package, each named in its annotation.
    let manifest = manifest(&layout, "amd64");
    let annotations: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["annotations"]["dev.composer.layer.packages"].as_str())
        .collect();
    assert!(annotations.contains(&"app=1.0") && annotations.contains(&"libfoo=1.2"), "{annotations:?}");
    let inspect = f.compose.ok(&["inspect", layout.to_str().unwrap()]);
    assert!(inspect.contains(&index_digest(&summary)) && inspect.contains("postfix=3.7"), "{inspect}");
}

#[test]
fn second_build_is_all_cache_hits_and_plan_agrees() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    assert!(first["steps"].as_array().unwrap().iter().any(|s| s["cached"] == false));
    assert_eq!(first["lock_written"], true);
    let second = f.compose.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&first), index_digest(&second));
    let steps = second["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.iter().all(|s| s["cached"] == true), "{steps:?}");
    let plan: serde_json::Value = serde_json::from_str(&f.compose.ok(&["--json", "plan", f.recipe_str()])).unwrap();
    assert!(plan["steps"].as_array().unwrap().iter().all(|s| s["cached"] == true), "{plan}");
    // Offline works from the store alone.
    f.compose.ok(&["--offline", "build", f.recipe_str()]);
}

#[test]
fn plan_lists_downloads_without_building() {
    let f = Fixture::new(&["app"], "");
    let plan: serde_json::Value = serde_json::from_str(&f.compose.ok(&["--json", "plan", f.recipe_str()])).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let fetch = steps.iter().find(|s| s["step"] == "fetch" && s["name"].as_str().unwrap().starts_with("app_")).unwrap();
    assert_eq!(fetch["cached"], false);
    assert!(fetch["bytes"].as_u64().unwrap() > 0);
    assert!(!f.compose.cwd.join("out").exists(), "plan must not build");
    assert!(composer_testkit::store_objects(&f.compose.store).len() < 10, "plan must not fetch packages");
}

#[test]
fn outputs_oci_and_docker_archives() {
    let f = Fixture::new(&["app"], "");
    let dir = f.compose.cwd.clone();
    let oci = dir.join("img.oci.tar");
    let docker = dir.join("img.docker.tar");
    f.compose.ok(&["build", f.recipe_str(), "--output", &format!("oci-archive:{}", oci.display())]);
    f.compose.ok(&["build", f.recipe_str(), "--output", &format!("docker-archive:{}", docker.display())]);
    let names = |path: &std::path::Path| -> Vec<String> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    };
    let inspect = f.compose.ok(&["inspect", oci.to_str().unwrap()]);
    assert!(inspect.contains("linux/amd64") && inspect.contains("app=1.0"), "{inspect}");
    let oci_names = names(&oci);
    assert!(oci_names.contains(&"oci-layout".to_string()) && oci_names.contains(&"index.json".to_string()));
    let docker_names = names(&docker);
    assert!(docker_names.contains(&"manifest.json".to_string()));
    assert!(docker_names.iter().filter(|n| n.ends_with("/layer.tar")).count() >= 5, "{docker_names:?}");

    // skopeo and podman read both (.ci/run installs them).
    #[cfg(feature = "live-tests")]
    {
        for (transport, file) in [("docker-archive", &docker), ("oci-archive", &oci)] {
            let out = std::process::Command::new("skopeo")
                .args(["inspect", "--raw", &format!("{transport}:{}", file.display())])
                .output()
                .unwrap();
            assert!(out.status.success(), "skopeo rejects the {transport}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let load =
            std::process::Command::new("podman").args(["load", "-q", "-i", docker.to_str().unwrap()]).output().unwrap();
        assert!(load.status.success(), "podman load: {}", String::from_utf8_lossy(&load.stderr));
        let loaded = String::from_utf8_lossy(&load.stdout);
        assert!(loaded.contains("app:latest"), "{loaded}");
        let _ = std::process::Command::new("podman").args(["rmi", "-f", "localhost/app:latest"]).output();
    }
}

#[test]
fn recipes_sharing_packages_share_layer_digests() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &["-o", f.compose.cwd.join("one").to_str().unwrap()]);
    let other = f.compose.cwd.join("other.toml");
    crate::write_recipe(
        &other,
        &f.mirror.keyring,
        &["app", "postfix"],
        "[[files]]\npath = \"/etc/extra\"\ncontent = \"x\"\n",
    );
    f.compose.build_json(&other, &["-o", f.compose.cwd.join("two").to_str().unwrap()]);
    let layers = |dir: &str| -> Vec<(String, String)> {
        manifest(&f.compose.cwd.join(dir), "amd64")["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| {
                Some((
                    l["annotations"]["dev.composer.layer.packages"].as_str()?.to_string(),
                    l["digest"].as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let (one, two) = (layers("one"), layers("two"));
    assert!(one.len() >= 5);
    for layer in &one {
        assert!(two.contains(layer), "layer {layer:?} of the first image is not shared by the second");
    }
}

#[test]
fn reproducible_across_stores_and_environments() {
    let f = Fixture::new(&["app"], "[layers]\ncompression = \"zstd\"\n");
    let first = f.compose.build_json(&f.recipe, &[]);
    let mut other = crate::compose();
    other.env = f.compose.env.clone();
    other.env.extend([
        ("TZ".to_string(), "Pacific/Kiritimati".to_string()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("RAYON_NUM_THREADS".into(), "1".into()),
    ]);
    let nested = other.cwd.join("deeper/dir");
    std::fs::create_dir_all(&nested).unwrap();
    other.cwd = nested;
    let out = other.run_with_umask("077", &["--json", "build", f.recipe_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(f.compose.store, other.store);
    assert_eq!(index_digest(&first), index_digest(&second));
}

#[test]
fn lock_holds_until_refreshed() {
    let f = Fixture::new(&["app"], "");
    let first = f.compose.build_json(&f.recipe, &[]);
    let lock = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    assert!(lock.contains("name = \"app\"\nversion = \"1.0\""), "{lock}");

    // The mirror moves on; the old files stay in the pool, as on a real archive.
    let mut packages = fixture_packages("1.0");
    packages.extend(fixture_packages("2.0").into_iter().filter(|d| d.name == "app"));
    f.mirror.publish("stable", &packages);
    let rebuilt = f.compose.build_json(&f.recipe, &["--locked"]);
    assert_eq!(index_digest(&first), index_digest(&rebuilt));

    // `compose lock --check` reports what is newer and writes nothing.
    let before = std::fs::read(f.recipe.with_extension("lock")).unwrap();
    let check = f.compose.ok(&["lock", f.recipe_str(), "--check"]);
    assert!(check.contains("update app 1.0 -> 2.0"), "{check}");
    assert_eq!(std::fs::read(f.recipe.with_extension("lock")).unwrap(), before);
    // `compose lock` keeps what still fits, as uv's does; --upgrade-package moves one package.
    f.compose.ok(&["lock", f.recipe_str()]);
    // Nothing changed since: it says so, and the file is left as it was.
    let mtime = || std::fs::metadata(f.recipe.with_extension("lock")).unwrap().modified().unwrap();
    let written = mtime();
    let out = f.compose.run(&["lock", f.recipe_str()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("is current: nothing changed, nothing was written"), "{said}");
    assert_eq!(mtime(), written);
    let lock = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    assert!(lock.contains("name = \"app\"\nversion = \"1.0\""), "{lock}");
    let json: serde_json::Value = serde_json::from_str(&f.compose.ok(&["--json", "lock", f.recipe_str()])).unwrap();
    assert_eq!(json["unchanged"], true, "{json}");
    let out = f.compose.run(&["lock", f.recipe_str(), "--upgrade-package", "app"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("nothing changed"), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("update app 1.0 -> 2.0"), "{out:?}");
    let lock = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    assert!(lock.contains("name = \"app\"\nversion = \"2.0\""), "{lock}");
    let updated = f.compose.build_json(&f.recipe, &[]);
    assert_ne!(index_digest(&first), index_digest(&updated));

    // The mirror moves on again (a newer libfoo) and has a new package; the recipe asks for it.
    let mut packages = fixture_packages("1.0");
    packages.extend(fixture_packages("2.0").into_iter().filter(|d| d.name == "app"));
    packages.push(Deb::new("libfoo", "1.3").file("usr/lib/libfoo.so.1", b"newer"));
    packages.push(Deb::new("extra", "1").field("Depends", "libextra").file("usr/bin/extra", b"x"));
    packages.push(Deb::new("libextra", "5").file("usr/lib/libextra.so.5", b"e"));
    f.mirror.publish("stable", &packages);
    let before = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    crate::write_recipe(&f.recipe, &f.mirror.keyring, &["app", "extra"], "");
    // --locked keeps to the lock and says so ...
    let stderr = f.compose.fails(&["build", f.recipe_str(), "--locked"]);
    assert!(stderr.contains("package `extra` is not in the lock") && stderr.contains("compose lock"), "{stderr}");
    // ... a plain build follows the recipe: the lock changes by what the change needs, and
    // every locked package that still fits (libfoo 1.2, though 1.3 is out) stays.
    let out = f.compose.run(&["build", f.recipe_str()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("add extra 1") && said.contains("add libextra 5") && !said.contains("update"), "{said}");
    let after = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    let packages_of = |lock: &str| -> Vec<String> {
        let parsed: toml::Value = toml::from_str(lock).unwrap();
        let mut out: Vec<String> = parsed["platform"][0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}={}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
            .collect();
        out.sort();
        out
    };
    let (old, new) = (packages_of(&before), packages_of(&after));
    let added: Vec<&String> = new.iter().filter(|p| !old.contains(p)).collect();
    assert_eq!(added, ["extra=1", "libextra=5"]);
    assert!(old.iter().all(|p| new.contains(p)), "nothing else changed: {old:?} -> {new:?}");
    assert!(new.contains(&"libfoo=1.2".to_string()));
}

#[test]
fn two_builds_at_once_on_one_store_agree() {
    let f = Fixture::new(&["app"], "");
    f.compose.ok(&["lock", f.recipe_str()]);
    let out_a = f.compose.cwd.join("a");
    let out_b = f.compose.cwd.join("b");
    let a = f
        .compose
        .command(&["--json", "build", f.recipe_str(), "-o", out_a.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = f
        .compose
        .command(&["--json", "build", f.recipe_str(), "-o", out_b.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    assert_eq!(std::fs::read(out_a.join("index.json")).unwrap(), std::fs::read(out_b.join("index.json")).unwrap());
    f.compose.ok(&["store", "verify"]);
}

#[test]
fn lock_works_offline_from_the_release_the_store_kept() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let before = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    // The archive is gone: only the store remembers its signed Release and indexes.
    std::fs::remove_dir_all(f.mirror.root.join("dists")).unwrap();
    crate::write_recipe(&f.recipe, &f.mirror.keyring, &["app", "postfix"], "");
    let out = f.compose.run(&["--offline", "lock", f.recipe_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = std::fs::read_to_string(f.recipe.with_extension("lock")).unwrap();
    let release = |lock: &str| lock.lines().find(|l| l.starts_with("digest = ")).unwrap().to_string();
    assert_eq!(release(&before), release(&after), "resolved against the same, stored Release");
    assert!(after.contains("\"postfix\""), "{after}");
    // Taking the newest needs the mirror's current Release, which only the network has.
    let stderr = f.compose.fails(&["--offline", "lock", f.recipe_str(), "--upgrade"]);
    assert!(stderr.contains("InRelease"), "{stderr}");
}

/// `compose plan` and `compose build` count steps alike, and say what they count: a cold plan
/// and the build after it agree, and so do a warm plan and a warm build.
#[test]
fn plan_and_build_count_the_same_steps_in_the_same_words() {
    let f = Fixture::new(&["app"], "");
    let counted = |args: &[&str], label: &str| -> (usize, usize, usize) {
        let out = f.compose.run(args);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{said}");
        let line = said.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("{said}")).to_string();
        let number = |after: &str| -> usize {
            let at = line.find(after).unwrap_or_else(|| panic!("{line}"));
            line[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
        };
        let ran = if label == "Plan" { number(" to run") } else { number(" run,") };
        (number(" steps needed"), ran, number(" found in the store"))
    };
    let recipe = f.recipe_str();
    let cold_plan = counted(&["plan", recipe], "Plan");
    let cold_build = counted(&["build", recipe], "Built");
    assert_eq!(cold_plan, cold_build);
    assert_eq!(cold_plan.1, cold_plan.0, "cold: every step runs: {cold_plan:?}");
    let warm_plan = counted(&["plan", recipe], "Plan");
    let warm_build = counted(&["build", recipe], "Built");
    assert_eq!(warm_plan, warm_build);
    assert_eq!((warm_plan.1, warm_plan.2), (0, warm_plan.0), "warm: all found: {warm_plan:?}");
}
