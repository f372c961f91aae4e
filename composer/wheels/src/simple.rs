//! A static wheel index: `simple/` in PEP 503 HTML and PEP 691 JSON, the wheels in `files/`,
//! each with its core metadata beside it as `<wheel>.metadata` (PEP 658), so that pip and uv
//! install from it by `file://` or any static web server. The index is built beside its final
//! place and swapped in with one atomic exchange: readers see the old index or the new one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use composer_store::staging::Staged;

use crate::{IndexDirProblem, WheelError, WheelProblem, normalize_name};

/// A wheel to publish and where its bytes are.
#[derive(Debug, Clone)]
pub struct IndexWheel {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub source: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct IndexSummary {
    pub projects: usize,
    pub wheels: usize,
}

struct Entry {
    wheel: IndexWheel,
    metadata_sha256: String,
    requires_python: Option<String>,
    version: String,
}

pub fn write_index(out: &Path, wheels: &[IndexWheel]) -> Result<IndexSummary, WheelError> {
    let io = |what: String| move |source| WheelError::Io { what, source };
    check_replaceable(out)?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let staging =
        Staged::output_dir(out).map_err(io(format!("creating a staging directory in {}", parent.display())))?;
    let files = staging.path().join("files");
    std::fs::create_dir_all(&files).map_err(io(files.display().to_string()))?;

    let mut projects: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for wheel in wheels {
        if !seen.insert(wheel.filename.clone()) {
            continue;
        }
        if wheel.filename.contains('/') || !wheel.filename.ends_with(".whl") {
            return Err(WheelError::BadWheel {
                wheel: wheel.filename.clone(),
                entry: None,
                reason: Box::new(WheelProblem::NotAWheelName),
            });
        }
        let metadata = core_metadata(&wheel.source, &wheel.filename)?;
        let field = |key: &str| {
            String::from_utf8_lossy(&metadata)
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        };
        let project = field("Name:").map(|n| normalize_name(&n)).ok_or_else(|| WheelError::BadWheel {
            wheel: wheel.filename.clone(),
            entry: Some("METADATA".into()),
            reason: Box::new(WheelProblem::NoName),
        })?;
        let target = files.join(&wheel.filename);
        std::fs::copy(&wheel.source, &target).map_err(io(format!("copying {}", wheel.filename)))?;
        std::fs::write(files.join(format!("{}.metadata", wheel.filename)), &metadata)
            .map_err(io(format!("writing the metadata of {}", wheel.filename)))?;
        projects.entry(project).or_default().push(Entry {
            wheel: wheel.clone(),
            metadata_sha256: hex::encode(Sha256::digest(&metadata)),
            requires_python: field("Requires-Python:"),
            version: field("Version:").unwrap_or_default(),
        });
    }

    let simple = staging.path().join("simple");
    std::fs::create_dir_all(&simple).map_err(io(simple.display().to_string()))?;
    let mut root_html = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Simple index</title></head>\n<body>\n",
    );
    let mut root_json = Vec::new();
    for (project, entries) in &mut projects {
        entries.sort_by(|a, b| a.wheel.filename.cmp(&b.wheel.filename));
        root_html.push_str(&format!("<a href=\"{project}/\">{project}</a><br/>\n"));
        root_json.push(serde_json::json!({ "name": project }));
        let dir = simple.join(project);
        std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
        std::fs::write(dir.join("index.html"), project_html(project, entries))
            .map_err(io(format!("writing {project}/index.html")))?;
        std::fs::write(dir.join("index.json"), project_json(project, entries))
            .map_err(io(format!("writing {project}/index.json")))?;
    }
    root_html.push_str("</body>\n</html>\n");
    std::fs::write(simple.join("index.html"), root_html).map_err(io("writing simple/index.html".into()))?;
    let root = serde_json::json!({ "meta": { "api-version": "1.1" }, "projects": root_json });
    std::fs::write(simple.join("index.json"), root.to_string()).map_err(io("writing simple/index.json".into()))?;

    let written = listing(staging.path()).map_err(io(format!("listing {}", staging.path().display())))?;
    let marker: String = std::iter::once(MARKER_HEADER.to_string()).chain(written).map(|l| l + "\n").collect();
    std::fs::write(staging.path().join(MARKER), marker).map_err(io(MARKER.into()))?;
    let summary = IndexSummary { projects: projects.len(), wheels: projects.values().map(Vec::len).sum() };
    swap_into_place(staging, out)?;
    Ok(summary)
}

/// The file that marks a directory as an index this tool wrote, and lists every path it wrote
/// there: what may be replaced whole.
const MARKER: &str = ".compose-wheel-index";
const MARKER_HEADER: &str = "written by compose wheels index; replaced by it only while it holds nothing else:";

