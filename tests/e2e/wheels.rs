//! Wheel sets against fixtures: a signed `file://` Debian archive with a python3 and a libc6
//! to read the target from, and a `file://` PEP 503 index of wheels built by the test, so that
//! resolution, fetching, installation and layering are checked on their own and bad wheels
//! can be made on purpose.

use std::path::{Path, PathBuf};

use composer_testkit::{
    Compose, Deb, LocalIndex, LocalMirror, Wheel, base_packages, image_config, layer_entries, manifest, sha256_hex,
};

use crate::{compose, index_digest};

pub(crate) struct WheelFixture {
    pub(crate) mirror: LocalMirror,
    index: LocalIndex,
    pub(crate) compose: Compose,
    recipe: PathBuf,
}

pub(crate) fn base_debs() -> Vec<Deb> {
    let mut debs = Vec::new();
    for arch in ["amd64", "arm64"] {
        debs.extend(base_packages(arch));
        debs.push(Deb::new("libc6", "2.36-9").arch(arch).file("usr/lib/libc.so.6", b"libc"));
        debs.push(
            Deb::new("python3", "3.11.2-1+b1")
                .arch(arch)
                .field("Depends", "libc6 (>= 2.36)")
                .file("usr/bin/python3.11", b"#!python"),
        );
    }
    debs
}

fn standard_wheels() -> Vec<Wheel> {
    vec![
        Wheel::new("tinyapp", "1.0").requires("tinydep>=1").script("tinyapp", "tinyapp:main"),
        Wheel::new("tinydep", "1.0")
            .file("tinydep/native.so", b"\x7fELF not really", 0o755)
            .raw("tinydep-1.0.data/scripts/tinydep-tool", b"#!python\nprint('tool')\n"),
        Wheel::new("tinyextra", "1.0"),
    ]
}

impl WheelFixture {
    pub(crate) fn new(requirements: &[&str], platforms: &[&str]) -> WheelFixture {
        WheelFixture::with(Vec::new(), standard_wheels(), requirements, platforms)
    }

    /// The fixture's base packages and `debs` on the mirror, `wheels` on the index.
    pub(crate) fn with(debs: Vec<Deb>, wheels: Vec<Wheel>, requirements: &[&str], platforms: &[&str]) -> WheelFixture {
        let mirror = LocalMirror::new();
        let mut all = base_debs();
        all.extend(debs);
        mirror.publish("stable", &all);
        let index = LocalIndex::new();
        index.publish(&wheels);
        let mut compose = compose();
        compose.env.push(("COMPOSE_MIRROR_LOCAL".into(), mirror.url()));
        compose.env.push(("COMPOSE_INDEX_LOCAL".into(), index.url()));
        let recipe = compose.cwd.join("app.toml");
        let fixture = WheelFixture { mirror, index, compose, recipe };
        fixture.write_recipe(requirements, platforms);
        fixture
    }

    fn write_recipe(&self, requirements: &[&str], platforms: &[&str]) {
        let quote = |items: &[&str]| items.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ");
        let text = format!(
            "[image]\nname = \"app\"\nplatforms = [{}]\nsource_date_epoch = 1700000000\n\n\
             [base]\nsuite = \"stable\"\nmirror = \"local\"\nkeyring = \"{}\"\npackages = []\n\n\
             [python]\nrequirements = [{}]\nindex = \"local\"\n",
            quote(platforms),
            crate::keyring_beside(&self.recipe, &self.mirror.keyring),
            quote(requirements)
        );
        std::fs::write(&self.recipe, text).unwrap();
    }

    pub(crate) fn recipe(&self) -> &str {
        self.recipe.to_str().unwrap()
    }

    fn layout(&self) -> PathBuf {
        self.compose.cwd.join("out/app")
    }

    fn pylock(&self, platform: &str) -> PathBuf {
        self.compose.cwd.join(format!("pylock.app-{}.toml", platform.replace('/', "-")))
    }
}

/// (digest, is a wheel layer) of each layer of the amd64 image, in order.
fn layers(layout: &Path, arch: &str) -> Vec<(String, bool)> {
    manifest(layout, arch)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let packages = l["annotations"]["dev.composer.layer.packages"].as_str().unwrap_or_default();
            (l["digest"].as_str().unwrap().to_string(), packages.contains("=="))
        })
        .collect()
}

