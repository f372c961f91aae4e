//! Temporary files and directories beside what a user sees: a bundle, an image layout, a lock
//! file, a wheel index, a cache directory's blob. Each is written under a temp name and renamed
//! into place whole, so an error leaves the old file or nothing. A signal that ends the process
//! runs no destructor, though, so this module keeps every such temp path of the process in one
//! list: the one thread that ends the process on a signal calls [`abandon_all`], which removes
//! them all and keeps any more from being made or published.
//!
//! Making a staged path, publishing it (the rename into place) and abandoning all take the same
//! lock, so a signal finds each one either still staged (and removes it) or published whole.
//!
//! Publishing replaces only what compose may replace ([`replace_at`], the one rule every output
//! goes through): a missing path or a regular file. A character device, a FIFO, a socket, a
//! directory or a symbolic link at an output path is refused, never renamed over: the host's
//! `/dev/full` named as an output was once destroyed that way.
//!
//! SIGKILL runs no cleanup at all. Every staged name carries the process id
//! (`.NAME.tmp-PID-TOKEN`, `compose-import-PID-TOKEN`) and every staged path holds an exclusive `flock`
//! while it lives, so [`crate::leftovers`] can tell what a dead process left from what a live
//! one is writing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustix::fs::{AtFlags, CWD, FileType, FlockOperation, Mode, OFlags, RenameFlags};

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
    /// An exclusive `flock` on the path, held while it lives: a sweep of leftovers takes only
    /// what nobody holds, whatever process ids say (another PID namespace shares the directory).
    _lock: Option<OwnedFd>,
}

/// The temp name of `final_name` in its directory: hidden, and unique to this process and call.
pub fn staging_name(final_name: &str) -> String {
    format!(".{final_name}.tmp-{}-{}", std::process::id(), crate::leftovers::token())
}

/// Opens and locks what was just staged at `path`; `None` where the filesystem has no `flock`.
fn lock(path: &Path, kind: StagedKind) -> Option<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if kind == StagedKind::Dir {
        flags |= OFlags::DIRECTORY;
    }
    let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(fd)
}

