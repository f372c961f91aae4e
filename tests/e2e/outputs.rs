//! What compose writes where a user points it: outputs replace only a missing path or a regular
//! file (never a FIFO or a device), a bundle's locks land only under the names compose gives
//! locks and only when a trusted key signed them, and what a killed process left is swept.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use composer_cache::{Remote, SecretKey};
use composer_store::Sha256;

use crate::cache::{key, machine_two};
use crate::{Fixture, compose};

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).unwrap().file_type().is_fifo()
}

/// Every entry under `dir`, to tell whether anything was written.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() && !entry.path().ends_with("locks-v1") {
                todo.push(entry.path());
            }
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

/// A bundle in the one form compose writes, holding only lock files, listed under `names` in
/// this order and signed with `key`: what an attacker who holds a trusted key, or who edits a
/// bundle, could hand over.
fn crafted_bundle(dest: &Path, locks: &[(&str, &[u8])], key: Option<&SecretKey>) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let cache = composer_cache::DirCache::create(&layout).unwrap();
    let mut listed = Vec::new();
    for (name, bytes) in locks {
        let sha = Sha256::of(bytes);
        cache.put_blob(&sha, bytes.len() as u64, bytes).unwrap();
        listed.push((name.to_string(), sha, bytes.len() as u64));
    }
    let empty = composer_cache::claim::EMPTY_CONFIG;
    cache.put_blob(&Sha256::of(empty), empty.len() as u64, &empty).unwrap();
    let signatures = key
        .map(|key| composer_cache::Signatures::sign(key, &composer_cache::locks::signed_message(&listed)))
        .unwrap_or_default();
    let manifest = composer_cache::claim::locks_manifest(&listed, &signatures);
    cache.put_manifest(composer_cache::claim::LOCKS_TAG, &manifest).unwrap();

    let mut members = vec!["oci-layout".to_string(), "index.json".to_string()];
    let mut blobs: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("blobs/sha256/{}", e.unwrap().file_name().to_str().unwrap()))
        .collect();
    blobs.sort();
    members.extend(blobs);
    let mut tar = tar::Builder::new(std::fs::File::create(dest).unwrap());
    for member in members {
        let bytes = std::fs::read(layout.join(&member)).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path(&member).unwrap();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o444);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, bytes.as_slice()).unwrap();
    }
    tar.finish().unwrap();
}

/// Machine one's secret key, parsed, and its public half.
fn signing_key(f: &Fixture) -> (PathBuf, SecretKey, String) {
    let (file, public) = key(&f.compose, "one");
    let secret = SecretKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    (file, secret, public)
}

#[test]
fn locks_to_writes_only_the_names_compose_gives_locks_and_nothing_when_one_is_not() {
    let f = Fixture::new(&["app"], "");
    let (_, secret, public) = signing_key(&f);
    let two = machine_two(&f);
    let dir = two.cwd.join("recipes");
    std::fs::create_dir_all(&dir).unwrap();
    two.ok(&["plan", f.recipe_str()]);
    let before = (listing(&two.home.path().join("work")), listing(&two.store));
    let import_refused = |bundle: &std::path::Path, locks_to: &std::path::Path| {
        let (bundle, locks_to) = (bundle.to_str().unwrap(), locks_to.to_str().unwrap());
        two.fails(&["store", "import", bundle, "--trusted-key", &public, "--locks-to", locks_to])
    };
    for hostile in [".envrc", "evil.toml", "x\ny.lock", "../a.lock", "a/b.lock", "a\u{0}.lock", ".hidden.lock"] {
        // A good lock first: a writer that checks as it goes would have written it.
        let bundle = two.home.path().join("evil.bundle");
        crafted_bundle(&bundle, &[("app.lock", b"version = 1\n"), (hostile, b"export EVIL=1\n")], Some(&secret));
        let stderr = import_refused(&bundle, &dir);
        assert!(stderr.contains("is not one compose gives a lock file"), "{hostile:?}: {stderr}");
        assert!(!stderr.contains("EVIL"), "a lock's content is never shown: {stderr}");
        assert_eq!((listing(&two.home.path().join("work")), listing(&two.store)), before, "{hostile:?}");
        std::fs::remove_file(&bundle).unwrap();
    }
    // Names compose gives, signed by a trusted key: written.
    let bundle = two.home.path().join("good.bundle");
    let pylock = "pylock.app-linux-amd64.toml";
    crafted_bundle(&bundle, &[("app.lock", b"version = 1\n"), (pylock, b"lock-version = \"1.0\"\n")], Some(&secret));
    // A directory that is not there (or is a file) is found before the import, not after it.
    for (missing, said) in [(two.cwd.join("no-such-dir"), "does not exist"), (f.recipe.clone(), "is not a directory")] {
        let stderr = import_refused(&bundle, &missing);
        assert!(stderr.contains(said) && stderr.contains("the store is unchanged"), "{stderr}");
        assert_eq!((listing(&two.home.path().join("work")), listing(&two.store)), before);
    }
    let locks_to = dir.to_str().unwrap();
    two.ok(&["store", "import", bundle.to_str().unwrap(), "--trusted-key", &public, "--locks-to", locks_to]);
    assert_eq!(std::fs::read(dir.join("app.lock")).unwrap(), b"version = 1\n");
    assert!(dir.join(pylock).is_file());
}

