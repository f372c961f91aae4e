//! Settings resolved once: flag, then environment, then config file, then default.

// The one module that reads the environment (clippy.toml forbids it elsewhere): every other part
// of composer takes the resolved values as arguments.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use composer_deb::mirror::MirrorSettings;
use composer_planner::Tools;
use composer_store::userfile;

use crate::cli::GlobalArgs;
use crate::env_vars;

pub struct Settings {
    pub store: PathBuf,
    pub offline: bool,
    pub mirrors: MirrorSettings,
    pub indexes: composer_wheels::IndexSettings,
    /// Directories a recipe's local files may come from besides its own (`--allow-path`).
    pub allow_paths: Vec<PathBuf>,
    pub source_date_epoch: Option<u64>,
    pub tools: Tools,
    pub temp_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    /// Caches to substitute from, in order: `--cache`, else `COMPOSE_CACHE`, else the config's.
    pub caches: Vec<String>,
    /// Every trusted public key: `--trusted-key`, `COMPOSE_TRUSTED_KEYS` and the config's.
    pub trusted_keys: Vec<String>,
    /// `COMPOSE_SIGNING_KEY`, else the config's (`--signing-key` wins over both).
    pub signing_key: Option<PathBuf>,
    pub registry: composer_client::registry::RegistryOptions,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Every variable whose name starts with `prefix` (`COMPOSE_MIRROR_`, ...), by name.
fn vars_with_prefix(prefix: &str) -> BTreeMap<String, String> {
    std::env::vars().filter(|(name, value)| name.starts_with(prefix) && !value.is_empty()).collect()
}

/// A program: the path in `override_var`, else the first `name` on PATH.
fn program(override_var: &str, name: &str) -> Option<PathBuf> {
    var(override_var).map(PathBuf::from).or_else(|| on_path(name))
}

/// The first `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env_vars::PATH)?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// pip's configuration files, lowest precedence first. `PIP_CONFIG_FILE` replaces them all.
fn pip_config_files() -> Vec<PathBuf> {
    if let Some(file) = std::env::var_os(env_vars::PIP_CONFIG_FILE) {
        return vec![PathBuf::from(file)];
    }
    let mut files = vec![PathBuf::from("/etc/xdg/pip/pip.conf"), PathBuf::from("/etc/pip.conf")];
    let home = std::env::var_os(env_vars::HOME).map(PathBuf::from);
    if let Some(home) = &home {
        files.push(home.join(".pip/pip.conf"));
    }
    let xdg =
        std::env::var_os(env_vars::XDG_CONFIG_HOME).map(PathBuf::from).or_else(|| home.map(|h| h.join(".config")));
    if let Some(xdg) = xdg {
        files.push(xdg.join("pip/pip.conf"));
    }
    if let Some(venv) = std::env::var_os(env_vars::VIRTUAL_ENV) {
        files.push(PathBuf::from(venv).join("pip.conf"));
    }
    files
}

fn home() -> PathBuf {
    std::env::var_os(env_vars::HOME).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| home().join(fallback))
}

/// `NO_COLOR` set, to any value: the printer paints nothing (<https://no-color.org>).
pub fn no_color() -> bool {
    std::env::var_os(env_vars::NO_COLOR).is_some()
}

pub fn config_path() -> PathBuf {
    xdg(env_vars::XDG_CONFIG_HOME, ".config").join("compose").join("config.toml")
}

