//! The wheel set of a recipe's `[python]` section, per platform: locked by uv for the base's
//! own interpreter, fetched into the store, installed without pip into trees, and layered on
//! top of the base so that a change to the wheels rebuilds only their layers.
//!
//! Steps and their keys (only content hashes and recipe values):
//! - `wheel-install`: wheel sha256, install scheme (paths, interpreter), REQUESTED flag.
//! - `wheel-layer`: the install keys of its wheels, epoch, compression.
//! - `python-env`: the venv's path and interpreter version, epoch, compression.

use std::collections::BTreeMap;
use std::path::PathBuf;

use composer_recipe::{Platform, Python};
use composer_store::userfile::{self, Kind, Policy};
use composer_wheels::pylock::pylock_path;
use composer_wheels::resolve::{Request, inputs_digest};
use composer_wheels::{LockedWheel, Scheme, Target, WheelError, WheelLock};
use rayon::prelude::*;

use crate::lockfile::Lockfile;
use crate::{BuildError, LockPolicy, Session, StepReport};

/// One platform's wheel set and where it installs.
pub(crate) struct WheelPlan {
    pub platform: Platform,
    pub lock: WheelLock,
    pub target: Target,
    pub scheme: Scheme,
    pub venv: Option<String>,
}

/// Wheels grouped into at most `budget` layers (the largest alone, the rest together), the
/// groups in the name order of their first wheel.
pub(crate) fn group(wheels: &[LockedWheel], budget: usize) -> Vec<Vec<usize>> {
    let items: Vec<(&str, u64)> = wheels.iter().map(|w| (w.name.as_str(), w.size)).collect();
    let mut groups = crate::layers::largest_alone(&items, budget);
    groups.sort_by(|a, b| wheels[a[0]].name.cmp(&wheels[b[0]].name));
    groups
}

