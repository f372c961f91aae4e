use super::*;

/// The sha256 of the sdist script every sdist step ran before `[python.packages]` existed: it is
/// part of each one's key, so a recipe without a table must keep it byte for byte.
const SCRIPT_BEFORE_SETTINGS: &str = "9c448b8daed2d36b3e362c313cb0ffbe190c8bf1b22b9e31760ce6bafc9c2834";

fn settings(env: &[(&str, &str)], config: &[(&str, &str)], patches: &[(&str, &[u8])]) -> PackageSettings {
    PackageSettings {
        settings: SdistSettings {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            config_settings: config
                .iter()
                .map(|(k, v)| (k.to_string(), composer_recipe::ConfigValue::One(v.to_string())))
                .collect(),
            build_requires: Vec::new(),
            patches: patches.iter().map(|(p, _)| p.into()).collect(),
        },
        patches: patches.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect(),
    }
}

#[test]
fn an_sdist_without_settings_keeps_the_script_it_had() {
    let plain = sdist_script(None, "netifaces 0.11.0");
    assert_eq!(composer_store::Sha256::of(plain.as_bytes()).to_hex(), SCRIPT_BEFORE_SETTINGS);
    // Environment alone changes the environment, not the script.
    assert_eq!(sdist_script(Some(&settings(&[("CFLAGS", "-w")], &[], &[])), "n 1"), plain);
    let with = sdist_script(Some(&settings(&[], &[("--build-option", "--x")], &[])), "n 1");
    assert!(with.contains("config_settings=settings") && with != plain);
}

