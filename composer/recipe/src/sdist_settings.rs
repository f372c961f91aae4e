//! `[python.packages.NAME]`: how one package's sdist is built, as uv's
//! `config-settings-package` and `extra-build-dependencies` have it: environment variables,
//! PEP 517 config settings, extra build requirements (locked like the declared ones), extra
//! distro packages for the build root, patches, and per platform the environment and settings
//! that differ. Checked here as far as the recipe's text goes; whether the lock builds the
//! package from an sdist, and the patches' files, are the planner's to check.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::{Platform, Recipe, RecipeError};

type Invalid<'a> = &'a dyn Fn(Range<usize>, String, &str) -> RecipeError;

/// The compiler-flag variables a package's `env` adds to (after the toolchain profile's flags),
/// rather than sets: a warning switched off must not take `-O3` with it.
pub const APPENDED_FLAGS: &[&str] = &["CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS"];

/// Variables a package's `env` may not set: the sandbox's own (where programs, the home and
/// scratch directories are, the epoch that makes the build reproducible, where its output goes),
/// the build's tools and target (set per platform by composer), what the dynamic loader, the
/// shell, the interpreter or qemu-user read to run something else than what the root holds.
const REFUSED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "TZ",
    "LANG",
    "SHELL",
    "SOURCE_DATE_EPOCH",
    "DESTDIR",
    "PREFIX",
    "JOBS",
    "TAR_OPTIONS",
    "BUILD_ENV",
    "CC",
    "CXX",
    "AR",
    "RANLIB",
    "STRIP",
    "NM",
    "CBUILD",
    "CHOST",
    "CROSS_PREFIX",
    "GNU_TRIPLET",
    "MUSL_TRIPLET",
    "MUSL_SONAME",
    "REALGCC",
    "GLIBC_TUNABLES",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "CDPATH",
    // The linker by its bare name (the `LD_` prefix does not catch it), gcc's own search paths
    // for its programs and libraries, and what glibc ignores in setuid programs because it
    // makes a program load or read something else (`GCONV_PATH`, `LOCPATH`, `NLSPATH`...).
    "LD",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LIBRARY_PATH",
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
];

/// Prefixes of refused variables: the loader's (`LD_PRELOAD`, `LD_LIBRARY_PATH`...), the
/// interpreter's (`PYTHONPATH`, `PYTHONHOME`, composer's `PYTHON`, and CPython's cross-build
/// `_PYTHON_HOST_PLATFORM`, which renames the wheel's platform), the locale's, pkg-config's
/// search paths, qemu-user's, the allocator's and composer's own.
const REFUSED_PREFIXES: &[&str] = &["LD_", "PYTHON", "_PYTHON", "LC_", "PKG_CONFIG", "QEMU_", "MALLOC_", "COMPOSE_"];

/// Bounds on what a package's settings may hold: generous for real builds, small enough that a
/// recipe cannot make a step's environment (passed on bubblewrap's command line) fail to start.
const MAX_NAME: usize = 128;
const MAX_VALUE: usize = 4096;
const MAX_ENTRIES: usize = 64;
const MAX_PATCHES: usize = 32;
/// The config settings of a package and a platform together, as the JSON the step's
/// environment carries: one argument on bubblewrap's command line, which `execve` bounds.
const MAX_SETTINGS_JSON: usize = 32 << 10;

/// `[python.packages.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageBuild {
    /// Environment of the sdist's build. `CFLAGS`, `CXXFLAGS`, `CPPFLAGS` and `LDFLAGS` are added
    /// after the toolchain profile's flags; other variables are set.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    /// PEP 517 config settings, handed to the backend's `build_wheel` (as `-C key=value` would
    /// with pip or uv): a string, or a list of strings for a key given more than once.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ConfigValue>")]
    pub config_settings: BTreeMap<Spanned<String>, Spanned<ConfigValue>>,
    /// PEP 508 requirements the build needs beside its `[build-system] requires`, locked with
    /// them (as wheels) into the Python lock.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub build_requires: Vec<Spanned<String>>,
    /// Distro packages the build needs beside `[python] build_depends`; they join the build root.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub build_depends: Vec<Spanned<String>>,
    /// Patch files (relative to the recipe), applied in order with `patch -p1` to the unpacked
    /// sdist before it is built.
    #[serde(default)]
    #[schemars(with = "Vec<PathBuf>")]
    pub patches: Vec<Spanned<PathBuf>>,
    /// Per platform (`"linux/arm64"`): environment and config settings that replace or add to
    /// the package's own.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, PlatformBuild>")]
    pub platforms: BTreeMap<Spanned<String>, PlatformBuild>,
}