impl Settings {
    /// A program on PATH (podman, docker), for the commands that hand over to one.
    pub fn program(&self, name: &str) -> Option<PathBuf> {
        on_path(name)
    }

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
        // The config file is read once; each part of composer takes its own tables from it.
        let config_policy = userfile::Policy::anywhere(userfile::Kind::CONFIG);
        let config_text = userfile::read_text_if_exists(&config_path, &config_policy)
            .with_context(|| format!("reading {}", config_path.display()))?
            .unwrap_or_default();
        let config = composer_deb::mirror::parse_config(&config_text, &config_path)
            .context("reading the compose config file")?;
        let ConfigFile { indexes: index_config, cache: cache_config } =
            toml::from_str(&config_text).map_err(|e: toml::de::Error| {
                anyhow::anyhow!("{}", userfile::located(&config_text, e.span(), e.message()))
                    .context(format!("reading the compose config file {}", config_path.display()))
            })?;
        let caches = if !args.caches.is_empty() {
            args.caches.clone()
        } else if let Some(list) = var(env_vars::COMPOSE_CACHE) {
            list.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect()
        } else {
            cache_config.substituters.clone()
        };
        let mut trusted_keys = args.trusted_keys.clone();
        trusted_keys
            .extend(var(env_vars::COMPOSE_TRUSTED_KEYS).iter().flat_map(|v| v.split_whitespace()).map(str::to_string));
        trusted_keys.extend(cache_config.trusted_keys.iter().cloned());
        let signing_key = var(env_vars::COMPOSE_SIGNING_KEY).map(PathBuf::from).or(cache_config.signing_key.clone());
        let apt_dir =
            std::env::var_os(env_vars::COMPOSE_APT_DIR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/etc/apt"));
        Ok(Settings {
            store,
            offline: args.offline,
            allow_paths: args.allow_paths.clone(),
            mirrors: MirrorSettings {
                flags,
                config,
                env_var: env_vars::mirror_var,
                env: vars_with_prefix(env_vars::COMPOSE_MIRROR_PREFIX),
                apt_dir,
                config_path: Some(config_path.clone()),
            },
            indexes: composer_wheels::IndexSettings {
                flags: index_flags,
                config: index_config,
                config_path: Some(config_path),
                env_var: env_vars::index_var,
                env: vars_with_prefix(env_vars::COMPOSE_INDEX_PREFIX),
                pip_index_url: var(env_vars::PIP_INDEX_URL),
                pip_config_files: pip_config_files(),
            },
            source_date_epoch: var(env_vars::SOURCE_DATE_EPOCH).and_then(|v| v.parse().ok()),
            tools: Tools {
                bwrap: program(env_vars::COMPOSE_BWRAP, "bwrap"),
                uv: program(env_vars::COMPOSE_UV, "uv"),
                python: on_path("python3"),
            },
            temp_dir: var(env_vars::TMPDIR).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp")),
            ca_file: var(env_vars::SSL_CERT_FILE).map(PathBuf::from),
            caches,
            trusted_keys,
            signing_key,
            registry: registry_options(args)?,
        })
    }
}

/// The tables of the config file the binary reads itself (`[mirrors]` is the backends').
#[derive(Debug, Default, serde::Deserialize)]
struct ConfigFile {
    /// `name = "url"`.
    #[serde(default)]
    indexes: BTreeMap<String, String>,
    #[serde(default)]
    cache: CacheConfig,
}

/// `[cache]` of the config file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub substituters: Vec<String>,
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    pub signing_key: Option<PathBuf>,
}

/// Registry logins: `--creds` for every registry this command uses, else the auth files users
/// already have, in the order podman and skopeo read them, then Docker's.
fn registry_options(args: &GlobalArgs) -> anyhow::Result<composer_client::registry::RegistryOptions> {
    use composer_client::registry::Credentials;
    let mut files = Vec::new();
    if let Some(file) = var(env_vars::REGISTRY_AUTH_FILE) {
        files.push(PathBuf::from(file));
    }
    if let Some(dir) = var(env_vars::XDG_RUNTIME_DIR) {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    files.push(
        var(env_vars::DOCKER_CONFIG).map(PathBuf::from).unwrap_or_else(|| home().join(".docker")).join("config.json"),
    );
    let named = var(env_vars::REGISTRY_AUTH_FILE).map(PathBuf::from);
    let mut credentials = BTreeMap::new();
    // Earlier files win: read them last to first.
    for file in files.iter().rev() {
        let policy = userfile::Policy::anywhere(userfile::Kind::REGISTRY_LOGINS);
        let text = match userfile::read_text(file, &policy) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => continue,
            // Another user's file met through `sudo -E`: theirs, not a mistake in this command.
            Err(e) if e.is_permission_denied() && named.as_ref() != Some(file) => continue,
            // A FIFO, a device or a file of gigabytes is never a login file: said, not skipped,
            // so that a login the user meant to give is not silently missing.
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("reading registry logins from {}", file.display())));
            }
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading registry logins from {}", file.display()))?;
        let Some(auths) = parsed["auths"].as_object() else { continue };
        for (key, entry) in auths {
            let host = key.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or(host).to_string();
            let Some(auth) = entry["auth"].as_str() else { continue };
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth).ok();
            let Some((username, password)) = decoded
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|d| d.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
            else {
                continue;
            };
            credentials.insert(host, Credentials { username, password });
        }
    }
    // Where podman and Docker look for a registry's own CA: certs.d/<host>/*.crt.
    let mut cert_dirs = vec![PathBuf::from("/etc/containers/certs.d"), PathBuf::from("/etc/docker/certs.d")];
    cert_dirs.push(xdg(env_vars::XDG_CONFIG_HOME, ".config").join("containers/certs.d"));
    cert_dirs.extend(args.cert_dir.clone());
    let mut options = composer_client::registry::RegistryOptions {
        insecure_hosts: args.insecure_registries.clone(),
        credentials,
        override_credentials: None,
        cert_dirs,
    };
    if let Some(creds) = &args.creds {
        let Some((username, password)) = creds.split_once(':') else {
            bail!("`--creds` is USER:PASSWORD");
        };
        options.override_credentials = Some(Credentials { username: username.into(), password: password.into() });
    }
    Ok(options)
}
