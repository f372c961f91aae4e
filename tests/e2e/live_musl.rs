//! `recipes/python-musl-baseline.toml` against the machine's Debian mirror: musl, every library
//! CPython needs and busybox built from their pinned sources in the sandbox, CPython 3.13 on
//! them, and the image run under podman. Nothing of glibc may reach it.

use std::process::Command;

use composer_testkit::layer_entries;

use crate::live_debian::{LowercaseDir, build_elsewhere, copy_recipe, live_build};
use crate::toolchain::{planned_builds, planned_steps, toolchain_compose, turn};

/// The platforms whose musl interpreter the tests build, with musl's and the wheels' names for
/// the machine. A cold CI run on two cores has time for one musl stack and CPython: amd64. With
/// `COMPOSE_E2E_FULL=1` arm64's too (cross-compiled on amd64's root, a quarter of an hour more
/// cold). arm64's musl toolchain, cross root and a program trained under qemu-user are built in
/// every run by the PGO test below.
fn musl_platforms() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut platforms = vec![("linux/amd64", "amd64", "x86_64")];
    if std::env::var("COMPOSE_E2E_FULL").is_ok_and(|v| v == "1") {
        platforms.push(("linux/arm64", "arm64", "aarch64"));
    }
    platforms
}

/// `--platform` for each of [`musl_platforms`].
fn platform_args() -> Vec<&'static str> {
    musl_platforms().into_iter().flat_map(|(platform, ..)| ["--platform", platform]).collect()
}

/// What the interpreter must do on musl: every module whose library the recipe builds imports,
/// an HTTPS context loads the image's CA bundle, and the process maps musl (the loader is its
/// libc.so), never glibc.
const CHECK: &str = r#"
import importlib, json, ssl, sysconfig
mods = ["ssl", "sqlite3", "ctypes", "lzma", "bz2", "zlib", "readline", "uuid", "_uuid", "decimal", "_decimal",
        "hashlib", "_hashlib", "_multiprocessing", "curses", "zoneinfo"]
failed = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:
        failed.append(m + ": " + repr(e))
import hashlib, zoneinfo
maps = open("/proc/self/maps").read()
print(json.dumps({"failed": failed, "ca": ssl.create_default_context().cert_store_stats()["x509_ca"],
    "soabi": sysconfig.get_config_var("SOABI"), "musl": "/usr/local/musl/lib/libc.so" in maps,
    "glibc": "libc.so.6" in maps,
    "sha3": hashlib.new("sha3_256", b"").hexdigest()[:8], "tz": str(zoneinfo.ZoneInfo("Europe/Paris"))}))
"#;

fn podman(layout: &std::path::Path, platform: &str, argv: &[&str]) -> String {
    podman_with(layout, platform, &[], argv)
}

