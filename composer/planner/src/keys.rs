//! Every step's action key, in one place: only content hashes and recipe values, never a path,
//! host, user or clock. A change to what goes into any of them is a change of the cache and is
//! caught by the golden keys of `tests/golden/`.
//!
//! Some keys hold the output of a step below (a build that uses another build's tree; a wheel
//! built from an sdist): [`dynamic_key`] computes them from the outputs known so far, at plan
//! time from the store and during a build as steps finish, with the same code.

use std::sync::OnceLock;

use composer_oci::Compression;
use composer_recipe::{Platform, Recipe};
use composer_store::userfile::Kind;
use composer_store::{ActionKey, Hash};
use composer_wheels::{LockedWheel, Scheme};

use crate::BuildError;
use crate::lockfile::LockedPackage;
use crate::plan::{Output, Step, Work};

/// Bumped when unpacking changes what a tree holds for the same package file.
pub(crate) const UNPACK_VERSION: u32 = 2;
/// Bumped when layer tars, or what a layer step records, change for the same packages (2:
/// entries without a time get the epoch; 3: the record also names each package's listing, which
/// the system layer reads now that layers are written straight from the package files).
pub(crate) const LAYER_VERSION: u32 = 3;
/// Bumped when the system layer's content changes for the same inputs (3: alternatives whose
/// postinst names a plain variable, and a root account where the distribution gives none).
pub(crate) const SYSTEM_VERSION: u32 = 3;
pub(crate) const RESOLVE_VERSION: u32 = 1;
const INSTALL_VERSION: u32 = 2;
/// 3: files carry the recipe's epoch, not 1970.
const WHEEL_LAYER_VERSION: u32 = 3;
/// 2: files carry the recipe's epoch, not 1970.
const ENV_VERSION: u32 = 2;
/// Bumped when what a build sees changes for the same key inputs (3: every file of its root
/// has mode 0444 or 0555, whatever the umask that wrote the store's objects or the checkout).
const BUILD_VERSION: u32 = 3;
const ROOT_VERSION: u32 = 1;
/// Bumped when what a build's image part holds changes for the same tree (2: the runtime part
/// leaves out the bytecode `make install` compiled, and a C library's part keeps only itself).
const BUILD_LAYER_VERSION: u32 = 2;
/// Bumped when the bytecode step's output changes for the same key inputs (2: keyed by the
/// layers below it, not only the builds' trees).
pub(crate) const BYTECODE_VERSION: u32 = 2;

/// Bumped when what a `verified-lock` record vouches for changes.
/// 2: the record vouches that the set is a resolution of the requests in its key, too.
const VERIFIED_LOCK_VERSION: u32 = 2;
/// Bumped when the library check finds more or less than before: every image is checked again.
const LIBRARY_CHECK_VERSION: u32 = 1;
/// Bumped when what is read from a wheel's ELF files changes.
const WHEEL_LIBRARIES_VERSION: u32 = 1;
/// Bumped when the rules of `system_libraries = "add"` change: every settled platform is judged
/// again.
const SYSTEM_LIBRARIES_VERSION: u32 = 1;
/// Bumped when what a built wheel's record holds changes.
const BUILT_WHEEL_VERSION: u32 = 2;

/// One platform's resolution in one release: what the backend resolved `requests` to.
pub(crate) fn resolve_key(
    release: &[u8; 32],
    arch: &str,
    components: &[String],
    requests: &[String],
    essential: bool,
    runtime_of: &[String],
    preferred: &std::collections::BTreeMap<String, String>,
) -> ActionKey {
    let mut key = ActionKey::new("resolve", RESOLVE_VERSION)
        .with("release", release)
        .with("arch", arch)
        .with("components", components.join(","))
        .with("requests", requests.join("\n"))
        .with("essential", [essential as u8]);
    if !runtime_of.is_empty() {
        key.field("runtime-of", runtime_of.join("\n").as_bytes());
    }
    if !preferred.is_empty() {
        let pins: Vec<String> = preferred.iter().map(|(n, v)| format!("{n}={v}")).collect();
        key.field("preferred", pins.join("\n").as_bytes());
    }
    key
}

