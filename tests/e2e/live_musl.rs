//! `recipes/python-musl-baseline.toml` against the machine's Debian mirror: musl, every library
//! CPython needs and busybox built from their pinned sources in the sandbox, CPython 3.13 on
//! them, and the image run under podman. Nothing of glibc may reach it.

use std::process::Command;

use composer_testkit::layer_entries;

use crate::live_debian::{LowercaseDir, build_elsewhere, copy_recipe, live_build};
use crate::toolchain::{planned_builds, toolchain_compose, turn};

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
    let image = format!("oci:{}:latest", layout.display());
    let out = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", "--platform", platform, &image])
        .args(argv)
        .output()
        .expect("podman runs (.ci/run installs it)");
    assert!(out.status.success(), "podman {argv:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_musl_image_holds_no_glibc_runs_cpython_and_its_shell_on_amd64_and_cross_built_arm64_and_builds_again_elsewhere()
{
    // The shared toolchain store: a warm run reuses the builds (keyed by their inputs, so reuse
    // is safe); the second build below always starts from an empty store.
    let _turn = turn();
    let c = toolchain_compose();
    let recipe = copy_recipe(&c, "python-musl-baseline.toml");
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl-baseline");
    let summary = live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    // arm64's builds run on amd64's root with cross compilers, CPython's too (with a CPython
    // built for amd64 from the same source running its build scripts).
    let arm64_builds: Vec<(String, Option<String>)> = planned_builds(&c, &recipe)
        .into_iter()
        .filter(|(_, platform, _)| platform == "linux/arm64")
        .map(|(name, _, on)| (name, on))
        .collect();
    assert!(arm64_builds.iter().any(|(name, _)| name == "build-python"), "{arm64_builds:?}");
    assert!(arm64_builds.iter().all(|(_, on)| on.as_deref() == Some("linux/amd64")), "{arm64_builds:?}");

    for (arch, platform, machine) in [("amd64", "linux/amd64", "x86_64"), ("arm64", "linux/arm64", "aarch64")] {
        let entries = layer_entries(&layout, arch);
        let name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
        let glibc: Vec<&str> = entries
            .iter()
            .map(|e| e.path.as_str())
            .filter(|p| name(p) == "libc.so.6" || name(p).starts_with("ld-linux") || p.contains("-linux-gnu"))
            .collect();
        assert!(glibc.is_empty(), "glibc in the {arch} musl image: {glibc:?}");
        let loader = format!("usr/lib/ld-musl-{machine}.so.1");
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
        assert_eq!(said["soabi"], format!("cpython-313-{machine}-linux-musl"), "{said}");
        assert_eq!((said["musl"].as_bool(), said["glibc"].as_bool()), (Some(true), Some(false)), "{arch}: {said}");
        assert_eq!((said["sha3"].as_str(), said["tz"].as_str()), (Some("a7ffc6f8"), Some("Europe/Paris")), "{said}");

        // An entrypoint script, through busybox's sh and its applets.
        let script =
            "set -eu; for word in musl busybox; do printf '%s\\n' \"$word\"; done | sort | tr a-z A-Z | head -1";
        assert_eq!(podman(&layout, platform, &["/bin/sh", "-c", script]).trim(), "BUSYBOX", "{arch}");
    }

    // Another machine's store, timezone, umask and directory: the same image. amd64 only, to
    // keep CI's time (cross-compiled builds are rebuilt elsewhere by the jemalloc-hello test).
    let again = build_elsewhere(&recipe, &[], "Asia/Tokyo", "0077", &["--platform", "linux/amd64"]);
    let amd64 = |summary: &serde_json::Value| {
        summary["manifests"].as_array().unwrap().iter().find(|m| m["platform"] == "linux/amd64").unwrap()["digest"]
            .clone()
    };
    assert_eq!(amd64(&again), amd64(&summary), "the musl image is not reproducible");
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
fn the_optimized_musl_interpreter_maps_jemalloc_and_reports_its_profile_and_the_baseline_has_none() {
    let _turn = turn();
    let c = toolchain_compose();
    // recipes/python-musl.toml without PGO and LTO, amd64 only: what is checked here is the
    // linking and the flags; the PGO builds of both platforms belong to the benchmark.
    let recipe = copy_recipe_edited(&c, "python-musl.toml", |text| {
        text.replace("platforms = [\"linux/amd64\", \"linux/arm64\"]", "platforms = [\"linux/amd64\"]")
            .replace("pgo = true", "pgo = false")
            .replace("lto = true", "lto = false")
    });
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

    // The allocator switched off (the baseline recipe, musl's own malloc): no jemalloc at all.
    // A cache hit when the test above built it in the shared store.
    let recipe = copy_recipe(&c, "python-musl-baseline.toml");
    let layout = out.0.join("python-musl-baseline");
    live_build(&c, &recipe, &["-o", layout.to_str().unwrap(), "--platform", "linux/amd64"]);
    let entries = layer_entries(&layout, "amd64");
    assert!(!entries.iter().any(|e| e.path.contains("jemalloc")), "jemalloc in the baseline image");
    let said: serde_json::Value =
        serde_json::from_str(&podman(&layout, "linux/amd64", &["python3", "-c", ALLOCATOR])).unwrap();
    assert_eq!((said["jemalloc"].as_bool(), said["musl"].as_bool()), (Some(false), Some(true)), "{said}");
}

/// What a musl image's interpreter accepts and has: `packaging.tags` (the reference
/// implementation of wheel tags) on the image, and the wheels' own modules.
const WHEELS: &str = r#"
import json, platform, orjson, yaml
from packaging import tags
names = [str(t) for t in tags.sys_tags()]
musl = [t.split("-")[2] for t in names if t.startswith("cp313-cp313-musllinux")]
print(json.dumps({"machine": platform.machine(), "musl_order": musl,
    "musllinux": sum("musllinux" in t for t in names), "manylinux": sum("manylinux" in t for t in names),
    "libyaml": yaml.__with_libyaml__, "orjson": orjson.dumps({"a": [1]}).decode(),
    "wheels": sorted(m.__file__.split("/site-packages/")[1].split("/")[0] for m in (orjson, yaml))}))
"#;

#[test]
fn a_wheel_set_on_musl_takes_musllinux_wheels_on_amd64_and_arm64() {
    let _turn = turn();
    let c = toolchain_compose();
    // The baseline recipe with a wheel set: its builds are the other tests' (cache hits in the
    // shared store); only the wheels are new.
    let recipe = copy_recipe_edited(&c, "python-musl-baseline.toml", |text| {
        text.replacen(
            "[python]\n",
            "[python]\nrequirements = [\"pyyaml==6.0.2\", \"orjson\", \"packaging\"]\nonly_binary = [\":all:\"]\n",
            1,
        )
    });
    let out = LowercaseDir::new();
    let layout = out.0.join("python-musl-baseline");
    live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    for (platform, machine) in [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")] {
        // The compiled ones are musllinux wheels of the platform's machine, as the platform's
        // wheel lock names them.
        let pylock = c.cwd.join(format!("pylock.python-musl-baseline-{}.toml", platform.replace('/', "-")));
        let pylock = std::fs::read_to_string(&pylock).unwrap_or_else(|e| panic!("{}: {e}", pylock.display()));
        let wheels: Vec<&str> = pylock.lines().filter_map(|l| l.strip_prefix("name = \"")).collect();
        for name in ["orjson", "PyYAML"] {
            assert!(
                wheels.iter().any(|w| w.starts_with(name) && w.contains("-musllinux_1_") && w.contains(machine)),
                "no musllinux {name} wheel for {machine}: {wheels:?}"
            );
        }
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
    }
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