/// `[python.packages.NAME.platforms."linux/arm64"]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformBuild {
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ConfigValue>")]
    pub config_settings: BTreeMap<Spanned<String>, Spanned<ConfigValue>>,
}

/// A PEP 517 config setting's value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    One(String),
    Many(Vec<String>),
}

/// One package's settings as they apply on one platform, the platform's table merged over the
/// package's: what the planner turns into the sdist step (and its key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SdistSettings {
    pub env: BTreeMap<String, String>,
    pub config_settings: BTreeMap<String, ConfigValue>,
    pub build_requires: Vec<String>,
    pub patches: Vec<PathBuf>,
}

impl PackageBuild {
    /// The settings on `platform`: the platform's `env` and `config_settings` replace the
    /// package's of the same name and add the rest.
    pub fn on(&self, platform: &Platform) -> SdistSettings {
        let plain = |m: &BTreeMap<Spanned<String>, Spanned<String>>| -> BTreeMap<String, String> {
            m.iter().map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone())).collect()
        };
        let settings = |m: &BTreeMap<Spanned<String>, Spanned<ConfigValue>>| -> BTreeMap<String, ConfigValue> {
            m.iter().map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone())).collect()
        };
        let mut out = SdistSettings {
            env: plain(&self.env),
            config_settings: settings(&self.config_settings),
            build_requires: self.build_requires.iter().map(|r| r.get_ref().clone()).collect(),
            patches: self.patches.iter().map(|p| p.get_ref().clone()).collect(),
        };
        let here =
            self.platforms.iter().find(|(name, _)| name.get_ref().parse::<Platform>().ok().as_ref() == Some(platform));
        if let Some((_, table)) = here {
            out.env.extend(plain(&table.env));
            out.config_settings.extend(settings(&table.config_settings));
        }
        out
    }
}

/// Why `name` may not be set in a package's `env`, or `None` when it may.
pub fn refused_env(name: &str) -> Option<&'static str> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Some("is not an environment variable name (letters, digits and `_`, not starting with a digit)");
    }
    let upper = name.to_ascii_uppercase();
    if REFUSED.contains(&upper.as_str()) || REFUSED_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Some("is set by composer's sandbox, or changes what the build runs");
    }
    None
}