/// `podman` with more options for `podman run` (`-v`, `--tmpfs`).
fn podman_with(layout: &std::path::Path, platform: &str, options: &[&str], argv: &[&str]) -> String {
    let image = format!("oci:{}:latest", layout.display());
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", "--platform", platform])
        .args(options)
        .arg(&image)
        .args(argv)
        .output()
        .expect("podman runs (.ci/run installs it)");
    assert!(out.status.success(), "podman {argv:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_musl_image_holds_no_glibc_and_runs_on_amd64_and_cross_built_arm64() {
    // The shared toolchain store: a warm run reuses the builds (keyed by their inputs, so reuse
    // is safe). The platforms of `musl_platforms`, python-musl-app.toml's builds: a cold CI run
    // builds each musl stack once for both tests. arm/v7 (and arm64 by default) is only planned
    // below: its builds run on amd64's root with cross compilers. `compose build` of the recipe
    // as it is builds all three.
    let _turn = turn();
    let c = toolchain_compose();
    let recipe = copy_recipe(&c, "python-musl-baseline.toml");
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl-baseline");
    live_build(&c, &recipe, &[&["-o", layout.to_str().unwrap()][..], &platform_args()].concat());
    // arm64's and arm/v7's builds run on amd64's root with cross compilers, CPython's too (with
    // a CPython built for amd64 from the same source running its build scripts).
    let planned = planned_builds(&c, &recipe);
    for foreign in ["linux/arm64", "linux/arm/v7"] {
        let builds: Vec<&(String, String, Option<String>)> = planned.iter().filter(|b| b.1 == foreign).collect();
        assert!(builds.iter().any(|(name, ..)| name == "build-python"), "{builds:?}");
        assert!(builds.iter().all(|(.., on)| on.as_deref() == Some("linux/amd64")), "{builds:?}");
    }

    // (platform, layout architecture, musl's and the interpreter's name for the machine)
    for (platform, arch, musl_arch) in musl_platforms() {
        let triplet = format!("{musl_arch}-linux-musl");
        let entries = layer_entries(&layout, arch);
        let name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
        let glibc: Vec<&str> = entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| name(p) == "libc.so.6" || name(p).starts_with("ld-linux") || p.contains("-linux-gnu"))
            .collect();
        assert!(glibc.is_empty(), "glibc in the {arch} musl image: {glibc:?}");
        let loader = format!("usr/lib/ld-musl-{musl_arch}.so.1");
        assert!(entries.iter().any(|e| e.path == loader), "no {loader} in the {arch} image");
        // Only what running needs: no headers, static archives, pkg-config files, compiler
        // wrapper, test suite, build-python, nor the bytecode `make install` compiled (the
        // bytecode layer has its own).
        let bytecode_layer = entries.iter().map(|e| e.layer).max().unwrap();
        let for_building: Vec<&str> = entries
            .iter()
            .filter(|e| {
                let p = e.path.as_str();
                p.starts_with("usr/local/include/")
                    || p.starts_with("usr/local/musl/include/")
                    || p.starts_with("opt/")
                    || p.ends_with(".a")
                    || p.ends_with(".pc")
                    || p.ends_with("musl-gcc")
                    || p.starts_with("usr/local/lib/python3.13/test/")
                    || (p.contains("__pycache__") && e.layer != bytecode_layer)
            })
            .map(|e| e.path.as_str())
            .collect();
        assert!(
            for_building.is_empty(),
            "build-only files in the {arch} image: {:?}",
            &for_building[..for_building.len().min(10)]
        );

        let said: serde_json::Value =
            serde_json::from_str(&podman(&layout, platform, &["python3", "-c", CHECK])).unwrap();
        assert_eq!(said["failed"], serde_json::json!([]), "{arch}: {said}");
        assert!(said["ca"].as_u64().unwrap() > 100, "the CA bundle on {arch}: {said}");
        assert_eq!(said["soabi"], format!("cpython-313-{triplet}"), "{said}");
        assert_eq!((said["musl"].as_bool(), said["glibc"].as_bool()), (Some(true), Some(false)), "{arch}: {said}");
        assert_eq!((said["sha3"].as_str(), said["tz"].as_str()), (Some("a7ffc6f8"), Some("Europe/Paris")), "{said}");

        // An entrypoint script, through busybox's sh and its applets.
        let script =
            "set -eu; for word in musl busybox; do printf '%s\\n' \"$word\"; done | sort | tr a-z A-Z | head -1";
        assert_eq!(podman(&layout, platform, &["/bin/sh", "-c", script]).trim(), "BUSYBOX", "{arch}");
    }
}

/// What the optimized interpreter says of itself: whether jemalloc and musl are mapped, and the
/// flags sysconfig recorded.
const ALLOCATOR: &str = r#"
import json, sysconfig
maps = open("/proc/self/maps").read()
print(json.dumps({"jemalloc": "libjemalloc" in maps, "musl": "/usr/local/musl/lib/libc.so" in maps,
    "cflags": sysconfig.get_config_var("CFLAGS"), "nodist": sysconfig.get_config_var("PY_CFLAGS_NODIST")}))
"#;

