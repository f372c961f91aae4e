//! The shell scripts of composer's own build steps (the allocator, musl, CPython, the build
//! platform's CPython, sdists), as [`crate::compile`] runs them. Each is part of its step's key:
//! a change here rebuilds every step that runs it.

pub(crate) const JEMALLOC_SCRIPT: &str = r#"mkdir src
tar -xf /sources/jemalloc -C src --strip-components=1
cd src
./configure --build="$CBUILD" --host="$CHOST" --prefix="$PREFIX" --disable-doc --disable-cxx \
    ${LG_PAGE:+--with-lg-page=$LG_PAGE} ${LG_VADDR:+--with-lg-vaddr=$LG_VADDR} \
    CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS"
# The shared library only when something loads it at run time, and otherwise only
# libjemalloc.a (not also the -fPIC copy, libjemalloc_pic.a, for linking into shared objects):
# under qemu-user every object compiled is minutes.
if [ "$JEMALLOC_SHARED" = 1 ]; then
    make -j"$JOBS" build_lib
    make install_lib install_include DESTDIR="$DESTDIR"
else
    make -j"$JOBS" build_lib_static STATIC_LIBS=lib/libjemalloc.a
    make install_lib_static install_include DESTDIR="$DESTDIR" STATIC_LIBS=lib/libjemalloc.a
fi
"#;

/// musl, as the C library every other build of a musl image compiles against: installed under
/// its own prefix (the build root's glibc headers stay out of its way), its loader where every
/// program it links names it, and a compiler wrapper that adds its specs.
pub(crate) const MUSL_SCRIPT: &str = r#"mkdir src
tar -xf /sources/musl -C src --strip-components=1
cd src
# PT_INTERP of every program is /lib/ld-musl-ARCH.so.1; the file itself goes to /usr/lib, which
# /lib points at in the image's merged /usr. The library's soname is Alpine's, which is what
# programs and extension modules then name (and what auditwheel's musllinux policy allows).
./configure --prefix=/usr/local/musl --syslibdir=/lib --disable-static CC="$CC" CROSS_COMPILE="$CROSS_PREFIX" \
    CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS -Wl,-soname,$MUSL_SONAME"
make -j"$JOBS"
make install DESTDIR="$DESTDIR"
mkdir -p "$DESTDIR/usr/lib"
mv "$DESTDIR"/lib/ld-musl-*.so.1 "$DESTDIR/usr/lib/"
rmdir "$DESTDIR/lib"
(cd "$DESTDIR/usr/lib" && ln -s ld-musl-*.so.1 "$MUSL_SONAME")
# The kernel's headers, for programs that include <linux/...> or <mtd/...>: the wrapper shows
# the compiler musl's include directory only. Copied, not linked (Debian's asm headers are links
# into /usr/lib), and never over one of musl's own.
# A cross root has the target's under /usr/TRIPLET/include, from the cross toolchain.
include="$DESTDIR/usr/local/musl/include"
kernel=/usr/include
[ -z "$CROSS_PREFIX" ] || kernel="/usr/$GNU_TRIPLET/include"
for dir in linux asm-generic mtd scsi sound video drm misc rdma xen; do
    if [ -d "$kernel/$dir" ]; then cp -RLn "$kernel/$dir" "$include/"; fi
done
asm="$kernel/$GNU_TRIPLET/asm"
[ -d "$asm" ] || asm="$kernel/asm"
cp -RL "$asm" "$include/asm"
# The build root's GCC runtime was built against glibc and calls two kinds of its names that
# musl has under their plain ones: C23's strtol family (__isoc23_strtol..., from libgcov, which
# every program compiled for PGO's first pass links) and __getauxval (from libgcc's out-of-line
# atomics on aarch64, which the rest of libgcov uses). An archive linked after the C library
# forwards them; a program that calls none of them gets nothing of it. Declared here, not
# included: the build root's headers are glibc's.
cat > glibc-compat.c <<'C'
long strtol(const char *, char **, int);
unsigned long strtoul(const char *, char **, int);
long long strtoll(const char *, char **, int);
unsigned long long strtoull(const char *, char **, int);
unsigned long getauxval(unsigned long);
long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }
long long __isoc23_strtoll(const char *s, char **end, int base) { return strtoll(s, end, base); }
unsigned long long __isoc23_strtoull(const char *s, char **end, int base) { return strtoull(s, end, base); }
unsigned long __getauxval(unsigned long type) { return getauxval(type); }
C
"$CC" -O2 -fPIC -ffreestanding -c glibc-compat.c -o glibc-compat.o
"$AR" rcD "$DESTDIR/usr/local/musl/lib/libglibc-compat.a" glibc-compat.o
cat >> "$DESTDIR/usr/local/musl/lib/musl-gcc.specs" <<'SPECS'
%rename lib old_lib

