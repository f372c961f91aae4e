//! Filesystem operations confined to one opened directory.
//!
//! A checkout, a layout write or an export creates paths that come from data (a package's file
//! list, a digest in a manifest). Checking such a path as a string is not enough: a symlink that
//! an earlier entry created, or that someone planted in the output directory, would make a plain
//! `create_dir_all` or `hard_link` act on the host. So every operation here starts from a file
//! descriptor of the root and resolves the path beneath it with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, or where the kernel lacks `openat2`, one component at a time with
//! `O_NOFOLLOW`; the last component is then acted on with the `*at` call, which never follows
//! it. A symlink on the way is an error (`ELOOP`), never a detour.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Mode, OFlags, ResolveFlags};

/// An opened directory that every operation stays beneath.
pub struct Confined {
    root: OwnedFd,
    path: PathBuf,
    /// The last parent directory opened, by relative path: entries come sorted, so most share it.
    last_parent: Option<(String, OwnedFd)>,
}

/// Paths here are tree paths: non-UTF-8 bytes travel escaped (see `crate::escape_name`) and are
/// decoded only at the system call.
fn b(path: &str) -> std::borrow::Cow<'_, [u8]> {
    crate::name_bytes(path)
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::CLOEXEC).union(OFlags::RDONLY);

impl Confined {
    /// Opens `path` (the caller's own directory, which may itself be reached through a symlink
    /// the user chose).
    pub fn open(path: &Path) -> io::Result<Confined> {
        let root = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Confined { root, path: path.to_path_buf(), last_parent: None })
    }

    /// The directory `rel` beneath the root (created if missing, never through a symlink) as a
    /// root of its own: what parallel writers into one directory each hold, since an operation
    /// needs `&mut` for its cached parent.
    pub fn beneath(&self, rel: &str) -> io::Result<Confined> {
        Ok(Confined { root: self.create_dir_all(rel)?, path: self.display(rel), last_parent: None })
    }

    /// Where the root is, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, for error messages only: never use it to act.
    pub fn display(&self, rel: &str) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.path.join(std::ffi::OsStr::from_bytes(&b(rel)))
    }

    /// Opens the directory `rel` beneath the root, following no symlink.
    pub fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        if rel.is_empty() {
            return Ok(rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?);
        }
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.root, b(rel).as_ref(), DIR_FLAGS, Mode::empty(), resolve) {
            Err(rustix::io::Errno::NOSYS) => self.walk(rel, false),
            other => Ok(other?),
        }
    }

    /// Opens `rel` one component at a time without following symlinks, creating missing
    /// directories when `create` is set.
    fn walk(&self, rel: &str, create: bool) -> io::Result<OwnedFd> {
        let mut dir = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for component in rel.split('/').filter(|c| !c.is_empty()) {
            if component == ".." || component == "." {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{rel}` is not a plain path")));
            }
            if create {
                match rustix::fs::mkdirat(&dir, b(component).as_ref(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            dir = rustix::fs::openat(&dir, b(component).as_ref(), DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
        }
        Ok(dir)
    }

    /// Creates `rel` and its missing parents as directories (mode 0755 before the umask).
    pub fn create_dir_all(&self, rel: &str) -> io::Result<OwnedFd> {
        match self.open_dir(rel) {
            Ok(fd) => Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.walk(rel, true),
            Err(e) => Err(e),
        }
    }

    /// The parent directory of `rel` (created if missing) and `rel`'s last component.
    fn parent<'r>(&mut self, rel: &'r str) -> io::Result<(&OwnedFd, &'r str)> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{rel}` is not a plain path")));
        }
        if self.last_parent.as_ref().is_none_or(|(p, _)| p != parent) {
            let fd = self.create_dir_all(parent)?;
            self.last_parent = Some((parent.to_string(), fd));
        }
        Ok((&self.last_parent.as_ref().expect("just set").1, name))
    }

    /// Creates the directory `rel` if it is missing (its parent must not be a symlink).
    pub fn create_dir(&mut self, rel: &str) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        match rustix::fs::mkdirat(parent, b(name).as_ref(), Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                // Only a real directory may already be there.
                rustix::fs::openat(parent, b(name).as_ref(), DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Hard-links the host file `source` (a store object) to `rel`.
    pub fn hard_link_from(&mut self, source: &Path, rel: &str) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::linkat(CWD, source, parent, b(name).as_ref(), AtFlags::empty())?)
    }

    /// Hard-links `target` (a path beneath the root) to `rel`; neither is followed if a symlink.
    pub fn hard_link_within(&mut self, target: &str, rel: &str) -> io::Result<()> {
        let (target_parent, target_name) = target.rsplit_once('/').unwrap_or(("", target));
        let target_dir = self.open_dir(target_parent)?;
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::linkat(&target_dir, b(target_name).as_ref(), parent, b(name).as_ref(), AtFlags::empty())?)
    }

    pub fn symlink(&mut self, target: &str, rel: &str) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::symlinkat(b(target).as_ref(), parent, b(name).as_ref())?)
    }

    /// Creates the new file `rel` (never an existing one, never through a symlink).
    pub fn create_new(&mut self, rel: &str, mode: u32) -> io::Result<File> {
        let (parent, name) = self.parent(rel)?;
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rustix::fs::openat(parent, b(name).as_ref(), flags, Mode::from_raw_mode(mode))?))
    }

    /// Opens `rel` for an advisory lock, made empty if missing, never through a symlink.
    pub fn lock_file(&mut self, rel: &str) -> io::Result<File> {
        let (parent, name) = self.parent(rel)?;
        let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        check_regular(rustix::fs::openat(parent, b(name).as_ref(), flags, Mode::from_raw_mode(0o644))?, rel)
    }

    /// Opens the existing regular file `rel` for reading, following no symlink. Anything else
    /// there (a FIFO, a device, a socket, a directory) is an error of kind `InvalidData`, found
    /// without blocking: see [`open_regular_at`].
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.open_dir(parent)?;
        open_regular_at(&dir, b(name).as_ref(), rel)
    }

    /// The whole regular file `rel`, if it holds at most `limit` bytes; a bigger one is an error
    /// of kind `InvalidData` (see [`read_bounded`]).
    pub fn read_file(&self, rel: &str, limit: u64) -> io::Result<Vec<u8>> {
        read_bounded(self.open_file(rel)?, limit, rel)
    }

    /// Renames `from` to `to`, both beneath the root, replacing `to` only if it is a regular
    /// file ([`crate::staging::replace_at`]).
    pub fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let (from_parent, from_name) = from.rsplit_once('/').unwrap_or(("", from));
        let from_dir = self.open_dir(from_parent)?;
        let shown = self.display(to);
        let (parent, name) = self.parent(to)?;
        let (from_name, name) = (b(from_name), b(name));
        crate::staging::replace_at(
            from_dir.as_fd(),
            std::ffi::OsStr::from_bytes(&from_name),
            parent.as_fd(),
            std::ffi::OsStr::from_bytes(&name),
            &shown,
        )
    }

    /// A new temp file for `rel`, made beneath the root (no symlink followed) and listed for
    /// removal if a signal ends the process before it is renamed into place; with its name
    /// relative to the root, for [`Confined::rename`].
    pub fn staged_file(&mut self, rel: &str) -> io::Result<(crate::staging::Staged, String, File)> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let temp = crate::staging::staging_name(name);
        let temp = if parent.is_empty() { temp } else { format!("{parent}/{temp}") };
        let path = self.display(&temp);
        let (staged, file) = crate::staging::Staged::create(crate::staging::StagedKind::File, || {
            self.create_new(&temp, 0o644).map(|file| (path, file))
        })?;
        Ok((staged, temp, file))
    }

    /// Puts `data` at `rel` whole: a temp file beneath the root renamed over it (only over a
    /// regular file), never through a symlink.
    pub fn write_atomic(&mut self, rel: &str, data: &[u8]) -> io::Result<()> {
        let (staged, temp, mut out) = self.staged_file(rel)?;
        io::Write::write_all(&mut out, data)?;
        staged.publish(|_| self.rename(&temp, rel))
    }

    /// Removes the file `rel` (a symlink there is removed, not followed).
    pub fn remove_file(&mut self, rel: &str) -> io::Result<()> {
        let (parent, name) = self.parent(rel)?;
        Ok(rustix::fs::unlinkat(parent, b(name).as_ref(), AtFlags::empty())?)
    }

    /// Whether `rel` exists, and if so its size when it is a regular file.
    pub fn file_size(&self, rel: &str) -> io::Result<Option<u64>> {
        Ok(self.file_stamp(rel)?.map(|stamp| stamp.size))
    }

    /// The identity and times of the regular file `rel` (never of what a symlink there points
    /// at): what says, without reading it, that a file is the one seen before and unchanged.
    pub fn file_stamp(&self, rel: &str) -> io::Result<Option<FileStamp>> {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir, b(name).as_ref(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() => Ok(Some(FileStamp {
                dev: st.st_dev,
                ino: st.st_ino,
                size: st.st_size as u64,
                mtime: (st.st_mtime, st.st_mtime_nsec as i64),
                ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            })),
            Ok(st) => Err(not_regular(rustix::fs::FileType::from_raw_mode(st.st_mode), rel)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the mode of the directory `rel` (never of what a symlink there points at).
    pub fn chmod_dir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let fd = self.open_dir(rel)?;
        Ok(rustix::fs::fchmod(fd.as_fd(), Mode::from_raw_mode(mode))?)
    }
}

/// Opens `name` in `dir` for reading as a regular file, never through a symlink and never
/// blocking: a layout or a cache is data, and a FIFO planted as its `index.json` or as a blob
/// would make a plain `open` wait forever for a writer (and a device would stream without end).
/// `O_NONBLOCK` makes the open of a FIFO return at once; `fstat` on what was opened, not on the
/// name, then refuses everything but a regular file. (`O_NONBLOCK` does nothing to a regular
/// file's reads.) `what` names the file in the error.
pub fn open_regular_at(dir: &impl AsFd, name: &[u8], what: &str) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => {
            io::Error::new(io::ErrorKind::InvalidData, format!("`{what}` is a symlink, not a regular file"))
        }
        other => other.into(),
    })?;
    check_regular(fd, what)
}

