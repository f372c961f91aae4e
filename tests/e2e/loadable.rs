//! A wheel set that cannot load does not build: every ELF file of every wheel has each library
//! it needs in the image, or the build fails naming the wheel, the file, the library and the
//! package that ships it (from the archive's `Contents` index).

use composer_testkit::{Deb, Wheel, elf_needing};

use crate::wheels::WheelFixture;

const X86_64: u16 = 62;

/// A wheel with an extension that needs a system library (`libfixture.so.1`) and one it
/// carries (`nativeext.libs/libbundled.so`, found through its `RUNPATH`), as manylinux wheels
/// are made.
fn native_wheel() -> Wheel {
    let extension =
        elf_needing(X86_64, &["libc.so.6", "libfixture.so.1", "libbundled.so"], Some("$ORIGIN/../nativeext.libs"));
    Wheel::new("nativeext", "1.0").file("nativeext/_core.so", &extension, 0o755).file(
        "nativeext.libs/libbundled.so",
        &elf_needing(X86_64, &["libc.so.6"], None),
        0o755,
    )
}

/// Where Debian puts the multiarch library directory in the loader's configuration.
fn libfixture() -> Deb {
    Deb::new("libfixture1", "1.0")
        .file("usr/lib/x86_64-linux-gnu/libfixture.so.1.0.0", &elf_needing(X86_64, &["libc.so.6"], None))
        .entry(composer_testkit::Entry::Symlink(
            "usr/lib/x86_64-linux-gnu/libfixture.so.1".into(),
            "libfixture.so.1.0.0".into(),
        ))
        .file("etc/ld.so.conf.d/x86_64-linux-gnu.conf", b"# Multiarch support\n/usr/lib/x86_64-linux-gnu\n")
}

#[test]
fn a_wheel_whose_library_the_image_lacks_fails_the_build_naming_the_package_to_add() {
    let f = WheelFixture::with(vec![libfixture()], vec![native_wheel()], &["nativeext"], &["linux/amd64"]);
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("1 library the wheel set needs on linux/amd64 is not in the image"), "{said}");
    assert!(
        said.contains("nativeext: /opt/venv/lib/python3.11/site-packages/nativeext/_core.so needs libfixture.so.1")
            && said.contains("libfixture.so.1 (package libfixture1)"),
        "{said}"
    );
    assert!(!said.contains("libbundled.so") && !said.contains("libc.so.6"), "found in the wheel and the image: {said}");
    assert!(
        said.contains("hint: set `[python] system_libraries = \"add\"`")
            && said.contains("or add \"libfixture1\" to `[base] packages`"),
        "{said}"
    );
    assert!(!f.compose.cwd.join("out/app/index.json").exists(), "no image is written");

    // With the package, the same wheels build, and a second build reads nothing again.
    let recipe = std::fs::read_to_string(f.recipe()).unwrap().replace("packages = []", "packages = [\"libfixture1\"]");
    std::fs::write(f.recipe(), recipe).unwrap();
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("that every wheel's libraries are in the image"), "checked: {said}");
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("every wheel's libraries"), "checked once: {said}");
}