#[test]
fn the_optimized_musl_interpreter_maps_jemalloc_and_reports_its_profile_and_without_its_allocator_has_none() {
    let _turn = turn();
    let c = toolchain_compose();
    // recipes/python-musl.toml without PGO and LTO, amd64 only: what is checked here is the
    // linking and the flags; the PGO builds of both platforms belong to the benchmark. Its
    // libraries are built with python-musl-baseline.toml's -Os, so that they are the baseline's
    // builds, which the other tests of this module make: only jemalloc and the interpreter (the
    // profile's) are built here, and CI's cold run stays within its time.
    // python-musl.toml extends python-musl-baseline.toml (copied beside it): the platforms are
    // the baseline's, overridden here; the libraries' -O2 is python-musl.toml's own override.
    let without_pgo = |text: &str| {
        let text =
            replaced(text, "name = \"python-musl\"\n", "name = \"python-musl\"\nplatforms = [\"linux/amd64\"]\n");
        let text = replaced(&text, "pgo = true", "pgo = false");
        let text = replaced(&text, "lto = true", "lto = false");
        replaced(&text, "[toolchain]\nopt = \"O2\"\n", "[toolchain]\nopt = \"Os\"\n")
    };
    let recipe = copy_recipe_edited(&c, "python-musl.toml", without_pgo);
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl");
    live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    let entries = layer_entries(&layout, "amd64");
    assert!(entries.iter().any(|e| e.path == "usr/local/lib/libjemalloc.so.2"), "no libjemalloc in the image");
    let said: serde_json::Value =
        serde_json::from_str(&podman(&layout, "linux/amd64", &["python3", "-c", ALLOCATOR])).unwrap();
    assert_eq!((said["jemalloc"].as_bool(), said["musl"].as_bool()), (Some(true), Some(true)), "{said}");
    let cflags = said["cflags"].as_str().unwrap();
    for flag in ["-O3", "-fno-semantic-interposition", "-DTHREAD_STACK_SIZE=0x100000", "-fno-builtin-malloc"] {
        assert!(cflags.contains(flag), "{flag} not in the interpreter's CFLAGS: {said}");
    }
    let imports: serde_json::Value =
        serde_json::from_str(&podman(&layout, "linux/amd64", &["python3", "-c", CHECK])).unwrap();
    assert_eq!(imports["failed"], serde_json::json!([]), "{imports}");
    // The recipe's `builtin` modules are linked in (and import: CHECK imports zlib), not shared
    // objects beside the others.
    let builtin = podman(&layout, "linux/amd64", &["python3", "-c", "import sys; print(*sys.builtin_module_names)"]);
    for module in ["_pickle", "_json", "_struct", "math", "zlib"] {
        assert!(builtin.split_whitespace().any(|m| m == module), "{module} is not built in: {builtin}");
        let shared = format!("/lib-dynload/{module}.cpython-");
        assert!(!entries.iter().any(|e| e.path.contains(&shared)), "{module} is also a shared object");
    }
    assert!(entries.iter().any(|e| e.path.contains("/lib-dynload/_ssl.cpython-")), "_ssl is no longer shared");

    // Without PGO the training task is no input: another task plans no new build (it would
    // rebuild the interpreter for nothing whenever a recipe's training changed).
    let retrained = copy_recipe_edited(&c, "python-musl.toml", |text| {
        let text = without_pgo(text);
        let start = text.find("pgo_task = \"\"\"").expect("python-musl.toml names a training task");
        let end = start + 14 + text[start + 14..].find("\"\"\"").unwrap() + 3;
        format!("{}pgo_task = \"-m test --pgo test_int\"{}", &text[..start], &text[end..])
    });
    let plan: serde_json::Value =
        serde_json::from_str(&c.ok(&["--json", "plan", retrained.to_str().unwrap()])).unwrap();
    let missing: Vec<_> = plan["steps"].as_array().unwrap().iter().filter(|s| s["cached"] == false).collect();
    assert!(missing.iter().all(|s| s["step"] != "build"), "a training task changed a build without PGO: {missing:?}");

    // The allocator switched off (the same recipe without its [allocator] section, musl's own
    // malloc): no jemalloc at all, the profile's flags unchanged. A second interpreter: with
    // COMPOSE_E2E_FULL=1 only, for CI's time (the benchmark builds it too).
    if !std::env::var("COMPOSE_E2E_FULL").is_ok_and(|v| v == "1") {
        return;
    }
    let recipe = copy_recipe_edited(&c, "python-musl.toml", |text| without_section(&without_pgo(text), "[allocator]"));
    let layout = out.0.join("python-musl-malloc");
    live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    let entries = layer_entries(&layout, "amd64");
    assert!(!entries.iter().any(|e| e.path.contains("jemalloc")), "jemalloc in the image without [allocator]");
    let said: serde_json::Value =
        serde_json::from_str(&podman(&layout, "linux/amd64", &["python3", "-c", ALLOCATOR])).unwrap();
    assert!(said["cflags"].as_str().unwrap().contains("-O3"), "{said}");
    assert_eq!((said["jemalloc"].as_bool(), said["musl"].as_bool()), (Some(false), Some(true)), "{said}");
}

