//! `recipes/python-app.toml` against the machine's Debian mirror and Python index (through
//! pip's and uv's own configuration), run under podman: amd64 natively, arm64 through qemu-user.

use std::process::Command;

use crate::live_debian::{Example, build_example, podman};

/// Real work with every wheel of the set: an aiohttp server and client over loopback, a YAML
/// round trip, an orjson dump, a Fernet round trip and a numpy dot product.
const APP_CHECK: &str = r#"
import asyncio, json, platform, yaml, orjson, numpy
from cryptography.fernet import Fernet
from aiohttp import web, ClientSession

async def serve_and_ask():
    app = web.Application()
    async def echo(request):
        return web.json_response({"echo": request.query["q"]})
    app.router.add_get("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8765).start()
    async with ClientSession() as session:
        async with session.get("http://127.0.0.1:8765/?q=hello") as response:
            body = await response.json()
    await runner.cleanup()
    return body["echo"]

doc = {"a": [1, 2, {"b": "c"}]}
key = Fernet.generate_key()
print(json.dumps({
    "machine": platform.machine(),
    "aiohttp": asyncio.run(serve_and_ask()),
    "yaml": yaml.safe_load(yaml.safe_dump(doc)) == doc,
    "orjson": orjson.dumps({"k": [1, 2.5, None]}).decode(),
    "fernet": Fernet(key).decrypt(Fernet(key).encrypt(b"secret")).decode(),
    "dot": int(numpy.dot(numpy.arange(4), numpy.arange(4))),
}))
"#;

const REQUIREMENTS: [&str; 5] = ["aiohttp", "pyyaml", "orjson", "cryptography", "numpy"];

#[test]
fn python_app_wheels_work_on_amd64_and_arm64_and_export_as_an_index() {
    let Example { c, recipe, layout, out: out_dir, .. } = build_example("python-app.toml");

    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let report: serde_json::Value = serde_json::from_str(podman(&layout, arch, APP_CHECK).trim()).unwrap();
        assert_eq!(report["machine"], machine, "{report}");
        assert_eq!(report["aiohttp"], "hello", "{report}");
        assert_eq!(report["yaml"], true, "{report}");
        assert_eq!(report["orjson"], r#"{"k":[1,2.5,null]}"#, "{report}");
        assert_eq!(report["fernet"], "secret", "{report}");
        assert_eq!(report["dot"], 14, "{report}");
    }

    // The recipe's wheels as an index: uv installs the same set from it, offline, for both
    // platforms, into fresh targets with a fresh cache.
    let index = out_dir.0.join("index");
    c.ok(&["wheels", "index", index.to_str().unwrap(), "--recipe", recipe.to_str().unwrap()]);
    for platform in ["x86_64-manylinux_2_36", "aarch64-manylinux_2_36"] {
        let target = out_dir.0.join(format!("target-{platform}"));
        let out = Command::new("uv")
            .args(["pip", "install", "--offline", "--only-binary", ":all:", "--index-url"])
            .arg(format!("file://{}/simple", index.display()))
            .arg("--target")
            .arg(&target)
            .args(["--python-platform", platform, "--python-version", "3.11"])
            .args(REQUIREMENTS)
            .env("UV_CACHE_DIR", out_dir.0.join(format!("uv-cache-{platform}")))
            .output()
            .expect("uv runs (tests/setup.sh installs it)");
        assert!(
            out.status.success(),
            "uv install from the exported index failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for module in ["aiohttp", "yaml", "orjson", "cryptography", "numpy"] {
            assert!(target.join(module).is_dir(), "{module} missing from the {platform} install");
        }
    }
}

/// A platform uv has no target for: the wheel set of a linux/arm/v7 image is resolved
/// universally, composer evaluates the markers and ranks the tags for the armv7l interpreter,
/// and the compiled wheels it picks run under qemu-user.
#[test]
fn a_wheel_set_for_arm_v7_is_resolved_universally_and_runs_under_qemu() {
    let c = crate::live_debian::live_compose();
    let recipe = c.cwd.join("armv7.toml");
    std::fs::write(
        &recipe,
        "[image]\nname = \"armv7\"\nplatforms = [\"linux/arm/v7\"]\nsource_date_epoch = 1700000000\n\n\
         [base]\nsuite = \"trixie\"\nmirror = \"debian\"\npackages = [\"python3\"]\n\n\
         [python]\nrequirements = [\"aiohttp\", \"orjson\"]\n",
    )
    .unwrap();
    let out = crate::live_debian::LowercaseDir::new();
    let layout = out.0.join("armv7");
    crate::live_debian::live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    let pylock = std::fs::read_to_string(c.cwd.join("pylock.armv7-linux-arm-v7.toml")).unwrap();
    for name in ["aiohttp-", "orjson-", "multidict-"] {
        let wheel = pylock.lines().filter_map(|l| l.trim().strip_prefix("name = \"")).find(|w| w.starts_with(name));
        let wheel = wheel.unwrap_or_else(|| panic!("no {name} wheel in the lock:\n{pylock}"));
        assert!(wheel.contains("cp313-cp313-manylinux") && wheel.contains("_armv7l"), "{wheel}");
    }
    let image = format!("oci:{}:latest", layout.display());
    let script = "import platform, aiohttp, multidict, orjson; \
                  print(platform.machine(), multidict.MultiDict.__module__, orjson.dumps([1]).decode())";
    let ran = Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network=none", "--platform", "linux/arm/v7", &image])
        .args(["python3", "-c", script])
        .output()
        .expect("podman runs");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "armv7l multidict._multidict [1]");
}