/// That one exact package list was checked against a release's signed index and is a
/// resolution of what was wanted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verified_lock_key(
    release: &[u8; 32],
    arch: &str,
    components: &[String],
    packages: &[LockedPackage],
    requests: &[String],
    runtime_of: &[String],
    essential: bool,
) -> ActionKey {
    let list = serde_json::to_vec(packages).expect("locked packages serialize");
    ActionKey::new("verified-lock", VERIFIED_LOCK_VERSION)
        .with("release", release)
        .with("arch", arch)
        .with("components", components.join(","))
        .with("packages", composer_store::Sha256::of(&list).0)
        .with("requests", requests.join("\n"))
        .with("runtime-of", runtime_of.join("\n"))
        .with("essential", [essential as u8])
}

/// The version a source tarball holds (`step`: `python-version` or `musl-version`), by its
/// SHA-256.
pub(crate) fn source_version_key(step: &str, sha256: &str) -> ActionKey {
    ActionKey::new(step, 1).with("source", sha256)
}

/// What a wheel's ELF files need and carry.
pub(crate) fn wheel_libraries_key(sha256: &str) -> ActionKey {
    ActionKey::new("wheel-libraries", WHEEL_LIBRARIES_VERSION).with("sha256", sha256)
}

/// The verdict of `system_libraries = "add"` for one platform: judged against one release's
/// `Contents`, for one set of packages.
pub(crate) fn system_libraries_key(
    release: &str,
    components: &[String],
    architecture: &str,
    needed: &[String],
    added: &[String],
    present: &[&str],
) -> ActionKey {
    let mut key = ActionKey::new("system-libraries", SYSTEM_LIBRARIES_VERSION)
        .with("release", release)
        .with("components", components.join("\n"))
        .with("architecture", architecture)
        .with("needed", needed.join("\n"))
        .with("added", added.join("\n"));
    key.field("packages", present.join("\n").as_bytes());
    key
}

/// That the libraries an image's wheels need are loadable from its layers (`layers`: each
/// layer's diff_id, and whether it is a wheel layer).
pub(crate) fn library_check_key(
    platform: &str,
    loader: &str,
    ld_library_path: &str,
    layers: &[(String, bool)],
) -> ActionKey {
    let mut key = ActionKey::new("library-check", LIBRARY_CHECK_VERSION)
        .with("platform", platform)
        .with("loader", loader)
        .with("ld-library-path", ld_library_path);
    for (diff_id, wheels) in layers {
        key.field(if *wheels { "wheel-layer" } else { "layer" }, diff_id.as_bytes());
    }
    key
}

/// The wheel an sdist build left, by the build's output tree and the musllinux policy it was
/// checked for (`portable`: tag and libc, or empty).
pub(crate) fn built_wheel_key(tree: &Hash, sdist_sha256: &str, portable: &str) -> ActionKey {
    ActionKey::new("built-wheel", BUILT_WHEEL_VERSION)
        .with("tree", tree.0)
        .with("sdist", sdist_sha256)
        .with("portable", portable)
}

/// The bytecode key's fields that no step's output changes.
pub(crate) fn bytecode_key_prefix(
    part: crate::plan::Part,
    platform: &Platform,
    interpreter: &str,
    roots: &[String],
    script: &str,
    epoch: u64,
    compression: Compression,
) -> ActionKey {
    ActionKey::new("python-bytecode", BYTECODE_VERSION)
        .with("part", part.name())
        .with("platform", platform.to_string())
        .with("interpreter", interpreter)
        .with("roots", roots.join("\n"))
        .with("script", script)
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name())
}

/// `distro`: the backend's name, so that two distributions' packages never share a key.
pub(crate) fn unpack_key(distro: &str, package: &LockedPackage) -> ActionKey {
    ActionKey::new("unpack", UNPACK_VERSION)
        .with("distro", distro)
        .with("package", package.identity.key().as_bytes())
        .with("merged-usr", [1u8])
}

pub(crate) fn layer_key(packages: &[&LockedPackage], epoch: u64, compression: Compression) -> ActionKey {
    let mut key = ActionKey::new("layer", LAYER_VERSION)
        .with("unpack-version", UNPACK_VERSION.to_le_bytes())
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name());
    for p in packages {
        // The field's name is as old as the first stores: renaming it would orphan every key.
        key.field("deb", p.identity.key().as_bytes());
    }
    key
}

