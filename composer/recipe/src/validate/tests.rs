use crate::Recipe;

const HEAD: &str =
    "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"bookworm\"\nmirror = \"debian\"\n";

fn error(extra: &str) -> String {
    let err = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{extra}")).unwrap_err();
    format!("{err} | {}", err.hint().unwrap_or_default())
}

#[test]
fn bolt_is_refused_where_llvm_bolt_cannot_rewrite_the_binaries() {
    let head = HEAD.replace("[\"linux/amd64\"]", "[\"linux/amd64\", \"linux/arm/v7\"]");
    let parse = |extra: &str| Recipe::parse_str("r.toml".as_ref(), &format!("{head}{extra}"));
    let err = parse("[toolchain.profiles.fast]\nbolt = true\n").unwrap_err();
    let said = format!("{err} | {}", err.hint().unwrap_or_default());
    assert!(said.contains("[toolchain.profiles.fast] has bolt = true"), "{said}");
    assert!(said.contains("cannot rewrite linux/arm/v7") && said.contains("bolt = false"), "{said}");
    let off =
        "[toolchain.profiles.fast]\nbolt = true\n[toolchain.profiles.fast.platforms.\"linux/arm/v7\"]\nbolt = false\n";
    let recipe = parse(off).unwrap();
    assert!(recipe.toolchain.profile(Some("fast")).unwrap().bolt);
    assert!(parse("[toolchain]\nbolt = true\n").unwrap_err().to_string().contains("[toolchain] has bolt"));
}

#[test]
fn cross_builds_are_for_the_platforms_other_than_the_build_platform() {
    let text = HEAD.replace("[\"linux/amd64\"]", "[\"linux/amd64\", \"linux/arm64\"]")
        + "[cross]\nbuild = \"linux/amd64\"\n[[builds]]\nname = \"b\"\ncross = false\nscript = \"true\"\n";
    let recipe = Recipe::parse_str("r.toml".as_ref(), &text).unwrap();
    let [amd64, arm64] = recipe.image.platforms.get_ref().clone().try_into().unwrap();
    assert_eq!(recipe.cross_build_for(&amd64), None);
    assert_eq!(recipe.cross_build_for(&arm64), Some(&amd64));
    assert!(!recipe.builds[0].cross);
    let plain =
        Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}[[builds]]\nname = \"b\"\nscript = \"true\"\n")).unwrap();
    assert!(plain.builds[0].cross && plain.cross_build_for(&arm64).is_none());
}

#[test]
fn builds_refer_only_to_what_the_recipe_defines() {
    let jemalloc = "[[sources]]\nname = \"jemalloc\"\nurl = \"mirror://debian/pool/j.tar.bz2\"\nsha256 = \"";
    let cases = [
        ("[[sources]]\nname = \"a\"\nurl = \"mirror://debian/pool/a.tar.gz\"\n", "has a url but no sha256"),
        ("[[sources]]\nname = \"a\"\nurl = \"ftp://h/a\"\nsha256 = \"00\"\n", "no known scheme"),
        ("[[sources]]\nname = \"a\"\nurl = \"https://h/a\"\nsha256 = \"00\"\n", "is not a sha256"),
        ("[[builds]]\nname = \"b\"\nsources = [\"missing\"]\nscript = \"true\"\n", "which no [[sources]] entry names"),
        ("[[builds]]\nname = \"b\"\nuses = [\"later\"]\nscript = \"true\"\n", "is not an earlier build"),
        ("[[builds]]\nname = \"b\"\nprofile = \"fast\"\nscript = \"true\"\n", "profile `fast` is not defined"),
        ("[[builds]]\nname = \"python\"\nscript = \"true\"\n", "already taken"),
        ("[[builds]]\nname = \"build-python\"\nscript = \"true\"\n", "already taken"),
        ("[cross]\nbuild = \"linux/sparc\"\n", "unknown platform `linux/sparc`"),
        ("[[builds]]\nname = \"B\"\nscript = \"true\"\n", "not a plain name"),
        ("[allocator]\nname = \"jemalloc\"\nsource = \"build\"\n", "no [[sources]] entry is named `jemalloc`"),
        ("[allocator]\nname = \"jemalloc\"\nlg_page = 16\n", "needs a built allocator"),
        ("[allocator]\nname = \"jemalloc\"\nmode = \"link\"\n", "nothing in the recipe is built to link it into"),
        ("[toolchain]\nopt = \"O9\"\n", "O9"),
        ("[toolchain]\nlto = \"medium\"\n", "not true, false"),
        ("[toolchain.platforms.\"linux/sparc\"]\npgo = false\n", "not a platform composer knows"),
        ("[python.build]\nsource = \"cpython\"\n", "is not a [[sources]] entry"),
    ];
    for (extra, wanted) in cases {
        let said = error(extra);
        assert!(said.contains(wanted), "{extra:?}: wanted {wanted:?} in {said}");
    }
    let by_platform = |table: &str| {
        let allocator = "[allocator]\nname = \"jemalloc\"\nsource = \"build\"\nlg_page = ";
        format!("{jemalloc}{}\"\n{allocator}{table}\n", "0".repeat(64))
    };
    assert!(error(&by_platform("{ \"linux/sparc\" = 16 }")).contains("not a platform composer knows"));
    assert!(error(&by_platform("{ \"linux/arm64\" = 17 }")).contains("a value from 12 to 16"));
    let recipe =
        Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{}", by_platform("{ \"linux/arm64\" = 16 }"))).unwrap();
    let lg = recipe.allocator.lg_page.unwrap();
    assert_eq!(lg.for_platform(&"linux/arm64".parse().unwrap()), Some(16));
    assert_eq!(lg.for_platform(&"linux/amd64".parse().unwrap()), None);
    let ok = format!(
        "{jemalloc}{}\"\n[allocator]\nname = \"jemalloc\"\nmode = \"link\"\nsource = \"build\"\nlg_page = 16\n\
         [toolchain.profiles.fast]\nopt = \"O3\"\nlto = \"full\"\nsemantic_interposition = false\n\
         [toolchain.profiles.fast.platforms.\"linux/arm64\"]\npgo = false\n\
         [[builds]]\nname = \"hello\"\nuses = [\"jemalloc\"]\nprofile = \"fast\"\nscript = \"true\"\n",
        "a".repeat(64)
    );
    let recipe = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{ok}")).unwrap();
    let fast = recipe.toolchain.profile(Some("fast")).unwrap();
    assert_eq!((fast.opt, fast.lto, fast.semantic_interposition), (crate::OptLevel::O3, crate::Lto::Full, false));
    assert_eq!(fast.platforms["linux/arm64"].pgo, Some(false));
    assert!(recipe.toolchain.default.semantic_interposition, "an absent [toolchain] changes nothing");
}

