//! The tool attacked on purpose: crafted packages in a signed archive, a damaged store, recipes
//! with odd values, outputs pointed at data that matters. Each test is one hole that was open.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use composer_testkit::{Deb, Entry, Publish, store_objects};

use crate::{Fixture, compose, fixture_packages, mirror_with, write_recipe};

/// A directory of the "host" that packages try to reach, and a listing of it to compare.
fn host_dir() -> (tempfile::TempDir, impl Fn() -> Vec<(String, u32)>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("precious"), b"keep me").unwrap();
    let path = dir.path().to_path_buf();
    let listing = move || {
        let mut out: Vec<(String, u32)> = walk(&path)
            .into_iter()
            .map(|p| {
                let mode = std::fs::symlink_metadata(&p).unwrap().permissions().mode();
                (p.strip_prefix(&path).unwrap().display().to_string(), mode)
            })
            .collect();
        out.push((".".into(), std::fs::metadata(&path).unwrap().permissions().mode()));
        out.sort();
        out
    };
    (dir, listing)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(entry.path());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        }
    }
    out
}

#[test]
fn a_package_with_entries_beneath_its_own_symlink_is_refused() {
    let (host, listing) = host_dir();
    let before = listing();
    let evil = Deb::new("evil", "1")
        .entry(Entry::RawSymlink("opt/esc".into(), host.path().display().to_string()))
        .file("opt/esc/file", b"planted")
        .entry(Entry::Dir("opt/esc/sub"));
    let (mirror, c, recipe) = mirror_with(vec![evil]);
    write_recipe(&recipe, &mirror.keyring, &["evil"], "");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("evil_1_amd64.deb") && stderr.contains("beneath the symlink `opt/esc`"), "{stderr}");
    assert_eq!(listing(), before, "the host directory is untouched");
}

/// Packages for a build root without a network: build-essential and mawk as empty stand-ins,
/// and two packages that together point a directory of the root at the host.
fn build_root_packages(host: &Path) -> Vec<Deb> {
    vec![
        Deb::new("build-essential", "12.9").file("usr/share/doc/build-essential/README", b"stand-in"),
        Deb::new("mawk", "1.3").file("usr/bin/mawk", b"stand-in"),
        Deb::new("evil-z-link", "1").entry(Entry::RawSymlink("opt/esc".into(), host.display().to_string())),
        Deb::new("evil-a-payload", "1")
            .file("opt/esc/file", b"planted")
            .entry(Entry::File("opt/esc/sub/x".into(), b"x".to_vec(), 0o644))
            .entry(Entry::Dir("opt/esc/sub")),
    ]
}

