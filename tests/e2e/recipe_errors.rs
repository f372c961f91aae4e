//! A malformed recipe is refused before anything is fetched or written, with file:line:column.

use crate::compose;

#[test]
fn unknown_key_points_at_line_and_column_and_writes_nothing() {
    let c = compose();
    let recipe = c.cwd.join("bad.toml");
    std::fs::write(&recipe, "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\ncolour = \"blue\"\n[base]\nsuite = \"s\"\nmirror = \"m\"\n").unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("bad.toml:4:1"), "{stderr}");
    assert!(stderr.contains("unknown field `colour`"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!c.cwd.join("out").exists(), "a refused recipe must not write output");
    assert!(!c.cwd.join("bad.lock").exists());
}

#[test]
fn a_mistyped_key_or_subcommand_gets_the_nearest_name() {
    let c = compose();
    let recipe = c.cwd.join("typo.toml");
    std::fs::write(&recipe, "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\npakages = [\"a\"]\n").unwrap();
    let stderr = c.fails(&["plan", recipe.to_str().unwrap()]);
    assert!(stderr.contains("typo.toml:7:1") && stderr.contains("unknown field `pakages`"), "{stderr}");
    assert!(stderr.contains("did you mean `packages`?"), "{stderr}");
    // A word near nothing gets the plain hint, not a far-fetched guess.
    std::fs::write(
        &recipe,
        "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\nzzzz = 1\n[base]\nsuite = \"s\"\nmirror = \"m\"\n",
    )
    .unwrap();
    let stderr = c.fails(&["plan", recipe.to_str().unwrap()]);
    assert!(!stderr.contains("did you mean") && stderr.contains("fix its spelling"), "{stderr}");
    // Subcommands, as clap offers them.
    let stderr = c.fails(&["biuld", recipe.to_str().unwrap()]);
    assert!(
        stderr.contains("unrecognized subcommand 'biuld'")
            && stderr.contains("similar subcommands exist: 'bundle', 'build'"),
        "{stderr}"
    );
}

#[test]
fn bad_platform_and_bad_mode_are_located() {
    let c = compose();
    let recipe = c.cwd.join("r.toml");
    std::fs::write(&recipe, "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\", \"linux/sparc\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n").unwrap();
    let stderr = c.fails(&["plan", recipe.to_str().unwrap()]);
    assert!(stderr.contains("r.toml:3:13") && stderr.contains("unknown platform `linux/sparc`"), "{stderr}");

    std::fs::write(
        &recipe,
        "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n[[files]]\npath = \"/etc/x\"\ncontent = \"x\"\nmode = \"0999\"\n",
    )
    .unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("r.toml:10:8") && stderr.contains("not an octal number"), "{stderr}");
}

#[test]
fn syntax_error_is_located() {
    let c = compose();
    let recipe = c.cwd.join("s.toml");
    std::fs::write(&recipe, "[image]\nname = \"x\nplatforms = []\n").unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("s.toml:2:"), "{stderr}");
}

#[test]
fn bad_python_requirement_and_target_are_located() {
    let c = compose();
    let recipe = c.cwd.join("py.toml");
    let head =
        "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"s\"\nmirror = \"m\"\n[python]\n";
    std::fs::write(&recipe, format!("{head}requirements = [\"numpy\", \"aiohttp >=< 3\"]\n")).unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("py.toml:8:26") && stderr.contains("not a PEP 508 requirement"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");

    std::fs::write(&recipe, format!("{head}requirements = [\"numpy\"]\ntarget = \"opt/venv\"\n")).unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("py.toml:9:10") && stderr.contains("must be an absolute directory"), "{stderr}");

    std::fs::write(&recipe, format!("{head}requirements_file = \"missing.txt\"\n")).unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("py.toml:8:21") && stderr.contains("does not exist"), "{stderr}");
    assert!(!c.cwd.join("out").exists() && !c.cwd.join("py.lock").exists());
}

/// The recipe's own files are checked before anything is resolved against the mirror (the
/// mirror here is not there, so a build that went to it first would say so) and before a lock is
/// written: a recipe that fails on its files leaves no lock behind.
#[test]
fn a_recipes_own_files_are_checked_before_the_mirror_and_before_a_lock() {
    let f = crate::Fixture::new(&["app"], "[[files]]\npath = \"/etc/app.conf\"\nsource = \"app.conf\"\n");
    let mut c = crate::compose();
    c.cwd = f.compose.cwd.clone();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), "file:///nonexistent/mirror".into()));
    for command in ["build", "plan"] {
        let stderr = c.fails(&[command, f.recipe_str()]);
        assert!(stderr.contains("cannot add `/etc/app.conf` to the image"), "{command}: {stderr}");
        assert!(!stderr.contains("nonexistent"), "the mirror was not asked: {stderr}");
    }
    assert!(!f.recipe.with_extension("lock").exists());
    // With the mirror there and the file still missing: still no lock.
    f.compose.fails(&["build", f.recipe_str()]);
    assert!(!f.recipe.with_extension("lock").exists());
    std::fs::write(f.compose.cwd.join("app.conf"), "x = 1\n").unwrap();
    f.compose.ok(&["build", f.recipe_str()]);
    assert!(f.recipe.with_extension("lock").exists());
}
