//! What the build steps are: the allocator, the recipe's `[[builds]]`, CPython and wheels from
//! sdists, each a script run in the sandbox on a build root made of distro packages, per
//! platform. [`crate::builds`] runs them.
//!
//! A step's key holds the build root's packages, the sources' sha256, the script, the flags,
//! the platform and the outputs of the builds it uses: nothing of the machine (the job count is
//! not in it; parallel make does not change what is built). A rebuild is a cache hit; a changed
//! flag rebuilds that step and the steps that use it.

use std::collections::BTreeMap;
use std::io::Read;

use composer_recipe::{
    AllocatorMode, AllocatorName, AllocatorSource, BUILD_PYTHON, BuildImage, JEMALLOC_BUILD, MUSL_BUILD, PYTHON_BUILD,
    Platform, Recipe,
};
use composer_store::BlobInfo;

use crate::toolchain::Flags;
use crate::{BuildError, Session, SourceProblem, sandbox};

use crate::scripts::{
    BUILD_PYTHON_PREFIX, BUILD_PYTHON_SCRIPT, CPYTHON_BOLT_PROLOGUE, CPYTHON_BUILTIN_MODULES, CPYTHON_PGO_PROLOGUE,
    CPYTHON_SCRIPT, CPYTHON_UNPACK, JEMALLOC_SCRIPT, MUSL_SCRIPT,
};

/// Which part of a build's output goes into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImagePart {
    None,
    All,
    /// Without static archives, headers and pkg-config files (and CPython's own test suite)
    /// under the prefix: what running needs, as a distro's runtime package holds it.
    Runtime(&'static str),
    /// Only the files and links whose paths start with one of these (and their directories).
    Only(&'static [&'static str]),
}

/// Of the C library's build, the image gets the library (which is also the loader) and the
/// loader's name: the wrapper, headers and start files are for building.
const MUSL_RUNTIME: &[&str] = &["usr/local/musl/lib/libc.so", "usr/lib/ld-musl-", "usr/lib/libc.musl-"];

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub name: String,
    pub script: String,
    /// (mount name under /sources, source name)
    pub sources: Vec<(String, String)>,
    pub uses: Vec<String>,
    pub profile: Option<String>,
    pub env: BTreeMap<String, String>,
    pub image: ImagePart,
    /// Compiles against the recipe's musl (`libc = "musl"`) rather than the build root's libc.
    pub musl: bool,
    /// Runs on the cross build root of this platform (`[cross] build`), natively there, with
    /// cross compilers for the target; `None`: on the target's own root (under qemu-user when
    /// the target is foreign to the machine).
    pub cross: Option<Platform>,
    /// Compiles for the platform it runs on (a tool other builds run), not for the target.
    pub for_build: bool,
}

