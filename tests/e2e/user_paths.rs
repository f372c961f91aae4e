//! Every path a recipe, a flag, the environment or a config file names is read by one reader:
//! confined to the recipe's directory (or an `--allow-path` one) where a recipe names it, regular
//! files only (a FIFO never blocks, a device is never read), bounded per kind of file, and never
//! echoed: no error repeats a line or the digest of a file it read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use composer_testkit::{Compose, sha256_hex};

use crate::wheels::WheelFixture;
use crate::{Fixture, write_recipe};

/// What a careless or hostile file may hold: no error may show any of it.
const SECRET: &str = "root:$6$S3CRETSALT$Zm9vYmFyYmF6cXV4:19000:0:99999:7:::";
const SECRET_MARK: &str = "S3CRETSALT";

/// Runs compose with a bound on its address space (a read of `/dev/zero` fails at once instead of
/// taking the machine's memory) and on its time (a FIFO that blocks fails the test instead of
/// hanging it).
fn run_bounded(c: &Compose, args: &[&str]) -> Output {
    let cmd = c.command(args);
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg("ulimit -v 4000000; exec \"$@\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .current_dir(&c.cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            shell.env(k, v);
        }
    }
    let mut child = shell.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("compose {args:?} still ran after 60 s: a read blocked or never ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs, expects a failure, and returns stderr; with `--json` in front, checks stdout is JSON and
/// returns both.
fn refused(c: &Compose, args: &[&str]) -> String {
    let out = run_bounded(c, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "compose {args:?} should fail:\n{stdout}\n{stderr}");
    format!("{stdout}\n{stderr}")
}

fn refused_both(c: &Compose, args: &[&str]) -> (String, String) {
    let json: Vec<&str> = std::iter::once("--json").chain(args.iter().copied()).collect();
    let out = run_bounded(c, &json);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str::<serde_json::Value>(stdout.trim())
        .unwrap_or_else(|e| panic!("--json answers in JSON ({e}): {stdout}"));
    (refused(c, args), format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn a_recipe_path_that_is_a_device_a_fifo_or_huge_fails_at_once() {
    let c = crate::compose();
    let err = refused(&c, &["build", "/dev/zero"]);
    assert!(err.contains("recipe `/dev/zero` is a character device, not a regular file"), "{err}");
    let fifo = c.cwd.join("recipe.toml");
    mkfifo(&fifo);
    let err = refused(&c, &["plan", fifo.to_str().unwrap()]);
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    let huge = c.cwd.join("huge.toml");
    std::fs::File::create(&huge).unwrap().set_len(5 << 20).unwrap();
    let (err, json) = refused_both(&c, &["build", huge.to_str().unwrap()]);
    for shown in [err, json] {
        assert!(shown.contains("holds more than 4 MiB (the most a recipe may)"), "{shown}");
    }
}

#[test]
fn a_keyring_is_read_from_the_recipes_directory_and_never_from_a_device() {
    let f = Fixture::new(&["app"], "");
    let text = std::fs::read_to_string(&f.recipe).unwrap();
    let at = text.find("keyring = ").unwrap();
    let line = &text[at..at + text[at..].find('\n').unwrap()];
    std::fs::write(&f.recipe, text.replace(line, "keyring = \"/dev/zero\"")).unwrap();
    let err = refused(&f.compose, &["lock", f.recipe_str()]);
    assert!(err.contains("keyring `/dev/zero` is outside the recipe's directory"), "{err}");
    assert!(err.contains("--allow-path /dev"), "{err}");
    let err = refused(&f.compose, &["lock", f.recipe_str(), "--allow-path", "/dev"]);
    assert!(err.contains("keyring `/dev/zero` is a character device"), "{err}");

    // A keyring elsewhere is read with `--allow-path`, as before.
    let elsewhere = tempfile::tempdir().unwrap();
    let keyring = elsewhere.path().join("archive.gpg");
    std::fs::copy(&f.mirror.keyring, &keyring).unwrap();
    std::fs::write(&f.recipe, text.replace(line, &format!("keyring = \"{}\"", keyring.display()))).unwrap();
    let err = refused(&f.compose, &["lock", f.recipe_str()]);
    assert!(err.contains("outside the recipe's directory"), "{err}");
    f.compose.ok(&["lock", f.recipe_str(), "--allow-path", elsewhere.path().to_str().unwrap()]);
}

#[test]
fn a_signing_key_is_bounded_never_echoed_and_warned_about_when_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(&["app"], "");
    let cache = format!("dir:{}", f.compose.cwd.join("cache").display());
    let push = |key: &str| {
        vec!["store", "push", cache.as_str(), "--recipe", f.recipe_str(), "--signing-key"]
            .into_iter()
            .chain([key])
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let args = push("/dev/zero");
    let err = refused(&f.compose, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("signing key `/dev/zero` is a character device"), "{err}");

    // A file that is no key, but holds a secret: the error does not show a byte of it.
    let wrong = f.compose.cwd.join("shadow");
    for text in [format!("{SECRET}\n"), "hunter2-s3cret:not base64\n".into(), "hunter2-s3cret\n".into()] {
        std::fs::write(&wrong, text).unwrap();
        let args = push(wrong.to_str().unwrap());
        let (err, json) = refused_both(&f.compose, &args.iter().map(String::as_str).collect::<Vec<_>>());
        for shown in [&err, &json] {
            assert!(shown.contains("is not a composer secret key"), "{shown}");
            assert!(!shown.contains(SECRET_MARK) && !shown.contains("$6$") && !shown.contains("hunter2"), "{shown}");
        }
    }

    f.compose.build_json(&f.recipe, &[]);
    let generated = f.compose.ok(&["--json", "key", "generate", "ci"]);
    let key =
        serde_json::from_str::<serde_json::Value>(&generated).unwrap()["secret_key_file"].as_str().unwrap().to_string();
    let key = f.compose.cwd.join(key);
    let args = push(key.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f.compose.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("warning"), "{stderr}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = f.compose.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a key others can read still signs: {stderr}");
    assert!(stderr.contains("warning:") && stderr.contains("readable or writable by others (mode 0644)"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn a_config_file_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let c = crate::compose();
    let config = c.home.path().join("config/compose");
    std::fs::create_dir_all(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", config.join("config.toml")).unwrap();
    let (err, json) = refused_both(&c, &["store", "info"]);
    for shown in [err, json] {
        assert!(shown.contains("config file") && shown.contains("is a character device"), "{shown}");
    }
    std::fs::remove_file(config.join("config.toml")).unwrap();
    mkfifo(&config.join("config.toml"));
    let err = refused(&c, &["store", "info"]);
    assert!(err.contains("is a FIFO"), "{err}");
}

/// A login file the user names that is a FIFO or a device is said, not skipped: a login they
/// meant to give would otherwise be silently missing (and a FIFO would block a plain read).
#[test]
fn a_registry_auth_file_that_is_a_fifo_or_a_device_is_an_error_not_a_missing_login() {
    let mut c = crate::compose();
    let fifo = c.home.path().join("auth.json");
    mkfifo(&fifo);
    c.env.push(("REGISTRY_AUTH_FILE".into(), fifo.to_str().unwrap().into()));
    let err = refused(&c, &["store", "info"]);
    assert!(err.contains("reading registry logins from") && err.contains("is a FIFO"), "{err}");
    c.env.pop();
    c.env.push(("REGISTRY_AUTH_FILE".into(), "/dev/zero".into()));
    let err = refused(&c, &["store", "info"]);
    assert!(err.contains("is a character device"), "{err}");
    c.env.pop();
    // A login file that is not there is no error: most users have none.
    c.env.push(("REGISTRY_AUTH_FILE".into(), c.home.path().join("missing.json").to_str().unwrap().into()));
    let out = run_bounded(&c, &["store", "info"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("registry logins"), "{out:?}");
}

/// The config file may be a link to a file that is not the user's to show: a TOML error names
/// the line and column, never the line.
#[test]
fn a_config_file_that_is_not_toml_is_located_without_its_contents() {
    let c = crate::compose();
    let config = c.home.path().join("config/compose");
    std::fs::create_dir_all(&config).unwrap();
    let (_dir, secret) = outside_secret();
    std::os::unix::fs::symlink(&secret, config.join("config.toml")).unwrap();
    let (err, json) = refused_both(&c, &["store", "info"]);
    for shown in [&err, &json] {
        assert!(shown.contains("config") && shown.contains("line 1, column"), "{shown}");
        assert!(!shown.contains(SECRET) && !shown.contains("daemon:*"), "the config's contents were shown: {shown}");
    }
}

/// A recipe of the wheel fixture whose `[python]` reads `requirements_file = "NAME"`.
fn with_requirements_file(f: &WheelFixture, name: &str) {
    let recipe = Path::new(f.recipe());
    let text = std::fs::read_to_string(recipe).unwrap();
    std::fs::write(recipe, text.replace("requirements = [\"tinyapp\"]", &format!("requirements_file = \"{name}\"")))
        .unwrap();
}

fn outside_secret() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, format!("{SECRET}\ndaemon:*:19000:0:99999:7:::\n")).unwrap();
    (dir, secret)
}

#[test]
fn a_requirements_file_outside_the_recipes_directory_is_refused_without_its_contents() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let (dir, secret) = outside_secret();
    with_requirements_file(&f, secret.to_str().unwrap());
    let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
    for shown in [&err, &json] {
        assert!(shown.contains("requirements file") && shown.contains("outside the recipe's directory"), "{shown}");
        assert!(shown.contains(&format!("--allow-path {}", dir.path().canonicalize().unwrap().display())), "{shown}");
        assert!(!shown.contains(SECRET_MARK) && !shown.contains("daemon"), "{shown}");
    }
    // Allowed, it is read, and still not shown: it holds no requirement.
    let err = refused(&f.compose, &["lock", f.recipe(), "--allow-path", dir.path().to_str().unwrap()]);
    assert!(err.contains("line 1 of the requirements file") && err.contains("its text is not shown"), "{err}");
    assert!(!err.contains(SECRET_MARK) && !err.contains("daemon"), "{err}");
}

#[test]
fn a_requirements_file_beside_the_recipe_that_holds_no_requirements_is_not_shown() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    std::fs::write(f.compose.cwd.join("reqs.txt"), format!("tinyapp\n# ok\n{SECRET}\n")).unwrap();
    with_requirements_file(&f, "reqs.txt");
    let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
    for shown in [&err, &json] {
        assert!(shown.contains("line 3 of the requirements file"), "{shown}");
        assert!(!shown.contains(SECRET_MARK) && !shown.contains("19000"), "{shown}");
    }
}

#[test]
fn includes_and_links_that_lead_out_of_the_recipes_directory_are_refused() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let (dir, secret) = outside_secret();
    // `-r` and `-c` lines, relative and absolute.
    let relative = pathdiff(&secret, &f.compose.cwd);
    for include in [format!("-r {relative}"), format!("-c {}", secret.display()), format!("--requirement={relative}")] {
        std::fs::write(f.compose.cwd.join("reqs.txt"), format!("tinyapp\n{include}\n")).unwrap();
        with_requirements_file(&f, "reqs.txt");
        let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
        for shown in [&err, &json] {
            assert!(shown.contains("outside the recipe's directory"), "{include}: {shown}");
            assert!(!shown.contains(SECRET_MARK), "{shown}");
        }
    }
    // A link beside the recipe to a file elsewhere is the file elsewhere.
    std::os::unix::fs::symlink(&secret, f.compose.cwd.join("linked.txt")).unwrap();
    with_requirements_file(&f, "linked.txt");
    let err = refused(&f.compose, &["lock", f.recipe()]);
    assert!(err.contains("outside the recipe's directory") && !err.contains(SECRET_MARK), "{err}");
    assert!(err.contains(&format!("--allow-path {}", dir.path().canonicalize().unwrap().display())), "{err}");
}

/// A requirements file cannot send uv elsewhere than the recipe's index, nor have it read a path
/// no confinement checked: each such line is refused by its number and by what it is, before uv
/// runs, and the line's own text (a URL with a token, a path) is not shown.
#[test]
fn requirements_lines_that_look_elsewhere_or_read_local_paths_are_refused_before_uv() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let (_dir, secret) = outside_secret();
    for (line, what) in [
        ("--extra-index-url https://user:tok3n@example.invalid/simple".to_string(), "an index (--extra-index-url)"),
        (format!("--find-links {}", secret.parent().unwrap().display()), "a --find-links location"),
        (format!("-e {}", secret.parent().unwrap().display()), "an editable install (-e)"),
        (format!("tinyapp @ file://{}", secret.display()), "a local path"),
        // Found by an outside attack: a byte-order mark before an option, an include by URL or
        // through `${VAR}` (which uv expands and compose would not), a version-control URL.
        (format!("-r file://{}", secret.display()), "an include by URL"),
        ("-r ${HOME}/../shadow".to_string(), "an environment variable (${...}), which compose does not expand"),
        (format!("tinyapp @ git+file://{}", secret.parent().unwrap().display()), "a version-control URL"),
    ] {
        std::fs::write(f.compose.cwd.join("reqs.txt"), format!("tinyapp\n{line}\n")).unwrap();
        with_requirements_file(&f, "reqs.txt");
        let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
        for shown in [&err, &json] {
            assert!(shown.contains("line 2 of the requirements file"), "{line}: {shown}");
            assert!(shown.contains(&format!("names {what}, which compose does not pass on to uv")), "{shown}");
            assert!(!shown.contains("tok3n") && !shown.contains(secret.to_str().unwrap()), "{shown}");
        }
        assert!(err.contains("[python] index"), "the hint names the recipe's index: {err}");
    }
}

/// What uv resolves is what compose checked: uv is given the requirements' lines, never the
/// file, so an include nested deeper than compose follows is an error and not a file uv reads
/// alone; a line with a URL in it that is no requirement (a `.env` named by mistake) is not
/// passed on, and not shown.
#[test]
fn uv_reads_no_file_compose_did_not_check_and_no_line_it_refused() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    let (_dir, secret) = outside_secret();
    let dir = f.compose.cwd.clone();
    for depth in 1..=9 {
        std::fs::write(dir.join(format!("d{depth}.txt")), format!("-r d{}.txt\n", depth + 1)).unwrap();
    }
    std::fs::write(dir.join("d10.txt"), format!("-r {}\n", secret.display())).unwrap();
    std::fs::write(dir.join("reqs.txt"), "tinyapp\n-r d1.txt\n").unwrap();
    with_requirements_file(&f, "reqs.txt");
    let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
    for shown in [&err, &json] {
        assert!(shown.contains("is included from files nested more than 8 deep"), "{shown}");
        assert!(!shown.contains(SECRET_MARK), "{shown}");
    }
    // A byte-order mark before the first line's option does not make it a requirement.
    std::fs::write(dir.join("reqs.txt"), "\u{feff}--extra-index-url http://127.0.0.1:9/simple\ntinyapp\n").unwrap();
    let err = refused(&f.compose, &["lock", f.recipe()]);
    assert!(
        err.contains("line 1 of the requirements file") && err.contains("names an index (--extra-index-url)"),
        "{err}"
    );
    std::fs::write(dir.join("reqs.txt"), "tinyapp\nAPI=https://example.invalid/?token=hunter2secret\n").unwrap();
    let (err, json) = refused_both(&f.compose, &["lock", f.recipe()]);
    for shown in [&err, &json] {
        assert!(shown.contains("line 2 of the requirements file") && !shown.contains("hunter2secret"), "{shown}");
    }
    // An honest nesting resolves, from the text compose read.
    std::fs::write(dir.join("reqs.txt"), "-r d1.txt\n").unwrap();
    for depth in 1..=3 {
        std::fs::write(dir.join(format!("d{depth}.txt")), format!("-r d{}.txt\n", depth + 1)).unwrap();
    }
    std::fs::write(dir.join("d4.txt"), "tinyapp\n").unwrap();
    f.compose.ok(&["lock", f.recipe()]);
    let pylock = std::fs::read_to_string(dir.join("pylock.app-linux-amd64.toml")).unwrap();
    assert!(pylock.contains("name = \"tinyapp\""), "{pylock}");
}

