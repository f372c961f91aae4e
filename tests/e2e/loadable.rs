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
    assert!(said.contains("hint: add \"libfixture1\" to `[base] packages`"), "{said}");
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
