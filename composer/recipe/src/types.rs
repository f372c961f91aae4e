use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::Platform;

/// A parsed, validated recipe.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub image: Image,
    pub base: Base,
    #[serde(default)]
    pub allocator: Allocator,
    #[serde(default)]
    pub config: Config,
    #[serde(default)]
    pub accounts: Accounts,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub layers: Layers,
    /// A wheel set installed on top of the base's python3.
    pub python: Option<Python>,
    /// Pinned inputs of builds.
    #[serde(default)]
    pub sources: Vec<crate::Source>,
    #[serde(default)]
    pub toolchain: crate::Toolchain,
    #[serde(default)]
    pub builds: Vec<crate::BuildSpec>,
    /// Builds for foreign platforms compiled by cross compilers on another platform's root.
    pub cross: Option<crate::Cross>,
    /// How much a build step may take: its output, its `/tmp` (not part of any step key).
    #[serde(default)]
    pub limits: crate::Limits,
    /// The directory holding the recipe; relative paths in it resolve from here.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Directories outside [`Recipe::dir`] that local files may come from: only the person who
    /// runs the build can grant them (`--allow-path`), never the recipe itself.
    #[serde(skip)]
    pub allowed_paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// An OCI repository name (checked as the distribution spec defines it): it also names the
    /// default output directory, `out/<name>`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default = "default_tag")]
    #[schemars(with = "String")]
    pub tag: Spanned<String>,
    #[schemars(with = "Vec<Platform>")]
    pub platforms: Spanned<Vec<Platform>>,
    #[schemars(with = "Option<u64>")]
    pub source_date_epoch: Option<Spanned<u64>>,
}

