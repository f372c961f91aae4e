//! Builds in the sandbox, on build roots from the machine's Debian mirror: jemalloc from its
//! pinned source with a profile, linked into a program that runs under podman (arm64 through
//! qemu-user); what the sandbox keeps a build from doing; which steps a changed flag reruns; that
//! a build gives the same bytes in another store and environment.
//!
//! The tests share one store (build roots are large and the same for all) and take turns, as
//! two compilers on two cores would only slow each other down.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use composer_testkit::{Compose, layer_entries};

use crate::live_debian::{LowercaseDir, build_elsewhere, copy_recipe, live_build, live_compose};

static TURN: Mutex<()> = Mutex::new(());

/// A compose on the shared toolchain store. The store persists between runs (content-addressed,
/// so reuse is safe); tests that check what reruns use flags unique to the run.
pub(crate) fn toolchain_compose() -> Compose {
    let mut c = live_compose();
    c.store = std::env::temp_dir().join("compose-e2e-toolchain-store");
    c
}

pub(crate) fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn file_in_image(layout: &Path, arch: &str, path: &str) -> Vec<u8> {
    layer_entries(layout, arch)
        .into_iter()
        .rev()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} is not in the {arch} image"))
        .data
}

fn readelf(binary: &[u8], args: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binary");
    std::fs::write(&path, binary).unwrap();
    let out = Command::new("readelf").args(args.split(' ')).arg(&path).output().expect("readelf runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn recorded_switches(binary: &[u8]) -> String {
    readelf(binary, "-p .GCC.command.line")
}

fn run_image(layout: &Path, arch: &str) -> String {
    let image = format!("oci:{}:latest", layout.display());
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", "--arch", arch, &image])
        .output()
        .expect("podman runs (.ci/run installs it)");
    assert!(out.status.success(), "podman {arch} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn step_runs(summary: &serde_json::Value) -> Vec<(String, String, bool)> {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "build")
        .map(|s| {
            (s["name"].as_str().unwrap().to_string(), s["platform"].as_str().unwrap().to_string(), s["cached"] == true)
        })
        .collect()
}

#[test]
fn jemalloc_built_with_a_profile_runs_linked_into_a_program_on_amd64_and_cross_compiled_for_arm64() {
    let _turn = turn();
    let c = toolchain_compose();
    let recipe = copy_recipe(&c, "jemalloc-hello.toml");
    let out_dir = LowercaseDir::new();
    let layout = out_dir.0.join("jemalloc-hello");
    live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    // arm64's jemalloc and program are cross-compiled on amd64's root (`[cross]`), amd64's
    // natively, as an empty store would run them. Either way the arm64 program runs below,
    // under qemu-user.
    for (name, platform, on) in planned_builds(&c, &recipe) {
        let wanted = (platform == "linux/arm64").then_some("linux/amd64".to_string());
        assert_eq!(on, wanted, "{name} for {platform}");
    }
    for (arch, machine) in [("amd64", "X86-64"), ("arm64", "AArch64")] {
        let binary = file_in_image(&layout, arch, "usr/local/bin/jemalloc-hello");
        let switches = recorded_switches(&binary);
        // The profile's flags, from the program's own objects and from jemalloc's. The section
        // exists only because the toolchain adds -frecord-gcc-switches (GCC does not record that
        // switch itself).
        for flag in ["-O3", "-fno-semantic-interposition", "-fno-plt"] {
            assert!(switches.contains(flag), "{flag} not recorded in the {arch} program:\n{switches}");
        }
        // jemalloc's own objects (its build adds -funroll-loops) carry the profile too.
        let jemalloc_objects: Vec<&str> = switches.lines().filter(|l| l.contains("-funroll-loops")).collect();
        assert!(!jemalloc_objects.is_empty(), "no jemalloc objects:\n{switches}");
        for line in jemalloc_objects {
            assert!(line.contains("-O3") && line.contains("-fno-semantic-interposition"), "{line}");
        }
        assert!(readelf(&binary, "-h").contains(machine), "the {arch} program is not {machine}");
        // lg_page = 16: jemalloc's page is 64 KiB whatever the kernel's, so it starts on every arm64.
        let said = run_image(&layout, arch);
        assert!(said.starts_with("jemalloc 5.3.0"), "{arch}: {said}");
        assert!(said.contains("page 65536"), "{arch}: {said}");
    }
}

/// Every build step of `recipe` as a machine with an empty store would run it: (name,
/// platform, the platform it is cross-compiled on). A warm store's plan has no build steps.
pub(crate) fn planned_builds(c: &Compose, recipe: &Path) -> Vec<(String, String, Option<String>)> {
    planned_steps(c, recipe, "build")
}

/// `planned_builds` for steps of another kind (`sdist-build`).
pub(crate) fn planned_steps(c: &Compose, recipe: &Path, kind: &str) -> Vec<(String, String, Option<String>)> {
    let mut cold = crate::live_debian::live_compose();
    cold.cwd = c.cwd.clone();
    let out = cold.run(&["--json", "plan", recipe.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let builds: Vec<_> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == kind)
        .map(|s| {
            let field = |f: &str| s[f].as_str().map(str::to_string);
            (field("name").unwrap(), field("platform").unwrap(), field("cross"))
        })
        .collect();
    assert!(!builds.is_empty(), "an empty store plans no {kind} step: {plan}");
    builds
}

/// A recipe whose one build runs `probe` (shell) and keeps what it writes under
/// `$DESTDIR/probe`.
pub(crate) fn probe_recipe(c: &Compose, probe: &str) -> PathBuf {
    let recipe = c.cwd.join("probe.toml");
    std::fs::write(
        &recipe,
        format!(
            "[image]\nname = \"probe\"\nplatforms = [\"linux/amd64\"]\nsource_date_epoch = 1700000000\n\n\
             [base]\nsuite = \"bookworm\"\nmirror = \"debian\"\npackages = [\"libc6\"]\n\n\
             [[builds]]\nname = \"probe\"\nscript = '''\nmkdir -p \"$DESTDIR/probe\"\n{probe}\n'''\n"
        ),
    )
    .unwrap();
    recipe
}

fn probe(c: &Compose, script: &str, file: &str) -> String {
    let recipe = probe_recipe(c, script);
    let out_dir = LowercaseDir::new();
    let layout = out_dir.0.join("probe");
    live_build(c, &recipe, &["-o", layout.to_str().unwrap()]);
    String::from_utf8(file_in_image(&layout, "amd64", &format!("probe/{file}"))).unwrap()
}

#[test]
fn plan_fetches_no_source_and_build_fetches_it_once() {
    let _turn = turn();
    let c = toolchain_compose();
    // A source unique to this run, served from a file:// URL and pinned by its sha256.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let data = format!("source of run {nonce}\n");
    let file = c.cwd.join("payload.txt");
    std::fs::write(&file, &data).unwrap();
    let sha256 = composer_testkit::sha256_hex(data.as_bytes());
    let recipe = probe_recipe(&c, "cp /sources/payload \"$DESTDIR/probe/payload\"");
    let text = std::fs::read_to_string(&recipe).unwrap().replace(
        "[[builds]]\nname = \"probe\"\n",
        &format!(
            "[[sources]]\nname = \"payload\"\nurl = \"file://{}\"\nsha256 = \"{sha256}\"\n\n\
             [[builds]]\nname = \"probe\"\nsources = [\"payload\"]\n",
            file.display()
        ),
    );
    std::fs::write(&recipe, text).unwrap();
    let stored = c.store.join("sha256-v1").join(&sha256[..2]).join(&sha256);
    // Whether the source step is cached, when the steps hold one (a plan whose builds are all
    // in the store needs no source at all).
    let source_step = |steps: &serde_json::Value| -> Option<bool> {
        let steps = steps.as_array().unwrap();
        steps.iter().find(|s| s["step"] == "source" && s["name"] == "payload").map(|s| s["cached"] == true)
    };

    let planned: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    assert_eq!(source_step(&planned["steps"]), Some(false), "{planned}");
    assert!(!stored.exists(), "plan fetched the source");

    let built = live_build(&c, &recipe, &["-o", c.cwd.join("out").to_str().unwrap()]);
    assert!(source_step(&built["steps"]) == Some(false) && stored.exists(), "{built}");
    let replanned: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    assert_ne!(source_step(&replanned["steps"]), Some(false), "{replanned}");
}

#[test]
fn a_build_cannot_open_a_network_connection() {
    let _turn = turn();
    let c = toolchain_compose();
    // A listener on the host's loopback: without a network namespace the build would reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let script = format!(
        "# run {nonce}\nif perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => \"127.0.0.1:{port}\", Timeout => 5) ? 0 : 1)'; \
         then echo connected; else echo refused; fi > \"$DESTDIR/probe/net\""
    );
    let said = probe(&c, &script, "net");
    assert_eq!(said.trim(), "refused");
    assert!(listener.accept().is_err(), "the build reached the host's loopback");
}

#[test]
fn a_build_cannot_see_the_hosts_root_or_home() {
    let _turn = turn();
    let c = toolchain_compose();
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let secrets = [
        PathBuf::from(format!("/root/.compose-e2e-secret-{nonce}")),
        PathBuf::from(format!("/home/compose-e2e-secret-{nonce}")),
    ];
    for secret in &secrets {
        std::fs::write(secret, "secret").unwrap();
    }
    let script: String = secrets
        .iter()
        .map(|s| {
            format!(
                "if [ -e {0} ]; then echo visible {0}; else echo hidden {0}; fi >> \"$DESTDIR/probe/home\"\n",
                s.display()
            )
        })
        .collect();
    let said = probe(&c, &script, "home");
    for secret in &secrets {
        let _ = std::fs::remove_file(secret);
    }
    assert_eq!(said.lines().filter(|l| l.starts_with("hidden ")).count(), 2, "{said}");
}

#[test]
fn a_build_cannot_write_outside_its_output_directory() {
    let _turn = turn();
    let c = toolchain_compose();
    let host_dir = tempfile::tempdir().unwrap();
    let escaped = host_dir.path().join("escaped");
    let targets = [escaped.display().to_string(), "/etc/escaped".into(), "/usr/bin/escaped".into(), "/escaped".into()];
    let script: String = targets
        .iter()
        .map(|t| format!("if (echo x > {t}) 2>/dev/null; then echo wrote {t}; else echo denied {t}; fi >> \"$DESTDIR/probe/write\"\n"))
        .collect();
    let said = probe(&c, &script, "write");
    assert_eq!(said.lines().filter(|l| l.starts_with("denied ")).count(), targets.len(), "{said}");
    assert!(!escaped.exists());
    assert!(!Path::new("/etc/escaped").exists() && !Path::new("/escaped").exists());
}

/// `recipes/jemalloc-hello.toml` for linux/amd64 only (what reruns, and whether the bytes are
/// the same, is the same question on every platform), and its text.
pub(crate) fn jemalloc_hello_amd64(c: &Compose) -> (PathBuf, String) {
    let recipe = copy_recipe(c, "jemalloc-hello.toml");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("platforms = [\"linux/amd64\", \"linux/arm64\"]", "platforms = [\"linux/amd64\"]");
    std::fs::write(&recipe, &text).unwrap();
    (recipe, text)
}

#[test]
fn a_rebuild_is_a_cache_hit_and_a_changed_flag_reruns_only_its_steps() {
    let _turn = turn();
    let c = toolchain_compose();
    let (recipe, text) = jemalloc_hello_amd64(&c);
    // A flag unique to this run, so that the shared store cannot have seen it.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let text = text.replace(
        "[[builds]]\nname = \"hello\"",
        &format!(
            "[toolchain.profiles.run]\nopt = \"O3\"\ncflags = [\"-DRUN={nonce}\"]\n\n[[builds]]\nname = \"hello\""
        ),
    );
    let text = text.replace("uses = [\"jemalloc\"]\nprofile = \"fast\"", "uses = [\"jemalloc\"]\nprofile = \"run\"");
    std::fs::write(&recipe, &text).unwrap();
    let out = c.cwd.join("out");
    let first = live_build(&c, &recipe, &["-o", out.to_str().unwrap()]);
    assert!(step_runs(&first).iter().any(|(n, _, cached)| n == "hello" && !cached), "{:?}", step_runs(&first));

    let again = live_build(&c, &recipe, &["-o", out.to_str().unwrap()]);
    assert!(again["steps"].as_array().unwrap().iter().all(|s| s["cached"] == true), "{}", again["steps"]);
    assert_eq!(first["index"], again["index"]);

    // A flag that changes the code (a -D would not: the preprocessor's switches are not recorded
    // and this program does not read the macro, so the image would rightly stay the same).
    std::fs::write(
        &recipe,
        text.replace(&format!("\"-DRUN={nonce}\""), &format!("\"-DRUN={nonce}\", \"-fno-inline\"")),
    )
    .unwrap();
    let changed = live_build(&c, &recipe, &["-o", out.to_str().unwrap()]);
    let runs = step_runs(&changed);
    assert_eq!(
        runs,
        vec![("jemalloc".to_string(), "linux/amd64".to_string(), true), ("hello".into(), "linux/amd64".into(), false)]
    );
    let ran = composer_testkit::ran_steps(&changed);
    // The program, its layer and the image documents: nothing of jemalloc or the base.
    assert!(ran.iter().all(|s| ["build", "build-layer"].contains(&s.as_str())), "{ran:?}");
    assert_ne!(first["index"], changed["index"]);
}

#[test]
fn a_build_from_another_store_and_environment_gives_the_same_image() {
    let _turn = turn();
    let c = toolchain_compose();
    // Both platforms: arm64's builds are cross-compiled, and must be as reproducible.
    let recipe = copy_recipe(&c, "jemalloc-hello.toml");
    let here = live_build(&c, &recipe, &["-o", c.cwd.join("out").to_str().unwrap()]);

    // An empty store: the build roots, jemalloc and the program are all built again, from the
    // same lock, under another timezone, locale, umask, thread count and directory.
    let there = build_elsewhere(&recipe, &["jemalloc-hello/hello.c"], "Pacific/Auckland", "077", &[]);
    assert!(step_runs(&there).iter().all(|(_, _, cached)| !cached), "the other store built nothing: {there}");
    assert_eq!(here["index"], there["index"], "the same recipe and lock built in two stores differ");
}

#[test]
fn wheels_without_a_usable_wheel_are_built_from_their_sdist_installed_and_published() {
    let _turn = turn();
    let mut c = toolchain_compose();
    let index = composer_testkit::LocalIndex::new();
    // `pure` exists only as an sdist; `both` has a wheel too, which `no_binary` passes over.
    // Salted per run: the store is shared between runs, and the plan below must see new builds.
    let salt = format!("{:?}", std::time::SystemTime::now());
    index.publish_sdist(&composer_testkit::Sdist::new("pure", "1.0").salted(&salt));
    index.publish(&[composer_testkit::Wheel::new("both", "2.0")]);
    index.publish_sdist(&composer_testkit::Sdist::new("both", "2.0").salted(&salt));
    c.env.push(("COMPOSE_INDEX_FIXTURE".into(), index.url()));
    let recipe = c.cwd.join("sdists.toml");
    std::fs::write(
        &recipe,
        "[image]\nname = \"sdists\"\nplatforms = [\"linux/amd64\"]\nsource_date_epoch = 1700000000\n\n\
         [base]\nsuite = \"bookworm\"\nmirror = \"debian\"\npackages = [\"python3\"]\n\n\
         [python]\nrequirements = [\"pure\", \"both\"]\nindex = \"fixture\"\nonly_binary = []\nno_binary = [\"both\"]\n",
    )
    .unwrap();
    let plan_sdist_builds = || -> Vec<(String, bool)> {
        let plan: serde_json::Value =
            serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == "sdist-build")
            .map(|s| (s["name"].as_str().unwrap().to_string(), s["cached"] == true))
            .collect()
    };
    assert_eq!(plan_sdist_builds(), [("both-2.0.tar.gz".to_string(), false), ("pure-1.0.tar.gz".into(), false)]);
    let out_dir = LowercaseDir::new();
    let layout = out_dir.0.join("sdists");
    let summary = live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    // After the build the plan knows the builds, and what stands on them, are done: the wheel
    // layers are in the store, so nothing below them is even asked for.
    assert!(plan_sdist_builds().iter().all(|(_, cached)| *cached), "{:?}", plan_sdist_builds());
    let plan: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "plan", recipe.to_str().unwrap()])).unwrap();
    assert!(plan["steps"].as_array().unwrap().iter().all(|s| s["cached"] == true), "{plan}");
    let built: Vec<&str> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "sdist-build")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(built, ["both-2.0.tar.gz", "pure-1.0.tar.gz"]);

    // The modules were built in the sandbox (its host name is `composer`), not taken from the wheel.
    let said = crate::live_debian::podman(
        &layout,
        "amd64",
        "import pure, both; print(pure.BUILT_IN, pure.VERSION, both.BUILT_IN, both.VERSION)",
    );
    assert_eq!(said.trim(), "composer 1.0 composer 2.0");

    let exported = c.cwd.join("index");
    c.ok(&["wheels", "index", exported.to_str().unwrap(), "--recipe", recipe.to_str().unwrap()]);
    for project in ["pure", "both"] {
        let page = std::fs::read_to_string(exported.join("simple").join(project).join("index.html")).unwrap();
        assert!(page.contains("-py3-none-any.whl"), "{project}: {page}");
        assert!(!page.contains(".tar.gz"), "{project}: {page}");
    }
    // Built wheels install from the exported index like any other.
    let target = c.cwd.join("target");
    let uv = Command::new("uv")
        .args(["pip", "install", "--offline", "--no-deps", "--only-binary", ":all:", "--target"])
        .arg(&target)
        .args(["--index-url", &format!("file://{}/simple", exported.display()), "pure"])
        .output()
        .expect("uv runs");
    assert!(uv.status.success(), "{}", String::from_utf8_lossy(&uv.stderr));
    assert!(std::fs::read_to_string(target.join("pure/__init__.py")).unwrap().contains("'composer'"));

    // Another machine takes the sdist builds from a cache that lacks what was made of them (the
    // installs and wheel layers are dropped from it): it knows each wheel from the signed claim,
    // installs it here, and makes the same image without building anything.
    let key = c.home.path().join("k.secret");
    let public = c.ok(&["key", "generate", "k", "-o", key.to_str().unwrap()]).trim().to_string();
    let cache = c.home.path().join("shared-cache");
    let reference = format!("dir:{}", cache.display());
    c.ok(&["store", "push", &reference, "--recipe", recipe.to_str().unwrap(), "--signing-key", key.to_str().unwrap()]);
    keep_in_cache(&cache, &|step| !matches!(step, "wheel-install" | "wheel-layer" | "python-env"));
    let mut two = crate::live_debian::live_compose();
    two.env.push(("COMPOSE_INDEX_FIXTURE".into(), index.url()));
    two.cwd = c.cwd.clone();
    let again = live_build(
        &two,
        &recipe,
        &["--cache", &reference, "--trusted-key", &public, "-o", two.home.path().join("out").to_str().unwrap()],
    );
    assert_eq!(again["index"], summary["index"]);
    let steps = again["steps"].as_array().unwrap();
    let of = |kind: &str| steps.iter().filter(|s| s["step"] == kind).collect::<Vec<_>>();
    assert!(of("sdist-build").iter().all(|s| s["substituted"] == reference.as_str()), "{steps:?}");
    assert!(of("install-wheel").iter().all(|s| s["cached"] == false && s["substituted"].is_null()), "{steps:?}");
}

