use super::*;

const HEAD: &str = "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
                    [base]\nsuite = \"trixie\"\nmirror = \"debian\"\n\
                    [python]\nrequirements = [\"netifaces==0.11.0\"]\nonly_binary = []\n";

fn parse(tail: &str) -> Result<Recipe, RecipeError> {
    Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{tail}"))
}

/// The error's location (`line:column`), message and hint, as one text.
fn refused(tail: &str) -> String {
    let error = parse(tail).expect_err(tail);
    format!("{error}\nhint: {}", error.hint().unwrap_or_default())
}

#[test]
fn a_package_table_reads_with_its_platform_merged_over_it() {
    let recipe = parse(
        "[python.packages.NetIfaces]\nenv = { CFLAGS = \"-Wno-error=int-conversion\", FOO = \"1\" }\n\
         config_settings = { \"--build-option\" = [\"--a\", \"--b\"], x = \"1\" }\n\
         build_requires = [\"cython>=3\"]\nbuild_depends = [\"libffi-dev\"]\npatches = [\"p/one.patch\"]\n\
         [python.packages.NetIfaces.platforms.\"linux/aarch64\"]\nenv = { FOO = \"2\" }\nconfig_settings = { x = \"2\" }\n",
    )
    .unwrap();
    let python = recipe.python.as_ref().unwrap();
    let build = python.package_build("netifaces").expect("found by its normalized name");
    let amd64 = build.on(&"linux/amd64".parse().unwrap());
    assert_eq!(amd64.env["FOO"], "1");
    assert_eq!(amd64.config_settings["x"], ConfigValue::One("1".into()));
    assert_eq!(amd64.config_settings["--build-option"], ConfigValue::Many(vec!["--a".into(), "--b".into()]));
    let arm64 = build.on(&"linux/arm64".parse().unwrap());
    assert_eq!((arm64.env["FOO"].as_str(), arm64.env["CFLAGS"].as_str()), ("2", "-Wno-error=int-conversion"));
    assert_eq!(arm64.config_settings["x"], ConfigValue::One("2".into()));
    assert_eq!((arm64.build_requires.len(), arm64.patches.len()), (1, 1));
    assert!(python.package_build("other").is_none());
}

#[test]
fn variables_that_subvert_the_sandbox_or_the_build_are_refused_where_they_are_written() {
    for name in [
        "PATH",
        "HOME",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHON",
        "PYTHONPATH",
        "SOURCE_DATE_EPOCH",
        "DESTDIR",
        "CC",
        "COMPOSE_PLATFORM",
        "MALLOC_CFLAGS",
        "QEMU_LD_PREFIX",
        "path",
        "LD",
        "_PYTHON_HOST_PLATFORM",
        "GCONV_PATH",
        "GCC_EXEC_PREFIX",
        "LIBRARY_PATH",
    ] {
        let said = refused(&format!("[python.packages.netifaces]\nenv = {{ {name} = \"x\" }}\n"));
        assert!(said.starts_with("r.toml:11:"), "{name}: {said}");
        assert!(said.contains(&format!("`{name}` is set by composer's sandbox")), "{name}: {said}");
        assert!(said.contains("CFLAGS, CXXFLAGS, CPPFLAGS, LDFLAGS add to"), "{name}: {said}");
    }
    for name in ["\"1X\"", "\"A-B\"", "\"\""] {
        let said = refused(&format!("[python.packages.netifaces]\nenv = {{ {name} = \"x\" }}\n"));
        assert!(said.starts_with("r.toml:11:") && said.contains("is not an environment variable name"), "{said}");
    }
    let said = refused(&format!("[python.packages.netifaces]\nenv = {{ CFLAGS = \"{}\" }}\n", "x".repeat(5000)));
    assert!(said.contains("longer than 4096 bytes") && !said.contains("xxxxxxxxxx\n"), "{said}");
    let said = refused("[python.packages.netifaces]\nenv = { CFLAGS = \"a\\nb\" }\n");
    assert!(said.contains("control character"), "{said}");
    // The platform's table is checked as the package's is.
    let said = refused("[python.packages.netifaces.platforms.\"linux/arm64\"]\nenv = { LD_PRELOAD = \"x\" }\n");
    assert!(said.starts_with("r.toml:11:") && said.contains("`LD_PRELOAD`"), "{said}");
}

