use std::path::PathBuf;

use composer_store::Sha256;

use crate::problems::{BytecodeProblem, Outdated, ReleaseUnavailable, SdistSettingsProblem, SourceProblem, Unsettled};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Boxed: the recipe's errors carry located snippets, and every `Result` of the planner
    /// would otherwise be as large as they are.
    #[error(transparent)]
    Recipe(Box<composer_recipe::RecipeError>),
    #[error(
        "the build needs about {} in the store's filesystem ({}: its downloads and as much again for their \
         layers), and {} is free",
        composer_recipe::format_size(*needed),
        store.display(),
        composer_recipe::format_size(*free)
    )]
    NoSpace { store: PathBuf, needed: u64, free: u64 },
    /// A wheel's ELF file needs a library the image does not hold: it would fail to import.
    #[error("{count} librar{} the wheel set needs on {platform} {} not in the image:\n{missing}",
        if *count == 1 { "y" } else { "ies" }, if *count == 1 { "is" } else { "are" })]
    WheelLibraries {
        platform: String,
        count: usize,
        missing: String,
        packages: Vec<String>,
        /// `system_libraries = "add"` was on: what it could not add, the hint says so.
        adding: bool,
    },
    /// `system_libraries = "add"` could not settle what to add.
    #[error("cannot add the packages for the wheels' libraries on {platform}: {reason}")]
    SystemLibraries {
        platform: String,
        reason: Box<Unsettled>,
        #[source]
        source: Option<Box<BuildError>>,
    },
    #[error("cannot use lock file `{}`", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The same wording as the store's and the OCI writer's I/O errors.
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock file `{}` does not cover the recipe: {reason}", path.display())]
    LockOutdated {
        path: PathBuf,
        #[source]
        reason: Outdated,
    },
    #[error(
        "the lock file `{}` pins {} package(s) that the signed index does not hold as locked:\n  {}",
        lock.display(),
        packages.len(),
        packages.iter().map(|p| format!("{} (in {}): {}", p.package, p.index, p.reason)).collect::<Vec<_>>().join("\n  ")
    )]
    Unlisted { lock: PathBuf, packages: Vec<composer_distro::Unlisted> },
    #[error("the lock file `{}` is not a resolution of the recipe for {platform} ({set}): {reason}", lock.display())]
    LockNotAResolution {
        lock: PathBuf,
        platform: String,
        set: &'static str,
        /// The backend's reason, of its own type.
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot check the lock file `{}`: the signed Release it names (dated {date}, sha256 {digest}) {reason}", lock.display())]
    LockReleaseUnavailable {
        lock: PathBuf,
        date: String,
        digest: String,
        #[source]
        reason: Box<ReleaseUnavailable>,
    },
    #[error(
        "the mirror's Release (dated {offered}) is older than the one the lock file `{}` was made from (dated {locked}): \
         taking it would move packages back in time",
        lock.display()
    )]
    ReleaseDowngrade { lock: PathBuf, locked: String, offered: String },
    #[error("`--locked` was given but `{}` does not exist", path.display())]
    LockMissing { path: PathBuf },
    #[error("the jemalloc package for {platform} does not hold `{path}`")]
    Allocator { platform: String, path: String },
    #[error("cannot compile Python bytecode for {platform}: {reason}")]
    Bytecode {
        platform: String,
        #[source]
        reason: BytecodeProblem,
    },
    #[error(transparent)]
    Distro(#[from] composer_distro::DistroError),
    #[error(transparent)]
    Oci(#[from] composer_oci::OciError),
    #[error(transparent)]
    Store(#[from] composer_store::StoreError),
    /// A `[python.packages.NAME]` table that cannot apply.
    #[error("[python.packages.{package}] in `{}`: {reason}", recipe.display())]
    SdistSettings {
        recipe: PathBuf,
        package: String,
        #[source]
        reason: Box<SdistSettingsProblem>,
        hint: String,
    },
    #[error("the lock's digest for package `{package}` is unusable: {reason}")]
    BadDigest {
        package: String,
        #[source]
        reason: composer_store::NotASha256,
    },
    #[error(transparent)]
    Wheels(#[from] composer_wheels::WheelError),
    #[error("composer is offline and the store lacks {} file(s) this build needs:\n  {}", .0.len(), .0.join("\n  "))]
    OfflineMissing(Vec<String>),
    #[error("cannot fetch {what}")]
    Fetch {
        what: String,
        #[source]
        source: composer_client::FetchError,
    },
    #[error("source `{name}`: {reason}")]
    Source {
        name: String,
        #[source]
        reason: Box<SourceProblem>,
    },
    #[error("line {line} of the {kind} `{}` is neither a requirement nor an option pip documents (its text is not shown)", path.display())]
    RequirementsLine { path: PathBuf, kind: &'static str, line: usize },
    #[error("line {line} of the {kind} `{}` names {what}, which compose does not pass on to uv", path.display())]
    RequirementsOption { path: PathBuf, kind: &'static str, line: usize, what: &'static str },
    #[error("`{}` is included from files nested more than {depth} deep", path.display())]
    RequirementsDepth { path: PathBuf, depth: usize },
    /// A file the recipe names, refused or unreadable; `what` says what it was read for.
    #[error("{what}")]
    UserFile {
        what: String,
        #[source]
        source: Box<composer_store::userfile::UserFileError>,
    },
    #[error("bubblewrap (`bwrap`) is not installed; builds run in its sandbox")]
    NoSandbox,
    /// A build left a device, a FIFO or a socket where its outputs are read.
    #[error("the build left `{path}` in its output, which is neither a file, a directory nor a symlink")]
    StrangeOutput { path: String },
    #[error("building {sdist} left {count} wheels in dist/, not one")]
    WheelCount { sdist: String, count: usize },
    /// A layer of the image read for what a step needs of it (`purpose`: `for its libraries`).
    #[error("cannot read layer {layer} {purpose}")]
    LayerUnreadable {
        layer: Sha256,
        purpose: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lay out layer {layer} for bytecode")]
    LayerUnpack {
        layer: Sha256,
        #[source]
        source: std::io::Error,
    },
    #[error("build `{}` for {} failed ({}); the last lines of its log:\n{}", .0.name, .0.platform, .0.status, .0.tail)]
    BuildFailed(Box<FailedBuild>),
    /// A step's output adds up to more than `[limits] step_output`.
    #[error(
        "{step} left {} in its output directory, more than its limit of {} ([limits] step_output); its largest files: {}",
        composer_recipe::format_size(*.total),
        composer_recipe::format_size(*.limit),
        largest_files(.largest)
    )]
    OutputTooLarge { step: String, total: u64, limit: u64, largest: Vec<(String, u64)> },
    #[error("[config] user `{user}` names the {missing}, which the image does not have (it has: {known})")]
    ConfigUser { user: String, missing: String, known: String },
    #[error("`--platform {asked}` is not one of the recipe's platforms ({known})")]
    UnknownPlatform { asked: String, known: String },
    /// The caller asked the build to stop ([`crate::Context::interrupted`]).
    #[error("interrupted: the running build steps were stopped and their directories removed")]
    Interrupted,
}

/// A build step that exited non-zero: what the user needs to look into it.
impl From<composer_recipe::RecipeError> for BuildError {
    fn from(error: composer_recipe::RecipeError) -> Self {
        BuildError::Recipe(Box::new(error))
    }
}

#[derive(Debug)]
pub struct FailedBuild {
    pub name: String,
    pub platform: String,
    pub status: String,
    pub tail: String,
    pub log: PathBuf,
    pub kept: Option<PathBuf>,
    /// The command that opens a shell in the failed step's sandbox (when its directory is kept).
    pub shell: Option<Vec<std::ffi::OsString>>,
    /// The size of the sandbox's `/tmp`, when the log says a device was full: it may have been.
    pub scratch_full: Option<u64>,
}

fn largest_files(largest: &[(String, u64)]) -> String {
    let files: Vec<String> = largest
        .iter()
        .map(|(path, size)| format!("/{} ({})", path.escape_debug(), composer_recipe::format_size(*size)))
        .collect();
    files.join(", ")
}

impl BuildError {
    /// Whether this failed on a store object that did not match its name: the store has removed
    /// it and what was made from it, so building again redoes just that.
    pub fn is_damaged_store_object(&self) -> bool {
        use composer_store::StoreError;
        let corrupt = |e: &StoreError| matches!(e, StoreError::Corrupt { .. });
        let store = match self {
            BuildError::Store(e)
            | BuildError::Oci(composer_oci::OciError::Store(e))
            | BuildError::Distro(composer_distro::DistroError::Store(e))
            | BuildError::Wheels(composer_wheels::WheelError::Store(e)) => Some(e),
            BuildError::Fetch { source: composer_client::FetchError::Store(e), .. } => Some(e),
            _ => None,
        };
        if store.is_some_and(corrupt) {
            return true;
        }
        // A reader's verdict can also arrive inside an I/O error.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.get_ref().and_then(|i| i.downcast_ref::<StoreError>()).is_some_and(corrupt)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            BuildError::Recipe(e) => e.hint(),
            BuildError::SdistSettings { hint, .. } => Some(hint.clone()),
            BuildError::UserFile { source, .. } => source.hint(),
            BuildError::RequirementsLine { .. } => Some(
                "write one PEP 508 requirement per line (e.g. numpy>=1.26), or an option as pip has them (-r FILE, \
                 -c FILE, --hash=sha256:...); check that the recipe names the file meant"
                    .into(),
            ),
            BuildError::RequirementsDepth { .. } => {
                Some("a file that includes itself, directly or through others? Each `-r`/`-c` names a file once".into())
            }
            BuildError::RequirementsOption { .. } => Some(
                "the recipe names where wheels come from: `[python] index` (with `--index NAME=URL` or the config \
                 file) or pip's and uv's own configuration; a local project goes into a wheel index first \
                 (`compose wheels index`, or any PEP 503 directory named as an index)"
                    .into(),
            ),
            BuildError::LockOutdated { .. } => Some("run `compose lock` to resolve the recipe again".into()),
            BuildError::WheelLibraries { packages, adding: true, .. } => Some(format!(
                "`system_libraries = \"add\"` adds packages for the wheels the lock names, and only where the \
                 loader finds their libraries: these are needed by wheels built from sdists, or shipped elsewhere; \
                 add {} to `[base] packages`, or set `[config] env` LD_LIBRARY_PATH to where the library is",
                match packages.is_empty() {
                    true => "the packages that ship them".to_string(),
                    false => packages.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "),
                }
            )),
            BuildError::WheelLibraries { packages, .. } if !packages.is_empty() => Some(format!(
                "set `[python] system_libraries = \"add\"` to have them added (and locked), or add {} to \
                 `[base] packages`: manylinux wheels expect such system libraries to be installed",
                packages.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
            )),
            BuildError::WheelLibraries { .. } => Some(
                "add the packages that ship these libraries to `[base] packages` (or the builds that make them), or \
                 pick wheels that carry their own libraries"
                    .into(),
            ),
            BuildError::SystemLibraries { .. } => Some(
                "set `[python] system_libraries = \"check\"` and add the package that ships the library to `[base] \
                 packages` (its name in the index may differ from the one `Contents` gives), or pick wheels that \
                 carry their libraries"
                    .into(),
            ),
            BuildError::NoSpace { .. } => Some(
                "`compose store gc` removes what no recent build uses (`--dry-run` shows how much); else free \
                 space there, or point --store (COMPOSE_STORE) at a larger disk"
                    .into(),
            ),
            BuildError::OfflineMissing(_) => Some(
                "build once online to fill the store (`compose plan` lists what a build fetches), or drop --offline"
                    .into(),
            ),
            BuildError::Fetch { source: composer_client::FetchError::Offline { .. }, .. } => {
                Some("run the build once online to fill the store, or drop --offline".into())
            }
            BuildError::Unlisted { .. } => Some(
                "a lock is a claim checked against the signed Release it names, and this one was edited or came \
                 from somewhere untrusted (a bundle?); nothing was fetched or built: run `compose lock` to resolve \
                 the recipe again from the signed index"
                    .into(),
            ),
            BuildError::LockNotAResolution { .. } => Some(
                "each package is in the signed index, but the set is not what the recipe's requests resolve to: \
                 the lock was edited or came from somewhere untrusted (a bundle?); nothing was fetched or built: \
                 run `compose lock` to resolve the recipe again"
                    .into(),
            ),
            BuildError::LockReleaseUnavailable { .. } => Some(
                "run `compose lock` to resolve the recipe against the mirror's current Release, or import a bundle \
                 that carries the lock's release files (`compose bundle` adds them)"
                    .into(),
            ),
            BuildError::ReleaseDowngrade { .. } => Some(
                "the mirror is stale or replays an old Release; to go back on purpose, run `compose lock \
                 --allow-downgrade`"
                    .into(),
            ),
            BuildError::LockMissing { .. } => Some("run `compose lock` first, or build without `--locked`".into()),
            BuildError::Lock { .. } => Some("delete the lock file and run `compose lock`".into()),
            BuildError::Distro(e) => e.hint(),
            BuildError::Wheels(e) => e.hint(),
            BuildError::Allocator { .. } => {
                Some("use a suite whose jemalloc package ships the library, or set [allocator] name = \"system\"".into())
            }
            BuildError::Bytecode { .. } => Some(
                "add python3 to [base] packages (or build CPython with [python.build]), or set [python] bytecode = false"
                    .into(),
            ),
            // The binary names the variable that points at it (composer/compose/src/hints.rs).
            BuildError::NoSandbox => Some("install it (`apt-get install bubblewrap`)".into()),
            BuildError::BuildFailed(failed) => {
                let scratch = failed.scratch_full.map_or(String::new(), |size| {
                    format!(
                        "; if /tmp filled up, it holds at most {} in the sandbox: raise `[limits] scratch` in the recipe",
                        composer_recipe::format_size(size)
                    )
                });
                Some(match &failed.kept {
                    Some(dir) => format!(
                        "the whole log is {}; the build directory is kept at {}{scratch}",
                        failed.log.display(),
                        dir.display()
                    ),
                    None => format!(
                        "the whole log is {}; run again with --keep-failed to keep the build directory{scratch}",
                        failed.log.display()
                    ),
                })
            }
            BuildError::OutputTooLarge { limit, .. } => Some(format!(
                "if the output is meant to be this big, raise the limit in the recipe: [limits] step_output = \"{}\" \
                 (now {}); else have the build leave only what the image needs in $DESTDIR",
                composer_recipe::format_size(limit.saturating_mul(2)),
                composer_recipe::format_size(*limit)
            )),
            BuildError::Source { .. } => Some("check the source's url and sha256 in the recipe".into()),
            BuildError::ConfigUser { .. } => Some(
                "add the account under [[accounts.users]] (and [[accounts.groups]]), or give a numeric uid[:gid]".into(),
            ),
            BuildError::UnknownPlatform { .. } => Some("name one of the platforms in the recipe's [image] platforms".into()),
            _ => None,
        }
    }
}
