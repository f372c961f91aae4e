//! Python wheel sets: the target interpreter's tags, resolution through uv into PEP 751 locks,
//! installation into store trees without pip, and static wheel indexes (PEP 503, 691, 658).

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod bootstrap;
mod error;
pub mod index_url;
pub mod install;
pub mod libraries;
pub mod origin;
mod problems;
pub mod pylock;
pub mod repair;
pub mod requirements;
pub mod resolve;
pub mod sdist;
pub mod simple;
pub mod target;

pub use error::WheelError;

/// The version of uv that composer is tested with (tests/setup.sh installs it).
pub const UV_VERSION: &str = "0.13.9";

pub use index_url::{IndexChoice, IndexSettings};
pub use install::{Installed, Scheme};
pub use problems::{IndexDirProblem, SdistProblem, TargetProblem, WheelProblem};
pub use pylock::{LockedWheel, WheelLock};
pub use target::{Libc, Target};

/// PEP 503 normalized project name: lower case, runs of `-`, `_` and `.` as one `-`.
pub fn normalize_name(name: &str) -> String {
    // One PEP 503 rule for the recipe's tables and the locks alike.
    composer_recipe::sdist_settings::normalize(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(super::normalize_name("PyYAML"), "pyyaml");
        assert_eq!(super::normalize_name("zope.interface__x"), "zope-interface-x");
    }
}