#[test]
fn a_build_root_whose_packages_link_out_never_touches_the_host_and_its_log_is_private() {
    let (host, listing) = host_dir();
    let before = listing();
    let (mirror, c, recipe) = mirror_with(build_root_packages(host.path()));
    write_recipe(
        &recipe,
        &mirror.keyring,
        &[],
        "[[builds]]\nname = \"probe\"\nbuild_depends = [\"evil-z-link\", \"evil-a-payload\"]\nscript = \"true\"\n",
    );
    // The predictable name a failed build's log once had: a planted link to a victim file.
    let victim = c.home.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let predictable = std::env::temp_dir().join("compose-probe-amd64.log");
    let _ = std::fs::remove_file(&predictable);
    std::os::unix::fs::symlink(&victim, &predictable).unwrap();

    // The root has no shell, so the build itself fails, after the checkout on the host.
    let out = c.run(&["build", recipe.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&predictable);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(listing(), before, "nothing created or chmod-ed in the host directory: {stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim", "the planted log link was not written through");

    // Where the entries went instead: under the link's target inside the root, as dpkg would.
    let checkouts = c.store.join("checkouts-v1");
    let planted: Vec<PathBuf> = walk(&checkouts).into_iter().filter(|p| p.ends_with("file")).collect();
    assert!(
        planted
            .iter()
            .any(|p| p.starts_with(&checkouts) && p.to_string_lossy().contains(&*host.path().to_string_lossy())),
        "{planted:?}"
    );
    assert!(stderr.contains("the whole log is"), "{stderr}");
    {
        let log = stderr.split("the whole log is ").nth(1).unwrap().split([';', '\n']).next().unwrap().trim();
        let dir = Path::new(log).parent().unwrap();
        assert_ne!(dir, std::env::temp_dir(), "{log}");
        assert_eq!(std::fs::metadata(dir).unwrap().permissions().mode() & 0o777, 0o700, "{log}");
        assert_eq!(std::fs::metadata(log).unwrap().permissions().mode() & 0o777, 0o600, "{log}");
    }
}

#[test]
fn image_names_and_tags_that_are_not_oci_references_are_located() {
    let c = compose();
    let recipe = c.cwd.join("n.toml");
    for (image, needle) in [
        ("name = \"/abs/dir\"", "n.toml:2:8"),
        ("name = \"../../x\"", "n.toml:2:8"),
        ("name = \"x\"\ntag = \"a b\"", "n.toml:3:7"),
        ("name = \"x\"\ntag = \"a\\nb\"", "n.toml:3:7"),
        ("name = \"x\"\ntag = \"a/b\"", "n.toml:3:7"),
        ("name = \"x\"\nsource_date_epoch = 253402300800", "n.toml:3:21"),
    ] {
        std::fs::write(
            &recipe,
            format!("[image]\n{image}\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n"),
        )
        .unwrap();
        let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
        assert!(stderr.contains(needle) && stderr.contains("hint:"), "{image}: {stderr}");
    }
    assert!(!c.cwd.join("out").exists() && !c.home.path().join("abs").exists());
}

fn publish_fixture(how: &Publish) -> Fixture {
    let f = Fixture::new(&["app"], "");
    f.mirror.publish_with("stable", &fixture_packages("1.0"), how);
    f
}

#[test]
fn an_expired_release_is_refused_unless_the_recipe_says_the_mirror_is_a_snapshot() {
    let f =
        publish_fixture(&Publish { valid_until: Some("Fri, 01 Jan 2021 00:00:00 UTC".into()), ..Default::default() });
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("expired on Fri, 01 Jan 2021") && stderr.contains("check_valid_until"), "{stderr}");
    assert!(store_objects(&f.compose.store).is_empty(), "nothing of an expired Release is stored");

    let recipe = std::fs::read_to_string(&f.recipe).unwrap().replace("[base]\n", "[base]\ncheck_valid_until = false\n");
    std::fs::write(&f.recipe, recipe).unwrap();
    let plan = f.compose.run(&["plan", f.recipe_str()]);
    assert!(plan.status.success());
    assert!(String::from_utf8_lossy(&plan.stderr).contains("Valid-Until is not checked"));
    f.compose.ok(&["build", f.recipe_str()]);
}

#[test]
fn a_release_of_another_suite_is_refused() {
    let f = publish_fixture(&Publish { suite_field: Some("oldstable".into()), ..Default::default() });
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("is for suite `oldstable`") && stderr.contains("not the `stable` asked for"), "{stderr}");
    assert!(!f.recipe.with_extension("lock").exists());
}

#[test]
fn an_archive_without_inrelease_is_read_through_release_gpg() {
    let f = publish_fixture(&Publish { detached: true, ..Default::default() });
    assert!(!f.mirror.dists("stable").join("InRelease").exists());
    f.compose.ok(&["build", f.recipe_str()]);

    // A Release changed after it was signed fails, as an InRelease would.
    let release = f.mirror.dists("stable").join("Release");
    let text = std::fs::read_to_string(&release).unwrap().replace("composer-fixture", "composer-fixturE");
    std::fs::write(&release, text).unwrap();
    std::fs::remove_file(f.recipe.with_extension("lock")).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str()]);
    assert!(stderr.contains("signature check failed") && stderr.contains("Release"), "{stderr}");
}