impl Staged {
    /// Makes a temp path with `create` (which returns the path it made, as a `kind`, and what
    /// else it opened), listed before any signal can see it half made.
    pub fn create<T>(kind: StagedKind, create: impl FnOnce() -> io::Result<(PathBuf, T)>) -> io::Result<(Staged, T)> {
        let mut list = staged();
        let (path, made) = create()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        list.insert(id, (path.clone(), kind));
        drop(list);
        let lock = lock(&path, kind);
        Ok((Staged { id, path, kind, _lock: lock }, made))
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

    /// [`Staged::file`] for an output at a path the user named (`dest`): first removes what dead
    /// processes of ours left beside it under its temp names (see [`crate::leftovers`]).
    pub fn output_file(dest: &Path) -> io::Result<(Staged, fs::File)> {
        let (parent, name) = parent_and_name(dest)?;
        crate::leftovers::sweep_beside(parent, name);
        Self::file(parent, name)
    }

    /// [`Staged::dir`] for an output at a path the user named, sweeping as [`Staged::output_file`].
    pub fn output_dir(dest: &Path) -> io::Result<Staged> {
        let (parent, name) = parent_and_name(dest)?;
        crate::leftovers::sweep_beside(parent, name);
        Self::dir(parent, name)
    }

    /// A new working directory in `temp_dir` (`<prefix><pid>-<random hex>`, mode 0700), removed
    /// when dropped or when a signal ends the process. The process id in the name is what lets
    /// `compose store gc` remove it once its process was killed; the random part keeps other
    /// users from predicting it, and `mkdir` never follows what they may have planted there.
    pub fn work_dir(temp_dir: &Path, prefix: &str) -> io::Result<Staged> {
        use std::os::unix::fs::DirBuilderExt;
        Self::create(StagedKind::Dir, || {
            let mut last = None;
            for _ in 0..100 {
                // Random (unpredictable to other users), and the proof `leftovers` asks of a name.
                let path = temp_dir.join(format!("{prefix}{}-{}", std::process::id(), crate::leftovers::token()));
                match fs::DirBuilder::new().mode(0o700).create(&path) {
                    Ok(()) => return Ok((path, ())),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.expect("tried"))
        })
        .map(|(staged, ())| staged)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `publish` (the rename of this path, or of something in it, into its final place) where
    /// no signal's cleanup can run beside it; afterwards the path is no longer this process's to
    /// remove. A failed `publish` leaves it staged, and so removed when `self` drops. A rename
    /// into a path the user named goes through [`replace_at`] (as [`Staged::publish_to`] and
    /// [`Staged::publish_member`] do), never a bare rename.
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

    /// Renames this staged path to `dest`, which may be missing or a regular file ([`replace_at`]).
    pub fn publish_to(self, dest: &Path) -> io::Result<()> {
        self.publish(|temp| replace_at(CWD, temp.as_os_str(), CWD, dest.as_os_str(), dest))
    }

    /// Renames `member` (a file inside this staged directory) to `dest` as [`Staged::publish_to`]
    /// does; the rest of the directory is removed.
    pub fn publish_member(self, member: &Path, dest: &Path) -> io::Result<()> {
        self.publish(|_| replace_at(CWD, member.as_os_str(), CWD, dest.as_os_str(), dest))
    }

    /// Renames this staged path to `dest` only if nothing is there: a file that appeared there
    /// meanwhile, even a symbolic link, is an error of kind `AlreadyExists`, never replaced.
    pub fn publish_new(self, dest: &Path) -> io::Result<()> {
        self.publish(|temp| rename_new(CWD, temp.as_os_str(), CWD, dest.as_os_str()))
    }

    /// Keeps the path where it is, no longer this process's to remove (a failed build's
    /// directory that the user asked to keep). A kept directory gets a marker
    /// ([`crate::leftovers::KEPT_MARKER`]) so that no sweep of dead processes' leftovers takes it;
    /// it keeps its path, which a debug shell's mounts name.
    pub fn keep(self) -> PathBuf {
        staged().remove(&self.id);
        if self.kind == StagedKind::Dir {
            let _ =
                fs::File::options().write(true).create_new(true).open(self.path.join(crate::leftovers::KEPT_MARKER));
        }
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

fn parent_and_name(dest: &Path) -> io::Result<(&Path, &str)> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().and_then(OsStr::to_str).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} does not end in a file name", dest.display()))
    })?;
    Ok((parent, name))
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

/// Replaces the file at `path` with `bytes` whole: a temp file beside it, renamed over it (only
/// over a regular file: see [`replace_at`]).
pub fn write_beside(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (staged, mut file) = Staged::output_file(path)?;
    io::Write::write_all(&mut file, bytes)?;
    staged.publish_to(path)
}

/// Why compose will not replace what is at an output path.
#[derive(Debug, thiserror::Error)]
#[error("{} is {what}; compose replaces only regular files it wrote", path.display())]
pub struct NotReplaceable {
    pub path: PathBuf,
    /// What is there: "a character device", "a FIFO", "a symbolic link", ...
    pub what: &'static str,
}

impl NotReplaceable {
    pub fn hint(&self) -> String {
        match self.what {
            "a symbolic link" => "compose neither writes through a symbolic link nor replaces one: name the file \
                                  it points to, or another path"
                .into(),
            NOT_OUR_ARCHIVE => "compose replaces only an archive or bundle it wrote: name a new file, or move \
                                this one away first"
                .into(),
            _ => "name a new file or a regular file to overwrite".into(),
        }
    }

    /// The refusal inside an I/O error, as the writers' errors carry it.
    pub fn of(error: &io::Error) -> Option<&NotReplaceable> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

fn what_is(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "not a regular file",
    }
}

/// Whether compose may replace what is at `dest` (checked without following a symbolic link):
/// only a missing path or a regular file. Writers call it before they start, to fail before
/// the work; [`replace_at`] checks again at the rename, which is what counts.
pub fn check_replaceable(dest: &Path) -> io::Result<()> {
    match rustix::fs::statat(CWD, dest, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Ok(()),
            other => Err(io::Error::other(NotReplaceable { path: dest.to_path_buf(), what: what_is(other) })),
        },
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// [`check_replaceable`] for an image archive or a bundle, and more: a file already there must be
/// empty or a tar whose first member is one compose writes first, `oci-layout` (an OCI archive
/// or a bundle) or `<sha256>.json` (a docker archive). A recipe, a key or any other file named
/// by mistake is not an archive of ours and is left as it is. Read without following a link or
/// blocking, 512 bytes at most.
pub fn check_replaceable_archive(dest: &Path) -> io::Result<()> {
    check_replaceable(dest)?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(CWD, dest, flags, Mode::empty()) {
        Ok(fd) => fs::File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut head = Vec::with_capacity(512);
    io::Read::read_to_end(&mut io::Read::take(&file, 512), &mut head)?;
    if head.is_empty() || is_our_archive(&head) {
        return Ok(());
    }
    Err(io::Error::other(NotReplaceable { path: dest.to_path_buf(), what: NOT_OUR_ARCHIVE }))
}

const NOT_OUR_ARCHIVE: &str = "a file that is not an image archive or bundle";

fn is_our_archive(head: &[u8]) -> bool {
    if head.len() < 512 || &head[257..262] != b"ustar" {
        return false;
    }
    let name = &head[..head[..100].iter().position(|&b| b == 0).unwrap_or(100)];
    name == b"oci-layout"
        || name.strip_suffix(b".json").is_some_and(|hex| hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit))
}

/// The one rule by which compose renames a file it wrote (`from` in `from_dir`) over a path a
/// user named (`to` in `to_dir`; `shown` is that path, for the error): what is there must be
/// missing or a regular file. Everything else (a device, a FIFO, a socket, a directory, a
/// symbolic link, which is refused rather than replaced since the user may have meant its
/// target) is left as it is, with a [`NotReplaceable`] error.
///
/// A missing destination is taken with `RENAME_NOREPLACE`, so that nothing that appears there
/// meanwhile is replaced. For a regular file the check (`lstat`) and the rename are two calls:
/// a process that can write into that directory could put another kind of file there between
/// them. Such a process can remove or replace anything in the directory itself, so this window
/// gives it nothing new; it is no way for anyone else to turn an output into a device.
pub fn replace_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
    shown: &Path,
) -> io::Result<()> {
    // Twice at most: a file that appears between the lstat and a no-replace rename is checked.
    for _ in 0..2 {
        match rustix::fs::statat(to_dir, to, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => return Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?),
                other => {
                    return Err(io::Error::other(NotReplaceable { path: shown.to_path_buf(), what: what_is(other) }));
                }
            },
            Err(rustix::io::Errno::NOENT) => match rename_new(from_dir, from, to_dir, to) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other,
            },
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} keeps changing while it is written", shown.display())))
}