/// A wheel set whose libraries a slim image lacks does not build: numpy's manylinux wheels
/// need `libstdc++.so.6`, which Debian's python3 does not pull in. The build fails naming the
/// library and the package; with `system_libraries = "add"` the package joins the image (and
/// the lock) and numpy imports on amd64 and, through qemu-user, arm64.
#[test]
fn numpy_on_a_slim_base_fails_naming_libstdcxx_and_with_system_libraries_added_runs_on_amd64_and_arm64() {
    let c = crate::live_debian::live_compose();
    let recipe = c.cwd.join("slim.toml");
    let text = "[image]\nname = \"slim\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nsource_date_epoch = 1700000000\n\n\
                [base]\nsuite = \"bookworm\"\nmirror = \"debian\"\npackages = [\"python3\"]\n\n\
                [python]\nrequirements = [\"requests\", \"numpy\"]\n";
    std::fs::write(&recipe, text).unwrap();
    let out = crate::live_debian::LowercaseDir::new();
    let layout = out.0.join("slim");
    let mut said = String::new();
    for attempt in 1..=3 {
        let run = c.run(&["build", recipe.to_str().unwrap(), "-o", layout.to_str().unwrap()]);
        assert!(!run.status.success(), "numpy built without libstdc++6 in the image");
        said = String::from_utf8_lossy(&run.stderr).into_owned();
        if !said.to_lowercase().contains("failed to fetch") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(5 * attempt));
    }
    assert!(said.contains("the wheel set needs on linux/amd64"), "{said}");
    assert!(said.contains("needs libstdc++.so.6 (package libstdc++6"), "{said}");
    assert!(said.contains("system_libraries = \"add\""), "the hint names the setting: {said}");
    assert!(!layout.join("index.json").exists(), "no image is written");

    std::fs::write(&recipe, format!("{text}system_libraries = \"add\"\n")).unwrap();
    crate::live_debian::live_build(&c, &recipe, &["-o", layout.to_str().unwrap()]);
    let lock = std::fs::read_to_string(c.cwd.join("slim.lock")).unwrap();
    assert_eq!(lock.matches("system_libraries = [\"libstdc++6\"]").count(), 2, "one per platform:\n{lock}");
    let script =
        "import platform, numpy, requests; print(platform.machine(), int(numpy.dot(numpy.arange(4), numpy.arange(4))))";
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        assert_eq!(crate::live_debian::podman(&layout, arch, script).trim(), format!("{machine} 14"));
    }
}
