//! Temporary files and directories beside what a user sees: a bundle, an image layout, a lock
//! file, a wheel index, a cache directory's blob. Each is written under a temp name and renamed
//! into place whole, so an error leaves the old file or nothing. A signal that ends the process
//! runs no destructor, though, so this module keeps every such temp path of the process in one
//! list: the one thread that ends the process on a signal calls [`abandon_all`], which removes
//! them all and keeps any more from being made or published.
//!
//! Making a staged path, publishing it (the rename into place) and abandoning all take the same
//! lock, so a signal finds each one either still staged (and removes it) or published whole.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagedKind {
    File,
    Dir,
}

static STAGED: Mutex<BTreeMap<u64, (PathBuf, StagedKind)>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn staged() -> MutexGuard<'static, BTreeMap<u64, (PathBuf, StagedKind)>> {
    // A panic while the list was held leaves it whole: every change is one insert or remove.
    STAGED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A temp file or directory beside a final path. Dropped unpublished, it is removed.
#[derive(Debug)]
pub struct Staged {
    id: u64,
    path: PathBuf,
    kind: StagedKind,
}

/// The temp name of `final_name` in its directory: hidden, and unique to this process and call.
pub fn staging_name(final_name: &str) -> String {
    format!(".{final_name}.tmp-{}", crate::temp_suffix())
}

impl Staged {
    /// Makes a temp path with `create` (which returns the path it made, as a `kind`, and what
    /// else it opened), listed before any signal can see it half made.
    pub fn create<T>(kind: StagedKind, create: impl FnOnce() -> io::Result<(PathBuf, T)>) -> io::Result<(Staged, T)> {
        let mut list = staged();
        let (path, made) = create()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        list.insert(id, (path.clone(), kind));
        Ok((Staged { id, path, kind }, made))
    }

    /// A new, empty directory in `parent`, named after `final_name`.
    pub fn dir(parent: &Path, final_name: &str) -> io::Result<Staged> {
        let path = parent.join(staging_name(final_name));
        Self::create(StagedKind::Dir, || fs::create_dir(&path).map(|()| (path.clone(), ()))).map(|(staged, ())| staged)
    }

    /// A new file in `parent`, named after `final_name`, open for writing.
    pub fn file(parent: &Path, final_name: &str) -> io::Result<(Staged, fs::File)> {
        let path = parent.join(staging_name(final_name));
        Self::create(StagedKind::File, || {
            fs::File::options().write(true).create_new(true).open(&path).map(|file| (path.clone(), file))
        })
    }

