//! A bundle's lock files: the only names it may carry them under, what its signing key signs
//! over them, and how `compose store import --locks-to DIR` writes them.
//!
//! A lock pins what a build uses, so a bundle's locks are written only where a trusted key
//! signed them, and only under the names compose itself gives a recipe's locks: a crafted
//! bundle naming `.envrc`, `evil.toml` or `../x.lock` is refused before anything is written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use composer_store::Sha256;
use composer_store::staging::Staged;

use crate::{BadLockName, CacheError, LockFileProblem, LocksDirProblem};

/// What a lock signature covers is prefixed with this, on top of the signing module's own
/// prefix, so that it can never pass for a signature over a step's claim (a JSON object).
const CONTEXT: &[u8] = b"composer-locks-v1\n";

/// No lock compose writes comes near this; a bigger one is not read.
pub const MAX_LOCK: u64 = 64 << 20;

/// Whether `name` is one compose gives a recipe's lock file: `<recipe>.lock` (as
/// `composer_planner::lockfile::lock_path` names it) or `pylock.<recipe>-<platform>.toml` (as
/// `composer_wheels::pylock::pylock_path` does), for a recipe whose file name is plain: not
/// hidden, no separator, no control character.
pub fn check_name(name: &str) -> Result<(), BadLockName> {
    let stem_ok = |stem: &str| {
        !stem.is_empty() && !stem.starts_with('.') && !stem.chars().any(|c| c.is_control() || matches!(c, '/' | '\\'))
    };
    let fits = name.len() <= 255
        && if let Some(rest) = name.strip_prefix("pylock.").and_then(|r| r.strip_suffix(".toml")) {
            rest.rsplit_once("-linux-").is_some_and(|(stem, platform)| {
                let platform = format!("linux/{}", platform.replace('-', "/"));
                // Only the platform's own spelling, as compose writes it (`linux/arm64`, not `linux/arm64/v8`).
                stem_ok(stem)
                    && !stem.contains('.')
                    && platform.parse::<composer_recipe::Platform>().is_ok_and(|p| p.to_string() == platform)
            })
        } else {
            name.strip_suffix(".lock").is_some_and(stem_ok)
        };
    match fits {
        true => Ok(()),
        false => Err(BadLockName(name.to_string())),
    }
}

/// The bytes a bundle's signing key signs over its lock files (names checked by [`check_name`],
/// so none holds a newline).
pub fn signed_message(files: &[(String, Sha256, u64)]) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    for (name, sha, size) in files {
        message.extend_from_slice(format!("{} {size} {name}\n", sha.oci()).as_bytes());
    }
    message
}

/// Lock files checked against what is in the directory they go to: every one either missing
/// there (to be written) or already there with the same bytes.
pub struct LockWrites {
    new: Vec<(PathBuf, Vec<u8>)>,
    unchanged: Vec<PathBuf>,
}

/// Checks where each of `locks` would go in `dir` before anything is written: a name compose
/// would not give, or a file there that differs (it may be newer than the bundle), a symbolic
/// link or anything but a regular file refuses them all.
pub fn plan_writes(dir: &Path, locks: &[(String, Vec<u8>)]) -> Result<LockWrites, CacheError> {
    // The directory itself, before anything is imported: a typo found after the import would
    // leave the store changed and the locks nowhere.
    let not_usable = |reason| CacheError::LocksDir { path: dir.to_path_buf(), reason };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(not_usable(LocksDirProblem::NotADirectory)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_usable(LocksDirProblem::Missing)),
        Err(e) => return Err(CacheError::io("inspect", dir)(e)),
    }
    if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
        return Err(not_usable(LocksDirProblem::NotWritable));
    }
    let mut planned = LockWrites { new: Vec::new(), unchanged: Vec::new() };
    for (name, _) in locks {
        check_name(name).map_err(|e| CacheError::BadArtifact { what: "the bundle".into(), reason: e.into() })?;
    }
    for (name, bytes) in locks {
        let path = dir.join(name);
        let refuse = |reason| CacheError::LockFile { path: path.clone(), reason };
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC;
        let file = match rustix::fs::open(&path, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => std::fs::File::from(fd),
            Err(rustix::io::Errno::NOENT) => {
                planned.new.push((path, bytes.clone()));
                continue;
            }
            Err(rustix::io::Errno::LOOP) => return Err(refuse(LockFileProblem::Symlink)),
            Err(e) => return Err(CacheError::io("open", &path)(e.into())),
        };
        let meta = file.metadata().map_err(CacheError::io("inspect", &path))?;
        if !meta.is_file() {
            return Err(refuse(LockFileProblem::NotAFile));
        }
        let mut existing = Vec::new();
        file.take(MAX_LOCK + 1).read_to_end(&mut existing).map_err(CacheError::io("read", &path))?;
        if existing != *bytes {
            return Err(refuse(LockFileProblem::Differs));
        }
        planned.unchanged.push(path);
    }
    Ok(planned)
}

