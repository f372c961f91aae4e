//! Every environment variable composer reads, in one place.

/// The store directory (overridden by `--store`).
pub const COMPOSE_STORE: &str = "COMPOSE_STORE";
/// `COMPOSE_MIRROR_<NAME>`: the URL of mirror NAME (overridden by `--mirror NAME=URL`).
#[expect(dead_code, reason = "read by composer-planner; declared here so every variable is documented in one place")]
pub const COMPOSE_MIRROR_PREFIX: &str = "COMPOSE_MIRROR_";
/// `COMPOSE_INDEX_<NAME>`: the URL of Python index NAME (overridden by `--index NAME=URL`).
#[expect(dead_code, reason = "read by composer-wheels; declared here so every variable is documented in one place")]
pub const COMPOSE_INDEX_PREFIX: &str = "COMPOSE_INDEX_";
/// The uv binary that resolves wheel sets (default: `uv` on PATH).
#[expect(dead_code, reason = "read by composer-wheels; declared here so every variable is documented in one place")]
pub const COMPOSE_UV: &str = "COMPOSE_UV";
/// The bubblewrap binary that sandboxes build steps (default: `bwrap` on PATH).
#[expect(dead_code, reason = "read by composer-planner; declared here so every variable is documented in one place")]
pub const COMPOSE_BWRAP: &str = "COMPOSE_BWRAP";
/// Where build directories and the logs of failed builds go (default `/tmp`).
#[expect(dead_code, reason = "read by composer-planner; declared here so every variable is documented in one place")]
pub const TMPDIR: &str = "TMPDIR";
/// The apt configuration directory read for mirrors (default `/etc/apt`).
pub const COMPOSE_APT_DIR: &str = "COMPOSE_APT_DIR";
/// Set to any value to work without network (same as `--offline`).
pub const COMPOSE_OFFLINE: &str = "COMPOSE_OFFLINE";
/// Base of the default store location (`$XDG_CACHE_HOME/compose`).
pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
/// Base of the config file location (`$XDG_CONFIG_HOME/compose/config.toml`).
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub const HOME: &str = "HOME";
/// Disables colour in output.
pub const NO_COLOR: &str = "NO_COLOR";
/// The default image timestamp when a recipe sets none (reproducible-builds.org convention).
#[expect(dead_code, reason = "read by composer-planner; declared here so every variable is documented in one place")]
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
