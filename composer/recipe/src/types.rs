use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::Platform;

/// A parsed, validated recipe.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// The directory holding the recipe; relative paths in it resolve from here.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub name: String,
    #[serde(default = "default_tag")]
    pub tag: String,
    pub platforms: Spanned<Vec<Platform>>,
    pub source_date_epoch: Option<u64>,
}

fn default_tag() -> String {
    "latest".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Debian,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    pub packages: Vec<Spanned<String>>,
    /// An OpenPGP keyring (binary or armored), relative to the recipe.
    pub keyring: Option<PathBuf>,
    /// Add every `Essential: yes` package of the suite, as debootstrap would.
    #[serde(default)]
    pub essential: bool,
}

fn default_distro() -> Distro {
    Distro::Debian
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorName {
    #[default]
    System,
    Jemalloc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocatorMode {
    #[default]
    Preload,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Allocator {
    #[serde(default)]
    pub name: AllocatorName,
    #[serde(default)]
    pub mode: AllocatorMode,
    pub malloc_conf: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: Spanned<String>,
    #[serde(default)]
    pub kind: FileKind,
    /// A local file, relative to the recipe.
    pub source: Option<PathBuf>,
    /// Inline content, instead of `source`.
    pub content: Option<String>,
    pub target: Option<String>,
    #[serde(default = "default_mode", deserialize_with = "mode")]
    pub mode: u32,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

fn default_mode() -> u32 {
    0o644
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerStrategy {
    /// One layer per package (largest first) up to the budget; the rest share one layer.
    #[default]
    PerPackage,
    /// Every package in one layer.
    Single,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
