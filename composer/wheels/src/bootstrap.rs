//! uv without a manual step: on a machine without uv, the pinned uv release is taken from the
//! Python index as a wheel (downloaded by pip, which knows the machine's index configuration),
//! checked against the SHA-256 pinned here before it enters the store, and its `uv` binary run
//! from the store. A second build finds both in the store and downloads nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use composer_store::{Sha256, Store};

use crate::resolve::UV_VERSION;
use crate::{WheelError, WheelProblem};

/// The pinned uv wheels: (machine, wheel platform tag, SHA-256).
const UV_WHEELS: &[(&str, &str, &str)] = &[
    ("x86_64", "manylinux_2_17_x86_64", "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"),
    ("aarch64", "manylinux_2_17_aarch64", "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe"),
];

/// The uv binary of the pinned release, from the store, fetched (with `python`'s pip) and checked
/// first if the store lacks it.
pub fn pinned_uv(store: &Store, python: &Path, temp_dir: &Path) -> Result<PathBuf, WheelError> {
    let machine = std::env::consts::ARCH;
    let Some((_, tag, sha)) = UV_WHEELS.iter().find(|(m, _, _)| *m == machine) else {
        return Err(WheelError::NoUv);
    };
    let sha: Sha256 = sha.parse().expect("pinned digests are valid");
    let wheel = match store.lookup_sha256(&sha)? {
        Some(wheel) => wheel,
        None => download(store, python, temp_dir, tag, &sha)?,
    };
    // The binary inside, as an object of its own (made executable: objects are read-only).
    let mut archive = zip::ZipArchive::new(store.open_verified_file(&wheel.id)?).map_err(|e| WheelError::BadWheel {
        wheel: format!("uv {UV_VERSION}"),
        entry: None,
        reason: Box::new(WheelProblem::Zip(e)),
    })?;
    let member = format!("uv-{UV_VERSION}.data/scripts/uv");
    let mut binary = Vec::new();
    archive
        .by_name(&member)
        .map_err(|e| WheelError::BadWheel {
            wheel: format!("uv {UV_VERSION}"),
            entry: Some(member.clone()),
            reason: Box::new(WheelProblem::Zip(e)),
        })?
        .read_to_end(&mut binary)
        .map_err(|e| WheelError::Io { what: format!("reading {member}"), source: e })?;
    let id = store.put_content(&binary)?;
    let path = store.object_path(&id);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555))
        .map_err(|e| WheelError::Io { what: format!("making {} executable", path.display()), source: e })?;
    Ok(path)
}

fn download(
    store: &Store,
    python: &Path,
    temp_dir: &Path,
    tag: &str,
    sha: &Sha256,
) -> Result<composer_store::BlobInfo, WheelError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| WheelError::Io { what: what.clone(), source: e }
    };
    let dir = composer_store::staging::Staged::work_dir(temp_dir, "compose-uv-").map_err(io("making a directory"))?;
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--platform", tag])
        // The wheel is py3-none: any Python 3 it supports selects it.
        .args(["--python-version", "3.11", "--dest"])
        .arg(dir.path())
        .arg(format!("uv=={UV_VERSION}"))
        .output()
        .map_err(|source| WheelError::UvRun { uv: python.to_path_buf(), source })?;
    if !out.status.success() {
        return Err(WheelError::Resolve {
            platform: format!("uv {UV_VERSION}"),
            // pip's last lines say why; before them it lists every version it passed over.
            detail: {
                let text = String::from_utf8_lossy(&out.stderr);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(3)..].join("\n")
            },
            hint: format!("pip could not fetch uv {UV_VERSION}: install it, or point COMPOSE_UV at it"),
        });
    }
    let file = std::fs::read_dir(dir.path())
        .map_err(io("listing the download"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or(WheelError::NoUv)?;
    let mut reader = std::fs::File::open(&file).map_err(io("reading the uv wheel"))?;
    let mut writer = store.writer()?;
    std::io::copy(&mut reader, &mut writer).map_err(io("storing the uv wheel"))?;
    // Whatever the index served, only the pinned bytes are kept.
    Ok(writer.finish_checked(Some((sha, &format!("uv {UV_VERSION} wheel"))), None)?)
}
