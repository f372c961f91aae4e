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
    Corrupt { what: String, reason: String },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}")]
    Sha256Mismatch { what: String, expected: String, actual: String },
    #[error("refusing to store an unsafe tree")]
    BadTree(#[source] Box<crate::TreeError>),
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
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
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
