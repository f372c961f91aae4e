//! Why a cache's artifact, a bundle, a key or a lock file is refused: the reasons of
//! [`crate::CacheError`] and [`crate::KeyError`], each a fixed condition or the underlying error
//! kept as its source.

use std::io;

use composer_store::{Hash, NotASha256, Sha256, StoreError, TreeError};

/// Why an artifact of a cache (a manifest, a claim, a blob, a tree's pack) or a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactProblem {
    // A bundle's framing.
    #[error("it ends before the archive's end marker (a truncated copy?)")]
    EndsBeforeEndMarker,
    #[error("there are bytes after the archive's end marker")]
    BytesAfterEndMarker,
    #[error("member `{member}`")]
    MemberHeader {
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("the header of member `{0}` is not the one composer writes")]
    ForeignHeader(String),
    #[error("member `{member}`")]
    MemberDigest {
        member: String,
        #[source]
        source: NotASha256,
    },
    #[error("member `{0}` is not named as composer names blobs")]
    ForeignBlobName(String),
    #[error("member `{0}` is not part of a cache layout or out of order")]
    StrayMember(String),
    #[error("it ends inside a member (a truncated copy?)")]
    EndsInsideMember,
    #[error("the padding after member `{0}` is not zeros")]
    Padding(String),
    #[error("blob {} does not match its digest", .0.oci())]
    BlobDigest(Sha256),
    #[error("it holds no `index.json`: not a bundle")]
    NotABundle,
    // A bundle's layout.
    #[error("{file}")]
    Unreadable {
        file: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("its `oci-layout` is not the one composer writes")]
    ForeignLayoutMarker,
    #[error("index.json")]
    IndexUnparsable(#[source] serde_json::Error),
    #[error("index.json is not an OCI image index")]
    NotAnIndex,
    #[error("index.json lists a manifest without its own tag, or out of tag order")]
    UntaggedManifest,
    #[error("index.json: the manifest tagged `{0}` is missing or of another size or type")]
    TaggedManifest(String),
    #[error("index.json is not in the form composer writes")]
    ForeignIndexForm,
    // A bundle's contents.
    #[error("step results in a bundle must be signed: give a signing key, or --inputs-only")]
    UnsignedResults,
    #[error("it holds step results and no trusted key is set (--trusted-key), or make it with --inputs-only")]
    NoTrustedKey,
    #[error("`{0}` is not a BLAKE3 hex digest")]
    StepTag(String),
    #[error("{0} is incomplete")]
    Incomplete(String),
    #[error("{0} is missing")]
    TagMissing(String),
    #[error("its lock files: {0}")]
    LockSignature(Untrusted),
    #[error("lock file {0} is missing or of another size")]
    LockFileMissing(String),
    #[error(transparent)]
    LockName(#[from] BadLockName),
    #[error("tag `{0}` is not the one its inputs list is tagged by")]
    InputsTag(String),
    #[error("input {} is missing or of another size", .0.oci())]
    InputMissing(Sha256),
    #[error("tag `{0}` is not one composer writes")]
    ForeignTag(String),
    #[error("blob {} is missing", .blob.oci())]
    BlobMissing {
        blob: Sha256,
        #[source]
        source: io::Error,
    },
    #[error("blob {} is not the object its claim names", .0.oci())]
    NotTheClaimedObject(Sha256),
    // Manifests and claims.
    #[error("manifest")]
    Manifest(#[source] serde_json::Error),
    #[error("not a composer inputs list")]
    NotInputs,
    #[error("not a composer lock list")]
    NotLocks,
    #[error("lock file `{0}` is listed twice")]
    LockListedTwice(String),
    #[error("not a composer step result (artifactType {0:?})")]
    NotAResult(Option<String>),
    #[error("claim")]
    ClaimUnparsable(#[source] serde_json::Error),
    #[error("claim")]
    ClaimEncoding(#[source] base64::DecodeError),
    #[error("store format `{found}`, this composer reads `{}`", composer_store::FORMAT)]
    StoreFormat { found: String },
    #[error("it claims to be `{step}` {key}, not the step asked for")]
    OtherStep { step: String, key: String },
    #[error("not a sha256 digest")]
    NotSha256,
    #[error("its claim does not match the manifest's digest (tampered?)")]
    ClaimTampered,
    #[error("its claim is missing")]
    ClaimMissing,
    #[error("{0}")]
    Untrusted(Untrusted),
    #[error("the manifest's blobs are not the ones its claim names")]
    BlobsDiffer,
    #[error("the blob is missing")]
    NoBlob,
    #[error("the manifest does not match its digest")]
    ManifestDigest,
    #[error("it does not parse")]
    Unparsable(#[source] serde_json::Error),
    #[error("the bytes given have sha256 {actual} and {size} bytes")]
    BytesGiven { actual: Sha256, size: u64 },
    #[error("the pack has sha256 {actual} and {size} bytes")]
    PackDigest { actual: Sha256, size: u64 },
    #[error("the store does not hold this input")]
    NotInStore,
    /// The store's verdict on an object that arrived: not the one named.
    #[error(transparent)]
    Store(StoreError),
    // A tree's pack.
    #[error("the pack is empty")]
    EmptyPack,
    #[error("the pack does not start with its tree's manifest")]
    PackStart,
    #[error("the manifest in the pack is not tree {0}")]
    OtherTree(Hash),
    #[error("manifest: {0}")]
    BadTree(#[source] TreeError),
    #[error("member `{0}` is not an object name")]
    MemberName(String),
    #[error("member {0} is not an object of the tree, or comes twice")]
    StrayObject(Hash),
    #[error("member {0} does not match its name")]
    ObjectDigest(Hash),
    #[error("object {0} of the tree is not in the pack")]
    ObjectMissing(Hash),
    #[error("{0} object(s) of the tree are not in the pack")]
    ObjectsMissing(usize),
}

/// Why a lock file a bundle brings is not written where `--locks-to` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LockFileProblem {
    #[error("is a symbolic link; it is left as it is")]
    Symlink,
    #[error("is not a regular file; it is left as it is")]
    NotAFile,
    #[error("exists and differs from the bundle's; it is left as it is")]
    Differs,
    #[error("appeared while the locks were written; it is left as it is")]
    Appeared,
}

/// Why the directory `--locks-to` names cannot take lock files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocksDirProblem {
    #[error("is not a directory")]
    NotADirectory,
    #[error("does not exist")]
    Missing,
    #[error("is not writable")]
    NotWritable,
}

/// Why a key's value is not one.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    /// Where the base64 breaks, never the byte there: it is a byte of the key.
    #[error("not base64 at offset {0}")]
    NotBase64At(usize),
    #[error("not base64: {0} symbols")]
    NotBase64Length(usize),
    #[error("not base64: bad padding")]
    NotBase64Padding,
    /// getrandom's error is no `std::error::Error` here: it is kept, and told in the message.
    #[error("no randomness: {0}")]
    NoRandomness(getrandom::Error),
    #[error("a secret key is 64 bytes (seed and public key)")]
    SecretLength,
    #[error("seed and public key do not match")]
    KeysDiffer,
    #[error("a public key is 32 bytes")]
    PublicLength,
    #[error("not an Ed25519 point")]
    NotAPoint,
}

/// A name a bundle gives a lock file that compose would not give one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "lock file name `{}` is not one compose gives a lock file (`<recipe>.lock` or \
     `pylock.<recipe>-<platform>.toml`, for a recipe whose name is plain and not hidden)",
    .0.escape_debug()
)]
pub struct BadLockName(pub String);

/// Why a signed document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    Unsigned,
    /// Signed only by keys not in the trusted set (their names).
    UnknownKeys(Vec<String>),
    /// A trusted key's name is on a signature that does not verify.
    BadSignature(String),
    /// A trusted key's name is on a signature made by another key of that name (`theirs`, the
    /// key the document names; `ours`, the trusted one).
    OtherKey {
        name: String,
        theirs: String,
        ours: String,
    },
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Unsigned => write!(f, "it is not signed"),
            Untrusted::UnknownKeys(names) => write!(f, "it is signed only by untrusted keys ({})", names.join(", ")),
            Untrusted::BadSignature(name) => write!(
                f,
                "its signature by `{name}` does not verify with the trusted key of that name: it was altered after \
                 signing"
            ),
            Untrusted::OtherKey { name, theirs, ours } => write!(
                f,
                "it is signed by another key named `{name}` ({theirs}), not by the trusted `{name}` ({ours}): the key \
                 was made again under the same name, or someone else uses the name"
            ),
        }
    }
}