/// The record of a package file whose signed identity is not its SHA-256 (the store finds any
/// other file by that): fetched and verified by the backend once, then found by this key.
pub(crate) fn package_file_key(distro: &str, package: &LockedPackage) -> ActionKey {
    ActionKey::new("package-file", 1).with("distro", distro).with("identity", package.identity.key())
}

pub(crate) fn system_key(
    recipe: &Recipe,
    platform: &Platform,
    packages: &[LockedPackage],
    epoch: u64,
    compression: Compression,
) -> Result<ActionKey, BuildError> {
    let mut key = ActionKey::new("system-layer", SYSTEM_VERSION)
        .with("unpack-version", UNPACK_VERSION.to_le_bytes())
        .with("platform", platform.to_string())
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name())
        .with("accounts", serde_json::to_vec(&recipe.accounts).expect("serializes"));
    for p in packages {
        key.field("deb", p.identity.key().as_bytes());
    }
    for file in &recipe.files {
        // A file's bytes are keyed by their hash below, not by the path they were read from:
        // two recipes naming one file from different directories (a shared base) share the key.
        let mut keyed = file.clone();
        keyed.source = keyed.source.map(|_| std::path::PathBuf::from("-"));
        key.field("file", &serde_json::to_vec(&keyed).expect("serializes"));
        if let (None, Some(source)) = (&file.content, &file.source) {
            let (_, data) =
                crate::local::read(recipe, source, Kind::LOCAL_FILE).map_err(|source| BuildError::UserFile {
                    what: format!("cannot add `{}` to the image", file.path.get_ref()),
                    source: Box::new(source),
                })?;
            key.field("file-content", &Hash::of(&data).0);
        }
    }
    Ok(key)
}

pub(crate) fn root_key(platform: &Platform, packages: &[LockedPackage]) -> ActionKey {
    let mut key = ActionKey::new("build-root", ROOT_VERSION)
        .with("platform", platform.to_string())
        .with("unpack-version", UNPACK_VERSION.to_le_bytes())
        // A build root holds the system files too (the package database, alternatives).
        .with("system-version", SYSTEM_VERSION.to_le_bytes());
    for p in packages {
        key.field("deb", p.identity.key().as_bytes());
    }
    key
}

/// A build's key: its root, script and environment (without the job count: parallel make does
/// not change what is built), its sources' sha256 and the trees of the builds it uses.
pub(crate) fn build_key(
    name: &str,
    platform: &Platform,
    root: &ActionKey,
    script: &str,
    env: &std::collections::BTreeMap<String, String>,
    sources: &[(String, String)],
    uses: &[(String, Hash)],
) -> ActionKey {
    let mut key = ActionKey::new("build", BUILD_VERSION)
        .with("name", name)
        .with("platform", platform.to_string())
        .with("root", root.hash().0)
        .with("script", script)
        .with("env", serde_json::to_vec(env).expect("serializes"));
    for (mount, sha256) in sources {
        key.field("source", format!("{mount}={sha256}").as_bytes());
    }
    for (used, tree) in uses {
        key.field("uses", format!("{used}={}", tree.to_hex()).as_bytes());
    }
    key
}

pub(crate) fn build_layer_key(tree: &Hash, part: &str, epoch: u64, compression: Compression) -> ActionKey {
    ActionKey::new("build-layer", BUILD_LAYER_VERSION)
        .with("tree", tree.0)
        .with("part", part)
        .with("epoch", epoch.to_le_bytes())
        .with("compression", compression.name())
}

pub(crate) fn install_key(wheel: &LockedWheel, scheme: &Scheme, requested: bool) -> ActionKey {
    ActionKey::new("wheel-install", INSTALL_VERSION)
        .with("sha256", &wheel.sha256)
        .with("purelib", &scheme.purelib)
        .with("scripts", &scheme.scripts)
        .with("headers", &scheme.headers)
        .with("data", &scheme.data)
        .with("interpreter", &scheme.interpreter)
        .with("requested", if requested { "1" } else { "0" })
}

pub(crate) fn wheel_layer_key<'k>(
    installs: impl IntoIterator<Item = &'k ActionKey>,
    epoch: u64,
    compression: Compression,
) -> ActionKey {
    let mut key = ActionKey::new("wheel-layer", WHEEL_LAYER_VERSION)
        .with("epoch", epoch.to_string())
        .with("compression", compression.name());
    for install in installs {
        key.field("install", &install.hash().0);
    }
    key
}