#[test]
fn platforms_are_normalized_and_must_be_the_images() {
    let said = refused("[python.packages.netifaces.platforms.\"linux/sparc\"]\nenv = { A = \"1\" }\n");
    assert!(said.starts_with("r.toml:10:") && said.contains("unknown platform `linux/sparc`"), "{said}");
    let said = refused("[python.packages.netifaces.platforms.\"linux/arm/v7\"]\nenv = { A = \"1\" }\n");
    assert!(said.contains("`linux/arm/v7` is not one of the image's platforms"), "{said}");
    assert!(said.contains("name one of: linux/amd64, linux/arm64"), "{said}");
    let said = refused(
        "[python.packages.netifaces.platforms.\"linux/x86_64\"]\nenv = { A = \"1\" }\n\
         [python.packages.netifaces.platforms.\"linux/amd64\"]\nenv = { A = \"2\" }\n",
    );
    assert!(said.contains("names linux/amd64 twice"), "{said}");
}

#[test]
fn names_requirements_and_patches_are_checked() {
    let said = refused("[python.packages.Net_Ifaces]\n[python.packages.net-ifaces]\n");
    assert!(said.contains("names `net-ifaces` twice"), "{said}");
    let said = refused("[python.packages.netifaces]\nbuild_requires = [\"cython @ https://x/c.whl\"]\n");
    assert!(said.starts_with("r.toml:11:") && said.contains("direct reference"), "{said}");
    let said = refused("[python.packages.netifaces]\nbuild_requires = [\"cython >>> 3\"]\n");
    assert!(said.contains("not a PEP 508 requirement"), "{said}");
    let said = refused("[python.packages.netifaces]\nbuild_depends = [\"Lib Foo\"]\n");
    assert!(said.contains("not a package request"), "{said}");
    let said = refused("[python.packages.netifaces]\npatches = [\"\"]\n");
    assert!(said.starts_with("r.toml:11:") && said.contains("relative to the recipe's directory"), "{said}");
    let said = refused("[python.packages.netifaces]\nbuild_requires = [\"\\u001b]0;x\\u0007cython\"]\n");
    assert!(said.contains("control character") && !said.contains('\u{1b}'), "{said}");
    let said = refused("[python.packages.netifaces]\npatches = [\"a.patch\", \"a.patch\"]\n");
    assert!(said.starts_with("r.toml:11:") && said.contains("`a.patch` is listed twice"), "{said}");
    let values: Vec<String> = (0..40).map(|i| format!("\"{i}{}\"", "x".repeat(1000))).collect();
    let said = refused(&format!("[python.packages.netifaces]\nconfig_settings = {{ k = [{}] }}\n", values.join(", ")));
    assert!(said.contains("more config settings than a build step can carry (32 KiB at most)"), "{said}");
    let said = refused("[python.packages.netifaces]\npaches = [\"a.patch\"]\n");
    assert!(said.contains("did you mean `patches`?"), "{said}");
}

#[test]
fn a_package_table_needs_sdist_builds() {
    let text =
        format!("{}[python.packages.netifaces]\nenv = {{ A = \"1\" }}\n", HEAD.replace("only_binary = []\n", ""));
    let error = Recipe::parse_str("r.toml".as_ref(), &text).unwrap_err();
    let said = format!("{error} {}", error.hint().unwrap());
    assert!(said.contains("no package is built from one") && said.contains("only_binary"), "{said}");
    let text = format!(
        "{}[python.packages.netifaces]\n",
        HEAD.replace("requirements = [\"netifaces==0.11.0\"]\n", "bytecode = true\n")
    );
    let error = Recipe::parse_str("r.toml".as_ref(), &text).unwrap_err();
    assert!(error.to_string().contains("[python] has no requirements"), "{error}");
}