    /// A new working directory in `temp_dir` (`<prefix><random>`, private to the user), removed
    /// when dropped or when a signal ends the process.
    pub fn work_dir(temp_dir: &Path, prefix: &str) -> io::Result<Staged> {
        use std::os::unix::fs::PermissionsExt;
        Self::create(StagedKind::Dir, || {
            let dir = tempfile::Builder::new()
                .prefix(prefix)
                .permissions(fs::Permissions::from_mode(0o700))
                .tempdir_in(temp_dir)?;
            Ok((dir.keep(), ()))
        })
        .map(|(staged, ())| staged)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `publish` (the rename of this path, or of something in it, into its final place) where
    /// no signal's cleanup can run beside it; afterwards the path is no longer this process's to
    /// remove. A failed `publish` leaves it staged, and so removed when `self` drops.
    pub fn publish<T>(self, publish: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
        let mut list = staged();
        let published = publish(&self.path)?;
        list.remove(&self.id);
        drop(list);
        // What is left of it (a directory whose content was renamed out) is removed outside the lock.
        if self.kind == StagedKind::Dir {
            let _ = fs::remove_dir_all(&self.path);
        }
        std::mem::forget(self);
        Ok(published)
    }

    /// Keeps the path where it is, no longer this process's to remove (a failed build's
    /// directory that the user asked to keep).
    pub fn keep(self) -> PathBuf {
        staged().remove(&self.id);
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Removed while still listed but without the lock: a build directory takes a while, and
        // other threads make and publish their paths meanwhile. A signal in between removes it
        // too, which both removals allow (a path already gone is no error).
        remove(&self.path, self.kind);
        staged().remove(&self.id);
    }
}

fn remove(path: &Path, kind: StagedKind) {
    match kind {
        StagedKind::File => {
            let _ = fs::remove_file(path);
        }
        // remove_dir_all removes the links a directory holds, never what they point to.
        StagedKind::Dir => {
            // A thread still writing into the directory can add an entry between the removal of
            // its content and of the directory itself.
            for _ in 0..3 {
                match fs::remove_dir_all(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
                    _ => break,
                }
            }
        }
    }
}

/// Replaces the file at `path` with `bytes` whole: a temp file beside it, renamed over it.
pub fn write_beside(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let (staged, mut file) = Staged::file(parent, name)?;
    io::Write::write_all(&mut file, bytes)?;
    staged.publish(|temp| fs::rename(temp, path))
}

/// Keeps every staged path from being made or published while it lives.
pub struct Abandoned(#[allow(dead_code)] MutexGuard<'static, BTreeMap<u64, (PathBuf, StagedKind)>>);

/// Removes every staged path of this process, for the thread about to end it: the returned
/// guard keeps other threads from making or publishing any more until the process is gone.
pub fn abandon_all() -> Abandoned {
    let mut list = staged();
    for (path, kind) in std::mem::take(&mut *list).into_values() {
        remove(&path, kind);
    }
    Abandoned(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    // One test, since abandon_all acts on the whole process's list.
    #[test]
    fn staged_paths_are_removed_when_dropped_or_abandoned_and_kept_once_published() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = Staged::file(dir.path(), "a.lock").unwrap();
        assert!(file.path().file_name().unwrap().to_string_lossy().starts_with(".a.lock.tmp-"));
        drop(file);
        write_beside(&dir.path().join("a.lock"), b"old").unwrap();
        write_beside(&dir.path().join("a.lock"), b"lock").unwrap();
        assert_eq!(names(dir.path()), ["a.lock"]);
        assert_eq!(fs::read(dir.path().join("a.lock")).unwrap(), b"lock");

        let work = Staged::work_dir(dir.path(), "compose-import-").unwrap();
        assert!(work.path().file_name().unwrap().to_string_lossy().starts_with("compose-import-"));
        drop(work);
        let kept = Staged::work_dir(dir.path(), "compose-build-").unwrap().keep();
        fs::remove_dir(kept).unwrap();

        let staging = Staged::dir(dir.path(), "bundle").unwrap();
        fs::write(staging.path().join("bundle.tar"), b"tar").unwrap();
        staging.publish(|temp| fs::rename(temp.join("bundle.tar"), dir.path().join("bundle"))).unwrap();
        assert_eq!(names(dir.path()), ["a.lock", "bundle"], "the emptied staging directory is gone");

        let failed = Staged::dir(dir.path(), "index").unwrap();
        fs::write(failed.path().join("x"), b"x").unwrap();
        let error = failed.publish(|temp| fs::rename(temp.join("missing"), dir.path().join("index")));
        assert!(error.is_err());
        assert_eq!(names(dir.path()), ["a.lock", "bundle"], "a failed publish removes the staging");

        let dropped = Staged::file(dir.path(), "b").unwrap();
        drop(dropped);
        assert_eq!(names(dir.path()), ["a.lock", "bundle"]);

        let kept_dir = Staged::dir(dir.path(), "layout").unwrap();
        fs::create_dir(kept_dir.path().join("blobs")).unwrap();
        fs::write(kept_dir.path().join("blobs/x"), b"x").unwrap();
        let (kept_file, _) = Staged::file(dir.path(), "c").unwrap();
        let kept_work = Staged::work_dir(dir.path(), "compose-uv-").unwrap();
        // The symlink is removed, not followed.
        std::os::unix::fs::symlink(dir.path().join("a.lock"), kept_dir.path().join("link")).unwrap();
        let held = abandon_all();
        assert_eq!(names(dir.path()), ["a.lock", "bundle"]);
        assert_eq!(fs::read(dir.path().join("a.lock")).unwrap(), b"lock");
        drop(held);
        // Dropping what was abandoned removes nothing more (its paths are gone already).
        drop((kept_dir, kept_file, kept_work));
        assert_eq!(names(dir.path()), ["a.lock", "bundle"]);
    }
}
