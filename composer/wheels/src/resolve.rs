//! Resolution for a target interpreter, by the `uv` binary (a proven PubGrub resolver) run with
//! the target's `--python-platform` and `--python-version`, writing PEP 751. composer then
//! evaluates each package's markers for the target and picks the wheel its tags rank first,
//! so that the lock names exactly what will be installed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use crate::index_url::IndexChoice;
use serde::Deserialize;

use crate::pylock::{ComposerTool, LockedWheel, Pylock, Wheel, WheelLock, file_name_of};
use crate::target::{Target, wheel_tags};
use crate::{WheelError, normalize_name};

pub use crate::UV_VERSION;

/// What a wheel set is resolved from.
#[derive(Debug, Clone)]
pub struct Request {
    pub requirements: Vec<String>,
    /// The requirements file's lines, with those of the files it includes, as compose read and
    /// checked them: uv is given this text, never the files.
    pub requirements_file: Option<String>,
    pub constraints: Vec<String>,
    /// The constraints file's lines and the constraints the files include, as above.
    pub constraints_file: Option<String>,
    pub only_binary: Vec<String>,
    /// Packages taken as sdists (and built) even where a wheel exists.
    pub no_binary: Vec<String>,
    pub index: IndexChoice,
    pub offline: bool,
}

/// Everything that decides a resolution for one target, hashed: a lock whose digest differs
/// is stale. File contents count, file paths do not.
pub fn inputs_digest(request: &Request, target: &Target) -> String {
    let files = |f: &Option<String>| f.clone();
    let mut value = serde_json::json!({
        "version": 1,
        "requirements": request.requirements,
        "requirements-file": files(&request.requirements_file),
        "constraints": request.constraints,
        "constraints-file": files(&request.constraints_file),
        "only-binary": request.only_binary,
        "index": request.index.url,
        "platform": target.platform,
        "python": target.python_full_version(),
        "glibc": target.libc.to_string(),
    });
    // Only when set, so that the digests of locks written before sdist builds stay valid.
    if !request.no_binary.is_empty() {
        value["no-binary"] = serde_json::json!(request.no_binary);
    }
    blake3_hex(value.to_string().as_bytes())
}

fn blake3_hex(data: &[u8]) -> String {
    composer_store::Hash::of(data).to_hex()
}

/// Resolves `request` for `target` with the uv binary `uv`, working in a directory made under
/// `temp_dir`.
pub fn resolve(uv: &Path, request: &Request, target: &Target, temp_dir: &Path) -> Result<WheelLock, WheelError> {
    let work = composer_store::staging::Staged::work_dir(temp_dir, "compose-uv-")
        .map_err(|e| WheelError::Io { what: "creating a temporary directory".into(), source: e })?;
    let io = |what: &str| {
        let what = what.to_string();
        move |source| WheelError::Io { what, source }
    };
    let mut requirements: String = request.requirements.iter().map(|r| format!("{r}\n")).collect();
    if let Some(text) = &request.requirements_file {
        requirements.push_str(text);
    }
    let mut constraints: String = request.constraints.iter().map(|r| format!("{r}\n")).collect();
    if let Some(text) = &request.constraints_file {
        constraints.push_str(text);
    }
    let (req_path, con_path, out_path) =
        (work.path().join("requirements.in"), work.path().join("constraints.txt"), work.path().join("pylock.toml"));
    std::fs::write(&req_path, requirements).map_err(io("writing the requirements for uv"))?;
    std::fs::write(&con_path, constraints).map_err(io("writing the constraints for uv"))?;

    let mut cmd = Command::new(uv);
    // `--native-tls`: trust the machine's certificate store, as composer's own client does.
    cmd.args(["pip", "compile", "--quiet", "--no-header", "--native-tls", "--format", "pylock.toml"])
        .arg(&req_path)
        .arg("--constraints")
        .arg(&con_path)
        .args(["--python-version", &target.python_full_version()])
        .arg("--output-file")
        .arg(&out_path)
        .current_dir(work.path());
    match target.uv_platform() {
        Some(platform) => cmd.args(["--python-platform", &platform]),
        // No uv target for this machine: a universal resolution, which keeps every package with
        // its markers and every wheel; `select_wheels` evaluates both for the target, as it
        // does for every lock.
        None => cmd.arg("--universal"),
    };
    // Wheels only: `--no-build` (uv refuses it beside `--only-binary`), which also keeps uv from
    // running any sdist's build backend on this machine. Otherwise the recipe's lists, as pip's.
    if request.only_binary.iter().any(|o| o == ":all:") && request.no_binary.is_empty() {
        cmd.arg("--no-build");
    } else {
        for name in &request.only_binary {
            cmd.args(["--only-binary", name]);
        }
        for name in &request.no_binary {
            cmd.args(["--no-binary", name]);
        }
    }
    if let Some(url) = &request.index.url {
        cmd.args(["--default-index", url]);
    }
    if request.offline {
        cmd.arg("--offline");
    }
    let output = cmd.output().map_err(|source| WheelError::UvRun { uv: uv.to_path_buf(), source })?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(WheelError::Resolve { platform: target.platform.clone(), hint: hint_for(&detail, target), detail });
    }
    let text = std::fs::read_to_string(&out_path).map_err(io("reading uv's pylock.toml"))?;
    let lock: Pylock = toml::from_str(&text).map_err(|e| WheelError::Resolve {
        platform: target.platform.clone(),
        detail: format!("uv wrote a pylock.toml composer cannot read: {e}"),
        hint: format!("composer is tested with uv {UV_VERSION}"),
    })?;
    let mut requested: Vec<String> = request
        .requirements
        .iter()
        .filter_map(|r| pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(r).ok())
        .map(|r| normalize_name(r.name.as_ref()))
        .collect();
    if let Some(text) = &request.requirements_file {
        requested.extend(requirement_file_names(text));
    }
    requested.sort();
    requested.dedup();
    let no_binary: Vec<String> = request.no_binary.iter().map(|n| normalize_name(n)).collect();
    Ok(WheelLock {
        wheels: select_wheels(lock, target, work.path(), &no_binary)?,
        meta: ComposerTool {
            platform: target.platform.clone(),
            python: target.python_full_version(),
            glibc: target.libc.to_string(),
            inputs: inputs_digest(request, target),
            requested,
            build_wheels: None,
            package_build_wheels: Default::default(),
        },
    })
}