pub(crate) fn jobs(session: &Session<'_>, platform: &Platform) -> Vec<Job> {
    let recipe = session.recipe;
    let allocator = &recipe.allocator;
    let jemalloc_built = allocator.name == AllocatorName::Jemalloc && allocator.source == AllocatorSource::Build;
    let linked = allocator.name == AllocatorName::Jemalloc && allocator.mode == AllocatorMode::Link;
    let musl = recipe.base.musl();
    let cross = recipe.cross_build_for(platform).cloned();
    let mut out = Vec::new();
    if musl {
        out.push(Job {
            name: MUSL_BUILD.into(),
            script: MUSL_SCRIPT.into(),
            sources: vec![(MUSL_BUILD.into(), MUSL_BUILD.into())],
            uses: vec![],
            profile: None,
            env: BTreeMap::from([
                ("GNU_TRIPLET".to_string(), session.backend.triplet(platform)),
                ("MUSL_TRIPLET".to_string(), platform.musl_triplet()),
                ("MUSL_SONAME".to_string(), platform.musl_soname().expect("musl platforms are validated")),
            ]),
            image: ImagePart::Only(MUSL_RUNTIME),
            musl: false,
            cross: cross.clone(),
            for_build: false,
        });
    }
    // Every other build of a musl image has the C library laid into its root.
    let with_musl = |mut uses: Vec<String>| {
        if musl && !uses.iter().any(|u| u == MUSL_BUILD) {
            uses.insert(0, MUSL_BUILD.into());
        }
        uses
    };
    if jemalloc_built {
        let mut env = BTreeMap::new();
        if let Some(lg) = allocator.lg_page.as_ref().and_then(|l| l.for_platform(platform)) {
            env.insert("LG_PAGE".into(), lg.to_string());
        }
        if let Some(bits) = jemalloc_vaddr_bits(platform) {
            env.insert("LG_VADDR".into(), bits.to_string());
        }
        // Preloaded, or linked into CPython, it is loaded as a shared library; builds that
        // `use` it link whichever they choose, and the static archive is always there.
        let shared =
            allocator.mode == AllocatorMode::Preload || recipe.python.as_ref().is_some_and(|p| p.build.is_some());
        env.insert("JEMALLOC_SHARED".into(), if shared { "1" } else { "0" }.into());
        out.push(Job {
            name: JEMALLOC_BUILD.into(),
            script: JEMALLOC_SCRIPT.into(),
            sources: vec![(JEMALLOC_BUILD.into(), JEMALLOC_BUILD.into())],
            uses: with_musl(vec![]),
            profile: allocator.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::Runtime("usr/local"),
            musl,
            cross: cross.clone(),
            for_build: false,
        });
    }
    // What a build that links the allocator adds to its flags.
    let malloc_env = |env: &mut BTreeMap<String, String>| {
        if !linked {
            return;
        }
        env.insert("MALLOC_LIBS".into(), "-ljemalloc".into());
        if jemalloc_built {
            env.insert("MALLOC_LDFLAGS".into(), "-L/usr/local/lib -Wl,-rpath,/usr/local/lib".into());
        }
        if allocator.no_builtin {
            env.insert(
                "MALLOC_CFLAGS".into(),
                "-fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free".into(),
            );
        }
    };
    for build in &recipe.builds {
        let mut env = BTreeMap::new();
        if build.uses.iter().any(|u| u.get_ref() == JEMALLOC_BUILD) {
            malloc_env(&mut env);
        }
        out.push(Job {
            name: build.name.get_ref().clone(),
            script: build.script.clone(),
            sources: build.sources.iter().map(|s| (s.get_ref().clone(), s.get_ref().clone())).collect(),
            uses: with_musl(build.uses.iter().map(|u| u.get_ref().clone()).collect()),
            profile: build.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: match build.image {
                BuildImage::All => ImagePart::All,
                BuildImage::Runtime => ImagePart::Runtime("usr/local"),
                BuildImage::None => ImagePart::None,
            },
            musl,
            cross: cross.clone().filter(|_| build.cross),
            for_build: false,
        });
    }
    if let Some(interpreter) = recipe.python.as_ref().and_then(|p| p.build.as_ref()) {
        let mut env = BTreeMap::from([
            ("PREFIX".to_string(), interpreter.prefix.clone()),
            ("PYTHON_SHARED".to_string(), if interpreter.shared { "1" } else { "0" }.to_string()),
            ("PYTHON_CONFIGURE".to_string(), interpreter.configure.join(" ")),
        ]);
        if let Some(task) = &interpreter.pgo_task {
            env.insert("PYTHON_PGO_TASK".into(), task.get_ref().clone());
        }
        if !interpreter.builtin.is_empty() {
            let names: Vec<&str> = interpreter.builtin.iter().map(|m| m.get_ref().as_str()).collect();
            env.insert("PYTHON_BUILTIN".into(), names.join(" "));
        }
        // Cross-compiled only on musl, where every library it links is one of the recipe's
        // builds: on glibc it links the distribution's -dev packages of its own architecture,
        // which a cross root of the build platform does not have.
        let python_cross = cross.clone().filter(|_| musl);
        let mut uses = Vec::new();
        if let Some(build) = &python_cross {
            out.push(Job {
                name: BUILD_PYTHON.into(),
                script: BUILD_PYTHON_SCRIPT.into(),
                sources: vec![("python".into(), interpreter.source.get_ref().clone())],
                uses: vec![],
                profile: None,
                env: BTreeMap::from([("PREFIX".to_string(), BUILD_PYTHON_PREFIX.to_string())]),
                image: ImagePart::None,
                musl: false,
                cross: Some(build.clone()),
                for_build: true,
            });
            uses.push(BUILD_PYTHON.to_string());
            env.insert("BUILD_PYTHON".into(), format!("{BUILD_PYTHON_PREFIX}/bin/python3"));
        }
        malloc_env(&mut env);
        if musl {
            // musl gives a new thread 128 KiB of stack, too little for CPython's recursion
            // limit; Alpine and Home Assistant build it with 1 MiB.
            env.insert("PYTHON_CFLAGS".into(), "-DTHREAD_STACK_SIZE=0x100000".into());
        }
        if linked && jemalloc_built {
            uses.push(JEMALLOC_BUILD.to_string());
        }
        uses.extend(interpreter.uses.iter().map(|u| u.get_ref().clone()).filter(|u| u != JEMALLOC_BUILD));
        out.push(Job {
            name: PYTHON_BUILD.into(),
            script: cpython_script(recipe),
            sources: vec![("python".into(), interpreter.source.get_ref().clone())],
            uses: with_musl(uses),
            profile: interpreter.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::Runtime(leak_prefix(&interpreter.prefix)),
            musl,
            cross: python_cross,
            for_build: false,
        });
    }
    out
}