#[test]
fn an_unsigned_bundles_locks_are_refused_by_locks_to_and_a_signed_ones_taken() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let (secret_file, _, public) = signing_key(&f);
    let unsigned = f.compose.home.path().join("unsigned.bundle");
    f.compose.ok(&["bundle", f.recipe_str(), "-o", unsigned.to_str().unwrap(), "--inputs-only"]);
    let signed = f.compose.home.path().join("signed.bundle");
    let secret = secret_file.to_str().unwrap();
    f.compose.ok(&["bundle", f.recipe_str(), "-o", signed.to_str().unwrap(), "--inputs-only", "--signing-key", secret]);

    let two = machine_two(&f);
    let locks_to = two.cwd.to_str().unwrap();
    two.ok(&["plan", f.recipe_str()]);
    let before = (listing(&two.cwd), listing(&two.store));
    for trusted in [vec![], vec!["--trusted-key", &public]] {
        let mut args = vec!["store", "import", unsigned.to_str().unwrap(), "--locks-to", locks_to];
        args.extend(&trusted);
        let stderr = two.fails(&args);
        assert!(stderr.contains("not signed"), "{stderr}");
        assert!(stderr.contains("--signing-key") && stderr.contains("--trusted-key"), "the hint: {stderr}");
        assert_eq!((listing(&two.cwd), listing(&two.store)), before, "nothing was written");
    }
    // Signed, but by a key this machine does not trust: refused too.
    let (_, stranger) = key(&two, "stranger");
    let stderr =
        two.fails(&["store", "import", signed.to_str().unwrap(), "--trusted-key", &stranger, "--locks-to", locks_to]);
    assert!(stderr.contains("untrusted keys (one)"), "{stderr}");
    assert_eq!((listing(&two.cwd), listing(&two.store)), before);

    // Without --locks-to the inputs go in as before, with a note.
    let stderr = String::from_utf8(two.run(&["store", "import", unsigned.to_str().unwrap()]).stderr).unwrap();
    assert!(stderr.contains("no trusted key signed"), "{stderr}");
    assert!(!two.cwd.join("app.lock").exists());
    // Signed by a trusted key: written.
    two.ok(&["store", "import", signed.to_str().unwrap(), "--trusted-key", &public, "--locks-to", locks_to]);
    assert_eq!(
        std::fs::read(two.cwd.join("app.lock")).unwrap(),
        std::fs::read(f.recipe.with_extension("lock")).unwrap()
    );
}

