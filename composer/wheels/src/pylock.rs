//! PEP 751 lock files: reading what uv writes, and writing composer's own per-platform lock,
//! which names exactly one wheel per package (the one the target's tags prefer) with its URL,
//! size and sha256, plus a `[tool.composer]` table saying what it was resolved for.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::WheelError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pylock {
    pub lock_version: String,
    #[serde(default)]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default)]
    pub packages: Vec<Package>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Package {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheels: Option<Vec<Wheel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdist: Option<toml::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Wheel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    pub composer: ComposerTool,
}

/// What a composer pylock was resolved for; a build re-resolves when any of it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComposerTool {
    pub platform: String,
    pub python: String,
    /// The C library: glibc's version (`2.36`), or `musl 1.2` on a musl image.
    pub glibc: String,
    /// BLAKE3 of the requirement inputs (see [`crate::resolve::inputs_digest`]).
    pub inputs: String,
    /// Normalized names the recipe asked for directly (they get REQUESTED).
    pub requested: Vec<String>,
    /// The wheels the set's sdists build with (their `[build-system] requires`, resolved for
    /// the same target), laid into every sdist build: `None` when no sdist was locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_wheels: Option<Vec<LockedWheel>>,
    /// The wheels an sdist with extra build requirements (`[python.packages.NAME]
    /// build_requires`) builds with instead: its own `[build-system] requires` and the extra
    /// ones, resolved together, so that no other sdist's build changes. By normalized name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub package_build_wheels: BTreeMap<String, Vec<LockedWheel>>,
}

/// One wheel as locked for one platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedWheel {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    /// A source distribution, built into a wheel in the sandbox.
    pub sdist: bool,
}

/// A platform's wheel set as the build uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelLock {
    pub wheels: Vec<LockedWheel>,
    pub meta: ComposerTool,
}

impl WheelLock {
    pub fn to_toml(&self) -> String {
        let lock = Pylock {
            lock_version: "1.0".into(),
            created_by: "composer".into(),
            environments: vec![format!(
                "sys_platform == 'linux' and platform_machine == '{}' and python_full_version == '{}'",
                machine_of(&self.meta.platform),
                self.meta.python
            )],
            packages: self
                .wheels
                .iter()
                .map(|w| {
                    let file = Wheel {
                        name: Some(w.filename.clone()),
                        url: Some(w.url.clone()),
                        path: None,
                        size: Some(w.size),
                        hashes: [("sha256".to_string(), w.sha256.clone())].into(),
                    };
                    Package {
                        name: w.name.clone(),
                        version: Some(w.version.clone()),
                        marker: None,
                        sdist: w.sdist.then(|| toml::Value::try_from(&file).expect("serializes")),
                        wheels: (!w.sdist).then(|| vec![file]),
                    }
                })
                .collect(),
            tool: Some(Tool { composer: self.meta.clone() }),
        };
        let body = toml::to_string(&lock).expect("locks always serialize");
        format!("# Written by `compose lock` (PEP 751). Do not edit; run `compose lock` to refresh.\n{body}")
    }

    pub fn read(path: &Path) -> Result<Option<WheelLock>, WheelError> {
        // Beside its recipe, and there only, as the recipe's lock (a link out is refused).
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let policy = composer_store::userfile::Policy::within(composer_store::userfile::Kind::PYLOCK, dir, &[]);
        let text = match composer_store::userfile::read_text_if_exists(path, &policy) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(None),
            Err(e) => return Err(WheelError::Lock { path: path.to_path_buf(), source: e.into() }),
        };
        Self::parse(&text, path).map(Some)
    }

    /// Parses a pylock's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<WheelLock, WheelError> {
        let bad = |reason: String| WheelError::Lock { path: path.to_path_buf(), source: reason.into() };
        let lock: Pylock = toml::from_str(text).map_err(|e: toml::de::Error| WheelError::Lock {
            path: path.to_path_buf(),
            source: composer_store::userfile::located(text, e.span(), e.message()).into(),
        })?;
        let meta = lock.tool.ok_or_else(|| bad("it has no [tool.composer] table; run `compose lock`".into()))?.composer;
        let mut wheels = Vec::new();
        for package in lock.packages {
            let version = package.version.clone().unwrap_or_default();
            let sdist = match &package.sdist {
                Some(value) => Some(Wheel::deserialize(value.clone()).map_err(|e| bad(e.to_string()))?),
                None => None,
            };
            let (wheel, is_sdist) = match (package.wheels.as_deref(), &sdist) {
                (Some([one]), None) => (one, false),
                (None, Some(sdist)) => (sdist, true),
                _ => return Err(bad(format!("package {} must name exactly one wheel or one sdist", package.name))),
            };
            let (Some(url), Some(sha256)) = (&wheel.url, wheel.hashes.get("sha256")) else {
                return Err(bad(format!("the wheel of {} lacks a url or a sha256", package.name)));
            };
            let filename = wheel.name.clone().unwrap_or_else(|| file_name_of(url));
            check_file_name(&filename).map_err(|reason| bad(format!("package {}: {reason}", package.name)))?;
            wheels.push(LockedWheel {
                filename,
                name: package.name,
                version,
                url: url.clone(),
                size: wheel.size.unwrap_or(0),
                sha256: sha256.clone(),
                sdist: is_sdist,
            });
        }
        for wheel in meta.build_wheels.iter().flatten().chain(meta.package_build_wheels.values().flatten()) {
            check_file_name(&wheel.filename).map_err(|reason| bad(format!("build wheel {}: {reason}", wheel.name)))?;
            if wheel.sdist {
                return Err(bad(format!("build wheel {} is an sdist; build requirements are wheels only", wheel.name)));
            }
        }
        Ok(WheelLock { wheels, meta })
    }

    /// The build wheels of the sdist `name`: its own set when it has one, else the shared one.
    pub fn build_wheels_for(&self, name: &str) -> &[LockedWheel] {
        match self.meta.package_build_wheels.get(&crate::normalize_name(name)) {
            Some(own) => own,
            None => self.meta.build_wheels.as_deref().unwrap_or_default(),
        }
    }

    /// Whether the sdists' build requirements need locking: there are sdists and no build wheels.
    pub fn lacks_build_wheels(&self) -> bool {
        self.wheels.iter().any(|w| w.sdist) && self.meta.build_wheels.is_none()
    }

    pub fn write(&self, path: &Path) -> Result<(), WheelError> {
        let err = |e: std::io::Error| WheelError::Lock { path: path.to_path_buf(), source: e.into() };
        composer_store::staging::write_beside(path, self.to_toml().as_bytes()).map_err(err)
    }
}