/// The virtual address bits jemalloc is built for, where its configure would otherwise ask the
/// build machine: on x86_64 it runs `cpuid`, which says 57 on a CPU with 5-level paging and 48
/// on others, so the same step built different bytes on different machines. Linux gives a
/// program addresses above 47 bits only when it asks for them (an `mmap` hint), so 48 holds on
/// every x86_64 machine. Elsewhere configure decides from the target alone.
fn jemalloc_vaddr_bits(platform: &Platform) -> Option<u8> {
    (platform.architecture == "amd64").then_some(48)
}

/// Prefixes are few and live as long as the run; a `'static` one keeps [`ImagePart`] `Copy`.
fn leak_prefix(prefix: &str) -> &'static str {
    Box::leak(prefix.trim_matches('/').to_string().into_boxed_str())
}

/// The environment a job's script sees, without the job count (which is not part of its key).
pub(crate) fn job_env(session: &Session<'_>, job: &Job, platform: &Platform) -> BTreeMap<String, String> {
    let profile = session.recipe.toolchain.profile(job.profile.as_deref()).expect("validated: profiles exist");
    // The platform the job runs on, and the one what it compiles is for.
    let build = job.cross.as_ref().unwrap_or(platform);
    let host = if job.for_build { build } else { platform };
    let mut env = sandbox::base_env(session.epoch(), 0);
    env.remove("JOBS");
    env.extend(Flags::new(profile, host).env());
    env.insert("COMPOSE_PLATFORM".into(), host.to_string());
    let (build_triplet, host_triplet) = (session.backend.triplet(build), session.backend.triplet(host));
    env.insert("COMPOSE_TRIPLET".into(), host_triplet.clone());
    for key in ["MALLOC_LIBS", "MALLOC_CFLAGS", "MALLOC_LDFLAGS"] {
        env.insert(key.into(), String::new());
    }
    tools_env(&mut env, &build_triplet, &host_triplet);
    env.extend(job.env.clone());
    // The training task matters only where the profile trains: a platform without PGO keeps the
    // key it has whatever the recipe's task says.
    if env.get("COMPOSE_PGO").map(String::as_str) != Some("1") {
        env.remove("PYTHON_PGO_TASK");
    }
    if job.musl {
        musl_env(&mut env, build != host, host);
    }
    env
}

/// CPython's build script, with what PGO's training and BOLT need first when its profile has
/// them somewhere: as prefixes, so that every build without them keeps the script its key was
/// made from.
fn cpython_script(recipe: &Recipe) -> String {
    let mut script = String::new();
    if recipe.interpreter_trains() || recipe.interpreter_bolts() {
        script.push_str(CPYTHON_PGO_PROLOGUE);
    }
    if recipe.interpreter_bolts() {
        script.push_str(CPYTHON_BOLT_PROLOGUE);
    }
    script.push_str(CPYTHON_UNPACK);
    // Only when modules are named, so that no other interpreter's key changes.
    if recipe.python.as_ref().and_then(|p| p.build.as_ref()).is_some_and(|b| !b.builtin.is_empty()) {
        script.push_str(CPYTHON_BUILTIN_MODULES);
    }
    script + CPYTHON_SCRIPT
}