/// The names a pip requirements file asks for (options and includes are skipped).
fn requirement_file_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .filter_map(|l| pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(l).ok())
        .map(|r| normalize_name(r.name.as_ref()))
        .collect()
}

/// Keeps the packages whose markers hold on the target and, for each, the wheel the target's
/// tags rank best; or its sdist, when it is in `no_binary` or no wheel fits the target.
pub fn select_wheels(
    lock: Pylock,
    target: &Target,
    lock_dir: &Path,
    no_binary: &[String],
) -> Result<Vec<LockedWheel>, WheelError> {
    let environment = target.marker_environment();
    let tags = target.tags();
    let rank: HashMap<&str, usize> = tags.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut out = Vec::new();
    for package in lock.packages {
        if let Some(marker) = &package.marker {
            let tree = pep508_rs::MarkerTree::from_str(marker).map_err(|e| WheelError::Resolve {
                platform: target.platform.clone(),
                detail: format!("package {} has a marker composer cannot read: {e}", package.name),
                hint: String::new(),
            })?;
            if !tree.evaluate(&environment, &[]) {
                continue;
            }
        }
        let version = package.version.clone().unwrap_or_default();
        let no_wheel = || WheelError::NoWheel {
            package: package.name.clone(),
            version: version.clone(),
            platform: target.platform.clone(),
            tags: tags.iter().take(3).chain(tags.last()).cloned().collect::<Vec<_>>().join(", "),
        };
        let best = package
            .wheels
            .iter()
            .flatten()
            .filter_map(|wheel| {
                let filename =
                    wheel.name.clone().or_else(|| wheel.url.as_deref().or(wheel.path.as_deref()).map(file_name_of))?;
                let best_rank = wheel_tags(&filename)?.iter().filter_map(|t| rank.get(t.as_str()).copied()).min()?;
                Some((best_rank, filename, wheel))
            })
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let name = normalize_name(&package.name);
        let sdist = package.sdist.as_ref().and_then(|v| Wheel::deserialize(v.clone()).ok());
        let (filename, wheel, is_sdist) = match (best, sdist) {
            (Some((_, filename, wheel)), _) if !no_binary.contains(&name) => (filename, wheel.clone(), false),
            (_, Some(sdist)) => {
                let filename = sdist
                    .name
                    .clone()
                    .or_else(|| sdist.url.as_deref().or(sdist.path.as_deref()).map(file_name_of))
                    .ok_or_else(no_wheel)?;
                (filename, sdist, true)
            }
            _ => return Err(no_wheel()),
        };
        let url = match (&wheel.url, &wheel.path) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => {
                let full = lock_dir.join(path);
                let full = full.canonicalize().unwrap_or(full);
                format!("file://{}", full.display())
            }
            (None, None) => return Err(no_wheel()),
        };
        let sha256 = wheel.hashes.get("sha256").cloned().ok_or_else(|| WheelError::Resolve {
            platform: target.platform.clone(),
            detail: format!("uv gave no sha256 for {filename}"),
            hint: "the index must publish sha256 hashes (PEP 503 `#sha256=` fragments)".into(),
        })?;
        out.push(LockedWheel { name, version, filename, url, size: wheel.size.unwrap_or(0), sha256, sdist: is_sdist });
    }
    out.sort();
    Ok(out)
}

fn hint_for(detail: &str, target: &Target) -> String {
    if detail.contains("matching platform tag")
        || detail.contains("matching Python ABI tag")
        || detail.contains("no wheels")
    {
        let tags = target.tags();
        return format!(
            "there is no wheel for {}; it accepts tags such as {}, {} and {} (or set `only_binary = []` in \
             [python] to build it from its sdist)",
            target.platform,
            tags[0],
            tags.get(1).map_or("", String::as_str),
            tags.last().map_or("", String::as_str)
        );
    }
    if detail.contains("not found in the package registry") || detail.contains("was not found") {
        return "check the package name, and that the index is the one you expect (--index, COMPOSE_INDEX_<NAME>, \
                PIP_INDEX_URL, pip.conf, UV_INDEX_URL)"
            .into();
    }
    if detail.contains("unsatisfiable") {
        return "relax the pins or constraints that conflict".into();
    }
    if detail.contains("offline") || detail.contains("Offline") {
        return "resolution needs the index; run `compose lock` online first, then builds work offline".into();
    }
    String::new()
}