#[test]
fn wheels_install_into_a_venv_as_their_own_layers() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let summary = f.compose.build_json(&f.recipe, &[]);
    let lock = std::fs::read_to_string(f.pylock("linux/amd64")).unwrap();
    assert!(lock.contains("lock-version = \"1.0\""), "{lock}");
    let dep = standard_wheels()[1].build();
    assert!(lock.contains(&sha256_hex(&dep)), "the pylock records each wheel's sha256:\n{lock}");
    assert!(lock.contains("name = \"tinydep\"") && !lock.contains("tinyextra"), "{lock}");

    let entries = layer_entries(&f.layout(), "amd64");
    let find = |path: &str| entries.iter().find(|e| e.path == path).unwrap_or_else(|| panic!("{path} missing"));
    // Wheel and venv files carry the recipe's epoch like every other layer (a 1970 time makes
    // Python's zipfile refuse them).
    let old: Vec<&str> = entries
        .iter()
        .filter(|e| e.path.starts_with("opt/venv") && e.mtime != 1_700_000_000)
        .map(|e| e.path.as_str())
        .collect();
    assert!(old.is_empty(), "entries not at the epoch: {old:?}");
    let site = "opt/venv/lib/python3.11/site-packages";
    assert!(!find(&format!("{site}/tinyapp/__init__.py")).data.is_empty());
    assert_eq!(find(&format!("{site}/tinydep/native.so")).mode & 0o777, 0o755);
    assert_eq!(find("opt/venv/bin/python").link.as_deref(), Some("/usr/bin/python3.11"));
    assert!(!find("opt/venv/pyvenv.cfg").data.is_empty());
    let launcher = find("opt/venv/bin/tinyapp");
    assert_eq!(launcher.mode & 0o777, 0o755);
    assert!(launcher.data.starts_with(b"#!/opt/venv/bin/python\n"), "{}", String::from_utf8_lossy(&launcher.data));
    assert!(String::from_utf8_lossy(&launcher.data).contains("from tinyapp import main"));
    let tool = find("opt/venv/bin/tinydep-tool");
    assert_eq!(tool.data, b"#!/opt/venv/bin/python\nprint('tool')\n");
    let record = String::from_utf8(find(&format!("{site}/tinydep-1.0.dist-info/RECORD")).data.clone()).unwrap();
    assert!(record.contains("../../../bin/tinydep-tool,sha256="), "{record}");
    assert_eq!(find(&format!("{site}/tinyapp-1.0.dist-info/INSTALLER")).data, b"composer\n");
    find(&format!("{site}/tinyapp-1.0.dist-info/REQUESTED"));
    assert!(
        !entries.iter().any(|e| e.path == format!("{site}/tinydep-1.0.dist-info/REQUESTED")),
        "only requested packages are marked REQUESTED"
    );
    let config = image_config(&f.layout(), "amd64");
    let env: Vec<&str> = config["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.iter().any(|e| e.starts_with("PATH=/opt/venv/bin:")), "{env:?}");
    assert!(env.contains(&"VIRTUAL_ENV=/opt/venv"), "{env:?}");

    // A second build hits the cache for every step.
    let again = f.compose.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&again), index_digest(&summary));
    let missed: Vec<&serde_json::Value> =
        again["steps"].as_array().unwrap().iter().filter(|s| s["cached"] != true).collect();
    assert!(missed.is_empty(), "steps not cached: {missed:?}");
}

#[test]
fn changing_a_requirement_rebuilds_only_wheel_layers_and_the_lock_holds() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let first = f.compose.build_json(&f.recipe, &[]);
    let before = layers(&f.layout(), "amd64");

    // E: a newer version on the index changes nothing while the lock stands.
    f.index.publish(&[Wheel::new("tinyapp", "2.0").requires("tinydep>=1"), Wheel::new("tinydep", "2.0")]);
    let locked = f.compose.build_json(&f.recipe, &[]);
    assert_eq!(index_digest(&locked), index_digest(&first), "the lock must hold after the index moves on");

    // B: one more requirement re-resolves the wheel set only; base layers keep their digests.
    f.write_recipe(&["tinyapp", "tinyextra"], &["linux/amd64"]);
    let changed = f.compose.build_json(&f.recipe, &[]);
    assert_ne!(index_digest(&changed), index_digest(&first));
    let after = layers(&f.layout(), "amd64");
    let base = |l: &[(String, bool)]| l.iter().filter(|(_, wheel)| !wheel).cloned().collect::<Vec<_>>();
    assert!(!base(&before).is_empty());
    assert_eq!(base(&before), base(&after), "base layers must not change with the wheel set");
    assert_ne!(before, after);
    let rebuilt = composer_testkit::ran_steps(&changed);
    assert!(
        rebuilt.iter().all(|s| ["resolve-wheels", "fetch-wheel", "install-wheel", "wheel-layer"].contains(&s.as_str())),
        "only wheel steps may run: {rebuilt:?}"
    );
    let lock = std::fs::read_to_string(f.pylock("linux/amd64")).unwrap();
    assert!(lock.contains("tinyextra"), "{lock}");
}

