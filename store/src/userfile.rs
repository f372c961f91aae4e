//! Files a user names: the recipe, its lock, a keyring, a requirements file, a signing key, the
//! config file, a `file://` source... Each is read through this one reader, never with a plain
//! `std::fs::read`, because the name comes from a recipe, a flag, the environment or a config file
//! and may point anywhere: at `/dev/zero` (an endless read), a FIFO (an open that never returns),
//! a file of gigabytes, or a secret of the machine that an error would then repeat.
//!
//! So a read resolves every symlink first, checks the real path against the [`Scope`] (for the
//! kinds a recipe names: inside the recipe's directory or an `--allow-path` directory), opens it
//! with `O_NOFOLLOW | O_NONBLOCK` (a link swapped in since, or a FIFO, cannot redirect or block
//! the open), accepts only a regular file, and reads at most the [`Kind`]'s limit. Errors name the
//! file and its kind, never its contents.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What a file is to composer: its name in messages and the most bytes it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub limit: u64,
}

impl Kind {
    pub const RECIPE: Kind = Kind { name: "recipe", limit: 4 * MIB };
    pub const LOCK: Kind = Kind { name: "lock", limit: 64 * MIB };
    pub const PYLOCK: Kind = Kind { name: "Python lock", limit: 64 * MIB };
    pub const KEYRING: Kind = Kind { name: "keyring", limit: 16 * MIB };
    pub const SIGNING_KEY: Kind = Kind { name: "signing key", limit: 64 * KIB };
    pub const CONFIG: Kind = Kind { name: "config file", limit: MIB };
    pub const REQUIREMENTS: Kind = Kind { name: "requirements file", limit: 16 * MIB };
    pub const CONSTRAINTS: Kind = Kind { name: "constraints file", limit: 16 * MIB };
    pub const REGISTRY_LOGINS: Kind = Kind { name: "registry login file", limit: MIB };
    pub const CERTIFICATES: Kind = Kind { name: "certificate file", limit: 16 * MIB };
    pub const PIP_CONFIG: Kind = Kind { name: "pip config file", limit: MIB };
    pub const APT_SOURCES: Kind = Kind { name: "apt sources file", limit: MIB };
    /// `[[files]] source`: held in memory while it is stored.
    pub const LOCAL_FILE: Kind = Kind { name: "local file", limit: GIB };
    /// A file of a `file://` mirror or index, named by the user's settings.
    pub const MIRROR_FILE: Kind = Kind { name: "file:// mirror file", limit: 4 * GIB };
    /// `compose push oci-archive:FILE`.
    pub const IMAGE_ARCHIVE: Kind = Kind { name: "image archive", limit: 256 * GIB };
    /// `[python.packages.NAME] patches`: held in memory and written into the build's script.
    pub const PATCH: Kind = Kind { name: "patch", limit: 4 * MIB };
    /// `[[sources]] path` and `url = "file://..."`.
    pub const LOCAL_SOURCE: Kind = Kind { name: "local source", limit: 4 * GIB };
}

/// Where a file may lie.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Named by the user directly (a flag, the environment, their config): anywhere.
    Anywhere,
    /// Named by a recipe: inside its directory `dir` or one of the `allowed` directories.
    Within { dir: &'a Path, allowed: &'a [PathBuf] },
}

/// How one file is read: its kind and where it may lie.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub kind: Kind,
    pub scope: Scope<'a>,
}

impl<'a> Policy<'a> {
    pub fn anywhere(kind: Kind) -> Policy<'static> {
        Policy { kind, scope: Scope::Anywhere }
    }

    pub fn within(kind: Kind, dir: &'a Path, allowed: &'a [PathBuf]) -> Policy<'a> {
        Policy { kind, scope: Scope::Within { dir, allowed } }
    }

    /// A path relative to the recipe's directory, for the kinds a recipe names (as is).
    pub fn join(&self, path: &Path) -> PathBuf {
        match self.scope {
            Scope::Within { dir, .. } => dir.join(path),
            Scope::Anywhere => path.to_path_buf(),
        }
    }
}