/// `out` may be replaced only if it is missing, an empty directory, or an index this tool wrote
/// that holds nothing else: never a directory of someone's files, never a file, and never an
/// index to which someone added a file (it would go with the index).
fn check_replaceable(out: &Path) -> Result<(), WheelError> {
    let refuse = |reason| WheelError::NotAnIndex { path: out.to_path_buf(), reason };
    let meta = match std::fs::symlink_metadata(out) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(WheelError::Io { what: format!("inspecting {}", out.display()), source }),
    };
    if !meta.is_dir() {
        return Err(refuse(IndexDirProblem::NotADirectory));
    }
    let found = listing(out).map_err(|source| WheelError::Io { what: format!("reading {}", out.display()), source })?;
    if found.is_empty() {
        return Ok(());
    }
    // Read as data: a regular file, bounded, never through a link.
    let marker = composer_store::confined::Confined::open(out).and_then(|dir| dir.read_file(MARKER, 16 << 20));
    let Ok(marker) = marker else {
        return Err(refuse(IndexDirProblem::Foreign));
    };
    let text = String::from_utf8_lossy(&marker);
    let mut lines = text.lines();
    if lines.next() != Some(MARKER_HEADER) {
        return Err(refuse(IndexDirProblem::OtherMarker));
    }
    let written: std::collections::BTreeSet<&str> = lines.collect();
    match found.iter().find(|path| path.as_str() != MARKER && !written.contains(path.as_str())) {
        Some(extra) => Err(refuse(IndexDirProblem::Stray(extra.clone()))),
        None => Ok(()),
    }
}

/// Every path beneath `dir`, relative to it, never following a link.
fn listing(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = todo.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if entry.file_type()?.is_dir() {
                todo.push((entry.path(), child.clone()));
            }
            out.push(child);
        }
    }
    out.sort();
    Ok(out)
}

/// Puts the staged directory at `out`: an atomic exchange when `out` exists, a rename when not.
fn swap_into_place(staging: Staged, out: &Path) -> Result<(), WheelError> {
    let fail = |source| WheelError::Io { what: format!("replacing {}", out.display()), source };
    // After the exchange the staging path holds the previous index, which publishing removes; on
    // failure the staging directory is removed with nothing left behind.
    staging.publish(|staging| composer_store::staging::replace_dir(staging, out)).map_err(fail)
}

/// The `*.dist-info/METADATA` of a wheel.
fn core_metadata(path: &Path, filename: &str) -> Result<Vec<u8>, WheelError> {
    let bad = |entry: Option<&str>, reason| WheelError::BadWheel {
        wheel: filename.to_string(),
        entry: entry.map(str::to_string),
        reason: Box::new(reason),
    };
    let file = std::fs::File::open(path).map_err(|e| bad(None, WheelProblem::CannotOpen(e)))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(None, WheelProblem::NotAZip(e)))?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .map(|n| n.into_owned())
        .ok_or_else(|| bad(None, WheelProblem::NoMetadata))?;
    let mut data = Vec::new();
    zip.by_name(&name)
        .map_err(|e| bad(Some(&name), WheelProblem::UnreadableZip(e)))?
        .read_to_end(&mut data)
        .map_err(|e| bad(Some(&name), WheelProblem::Unreadable(e)))?;
    Ok(data)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn project_html(project: &str, entries: &[Entry]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for {project}</title></head>\n<body>\n<h1>Links for {project}</h1>\n"
    );
    for e in entries {
        let requires = e
            .requires_python
            .as_deref()
            .map(|r| format!(" data-requires-python=\"{}\"", escape(r)))
            .unwrap_or_default();
        html.push_str(&format!(
            "<a href=\"../../files/{file}#sha256={sha}\"{requires} data-dist-info-metadata=\"sha256={meta}\" data-core-metadata=\"sha256={meta}\">{file}</a><br/>\n",
            file = escape(&e.wheel.filename),
            sha = e.wheel.sha256,
            meta = e.metadata_sha256,
        ));
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn project_json(project: &str, entries: &[Entry]) -> String {
    let mut versions: Vec<&str> = entries.iter().map(|e| e.version.as_str()).collect();
    versions.dedup();
    let files: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "filename": e.wheel.filename,
                "url": format!("../../files/{}", e.wheel.filename),
                "hashes": { "sha256": e.wheel.sha256 },
                "requires-python": e.requires_python,
                "size": e.wheel.size,
                "core-metadata": { "sha256": e.metadata_sha256 },
                "dist-info-metadata": { "sha256": e.metadata_sha256 },
            })
        })
        .collect();
    serde_json::json!({
        "meta": { "api-version": "1.1" },
        "name": project,
        "versions": versions,
        "files": files,
    })
    .to_string()
}