*lib:
%(old_lib) /usr/local/musl/lib/libglibc-compat.a

SPECS
# musl's own wrapper, except that it names the musl triplet when asked for the multiarch one
# (as gcc on a musl system does): CPython's configure compares the two. On aarch64 what it
# compiles inlines its atomics: out of line, each would call into libgcc's helpers, which ask
# __getauxval (forwarded above) for the CPU's features first.
# Links are --as-needed, as Alpine's gcc makes them: a library only named on the command line
# (OpenSSL's -latomic, a configure's blanket -lm) is not a run-time dependency.
extra=
case "$GNU_TRIPLET" in aarch64-*) extra=-mno-outline-atomics ;; esac
cat > "$DESTDIR/usr/local/musl/bin/musl-gcc" <<WRAPPER
#!/bin/sh
for arg; do
    [ "\$arg" = --print-multiarch ] && { echo $MUSL_TRIPLET; exit 0; }
done
exec "\${REALGCC:-$CC}" $extra -Wl,--as-needed "\$@" -specs /usr/local/musl/lib/musl-gcc.specs
WRAPPER
chmod 755 "$DESTDIR/usr/local/musl/bin/musl-gcc"
"#;

/// The first lines of every CPython build: the source unpacked, its directory the current one.
pub(crate) const CPYTHON_UNPACK: &str = r#"mkdir src
tar -xf /sources/python -C src --strip-components=1
cd src
"#;

/// Between [`CPYTHON_UNPACK`] and [`CPYTHON_SCRIPT`] when `[python.build] builtin` names modules.
/// Each module's line of `Modules/Setup.stdlib.in` (without configure's on/off marker) goes under
/// `*static*` in `Modules/Setup.local`, which configure keeps and makesetup reads before
/// `Setup.stdlib`: the first line for a module is the one it builds. The module's own flags
/// (`MODULE_<NAME>_CFLAGS`, `_LDFLAGS`) are added by makesetup as for a shared one.
pub(crate) const CPYTHON_BUILTIN_MODULES: &str = r#"echo '*static*' > Modules/Setup.local
for module in $PYTHON_BUILTIN; do
    line=$(sed -n "s/^@MODULE_[A-Z0-9_]*_TRUE@\($module .*\)/\1/p" Modules/Setup.stdlib.in)
    if [ -z "$line" ]; then
        echo "[python.build] builtin: this CPython has no extension module \`$module\` in Modules/Setup.stdlib.in" >&2
        exit 1
    fi
    echo "$line" >> Modules/Setup.local
done
"#;

/// The rest of every CPython build, after [`CPYTHON_UNPACK`].
pub(crate) const CPYTHON_SCRIPT: &str = r#"# LTO comes from --with-lto: -flto in CFLAGS makes configure's object-file probes (float word
# order) read GIMPLE instead of data, and fail.
CFLAGS=$(echo "$CFLAGS" | sed 's/-flto[^ ]*//g')
LDFLAGS=$(echo "$LDFLAGS" | sed 's/-flto[^ ]*//g')
set --
[ "$COMPOSE_PGO" = 1 ] && set -- "$@" --enable-optimizations
[ "$COMPOSE_LTO" != off ] && set -- "$@" --with-lto
[ "$PYTHON_SHARED" = 1 ] && set -- "$@" --enable-shared
# Cross-compiled: the build scripts run on a CPython of the same version built for the build
# platform, and configure is told what it cannot find out without running a program.
[ "$CBUILD" = "$CHOST" ] ||
    set -- "$@" --with-build-python="$BUILD_PYTHON" ac_cv_file__dev_ptmx=yes ac_cv_file__dev_ptc=no \
        ac_cv_buggy_getaddrinfo=no
# OPT replaces CPython's own "-O3" so that the profile's level is the one used.
./configure --build="$CBUILD" --host="$CHOST" --prefix="$PREFIX" --with-ensurepip=no "$@" $PYTHON_CONFIGURE \
    OPT="-DNDEBUG -fwrapv $COMPOSE_OPT" CFLAGS="$CFLAGS $MALLOC_CFLAGS${PYTHON_CFLAGS:+ $PYTHON_CFLAGS}" \
    LDFLAGS="$LDFLAGS $MALLOC_LDFLAGS -Wl,-rpath,$PREFIX/lib" LIBS="$MALLOC_LIBS"
# The recipe's training task, when it names one, replaces CPython's (`-m test --pgo`): a test
# that fails on the target fails the build, since 3.13.
make -j"$JOBS" ${PYTHON_PGO_TASK:+"PROFILE_TASK=$PYTHON_PGO_TASK"}
make install DESTDIR="$DESTDIR"
# strip refuses what is not ELF, which leaves scripts as they are.
find "$DESTDIR" -type f \( -name '*.so*' -o -perm -u+x \) -exec "$STRIP" --strip-unneeded {} + 2>/dev/null || true
ln -sf python3 "$DESTDIR$PREFIX/bin/python"
"#;