/// A recipe named through a link to a file elsewhere (a secret, say) that is no recipe: the
/// error keeps its place, not the file's line.
#[test]
fn a_recipe_that_links_out_of_its_directory_is_not_shown_in_errors() {
    let c = crate::compose();
    let (_dir, secret) = outside_secret();
    let link = c.cwd.join("recipe-link.toml");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let (err, json) = refused_both(&c, &["build", link.to_str().unwrap()]);
    for shown in [&err, &json] {
        assert!(shown.contains("recipe-link.toml:1:"), "{shown}");
        assert!(!shown.contains(SECRET_MARK), "{shown}");
    }
    // A recipe of one's own still shows its line.
    let own = c.cwd.join("own.toml");
    std::fs::write(&own, "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\ncolour = 1\n").unwrap();
    let err = refused(&c, &["build", own.to_str().unwrap()]);
    assert!(err.contains("   4 | colour = 1"), "{err}");
}

/// A pylock is a claim: a wheel URL edited to name a file outside the recipe's directory and
/// the configured index (with that file's true digest, so no pin would catch it), or a host over
/// plain HTTP, is refused before anything is fetched, naming the pylock and the package and
/// neither the file nor its digest.
#[test]
fn a_pylock_wheel_url_outside_the_configured_places_is_refused_before_fetching() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    f.compose.ok(&["lock", f.recipe()]);
    let pylock = f.compose.cwd.join("pylock.app-linux-amd64.toml");
    let honest = std::fs::read_to_string(&pylock).unwrap();
    let (_dir, secret) = outside_secret();
    let secret_sha = sha256_hex(&std::fs::read(&secret).unwrap());
    let at = honest.find("url = \"file://").expect("the fixture's index is a file:// one");
    let end = at + honest[at..].find('\n').unwrap();
    // A `?` is part of the path the fetcher opens: it hides no `..` from the check.
    let query_dir = f.compose.cwd.join("a?");
    std::fs::create_dir_all(&query_dir).unwrap();
    for (url, said) in [
        (format!("file://{}", secret.display()), "outside the recipe's directory"),
        ("http://wheels.example.invalid/tinyapp-1.0-py3-none-any.whl".to_string(), "plain HTTP"),
        (
            format!("file://{}/{}", query_dir.display(), pathdiff(&secret, &query_dir)),
            "not a plain absolute local path",
        ),
    ] {
        std::fs::write(&pylock, format!("{}url = \"{url}\"{}", &honest[..at], &honest[end..])).unwrap();
        let (err, json) = refused_both(&f.compose, &["build", f.recipe()]);
        for shown in [&err, &json] {
            assert!(shown.contains("pylock.app-linux-amd64.toml") && shown.contains(said), "{shown}");
            assert!(!shown.contains(secret.to_str().unwrap()) && !shown.contains(&secret_sha), "{shown}");
        }
        assert!(!composer_testkit::store_has_sha256(&f.compose.store, &secret_sha));
    }
    std::fs::write(&pylock, honest).unwrap();
    f.compose.ok(&["build", f.recipe()]);
}