#[test]
fn exported_index_serves_pip_and_uv_offline() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64", "linux/arm64"]);
    f.compose.build_json(&f.recipe, &[]);
    let out = f.compose.cwd.join("index");
    f.compose.ok(&["wheels", "index", out.to_str().unwrap(), "--recipe", f.recipe()]);
    let project = std::fs::read_to_string(out.join("simple/tinyapp/index.html")).unwrap();
    assert!(project.contains("data-core-metadata=\"sha256="), "{project}");
    let metadata = std::fs::read_to_string(out.join("files/tinyapp-1.0-py3-none-any.whl.metadata")).unwrap();
    assert!(metadata.contains("Name: tinyapp"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("simple/tinydep/index.json")).unwrap()).unwrap();
    assert_eq!(json["files"][0]["hashes"]["sha256"], sha256_hex(&standard_wheels()[1].build()));

    let target = f.compose.cwd.join("target");
    let status = std::process::Command::new("uv")
        .args(["pip", "install", "--offline", "--only-binary", ":all:", "--index-url"])
        .arg(format!("file://{}/simple", out.display()))
        .arg("--target")
        .arg(&target)
        .args(["--python-version", "3.11", "tinyapp"])
        .env("UV_CACHE_DIR", f.compose.cwd.join("uv-cache"))
        .status()
        .expect("uv runs (tests/setup.sh installs it)");
    assert!(status.success());
    assert!(target.join("tinydep/__init__.py").is_file());

    // pip reads the same index (PEP 503 pages, PEP 658 metadata), with no other source.
    let pip_target = f.compose.cwd.join("pip-target");
    let pip = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-cache-dir", "--only-binary", ":all:", "--index-url"])
        .arg(format!("file://{}/simple", out.display()))
        .arg("--target")
        .arg(&pip_target)
        .arg("tinyapp")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .output()
        .expect("python3 -m pip runs (tests/setup.sh makes sure pip is there)");
    assert!(pip.status.success(), "pip install failed:\n{}", String::from_utf8_lossy(&pip.stderr));
    assert!(pip_target.join("tinydep/__init__.py").is_file());

    // Written again (from the whole store this time), it is replaced, not merged.
    let summary: serde_json::Value =
        serde_json::from_str(&f.compose.ok(&["--json", "wheels", "index", out.to_str().unwrap()])).unwrap();
    assert_eq!(summary["wheels"], 2);
    assert!(out.join("simple/tinydep/index.html").is_file());

    // A directory of someone's files, or a file, is never replaced.
    let mine = f.compose.cwd.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("thesis.tex"), b"years of work").unwrap();
    let stderr = f.compose.fails(&["wheels", "index", mine.to_str().unwrap()]);
    assert!(stderr.contains("will not replace") && stderr.contains("hint:"), "{stderr}");
    assert_eq!(std::fs::read(mine.join("thesis.tex")).unwrap(), b"years of work");
    let file = f.compose.cwd.join("notes.txt");
    std::fs::write(&file, b"notes").unwrap();
    let stderr = f.compose.fails(&["wheels", "index", file.to_str().unwrap()]);
    assert!(stderr.contains("is not a directory"), "{stderr}");

    // An index of ours to which someone added a file, or whose marker someone else wrote, is
    // theirs now: it is not replaced, and the file stays.
    std::fs::write(out.join("files/notes.txt"), b"added by hand").unwrap();
    let stderr = f.compose.fails(&["wheels", "index", out.to_str().unwrap()]);
    assert!(stderr.contains("it holds `files/notes.txt`, which compose did not write there"), "{stderr}");
    assert_eq!(std::fs::read(out.join("files/notes.txt")).unwrap(), b"added by hand");
    std::fs::write(mine.join(".compose-wheel-index"), b"written by compose wheels index; replaced by it as a whole\n")
        .unwrap();
    let stderr = f.compose.fails(&["wheels", "index", mine.to_str().unwrap()]);
    assert!(stderr.contains("will not replace"), "{stderr}");
    assert_eq!(std::fs::read(mine.join("thesis.tex")).unwrap(), b"years of work");
    assert_eq!(std::fs::read(&file).unwrap(), b"notes");
    let stray: Vec<_> = std::fs::read_dir(&f.compose.cwd)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn assert_failed_cleanly(f: &WheelFixture, err: &str, needles: &[&str]) {
    for needle in needles {
        assert!(err.contains(needle), "error should mention {needle:?}:\n{err}");
    }
    assert!(!f.layout().exists(), "no image may be written on failure");
}

#[test]
fn unknown_package_is_named() {
    let f = WheelFixture::new(&["no-such-package"], &["linux/amd64"]);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["no-such-package", "linux/amd64", "hint:"]);
}

#[test]
fn unsatisfiable_pins_are_explained() {
    let f = WheelFixture::new(&["tinyapp==1.0", "tinydep>=5"], &["linux/amd64"]);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["tinydep", "unsatisfiable", "hint: relax"]);
}