/// Renames `from` to `to` only where nothing is at `to` (`RENAME_NOREPLACE`; on a filesystem
/// without it, a hard link, which never replaces either, and the removal of the temp name).
pub fn rename_new(from_dir: BorrowedFd<'_>, from: &OsStr, to_dir: BorrowedFd<'_>, to: &OsStr) -> io::Result<()> {
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            match rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty()) {
                Ok(()) => {
                    let _ = rustix::fs::unlinkat(from_dir, from, AtFlags::empty());
                    Ok(())
                }
                // A directory has no hard links: a plain rename replaces at most an empty one.
                Err(rustix::io::Errno::PERM) => Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?),
                Err(e) => Err(e.into()),
            }
        }
        other => Ok(other?),
    }
}

/// Puts the directory `from` at `to`, which must be missing or a directory the caller checked is
/// an earlier output of ours (a wheel index): an atomic exchange, after which `from` holds the
/// previous one. Anything else at `to` is refused as [`replace_at`] refuses it.
pub fn replace_dir(from: &Path, to: &Path) -> io::Result<()> {
    match rustix::fs::statat(CWD, to, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => Ok(rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::EXCHANGE)?),
            other => Err(io::Error::other(NotReplaceable { path: to.to_path_buf(), what: what_is(other) })),
        },
        Err(rustix::io::Errno::NOENT) => rename_new(CWD, from.as_os_str(), CWD, to.as_os_str()),
        Err(e) => Err(e.into()),
    }
}