/// The build and host triplets (`CBUILD`, `CHOST`, as Alpine's builders name them, for
/// configure's `--build` and `--host`), as the distribution's toolchain names them, and the
/// tools for the host: the distribution's cross toolchain for `host` (`aarch64-linux-gnu-gcc`...)
/// when it is not the platform the job runs on.
fn tools_env(env: &mut BTreeMap<String, String>, build: &str, host: &str) {
    let prefix = if build == host { String::new() } else { format!("{host}-") };
    env.insert("CBUILD".into(), build.into());
    env.insert("CHOST".into(), host.into());
    for (var, tool) in [("AR", "ar"), ("RANLIB", "ranlib"), ("STRIP", "strip"), ("NM", "nm")] {
        env.insert(var.into(), format!("{prefix}{tool}"));
    }
    if !prefix.is_empty() {
        env.insert("CC".into(), format!("{prefix}gcc"));
        env.insert("CXX".into(), format!("{prefix}g++"));
        // The build root's .pc files describe libraries of the build platform.
        env.insert("PKG_CONFIG_LIBDIR".into(), "/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig".into());
    }
    env.insert("CROSS_PREFIX".into(), prefix);
}

/// What a build compiling against the recipe's musl sees instead of the build root's C
/// library: the wrapper as its compiler, the builds it uses as its only headers and libraries
/// beside musl's (pkg-config searches nothing of the build root's), and the musl triplet.
fn musl_env(env: &mut BTreeMap<String, String>, cross: bool, platform: &Platform) {
    env.insert("CC".into(), "/usr/local/musl/bin/musl-gcc".into());
    env.insert("CPPFLAGS".into(), "-I/usr/local/include".into());
    let ldflags = env.get("LDFLAGS").map_or(String::new(), |l| format!("{l} "));
    env.insert("LDFLAGS".into(), format!("{ldflags}-L/usr/local/lib"));
    env.insert("PKG_CONFIG_LIBDIR".into(), "/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig".into());
    env.insert("COMPOSE_LIBC".into(), "musl".into());
    env.insert("COMPOSE_TRIPLET".into(), platform.musl_triplet());
    env.insert("CHOST".into(), platform.musl_triplet());
    // Natively, the wrapper makes the machine a musl one: configure is not cross-compiling.
    if !cross {
        env.insert("CBUILD".into(), platform.musl_triplet());
    }
}

impl Session<'_> {
    /// Whether a platform's sdists build on its cross root: on a musl image, where the target's
    /// interpreter runs its build backend under qemu-user and the extension modules compile
    /// natively with the cross compiler its `musl-gcc` calls.
    pub(crate) fn sdists_cross(&self, platform: &Platform) -> bool {
        self.recipe.base.musl() && self.recipe.cross_build_for(platform).is_some()
    }

    /// The sandbox job that turns one locked sdist into a wheel with the target interpreter, with
    /// the recipe's patches and config settings for it (its environment is [`job_env`]'s, then
    /// [`crate::sdist_settings::add_env`]'s).
    pub(crate) fn sdist_job(
        &self,
        python: &composer_recipe::Python,
        sdist: &composer_wheels::LockedWheel,
        platform: &Platform,
        settings: Option<&crate::sdist_settings::PackageSettings>,
    ) -> Job {
        let interpreter = self.interpreter_prefix();
        let musl = self.recipe.base.musl();
        let mut env = BTreeMap::new();
        let mut uses = Vec::new();
        match interpreter {
            Some(prefix) => {
                env.insert("PYTHON".to_string(), format!("{prefix}/bin/python3"));
                // On musl the interpreter runs only with the C library and the libraries it
                // links laid in beside it; the extension modules compile against them too.
                if musl {
                    uses.push(MUSL_BUILD.to_string());
                    let allocator = &self.recipe.allocator;
                    if allocator.name == AllocatorName::Jemalloc
                        && allocator.source == AllocatorSource::Build
                        && allocator.mode == AllocatorMode::Link
                    {
                        uses.push(JEMALLOC_BUILD.to_string());
                    }
                    let built = self.recipe.python.as_ref().and_then(|p| p.build.as_ref());
                    for used in built.iter().flat_map(|b| &b.uses).map(|u| u.get_ref()) {
                        if !uses.contains(used) {
                            uses.push(used.clone());
                        }
                    }
                }
                uses.push(PYTHON_BUILD.to_string());
            }
            None => {
                env.insert("PYTHON".to_string(), "/usr/bin/python3".to_string());
            }
        }
        Job {
            name: format!("sdist-{}", sdist.name),
            script: crate::sdist_settings::sdist_script(settings, &format!("{} {}", sdist.name, sdist.version)),
            sources: vec![("sdist".into(), "sdist".into())],
            uses,
            profile: python.profile.as_ref().map(|p| p.get_ref().clone()),
            env,
            image: ImagePart::None,
            musl,
            cross: if self.sdists_cross(platform) { self.recipe.cross_build_for(platform).cloned() } else { None },
            for_build: false,
        }
    }
}

