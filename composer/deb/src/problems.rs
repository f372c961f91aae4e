//! Why a Release, an index or a package file is refused: the reasons of [`crate::DebError`],
//! each a fixed condition or the underlying error kept as its source.

use std::io;

use composer_store::{NotASha256, TreeProblem};

/// Why a Release's signature is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureProblem {
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("it is not a signed message")]
    NotSigned(#[source] Box<pgp::errors::Error>),
    #[error("Release.gpg is not an OpenPGP signature")]
    NotASignature(#[source] Box<pgp::errors::Error>),
    #[error("no signature verifies against the {keys} key(s) of the keyring")]
    NoneVerifies { keys: usize },
}

/// Why a Release or a `Packages` index (or one of its paragraphs) is invalid.
#[derive(Debug, thiserror::Error)]
pub enum IndexProblem {
    /// A field the paragraph must have (`Version`, `Filename`, `Size`, `SHA256`).
    #[error("no {0}")]
    NoField(&'static str),
    #[error("unsafe Filename `{0}`")]
    UnsafeFilename(String),
    #[error("bad SHA256: {0}")]
    BadSha256(#[source] NotASha256),
    /// A checksum line of the Release.
    #[error(transparent)]
    BadChecksum(NotASha256),
    #[error(transparent)]
    Relation(#[from] crate::relation::BadRelation),
    #[error("bad size `{0}`")]
    BadSize(String),
    #[error("it lists no SHA256 checksums")]
    NoChecksums,
    /// A date field (`Date`, `Valid-Until`) and its value.
    #[error("`{field}: {value}` is not a date")]
    NotADate { field: &'static str, value: String },
    #[error("cannot decompress")]
    Decompress(#[source] io::Error),
    #[error("cannot read")]
    Unreadable(#[source] io::Error),
    /// A lock entry's identity names digests a Debian index does not sign.
    #[error("its identity `{0}` is not the one sha256 a Debian index signs")]
    NotDebianIdentity(String),
}

/// A downloaded file that is not the one its signed list promised. `authority` names the list
/// (the Release, the signed index).
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    #[error("{authority} says sha256 {expected}, the file has {actual}")]
    Sha256 { authority: &'static str, expected: String, actual: String },
    #[error("{authority} says {expected} bytes, the file has {actual}")]
    Size { authority: &'static str, expected: u64, actual: u64 },
}

/// Why a package file, at one of its members or entries, is refused.
#[derive(Debug, thiserror::Error)]
pub enum DebProblem {
    #[error("missing")]
    Missing,
    #[error("unsupported member `{0}`")]
    UnsupportedMember(String),
    #[error("its decompressor cannot start")]
    Decompressor(#[source] io::Error),
    #[error("it cannot be read")]
    Unreadable(#[source] io::Error),
    #[error("its name cannot be read")]
    BadName(#[source] io::Error),
    #[error("its tar header cannot be read")]
    BadHeader(#[source] io::Error),
    #[error("no `control` file")]
    NoControl,
    #[error("absolute path `{0}`")]
    AbsolutePath(String),
    #[error("path `{0}` contains `..`")]
    ClimbingPath(String),
    #[error("link without a target")]
    NoLinkTarget,
    #[error("symlink to `{0}` escapes the root")]
    SymlinkEscapes(String),
    #[error("hard link: {0}")]
    HardLinkPath(#[source] Box<DebProblem>),
    #[error("hard link to `{0}`, which the package does not hold")]
    HardLinkToNothing(String),
    #[error("unsupported entry type {0:?}")]
    UnsupportedEntry(tar::EntryType),
    #[error(transparent)]
    Tree(TreeProblem),
    #[error(transparent)]
    Mismatch(Box<Mismatch>),
}
