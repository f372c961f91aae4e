//! Every environment variable composer reads, in one place: the library crates read none; the
//! binary resolves each here (flag, then environment, then config file, then default) and passes
//! the values in.

/// The store directory (overridden by `--store`).
pub const COMPOSE_STORE: &str = "COMPOSE_STORE";
/// `COMPOSE_MIRROR_<NAME>`: the URL of mirror NAME (overridden by `--mirror NAME=URL`).
pub const COMPOSE_MIRROR_PREFIX: &str = "COMPOSE_MIRROR_";

/// The variable that names mirror `name`: upper case, `-` as `_`.
pub fn mirror_var(name: &str) -> String {
    format!("{COMPOSE_MIRROR_PREFIX}{}", name.to_ascii_uppercase().replace('-', "_"))
}
/// `COMPOSE_INDEX_<NAME>`: the URL of Python index NAME (overridden by `--index NAME=URL`).
pub const COMPOSE_INDEX_PREFIX: &str = "COMPOSE_INDEX_";

/// The variable that names index `name`: upper case, `-` as `_`.
pub fn index_var(name: &str) -> String {
    format!("{COMPOSE_INDEX_PREFIX}{}", name.to_ascii_uppercase().replace('-', "_"))
}
/// The uv binary that resolves wheel sets (default: `uv` on PATH).
pub const COMPOSE_UV: &str = "COMPOSE_UV";
/// The bubblewrap binary that sandboxes build steps (default: `bwrap` on PATH).
pub const COMPOSE_BWRAP: &str = "COMPOSE_BWRAP";
/// Where build directories and the logs of failed builds go (default `/tmp`).
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
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Where programs (bwrap, uv) are looked for.
pub const PATH: &str = "PATH";
/// The CA bundle that HTTPS is verified against, as pip, uv and curl read it.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// pip's index, used for wheel sets whose recipe names no index.
pub const PIP_INDEX_URL: &str = "PIP_INDEX_URL";
/// pip's configuration file; replaces the site, user and global ones.
pub const PIP_CONFIG_FILE: &str = "PIP_CONFIG_FILE";
/// An active virtual environment's pip.conf counts too, as pip reads it.
pub const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// Caches to substitute from, separated by spaces or commas (overridden by `--cache`).
pub const COMPOSE_CACHE: &str = "COMPOSE_CACHE";
/// Public keys whose signatures make cached results usable, separated by spaces.
pub const COMPOSE_TRUSTED_KEYS: &str = "COMPOSE_TRUSTED_KEYS";
/// The secret key file that signs pushed results (overridden by `--signing-key`).
pub const COMPOSE_SIGNING_KEY: &str = "COMPOSE_SIGNING_KEY";
/// The containers auth file podman and skopeo use, when set.
pub const REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
/// Where `$XDG_RUNTIME_DIR/containers/auth.json` (podman's login) lives.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// Docker's configuration directory (`config.json` holds its logins).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
