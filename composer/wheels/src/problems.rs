//! Why a wheel, an sdist, a target or an index directory is refused: the reasons of
//! [`crate::WheelError`], each a fixed condition or the underlying error kept as its source.

use std::io;

use zip::result::ZipError;

/// What is wrong with a wheel (or one of its entries).
#[derive(Debug, thiserror::Error)]
pub enum WheelProblem {
    #[error("is not a wheel file name")]
    NotAWheelName,
    #[error("has no Name")]
    NoName,
    #[error("cannot be opened")]
    CannotOpen(#[source] io::Error),
    #[error("is not a zip archive")]
    NotAZip(#[source] ZipError),
    /// An error of the zip reader on an entry, as it says it.
    #[error(transparent)]
    Zip(ZipError),
    #[error("unreadable entry #{index}")]
    UnreadableEntry {
        index: usize,
        #[source]
        source: ZipError,
    },
    #[error("entry #{index} has an unreadable name")]
    UnreadableName {
        index: usize,
        #[source]
        source: ZipError,
    },
    #[error("cannot be read")]
    Unreadable(#[source] io::Error),
    #[error("cannot be read")]
    UnreadableZip(#[source] ZipError),
    #[error("is missing")]
    Missing,
    #[error("has no .dist-info/METADATA")]
    NoMetadata,
    #[error("has no {0}/METADATA")]
    NoMetadataIn(String),
    #[error("has no .dist-info/WHEEL")]
    NoWheelFile,
    #[error("has several .dist-info directories: {}", .0.join(", "))]
    SeveralDistInfo(Vec<String>),
    #[error("is not valid CSV")]
    NotCsv(#[source] csv::Error),
    #[error("uses hash `{0}`; composer verifies sha256 RECORDs")]
    OtherHash(String),
    #[error("has an unusable hash `{hash}` for {path}")]
    UnusableHash { hash: String, path: String },
    #[error("is an absolute path")]
    AbsolutePath,
    #[error("has a backslash or NUL in its path")]
    BadCharacter,
    #[error("has a `..`, `.` or empty component and would escape its directory")]
    Escapes,
    #[error("is a symbolic link; wheels hold regular files only")]
    Symlink,
    #[error("claims {size} bytes, more than {raw} bytes of deflate data can hold")]
    ClaimsTooMuch { size: u64, raw: usize },
    #[error("is not valid deflate data")]
    NotDeflate(#[source] flate2::DecompressError),
    #[error("inflates to more than its recorded size")]
    InflatesTooMuch,
    #[error("ends before its deflate stream does")]
    EndsEarly,
    #[error("has bytes after the end of its deflate stream")]
    TrailingBytes,
    #[error("does not inflate to its recorded size and CRC-32")]
    SizeOrCrc,
    #[error("is not listed in RECORD")]
    NotInRecord,
    #[error("has hash {actual}, RECORD says {recorded}")]
    HashMismatch { actual: String, recorded: String },
    #[error("has no hash in RECORD")]
    NoHash,
    #[error("is not in a .data scheme directory")]
    NotInScheme,
    #[error("uses unknown scheme directory `{0}`")]
    UnknownScheme(String),
    #[error("is listed in RECORD but not in the archive")]
    NotInArchive,
    #[error("has an entry point named `{0}`, which is not a file name")]
    EntryPointName(String),
    #[error("has an entry point `{name} = {value}` that is not `module:attribute`")]
    EntryPointForm { name: String, value: String },
    #[error(transparent)]
    Tree(composer_store::TreeProblem),
    #[error("cannot be written")]
    CannotWrite(#[source] ZipError),
    #[error("cannot be written")]
    CannotWriteIo(#[source] io::Error),
    #[error("is not UTF-8 text")]
    NotUtf8(#[source] io::Error),
    #[error("is not a valid ELF file")]
    NotElf(#[source] goblin::error::Error),
    #[error("is built for {built_for}, not {machine}")]
    OtherMachine { built_for: String, machine: String },
    #[error(
        "needs {0}, which is neither musl's C library nor in the wheel: a musllinux wheel may not (link it statically, \
         or leave the package to a wheel the index has)"
    )]
    ForeignLibrary(String),
}

/// What is wrong with an sdist's `pyproject.toml` or archive.
#[derive(Debug, thiserror::Error)]
pub enum SdistProblem {
    #[error("pyproject.toml is not TOML")]
    NotToml(#[source] Box<toml::de::Error>),
    #[error("pyproject.toml [build-system] has no `requires`")]
    NoRequires,
    #[error("pyproject.toml [build-system] requires is not a list")]
    RequiresNotAList,
    #[error("pyproject.toml [build-system] requires holds a non-string")]
    RequiresNotAString,
    #[error("pyproject.toml cannot be read as UTF-8 text")]
    NotUtf8(#[source] io::Error),
    #[error("pyproject.toml is larger than {0} bytes")]
    TooLarge(u64),
    #[error("is not a readable .tar.gz")]
    NotATarGz(#[source] io::Error),
    #[error("is not a readable zip")]
    NotAZip(#[source] ZipError),
}

/// Why no wheel target can be made for a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetProblem {
    #[error("no Python wheel platform is known for this architecture")]
    UnknownMachine,
    #[error("no musllinux wheel platform is known for this architecture")]
    UnknownMusllinuxMachine,
    /// A package the base must hold for the target's versions (`python3`, `libc6`).
    #[error("the base has no `{0}` package to read the interpreter from")]
    NoPackage(String),
    /// What was read (`python3`, `musl`) and the version text it gave.
    #[error("cannot read a version from {what} {version}")]
    Version { what: String, version: String },
}

/// Why a directory is not replaced by a wheel index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexDirProblem {
    #[error("it exists and is not a directory")]
    NotADirectory,
    #[error("the directory is not empty and is not an index compose wrote")]
    Foreign,
    #[error("its marker is not one this version of compose wrote; remove the index first")]
    OtherMarker,
    #[error("it holds `{0}`, which compose did not write there")]
    Stray(String),
}