#[test]
fn files_come_from_the_recipes_directory_and_are_read_with_a_bound() {
    let f = Fixture::new(&["app"], "");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"host secret").unwrap();
    let try_source = |source: &str, extra: &[&str]| {
        write_recipe(
            &f.recipe,
            &f.mirror.keyring,
            &["app"],
            &format!("[[files]]\npath = \"/etc/x\"\nsource = \"{source}\"\n"),
        );
        let mut args = vec!["build", f.recipe_str()];
        args.extend_from_slice(extra);
        f.compose.run(&args)
    };
    let started = std::time::Instant::now();
    let out = try_source("/dev/zero", &["--allow-path", "/dev"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a regular file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed().as_secs() < 30, "refused at once, not read until memory runs out");

    let secret = outside.path().join("secret").display().to_string();
    for source in [secret.as_str(), "../../../../../../../../etc/hostname"] {
        let out = try_source(source, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("outside the recipe's directory"), "{source}: {stderr}");
        assert!(stderr.contains("--allow-path"), "{stderr}");
    }
    let out = try_source(&secret, &["--allow-path", outside.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn inspect_refuses_a_digest_that_is_a_path() {
    let c = compose();
    let layout = c.cwd.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        layout.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:../../../../etc/passwd","size":1}]}"#,
    )
    .unwrap();
    let stderr = c.fails(&["inspect", layout.to_str().unwrap()]);
    assert!(stderr.contains("is not a sha256 digest"), "{stderr}");
    assert!(!stderr.contains("root:"), "{stderr}");
}

#[test]
fn recipe_values_that_cannot_be_right_are_located_errors() {
    let c = compose();
    let recipe = c.cwd.join("v.toml");
    let head = "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n";
    for (extra, needle, location) in [
        ("packages = [\"good (=> 1)\"]\n", "`=>` is not a version operator", "v.toml:7:13"),
        ("[allocator]\nmalloc_conf = \"narenas:1\"\n", "system's, which does not read it", "v.toml:7:1"),
        ("[layers]\nmax_layers = 0\n", "max_layers` must be at least 1", "v.toml:7:1"),
        (
            "[[accounts.users]]\nname = \"a\"\nuid = 1\n[[accounts.users]]\nname = \"a\"\nuid = 2\n",
            "user `a` is listed twice",
            "v.toml:7:1",
        ),
        (
            "[[accounts.groups]]\nname = \"g\"\ngid = 1\n[[accounts.groups]]\nname = \"g\"\ngid = 2\n",
            "group `g` is listed twice",
            "v.toml:7:1",
        ),
        (
            "[[files]]\npath = \"/etc/x\"\ncontent = \"a\"\nsource = \"b\"\n",
            "both `content` and `source`",
            "v.toml:8:8",
        ),
        ("[[files]]\npath = \"/etc/d\"\nkind = \"dir\"\ncontent = \"a\"\n", "holds no `content`", "v.toml:8:8"),
        (
            "[[files]]\npath = \"/etc/x\"\ncontent = \"a\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"b\"\n",
            "listed twice in [[files]]",
            "v.toml:11:8",
        ),
        ("[[files]]\npath = \"/etc/./x/.\"\ncontent = \"a\"\n", "not a plain absolute path", "v.toml:8:8"),
        ("[[files]]\npath = \"/\"\nkind = \"dir\"\n", "not a plain absolute path", "v.toml:8:8"),
        ("[[files]]\npath = \"/etc/a\\u0000b\"\ncontent = \"a\"\n", "not a plain absolute path", "v.toml:8:8"),
    ] {
        std::fs::write(&recipe, format!("{head}{extra}")).unwrap();
        let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
        assert!(stderr.contains(needle) && stderr.contains(location) && stderr.contains("hint:"), "{extra}: {stderr}");
    }
}

#[test]
fn a_mirror_name_that_is_not_configured_never_falls_back_to_the_hosts_apt_sources() {
    let f = Fixture::new(&["app"], "");
    let apt = f.compose.home.path().join("apt");
    std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
    std::fs::write(
        apt.join("sources.list.d/debian.sources"),
        format!(
            "Types: deb\nURIs: {}\nSuites: stable\nComponents: main\nSigned-By: {}\n",
            f.mirror.url(),
            f.mirror.keyring.display()
        ),
    )
    .unwrap();
    let mut c = compose();
    c.cwd = f.compose.cwd.clone();
    c.env.push(("COMPOSE_APT_DIR".into(), apt.display().to_string()));
    c.host_apt = true;
    let typo = std::fs::read_to_string(&f.recipe).unwrap().replace("mirror = \"local\"", "mirror = \"debain\"");
    std::fs::write(&f.recipe, &typo).unwrap();
    let stderr = c.fails(&["lock", f.recipe_str()]);
    assert!(stderr.contains("no mirror named `debain`"), "{stderr}");
    // The hint offers the near name, and no apt source: only `debian` falls back to apt.
    assert!(stderr.contains("hint: did you mean `debian`?"), "{stderr}");
    assert!(!stderr.contains("apt source"), "{stderr}");
    std::fs::write(&f.recipe, typo.replace("debain", "debian")).unwrap();
    let out = c.run(&["-v", "lock", f.recipe_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("debian.sources"), "-v says where `debian` came from: {stderr}");
}

#[test]
fn two_packages_shipping_one_file_are_named_and_a_missing_config_user_is_refused() {
    let (mirror, c, recipe) = mirror_with(vec![
        Deb::new("one", "1").file("usr/bin/tool", b"one's"),
        Deb::new("two", "1").file("usr/bin/tool", b"two's"),
        Deb::new("three", "1").field("Replaces", "one").file("usr/share/x", b"same").file("usr/bin/tool3", b"3"),
    ]);
    write_recipe(&recipe, &mirror.keyring, &["one", "two"], "");
    let out = c.run(&["build", recipe.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: packages `one` and `two` both ship /usr/bin/tool"), "{stderr}");

    let _ = std::fs::remove_file(recipe.with_extension("lock"));
    write_recipe(&recipe, &mirror.keyring, &["one"], "[config]\nuser = \"ghost\"\n");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(
        stderr.contains("user `ghost` names the user `ghost`") && stderr.contains("[[accounts.users]]"),
        "{stderr}"
    );
    write_recipe(&recipe, &mirror.keyring, &["one"], "[config]\nuser = \"root:nogroup\"\n");
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("the group `nogroup`"), "{stderr}");
    write_recipe(&recipe, &mirror.keyring, &["one"], "[config]\nuser = \"1000:1000\"\n");
    c.ok(&["build", recipe.to_str().unwrap()]);
}

#[test]
fn a_package_that_ships_the_usrmerge_links_itself_is_not_mistaken_for_an_escape() {
    // As trixie's base-files does: `lib -> usr/lib` beside files under usr/lib.
    let (mirror, c, recipe) = mirror_with(vec![
        Deb::new("merged", "1")
            .entry(Entry::Symlink("lib".into(), "usr/lib".into()))
            .file("usr/lib/os-release", b"ID=x\n"),
    ]);
    write_recipe(&recipe, &mirror.keyring, &["merged"], "");
    c.ok(&["build", recipe.to_str().unwrap()]);
    let entries = composer_testkit::layer_entries(&c.cwd.join("out/app"), "amd64");
    assert!(entries.iter().any(|e| e.path == "usr/lib/os-release"));
    let lib: Vec<_> = entries.iter().filter(|e| e.path.trim_end_matches('/') == "lib").collect();
    assert!(lib.iter().all(|e| e.link.as_deref() == Some("usr/lib")), "{lib:?}");
    let usr_lib: Vec<_> = entries.iter().filter(|e| e.path.trim_end_matches('/') == "usr/lib").collect();
    assert!(usr_lib.iter().all(|e| e.kind == tar::EntryType::Directory), "{usr_lib:?}");
}

#[test]
fn a_file_name_that_is_not_utf8_reaches_the_image_byte_for_byte() {
    let (mirror, c, recipe) = mirror_with(vec![
        Deb::new("latin1", "1").entry(Entry::RawName(b"./usr/share/caf\xe9".to_vec(), b"coffee".to_vec())),
    ]);
    write_recipe(&recipe, &mirror.keyring, &["latin1"], "");
    c.ok(&["build", recipe.to_str().unwrap()]);
    let entries = composer_testkit::layer_entries(&c.cwd.join("out/app"), "amd64");
    let file = entries.iter().find(|e| e.path_bytes == b"usr/share/caf\xe9").expect("the name's bytes are kept");
    assert_eq!(file.data, b"coffee");
    assert!(!entries.iter().any(|e| e.path.contains('\u{fffd}') && e.path_bytes != b"usr/share/caf\xe9"));
    let list = entries.iter().find(|e| e.path == "var/lib/dpkg/info/latin1.list").unwrap();
    assert!(list.data.ends_with(b"/usr/share/caf\xe9\n"), "{:?}", String::from_utf8_lossy(&list.data));
}