/// `target` relative to `base` (both absolute), through `..`.
fn pathdiff(target: &Path, base: &Path) -> String {
    let ups = base.components().count() - 1;
    format!("{}{}", "../".repeat(ups), target.strip_prefix("/").unwrap().display())
}

#[test]
fn a_fifo_among_the_requirements_does_not_block() {
    let f = WheelFixture::new(&["tinyapp"], &["linux/amd64"]);
    mkfifo(&f.compose.cwd.join("pipe.txt"));
    std::fs::write(f.compose.cwd.join("reqs.txt"), "tinyapp\n-r pipe.txt\n").unwrap();
    with_requirements_file(&f, "reqs.txt");
    let err = refused(&f.compose, &["lock", f.recipe()]);
    assert!(err.contains("requirements file") && err.contains("pipe.txt` is a FIFO"), "{err}");
}

/// A fixture whose archive can make a build root (the build step itself never runs here).
fn source_fixture() -> Fixture {
    use composer_testkit::Deb;
    let (mirror, compose, recipe) = crate::mirror_with(vec![
        Deb::new("build-essential", "12.9"),
        Deb::new("mawk", "1.3").file("usr/bin/mawk", b"-"),
    ]);
    Fixture { mirror, compose, recipe }
}

/// The fixture's recipe with a build that uses the `[[sources]]` entry `source` (TOML lines).
fn with_source(f: &Fixture, source: &str) {
    write_recipe(
        &f.recipe,
        &f.mirror.keyring,
        &[],
        &format!(
            "[[sources]]\nname = \"payload\"\n{source}\n\n[[builds]]\nname = \"b\"\nsources = [\"payload\"]\nscript = \"true\"\n"
        ),
    );
}