impl Session<'_> {
    pub(crate) fn python(&self) -> Option<&Python> {
        self.recipe.python.as_ref().filter(|p| !p.requirements.is_empty() || p.requirements_file.is_some())
    }

    /// The prefix of the CPython the recipe builds, if it builds one.
    pub(crate) fn interpreter_prefix(&self) -> Option<&str> {
        self.recipe.python.as_ref()?.build.as_ref().map(|b| b.prefix.trim_end_matches('/'))
    }

    fn wheel_request(&self, python: &Python) -> Result<Request, BuildError> {
        let read = |file: &Option<toml::Spanned<PathBuf>>, kind| -> Result<Option<(PathBuf, String)>, BuildError> {
            let Some(file) = file else { return Ok(None) };
            let path =
                std::path::absolute(self.recipe.dir.join(file.get_ref())).unwrap_or_else(|_| file.get_ref().clone());
            let text = read_with_includes(&path, &self.recipe.file_policy(kind), 0)?;
            Ok(Some((path, text)))
        };
        Ok(Request {
            requirements: python.requirements.iter().map(|r| r.get_ref().clone()).collect(),
            requirements_file: read(&python.requirements_file, Kind::REQUIREMENTS)?,
            constraints: python.constraints.iter().map(|r| r.get_ref().clone()).collect(),
            constraints_file: read(&python.constraints_file, Kind::CONSTRAINTS)?,
            only_binary: python.only_binary.clone(),
            no_binary: python.no_binary.get_ref().clone(),
            index: self.ctx.indexes.resolve(python.index.as_deref()),
            offline: self.ctx.offline,
        })
    }

    /// The wheel lock of every platform: from its pylock file when that was resolved for the
    /// same inputs, else (unless `--locked`) resolved again by uv and written when `write`.
    /// `refresh` resolves whatever the files say (`compose lock`).
    pub(crate) fn wheel_locks(
        &self,
        lock: &Lockfile,
        policy: LockPolicy,
        write: bool,
        refresh: bool,
    ) -> Result<(Vec<WheelPlan>, Vec<StepReport>), BuildError> {
        let Some(python) = self.python() else { return Ok((Vec::new(), Vec::new())) };
        let request = self.wheel_request(python)?;
        let mut uv = None;
        let mut plans = Vec::new();
        let mut steps = Vec::new();
        let platforms = self.recipe.image.platforms.get_ref();
        // Resolve the stale platforms in parallel: uv's time is mostly waiting on the index.
        let mut todo = Vec::new();
        let mut ready: BTreeMap<usize, (Target, WheelLock, bool)> = BTreeMap::new();
        let built_python = self.built_python_version()?;
        let built_musl = self.built_musl_version()?;
        for (i, platform) in platforms.iter().enumerate() {
            let locked =
                lock.platforms.iter().find(|p| p.platform == platform.to_string()).expect("lock covers the recipe");
            // A musl image's interpreter and C library are both the recipe's builds: nothing of
            // the distribution decides its wheels.
            let target = match (&built_musl, &built_python) {
                (Some(musl), Some(python)) => Target::musl(platform, python, musl)?,
                _ => self.backend.wheel_target(platform, &locked.packages, built_python.as_deref())?,
            };
            let path = pylock_path(&self.recipe_path, &platform.to_string());
            let digest = inputs_digest(&request, &target);
            match WheelLock::read(&path)? {
                Some(existing) if !refresh && existing.meta.inputs == digest && !existing.lacks_build_wheels() => {
                    ready.insert(i, (target, existing, true));
                }
                existing => {
                    if policy == LockPolicy::Locked {
                        return Err(match existing {
                            None => BuildError::LockMissing { path },
                            Some(existing) if existing.meta.inputs == digest => BuildError::LockOutdated {
                                path,
                                reason: "it locks no build requirements for its sdists".into(),
                            },
                            Some(_) => BuildError::LockOutdated {
                                path,
                                reason: "the wheel requirements or the interpreter changed".into(),
                            },
                        });
                    }
                    if uv.is_none() {
                        uv = Some(self.uv()?);
                    }
                    todo.push((i, target, path));
                }
            }
        }
        if !todo.is_empty() {
            self.ctx.reporter.status("Resolving", &format!("wheels for {} platform(s) with uv", todo.len()));
        }
        let resolved: Vec<Result<(usize, Target, WheelLock), BuildError>> = todo
            .into_par_iter()
            .map(|(i, target, path)| {
                let uv = uv.as_deref().expect("found above");
                let wheel_lock = composer_wheels::resolve::resolve(uv, &request, &target, self.ctx.temp_dir)?;
                let wheel_lock = self.lock_build_wheels(uv, &request, &target, wheel_lock)?;
                if write {
                    wheel_lock.write(&path)?;
                }
                Ok((i, target, wheel_lock))
            })
            .collect();
        for result in resolved {
            let (i, target, wheel_lock) = result?;
            ready.insert(i, (target, wheel_lock, false));
        }
        // A pylock is a claim too: each wheel's URL must be a place the recipe and the user's
        // configuration allow, before anything of it is fetched.
        let origins = composer_wheels::origin::Origins {
            index: request.index.url.clone(),
            dirs: std::iter::once(self.recipe.dir.clone()).chain(self.recipe.allowed_paths.iter().cloned()).collect(),
        };
        for (i, (target, wheel_lock, cached)) in ready {
            let platform = platforms[i].clone();
            origins.check_lock(&wheel_lock).map_err(|reason| WheelError::Lock {
                path: pylock_path(&self.recipe_path, &platform.to_string()),
                source: reason.into(),
            })?;
            steps.push(StepReport {
                step: "resolve-wheels",
                platform: Some(platform.to_string()),
                name: format!("{} wheels", wheel_lock.wheels.len()),
                cached,
                bytes: 0,
                substituted: None,
                cross: None,
            });
            plans.push(self.wheel_plan(python, platform, target, wheel_lock));
        }
        Ok((plans, steps))
    }

    /// Locks what the lock's sdists build with: each sdist fetched into the store (checked
    /// against its locked sha256), its `[build-system] requires` read, and their union resolved
    /// by uv for the same target, as wheels only (a build requirement built from its own sdist
    /// would need build requirements of its own). One set serves every sdist of the platform.
    fn lock_build_wheels(
        &self,
        uv: &std::path::Path,
        request: &Request,
        target: &Target,
        mut lock: WheelLock,
    ) -> Result<WheelLock, BuildError> {
        if !lock.wheels.iter().any(|w| w.sdist) {
            return Ok(lock);
        }
        let mut requires = Vec::new();
        for sdist in lock.wheels.iter().filter(|w| w.sdist) {
            let (blob, _) = self.fetch_one(sdist)?;
            let file = self.ctx.store.open_verified_file(&blob.id)?;
            requires.extend(composer_wheels::sdist::build_requires(std::io::BufReader::new(file), &sdist.filename)?);
        }
        requires.sort();
        requires.dedup();
        let wheels = match requires.is_empty() {
            true => Vec::new(),
            false => {
                let build = Request {
                    requirements: requires,
                    requirements_file: None,
                    constraints: Vec::new(),
                    constraints_file: None,
                    only_binary: vec![":all:".into()],
                    no_binary: Vec::new(),
                    index: request.index.clone(),
                    offline: request.offline,
                };
                composer_wheels::resolve::resolve(uv, &build, target, self.ctx.temp_dir)?.wheels
            }
        };
        lock.meta.build_wheels = Some(wheels);
        Ok(lock)
    }

    /// The keys of one platform's install, layer and venv steps.
    fn wheel_plan(&self, python: &Python, platform: Platform, target: Target, wheel_lock: WheelLock) -> WheelPlan {
        let venv = python.venv().map(str::to_string);
        let scheme = match (&venv, self.interpreter_prefix()) {
            (Some(root), _) => Scheme::venv(root, &target.python_version()),
            (None, Some(prefix)) => Scheme::prefix(prefix, &target.python_version()),
            (None, None) => Scheme::system(&target.python_version()),
        };
        WheelPlan { platform, lock: wheel_lock, target, scheme, venv }
    }

    /// The environment variables a venv target adds to the image config.
    pub(crate) fn python_env(&self) -> Vec<(String, String)> {
        match self.python().and_then(Python::venv) {
            Some(root) => vec![("VIRTUAL_ENV".into(), root.to_string()), ("PATH".into(), format!("{root}/bin"))],
            None => vec![],
        }
    }
}