/// PGO's two passes on musl, as CPython's build runs them, at the cost of one small program: an
/// instrumented link (GCC's libgcov and libgcc from the build root, built against glibc, call
/// C23's `__isoc23_strtol` and, on aarch64, `__getauxval`, which musl lacks: the musl step's
/// compatibility archive supplies them), a training run that writes its profile (under qemu-user
/// on the arm64 cross root), and the program built again from that profile. The optimized interpreter's own PGO build belongs to the benchmark; this is what
/// keeps the mechanism working in CI.
const PGO_HELLO: &str = r#"
[[builds]]
name = "pgo-hello"
image = true
script = """
cat > hello.c <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0, sum = 0;
    for (long i = 1; i <= n; i++) sum += i % 7 ? i : -i;
    printf("pgo-hello %ld\\n", sum);
    return 0;
}
C
"$CC" -O2 -fprofile-generate -c hello.c -o hello.o
"$CC" -fprofile-generate hello.o -o hello
./hello 1000
test -s hello.gcda
"$CC" -O2 -fprofile-use -Werror=missing-profile -c hello.c -o hello.o
"$CC" hello.o -o hello
mkdir -p "$DESTDIR/usr/local/bin"
cp hello "$DESTDIR/usr/local/bin/pgo-hello"
"""
"#;

#[test]
fn a_pgo_instrumented_program_links_and_trains_on_musl_natively_and_on_the_arm64_cross_root() {
    let _turn = turn();
    let c = toolchain_compose();
    // python-musl-baseline.toml's head (musl's source, the profile, [cross]) and one build: the
    // musl step is the one CI's musl image builds, so a cache hit there.
    let recipe = copy_recipe_edited(&c, "python-musl-baseline.toml", |text| {
        let head = &text[..text.find("\n[[builds]]").expect("the recipe has builds")];
        let cross = &text[text.find("\n[cross]\n").expect("the recipe cross-compiles")..];
        let cross = &cross[..cross[1..].find("\n[").map_or(cross.len(), |i| i + 1)];
        let text = format!("{head}\n{PGO_HELLO}{cross}\n");
        let text = replaced(&text, "name = \"python-musl-baseline\"", "name = \"musl-pgo-hello\"");
        replaced(&text, "\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"", "\"linux/amd64\", \"linux/arm64\"")
    });
    let out = LowercaseDir::new();
    let layout = out.0.join("musl-pgo-hello");
    let summary = live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    for platform in ["linux/amd64", "linux/arm64"] {
        let said = podman(&layout, platform, &["/usr/local/bin/pgo-hello", "100"]);
        assert_eq!(said.trim(), "pgo-hello 3580", "{platform}");
    }

    // Another machine's store, timezone, umask and directory: the same image, musl built from
    // its source and the program trained again, natively and on the arm64 cross root. (The
    // whole interpreter stack again from an empty store would cost a cold CI run a quarter of
    // an hour; jemalloc-hello's test rebuilds a library elsewhere too.)
    let again = build_elsewhere(&recipe, &[], "Asia/Tokyo", "0077", &[]);
    assert_eq!(again["manifests"], summary["manifests"], "the musl PGO image is not reproducible");
}

/// What a musl image's interpreter accepts and has: `packaging.tags` (the reference
/// implementation of wheel tags) on the image, and the wheels' own compiled modules at work
/// (aiohttp only imports: its C parts are multidict's and yarl's).
const WHEELS: &str = r#"
import json, platform, aiohttp, multidict, numpy, orjson, yaml
from cryptography.fernet import Fernet
from packaging import tags
names = [str(t) for t in tags.sys_tags()]
musl = [t.split("-")[2] for t in names if t.startswith("cp313-cp313-musllinux")]
fernet = Fernet(Fernet.generate_key())
print(json.dumps({"machine": platform.machine(), "musl_order": musl,
    "musllinux": sum("musllinux" in t for t in names), "manylinux": sum("manylinux" in t for t in names),
    "libyaml": yaml.__with_libyaml__, "orjson": orjson.dumps({"a": [1]}).decode(),
    "fernet": fernet.decrypt(fernet.encrypt(b"composer")).decode(), "numpy": int(numpy.arange(10).sum()),
    "multidict": multidict.MultiDict.__module__}))