/// Every variable [`tools_env`] and [`musl_env`] may set, cross and native, for tests that check
/// them against what a recipe may set.
#[cfg(test)]
pub(crate) fn tests_env(env: &mut BTreeMap<String, String>) {
    let (amd64, arm64): (Platform, Platform) = ("linux/amd64".parse().unwrap(), "linux/arm64".parse().unwrap());
    tools_env(env, "x86_64-linux-gnu", "aarch64-linux-gnu");
    musl_env(env, true, &arm64);
    musl_env(env, false, &amd64);
}

/// Whose version [`source_version`] reads, and from which file of the tarball.
#[derive(Debug, Clone, Copy)]
pub(crate) enum VersionOf {
    /// `Include/patchlevel.h`'s `PY_VERSION`.
    Cpython,
    /// musl's `VERSION`.
    Musl,
}

impl VersionOf {
    /// The action the version is recorded under, by the source's sha256.
    pub(crate) fn step(self) -> &'static str {
        match self {
            VersionOf::Cpython => "python-version",
            VersionOf::Musl => "musl-version",
        }
    }

    fn file(self) -> &'static str {
        match self {
            VersionOf::Cpython => "Include/patchlevel.h",
            VersionOf::Musl => "VERSION",
        }
    }

    fn read(self, text: &str) -> Option<String> {
        match self {
            VersionOf::Cpython => text.lines().find_map(|l| {
                l.strip_prefix("#define PY_VERSION")?.trim().strip_prefix('"')?.split('"').next().map(str::to_string)
            }),
            VersionOf::Musl => Some(text.trim().to_string()).filter(|v| v.starts_with(|c: char| c.is_ascii_digit())),
        }
    }
}

