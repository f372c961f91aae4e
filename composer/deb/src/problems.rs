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

/// How the signed index's entry of a locked package differs from what the lock claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotListed {
    #[error("the signed index lists it with {}", differences(.0))]
    Differs(Vec<Difference>),
    #[error("the signed index has no package of that name")]
    NoSuchName,
    /// The `version_architecture`s it has of that name.
    #[error("the signed index has only {}", .0.join(", "))]
    OtherVersions(Vec<String>),
}

/// A field of a locked package, as the signed index gives it and as the lock says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Difference {
    #[error("file `{index}` (the lock says `{lock}`)")]
    File { index: String, lock: String },
    #[error("size {index} bytes (the lock says {lock})")]
    Size { index: u64, lock: u64 },
    #[error("sha256 {index} (the lock says {lock})")]
    Sha256 { index: String, lock: String },
}

fn differences(all: &[Difference]) -> String {
    all.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Why a locked package set is not a resolution of the recipe's requests. Packages are named
/// `name version`; `what` is a request (`the request `x``), an Essential package or a dependency.
#[derive(Debug, thiserror::Error)]
pub enum NotAResolution {
    #[error("{0} is not in the signed index")]
    NotListed(String),
    #[error("the lock holds {0} twice")]
    Twice(String),
    #[error("the lock holds {name} twice, as {first} and {second}; a resolution holds one version of a package")]
    TwoVersions { name: String, first: String, second: String },
    #[error("nothing in the lock satisfies {0}")]
    Unsatisfied(String),
    #[error(transparent)]
    Index(Box<crate::DebError>),
    #[error("{package} depends on `{group}` and nothing in the lock satisfies it")]
    Dependency { package: String, group: String },
    #[error("{package} declares Conflicts or Breaks `{conflict}`, and the lock holds {other}")]
    Conflict { package: String, conflict: String, other: String },
    #[error("{0} is in the lock, but nothing the recipe asks for needs it")]
    Unneeded(String),
    #[error(
        "{extra} is in the lock beside {}, which satisfies {what} as well, and nothing else needs it; a resolution \
         holds one of them",
        others.join(", ")
    )]
    SpareAlternative { extra: String, others: Vec<String>, what: String },
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