/// Run before [`CPYTHON_SCRIPT`] when the profile trains somewhere (PGO or BOLT). A training run gathers a
/// profile and is no test run: since 3.13 a test that fails in it fails the whole build (after
/// half an hour), and tests that depend on timing fail on a loaded machine now and then
/// (`test_generators`), or hang (`test_threading`'s gh-102056 case, which an interrupt must
/// end). With `|| true` after the task (CPython's own when the recipe names none), a failed
/// test costs its share of the profile, not the build, as before 3.13; a task's `--timeout`
/// bounds a hang. Both training runs end with the task (PGO's and BOLT's), so the `|| true`
/// reaches both.
pub(crate) const CPYTHON_PGO_PROLOGUE: &str = r#"if [ "$COMPOSE_PGO" = 1 ] || [ "${COMPOSE_BOLT:-}" = 1 ]; then
    : "${PYTHON_PGO_TASK:=-m test --pgo --timeout=\$(TESTTIMEOUT)}"
    PYTHON_PGO_TASK="$PYTHON_PGO_TASK || true"
fi
"#;

/// Run before [`CPYTHON_SCRIPT`] when the profile has BOLT somewhere. llvm-bolt looks for its
/// instrumentation runtime relative to the path it was started by, and the distribution's
/// `llvm-bolt` is a symlink into LLVM's own tree: configure gets the real paths.
pub(crate) const CPYTHON_BOLT_PROLOGUE: &str = r#"if [ "${COMPOSE_BOLT:-}" = 1 ]; then
    LLVM_BOLT=$(readlink -f "$(command -v llvm-bolt)")
    MERGE_FDATA=$(readlink -f "$(command -v merge-fdata)")
    export LLVM_BOLT MERGE_FDATA
    PYTHON_CONFIGURE="$PYTHON_CONFIGURE --enable-bolt"
fi
"#;

/// The CPython a cross-compiled one runs its build scripts with: the same source, built for the
/// build platform with nothing but what those scripts need.
pub(crate) const BUILD_PYTHON_SCRIPT: &str = r#"mkdir src
tar -xf /sources/python -C src --strip-components=1
cd src
./configure --prefix="$PREFIX" --with-ensurepip=no --disable-test-modules
make -j"$JOBS"
make install DESTDIR="$DESTDIR"
"#;

/// Where the build platform's CPython lives in the root of the CPython build that uses it.
pub(crate) const BUILD_PYTHON_PREFIX: &str = "/opt/compose/build-python";