/// The version a source tarball holds (CPython's, musl's), read from one file without
/// unpacking the rest: the wheel set's target is known before anything is built.
pub fn source_version(store: &composer_store::Store, blob: &BlobInfo, of: VersionOf) -> Result<String, BuildError> {
    let name = match of {
        VersionOf::Cpython => "python",
        VersionOf::Musl => MUSL_BUILD,
    };
    let bad = |reason| BuildError::Source { name: name.into(), reason: Box::new(reason) };
    let unreadable = |e| bad(SourceProblem::Unreadable(e));
    // Only part of the tarball is read below; its version is recorded, so check it whole first.
    store.verify_object(&blob.id)?;
    let mut file = store.open_object(&blob.id)?;
    let mut magic = [0u8; 6];
    file.read_exact(&mut magic).map_err(unreadable)?;
    let file = store.open_object(&blob.id)?;
    let reader: Box<dyn Read> = match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(file)),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Box::new(liblzma::read::XzDecoder::new(file)),
        _ => return Err(bad(SourceProblem::NotATarball)),
    };
    let wanted = of.file();
    // The file sits below the tarball's one top directory (`Python-3.13.5/Include/patchlevel.h`).
    let depth = wanted.matches('/').count() + 1;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.to_string_lossy().into_owned();
        if path.ends_with(&format!("/{wanted}")) && path.matches('/').count() == depth {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(unreadable)?;
            return of.read(&text).ok_or_else(|| bad(SourceProblem::NoVersion(wanted.to_string())));
        }
    }
    Err(bad(SourceProblem::NotTheSource { file: wanted.to_string(), name: name.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(build: &str, host: &str, musl: bool) -> BTreeMap<String, String> {
        let (build, host): (Platform, Platform) = (build.parse().unwrap(), host.parse().unwrap());
        let mut env = Flags::new(&composer_recipe::Profile::default(), &host).env();
        // The triplets a Debian backend gives (the planner's tests know no backend).
        let triplet = |p: &Platform| match p.architecture.as_str() {
            "amd64" => "x86_64-linux-gnu",
            "arm64" => "aarch64-linux-gnu",
            "arm" => "arm-linux-gnueabihf",
            other => panic!("no test triplet for {other}"),
        };
        tools_env(&mut env, triplet(&build), triplet(&host));
        if musl {
            musl_env(&mut env, build != host, &host);
        }
        env
    }

    #[test]
    fn only_a_cpython_build_whose_profile_trains_or_bolts_gets_those_prologues() {
        let head = "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
                    [base]\nsuite = \"trixie\"\nmirror = \"debian\"\n\
                    [[sources]]\nname = \"cpython\"\nurl = \"mirror://debian/p.tar.xz\"\n";
        let script_with = |profile: &str, build: &str| {
            let text = format!(
                "{head}sha256 = \"{}\"\n{profile}[python.build]\nsource = \"cpython\"\nprofile = \"p\"\n{build}",
                "a".repeat(64)
            );
            let recipe = Recipe::parse_str("r.toml".as_ref(), &text).unwrap();
            cpython_script(&recipe)
        };
        let script = |profile: &str| script_with(profile, "");
        let body = format!("{CPYTHON_UNPACK}{CPYTHON_SCRIPT}");
        assert_eq!(script("[toolchain.profiles.p]\nopt = \"O3\"\n"), body, "keys without PGO and BOLT stay");
        let linked_in = script_with("[toolchain.profiles.p]\nopt = \"O3\"\n", "builtin = [\"_pickle\"]\n");
        assert_eq!(linked_in, format!("{CPYTHON_UNPACK}{CPYTHON_BUILTIN_MODULES}{CPYTHON_SCRIPT}"));
        for pgo in
            ["[toolchain.profiles.p]\npgo = true\n", "[toolchain.profiles.p.platforms.\"linux/arm64\"]\npgo = true\n"]
        {
            assert_eq!(script(pgo), format!("{CPYTHON_PGO_PROLOGUE}{body}"), "{pgo}");
        }
        for bolt in
            ["[toolchain.profiles.p]\nbolt = true\n", "[toolchain.profiles.p.platforms.\"linux/arm64\"]\nbolt = true\n"]
        {
            let with = script(bolt);
            assert_eq!(with, format!("{CPYTHON_PGO_PROLOGUE}{CPYTHON_BOLT_PROLOGUE}{body}"), "{bolt}");
        }
    }

    #[test]
    fn jemalloc_on_x86_64_is_built_for_48_bit_addresses_whatever_cpu_builds_it() {
        let bits = |p: &str| jemalloc_vaddr_bits(&p.parse().unwrap());
        assert_eq!(bits("linux/amd64"), Some(48));
        // configure decides these from the target (48 on aarch64, the pointer size elsewhere).
        assert_eq!((bits("linux/arm64"), bits("linux/arm/v7"), bits("linux/386")), (None, None, None));
    }

    #[test]
    fn a_native_build_is_told_one_machine_and_the_usual_tools() {
        let env = env_of("linux/amd64", "linux/amd64", false);
        assert_eq!((env["CBUILD"].as_str(), env["CHOST"].as_str()), ("x86_64-linux-gnu", "x86_64-linux-gnu"));
        assert_eq!((env["CC"].as_str(), env["AR"].as_str(), env["CROSS_PREFIX"].as_str()), ("gcc", "ar", ""));
        assert!(!env.contains_key("PKG_CONFIG_LIBDIR"));
        // On musl the wrapper makes the machine a musl one: configure must not think it cross-compiles.
        let env = env_of("linux/amd64", "linux/amd64", true);
        assert_eq!((env["CBUILD"].as_str(), env["CHOST"].as_str()), ("x86_64-linux-musl", "x86_64-linux-musl"));
        assert_eq!(env["CC"], "/usr/local/musl/bin/musl-gcc");
    }

    #[test]
    fn a_cross_build_gets_the_targets_tools_and_only_the_builds_pkg_config_files() {
        let env = env_of("linux/amd64", "linux/arm64", false);
        assert_eq!((env["CBUILD"].as_str(), env["CHOST"].as_str()), ("x86_64-linux-gnu", "aarch64-linux-gnu"));
        for (var, tool) in [("CC", "gcc"), ("CXX", "g++"), ("AR", "ar"), ("RANLIB", "ranlib"), ("STRIP", "strip")] {
            assert_eq!(env[var], format!("aarch64-linux-gnu-{tool}"), "{var}");
        }
        assert_eq!(env["CROSS_PREFIX"], "aarch64-linux-gnu-");
        assert_eq!(env["PKG_CONFIG_LIBDIR"], "/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig");
        // musl's wrapper calls the cross compiler itself; the host is the musl triplet.
        let env = env_of("linux/amd64", "linux/arm/v7", true);
        assert_eq!((env["CBUILD"].as_str(), env["CHOST"].as_str()), ("x86_64-linux-gnu", "arm-linux-musleabihf"));
        assert_eq!(
            (env["CC"].as_str(), env["STRIP"].as_str()),
            ("/usr/local/musl/bin/musl-gcc", "arm-linux-gnueabihf-strip")
        );
    }
}