#[test]
fn wheel_with_the_wrong_sha256_is_not_stored() {
    let f = WheelFixture::new(&["bad-hash"], &["linux/amd64"]);
    let wheel = Wheel::new("bad-hash", "1.0");
    f.index.publish_with_wrong_hash(&wheel);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["bad_hash-1.0-py3-none-any.whl", "sha256"]);
    assert!(!composer_testkit::store_has_sha256(&f.compose.store, &sha256_hex(&wheel.build())));
}

#[test]
fn wheel_escaping_its_directory_is_rejected() {
    let f = WheelFixture::new(&["escape"], &["linux/amd64"]);
    f.index.publish(&[Wheel::new("escape", "1.0").raw("../../../etc/evil", b"x")]);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["escape-1.0-py3-none-any.whl", "../../../etc/evil", "escape its directory"]);
}

#[test]
fn wheel_whose_record_does_not_match_is_rejected() {
    let f = WheelFixture::new(&["liar"], &["linux/amd64"]);
    f.index.publish(&[Wheel::new("liar", "1.0").bad_record()]);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["liar-1.0-py3-none-any.whl", "RECORD says"]);
}

#[test]
fn requirement_without_an_arm64_wheel_names_package_version_and_tags() {
    let f = WheelFixture::new(&["x86only"], &["linux/amd64", "linux/arm64"]);
    f.index.publish(&[Wheel::new("x86only", "3.2").tag("cp311-cp311-manylinux_2_17_x86_64")]);
    let err = f.compose.fails(&["build", f.recipe()]);
    assert_failed_cleanly(&f, &err, &["x86only", "3.2", "linux/arm64", "manylinux_2_36_aarch64"]);
}

#[test]
fn offline_build_names_the_missing_wheel() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    f.compose.ok(&["lock", f.recipe()]);
    // file:// needs no network; point the locked wheels at an HTTP address on loopback, which
    // an offline build must not even try.
    let path = f.pylock("linux/amd64");
    let lock = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, lock.replace(&format!("file://{}", f.index.root.display()), "http://127.0.0.1:9")).unwrap();
    let err = f.compose.fails(&["--offline", "build", f.recipe()]);
    // Every missing wheel at once, not only the first one reached.
    assert_failed_cleanly(
        &f,
        &err,
        &["offline", "tinyapp-1.0-py3-none-any.whl", "tinydep-1.0-py3-none-any.whl", "hint:"],
    );
}

#[test]
fn requirement_files_and_their_includes_key_the_lock() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let recipe = std::fs::read_to_string(&f.recipe).unwrap();
    std::fs::write(&f.recipe, recipe.replace("requirements = [\"tinyapp\"]", "requirements_file = \"reqs.txt\""))
        .unwrap();
    std::fs::write(f.compose.cwd.join("reqs.txt"), "# the app\n-r more.txt\n").unwrap();
    std::fs::write(f.compose.cwd.join("more.txt"), "tinyapp\n").unwrap();
    f.compose.build_json(&f.recipe, &[]);
    let lock = std::fs::read_to_string(f.pylock("linux/amd64")).unwrap();
    assert!(lock.contains("\"tinyapp\"") && !lock.contains("tinyextra"), "{lock}");
    assert!(lock.contains("requested = [\"tinyapp\"]"), "names from included files are requested:\n{lock}");

    // A change in the included file alone is seen: the wheel set is resolved again.
    std::fs::write(f.compose.cwd.join("more.txt"), "tinyapp\ntinyextra\n").unwrap();
    let err = f.compose.fails(&["build", "--locked", f.recipe()]);
    assert!(err.contains("does not cover the recipe") && err.contains("hint:"), "{err}");
    f.compose.build_json(&f.recipe, &[]);
    let lock = std::fs::read_to_string(f.pylock("linux/amd64")).unwrap();
    assert!(lock.contains("tinyextra"), "{lock}");
}

/// No uv on PATH: the pinned release comes from the Python index into the store, checked
/// against its pinned hash, and resolves the wheel set; the next build fetches it no more.
#[cfg(feature = "live-tests")]
#[test]
fn a_wheel_set_builds_where_no_uv_is_installed() {
    let mut f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    // Debian's python3 with its pip, and nothing that has uv.
    f.compose.env.push(("PATH".into(), "/usr/bin:/bin".into()));
    let out = f.compose.run(&["--json", "build", f.recipe.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Fetching uv"), "{stderr}");
    // The wheel is in the store under its pinned digest; a second resolution reuses it.
    std::fs::remove_file(f.compose.cwd.join("pylock.app-linux-amd64.toml")).unwrap();
    let again = f.compose.run(&["build", f.recipe.to_str().unwrap()]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}
