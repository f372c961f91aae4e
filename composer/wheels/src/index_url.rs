//! Where a recipe's index name points. First match wins:
//!
//! 1. `--index NAME=URL` on the command line,
//! 2. `COMPOSE_INDEX_<NAME>` (upper case, `-` as `_`),
//! 3. `[indexes]` of the compose config file,
//! 4. pip's configuration: `PIP_INDEX_URL`, then `index-url` in pip.conf (`PIP_CONFIG_FILE`, else
//!    the site, user and global files, in pip's own precedence),
//! 5. uv's own configuration (`UV_DEFAULT_INDEX`, `UV_INDEX_URL`, uv.toml) and its built-in
//!    default: composer passes no index and lets uv decide.
//!
//! Steps 1–3 apply only when the recipe names an index; pip and uv apply either way. Wheel URLs
//! are recorded in the lock, so fetching never needs the index again.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// From `--index NAME=URL`.
    pub flags: BTreeMap<String, String>,
    /// `[indexes]` of the compose config file.
    pub config: BTreeMap<String, String>,
    pub config_path: Option<PathBuf>,
    /// Indexes named by the environment, as the caller read it: how it names the variable of an
    /// index, and the variables it found, by that name.
    pub env_var: fn(&str) -> String,
    pub env: BTreeMap<String, String>,
    /// `PIP_INDEX_URL`, as the caller read it.
    pub pip_index_url: Option<String>,
    /// pip's configuration files, lowest precedence first, as the caller found them
    /// (`PIP_CONFIG_FILE` alone, else the site, user and global files).
    pub pip_config_files: Vec<PathBuf>,
}

/// An index URL and where it came from; `url` is `None` when uv's own configuration decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexChoice {
    pub url: Option<String>,
    pub origin: String,
}

impl IndexSettings {
    pub fn resolve(&self, name: Option<&str>) -> IndexChoice {
        let found = |url: String, origin: String| IndexChoice { url: Some(url.trim_end_matches('/').into()), origin };
        if let Some(name) = name {
            if let Some(url) = self.flags.get(name) {
                return found(url.clone(), format!("--index {name}=..."));
            }
            let env = (self.env_var)(name);
            if let Some(url) = self.env.get(&env).filter(|v| !v.is_empty()).cloned() {
                return found(url, format!("${env}"));
            }
            if let Some(url) = self.config.get(name) {
                let origin = self.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                return found(url.clone(), origin);
            }
        }
        if let Some(url) = self.pip_index_url.clone().filter(|v| !v.is_empty()) {
            return found(url, "$PIP_INDEX_URL".into());
        }
        for file in self.pip_config_files.iter().rev() {
            let policy = composer_store::userfile::Policy::anywhere(composer_store::userfile::Kind::PIP_CONFIG);
            let text = composer_store::userfile::read_text(file, &policy).ok();
            if let Some(url) = text.and_then(|text| pip_conf_index(&text)) {
                return found(url, file.display().to_string());
            }
        }
        IndexChoice { url: None, origin: "uv's configuration or built-in default".into() }
    }
}

/// `index-url` from the `[install]` or `[global]` section of a pip.conf (install wins, as in pip).
fn pip_conf_index(text: &str) -> Option<String> {
    let mut section = String::new();
    let (mut global, mut install) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else { continue };
        if key.trim().replace('_', "-") != "index-url" {
            continue;
        }
        let value = Some(value.trim().to_string());
        match section.as_str() {
            "global" => global = value,
            "install" => install = value,
            _ => {}
        }
    }
    install.or(global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_conf_install_section_wins_over_global() {
        let text = "[global]\ntimeout = 60\nindex-url = http://a/simple\n\n[install]\nindex_url=http://b/simple\n";
        assert_eq!(pip_conf_index(text).as_deref(), Some("http://b/simple"));
        assert_eq!(pip_conf_index("[global]\nindex-url: http://a/simple\n").as_deref(), Some("http://a/simple"));
        assert_eq!(pip_conf_index("[freeze]\nindex-url = http://c\n"), None);
    }

    #[test]
    fn flags_win_for_named_indexes() {
        let settings = IndexSettings {
            flags: [("team".to_string(), "file:///srv/wheels/".to_string())].into(),
            config: Default::default(),
            config_path: None,
            env_var: |name| format!("INDEX_{name}"),
            env: [("INDEX_team".to_string(), "file:///elsewhere".to_string())].into(),
            pip_index_url: None,
            pip_config_files: vec![],
        };
        let choice = settings.resolve(Some("team"));
        assert_eq!(choice.url.as_deref(), Some("file:///srv/wheels"));
        assert!(choice.origin.contains("--index"));
    }
}