pub(crate) fn env_key(venv: &str, full_version: &str, home: &str, epoch: u64, compression: Compression) -> ActionKey {
    ActionKey::new("python-env", ENV_VERSION)
        .with("venv", venv)
        .with("python", full_version)
        .with("home", home)
        .with("epoch", epoch.to_string())
        .with("compression", compression.name())
}

/// The key of a wheel-file record: which wheels the store holds, for `compose wheels index`.
pub fn wheel_file_key(sha256: &str) -> ActionKey {
    ActionKey::new("wheel-file", 1).with("sha256", sha256)
}

/// What the keys of a session share: the recipe's epoch and compression.
pub(crate) struct KeyInputs {
    pub epoch: u64,
    pub compression: Compression,
}

/// The key of step `i` from the outputs and keys of the steps below it, or `None` while one it
/// needs is not known. Only for steps whose key holds another step's output.
pub(crate) fn dynamic_key(
    steps: &[Step],
    i: usize,
    outputs: &[OnceLock<Output>],
    keys: &[OnceLock<ActionKey>],
    inputs: &KeyInputs,
) -> Option<ActionKey> {
    let tree = |step: usize| match outputs[step].get() {
        Some(Output::Tree(tree)) => Some(*tree),
        _ => None,
    };
    let key = |step: usize| keys[step].get().cloned();
    match &steps[i].work {
        Work::Build { platform, job, env, root, sources, uses } => {
            let uses = uses.iter().map(|(name, s)| Some((name.clone(), tree(*s)?))).collect::<Option<Vec<_>>>()?;
            let sources: Vec<(String, String)> = sources
                .iter()
                .map(|(mount, s)| (mount.clone(), steps[*s].sha256.expect("sources are known by sha256").to_string()))
                .collect();
            Some(build_key(&job.name, platform, &key(*root)?, &job.script, env, &sources, &uses))
        }
        Work::SdistBuild { platform, job, env, root, sources, uses, .. } => {
            let uses = uses.iter().map(|(name, s)| Some((name.clone(), tree(*s)?))).collect::<Option<Vec<_>>>()?;
            let sources: Vec<(String, String)> = sources
                .iter()
                .map(|(mount, s)| (mount.clone(), steps[*s].sha256.expect("wheels are known by sha256").to_string()))
                .collect();
            Some(build_key(&job.name, platform, &key(*root)?, &job.script, env, &sources, &uses))
        }
        Work::BuildLayer { build, part } => {
            Some(build_layer_key(&tree(*build)?, &format!("{part:?}"), inputs.epoch, inputs.compression))
        }
        Work::InstallWheel { wheel, source, scheme, requested } => {
            let built;
            let wheel = match wheel {
                Some(wheel) => wheel,
                None => match outputs[*source].get() {
                    Some(Output::Wheel(w)) => {
                        built = w.clone();
                        &built
                    }
                    _ => return None,
                },
            };
            Some(install_key(wheel, scheme, *requested))
        }
        Work::WheelLayer { installs } => {
            let keys = installs.iter().map(|&s| key(s)).collect::<Option<Vec<_>>>()?;
            Some(wheel_layer_key(&keys, inputs.epoch, inputs.compression))
        }
        Work::Bytecode { prefix, debs, system, builds, wheels, below, .. } => {
            let mut out = prefix.clone();
            out.field("system", &key(*system)?.hash().0);
            // What the image below holds, as each layer's key says it (a build's tree alone
            // does not: which part of it reaches the image is the build layer's business).
            for &layer in below {
                out.field("below", &key(layer)?.hash().0);
            }
            for deb in debs {
                out.field("deb", deb.as_bytes());
            }
            for (name, s) in builds {
                out.field("built", format!("{name}={}", tree(*s)?.to_hex()).as_bytes());
            }
            if let Some(wheels) = wheels {
                for &layer in &wheels.layers {
                    out.field("wheel-layer", &key(layer)?.hash().0);
                }
                if let Some(env) = wheels.env {
                    out.field("env", &key(env)?.hash().0);
                }
            }
            Some(out)
        }
        _ => None,
    }
}