#[test]
fn a_musl_image_takes_nothing_of_the_distribution_and_builds_musl() {
    let pin = format!("sha256 = \"{}\"\n", "a".repeat(64));
    let musl = format!("[[sources]]\nname = \"musl\"\nurl = \"mirror://debian/pool/m.tar.gz\"\n{pin}");
    let cases = [
        ("libc = \"musl\"\npackages = [\"zlib1g\"]\n".to_string(), "`zlib1g` is one"),
        ("libc = \"musl\"\n".to_string(), "[[sources]] entry named `musl`"),
        (
            format!("libc = \"musl\"\n[allocator]\nname = \"jemalloc\"\n{musl}"),
            "the distribution's jemalloc is built against its own C library",
        ),
        (format!("libc = \"musl\"\n{musl}[python]\nrequirements = [\"six\"]\n"), "no distribution python3"),
        (format!("libc = \"musl\"\n{musl}[[builds]]\nname = \"musl\"\nscript = \"true\"\n"), "already taken"),
        ("libc = \"uclibc\"\n".to_string(), "uclibc"),
        ("[[builds]]\nname = \"b\"\nimage = \"headers\"\nscript = \"true\"\n".to_string(), "\"runtime\""),
    ];
    for (extra, wanted) in cases {
        let said = error(&extra);
        assert!(said.contains(wanted), "{extra:?}: wanted {wanted:?} in {said}");
    }
    let ok = format!(
        "libc = \"musl\"\n{musl}[[sources]]\nname = \"cpython\"\nurl = \"mirror://debian/pool/p.tar.xz\"\n{pin}\
         [[builds]]\nname = \"zlib\"\nimage = \"runtime\"\nuses = [\"musl\"]\nscript = \"true\"\n\
         [python.build]\nsource = \"cpython\"\nuses = [\"zlib\"]\n"
    );
    let recipe = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{ok}")).unwrap();
    assert!(recipe.base.musl());
    let mips = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{ok}").replace("linux/amd64", "linux/mips64le"));
    let said = format!("{:?}", mips.unwrap_err());
    assert!(said.contains("musl has no port to linux/mips64le"), "{said}");
    assert_eq!(recipe.builds[0].image, crate::BuildImage::Runtime);
    assert_eq!(recipe.python.unwrap().build.unwrap().uses[0].get_ref(), "zlib");
    let said = error(&ok.replace("[python.build]", "[python]\nsystem_libraries = \"add\"\n[python.build]"));
    assert!(said.contains("system_libraries = \"add\" adds the distribution's packages, which a musl image"), "{said}");
    assert!(said.contains("r.toml:"), "located: {said}");
    let said = error(&ok.replace("uses = [\"zlib\"]", "uses = [\"openssl\"]"));
    assert!(said.contains("[python.build] uses `openssl`, which is not a build"), "{said}");
    let said = error(&format!("{ok}pgo_task = \" \"\n"));
    assert!(said.contains("pgo_task must be one line"), "{said}");
    let trained = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{ok}pgo_task = \"-m test --pgo\"\n"));
    assert_eq!(trained.unwrap().python.unwrap().build.unwrap().pgo_task.unwrap().get_ref(), "-m test --pgo");
    for bad in ["\"_pickle\", \"_pickle\"", "\"math; rm -rf /\"", "\"\"", "\"9lives\""] {
        let said = error(&format!("{ok}builtin = [{bad}]\n"));
        assert!(said.contains("is not a module name, or named twice"), "{bad}: {said}");
    }
    let linked = Recipe::parse_str("r.toml".as_ref(), &format!("{HEAD}{ok}builtin = [\"_pickle\", \"math\"]\n"));
    assert_eq!(linked.unwrap().python.unwrap().build.unwrap().builtin.len(), 2);
}