/// A minimal PEP 517 front end, in three parts (see [`crate::sdist_settings::sdist_script`]):
/// the locked build requirements (the sdists' `[build-system] requires`, as wheels) unpacked
/// into a site directory and the sdist unpacked ([`SDIST_UNPACK`]); the sdist's own backend
/// (setuptools' legacy one when it names none), imported from there or from the sdist's
/// `backend-path` ([`SDIST_BACKEND`]); and the backend asked for a wheel ([`SDIST_BUILD`]). No
/// build isolation to set up and no network: everything the build imports is locked.
pub(crate) const SDIST_UNPACK: &str = r#"mkdir src build-env
export BUILD_ENV="$PWD/build-env"
# A wheel is a zip laid out to be importable as it is: unpacking installs it well enough to
# build with (no scripts, no bytecode).
if [ -d /sources/build-wheels ]; then
    for wheel in /sources/build-wheels/*.whl; do
        "$PYTHON" -m zipfile -e "$wheel" "$BUILD_ENV"
    done
fi
export PYTHONPATH="$BUILD_ENV"
tar -xf /sources/sdist -C src --strip-components=1
cd src
"#;

/// The backend, imported as the sdist's pyproject.toml names it; ends inside the Python
/// program, which [`SDIST_BUILD`] or [`SDIST_BUILD_WITH_SETTINGS`] closes.
pub(crate) const SDIST_BACKEND: &str = r#""$PYTHON" - <<'PY'
import importlib, os, site, sys, tomllib
# As a site directory, so that the .pth files of the build requirements run (setuptools').
site.addsitedir(os.environ["BUILD_ENV"])
config = {}
if os.path.exists("pyproject.toml"):
    with open("pyproject.toml", "rb") as f:
        config = tomllib.load(f)
system = config.get("build-system", {})
for path in reversed(system.get("backend-path", [])):
    sys.path.insert(0, os.path.abspath(path))
module, _, attr = system.get("build-backend", "setuptools.build_meta:__legacy__").partition(":")
backend = importlib.import_module(module)
for part in filter(None, attr.split(".")):
    backend = getattr(backend, part)
os.makedirs("/out/dist")
"#;

/// The wheel built without config settings: every sdist without a `[python.packages]` table.
pub(crate) const SDIST_BUILD: &str = r#"print("built", backend.build_wheel("/out/dist"))
PY
"#;

/// The wheel built with the recipe's PEP 517 config settings, which come as JSON in
/// `COMPOSE_CONFIG_SETTINGS` (a variable the recipe cannot set itself).
pub(crate) const SDIST_BUILD_WITH_SETTINGS: &str = r#"import json
settings = json.loads(os.environ["COMPOSE_CONFIG_SETTINGS"])
print("built", backend.build_wheel("/out/dist", config_settings=settings or None))
PY
"#;

#[cfg(test)]
mod tests {
    use super::{CPYTHON_BOLT_PROLOGUE, CPYTHON_BUILTIN_MODULES, CPYTHON_PGO_PROLOGUE};

    /// The training task the prologue leaves for `make`, and whether `make` then gets past a
    /// training run that fails, in a Makefile whose recipe line ends with the task, as
    /// CPython's two training lines do.
    fn train(env: &[(&str, &str)], exit: u8) -> (String, bool) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "TESTTIMEOUT = 1200\ntrain:\n\tsh -c 'exit $(CODE)' $(PROFILE_TASK)\n",
        )
        .unwrap();
        let script = format!(
            "{CPYTHON_PGO_PROLOGUE}printf '%s' \"$PYTHON_PGO_TASK\" > task\nmake -s CODE={exit} \
             ${{PYTHON_PGO_TASK:+\"PROFILE_TASK=$PYTHON_PGO_TASK\"}}"
        );
        let out = std::process::Command::new("sh")
            .args(["-eu", "-c", &script])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let task = std::fs::read_to_string(dir.path().join("task")).unwrap();
        (task, out.status.success())
    }

    #[test]
    fn a_failed_training_run_does_not_fail_a_pgo_or_bolt_build_and_other_builds_are_as_they_were() {
        let (task, built) = train(&[("COMPOSE_PGO", "1"), ("PYTHON_PGO_TASK", "-m test --pgo test_int")], 2);
        assert_eq!((task.as_str(), built), ("-m test --pgo test_int || true", true));
        // No task of the recipe's: CPython's own, its timeout left to make.
        let (task, built) = train(&[("COMPOSE_PGO", "0"), ("COMPOSE_BOLT", "1")], 2);
        assert_eq!((task.as_str(), built), ("-m test --pgo --timeout=$(TESTTIMEOUT) || true", true));
        // Without training the task is not touched, and a failing step still fails.
        let (task, built) = train(&[("COMPOSE_PGO", "0"), ("PYTHON_PGO_TASK", "-m test")], 2);
        assert_eq!((task.as_str(), built), ("-m test", false));
    }

    /// Builds run `sh -eu`, and a platform where the profile has no BOLT has no COMPOSE_BOLT.
    #[test]
    fn the_prologues_run_under_sh_eu_on_a_platform_without_bolt() {
        for prologue in [CPYTHON_PGO_PROLOGUE, CPYTHON_BOLT_PROLOGUE] {
            let out = std::process::Command::new("sh")
                .args(["-eu", "-c", &format!("{prologue}echo ran")])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("COMPOSE_PGO", "0")
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n", "{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// `Modules/Setup.local` from the named modules' lines of a `Setup.stdlib.in` shaped as
    /// CPython's: configure's marker dropped, the flags left to makesetup, a module no line
    /// names an error that says which.
    #[test]
    fn builtin_modules_take_their_lines_from_setup_stdlib_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Modules")).unwrap();
        std::fs::write(
            dir.path().join("Modules/Setup.stdlib.in"),
            "# comment\n@MODULE_BUILDTYPE@\n@MODULE_MATH_TRUE@math mathmodule.c\n\
             @MODULE__PICKLE_TRUE@_pickle _pickle.c\n@MODULE__PICKLEX_TRUE@_picklex x.c\n\
             @MODULE_ZLIB_TRUE@zlib zlibmodule.c\n",
        )
        .unwrap();
        let run = |modules: &str| {
            std::process::Command::new("sh")
                .args(["-eu", "-c", CPYTHON_BUILTIN_MODULES])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("PYTHON_BUILTIN", modules)
                .output()
                .unwrap()
        };
        assert!(run("_pickle math").status.success());
        let local = std::fs::read_to_string(dir.path().join("Modules/Setup.local")).unwrap();
        assert_eq!(local, "*static*\n_pickle _pickle.c\nmath mathmodule.c\n");
        let out = run("math _json");
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("no extension module `_json`"), "{said}");
    }
}