impl LockWrites {
    /// Writes the new lock files, each whole (a temp file renamed into place) and only where
    /// nothing has appeared meanwhile; returns every lock's path.
    pub fn write(self) -> Result<Vec<PathBuf>, CacheError> {
        let mut written = self.unchanged;
        for (path, bytes) in self.new {
            let (staged, mut file) = Staged::output_file(&path).map_err(CacheError::io("create", &path))?;
            file.write_all(&bytes).map_err(CacheError::io("write", &path))?;
            drop(file);
            staged.publish_new(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    CacheError::LockFile { path: path.clone(), reason: LockFileProblem::Appeared }
                }
                _ => CacheError::io("write", &path)(e),
            })?;
            written.push(path);
        }
        written.sort();
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_compose_gives_locks_pass() {
        for good in [
            "app.lock",
            "v1.2.lock",
            "pylock.app-linux-amd64.toml",
            "pylock.my-app-linux-arm64.toml",
            "pylock.app-linux-arm-v7.toml",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            ".envrc",
            "evil.toml",
            "x\ny.lock",
            "../a.lock",
            "a/b.lock",
            "a\\b.lock",
            "a\0.lock",
            ".lock",
            ".hidden.lock",
            "lock",
            "app.lock.toml",
            "pylock.app-linux-amd64.lock.toml",
            "pylock.app.x-linux-amd64.toml",
            "pylock.app-linux-arm64-v8.toml",
            "pylock.app-linux-sparc.toml",
            "pylock.-linux-amd64.toml",
            "",
        ] {
            let error = check_name(bad).unwrap_err();
            let error = error.to_string();
            assert!(!error.contains('\n') && !error.contains('\0'), "{error}");
        }
        assert!(check_name(&format!("{}.lock", "a".repeat(251))).is_err());
    }

    #[test]
    fn every_destination_is_checked_before_any_lock_is_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same.lock"), b"same").unwrap();
        std::fs::write(dir.path().join("other.lock"), b"theirs").unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", dir.path().join("link.lock")).unwrap();
        let lock = |name: &str, bytes: &[u8]| (name.to_string(), bytes.to_vec());
        for refused in [
            vec![lock("new.lock", b"new"), lock("other.lock", b"ours")],
            vec![lock("new.lock", b"new"), lock("link.lock", b"ours")],
            vec![lock("new.lock", b"new"), lock(".envrc", b"export X=1")],
        ] {
            assert!(plan_writes(dir.path(), &refused).is_err());
            assert!(!dir.path().join("new.lock").exists(), "nothing is written before all are checked");
        }
        assert_eq!(std::fs::read(dir.path().join("other.lock")).unwrap(), b"theirs");
        let written =
            plan_writes(dir.path(), &[lock("same.lock", b"same"), lock("new.lock", b"new")]).unwrap().write().unwrap();
        assert_eq!(written, [dir.path().join("new.lock"), dir.path().join("same.lock")]);
        assert_eq!(std::fs::read(dir.path().join("new.lock")).unwrap(), b"new");
    }
}
