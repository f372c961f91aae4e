use std::path::PathBuf;

use crate::problems::{IndexDirProblem, SdistProblem, TargetProblem, WheelProblem};

#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("no Python wheel target for {platform}: {reason}")]
    Target {
        platform: String,
        #[source]
        reason: TargetProblem,
    },
    #[error("uv was not found on PATH")]
    NoUv,
    #[error("could not run {uv}: {source}")]
    UvRun { uv: PathBuf, source: std::io::Error },
    #[error("resolving wheels for {platform} failed:\n{detail}")]
    Resolve { platform: String, detail: String, hint: String },
    #[error("no wheel of {package} {version} fits {platform} (it accepts tags {tags})")]
    NoWheel { package: String, version: String, platform: String, tags: String },
    #[error("wheel {wheel}{}: {reason}", entry.as_ref().map(|e| format!(", entry {e}")).unwrap_or_default())]
    BadWheel {
        wheel: String,
        entry: Option<String>,
        #[source]
        reason: Box<WheelProblem>,
    },
    #[error("sdist {sdist}: {reason}")]
    BadSdist {
        sdist: String,
        #[source]
        reason: SdistProblem,
    },
    #[error("cannot use wheel lock `{}`", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("will not replace `{}`: {reason}", path.display())]
    NotAnIndex {
        path: PathBuf,
        #[source]
        reason: IndexDirProblem,
    },
    /// `what`: what was being done, as a phrase (`writing simple/index.html`).
    #[error("failed {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] composer_store::StoreError),
}

impl WheelError {
    pub fn hint(&self) -> Option<String> {
        match self {
            // The binary names the variable that points at it (composer/compose/src/hints.rs).
            WheelError::NoUv => {
                Some(format!("install it (`pip install uv=={}`, as tests/setup.sh does)", crate::UV_VERSION))
            }
            WheelError::Resolve { hint, .. } if !hint.is_empty() => Some(hint.clone()),
            WheelError::NoWheel { .. } => {
                Some("pin a version that publishes a wheel for this platform, build it from its sdist (`only_binary = []` in [python]), or drop the platform".into())
            }
            WheelError::BadWheel { .. } => {
                Some("the wheel is broken or malicious; pin another version or fix the index".into())
            }
            WheelError::BadSdist { .. } => {
                Some("fix the sdist's pyproject.toml, or pin a version or a wheel of the package".into())
            }
            WheelError::Lock { .. } => Some("delete the pylock file and run `compose lock`".into()),
            WheelError::NotAnIndex { .. } => {
                Some("name a new or empty directory, or one that an earlier `compose wheels index` wrote".into())
            }
            WheelError::Target { .. } => {
                Some("[python] needs a base with python3 and libc6 (or a musl image's own CPython), on a platform Python names a machine for (amd64, arm64, arm/v7, 386, ppc64le, s390x, riscv64)".into())
            }
            _ => None,
        }
    }
}