#[test]
fn archives_and_bundles_never_replace_a_fifo_a_device_or_a_link() {
    let f = Fixture::new(&["app"], "");
    f.compose.build_json(&f.recipe, &[]);
    let dir = f.compose.home.path().join("outputs");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    // A character device of our own, as root can make one (a copy of /dev/null's numbers).
    let device = dir.join("null");
    let have_device = std::process::Command::new("mknod")
        .args([device.to_str().unwrap(), "c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let target = dir.join("target");
    std::fs::write(&target, b"the user's").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let mut cases = vec![(fifo.clone(), "a FIFO"), (link.clone(), "a symbolic link")];
    if have_device {
        cases.push((device.clone(), "a character device"));
    }
    for (path, what) in &cases {
        for transport in ["oci-archive", "docker-archive"] {
            let output = format!("{transport}:{}", path.display());
            let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", &output]);
            assert!(stderr.contains(&format!("{} is {what}", path.display())), "{output}: {stderr}");
            assert!(stderr.contains("compose replaces only regular files it wrote"), "{stderr}");
        }
        let stderr = f.compose.fails(&["bundle", f.recipe_str(), "-o", path.to_str().unwrap(), "--inputs-only"]);
        assert!(stderr.contains(&format!("{} is {what}", path.display())), "{stderr}");
    }
    assert!(is_fifo(&fifo), "the FIFO is still a FIFO");
    if have_device {
        assert!(std::fs::symlink_metadata(&device).unwrap().file_type().is_char_device());
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"the user's");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut expected = vec!["fifo", "link", "target"];
    if have_device {
        expected.push("null");
        expected.sort();
    }
    assert_eq!(names, expected, "no temp file was left");

    // A missing path, an empty file and an earlier archive of ours are written; an archive of
    // one kind replaces one of the other.
    let archive = dir.join("image.tar");
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}", archive.display())]);
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("docker-archive:{}", archive.display())]);
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}", archive.display())]);
    assert!(std::fs::read(&archive).unwrap().len() > 1024);
    let empty = dir.join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    f.compose.ok(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}", empty.display())]);
    let bundle = dir.join("inputs.bundle");
    for _ in 0..2 {
        f.compose.ok(&["bundle", f.recipe_str(), "-o", bundle.to_str().unwrap(), "--inputs-only"]);
    }
}

