//! Recipe v1: the TOML file a user writes. Parsing rejects unknown keys and bad values with the
//! file, line and column of the offending text and a hint; everything past this crate can trust
//! a [`Recipe`].
//!
//! ```
//! let recipe = composer_recipe::Recipe::parse_str(
//!     "recipe.toml".as_ref(),
//!     "[image]\nname = \"x\"\nplatforms = [\"linux/amd64\"]\n[base]\nsuite = \"bookworm\"\nmirror = \"debian\"\n",
//! ).unwrap();
//! assert_eq!(recipe.image.platforms.get_ref()[0].architecture, "amd64");
//! ```

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod error;
pub mod extend;
mod limits;
pub mod platform;
pub mod sdist_settings;
pub mod show;
pub mod suggest;
mod toolchain;
mod validate;
pub use validate::{BUILD_PYTHON, JEMALLOC_BUILD, MUSL_BUILD, PYTHON_BUILD, tag as check_tag};
mod types;

pub use error::RecipeError;
pub use limits::{DEFAULT_SCRATCH, DEFAULT_STEP_OUTPUT, Limits, SizeText, format_size, parse_size};
pub use platform::Platform;
pub use sdist_settings::{ConfigValue, PackageBuild, PlatformBuild, SdistSettings};
pub use toolchain::*;
pub use types::*;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use composer_store::userfile::{self, Kind, Policy};

/// A relative path as a tree holds it: no empty, `.` or `..` component, no NUL.
fn plain_relative_path(path: &str) -> bool {
    !path.is_empty() && !path.contains('\0') && !path.split('/').any(|c| matches!(c, "" | "." | ".."))
}

/// The text of the recipe file at `path`, which the user named: read from anywhere, bounded.
pub(crate) fn read_recipe(path: &Path) -> Result<String, RecipeError> {
    userfile::read_text(path, &Policy::anywhere(Kind::RECIPE))
        .map_err(|source| RecipeError::Read { path: path.to_path_buf(), source })
}

