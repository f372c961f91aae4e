//! What a lock records of a package and of the release it was resolved from.

use serde::{Deserialize, Serialize};

/// One package as resolved and locked: everything needed to fetch and verify it again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedRelease {
    pub suite: String,
    pub codename: String,
    pub date: String,
    pub inrelease_sha256: String,
}