pub(crate) fn validate(recipe: &Recipe, python: &crate::Python, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    if python.packages.is_empty() {
        return Ok(());
    }
    let (first, _) = python.packages.iter().next().expect("not empty");
    if python.requirements.is_empty() && python.requirements_file.is_none() {
        return Err(invalid(
            first.span(),
            format!("[python.packages.{}] sets how an sdist builds, but [python] has no requirements", first.get_ref()),
            "add the package to [python] requirements, or drop the table",
        ));
    }
    if !python.builds_sdists() {
        return Err(invalid(
            first.span(),
            format!("[python.packages.{}] sets how an sdist builds, but no package is built from one", first.get_ref()),
            "`only_binary` is [\":all:\"] (the default): set only_binary = [] or name the package in no_binary",
        ));
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, package) in &python.packages {
        let normal = normalize(name.get_ref());
        let plain = !name.get_ref().is_empty()
            && name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain {
            return Err(invalid(
                name.span(),
                format!("`{}` is not a Python package name", name.get_ref().escape_debug()),
                "name the package as its index does, e.g. [python.packages.netifaces]",
            ));
        }
        if let Some(first) = seen.insert(normal.clone(), name.get_ref()) {
            return Err(invalid(
                name.span(),
                format!("[python.packages] names `{normal}` twice (`{first}` and `{}`)", name.get_ref()),
                "package names compare as PEP 503 normalizes them: keep one table",
            ));
        }
        check_env(&package.env, invalid)?;
        check_settings(&package.config_settings, invalid)?;
        let requirements = package.build_requires.len() + package.build_depends.len();
        if requirements > MAX_ENTRIES || package.patches.len() > MAX_PATCHES {
            return Err(invalid(
                name.span(),
                format!(
                    "[python.packages.{}] has more build requirements or patches than composer takes",
                    name.get_ref()
                ),
                &format!("at most {MAX_ENTRIES} build requirements and distro packages, and {MAX_PATCHES} patches"),
            ));
        }
        for requirement in &package.build_requires {
            check_requirement(requirement, invalid)?;
        }
        for request in &package.build_depends {
            if let Err(reason) = crate::validate::package_request(request.get_ref()) {
                return Err(invalid(
                    request.span(),
                    format!("`{}` is not a package request: {reason}", request.get_ref().escape_debug()),
                    "write a distro package name, e.g. \"libffi-dev\"",
                ));
            }
        }
        for patch in &package.patches {
            check_patch(patch, invalid)?;
        }
        let mut platforms = std::collections::BTreeSet::new();
        for (platform, table) in &package.platforms {
            let parsed = check_platform(recipe, platform, invalid)?;
            if !platforms.insert(parsed.clone()) {
                return Err(invalid(
                    platform.span(),
                    format!("[python.packages.{}] names {parsed} twice", name.get_ref()),
                    "give each platform one table",
                ));
            }
            check_env(&table.env, invalid)?;
            check_settings(&table.config_settings, invalid)?;
        }
        let platform_settings = package.platforms.values().map(|t| json_size(&t.config_settings)).max();
        if json_size(&package.config_settings) + platform_settings.unwrap_or(0) > MAX_SETTINGS_JSON {
            return Err(invalid(
                name.span(),
                format!(
                    "[python.packages.{}] has more config settings than a build step can carry ({} KiB at most)",
                    name.get_ref(),
                    MAX_SETTINGS_JSON >> 10
                ),
                "pass long settings in a file the build reads (a patch can add one), not on its command line",
            ));
        }
        let mut patches = std::collections::BTreeSet::new();
        for patch in &package.patches {
            if !patches.insert(patch.get_ref()) {
                return Err(invalid(
                    patch.span(),
                    format!("`{}` is listed twice", patch.get_ref().display().to_string().escape_debug()),
                    "list each patch once, in the order they apply",
                ));
            }
        }
    }
    Ok(())
}

/// About the size of `settings` as JSON: keys, values and their quoting.
fn json_size(settings: &BTreeMap<Spanned<String>, Spanned<ConfigValue>>) -> usize {
    settings
        .iter()
        .map(|(key, value)| {
            let values = match value.get_ref() {
                ConfigValue::One(one) => std::slice::from_ref(one),
                ConfigValue::Many(many) => many.as_slice(),
            };
            key.get_ref().len() + 6 + values.iter().map(|v| v.len() + 3).sum::<usize>()
        })
        .sum()
}

/// A name as PEP 503 normalizes it (`Foo_Bar` is `foo-bar`).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split(['-', '_', '.']).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&part.to_ascii_lowercase());
    }
    out
}

fn check_env(env: &BTreeMap<Spanned<String>, Spanned<String>>, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    if env.len() > MAX_ENTRIES {
        let (first, _) = env.iter().next().expect("not empty");
        return Err(invalid(first.span(), format!("more than {MAX_ENTRIES} variables"), "set fewer variables"));
    }
    for (name, value) in env {
        if let Some(reason) = refused_env(name.get_ref()) {
            let flags = APPENDED_FLAGS.join(", ");
            return Err(invalid(
                name.span(),
                format!("`{}` {reason}", name.get_ref().escape_debug()),
                &format!(
                    "set the build's own variables (e.g. CFLAGS = \"-Wno-error=int-conversion\"; {flags} add to the \
                     toolchain profile's flags); the sandbox's, the loader's and the interpreter's are composer's"
                ),
            ));
        }
        check_value(value.get_ref(), value.span(), invalid)?;
    }
    Ok(())
}

