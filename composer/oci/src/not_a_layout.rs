//! Why a directory, an archive or a registry's answer is not the image layout it should be: the
//! reason of [`crate::OciError::NotALayout`], a fixed condition or the underlying error kept as
//! its source.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum LayoutProblem {
    #[error("cannot open it")]
    CannotOpen(#[source] io::Error),
    #[error("cannot read it")]
    Unreadable(#[source] io::Error),
    /// A file of the layout or the archive, by its path inside it.
    #[error("cannot read {file}")]
    CannotRead {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("{file} is not JSON")]
    NotJson {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file} is larger than {limit} bytes")]
    TooLarge { file: String, limit: u64 },
    #[error("the archive holds no {0}")]
    NotInArchive(String),
    #[error("the registry has no {0}")]
    NotInRegistry(String),
    #[error("the registry has no such tag")]
    NoSuchTag,
    #[error("it exists and is not a directory")]
    NotADirectory,
    #[error("the directory exists, is not empty and holds no `oci-layout`; composer will not write into it")]
    OtherFiles,
    #[error("neither an OCI layout nor an oci-archive or docker-archive")]
    UnknownFormat,
    #[error("digest `{}` is not a sha256 digest", .0.escape_debug())]
    BadDigest(String),
    #[error("it has no index.json")]
    NoIndex,
    #[error("index.json lists no image")]
    NoImage,
    #[error("it has no tag `{tag}` (tags: {})", if tags.is_empty() { "none".to_string() } else { tags.join(", ") })]
    NoSuchImageTag { tag: String, tags: Vec<String> },
    #[error("it holds {count} images: name one as PATH:TAG (tags: {})", tags.join(", "))]
    SeveralImages { count: usize, tags: Vec<String> },
    #[error("manifest.json lists {0} images; one is expected")]
    DockerImages(usize),
    #[error("index.json lists {0} images; push takes a layout of one")]
    PushedImages(usize),
    #[error("its image is not an image index")]
    NotAnIndex,
    /// A descriptor (`what`, its digest) whose size is missing or out of bounds.
    #[error("{} ({}) gives the size {}, not a number of bytes from 1 to {}", .0.what, .0.digest.escape_debug(), .0.size, .0.limit)]
    BadSize(Box<BadSize>),
    #[error(
        "{} names {} of {} bytes, but {} holds {} with digest {}: the image was altered or damaged",
        .0.what, .0.digest, .0.size, .0.file, .0.found, .0.actual
    )]
    Altered(Box<Altered>),
    #[error("{0} does not match its digest")]
    DigestMismatch(String),
}

/// A descriptor (`what`, its digest) whose size (as the document gives it) is missing or out of
/// bounds.
#[derive(Debug)]
pub struct BadSize {
    pub what: String,
    pub digest: String,
    pub size: String,
    pub limit: u64,
}

/// Bytes that are not what the descriptor (`what`) names; `found` says how many there were.
#[derive(Debug)]
pub struct Altered {
    pub what: String,
    pub digest: String,
    pub size: u64,
    pub file: String,
    pub found: String,
    pub actual: String,
}
