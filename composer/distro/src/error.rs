//! What a backend's failure carries to the planner: the store's and the wheel crate's errors as
//! themselves (the planner acts on a damaged store object), anything else as the distribution's
//! own error, kept whole as the cause with the hint it gives.

use composer_store::StoreError;
use composer_wheels::WheelError;

/// A distribution's own error: its index format, its signatures, its package files.
pub trait DistributionError: std::error::Error + Send + Sync + 'static {
    /// What the user can do about it.
    fn hint(&self) -> Option<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum DistroError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Wheels(#[from] WheelError),
    /// The backend's own error, shown as itself with its own causes.
    #[error(transparent)]
    Distribution(Failure),
}

/// A [`DistributionError`] behind a box, as transparent as the error itself: its message and its
/// causes, so that nothing is said twice.
#[derive(Debug)]
pub struct Failure(Box<dyn DistributionError>);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl DistroError {
    pub fn distribution(error: impl DistributionError) -> DistroError {
        DistroError::Distribution(Failure(Box::new(error)))
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            DistroError::Store(e) => e.hint(),
            DistroError::Wheels(e) => e.hint(),
            DistroError::Distribution(e) => e.0.hint(),
        }
    }
}
