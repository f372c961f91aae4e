//! Where a recipe's mirror name points. Resolution order, first match wins:
//!
//! 1. `--mirror NAME=URL` on the command line,
//! 2. the environment: `COMPOSE_MIRROR_<NAME>` (upper case, `-` as `_`),
//! 3. the user config file (`$XDG_CONFIG_HOME/compose/config.toml`, `[mirrors]`),
//! 4. for the name `debian` only, the host's apt sources serving the recipe's suite
//!    (`COMPOSE_APT_DIR`, default `/etc/apt`), with their `Signed-By` keyring. Any other name
//!    must be configured: a typo never silently becomes the host's mirror.
//!
//! The keyring that verifies the mirror is the recipe's `keyring`, else the config's keyring for
//! that mirror, else the apt source's `Signed-By`, else the system's Debian archive keyring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::DebError;

/// The one mirror name that may fall back to the host's apt sources.
pub const APT_NAME: &str = "debian";

pub const DEBIAN_ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// From `--mirror NAME=URL`.
    pub flags: BTreeMap<String, String>,
    /// `[mirrors]` of the config file: name → (url, keyring).
    pub config: BTreeMap<String, (String, Option<PathBuf>)>,
    /// Mirrors named by the environment, as the caller read it: how it names the variable of a
    /// mirror (for messages), and the variables it found, by that name.
    pub env_var: fn(&str) -> String,
    pub env: BTreeMap<String, String>,
    /// The apt configuration directory.
    pub apt_dir: PathBuf,
    /// The config file's path, for messages.
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Mirror {
    pub url: String,
    pub keyring: PathBuf,
    /// Where the URL came from, for `-v` and errors.
    pub origin: String,
}

impl MirrorSettings {
    pub fn resolve(&self, name: &str, suite: &str, recipe_keyring: Option<&Path>) -> Result<Mirror, DebError> {
        let env_name = (self.env_var)(name);
        let (url, config_keyring, apt_keyring, origin) = if let Some(url) = self.flags.get(name) {
            (url.clone(), None, None, format!("--mirror {name}=..."))
        } else if let Some(url) = self.env.get(&env_name).filter(|v| !v.is_empty()).cloned() {
            (url, None, None, format!("${env_name}"))
        } else if let Some((url, keyring)) = self.config.get(name) {
            let origin = self.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            (url.clone(), keyring.clone(), None, origin)
        } else {
            let sources = if name == APT_NAME { crate::sources::read_apt_sources(&self.apt_dir) } else { Vec::new() };
            match crate::sources::find_debian_source(&sources, suite) {
                Some(source) => (source.uri, None, source.signed_by, source.file.display().to_string()),
                None => {
                    let known = self.flags.keys().chain(self.config.keys()).map(String::as_str).chain([APT_NAME]);
                    return Err(DebError::NoMirror {
                        name: name.to_string(),
                        suite: suite.to_string(),
                        env: env_name,
                        apt_dir: self.apt_dir.clone(),
                        near: composer_recipe::suggest::nearest(name, known, 2).into_iter().map(String::from).collect(),
                    });
                }
            }
        };
        let keyring = recipe_keyring
            .map(Path::to_path_buf)
            .or(config_keyring)
            .or(apt_keyring)
            .unwrap_or_else(|| PathBuf::from(DEBIAN_ARCHIVE_KEYRING));
        Ok(Mirror { url: url.trim_end_matches('/').to_string(), keyring, origin })
    }
}

/// Reads `[mirrors]` from the config file: `name = "url"` or `name = { url = "...", keyring = "..." }`.
pub fn parse_config(text: &str, path: &Path) -> Result<BTreeMap<String, (String, Option<PathBuf>)>, DebError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Url(String),
        Full { url: String, keyring: Option<PathBuf> },
    }
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        mirrors: BTreeMap<String, Entry>,
    }
    // Located without the line: the config file may be a link to a file that is not ours to show.
    let file: File = toml::from_str(text).map_err(|e: toml::de::Error| DebError::Config {
        path: path.to_path_buf(),
        source: composer_store::userfile::located(text, e.span(), e.message()).into(),
    })?;
    Ok(file
        .mirrors
        .into_iter()
        .map(|(name, entry)| match entry {
            Entry::Url(url) => (name, (url, None)),
            Entry::Full { url, keyring } => (name, (url, keyring)),
        })
        .collect())
}