/// An output replaces only what compose wrote: `-o oci-archive:recipe.toml` (a slip of the
/// keyboard) leaves the recipe as it is, as do a bundle and a docker archive named over any other
/// file that is not an archive of ours.
#[test]
fn archives_and_bundles_never_replace_a_file_compose_did_not_write() {
    let f = Fixture::new(&["app"], "");
    let recipe = std::fs::read(&f.recipe).unwrap();
    for transport in ["oci-archive", "docker-archive"] {
        let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", &format!("{transport}:{}", f.recipe_str())]);
        assert!(stderr.contains("is a file that is not an image archive or bundle"), "{stderr}");
        assert!(stderr.contains("move this one away"), "the hint is given: {stderr}");
    }
    let stderr = f.compose.fails(&["bundle", f.recipe_str(), "-o", f.recipe_str(), "--inputs-only"]);
    assert!(stderr.contains("is a file that is not an image archive or bundle"), "{stderr}");
    assert_eq!(std::fs::read(&f.recipe).unwrap(), recipe, "the recipe is as it was");
    // A tar that is not one of ours (its first member is the user's) is not ours to replace.
    let other = f.compose.home.path().join("backup.tar");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(5);
    header.set_cksum();
    tar.append_data(&mut header, "notes.txt", &b"notes"[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    std::fs::write(&other, &bytes).unwrap();
    let stderr = f.compose.fails(&["build", f.recipe_str(), "-o", &format!("oci-archive:{}", other.display())]);
    assert!(stderr.contains("is a file that is not an image archive or bundle"), "{stderr}");
    assert_eq!(std::fs::read(&other).unwrap(), bytes);
}

/// Sets a path's modification time an hour back: past the age under which a sweep leaves it.
fn age(path: &Path) {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(path).unwrap().set_modified(an_hour_ago).unwrap();
}

#[test]
fn a_killed_bundles_leftovers_are_swept_by_the_next_bundle_to_the_same_path() {
    let (_mirror, c, recipe) = crate::store::big_fixture(2, 24);
    c.ok(&["build", recipe.to_str().unwrap()]);
    let out = c.home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let bundle = out.join("big.bundle");
    let staged = || -> Vec<PathBuf> {
        std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".big.bundle.tmp-"))
            .collect()
    };
    let mut leftovers = Vec::new();
    for _ in 0..5 {
        let mut child = c
            .command(&["bundle", recipe.to_str().unwrap(), "-o", bundle.to_str().unwrap(), "--inputs-only"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while staged().is_empty() && child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        leftovers = staged();
        if !leftovers.is_empty() {
            break;
        }
    }
    assert!(!leftovers.is_empty(), "no bundle was killed while it wrote: the test proved nothing");
    // Another output's temp file beside it, of the same dead process, is not this output's to sweep.
    let pid = leftovers[0].file_name().unwrap().to_string_lossy().split("tmp-").nth(1).unwrap().to_string();
    let other = out.join(format!(".other.tmp-{pid}"));
    std::fs::write(&other, b"another output's").unwrap();
    for path in leftovers.iter().chain([&other]) {
        age(path);
    }
    c.ok(&["bundle", recipe.to_str().unwrap(), "-o", bundle.to_str().unwrap(), "--inputs-only"]);
    assert!(staged().is_empty(), "the killed bundle's {leftovers:?} is still there");
    assert!(other.exists());
    assert!(bundle.is_file());
}

#[test]
fn gc_sweeps_the_working_directories_of_dead_processes_only() {
    let c = compose();
    drop(composer_store::Store::open(&c.store).unwrap());
    let temp = c.home.path().join("tmp");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), b"x").unwrap();
    let dead_import = temp.join(format!("compose-import-{dead}-{:016x}", 0));
    std::fs::create_dir_all(dead_import.join("layout/blobs/sha256")).unwrap();
    std::fs::write(dead_import.join("layout/blobs/sha256/blob"), vec![0u8; 1 << 20]).unwrap();
    let dead_build = temp.join(format!("compose-build-app-amd64-{dead}-{:016x}", 3));
    std::fs::create_dir_all(&dead_build).unwrap();
    let live = temp.join(format!("compose-import-{}-{:016x}", std::process::id(), 0));
    std::fs::create_dir_all(&live).unwrap();
    // What --keep-failed kept: marked, and never swept.
    let kept = temp.join(format!("compose-build-app-amd64-{dead}-{:016x}", 4));
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join(composer_store::leftovers::KEPT_MARKER), b"").unwrap();
    let not_ours = temp.join(format!("compose-imports-{dead}-{:016x}", 0));
    std::fs::create_dir_all(&not_ours).unwrap();
    // A user's directory whose name only looks like ours (a date), old and of no live process.
    let dated = temp.join("compose-import-2025-01");
    std::fs::create_dir_all(&dated).unwrap();
    std::fs::write(dated.join("notes.txt"), b"mine").unwrap();
    let link = temp.join(format!("compose-import-{dead}-{:016x}", 1));
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    for path in [&dead_import, &dead_build, &live, &kept, &not_ours, &dated] {
        age(path);
    }
    let report: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "store", "gc", "--dry-run"])).unwrap();
    assert_eq!(report["dead_temp_dirs"], 2, "{report}");
    assert!(dead_import.exists(), "a dry run removes nothing");
    let report: serde_json::Value = serde_json::from_str(&c.ok(&["--json", "store", "gc"])).unwrap();
    assert_eq!(report["dead_temp_dirs"], 2, "{report}");
    assert!(!dead_import.exists() && !dead_build.exists());
    for path in [&live, &kept, &not_ours, &dated] {
        assert!(path.exists(), "{} was swept", path.display());
    }
    assert!(std::fs::symlink_metadata(&link).is_ok(), "a link is not ours to remove");
    assert!(outside.path().join("precious").exists());
}