/// Drops from a `dir:` cache every step result whose claim's step `keep` refuses.
fn keep_in_cache(cache: &Path, keep: &dyn Fn(&str) -> bool) {
    let index_path = cache.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let blob = |digest: &str| std::fs::read(cache.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    index["manifests"].as_array_mut().unwrap().retain(|entry| {
        let manifest: serde_json::Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
        if manifest["artifactType"] != "application/vnd.composer.step.v1" {
            return true;
        }
        // A small claim rides in the manifest; a large one is its config blob.
        let bytes = match manifest["annotations"]["dev.composer.claim"].as_str() {
            Some(inline) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(inline).unwrap()
            }
            None => blob(manifest["config"]["digest"].as_str().unwrap()),
        };
        let claim: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        keep(claim["step"].as_str().unwrap())
    });
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_failed_build_shows_the_end_of_its_log_and_keeps_its_directory_when_asked() {
    let _turn = turn();
    let c = toolchain_compose();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let recipe = probe_recipe(&c, &format!("echo scratch > /build/left-here\necho 'the last words {nonce}'\nexit 3"));
    let said = c.fails(&["build", recipe.to_str().unwrap(), "--keep-failed"]);
    assert!(said.contains("build `probe` for linux/amd64 failed (exit status 3)"), "{said}");
    assert!(said.contains(&format!("the last words {nonce}")), "{said}");
    let kept = said
        .lines()
        .find_map(|l| l.split("the build directory is kept at ").nth(1))
        .unwrap_or_else(|| panic!("no kept directory in: {said}"));
    let kept = Path::new(kept.trim());
    assert_eq!(std::fs::read_to_string(kept.join("build/left-here")).unwrap(), "scratch\n");
    let log = said.split("the whole log is ").nth(1).unwrap().split(';').next().unwrap();
    assert!(std::fs::read_to_string(log).unwrap().contains(&format!("the last words {nonce}")));
    std::fs::remove_dir_all(kept).unwrap();
    // Nothing of the failed step is cached: the next build runs it again.
    let again = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(again.contains("exit status 3") && again.contains("--keep-failed"), "{again}");

    // --debug-shell opens a shell in the failed step's sandbox: its files, its host name.
    let mut shell = c.command(&["build", recipe.to_str().unwrap(), "--debug-shell"]);
    shell.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = shell.spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"cat /build/left-here; echo in-$(hostname) $SOURCE_DATE_EPOCH; exit\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the build stays failed");
    assert_eq!(stderr.matches("error:").count(), 1, "the failure is told once: {stderr}");
    assert!(stdout.contains("scratch") && stdout.contains("in-composer 1700000000"), "{stdout}\n{stderr}");
    if let Some(kept) = stderr.lines().find_map(|l| l.split("the build directory is kept at ").nth(1)) {
        let _ = std::fs::remove_dir_all(kept.trim());
    }
}