/// [`replace_at`] for an opened directory and two names in it.
pub fn replace_in(dir: &impl AsFd, from: &OsStr, to: &OsStr, shown: &Path) -> io::Result<()> {
    replace_at(dir.as_fd(), from, dir.as_fd(), to, shown)
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
    use std::os::unix::fs::FileTypeExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn an_archive_output_replaces_only_nothing_an_empty_file_or_an_archive_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        let tar_of = |first: &str| {
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_ustar();
            header.set_size(2);
            header.set_cksum();
            tar.append_data(&mut header, first, &b"{}"[..]).unwrap();
            tar.into_inner().unwrap()
        };
        let hex = "ab".repeat(32);
        for (name, bytes, ours) in [
            ("missing", None, true),
            ("empty", Some(Vec::new()), true),
            ("oci", Some(tar_of("oci-layout")), true),
            ("docker", Some(tar_of(&format!("{hex}.json"))), true),
            ("recipe.toml", Some(b"[image]\nname = \"x\"\n".to_vec()), false),
            ("other.tar", Some(tar_of("notes.json")), false),
            ("short-hex.tar", Some(tar_of("abab.json")), false),
            ("short", Some(b"oci-layout".to_vec()), false),
        ] {
            let dest = dir.path().join(name);
            if let Some(bytes) = &bytes {
                fs::write(&dest, bytes).unwrap();
            }
            let checked = check_replaceable_archive(&dest);
            assert_eq!(checked.is_ok(), ours, "{name}: {checked:?}");
            if !ours {
                let error = checked.unwrap_err();
                assert!(NotReplaceable::of(&error).unwrap().hint().contains("move this one away"), "{error}");
            }
        }
    }

    #[test]
    fn publishing_replaces_only_a_missing_path_or_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"not ours").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let subdir = dir.path().join("subdir");
        fs::create_dir(&subdir).unwrap();
        for (dest, what) in [(&fifo, "a FIFO"), (&link, "a symbolic link"), (&subdir, "a directory")] {
            let error = write_beside(dest, b"output").unwrap_err();
            let refused = NotReplaceable::of(&error).unwrap_or_else(|| panic!("{error}"));
            assert_eq!(refused.what, what);
            assert!(error.to_string().contains(&dest.display().to_string()), "{error}");
            assert!(check_replaceable(dest).is_err());
        }
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"not ours", "nothing was written through the link");
        assert_eq!(names(dir.path()), ["fifo", "link", "subdir", "target"], "no temp file is left");

        // A character device (made only where the test may: as root, in its own directory).
        let device = dir.path().join("null");
        if rustix::fs::mknodat(
            CWD,
            &device,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .is_ok()
        {
            let error = write_beside(&device, b"output").unwrap_err();
            assert_eq!(NotReplaceable::of(&error).unwrap().what, "a character device");
            assert!(fs::symlink_metadata(&device).unwrap().file_type().is_char_device());
        }

        // Missing or regular: replaced.
        let out = dir.path().join("out");
        write_beside(&out, b"one").unwrap();
        write_beside(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        // publish_new takes only a missing path, not even a dangling link.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let (staged, _) = Staged::file(dir.path(), "dangling").unwrap();
        assert_eq!(staged.publish_new(&dangling).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("nowhere").exists());
        let (staged, _) = Staged::file(dir.path(), "fresh").unwrap();
        staged.publish_new(&dir.path().join("fresh")).unwrap();
        assert!(dir.path().join("fresh").is_file());
    }

    #[test]
    fn a_rerun_sweeps_what_a_dead_process_left_beside_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let leftover = dir.path().join(format!(".out.bundle.tmp-{dead}-{}", crate::leftovers::token()));
        fs::create_dir(&leftover).unwrap();
        fs::write(leftover.join("bundle.tar"), b"half").unwrap();
        let other = dir.path().join(format!(".other.tmp-{dead}-{}", crate::leftovers::token()));
        fs::write(&other, b"another output's").unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::open(&leftover).unwrap().set_modified(long_ago).unwrap();
        fs::File::options().write(true).open(&other).unwrap().set_modified(long_ago).unwrap();
        let staged = Staged::output_dir(&dir.path().join("out.bundle")).unwrap();
        assert!(!leftover.exists(), "the dead process's staging directory is gone");
        assert!(other.exists(), "what another output's writer left stays until that output is written");
        drop(staged);
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
        assert!(kept.join(crate::leftovers::KEPT_MARKER).is_file());
        fs::remove_dir_all(kept).unwrap();

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
