//! Against the machine's configured Debian mirror (its apt sources), as users run composer, and
//! the images run for real under podman with runc: amd64 natively, arm64 through qemu-user.

use std::path::{Path, PathBuf};
use std::process::Command;

use composer_testkit::Compose;

use crate::{compose, index_digest};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds with the live mirror, retrying a passing network failure (the client already retries
/// each request; this covers a mirror hiccup longer than that).
pub(crate) fn live_build(c: &Compose, recipe: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "build", recipe.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut last = String::new();
    for attempt in 1..=3 {
        let out = c.run(&args);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        // composer's client and uv both say so when the network failed past their own retries.
        if !last.to_lowercase().contains("failed to fetch") {
            break;
        }
        eprintln!("attempt {attempt} hit the network: {last}");
        std::thread::sleep(std::time::Duration::from_secs(5 * attempt));
    }
    panic!("build of {} failed:\n{last}", recipe.display());
}

pub(crate) fn live_compose() -> Compose {
    let mut c = compose();
    c.host_apt = true;
    // The machine's own index and network configuration, as a user's shell would pass it.
    const PASSED: [&str; 12] = [
        "PIP_INDEX_URL",
        "PIP_CONFIG_FILE",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "UV_INDEX",
        "SSL_CERT_FILE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ];
    for name in PASSED {
        if let Ok(value) = std::env::var(name) {
            c.env.push((name.to_string(), value));
        }
    }
    c
}

/// Copies a recipe, the directory of its local files (`recipes/<stem>/`) if it has one, and the
/// recipes it `extends`, each where it lies beside it in recipes/.
pub(crate) fn copy_recipe(c: &Compose, name: &str) -> PathBuf {
    let dest = c.cwd.join(name);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(repo_root().join("recipes").join(name), &dest).unwrap();
    let text = std::fs::read_to_string(&dest).unwrap();
    if let Some(base) = text.parse::<toml::Table>().unwrap().get("extends").and_then(|v| v.as_str()) {
        let beside = Path::new(name).parent().unwrap_or(Path::new("")).join(base);
        copy_recipe(c, beside.to_str().unwrap());
    }
    let files = repo_root().join("recipes").join(name.trim_end_matches(".toml"));
    if files.is_dir() {
        let target = c.cwd.join(name.trim_end_matches(".toml"));
        std::fs::create_dir_all(&target).unwrap();
        for entry in std::fs::read_dir(&files).unwrap().flatten() {
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
    dest
}

pub(crate) fn podman(layout: &Path, arch: &str, script: &str) -> String {
    let image = format!("oci:{}:latest", layout.display());
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", "--arch", arch, &image, "python3", "-c", script])
        .output()
        .expect("podman runs (.ci/run installs it)");
    assert!(out.status.success(), "podman {arch} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A temp directory whose path has no upper-case letters, removed on drop.
pub(crate) struct LowercaseDir(pub PathBuf);

impl LowercaseDir {
    pub(crate) fn new() -> LowercaseDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = PathBuf::from(format!("/tmp/compose-e2e-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        LowercaseDir(dir)
    }
}

impl Drop for LowercaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An example recipe from `recipes/`, built from the live mirror into a lower-case layout (podman
/// names images after their path).
pub(crate) struct Example {
    pub c: Compose,
    pub recipe: PathBuf,
    pub layout: PathBuf,
    pub summary: serde_json::Value,
    /// Holds the layout; removed on drop, so bind it (`out: _out`) for as long as the layout is used.
    pub out: LowercaseDir,
}

pub(crate) fn build_example(name: &str) -> Example {
    let c = live_compose();
    let recipe = copy_recipe(&c, name);
    let out = LowercaseDir::new();
    let layout = out.0.join(name.trim_end_matches(".toml"));
    let summary = live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    Example { c, recipe, layout, summary, out }
}

/// Builds `recipe` again as another machine would: an empty store, another timezone, locale,
/// umask, thread count and working directory, from the same lock (and `files`, relative to the
/// recipe's directory). Returns the build's summary.
pub(crate) fn build_elsewhere(
    recipe: &Path,
    files: &[&str],
    timezone: &str,
    umask: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut other = live_compose();
    other.env.extend([
        ("TZ".to_string(), timezone.to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("RAYON_NUM_THREADS".into(), "1".into()),
    ]);
    let (dir, name) = (recipe.parent().unwrap(), recipe.file_name().unwrap().to_str().unwrap());
    let lock = recipe.with_extension("lock");
    let elsewhere = other.cwd.join("deeper/than/before");
    for file in [name, lock.file_name().unwrap().to_str().unwrap()].iter().chain(files) {
        let dest = elsewhere.join(file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(dir.join(file), dest).unwrap();
    }
    other.cwd = elsewhere;
    let mut args = vec!["--json", "build", name];
    args.extend_from_slice(extra);
    let out = other.run_with_umask(umask, &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) const CHECK: &str = "import ssl, sqlite3, json, ctypes, platform\n\
ctx = ssl.create_default_context()\n\
maps = open('/proc/self/maps').read()\n\
print(json.dumps({'machine': platform.machine(), 'ca': ctx.cert_store_stats()['x509_ca'], \
'jemalloc': 'libjemalloc' in maps, 'sqlite': sqlite3.sqlite_version}))";

/// dpkg reads the database composer wrote: every package installed, every file's md5sum right,
/// a Multi-Arch: same library's files owned by it.
const DPKG: &str = "import subprocess, json\n\
run = lambda *a: subprocess.run(a, capture_output=True, text=True)\n\
verify = run('dpkg', '--verify')\n\
print(json.dumps({'installed': run('dpkg-query', '-W', '-f', '${Status}\\n').stdout.count('install ok installed'), \
'verify': [verify.returncode, verify.stdout + verify.stderr], 'owner': run('dpkg', '-S', '/usr/bin/python3.11').stdout, \
'libc6': run('dpkg', '-L', 'libc6').stdout.count('\\n'), 'warnings': run('dpkg', '-S', 'libc.so.6').stderr}))";

#[test]
fn debian_python_builds_runs_on_amd64_and_arm64_and_is_reproducible() {
    let Example { c, recipe, layout, summary: first, out: _out } = build_example("debian-python.toml");

    let skopeo = Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:latest", layout.display())])
        .output()
        .expect("skopeo runs");
    assert!(skopeo.status.success(), "skopeo rejected the layout: {}", String::from_utf8_lossy(&skopeo.stderr));

    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let report: serde_json::Value = serde_json::from_str(podman(&layout, arch, CHECK).trim()).unwrap();
        assert_eq!(report["machine"], machine, "{report}");
        assert_eq!(report["jemalloc"], true, "jemalloc not preloaded on {arch}: {report}");
        assert!(report["ca"].as_u64().unwrap() > 100, "no CA certificates on {arch}: {report}");
    }
    let dpkg: serde_json::Value = serde_json::from_str(podman(&layout, "amd64", DPKG).trim()).unwrap();
    assert!(dpkg["installed"].as_u64().unwrap() > 40, "{dpkg}");
    assert_eq!(dpkg["verify"], serde_json::json!([0, ""]), "dpkg --verify disagrees with the image");
    assert_eq!(dpkg["owner"], "python3.11-minimal: /usr/bin/python3.11\n", "{dpkg}");
    assert!(dpkg["libc6"].as_u64().unwrap() > 100 && dpkg["warnings"] == "", "{dpkg}");

    // Same store again: every step is a cache hit.
    let again = live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    assert_eq!(index_digest(&first), index_digest(&again));
    let steps = again["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["cached"] == true), "{steps:?}");

    // Another store, another timezone, umask, locale, thread count and directory, same lock.
    let second = build_elsewhere(&recipe, &[], "Asia/Kolkata", "027", &[]);
    assert_eq!(index_digest(&first), index_digest(&second), "two stores gave different images");
}

/// Every recipe plans against the live mirror and index. Builds: debian-python and
/// debian-trixie-tools here, python-app in `live_python`, jemalloc-hello in `toolchain`,
/// python-musl-baseline and python-musl-app in `live_musl`; python-optimized and python-baseline (CPython from
/// source, 27 and 6 minutes on two cores) are built by `tests/bench/pyperformance.sh`, and
/// python-musl (PGO on musl) not in CI either.
#[test]
fn every_example_recipe_plans() {
    let c = live_compose();
    let mut count = 0;
    for entry in std::fs::read_dir(repo_root().join("recipes")).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.ends_with(".toml") || name.starts_with("pylock.") {
            continue;
        }
        let recipe = copy_recipe(&c, path.file_name().unwrap().to_str().unwrap());
        let mut last = String::new();
        let ok = (1..=3).any(|_| {
            let out = c.run(&["--json", "plan", recipe.to_str().unwrap()]);
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            out.status.success()
        });
        assert!(ok, "{} does not plan:\n{last}", path.display());
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn debian_trixie_tools_runs_on_amd64_arm64_and_armv7_with_zstd_layers() {
    let Example { layout, out: _out, .. } = build_example("debian-trixie-tools.toml");

    let config = composer_testkit::image_config(&layout, "arm");
    assert_eq!(config["variant"], "v7", "{config}");
    let settings = &config["config"];
    assert_eq!((settings["User"].as_str(), settings["WorkingDir"].as_str()), (Some("1000:1000"), Some("/srv")));
    assert_eq!(settings["StopSignal"], "SIGINT");
    assert!(settings["ExposedPorts"]["8080/tcp"].is_object(), "{settings}");

    for (arch, triple) in [
        ("amd64", "x86_64-pc-linux-gnu"),
        ("arm64", "aarch64-unknown-linux-gnu"),
        ("arm", "arm-unknown-linux-gnueabihf"),
    ] {
        let manifest = composer_testkit::manifest(&layout, arch);
        let layers = manifest["layers"].as_array().unwrap();
        assert!(layers.iter().all(|l| l["mediaType"].as_str().unwrap().ends_with("tar+zstd")), "{manifest}");
        // The entrypoint (curl) with the recipe's default cmd (--version), as the recipe's user.
        let image = format!("oci:{}:13", layout.display());
        let out = Command::new("podman")
            .args(["--runtime", "runc", "run", "--rm", "--network=none", "--arch", arch, &image])
            .output()
            .expect("podman runs");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "podman {arch}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(said.starts_with("curl ") && said.contains(triple), "{arch}: {said}");
    }
}

/// What `import json` says under `python3 -v` about where its code came from.
const FROM_BYTECODE: &str = "import json, platform, sys\nprint(platform.machine(), file=sys.stderr)";

#[test]
fn bytecode_is_compiled_at_build_time_into_its_own_layer_and_used() {
    let c = live_compose();
    let recipe = copy_recipe(&c, "debian-python.toml");
    let out_dir = LowercaseDir::new();
    let plain = out_dir.0.join("plain");
    let with_bytecode = out_dir.0.join("bytecode");
    live_build(&c, &recipe, &["-o", plain.to_str().unwrap()]);
    let text = std::fs::read_to_string(&recipe).unwrap() + "\n[python]\nbytecode = true\n";
    std::fs::write(&recipe, text).unwrap();
    let first = live_build(&c, &recipe, &["-o", with_bytecode.to_str().unwrap()]);

    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        // The image without bytecode, and one more layer on top: nothing below it changed.
        let digests = |layout: &Path| -> Vec<String> {
            let manifest = composer_testkit::manifest(layout, arch);
            manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
        };
        let (below, above) = (digests(&plain), digests(&with_bytecode));
        assert_eq!(above.len(), below.len() + 1, "{arch}: one bytecode layer");
        assert_eq!(above[..below.len()], below[..], "{arch}: the layers below the bytecode changed");

        let entries = composer_testkit::layer_entries(&with_bytecode, arch);
        let pyc = entries
            .iter()
            .find(|e| e.path == "usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc")
            .unwrap_or_else(|| panic!("{arch}: json has no bytecode"));
        // PEP 552 flags: hash-based and checked, so valid whatever the files' times.
        assert_eq!(pyc.data[4..8], [3, 0, 0, 0], "{arch}: not checked-hash bytecode");

        // As the image's own (non-root) user, the interpreter reads the bytecode, not the source.
        let image = format!("oci:{}:latest", with_bytecode.display());
        let out = Command::new("podman")
            .args(["--runtime", "runc", "run", "--rm", "--network=none", "--arch", arch, &image])
            .args(["python3", "-v", "-c", FROM_BYTECODE])
            .output()
            .expect("podman runs");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{arch}: {said}");
        assert!(said.contains(machine), "{arch}: {said}");
        assert!(
            said.contains("code object from '/usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc'"),
            "{arch}: json was not loaded from its bytecode:\n{said}"
        );
    }

    // Compiled again in another store and environment: the same bytes.
    let second = build_elsewhere(&recipe, &[], "America/Lima", "077", &[]);
    assert_eq!(index_digest(&first), index_digest(&second), "bytecode compiled twice differs");

    let planned: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    let bytecode: Vec<&serde_json::Value> =
        planned["steps"].as_array().unwrap().iter().filter(|s| s["step"] == "python-bytecode").collect();
    assert!(bytecode.len() == 2 && bytecode.iter().all(|s| s["cached"] == true), "{planned}");
}

#[test]
fn wheel_bytecode_is_its_own_layer_and_changes_alone_with_the_wheel_set() {
    let mut c = live_compose();
    let index = composer_testkit::LocalIndex::new();
    index.publish(&[composer_testkit::Wheel::new("alpha", "1.0"), composer_testkit::Wheel::new("beta", "1.0")]);
    c.env.push(("COMPOSE_INDEX_FIXTURE".into(), index.url()));
    let recipe = c.cwd.join("wheels.toml");
    let write = |requirement: &str| {
        std::fs::write(
            &recipe,
            format!(
                "[image]\nname = \"wheels\"\nplatforms = [\"linux/amd64\"]\nsource_date_epoch = 1700000000\n\n\
                 [base]\nsuite = \"bookworm\"\nmirror = \"debian\"\npackages = []\n\n\
                 [python]\nrequirements = [\"{requirement}\"]\nindex = \"fixture\"\nbytecode = true\n"
            ),
        )
        .unwrap()
    };
    let out_dir = LowercaseDir::new();
    let bytecode_layers = |layout: &Path| -> Vec<(String, String)> {
        let manifest = composer_testkit::manifest(layout, "amd64");
        let config = composer_testkit::image_config(layout, "amd64");
        // History entries line up with layers (none is empty).
        let comments: Vec<String> = config["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["comment"].as_str().unwrap_or_default().to_string())
            .collect();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(comments)
            .filter(|(_, comment)| comment.starts_with("python bytecode"))
            .map(|(layer, comment)| (comment, layer["digest"].as_str().unwrap().to_string()))
            .collect()
    };

    write("alpha");
    let first = out_dir.0.join("first");
    live_build(&c, &recipe, &["-o", first.to_str().unwrap()]);
    let entries = composer_testkit::layer_entries(&first, "amd64");
    assert!(
        entries
            .iter()
            .any(|e| e.path == "opt/venv/lib/python3.11/site-packages/alpha/__pycache__/__init__.cpython-311.pyc"),
        "the wheel's module has no bytecode"
    );
    let said = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", &format!("oci:{}:latest", first.display())])
        .args(["python", "-v", "-c", "import alpha"])
        .output()
        .expect("podman runs");
    let said = String::from_utf8_lossy(&said.stderr);
    assert!(said.contains("site-packages/alpha/__pycache__/__init__.cpython-311.pyc'"), "{said}");

    write("beta");
    let second = out_dir.0.join("second");
    live_build(&c, &recipe, &["-o", second.to_str().unwrap()]);
    let (before, after) = (bytecode_layers(&first), bytecode_layers(&second));
    let names: Vec<&str> = before.iter().map(|(comment, _)| comment.as_str()).collect();
    assert_eq!(names, ["python bytecode: distro", "python bytecode: wheels"]);
    assert_eq!(before[0], after[0], "the distro's bytecode changed with the wheel set");
    assert_ne!(before[1], after[1], "the wheel set's bytecode did not change with it");
}