/// Why a file was not read. Never carries a byte of the file.
#[derive(Debug)]
pub enum Reason {
    /// Its real path (symlinks followed) lies outside the recipe's and the allowed directories.
    Outside {
        real: PathBuf,
        dir: PathBuf,
    },
    /// A FIFO, a device, a directory, a socket.
    NotRegular(&'static str),
    TooLarge {
        limit: u64,
    },
    NotText,
    Io(io::Error),
}

#[derive(Debug)]
pub struct UserFileError {
    pub kind: Kind,
    /// The path as it was named.
    pub path: PathBuf,
    pub reason: Reason,
}

impl std::fmt::Display for UserFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}` ", self.kind.name, self.path.display())?;
        match &self.reason {
            Reason::Outside { real, dir } if *real == self.path => {
                write!(f, "is outside the recipe's directory `{}`", dir.display())
            }
            Reason::Outside { real, dir } => {
                write!(f, "(really `{}`) is outside the recipe's directory `{}`", real.display(), dir.display())
            }
            Reason::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            Reason::TooLarge { limit } => {
                write!(f, "holds more than {} (the most a {} may)", size(*limit), self.kind.name)
            }
            Reason::NotText => f.write_str("is not UTF-8 text (its contents are not shown)"),
            Reason::Io(_) => f.write_str("cannot be read"),
        }
    }
}

impl std::error::Error for UserFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            Reason::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

impl UserFileError {
    fn new(policy: &Policy<'_>, path: &Path, reason: Reason) -> Self {
        UserFileError { kind: policy.kind, path: path.to_path_buf(), reason }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(&self.reason, Reason::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    pub fn is_permission_denied(&self) -> bool {
        matches!(&self.reason, Reason::Io(e) if e.kind() == io::ErrorKind::PermissionDenied)
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match &self.reason {
            Reason::Outside { real, .. } => Some(format!(
                "a recipe reads only files beside it: copy the file into the recipe's directory, or run with \
                 `--allow-path {}` if the recipe may read that directory",
                real.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("DIR")).display()
            )),
            Reason::NotRegular(_) => Some(format!("name a regular file as the {}", self.kind.name)),
            Reason::TooLarge { limit } => Some(format!(
                "a {} may hold at most {}; check that the path names the file meant",
                self.kind.name,
                size(*limit)
            )),
            Reason::NotText => {
                Some(format!("a {} is UTF-8 text; check that the path names the file meant", self.kind.name))
            }
            Reason::Io(_) => None,
        }
    }
}

/// An opened regular file, checked against its policy. Reading it yields at most the kind's
/// limit; past that, a read fails with [`io::ErrorKind::FileTooLarge`].
#[derive(Debug)]
pub struct UserFile {
    file: File,
    /// The real path, symlinks resolved.
    real: PathBuf,
    named: PathBuf,
    kind: Kind,
    len: u64,
    mode: u32,
    read: u64,
}

/// What kind of non-regular file `kind` is, for messages.
fn file_type_name(kind: std::fs::FileType) -> Option<&'static str> {
    match () {
        _ if kind.is_file() => None,
        _ if kind.is_dir() => Some("a directory"),
        _ if kind.is_fifo() => Some("a FIFO"),
        _ if kind.is_char_device() => Some("a character device"),
        _ if kind.is_block_device() => Some("a block device"),
        _ if kind.is_socket() => Some("a socket"),
        _ => Some("not a plain file"),
    }
}

/// The real path of `path` once it is known to lie where `policy` allows.
pub fn resolve(path: &Path, policy: &Policy<'_>) -> Result<PathBuf, UserFileError> {
    let real = path.canonicalize().map_err(|e| UserFileError::new(policy, path, Reason::Io(e)))?;
    if let Scope::Within { dir, allowed } = policy.scope {
        let inside = |root: &Path| root.canonicalize().is_ok_and(|root| real.starts_with(root));
        if !(inside(dir) || allowed.iter().any(|p| inside(p))) {
            return Err(UserFileError::new(policy, path, Reason::Outside { real, dir: dir.to_path_buf() }));
        }
    }
    Ok(real)
}

/// Opens `path` under `policy`: see the module docs.
pub fn open(path: &Path, policy: &Policy<'_>) -> Result<UserFile, UserFileError> {
    let real = resolve(path, policy)?;
    let fail = |reason| UserFileError::new(policy, path, reason);
    // Refused before the open too: opening some devices does something.
    let meta = std::fs::symlink_metadata(&real).map_err(|e| fail(Reason::Io(e)))?;
    if let Some(what) = file_type_name(meta.file_type()) {
        return Err(fail(Reason::NotRegular(what)));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(&real)
        .map_err(|e| fail(Reason::Io(e)))?;
    let meta = file.metadata().map_err(|e| fail(Reason::Io(e)))?;
    if let Some(what) = file_type_name(meta.file_type()) {
        return Err(fail(Reason::NotRegular(what)));
    }
    if meta.len() > policy.kind.limit {
        return Err(fail(Reason::TooLarge { limit: policy.kind.limit }));
    }
    Ok(UserFile {
        file,
        real,
        named: path.to_path_buf(),
        kind: policy.kind,
        len: meta.len(),
        mode: meta.mode(),
        read: 0,
    })
}

/// The whole of `path`, read under `policy`.
pub fn read(path: &Path, policy: &Policy<'_>) -> Result<Vec<u8>, UserFileError> {
    open(path, policy)?.read_all()
}

/// The whole of `path` as UTF-8 text, read under `policy`.
pub fn read_text(path: &Path, policy: &Policy<'_>) -> Result<String, UserFileError> {
    let bytes = read(path, policy)?;
    String::from_utf8(bytes).map_err(|_| UserFileError::new(policy, path, Reason::NotText))
}

/// As [`read_text`], with a missing file as `None`.
pub fn read_text_if_exists(path: &Path, policy: &Policy<'_>) -> Result<Option<String>, UserFileError> {
    match read_text(path, policy) {
        Err(e) if e.is_not_found() => Ok(None),
        other => other.map(Some),
    }
}

impl UserFile {
    /// The real path, symlinks resolved.
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// The permission bits, for a caller that warns about a secret others can read.
    pub fn mode(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether anyone but the owner may read or write it (`mode & 0o077`), as ssh checks a key.
    pub fn open_to_others(&self) -> bool {
        self.mode & 0o077 != 0
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The error for a failed read of this file ([`io::ErrorKind::FileTooLarge`] is the limit).
    pub fn error(&self, e: io::Error) -> UserFileError {
        let reason = match e.kind() {
            io::ErrorKind::FileTooLarge => Reason::TooLarge { limit: self.kind.limit },
            _ => Reason::Io(e),
        };
        UserFileError { kind: self.kind, path: self.named.clone(), reason }
    }

    /// The rest of the file, within the limit.
    pub fn read_all(mut self) -> Result<Vec<u8>, UserFileError> {
        let mut data = Vec::with_capacity(self.len.min(self.kind.limit) as usize);
        match self.read_to_end(&mut data) {
            Ok(_) => Ok(data),
            Err(e) => Err(self.error(e)),
        }
    }
}

impl Read for UserFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the limit is asked for, to tell a file of exactly the limit from a longer
        // one (a file may grow after its size was checked).
        let room = (self.kind.limit + 1 - self.read).min(buf.len() as u64) as usize;
        let n = self.file.read(&mut buf[..room])?;
        self.read += n as u64;
        if self.read > self.kind.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, format!("more than {}", size(self.kind.limit))));
        }
        Ok(n)
    }
}

/// The path a `file:` URL names: `file:///p` and `file://localhost/p` are `/p`. A URL naming
/// another host (`file://server/p`), or no absolute path, is an error: read naively it would be
/// the relative path `server/p`, beneath whatever directory compose runs in. `None` when `url`
/// is not a `file:` URL.
pub fn file_url_path(url: &str) -> Option<Result<&Path, NotALocalPath>> {
    let rest = url.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").filter(|p| p.starts_with('/')).unwrap_or(rest);
    Some(match path.starts_with('/') {
        true => Ok(Path::new(path)),
        false => Err(NotALocalPath),
    })
}