/// The pylock file of one platform of a recipe: `pylock.<recipe>-<os>-<arch>[-<variant>].toml`
/// beside it (PEP 751 names may not hold dots, so the platform's slashes become dashes).
pub fn pylock_path(recipe: &Path, platform: &str) -> std::path::PathBuf {
    let stem = recipe.file_stem().and_then(|s| s.to_str()).unwrap_or("recipe").replace('.', "-");
    let name = format!("pylock.{stem}-{}.toml", platform.replace('/', "-"));
    recipe.with_file_name(name)
}

/// A locked file's name becomes a path (a mount in the build sandbox, a file of an index): one
/// plain component, whatever the lock file says.
fn check_file_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
    let known = [".whl", ".tar.gz", ".zip"].iter().any(|ext| name.ends_with(ext));
    match plain && known {
        true => Ok(()),
        false => Err(format!("`{}` is not a wheel or sdist file name", name.escape_debug())),
    }
}

pub fn file_name_of(url: &str) -> String {
    let path = url.split(['#', '?']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// `platform_machine` of an OCI platform name, for the lock's environment marker.
fn machine_of(platform: &str) -> &'static str {
    platform.parse().ok().and_then(|p| crate::target::machine(&p)).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composer_locks_round_trip() {
        let lock = WheelLock {
            wheels: vec![LockedWheel {
                name: "pyyaml".into(),
                version: "6.0.2".into(),
                filename: "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_aarch64.whl".into(),
                url: "file:///srv/files/PyYAML-6.0.2-cp311-cp311-manylinux_2_17_aarch64.whl".into(),
                size: 10,
                sdist: false,
                sha256: "ab".repeat(32),
            }],
            meta: ComposerTool {
                platform: "linux/arm64".into(),
                python: "3.11.2".into(),
                glibc: "2.36".into(),
                inputs: "00".into(),
                requested: vec!["pyyaml".into()],
                build_wheels: None,
                package_build_wheels: BTreeMap::new(),
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let path = pylock_path(&dir.path().join("app.recipe.toml"), "linux/arm64");
        assert_eq!(path.file_name().unwrap(), "pylock.app-recipe-linux-arm64.toml");
        lock.write(&path).unwrap();
        assert_eq!(WheelLock::read(&path).unwrap().unwrap(), lock);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("lock-version = \"1.0\"") && text.contains("[tool.composer]"), "{text}");

        let mut with_sdist = lock.clone();
        with_sdist.wheels[0].sdist = true;
        assert!(with_sdist.lacks_build_wheels());
        let mut setuptools = lock.wheels[0].clone();
        setuptools.filename = "setuptools-80.0.0-py3-none-any.whl".into();
        with_sdist.meta.build_wheels = Some(vec![setuptools]);
        with_sdist.write(&path).unwrap();
        assert_eq!(WheelLock::read(&path).unwrap().unwrap(), with_sdist);
        assert!(!with_sdist.lacks_build_wheels());
    }

    #[test]
    fn a_lock_naming_a_path_as_its_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pylock.x-linux-amd64.toml");
        for name in ["../../etc/passwd.whl", "a/b.whl", ".hidden.whl", "setup.py"] {
            let text = format!(
                "lock-version = \"1.0\"\n[[packages]]\nname = \"x\"\nversion = \"1\"\n\
                 wheels = [{{ name = \"{name}\", url = \"file:///x\", hashes = {{ sha256 = \"00\" }} }}]\n\
                 [tool.composer]\nplatform = \"linux/amd64\"\npython = \"3.13.5\"\nglibc = \"2.41\"\n\
                 inputs = \"00\"\nrequested = []\n"
            );
            let error = WheelLock::parse(&text, &path).unwrap_err();
            let said = format!("{}", std::error::Error::source(&error).unwrap());
            assert!(said.contains("is not a wheel or sdist file name"), "{name}: {said}");
        }
    }
}
