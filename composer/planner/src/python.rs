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
use crate::{BuildError, LockPolicy, Outdated, Session, StepReport};

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

    /// Reads and checks every file the recipe names that a build reads before it resolves:
    /// `[[files]] source` and the requirements files (the local `[[sources]]` are read by
    /// `source_digests`, which the graph takes first).
    pub(crate) fn check_local_files(&self) -> Result<(), BuildError> {
        for file in &self.recipe.files {
            if let (None, Some(source)) = (&file.content, &file.source) {
                crate::local::read(self.recipe, source, Kind::LOCAL_FILE).map_err(|source| BuildError::UserFile {
                    what: format!("cannot add `{}` to the image", file.path.get_ref()),
                    source: Box::new(source),
                })?;
            }
        }
        if let Some(python) = self.python() {
            self.wheel_request(python)?;
            self.check_patches(python)?;
        }
        Ok(())
    }

    fn wheel_request(&self, python: &Python) -> Result<Request, BuildError> {
        let mut flat = Flattened::default();
        let mut read = |file: &Option<toml::Spanned<PathBuf>>, kind, as_constraints| -> Result<bool, BuildError> {
            let Some(file) = file else { return Ok(false) };
            let path =
                std::path::absolute(self.recipe.dir.join(file.get_ref())).unwrap_or_else(|_| file.get_ref().clone());
            read_with_includes(&path, &self.recipe.file_policy(kind), 0, as_constraints, &mut flat)?;
            Ok(true)
        };
        let has_requirements = read(&python.requirements_file, Kind::REQUIREMENTS, false)?;
        let has_constraints = read(&python.constraints_file, Kind::CONSTRAINTS, true)?;
        // A requirements file's own `-c` includes are constraints as much as the constraints
        // file's lines.
        let has_constraints = has_constraints || !flat.constraints.is_empty();
        Ok(Request {
            requirements: python.requirements.iter().map(|r| r.get_ref().clone()).collect(),
            requirements_file: has_requirements.then_some(flat.requirements),
            constraints: python.constraints.iter().map(|r| r.get_ref().clone()).collect(),
            constraints_file: has_constraints.then_some(flat.constraints),
            only_binary: python.only_binary.clone(),
            no_binary: python.no_binary.get_ref().clone(),
            index: self.ctx.indexes.resolve(python.index.as_deref()),
            offline: self.ctx.offline,
        })
    }

    /// The wheel lock of every platform: from its pylock file when that was resolved for the
    /// same inputs, else (unless `--locked`) resolved again by uv. Nothing is written here: the
    /// caller writes the fresh ones ([`Session::write_wheel_locks`]) once everything they lead
    /// to is checked, so that a recipe that fails leaves its locks as they were.
    /// `refresh` resolves whatever the files say (`compose lock`).
    pub(crate) fn wheel_locks(
        &self,
        lock: &Lockfile,
        policy: LockPolicy,
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
            let digest = with_build_requires(inputs_digest(&request, &target), python);
            match WheelLock::read(&path)? {
                Some(existing)
                    if !refresh
                        && existing.meta.inputs == digest
                        && !existing.lacks_build_wheels()
                        && self.own_build_sets_match(&existing) =>
                {
                    ready.insert(i, (target, existing, true));
                }
                existing => {
                    if policy == LockPolicy::Locked {
                        return Err(match existing {
                            None => BuildError::LockMissing { path },
                            Some(existing) if existing.meta.inputs == digest && existing.lacks_build_wheels() => {
                                BuildError::LockOutdated { path, reason: Outdated::NoBuildRequirements }
                            }
                            Some(existing) if existing.meta.inputs == digest => {
                                BuildError::LockOutdated { path, reason: Outdated::BuildRequirementSets }
                            }
                            Some(_) => BuildError::LockOutdated { path, reason: Outdated::WheelInputs },
                        });
                    }
                    if uv.is_none() {
                        uv = Some(self.uv()?);
                    }
                    todo.push((i, target, path, digest));
                }
            }
        }
        if !todo.is_empty() {
            self.ctx.reporter.status("Resolving", &format!("wheels for {} platform(s) with uv", todo.len()));
        }
        let resolved: Vec<Result<(usize, Target, WheelLock), BuildError>> = todo
            .into_par_iter()
            .map(|(i, target, _path, digest)| {
                let uv = uv.as_deref().expect("found above");
                let mut wheel_lock = composer_wheels::resolve::resolve(uv, &request, &target, self.ctx.temp_dir)?;
                // The recipe's extra build requirements are inputs too, which uv never saw.
                wheel_lock.meta.inputs = digest;
                let wheel_lock = self.lock_build_wheels(uv, &request, &target, wheel_lock)?;
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
        let resolve = |mut requires: Vec<String>| -> Result<Vec<LockedWheel>, BuildError> {
            requires.sort();
            requires.dedup();
            if requires.is_empty() {
                return Ok(Vec::new());
            }
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
            Ok(composer_wheels::resolve::resolve(uv, &build, target, self.ctx.temp_dir)?.wheels)
        };
        let mut requires = Vec::new();
        let mut own_sets = BTreeMap::new();
        for sdist in lock.wheels.iter().filter(|w| w.sdist) {
            let (blob, _) = self.fetch_one(sdist)?;
            let file = self.ctx.store.open_verified_file(&blob.id)?;
            let declared = composer_wheels::sdist::build_requires(std::io::BufReader::new(file), &sdist.filename)?;
            // An sdist with extra build requirements gets a set of its own; the shared set stays
            // what it was, so that no other sdist's build changes.
            let extra = self.python().and_then(|p| p.package_build(&sdist.name)).map(|b| &b.build_requires);
            if let Some(extra) = extra.filter(|e| !e.is_empty()) {
                let mut own = declared.clone();
                own.extend(extra.iter().map(|r| r.get_ref().clone()));
                own_sets.insert(composer_wheels::normalize_name(&sdist.name), resolve(own)?);
            }
            requires.extend(declared);
        }
        lock.meta.build_wheels = Some(resolve(requires)?);
        lock.meta.package_build_wheels = own_sets;
        Ok(lock)
    }

    /// Writes the pylocks [`Session::wheel_locks`] resolved afresh (those its steps do not call
    /// cached).
    pub(crate) fn write_wheel_locks(&self, plans: &[WheelPlan], steps: &[StepReport]) -> Result<(), BuildError> {
        for plan in plans {
            let platform = plan.platform.to_string();
            let fresh = steps
                .iter()
                .any(|s| s.step == "resolve-wheels" && s.platform.as_deref() == Some(platform.as_str()) && !s.cached);
            if fresh {
                plan.lock.write(&pylock_path(&self.recipe_path, &platform))?;
            }
        }
        Ok(())
    }

    /// Whether a lock's sets of build wheels of its own are exactly for its sdists whose
    /// `[python.packages]` table gives `build_requires`: a set dropped would build without
    /// them, one added would build with requirements no recipe asked for.
    fn own_build_sets_match(&self, lock: &WheelLock) -> bool {
        let normal = composer_wheels::normalize_name;
        let wanted: std::collections::BTreeSet<String> = lock
            .wheels
            .iter()
            .filter(|w| w.sdist)
            .filter(|w| {
                self.python().and_then(|p| p.package_build(&w.name)).is_some_and(|b| !b.build_requires.is_empty())
            })
            .map(|w| normal(&w.name))
            .collect();
        lock.meta.package_build_wheels.keys().cloned().collect::<std::collections::BTreeSet<_>>() == wanted
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

/// The lock's inputs digest, with the recipe's extra build requirements when it has some (and
/// only then, so that every lock written before they existed stays valid).
fn with_build_requires(digest: String, python: &Python) -> String {
    let extra: BTreeMap<String, Vec<&str>> = python
        .packages
        .iter()
        .filter(|(_, b)| !b.build_requires.is_empty())
        .map(|(name, b)| {
            let name = composer_wheels::normalize_name(name.get_ref());
            (name, b.build_requires.iter().map(|r| r.get_ref().as_str()).collect())
        })
        .collect();
    if extra.is_empty() {
        return digest;
    }
    let text = serde_json::json!({ "inputs": digest, "build-requires": extra }).to_string();
    composer_store::Hash::of(text.as_bytes()).to_hex()
}

/// A requirements (or constraints) file as uv is given it: its lines and those of every file it
/// includes (`-r`, `-c`), each file read as the recipe's (confined to its directory, bounded,
/// see [`composer_store::userfile`]) and checked line by line, with the include lines themselves
/// left out. uv is handed this text, never the file: were it given the path, it would follow
/// the includes again its own way (deeper, through `file://` URLs, with `${VAR}` expanded) and
/// read files this check never saw.
#[derive(Debug, Default)]
pub(crate) struct Flattened {
    pub requirements: String,
    pub constraints: String,
}

/// How deep includes may nest; deeper is an error (a cycle, most likely), not a silent stop.
const MAX_INCLUDE_DEPTH: usize = 8;

fn read_with_includes(
    path: &std::path::Path,
    policy: &Policy<'_>,
    depth: usize,
    as_constraints: bool,
    out: &mut Flattened,
) -> Result<(), BuildError> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(BuildError::RequirementsDepth { path: path.to_path_buf(), depth: MAX_INCLUDE_DEPTH });
    }
    let text = userfile::read_text(path, policy).map_err(|source| BuildError::UserFile {
        what: "cannot read the Python requirements".into(),
        source: Box::new(source),
    })?;
    use composer_wheels::requirements::{BadLine, Include};
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
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let included = |kind| Policy { kind, ..*policy };
    for (_, line) in composer_wheels::requirements::logical_lines(&text) {
        match composer_wheels::requirements::include_of(&line) {
            Some(Include::Requirements(file)) => {
                let kind = if as_constraints { Kind::CONSTRAINTS } else { Kind::REQUIREMENTS };
                read_with_includes(&base.join(file), &included(kind), depth + 1, as_constraints, out)?;
            }
            Some(Include::Constraints(file)) => {
                read_with_includes(&base.join(file), &included(Kind::CONSTRAINTS), depth + 1, true, out)?;
            }
            None => {
                let into = if as_constraints { &mut out.constraints } else { &mut out.requirements };
                into.push_str(line.trim());
                into.push('\n');
            }
        }
    }
    Ok(())
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
            let error = read_with_includes(&file, &policy, 0, false, &mut Flattened::default()).expect_err(line);
            assert!(!error.to_string().contains("MARKER"), "{line}: {error}");
        }
    }

    /// What uv is given is what was checked: the includes' lines, not the include lines, so uv
    /// opens no file itself; and a cycle (or deeper nesting than 8) is an error, not a stop at
    /// which uv would go on alone.
    #[test]
    fn includes_are_flattened_for_uv_and_cycles_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("req.txt", "\u{feff}six\n-r more.txt\n-c pins.txt\n");
        write("more.txt", "attrs --hash=sha256:00\n");
        write("pins.txt", "six<2\n-r more-pins.txt\n");
        write("more-pins.txt", "attrs<30\n");
        let policy = Policy::within(Kind::REQUIREMENTS, dir.path(), &[]);
        let mut flat = Flattened::default();
        read_with_includes(&dir.path().join("req.txt"), &policy, 0, false, &mut flat).unwrap();
        assert_eq!(flat.requirements, "six\nattrs --hash=sha256:00\n");
        assert_eq!(flat.constraints, "six<2\nattrs<30\n");

        write("loop.txt", "six\n-r loop.txt\n");
        let error = read_with_includes(&dir.path().join("loop.txt"), &policy, 0, false, &mut Flattened::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("nested more than 8 deep"), "{error}");
    }
}