fn default_tag() -> Spanned<String> {
    Spanned::new(0..0, "latest".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Debian,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Base {
    #[serde(default = "default_distro")]
    pub distro: Distro,
    pub suite: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// A mirror *name*, resolved through flags, environment, config and apt sources.
    pub mirror: String,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub packages: Vec<Spanned<String>>,
    /// An OpenPGP keyring (binary or armored), relative to the recipe.
    pub keyring: Option<PathBuf>,
    /// Add every `Essential: yes` package of the suite, as debootstrap would.
    #[serde(default)]
    pub essential: bool,
    /// Refuse a Release past its `Valid-Until`, as apt does. Off only for snapshot mirrors,
    /// whose Releases are old on purpose.
    #[serde(default = "yes")]
    pub check_valid_until: bool,
    /// The image's C library: the distribution's own (`glibc` for Debian), or `musl`, built
    /// from the `[[sources]]` entry named `musl`; every build then compiles against it, and the
    /// image holds none of the distribution's packages (they link against its C library): the
    /// distribution makes only the build root.
    #[serde(default = "distro_libc")]
    #[schemars(with = "Libc")]
    pub libc: Spanned<Libc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// The distribution's C library and packages (glibc for Debian).
    #[default]
    #[serde(alias = "glibc")]
    Distro,
    Musl,
}

impl Base {
    /// Whether the image's programs link against a musl built by the recipe.
    pub fn musl(&self) -> bool {
        *self.libc.get_ref() == Libc::Musl
    }
}

fn distro_libc() -> Spanned<Libc> {
    Spanned::new(0..0, Libc::Distro)
}

fn yes() -> bool {
    true
}

fn default_distro() -> Distro {
    Distro::Debian
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorName {
    #[default]
    System,
    Jemalloc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorMode {
    /// `LD_PRELOAD` in the image's environment.
    #[default]
    Preload,
    /// Linked into what the recipe builds (the CPython step, builds that `use` it).
    Link,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorSource {
    /// The distro's package (libjemalloc2, libjemalloc-dev to link).
    #[default]
    Distro,
    /// Built from the `[[sources]]` entry named `jemalloc`, with the allocator's profile.
    Build,
}

/// `lg_page = 16` or `lg_page = { "linux/arm64" = 16 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum LgPage {
    All(u8),
    ByPlatform(BTreeMap<String, u8>),
}

impl LgPage {
    pub fn for_platform(&self, platform: &Platform) -> Option<u8> {
        match self {
            LgPage::All(lg) => Some(*lg),
            LgPage::ByPlatform(by) => by.get(&platform.to_string()).copied(),
        }
    }

    /// Every value given, with the platform it is for (`None`: all of them).
    pub fn values(&self) -> Vec<(Option<&str>, u8)> {
        match self {
            LgPage::All(lg) => vec![(None, *lg)],
            LgPage::ByPlatform(by) => by.iter().map(|(p, lg)| (Some(p.as_str()), *lg)).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocator {
    #[serde(default)]
    pub name: AllocatorName,
    #[serde(default)]
    pub mode: AllocatorMode,
    #[serde(default)]
    pub source: AllocatorSource,
    pub malloc_conf: Option<String>,
    /// jemalloc's `--with-lg-page`: 16 runs on arm64 kernels with 4K, 16K or 64K pages. One
    /// number for every platform, or a table by platform (`{ "linux/arm64" = 16 }`; a platform
    /// not named gets jemalloc's own choice).
    pub lg_page: Option<LgPage>,
    /// The toolchain profile of the allocator build.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// Linked builds get `-fno-builtin-malloc` and friends, so the compiler does not fold
    /// allocations the allocator should see.
    #[serde(default)]
    pub no_builtin: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// Primary group id; defaults to the uid.
    pub gid: Option<u32>,
    pub home: Option<String>,
    #[serde(default = "default_shell")]
    pub shell: String,
    #[serde(default)]
    pub gecos: String,
}

fn default_shell() -> String {
    "/usr/sbin/nologin".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    #[serde(default)]
    pub kind: FileKind,
    /// A local file, relative to the recipe.
    pub source: Option<PathBuf>,
    /// Inline content, instead of `source`.
    pub content: Option<String>,
    pub target: Option<String>,
    #[serde(default = "default_mode", deserialize_with = "mode")]
    #[schemars(schema_with = "mode_schema")]
    pub mode: u32,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn default_mode() -> u32 {
    0o644
}

fn mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Permission bits: an octal string (\"0755\") or an integer (0o755 in TOML).",
        "anyOf": [{ "type": "string", "pattern": "^0?[0-7]{3,4}$" }, { "type": "integer", "minimum": 0, "maximum": 4095 }],
    })
}

/// Accepts `"0755"` (an octal string) or an integer (`0o755` in TOML).
fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u32),
        Str(String),
    }
    let value = match Raw::deserialize(d)? {
        Raw::Int(v) => v,
        Raw::Str(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| serde::de::Error::custom(format!("mode `{s}` is not an octal number such as \"0644\"")))?,
    };
    if value > 0o7777 {
        return Err(serde::de::Error::custom(format!("mode {value:o} is out of range (at most 7777)")));
    }
    Ok(value)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LayerStrategy {
    /// One layer per package (largest first) up to the budget; the rest share one layer.
    #[default]
    PerPackage,
    /// Every package in one layer.
    Single,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layers {
    #[serde(default)]
    pub strategy: LayerStrategy,
    #[serde(default = "default_max_layers")]
    pub max_layers: usize,
    #[serde(default)]
    pub compression: Compression,
}

impl Default for Layers {
    fn default() -> Self {
        Layers {
            strategy: LayerStrategy::default(),
            max_layers: default_max_layers(),
            compression: Compression::default(),
        }
    }
}

fn default_max_layers() -> usize {
    40
}

/// `[python]`: wheels resolved for the base's own interpreter on every platform and installed
/// without pip.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Python {
    /// PEP 508 requirements, extras and markers included (`"aiohttp[speedups]>=3.9"`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub requirements: Vec<Spanned<String>>,
    /// A pip-style requirements file, relative to the recipe.
    #[schemars(with = "Option<PathBuf>")]
    pub requirements_file: Option<Spanned<PathBuf>>,
    /// PEP 508 constraints: pins that apply only if something requires the package.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub constraints: Vec<Spanned<String>>,
    #[schemars(with = "Option<PathBuf>")]
    pub constraints_file: Option<Spanned<PathBuf>>,
    /// Where wheels go: a virtual environment directory (default `/opt/venv`) or `"system"`
    /// (the interpreter's site directory under /usr/local).
    #[serde(default = "default_python_target")]
    #[schemars(with = "String")]
    pub target: Spanned<String>,
    /// Packages that must come as wheels; `[":all:"]` (the default) for every package.
    #[serde(default = "default_only_binary")]
    pub only_binary: Vec<String>,
    /// Packages built from their sdist in the sandbox even where a wheel exists. With
    /// `only_binary` not `[":all:"]`, packages without a wheel for a target are built too.
    #[serde(default = "no_packages")]
    #[schemars(with = "Vec<String>")]
    pub no_binary: Spanned<Vec<String>>,
    /// Distro packages the sdist builds need beside the interpreter, setuptools and wheel
    /// (e.g. `cython3`, `libyaml-dev`).
    #[serde(default)]
    pub build_depends: Vec<String>,
    /// The toolchain profile of sdist builds.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// An index *name*, resolved through flags, environment, config, then pip's and uv's own
    /// configuration.
    pub index: Option<String>,
    /// Layers for the wheel set, on top of the base's budget.
    #[serde(default = "default_python_layers")]
    pub max_layers: usize,
    /// CPython built from source, used instead of the base's python3.
    pub build: Option<crate::InterpreterBuild>,
    /// Compile `.pyc` files at build time, for the distro's modules and the wheel set alike.
    #[serde(default)]
    pub bytecode: bool,
    /// What a wheel needing a system library the image lacks (`libstdc++.so.6`) does: fail the
    /// build naming the package that ships it (`"check"`), or add that package to the image
    /// and the lock (`"add"`).
    #[serde(default = "check_system_libraries")]
    #[schemars(with = "SystemLibraries")]
    pub system_libraries: Spanned<SystemLibraries>,
    /// How single packages build from their sdist (`[python.packages.netifaces]`): environment,
    /// PEP 517 config settings, extra build requirements, distro packages, patches.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::PackageBuild>")]
    pub packages: BTreeMap<Spanned<String>, crate::PackageBuild>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemLibraries {
    #[default]
    Check,
    Add,
}

fn check_system_libraries() -> Spanned<SystemLibraries> {
    Spanned::new(0..0, SystemLibraries::Check)
}

impl Python {
    /// Whether the distribution packages that ship the libraries the wheels need join the image.
    pub fn adds_system_libraries(&self) -> bool {
        *self.system_libraries.get_ref() == SystemLibraries::Add
    }
}

fn default_python_target() -> Spanned<String> {
    Spanned::new(0..0, "/opt/venv".into())
}

fn no_packages() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

fn default_only_binary() -> Vec<String> {
    vec![":all:".into()]
}

fn default_python_layers() -> usize {
    8
}

impl Python {
    /// Whether any package may be built from an sdist.
    pub fn builds_sdists(&self) -> bool {
        !self.no_binary.get_ref().is_empty() || self.only_binary.iter().all(|o| o != ":all:")
    }

    /// The settings of the sdist of `name` (any spelling PEP 503 normalizes alike).
    pub fn package_build(&self, name: &str) -> Option<&crate::PackageBuild> {
        let wanted = crate::sdist_settings::normalize(name);
        self.packages.iter().find(|(n, _)| crate::sdist_settings::normalize(n.get_ref()) == wanted).map(|(_, b)| b)
    }

    /// The venv directory, or `None` for the system site directory.
    pub fn venv(&self) -> Option<&str> {
        let target = self.target.get_ref();
        (target != "system").then_some(target.as_str())
    }
}
