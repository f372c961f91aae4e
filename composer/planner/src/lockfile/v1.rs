//! Locks written before package identities had kinds (`version = 1`): read, and turned into
//! today's form without resolving again. The packages, their versions and their digests are the
//! same claims; only where they are written moved. The lock is checked against its signed index
//! after this, as any lock is.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{LockedPlatform, Lockfile};
use composer_distro::{Identity, LockedPackage, LockedRelease};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Lock {
    /// 1, as the reader checked before choosing this form.
    #[allow(dead_code)]
    version: u32,
    distro: String,
    suite: String,
    components: Vec<String>,
    requests: Vec<String>,
    essential: bool,
    #[serde(default)]
    build_requests: Vec<String>,
    #[serde(default)]
    runtime_of: Vec<String>,
    #[serde(default)]
    cross_build: Option<String>,
    #[serde(default)]
    add_system_libraries: bool,
    #[serde(rename = "platform")]
    platforms: Vec<Platform>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    platform: String,
    /// The distribution's name for the architecture: the backend's to know, not the lock's.
    #[allow(dead_code)]
    architecture: String,
    release: Release,
    #[serde(default)]
    system_libraries: Vec<String>,
    packages: Vec<Package>,
    #[serde(default)]
    build_packages: Vec<Package>,
    #[serde(default)]
    cross_packages: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    suite: String,
    codename: String,
    date: String,
    inrelease_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Package {
    name: String,
    version: String,
    architecture: String,
    source: String,
    filename: String,
    size: u64,
    sha256: String,
}

impl Lock {
    pub(super) fn migrate(self) -> Result<Lockfile, String> {
        let packages = |list: Vec<Package>| -> Result<Vec<LockedPackage>, String> {
            list.into_iter()
                .map(|p| {
                    let identity = Identity::new([(composer_distro::FILE_SHA256, p.sha256.as_str())])
                        .map_err(|e| format!("package `{}`: {e}", p.name.escape_debug()))?;
                    Ok(LockedPackage {
                        name: p.name,
                        version: p.version,
                        architecture: p.architecture,
                        source: p.source,
                        filename: p.filename,
                        size: p.size,
                        identity,
                    })
                })
                .collect()
        };
        let platforms = self
            .platforms
            .into_iter()
            .map(|p| {
                Ok(LockedPlatform {
                    platform: p.platform,
                    release: LockedRelease {
                        digest: p.release.inrelease_sha256,
                        date: p.release.date,
                        fields: BTreeMap::from([
                            ("suite".to_string(), p.release.suite),
                            ("codename".to_string(), p.release.codename),
                        ]),
                    },
                    system_libraries: p.system_libraries,
                    packages: packages(p.packages)?,
                    build_packages: packages(p.build_packages)?,
                    cross_packages: packages(p.cross_packages)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Lockfile {
            version: super::LOCK_VERSION,
            distro: self.distro,
            suite: self.suite,
            components: self.components,
            requests: self.requests,
            essential: self.essential,
            build_requests: self.build_requests,
            runtime_of: self.runtime_of,
            cross_build: self.cross_build,
            add_system_libraries: self.add_system_libraries,
            platforms,
            migrated_from: Some(1),
        })
    }
}
