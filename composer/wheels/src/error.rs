use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("no Python wheel target for {platform}: {reason}")]
    Target { platform: String, reason: String },
    #[error(
        "uv was not found\n  hint: install it (`pip install uv=={version}`, as tests/setup.sh does) or point COMPOSE_UV at it",
        version = crate::resolve::UV_VERSION
    )]
    NoUv,
    #[error("could not run {uv}: {source}")]
    UvRun { uv: PathBuf, source: std::io::Error },
    #[error("resolving wheels for {platform} failed:\n{detail}{}", if hint.is_empty() { String::new() } else { format!("\n  hint: {hint}") })]
    Resolve { platform: String, detail: String, hint: String },
    #[error(
        "no wheel of {package} {version} fits {platform} (tags {tags})\n  hint: pin a version that publishes a wheel for this platform, or drop the platform"
    )]
    NoWheel { package: String, version: String, platform: String, tags: String },
    #[error("wheel {wheel}{}: {reason}", entry.as_ref().map(|e| format!(", entry {e}")).unwrap_or_default())]
    BadWheel { wheel: String, entry: Option<String>, reason: String },
    #[error("wheel lock {path}: {reason}")]
    Lock { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] composer_store::StoreError),
}
