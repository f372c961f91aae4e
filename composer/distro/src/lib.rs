//! The seam between the planner and a distribution: the [`Backend`] trait, what a lock records
//! of packages and releases, and the image as a backend sees it. Below the planner and every
//! backend, so that neither names the other.

mod backend;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
#[cfg(feature = "testing")]
pub mod fake;
mod image;
mod package;

pub use backend::{
    Backend, Distributions, LockCheck, Notes, Services, Unlisted, UnpackedPackage, VerifiedRelease, Wanted,
};
pub use error::{DistributionError, DistroError, Failure};
pub use image::{ImageView, SystemFiles};
pub use package::{FILE_SHA256, Identity, LockedPackage, LockedRelease};