"#;

/// Acceptance C: `recipes/python-musl-app.toml` on amd64 and arm64, with multidict built from its
/// sdist (cross-compiled for arm64) against the image's interpreter and musl, with the build
/// requirements its lock names; auditwheel (from the index) accepts the built wheels as
/// musllinux; pip in the image installs the set from the exported index with no network.
/// Issue 28's acceptance D: netifaces 0.11.0, which has no musllinux wheel and compiles on musl
/// with GCC 14 only with the recipe's per-package `CFLAGS`, is built from its sdist and lists
/// the loopback interface.
#[test]
fn a_musl_wheel_set_installs_musllinux_wheels_and_one_built_from_its_sdist_on_amd64_and_arm64() {
    let _turn = turn();
    let c = toolchain_compose();
    // Both platforms in every run, whatever COMPOSE_E2E_FULL says: issue 28's acceptance D
    // (netifaces) is on amd64 and arm64 (arm64's stack cross-compiled, a quarter of an hour
    // cold).
    let both = [("linux/amd64", "amd64", "x86_64"), ("linux/arm64", "arm64", "aarch64")];
    let platform_args: Vec<&str> = both.iter().flat_map(|(platform, ..)| ["--platform", *platform]).collect();
    // The baseline's builds (cache hits in the shared store) with a wheel set.
    let recipe = copy_recipe(&c, "python-musl-app.toml");
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl-app");
    live_build(&c, &recipe, &[&["-o", layout.to_str().unwrap()][..], &platform_args].concat());
    // multidict's sdist as the lock pins it (its version moves with the index).
    let pylock = |platform: &str| -> toml::Table {
        let path = c.cwd.join(format!("pylock.python-musl-app-{}.toml", platform.replace('/', "-")));
        toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let multidict = pylock("linux/amd64")["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("multidict"))
        .cloned()
        .expect("aiohttp needs multidict");
    let (sdist, version) = (multidict["sdist"]["name"].as_str().unwrap(), multidict["version"].as_str().unwrap());
    // Built on each platform's root: arm64's cross-compiled on amd64's.
    let mut sdist_builds = planned_steps(&c, &recipe, "sdist-build");
    sdist_builds.sort();
    let mut wanted = Vec::new();
    for sdist in [sdist, "netifaces-0.11.0.tar.gz"] {
        wanted.push((sdist.to_string(), "linux/amd64".to_string(), None));
        wanted.push((sdist.to_string(), "linux/arm64".to_string(), Some("linux/amd64".to_string())));
    }
    wanted.sort();
    assert_eq!(sdist_builds, wanted);
    for (platform, _, machine) in both {
        // The compiled wheels are musllinux wheels of the platform's machine, multidict is its
        // sdist, and the lock names what that builds with.
        let pylock = pylock(platform);
        let packages = pylock["packages"].as_array().unwrap();
        let file_of = |name: &str| {
            let package =
                packages.iter().find(|p| p["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("{name}"));
            match package.get("sdist") {
                Some(sdist) => (true, sdist["name"].as_str().unwrap().to_string()),
                None => (false, package["wheels"][0]["name"].as_str().unwrap().to_string()),
            }
        };
        for name in ["orjson", "pyyaml", "numpy", "cryptography", "aiohttp", "frozenlist", "yarl"] {
            let (sdist, file) = file_of(name);
            assert!(!sdist && file.contains("-musllinux_1_") && file.contains(machine), "{platform}: {name}: {file}");
        }
        assert!(file_of("multidict").0, "{platform}: multidict is built from its sdist");
        assert_eq!(file_of("netifaces"), (true, "netifaces-0.11.0.tar.gz".to_string()), "{platform}");
        let build_wheels = pylock["tool"]["composer"]["build-wheels"].as_array().unwrap();
        assert!(build_wheels.iter().any(|w| w["name"].as_str() == Some("setuptools")), "{build_wheels:?}");

        let said: serde_json::Value =
            serde_json::from_str(&podman(&layout, platform, &["python3", "-c", WHEELS])).unwrap();
        assert_eq!(said["machine"], machine, "{said}");
        // The musllinux tags the built musl allows, newest first, as composer ranks them.
        // (packaging 26 puts `linux_<arch>` before them; composer prefers the portable wheel.)
        let musl_order: Vec<String> =
            ["1_2", "1_1", "1_0"].iter().map(|v| format!("musllinux_{v}_{machine}")).collect();
        assert_eq!(said["musl_order"], serde_json::json!(musl_order), "{said}");
        assert_eq!(said["manylinux"], 0, "{said}");
        assert!(said["musllinux"].as_u64().unwrap() > 0, "{said}");
        assert_eq!((said["libyaml"].as_bool(), said["orjson"].as_str()), (Some(true), Some("{\"a\":[1]}")), "{said}");
        assert_eq!((said["fernet"].as_str(), said["numpy"].as_u64()), (Some("composer"), Some(45)), "{said}");
        // multidict's C mapping, not its pure-Python fallback: the extension built and loads.
        assert_eq!(said["multidict"], "multidict._multidict", "{said}");
        // netifaces is a C extension only: it imports, and asks the kernel for the interfaces
        // of the container (with --network=none, the loopback alone).
        let interfaces =
            podman(&layout, platform, &["python3", "-c", "import netifaces; print(netifaces.interfaces())"]);
        assert!(interfaces.contains("'lo'"), "{platform}: {interfaces}");
    }

    // The project's own index: downloaded and built wheels, of every platform built (a recipe
    // whose platforms were not all built names its missing built wheels: the store's are taken).
    let index = c.cwd.join("musl-index");
    c.ok(&["wheels", "index", index.to_str().unwrap(), "--recipe", recipe.to_str().unwrap()]);
    let built: Vec<std::path::PathBuf> = both
        .iter()
        .map(|(.., machine)| {
            index.join("files").join(format!("multidict-{version}-cp313-cp313-musllinux_1_2_{machine}.whl"))
        })
        .collect();
    for wheel in &built {
        assert!(wheel.exists(), "{} is not in the index", wheel.display());
        // auditwheel, from the index, accepts it as a musllinux wheel of its architecture.
        let shown = auditwheel(&["show", wheel.to_str().unwrap()]);
        let machine = if wheel.to_str().unwrap().contains("x86_64") { "x86_64" } else { "aarch64" };
        assert!(shown.contains(&format!("\"musllinux_1_2_{machine}\"")), "{}: {shown}", wheel.display());
    }
    // pip in the image installs the whole set from that index, with no network.
    for (platform, ..) in both {
        let script = "python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir \
                      --index-url file:///index/simple --target /tmp/offline \
                      aiohttp pyyaml orjson cryptography numpy && \
                      PYTHONPATH=/tmp/offline python3 -c 'import multidict, yaml; print(multidict.__file__, multidict.MultiDict.__module__)'";
        let mount = format!("{}:/index:ro", index.display());
        let said = podman_with(&layout, platform, &["-v", &mount, "--tmpfs", "/tmp"], &["sh", "-c", script]);
        assert_eq!(said.trim(), "/tmp/offline/multidict/__init__.py multidict._multidict", "{platform}");
    }
}

/// The other half of acceptance D: without its per-package `CFLAGS`, netifaces 0.11.0 does not
/// compile on musl with GCC 14, and the build's error shows the compiler's (amd64 only: the
/// interpreter and multidict are cache hits of the test above, so this costs one failed compile).
#[test]
fn netifaces_without_its_cflags_fails_on_musl_with_the_compilers_error() {
    let _turn = turn();
    let c = toolchain_compose();
    let recipe =
        copy_recipe_edited(&c, "python-musl-app.toml", |text| without_section(text, "[python.packages.netifaces]"));
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl-app");
    let said =
        c.fails(&["build", recipe.to_str().unwrap(), "-o", layout.to_str().unwrap(), "--platform", "linux/amd64"]);
    assert!(said.contains("sdist-netifaces") && said.contains("linux/amd64"), "{said}");
    assert!(said.contains("[-Wint-conversion]") && said.contains("netifaces.c"), "{said}");
}

/// `auditwheel ARGS` from the Python index, installed once into a virtual environment by uv
/// (retried: the index is live).
fn auditwheel(args: &[&str]) -> String {
    let venv = std::env::temp_dir().join("compose-e2e-auditwheel");
    let bin = venv.join("bin/auditwheel");
    if !bin.exists() {
        let installed = (1..=3).any(|_| {
            let made = Command::new("uv").args(["venv", "--quiet", "--allow-existing"]).arg(&venv).status();
            made.is_ok_and(|s| s.success())
                && Command::new("uv")
                    .args(["pip", "install", "--quiet", "--python"])
                    .arg(venv.join("bin/python"))
                    .arg("auditwheel")
                    .status()
                    .is_ok_and(|s| s.success())
        });
        assert!(installed, "uv could not install auditwheel from the index");
    }
    let out = Command::new(&bin).args(args).output().expect("auditwheel runs");
    assert!(out.status.success(), "auditwheel {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `text` with `from` replaced by `to`; `from` must be there (an edit that no longer matches
/// would test the recipe as it is, or a recipe extending it, silently).
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the recipe no longer holds {from:?}");
    text.replace(from, to)
}

/// A recipe's text without one of its sections (`[allocator]`): from its header to the next one.
fn without_section(text: &str, header: &str) -> String {
    let start = text.find(&format!("\n{header}\n")).unwrap_or_else(|| panic!("no {header} in the recipe")) + 1;
    let rest = &text[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 2);
    format!("{}{}", &text[..start], &rest[end..])
}

/// `copy_recipe`, then `edit` on its text, which must change it (an edit that no longer
/// matches the recipe would test the recipe as it is).
fn copy_recipe_edited(c: &composer_testkit::Compose, name: &str, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let recipe = copy_recipe(c, name);
    let text = std::fs::read_to_string(&recipe).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit of {name} changed nothing");
    std::fs::write(&recipe, edited).unwrap();
    recipe
}

/// A cold `compose plan` fetches repository indexes and no source tarball (the versions of the
/// CPython and the musl it builds come from their file names, checked when a build fetches them),
/// no package file and no wheel. The wheel set of python-musl-app needs both versions.
#[test]
fn a_cold_plan_fetches_no_source_tarball_package_or_wheel() {
    for recipe_name in ["python-musl-baseline.toml", "python-musl-app.toml"] {
        let c = crate::live_debian::live_compose();
        let recipe = copy_recipe(&c, recipe_name);
        let mut last = String::new();
        let mut plan = None;
        for attempt in 1..=3 {
            let out = c.run(&["--json", "plan", recipe.to_str().unwrap()]);
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                plan = Some(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(5 * attempt));
        }
        let plan = plan.unwrap_or_else(|| panic!("plan of {recipe_name} failed:\n{last}"));
        // Every file the plan would fetch is named by its SHA-256: none may be in the store yet.
        let fetched: Vec<(String, String)> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| Some((format!("{} {}", s["step"], s["name"]), s["sha256"].as_str()?.to_string())))
            .collect();
        let kinds = |kind: &str| fetched.iter().filter(|(name, _)| name.starts_with(&format!("\"{kind}\""))).count();
        assert!(kinds("source") > 10 && kinds("fetch") > 10, "{recipe_name}: the plan fetches sources and packages");
        if recipe_name == "python-musl-app.toml" {
            assert!(kinds("fetch-wheel") > 3, "{recipe_name}: and wheels");
        }
        // Not yet the sdists whose build requirements wheel resolution reads (issue 29, point 4:
        // resolution becomes an executor step).
        let sdist = |name: &str| name.ends_with(".tar.gz\"") || name.ends_with(".zip\"");
        for (name, sha) in fetched.iter().filter(|(name, _)| !sdist(name)) {
            let sha = sha.trim_start_matches("sha256:");
            assert!(!composer_testkit::store_has_sha256(&c.store, sha), "{recipe_name}: plan fetched {name}");
        }
    }
}