fn check_value(value: &str, span: Range<usize>, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    if value.len() > MAX_VALUE {
        return Err(invalid(span, format!("the value is longer than {MAX_VALUE} bytes"), "keep values short"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(
            span,
            "the value holds a control character (a newline, NUL...)".into(),
            "write the value on one line",
        ));
    }
    Ok(())
}

fn check_settings(
    settings: &BTreeMap<Spanned<String>, Spanned<ConfigValue>>,
    invalid: Invalid<'_>,
) -> Result<(), RecipeError> {
    if settings.len() > MAX_ENTRIES {
        let (first, _) = settings.iter().next().expect("not empty");
        return Err(invalid(first.span(), format!("more than {MAX_ENTRIES} config settings"), "set fewer"));
    }
    for (key, value) in settings {
        if key.get_ref().is_empty() || key.get_ref().len() > MAX_NAME {
            return Err(invalid(
                key.span(),
                "a config setting's key is empty or too long".into(),
                "name the setting as the backend documents it, e.g. \"--build-option\"",
            ));
        }
        check_value(key.get_ref(), key.span(), invalid)?;
        let values = match value.get_ref() {
            ConfigValue::One(one) => std::slice::from_ref(one),
            ConfigValue::Many(many) => many.as_slice(),
        };
        if values.len() > MAX_ENTRIES {
            return Err(invalid(value.span(), format!("more than {MAX_ENTRIES} values"), "give fewer values"));
        }
        for one in values {
            check_value(one, value.span(), invalid)?;
        }
    }
    Ok(())
}

fn check_requirement(requirement: &Spanned<String>, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    // One line of a requirements file, as uv is handed it: no line break or control character
    // may start another.
    check_value(requirement.get_ref(), requirement.span(), invalid)?;
    let parsed = match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement.get_ref()) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(invalid(
                requirement.span(),
                format!("`{}` is not a PEP 508 requirement: {}", requirement.get_ref().escape_debug(), e.message),
                "write build requirements as pyproject.toml does, e.g. \"cython>=3\"",
            ));
        }
    };
    // Locked from the index like the declared build requirements: a URL would be fetched as uv
    // pleases, unchecked.
    if let Some(pep508_rs::VersionOrUrl::Url(_)) = &parsed.version_or_url {
        return Err(invalid(
            requirement.span(),
            format!("`{}` is a direct reference; build requirements are locked from the index", parsed.name),
            "name the requirement by version, e.g. \"cython>=3\"",
        ));
    }
    Ok(())
}

fn check_patch(patch: &Spanned<PathBuf>, invalid: Invalid<'_>) -> Result<(), RecipeError> {
    let path = patch.get_ref();
    let text = path.to_string_lossy();
    // An absolute path is the reader's to judge (inside the recipe's directory or an allowed
    // one), as for every file a recipe names: a base named by its absolute path has its
    // relative patches rebased to absolute ones.
    if text.is_empty() || text.contains('\0') {
        return Err(invalid(
            patch.span(),
            "a patch is a file, relative to the recipe's directory".into(),
            "put the patch beside the recipe, e.g. patches = [\"patches/netifaces-musl.patch\"]",
        ));
    }
    Ok(())
}

fn check_platform(recipe: &Recipe, name: &Spanned<String>, invalid: Invalid<'_>) -> Result<Platform, RecipeError> {
    let platform = match name.get_ref().parse::<Platform>() {
        Ok(platform) => platform,
        Err(reason) => {
            return Err(invalid(name.span(), reason, "use the names of [image] platforms, e.g. \"linux/arm64\""));
        }
    };
    if !recipe.image.platforms.get_ref().contains(&platform) {
        let listed: Vec<String> = recipe.image.platforms.get_ref().iter().map(ToString::to_string).collect();
        return Err(invalid(
            name.span(),
            format!("`{platform}` is not one of the image's platforms"),
            &format!("name one of: {}", listed.join(", ")),
        ));
    }
    Ok(platform)
}

#[cfg(test)]
mod tests;