/// The directory a recipe's relative paths resolve from: `recipe.toml` has the parent "", which
/// is ".".
pub(crate) fn recipe_dir(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether `path`, links resolved, lies outside the directory it is named in.
fn leads_out(path: &Path) -> bool {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (std::fs::canonicalize(dir), std::fs::canonicalize(path)) {
        (Ok(dir), Ok(real)) => real.parent() != Some(dir.as_path()),
        _ => true,
    }
}

impl Recipe {
    /// How a file this recipe names (`kind`) is read: inside the recipe's directory or a
    /// directory allowed with `--allow-path`, after following every symlink, so that
    /// `../../etc/shadow`, `/etc/shadow` and a link to it are all refused alike; see
    /// [`composer_store::userfile`]. Relative paths are the recipe's: [`Policy::join`] them.
    pub fn file_policy(&self, kind: Kind) -> Policy<'_> {
        Policy::within(kind, &self.dir, &self.allowed_paths)
    }

    /// Reads and validates a recipe file, and the recipes it extends (inside its directory only).
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        Self::load_allowing(path, &[])
    }

    /// Reads and validates a recipe file; the recipes it extends, like every file it names, lie
    /// inside its directory or one of `allowed` (`--allow-path`), which the recipe then keeps.
    pub fn load_allowing(path: &Path, allowed: &[PathBuf]) -> Result<Recipe, RecipeError> {
        let text = read_recipe(path)?;
        let recipe = match extend::names_a_base(&text) {
            false => Self::parse_str(path, &text),
            true => extend::Chain::read(path, text, allowed).and_then(|chain| Self::from_chain(&chain)),
        };
        // A recipe named through a link that leads out of its directory may be any file (a link
        // to a secret, committed to a repository CI builds): its errors keep their place but
        // not its lines.
        let mut recipe = recipe.map_err(|e| match leads_out(path) {
            true => e.without_text(),
            false => e,
        })?;
        recipe.allowed_paths = allowed.to_vec();
        Ok(recipe)
    }

    pub fn parse_str(path: &Path, text: &str) -> Result<Recipe, RecipeError> {
        let mut recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::from_toml(path, text, &e))?;
        recipe.dir = recipe_dir(path);
        recipe.validate(text, &|span, message, hint| RecipeError::at(path, text, span, message, hint.to_string()))?;
        Ok(recipe)
    }

    /// The recipe a chain of `extends` means, each error located in the file that wrote the value.
    pub fn from_chain(chain: &extend::Chain) -> Result<Recipe, RecipeError> {
        let merged = chain.merged()?;
        let mut recipe = <Recipe as serde::Deserialize>::deserialize(toml::de::Deserializer::from(merged))
            .map_err(|e| chain.toml_error(&e))?;
        let path = chain.files().next().expect("a chain has a first recipe");
        recipe.dir = recipe_dir(path);
        recipe.validate(chain.joined(), &|span, message, hint| chain.error(span, message, hint))?;
        Ok(recipe)
    }

    /// Checks what parsing cannot; `text` is what the spans point into, `invalid` makes the
    /// located error.
    fn validate(
        &self,
        text: &str,
        invalid: &dyn Fn(std::ops::Range<usize>, String, &str) -> RecipeError,
    ) -> Result<(), RecipeError> {
        if self.image.platforms.get_ref().is_empty() {
            return Err(invalid(
                self.image.platforms.span(),
                "`platforms` is empty".into(),
                "list at least one platform, e.g. platforms = [\"linux/amd64\"]",
            ));
        }
        let name = &self.image.name;
        if let Err(reason) = validate::repository_name(name.get_ref()) {
            return Err(invalid(
                name.span(),
                format!("image name `{}` is not an OCI repository name: {reason}", name.get_ref().escape_debug()),
                "use lower-case letters, digits and single separators (`.`, `_`, `__`, `-`), with `/` between parts, e.g. \"team/python-app\"",
            ));
        }
        let tag = &self.image.tag;
        if let Err(reason) = validate::tag(tag.get_ref()) {
            return Err(invalid(
                tag.span(),
                format!("image tag `{}` is not an OCI tag: {reason}", tag.get_ref().escape_debug()),
                "a tag is 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, e.g. \"3.11-2026.12\"",
            ));
        }
        if let Some(epoch) = &self.image.source_date_epoch
            && *epoch.get_ref() > validate::MAX_EPOCH
        {
            return Err(invalid(
                epoch.span(),
                format!("source_date_epoch {} is past the year 9999", epoch.get_ref()),
                "use seconds since 1970, e.g. the last commit's time (`git log -1 --format=%ct`)",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for platform in self.image.platforms.get_ref() {
            if !seen.insert(platform.to_string()) {
                return Err(invalid(
                    self.image.platforms.span(),
                    format!("platform `{platform}` is listed twice"),
                    "list each platform once",
                ));
            }
        }
        // A table's header where a line starts with it, not the same words in a comment or a
        // script.
        let section = |name: &str| {
            let mut at = 0;
            for line in text.split_inclusive('\n') {
                let indent = line.len() - line.trim_start().len();
                if line.trim_start().starts_with(name) {
                    return at + indent..at + indent + name.len();
                }
                at += line.len();
            }
            0..0
        };
        for package in &self.base.packages {
            if let Err(reason) = validate::package_request(package.get_ref()) {
                return Err(invalid(
                    package.span(),
                    format!("`{}` is not a package request: {reason}", package.get_ref().escape_debug()),
                    "write a name, `name=version`, or a relation such as \"libssl3 (>= 3.0)\"",
                ));
            }
        }
        self.validate_accounts(&section, &invalid)?;
        if self.layers.max_layers == 0 {
            return Err(invalid(
                section("[layers]"),
                "`[layers] max_layers` must be at least 1".into(),
                "use max_layers = 1 or more (an image needs a layer for its packages)",
            ));
        }
        if self.allocator.malloc_conf.is_some() && self.allocator.name != AllocatorName::Jemalloc {
            return Err(invalid(
                section("[allocator]"),
                "`malloc_conf` is set but the allocator is the system's, which does not read it".into(),
                "set name = \"jemalloc\" to use it, or drop malloc_conf",
            ));
        }
        let mut file_paths = std::collections::BTreeSet::new();
        for file in &self.files {
            let target = file.path.get_ref();
            let plain = target.strip_prefix('/').is_some_and(plain_relative_path);
            if !plain {
                return Err(invalid(
                    file.path.span(),
                    format!("file path `{}` is not a plain absolute path", target.escape_debug()),
                    "write the path as it appears in the image, without `.`, `..`, `//`, a trailing `/` or NUL, e.g. \"/etc/app.conf\"",
                ));
            }
            if !file_paths.insert(target.as_str()) {
                return Err(invalid(
                    file.path.span(),
                    format!("`{target}` is listed twice in [[files]]"),
                    "give each path one entry",
                ));
            }
            if file.content.is_some() && file.source.is_some() {
                return Err(invalid(
                    file.path.span(),
                    format!("`{target}` has both `content` and `source`"),
                    "keep one: `content` (inline text) or `source` (a file beside the recipe)",
                ));
            }
            if file.kind != FileKind::File && (file.content.is_some() || file.source.is_some()) {
                return Err(invalid(
                    file.path.span(),
                    format!("`{target}` is a {:?} entry, which holds no `content` or `source`", file.kind),
                    "drop them, or make it kind = \"file\"",
                ));
            }
            let ok = match file.kind {
                FileKind::File => file.source.is_some() || file.content.is_some(),
                FileKind::Dir => true,
                FileKind::Symlink => file.target.is_some(),
            };
            if !ok {
                return Err(invalid(
                    file.path.span(),
                    format!(
                        "`{target}` is a {:?} entry without its {}",
                        file.kind,
                        match file.kind {
                            FileKind::Symlink => "`target`",
                            _ => "`source` or `content`",
                        }
                    ),
                    "files need `source` (a path relative to the recipe) or `content`; symlinks need `target`",
                ));
            }
        }
        if let Some(python) = &self.python {
            self.validate_python(python, section("[python]"), &invalid)?;
        }
        self.limits.validate(&invalid)?;
        validate::builds(self, &section, &invalid)
    }

    fn validate_accounts(
        &self,
        section: &dyn Fn(&str) -> std::ops::Range<usize>,
        invalid: &dyn Fn(std::ops::Range<usize>, String, &str) -> RecipeError,
    ) -> Result<(), RecipeError> {
        let mut users = std::collections::BTreeSet::new();
        for user in &self.accounts.users {
            if !users.insert(user.name.as_str()) {
                return Err(invalid(
                    section("[[accounts.users]]"),
                    format!("user `{}` is listed twice", user.name),
                    "give each account one [[accounts.users]] entry",
                ));
            }
        }
        let mut groups = std::collections::BTreeSet::new();
        for group in &self.accounts.groups {
            if !groups.insert(group.name.as_str()) {
                return Err(invalid(
                    section("[[accounts.groups]]"),
                    format!("group `{}` is listed twice", group.name),
                    "give each group one [[accounts.groups]] entry",
                ));
            }
        }
        Ok(())
    }

    fn validate_python(
        &self,
        python: &Python,
        header: std::ops::Range<usize>,
        invalid: &dyn Fn(std::ops::Range<usize>, String, &str) -> RecipeError,
    ) -> Result<(), RecipeError> {
        if python.requirements.is_empty()
            && python.requirements_file.is_none()
            && python.build.is_none()
            && !python.bytecode
        {
            return Err(invalid(
                header,
                "`[python]` has neither `requirements` nor `requirements_file`".into(),
                "add requirements = [\"package>=1.0\"] (or bytecode = true), or drop the [python] section",
            ));
        }
        for requirement in python.requirements.iter().chain(&python.constraints) {
            let parsed = match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(requirement.get_ref()) {
                Ok(parsed) => parsed,
                Err(e) => {
                    return Err(invalid(
                        requirement.span(),
                        format!("`{}` is not a PEP 508 requirement: {}", requirement.get_ref(), e.message),
                        "write requirements as pip does, e.g. \"numpy>=1.26\" or \"aiohttp[speedups]; python_version >= '3.9'\"",
                    ));
                }
            };
            // A direct reference is fetched by uv, not by compose: only from the network, where
            // its pylock entry is checked like any other; a local path (`file:`) would be read
            // unconfined, a version-control URL cloned.
            if let Some(pep508_rs::VersionOrUrl::Url(url)) = &parsed.version_or_url
                && !matches!(url.scheme(), "https" | "http")
            {
                return Err(invalid(
                    requirement.span(),
                    format!(
                        "`{}` is a direct reference by `{}:`, which compose does not pass on",
                        parsed.name,
                        url.scheme()
                    ),
                    "name the package by version from the index, or put its wheel into a wheel index \
                     (`compose wheels index`) and name that index",
                ));
            }
        }
        if let Some(file) = python.requirements_file.iter().chain(&python.constraints_file).next() {
            let full = self.dir.join(file.get_ref());
            if !full.is_file() {
                return Err(invalid(
                    file.span(),
                    format!("`{}` does not exist or is not a regular file", full.display()),
                    "requirement files are regular files, relative to the recipe's directory",
                ));
            }
        }
        let target = python.target.get_ref();
        if target != "system" && (!target.starts_with('/') || target.split('/').any(|c| c == "..") || target == "/") {
            return Err(invalid(
                python.target.span(),
                format!("python target `{target}` must be an absolute directory without `..`, or \"system\""),
                "use a virtual environment path such as \"/opt/venv\", or \"system\" for /usr/local",
            ));
        }
        for name in python.no_binary.get_ref() {
            if name == ":all:" || python.only_binary.iter().any(|o| o == name) {
                return Err(invalid(
                    python.no_binary.span(),
                    format!("`{name}` in `no_binary` is not a package, or is also in `only_binary`"),
                    "list package names that must be built from their sdist, e.g. no_binary = [\"pyyaml\"]",
                ));
            }
        }
        if python.max_layers == 0 {
            return Err(invalid(
                header,
                "`[python] max_layers` must be at least 1".into(),
                "use max_layers = 1 or more",
            ));
        }
        sdist_settings::validate(self, python, invalid)
    }
}

/// The JSON Schema of recipes, for editors (taplo, Even Better TOML) to complete and check them.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Recipe).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), "composer recipe".into());
    }
    schema
}