#[test]
fn compiler_flags_add_to_the_profiles_and_composers_own_variables_are_refused() {
    let mut env = BTreeMap::from([
        ("CFLAGS".to_string(), "-O3 -pipe".to_string()),
        ("LDFLAGS".to_string(), String::new()),
        ("PYTHON".to_string(), "/usr/local/bin/python3".to_string()),
        ("CC".to_string(), "gcc".to_string()),
    ]);
    let ok = settings(
        &[("CFLAGS", "-Wno-error=int-conversion"), ("LDFLAGS", "-lm"), ("CPPFLAGS", "-DX"), ("NETIFACES_X", "1")],
        &[("k", "v")],
        &[],
    );
    add_env(&mut env, &ok.settings, Path::new("r.toml"), "netifaces").unwrap();
    assert_eq!(env["CFLAGS"], "-O3 -pipe -Wno-error=int-conversion");
    assert_eq!((env["LDFLAGS"].as_str(), env["CPPFLAGS"].as_str(), env["NETIFACES_X"].as_str()), ("-lm", "-DX", "1"));
    assert_eq!(env[CONFIG_SETTINGS_VAR], r#"{"k":"v"}"#);
    // Whatever the recipe's check let through: a variable composer sets is not replaced.
    for name in ["CC", "SOME_NEW_ONE_COMPOSER_SETS"] {
        env.insert("SOME_NEW_ONE_COMPOSER_SETS".into(), "x".into());
        let error = add_env(&mut env, &settings(&[(name, "y")], &[], &[]).settings, Path::new("r.toml"), "netifaces")
            .unwrap_err();
        assert!(error.to_string().contains(&format!("`{name}` is set by composer")), "{error}");
        assert!(error.to_string().contains("[python.packages.netifaces] in `r.toml`"), "{error}");
    }
}

/// Every variable an sdist's build gets from composer, on glibc and on musl, native and cross,
/// is one the recipe's check refuses (or a flag the recipe adds to): the check where the recipe
/// is written and the one here agree.
#[test]
fn the_recipe_check_refuses_every_variable_composer_sets_for_an_sdist() {
    let mut env = crate::sandbox::base_env(0, 1);
    env.extend(
        crate::toolchain::Flags::new(&composer_recipe::Profile::default(), &"linux/amd64".parse().unwrap()).env(),
    );
    for key in ["MALLOC_LIBS", "MALLOC_CFLAGS", "MALLOC_LDFLAGS", "PYTHON", "COMPOSE_PLATFORM", "COMPOSE_TRIPLET"] {
        env.insert(key.into(), String::new());
    }
    crate::compile::tests_env(&mut env);
    for name in env.keys() {
        if APPENDED_FLAGS.contains(&name.as_str()) {
            continue;
        }
        assert!(refused_env(name).is_some(), "`{name}` is set by composer but a recipe may set it");
    }
}

#[test]
fn a_patch_that_does_not_apply_stops_the_build_naming_it() {
    if std::process::Command::new("patch").arg("--version").output().is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.c"), "int x = 1;\n").unwrap();
    let good: &[u8] = b"--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int x = 1;\n+int x = 2;\n";
    let bad: &[u8] = b"--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int y = 1;\n+int y = 2;\n";
    let run = |patches: &[(&str, &[u8])]| {
        let mut script = String::new();
        for (i, (path, bytes)) in patches.iter().enumerate() {
            script.push_str(&patch_step(i + 1, path, bytes, "netifaces 0.11.0"));
        }
        std::process::Command::new("sh")
            .args(["-eu", "-c", &script])
            .current_dir(&src)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let out = run(&[("fix it's.patch", good)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(src.join("a.c")).unwrap(), "int x = 2;\n");
    let out = run(&[("patches/musl.patch", bad)]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("compose: patch `patches/musl.patch` does not apply to netifaces 0.11.0"), "{said}");
    // patch's report quotes the patch's text before a hunk it cannot place ("The text leading
    // up to this was"): only its status lines reach the log, never the patch's own words.
    let noted: &[u8] =
        b"Notes: deploy token SECRET_TOKEN=hunter2\n--- a/missing.c\n+++ b/missing.c\n@@ -1 +1 @@\n-a\n+b\n";
    let out = run(&[("noted.patch", noted)]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("does not apply"), "{said}");
    assert!(!said.contains("SECRET_TOKEN") && !String::from_utf8_lossy(&out.stdout).contains("SECRET_TOKEN"), "{said}");
    // No fuzz: a hunk whose context moved fails rather than landing elsewhere.
    std::fs::write(src.join("b.c"), "one\ntwo\nthree\nfour\nfive\nsix\nseven\n").unwrap();
    let fuzzy: &[u8] = b"--- a/b.c\n+++ b/b.c\n@@ -2,5 +2,5 @@\n two\n THREE\n-four\n+FOUR\n five\n SIX\n";
    let out = run(&[("fuzzy.patch", fuzzy)]);
    assert!(!out.status.success(), "applied with fuzz: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!src.join("a.c.orig").exists() && !src.join("a.c.rej").exists());
}

/// The front end hands the recipe's config settings to the backend's `build_wheel` as its
/// dictionary, lists as lists (run with the machine's python3, the sandbox's paths moved into a
/// temporary directory).
#[test]
fn config_settings_reach_the_backends_build_wheel() {
    let python = std::process::Command::new("python3").args(["-c", "import tomllib"]).output();
    if !python.is_ok_and(|out| out.status.success()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("pyproject.toml"),
        "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
    )
    .unwrap();
    std::fs::write(
        src.join("backend.py"),
        "import json, os\ndef build_wheel(d, config_settings=None, metadata_directory=None):\n    \
         open(os.path.join(d, 'settings.json'), 'w').write(json.dumps(config_settings, sort_keys=True))\n    \
         return 'x.whl'\n",
    )
    .unwrap();
    let prepared = settings(&[], &[("--build-option", "--x")], &[]);
    let mut env = BTreeMap::new();
    let mut more = prepared.settings.clone();
    more.config_settings.insert("many".into(), composer_recipe::ConfigValue::Many(vec!["a".into(), "b".into()]));
    add_env(&mut env, &more, Path::new("r.toml"), "x").unwrap();
    let script = sdist_script(Some(&prepared), "x 1");
    let program = script[script.find(SDIST_BACKEND).unwrap()..].replace("/out/dist", out.to_str().unwrap());
    let run = std::process::Command::new("sh")
        .args(["-eu", "-c", &program])
        .current_dir(&src)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PYTHON", "python3")
        .env("BUILD_ENV", dir.path())
        .envs(&env)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let seen = std::fs::read_to_string(out.join("settings.json")).unwrap();
    assert_eq!(seen, r#"{"--build-option": "--x", "many": ["a", "b"]}"#);
}
