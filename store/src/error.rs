use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a composer store (it has no FORMAT file)", path.display())]
    NotAStore { path: PathBuf },
    #[error("`{}` is a store of format `{found}`, this composer reads `{}`", path.display(), crate::FORMAT)]
    Format { path: PathBuf, found: String },
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        what: String,
        #[source]
        reason: Box<Corruption>,
    },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}")]
    Sha256Mismatch { what: String, expected: String, actual: String },
    #[error("refusing to store an unsafe tree")]
    BadTree(#[source] Box<crate::TreeError>),
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
}

/// How an object or record of the store differs from what was recorded of it.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    #[error("it holds {on_disk} bytes, {recorded} were recorded")]
    Size { on_disk: u64, recorded: u64 },
    #[error("it holds {on_disk} bytes, a file at {offset} of {size} bytes was recorded")]
    PackTooShort { on_disk: u64, offset: u64, size: u64 },
    #[error("it is longer than recorded")]
    Longer,
    #[error("it ends after {read} of {size} bytes")]
    Ends { read: u64, size: u64 },
    #[error("it ends {read} bytes into a file of {size}")]
    EndsInFile { read: u64, size: u64 },
    #[error("its content hashes to {0}")]
    Blake3(crate::Hash),
    #[error("its content has sha256 {actual}, not {expected}")]
    Sha256 { actual: crate::Sha256, expected: crate::Sha256 },
    #[error("the file it holds for {content} hashes to {actual}")]
    PackedFile { content: crate::Hash, actual: crate::Hash },
    #[error("expected BLAKE3 {expected}, the bytes have {actual}")]
    Blake3Mismatch { expected: crate::Hash, actual: crate::Hash },
    #[error("unparsable")]
    Alias,
    /// A record, manifest or listing that does not parse.
    #[error("it does not parse")]
    Unparsable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Tree(#[from] crate::TreeError),
    #[error("built, yet not in the store")]
    Missing,
}

impl StoreError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::NotAStore { .. } => {
                Some("check where the store is; a store is made by the first `compose build` that uses it".into())
            }
            _ => None,
        }
    }

    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        StoreError::Io { action, path: path.to_path_buf(), source }
    }

    /// The store's verdict that an [`crate::ObjectReader`] carried out through an I/O error (a
    /// damaged object), or the I/O error itself when it is not one.
    pub fn carried(source: std::io::Error) -> Result<StoreError, std::io::Error> {
        source.downcast::<StoreError>()
    }
}

impl From<crate::TreeError> for StoreError {
    fn from(e: crate::TreeError) -> Self {
        StoreError::BadTree(Box::new(e))
    }
}

/// An error and its causes on one line (`what: why: deeper why`), for warnings that go on while
/// a build does: one wording wherever a cause chain is told.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    std::iter::once(error.to_string()).chain(causes(error)).collect::<Vec<_>>().join(": ")
}

/// The causes of an error, outermost first, each one's text once. An error that names its reason
/// in its message keeps that reason as its source (a typed condition, which may hold the
/// underlying error in turn): a cause whose text the error above it already ends with says
/// nothing new and is left out.
pub fn causes(error: &dyn std::error::Error) -> Vec<String> {
    let mut above = error.to_string();
    let mut causes = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !above.ends_with(&text) {
            causes.push(text.clone());
        }
        above = text;
        source = cause.source();
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed reason is the error's source and its text the end of the error's message: the
    /// chain says it once, and the error under it (here a parse error) on a line of its own.
    #[test]
    fn a_reason_named_in_the_message_is_not_said_twice() {
        let parse = serde_json::from_slice::<u8>(b"x").unwrap_err();
        let error =
            StoreError::Corrupt { what: "tree t".into(), reason: Box::new(Corruption::Unparsable(Box::new(parse))) };
        let said = causes(&error);
        assert_eq!(error.to_string(), "tree t is corrupt: it does not parse");
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("expected value"), "{said:?}");
        assert_eq!(error_chain(&error), format!("tree t is corrupt: it does not parse: {}", said[0]));
        assert!(std::error::Error::source(&error).unwrap().downcast_ref::<Box<Corruption>>().is_some());
    }
}