/// A `file:` URL that names another host or no absolute path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a file URL names a local absolute path: file:///PATH (or file://localhost/PATH)")]
pub struct NotALocalPath;

/// A parser's complaint about a file a user named, located by line and column but without the
/// line itself: the file may be a secret reached through a link (`recipe.lock -> /etc/shadow`),
/// and a TOML error's snippet would print it.
pub fn located(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let Some(span) = span else { return message.trim_end().to_string() };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1) + 1;
    format!("line {line}, column {column}: {}", message.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Kind = Kind { name: "test file", limit: 8 };

    fn reason(result: Result<Vec<u8>, UserFileError>) -> Reason {
        result.unwrap_err().reason
    }

    #[test]
    fn a_regular_file_within_its_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345678").unwrap();
        assert_eq!(read(&path, &Policy::anywhere(SMALL)).unwrap(), b"12345678");
        assert_eq!(read(&path, &Policy::within(SMALL, dir.path(), &[])).unwrap(), b"12345678");
    }

    #[test]
    fn a_file_over_its_limit_is_refused_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"SECRET-123").unwrap();
        let error = read(&path, &Policy::anywhere(SMALL)).unwrap_err();
        assert!(matches!(error.reason, Reason::TooLarge { limit: 8 }), "{error:?}");
        let shown = format!("{error} {}", error.hint().unwrap());
        assert!(shown.contains("test file") && shown.contains("8 bytes") && !shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        assert!(matches!(reason(read(&fifo, &Policy::anywhere(SMALL))), Reason::NotRegular("a FIFO")));
        assert!(matches!(
            reason(read(Path::new("/dev/zero"), &Policy::anywhere(SMALL))),
            Reason::NotRegular("a character device")
        ));
        assert!(matches!(reason(read(dir.path(), &Policy::anywhere(SMALL))), Reason::NotRegular("a directory")));
    }

    #[test]
    fn a_file_that_grows_past_the_limit_while_streamed_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"1234").unwrap();
        let mut file = open(&path, &Policy::anywhere(SMALL)).unwrap();
        std::fs::write(&path, b"1234567890").unwrap();
        let mut out = Vec::new();
        let e = file.read_to_end(&mut out).unwrap_err();
        assert!(matches!(file.error(e).reason, Reason::TooLarge { .. }));
    }

    #[test]
    fn confinement_follows_symlinks_and_allows_named_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (recipe_dir, other) = (dir.path().join("recipe"), dir.path().join("other"));
        std::fs::create_dir_all(&recipe_dir).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(other.join("secret"), recipe_dir.join("link")).unwrap();
        let within = Policy::within(SMALL, &recipe_dir, &[]);
        for named in [recipe_dir.join("link"), recipe_dir.join("../other/secret"), other.join("secret")] {
            let error = read(&named, &within).unwrap_err();
            assert!(matches!(error.reason, Reason::Outside { .. }), "{named:?}: {error:?}");
            assert!(
                error.hint().unwrap().contains(&format!("--allow-path {}", other.canonicalize().unwrap().display()))
            );
        }
        let allowed = [other.clone()];
        assert_eq!(read(&recipe_dir.join("link"), &Policy::within(SMALL, &recipe_dir, &allowed)).unwrap(), b"x");
    }

    #[test]
    fn the_mode_tells_a_key_open_to_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"k").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!open(&path, &Policy::anywhere(SMALL)).unwrap().open_to_others());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = open(&path, &Policy::anywhere(SMALL)).unwrap();
        assert!(file.open_to_others() && file.mode() == 0o644);
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"ab\xffcd").unwrap();
        let error = read_text(&path, &Policy::anywhere(SMALL)).unwrap_err();
        assert!(matches!(error.reason, Reason::NotText));
        assert!(read_text_if_exists(&dir.path().join("missing"), &Policy::anywhere(SMALL)).unwrap().is_none());
    }

    #[test]
    fn a_located_complaint_never_holds_the_line() {
        let text = "version = 1\nroot:$6$secret:19000\n";
        let at = text.find("root").unwrap();
        let said = located(text, Some(at..at + 4), "expected `=`\n");
        assert_eq!(said, "line 2, column 1: expected `=`");
        assert!(!said.contains("secret"));
    }

    #[test]
    fn a_file_url_is_an_absolute_local_path_or_an_error() {
        assert_eq!(file_url_path("file:///srv/x.deb"), Some(Ok(Path::new("/srv/x.deb"))));
        assert_eq!(file_url_path("file://localhost/srv/x.deb"), Some(Ok(Path::new("/srv/x.deb"))));
        assert!(file_url_path("file://server/srv/x.deb").unwrap().is_err());
        assert!(file_url_path("file://relative").unwrap().is_err());
        assert_eq!(file_url_path("https://example.invalid/x"), None);
    }
}