/// Opens the host file `path` a user named (the symlinks on its way are the user's to choose),
/// for reading as a regular file, without blocking on a FIFO: see [`open_regular_at`].
pub fn open_regular(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    check_regular(rustix::fs::open(path, flags, Mode::empty())?, &path.display().to_string())
}

fn check_regular(fd: OwnedFd, what: &str) -> io::Result<File> {
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(not_regular(kind, what));
    }
    Ok(File::from(fd))
}

/// The error for `what`, which is of `kind` where a regular file was expected.
fn not_regular(kind: rustix::fs::FileType, what: &str) -> io::Error {
    let kind = match kind {
        rustix::fs::FileType::Fifo => "a FIFO",
        rustix::fs::FileType::Directory => "a directory",
        rustix::fs::FileType::Symlink => "a symlink",
        rustix::fs::FileType::CharacterDevice | rustix::fs::FileType::BlockDevice => "a device",
        rustix::fs::FileType::Socket => "a socket",
        _ => "not a file",
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("`{what}` is {kind}, not a regular file"))
}

/// The whole of `file` if it holds at most `limit` bytes, else an error of kind `InvalidData`
/// naming `what` and the limit. The size `fstat` gives is checked first, and the read is bounded
/// too, so that a file that grows while it is read cannot go past the limit either.
pub fn read_bounded(file: File, limit: u64, what: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let too_big = || io::Error::new(io::ErrorKind::InvalidData, format!("`{what}` is larger than {limit} bytes"));
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// A file's identity and times. The kernel sets `ctime` on every change to the file's content
/// or metadata, and no system call sets it back, so an equal stamp means the same, unchanged
/// file (as git's index trusts it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// A file that has no name until it is complete (`O_TMPFILE`), for outputs at a path the user
/// named: a failed or killed write leaves nothing behind, not even a temp file beside it.
pub struct UnnamedFile {
    dir: OwnedFd,
    file: File,
}

impl UnnamedFile {
    /// Creates the file in directory `dir`. Filesystems without `O_TMPFILE` give an error of
    /// kind `Unsupported`.
    pub fn create_in(dir: &Path) -> io::Result<UnnamedFile> {
        let dir = rustix::fs::open(dir, DIR_FLAGS, Mode::empty())?;
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        match rustix::fs::openat(&dir, ".", flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => Ok(UnnamedFile { dir, file: File::from(fd) }),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, "the filesystem has no O_TMPFILE"))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the complete file its name in the directory, replacing what had that name if it
    /// is a regular file ([`crate::staging::replace_at`]); `shown` is the path, for errors.
    pub fn publish(self, name: &std::ffi::OsStr, shown: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let me = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        match rustix::fs::linkat(CWD, me.as_str(), &self.dir, name, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                // linkat never replaces: link under a temp name, then rename over (atomic).
                let mut temp = std::ffi::OsString::from(".");
                temp.push(name);
                temp.push(format!(".tmp-{}", crate::temp_suffix()));
                rustix::fs::linkat(CWD, me.as_str(), &self.dir, temp.as_os_str(), AtFlags::SYMLINK_FOLLOW)?;
                crate::staging::replace_in(&self.dir, temp.as_os_str(), name, shown).inspect_err(|_| {
                    let _ = rustix::fs::unlinkat(&self.dir, temp.as_os_str(), AtFlags::empty());
                })?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_file_appears_only_when_published() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut file = UnnamedFile::create_in(dir.path()).unwrap();
        file.file().write_all(b"whole").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing visible before");
        file.publish("out.tar".as_ref(), Path::new("out.tar")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out.tar")).unwrap(), b"whole");
        let mut again = UnnamedFile::create_in(dir.path()).unwrap();
        again.file().write_all(b"again").unwrap();
        again.publish("out.tar".as_ref(), Path::new("out.tar")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("out.tar")).unwrap(), b"again");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left beside it");
    }

    #[test]
    fn reads_take_regular_files_only_bounded_and_never_wait_on_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let root = Confined::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("doc"), b"0123456789").unwrap();
        rustix::fs::mknodat(CWD, dir.path().join("fifo"), rustix::fs::FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap();
        std::os::unix::fs::symlink("doc", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert_eq!(root.read_file("doc", 10).unwrap(), b"0123456789");
        let too_big = root.read_file("doc", 9).unwrap_err();
        assert_eq!(too_big.kind(), io::ErrorKind::InvalidData);
        assert!(too_big.to_string().contains("larger than 9 bytes"), "{too_big}");
        // No writer ever opens the FIFO: a blocking open would hang this test.
        for (name, says) in [("fifo", "a FIFO"), ("link", "a symlink"), ("sub", "a directory")] {
            let e = root.open_file(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{name}: {e}");
            assert!(e.to_string().contains(says), "{name}: {e}");
        }
        assert!(open_regular(&dir.path().join("fifo")).unwrap_err().to_string().contains("a FIFO"));
        assert!(open_regular(Path::new("/dev/zero")).unwrap_err().to_string().contains("a device"));
        assert_eq!(root.open_file("missing").unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn nothing_goes_through_a_symlink_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        let root = dir.path().join("root");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::create_dir_all(root.join("opt")).unwrap();
        std::os::unix::fs::symlink(&host, root.join("opt/esc")).unwrap();
        std::fs::write(dir.path().join("object"), b"x").unwrap();
        let mut confined = Confined::open(&root).unwrap();
        assert!(confined.create_dir("opt/esc/sub").is_err());
        assert!(confined.create_dir_all("opt/esc/sub").is_err());
        assert!(confined.hard_link_from(&dir.path().join("object"), "opt/esc/file").is_err());
        assert!(confined.symlink("/etc", "opt/esc/link").is_err());
        assert!(confined.create_new("opt/esc/new", 0o644).is_err());
        assert!(confined.chmod_dir("opt/esc", 0o777).is_err());
        assert!(confined.create_dir("opt/esc").is_err(), "a symlink where a directory should be is an error");
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0, "the host directory is untouched");
        confined.create_dir("opt/real/sub").unwrap();
        confined.hard_link_from(&dir.path().join("object"), "opt/real/file").unwrap();
        assert_eq!(std::fs::read(root.join("opt/real/file")).unwrap(), b"x");
    }
}