/// `system_libraries = "add"`: the package that ships the library where the loader looks joins
/// the image and the lock (per platform, saying why), the image builds, and the list follows
/// the wheels: a wheel set that no longer needs it drops it, a lock that claims one nobody needs
/// is refused `--locked`, a name that is no package name is refused as it is read.
#[test]
fn with_system_libraries_added_the_package_joins_the_image_and_the_lock_and_follows_the_wheels() {
    // A text file named like the library does not carry it; a private copy in a plugin
    // directory (in a package whose shorter name would be preferred) does not ship it.
    let pure = Wheel::new("purepkg", "1.0").file("purepkg/core.py", b"", 0o644).file(
        "purepkg/testdata/libfixture.so.1",
        b"not a library",
        0o644,
    );
    let unrelated = || Deb::new("libunrelated1", "1.0").file("usr/lib/x86_64-linux-gnu/libunrelated.so.1", b"x");
    let plugin = || Deb::new("fx", "1.0").file("usr/lib/fx/plugins/libfixture.so.1", b"a private copy");
    let f = WheelFixture::with(
        vec![libfixture(), unrelated(), plugin()],
        vec![native_wheel(), pure],
        &["nativeext", "purepkg"],
        &["linux/amd64"],
    );
    let recipe = std::fs::read_to_string(f.recipe()).unwrap() + "system_libraries = \"add\"\n";
    std::fs::write(f.recipe(), &recipe).unwrap();
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Adding libfixture1 to linux/amd64: nativeext needs libfixture.so.1"), "{said}");
    let lock_path = f.compose.cwd.join("app.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(
        lock.contains("add_system_libraries = true") && lock.contains("system_libraries = [\"libfixture1\"]"),
        "{lock}"
    );
    assert!(lock.contains("name = \"libfixture1\""), "resolved into the image: {lock}");
    // The image's own check read the wheel layer and found the library in it.
    assert!(said.contains("that every wheel's libraries are in the image"), "{said}");

    // Built again, the lock is current: nothing is added, resolved or written, and `lock
    // --check` has nothing to report.
    let out = f.compose.run(&["build", "--locked", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("Adding") && !said.contains("Resolving"), "{said}");
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), lock);
    let check = f.compose.ok(&["lock", f.recipe(), "--check"]);
    assert!(!check.contains("remove") && !check.contains("add "), "{check}");

    // A name that is no package name is refused as the lock is read, shown escaped: one with a
    // terminal's escape by the lock's own rule for every string, one without by this field's.
    for (name, refusal) in [("\\u001b]0;x", "control character"), ("a b", "which is not a package name")] {
        std::fs::write(&lock_path, lock.replace("[\"libfixture1\"]", &format!("[\"libfixture1\", \"{name}\"]")))
            .unwrap();
        let out = f.compose.run(&["build", f.recipe()]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(refusal), "{said}");
        assert!(!said.contains('\u{1b}'), "escaped: {said}");
    }
    std::fs::write(&lock_path, &lock).unwrap();

    // A lock that claims a package no wheel needs is a claim the wheels do not back: refused
    // `--locked`. (Here the package is in the image anyway, so the claim is otherwise sound.)
    let with_unrelated = recipe.replace("packages = []", "packages = [\"libunrelated1\"]");
    std::fs::write(f.recipe(), &with_unrelated).unwrap();
    let out = f.compose.run(&["build", f.recipe()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let claimed = std::fs::read_to_string(&lock_path)
        .unwrap()
        .replace("system_libraries = [\"libfixture1\"]", "system_libraries = [\"libfixture1\", \"libunrelated1\"]");
    std::fs::write(&lock_path, &claimed).unwrap();
    let out = f.compose.run(&["build", "--locked", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("on linux/amd64, the lock adds `libunrelated1`, which ships no library the wheels need"),
        "{said}"
    );
    // Without `--locked`, it is dropped.
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("Dropping libunrelated1 from linux/amd64"), "{said}");
    std::fs::write(f.recipe(), &recipe).unwrap();

    // The wheel set changes to one that needs no system library: the package is dropped.
    std::fs::write(f.recipe(), recipe.replace("[\"nativeext\", \"purepkg\"]", "[\"purepkg\"]")).unwrap();
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Dropping libfixture1 from linux/amd64: no wheel needs it"), "{said}");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(!lock.contains("system_libraries = [") && !lock.contains("name = \"libfixture1\""), "{lock}");

    // The mirror moves on (a newer python3); the wheels come to need the library again. The
    // package is added against the lock's own Release: nothing else of the lock moves, so the
    // interpreter stays the one the wheels were locked for.
    let mut moved: Vec<Deb> = crate::wheels::base_debs()
        .into_iter()
        .map(|d| match d.name.as_str() {
            "python3" => Deb::new("python3", "3.12.1-1").arch(&d.arch.clone()).file("usr/bin/python3.12", b"#!python"),
            _ => d,
        })
        .collect();
    moved.extend([libfixture(), unrelated(), plugin()]);
    f.mirror.publish_with(
        "stable",
        &moved,
        &composer_testkit::Publish { date: Some("Sat, 02 Jan 2027 00:00:00 UTC".into()), ..Default::default() },
    );
    std::fs::write(f.recipe(), &recipe).unwrap();
    let out = f.compose.run(&["build", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("Adding libfixture1"), "{said}");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock.contains("version = \"3.11.2-1+b1\"") && !lock.contains("3.12.1-1"), "{lock}");

    // Back to checking: the setting is part of the lock, which is resolved again without it.
    std::fs::write(f.recipe(), recipe.replace("system_libraries = \"add\"\n", "")).unwrap();
    let out = f.compose.run(&["build", "--locked", f.recipe()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("`[python] system_libraries` setting changed"), "{said}");
}