#[test]
fn a_built_interpreter_brings_the_run_time_libraries_its_modules_link_to() {
    let c = live_compose();
    // The recipe names no library: they come from the -dev packages CPython compiles against.
    let recipe = copy_recipe(&c, "python-baseline.toml");
    let _ = std::fs::remove_file(recipe.with_extension("lock"));
    let mut last = String::new();
    let locked = (1..=3).any(|_| {
        let out = c.run(&["lock", recipe.to_str().unwrap()]);
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(locked, "{last}");
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(recipe.with_extension("lock")).unwrap()).unwrap();
    let platform = &lock["platform"][0];
    let names = |key: &str| -> Vec<String> {
        platform[key].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    let image = names("packages");
    // Since trixie, libraries whose ABI took the 64-bit time_t carry a t64 suffix (libssl3t64).
    for library in [
        "libssl3",
        "libsqlite3-0",
        "libffi8",
        "libbz2-1.0",
        "liblzma5",
        "libncursesw6",
        "libreadline8",
        "libgdbm6",
        "libuuid1",
        "zlib1g",
    ] {
        let found = image.iter().any(|p| p == library || *p == format!("{library}t64"));
        assert!(found, "{library} is not in the image: {image:?}");
    }
    // The build root has the compiler and headers; the image has neither.
    assert!(names("build_packages").contains(&"libssl-dev".to_string()));
    assert!(!image.iter().any(|p| p.ends_with("-dev") || p == "gcc" || p == "pkgconf"), "{image:?}");

    // A lock made without those libraries (as an older composer wrote it) no longer covers the
    // recipe: building from it would give an interpreter whose modules cannot load.
    let text = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    let without: String = text.lines().filter(|l| !l.starts_with("runtime_of = ")).map(|l| format!("{l}\n")).collect();
    assert_ne!(text, without, "the lock records whose run-time libraries it holds");
    std::fs::write(recipe.with_extension("lock"), without).unwrap();
    let err = c.fails(&["build", "--locked", recipe.to_str().unwrap()]);
    assert!(err.contains("run-time libraries") && err.contains("compose lock"), "{err}");
}