fn store_tmp_entries(c: &Compose) -> Vec<PathBuf> {
    match std::fs::read_dir(c.store.join("tmp")) {
        Ok(dir) => dir.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_file_url_source_is_confined_and_bounded_and_leaves_nothing_in_the_store() {
    let f = source_fixture();
    with_source(&f, &format!("url = \"file:///dev/zero\"\nsha256 = \"{}\"", "0".repeat(64)));
    let started = Instant::now();
    let err = refused(&f.compose, &["build", f.recipe_str()]);
    assert!(err.contains("local source `/dev/zero` is outside the recipe's directory"), "{err}");
    let err = refused(&f.compose, &["build", f.recipe_str(), "--allow-path", "/dev"]);
    assert!(err.contains("local source `/dev/zero` is a character device"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "refused at once");
    assert!(store_tmp_entries(&f.compose).is_empty(), "{:?}", store_tmp_entries(&f.compose));
}

#[test]
fn a_wrong_pin_on_a_local_source_never_shows_the_files_digest() {
    let f = source_fixture();
    let (dir, secret) = outside_secret();
    let actual = sha256_hex(&std::fs::read(&secret).unwrap());
    with_source(&f, &format!("url = \"file://{}\"\nsha256 = \"{}\"", secret.display(), "ab".repeat(32)));
    let (err, json) = refused_both(&f.compose, &["build", f.recipe_str()]);
    for shown in [&err, &json] {
        assert!(shown.contains("outside the recipe's directory") && !shown.contains(&actual), "{shown}");
    }
    let allowed = ["build", f.recipe_str(), "--allow-path", dir.path().to_str().unwrap()];
    let (err, json) = refused_both(&f.compose, &allowed);
    for shown in [&err, &json] {
        assert!(shown.contains("does not have the sha256 the recipe pins"), "{shown}");
        assert!(!shown.contains(&actual), "the digest of a file the recipe should not read: {shown}");
    }
    assert!(store_tmp_entries(&f.compose).is_empty(), "{:?}", store_tmp_entries(&f.compose));
    // Beside the recipe, the same: a digest is a way to test a guess at a file's contents.
    std::fs::copy(&secret, f.compose.cwd.join("payload.bin")).unwrap();
    with_source(&f, &format!("path = \"payload.bin\"\nsha256 = \"{}\"", "ab".repeat(32)));
    let err = refused(&f.compose, &["build", f.recipe_str()]);
    assert!(err.contains("does not have the sha256 the recipe pins") && !err.contains(&actual), "{err}");
}
