//! Settings resolved once: flag, then environment, then config file, then default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use composer_planner::MirrorSettings;

use crate::cli::GlobalArgs;
use crate::env_vars;

pub struct Settings {
    pub store: PathBuf,
    pub offline: bool,
    pub mirrors: MirrorSettings,
    pub indexes: composer_wheels::IndexSettings,
    /// Directories a recipe's local files may come from besides its own (`--allow-path`).
    pub allow_paths: Vec<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os(env_vars::HOME).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| home().join(fallback))
}

pub fn config_path() -> PathBuf {
    xdg(env_vars::XDG_CONFIG_HOME, ".config").join("compose").join("config.toml")
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Settings> {
        let store = match (&args.store, std::env::var_os(env_vars::COMPOSE_STORE)) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) if !path.is_empty() => PathBuf::from(path),
            _ => xdg(env_vars::XDG_CACHE_HOME, ".cache").join("compose"),
        };
        let mut flags = BTreeMap::new();
        for mirror in &args.mirrors {
            let Some((name, url)) = mirror.split_once('=') else {
                bail!("`--mirror {mirror}` is not NAME=URL (for example --mirror debian=file:///srv/debian)");
            };
            flags.insert(name.to_string(), url.to_string());
        }
        let mut index_flags = BTreeMap::new();
        for index in &args.indexes {
            let Some((name, url)) = index.split_once('=') else {
                bail!("`--index {index}` is not NAME=URL (for example --index wheels=file:///srv/wheels/simple)");
            };
            index_flags.insert(name.to_string(), url.to_string());
        }
        let config_path = config_path();
        let config = composer_planner::mirror::read_config(&config_path).context("reading the compose config file")?;
        let index_config = read_indexes(&config_path).context("reading the compose config file")?;
        let apt_dir =
            std::env::var_os(env_vars::COMPOSE_APT_DIR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/etc/apt"));
        Ok(Settings {
            store,
            offline: args.offline,
            allow_paths: args.allow_paths.clone(),
            mirrors: MirrorSettings { flags, config, apt_dir, config_path: Some(config_path.clone()) },
            indexes: composer_wheels::IndexSettings {
                flags: index_flags,
                config: index_config,
                config_path: Some(config_path),
            },
        })
    }
}

/// `[indexes]` of the config file: `name = "url"`.
fn read_indexes(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        indexes: BTreeMap<String, String>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(anyhow::Error::new(e).context(path.display().to_string())),
    };
    let file: File = toml::from_str(&text).with_context(|| path.display().to_string())?;
    Ok(file.indexes)
}
