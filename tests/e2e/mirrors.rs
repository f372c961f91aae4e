//! Where a mirror name points: flag, environment, config file, apt sources, in that order.

use crate::compose;

#[test]
fn missing_mirror_says_how_to_set_one() {
    let c = compose();
    let recipe = c.cwd.join("m.toml");
    std::fs::write(&recipe, "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"nowhere\"\nmirror = \"corp-debian\"\npackages = [\"a\"]\n").unwrap();
    let stderr = c.fails(&["build", recipe.to_str().unwrap()]);
    assert!(stderr.contains("no mirror named `corp-debian`"), "{stderr}");
    assert!(stderr.contains("--mirror corp-debian=URL") && stderr.contains("COMPOSE_MIRROR_CORP_DEBIAN"), "{stderr}");
    assert!(!stderr.contains("did you mean") && !stderr.contains("apt source"), "{stderr}");
}

#[test]
fn mirror_flag_beats_environment_beats_config_file() {
    let f = crate::Fixture::new(&["app"], "");
    let good = f.mirror.url();
    let mut c = crate::compose();
    c.cwd = f.compose.cwd.clone();
    let config_dir = c.home.path().join("config/compose");
    std::fs::create_dir_all(&config_dir).unwrap();

    // Config file alone.
    std::fs::write(config_dir.join("config.toml"), format!("[mirrors]\nlocal = \"{good}\"\n")).unwrap();
    c.ok(&["lock", f.recipe_str()]);

    // The environment beats the config file: a bad URL there fails, naming it.
    std::fs::write(config_dir.join("config.toml"), format!("[mirrors]\nlocal = {{ url = \"{good}\" }}\n")).unwrap();
    c.env.push(("COMPOSE_MIRROR_LOCAL".into(), "file:///nonexistent/mirror".into()));
    let stderr = c.fails(&["lock", f.recipe_str()]);
    assert!(stderr.contains("/nonexistent/mirror/dists/stable/InRelease"), "{stderr}");

    // The flag beats both.
    c.ok(&["--mirror", &format!("local={good}"), "lock", f.recipe_str()]);
    let stderr = c.fails(&["--mirror", "local", "lock", f.recipe_str()]);
    assert!(stderr.contains("is not NAME=URL"), "{stderr}");
}

#[test]
fn an_unreachable_mirror_fails_the_build_within_seconds_with_a_hint() {
    let f = crate::Fixture::new(&["app"], "");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let stderr =
        f.compose.fails(&["build", f.recipe_str(), "--mirror", &format!("local=http://127.0.0.1:{closed}/debian")]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(stderr.contains(&format!("127.0.0.1:{closed} failed 3 times in a row")), "{stderr}");
    assert!(stderr.contains("hint:") && stderr.contains("offline"), "{stderr}");
}