/// A pip requirements file with the files it includes (`-r`, `-c`) appended, so that a change in
/// any of them changes the lock's input digest. Included constraints are appended as `-c` lines,
/// which never count as requested packages.
/// Each file is read as the recipe's (confined to its directory, bounded, see
/// [`composer_store::userfile`]) and checked line by line before uv, which repeats a line it
/// cannot parse, reads it.
fn read_with_includes(path: &std::path::Path, policy: &Policy<'_>, depth: usize) -> Result<String, BuildError> {
    let mut text = userfile::read_text(path, policy).map_err(|source| BuildError::UserFile {
        what: "cannot read the Python requirements".into(),
        source: Box::new(source),
    })?;
    use composer_wheels::requirements::BadLine;
    match composer_wheels::requirements::first_bad_line(&text) {
        Some(BadLine::Unreadable(line)) => {
            return Err(BuildError::RequirementsLine { path: path.to_path_buf(), kind: policy.kind.name, line });
        }
        Some(BadLine::Refused(line, what)) => {
            return Err(BuildError::RequirementsOption {
                path: path.to_path_buf(),
                kind: policy.kind.name,
                line,
                what,
            });
        }
        None => {}
    }
    if depth >= 8 {
        return Ok(text);
    }
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut appended = String::new();
    for line in text.lines() {
        let line = line.trim();
        // As pip and uv split them: the value follows `=` or any whitespace (a TAB too), and a
        // short option's value may follow it directly (`-rfile`). Any other reading than theirs
        // would let uv open an include this check never confined.
        let separator = |c: char| c == '=' || c.is_whitespace();
        let include = |flag: &str| {
            let rest = line.strip_prefix(flag)?;
            let short = !flag.starts_with("--");
            (short || rest.starts_with(separator)).then(|| rest.trim_start_matches(separator).trim())
        };
        let included = |kind| Policy { kind, ..*policy };
        if let Some(file) = include("-r").or_else(|| include("--requirement")) {
            appended.push_str(&read_with_includes(&base.join(file), &included(Kind::REQUIREMENTS), depth + 1)?);
        } else if let Some(file) = include("-c").or_else(|| include("--constraint")) {
            for constraint in read_with_includes(&base.join(file), &included(Kind::CONSTRAINTS), depth + 1)?.lines() {
                appended.push_str(&format!("-c {constraint}\n"));
            }
        }
    }
    text.push('\n');
    text.push_str(&appended);
    Ok(text)
}

pub(crate) fn group_name(wheels: &[LockedWheel], group: &[usize]) -> String {
    match group {
        [one] => format!("{}=={}", wheels[*one].name, wheels[*one].version),
        _ => format!("{} and {} more", wheels[group[0]].name, group.len() - 1),
    }
}

impl Session<'_> {
    /// uv: the one on PATH (or named), else the pinned release, fetched into the store once.
    pub(crate) fn uv(&self) -> Result<std::path::PathBuf, BuildError> {
        if let Some(uv) = &self.ctx.tools.uv {
            return Ok(uv.clone());
        }
        let python = self.ctx.tools.python.as_deref().ok_or(WheelError::NoUv)?;
        self.ctx.reporter.status("Fetching", &format!("uv {} (none on PATH)", composer_wheels::resolve::UV_VERSION));
        Ok(composer_wheels::bootstrap::pinned_uv(self.ctx.store, python, self.ctx.temp_dir)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, size: u64) -> LockedWheel {
        LockedWheel {
            name: name.into(),
            version: "1".into(),
            filename: format!("{name}-1-py3-none-any.whl"),
            url: String::new(),
            size,
            sdist: false,
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn largest_wheels_get_their_own_layers() {
        let wheels = [wheel("a", 1), wheel("b", 50), wheel("c", 10), wheel("d", 30)];
        assert_eq!(group(&wheels, 8).len(), 4);
        assert_eq!(group(&wheels, 3), vec![vec![0, 2], vec![1], vec![3]]);
        assert_eq!(group(&wheels, 1), vec![vec![0, 1, 2, 3]]);
    }

    /// An include is confined however pip or uv would split it from its flag: a TAB, `=`, or
    /// nothing at all after a short flag (a TAB got past the check and uv printed the file).
    #[test]
    fn includes_are_confined_however_their_flag_is_written() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "MARKER:$6$salt:19000\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        for line in ["-c\t{}", "-r\t{}", "-r{}", "-c={}", "--requirement\t{}", "--constraint = {}"] {
            let file = dir.path().join("req.txt");
            std::fs::write(&file, format!("six\n{}\n", line.replace("{}", secret.to_str().unwrap()))).unwrap();
            let policy = Policy::within(Kind::REQUIREMENTS, dir.path(), &[]);
            let error = read_with_includes(&file, &policy, 0).expect_err(line).to_string();
            assert!(!error.contains("MARKER"), "{line}: {error}");
        }
    }
}
