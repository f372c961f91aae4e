//! `recipe.lock`: the resolved package set of every platform, so that a build never re-resolves
//! and gives the same image after the mirror moves on. Deterministic TOML; no mirror host, no
//! path, no time of resolution (only the Release's own date).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::BuildError;
pub use composer_distro::{LockedPackage, LockedRelease};

pub use crate::problems::LockMismatch;

mod v1;

/// 2: package identities with kinds (`identity = ["sha256:..."]`), the release record the
/// backend's, platforms without the distribution's architecture names. 1 is read and migrated.
pub const LOCK_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    pub distro: String,
    pub suite: String,
    pub components: Vec<String>,
    /// The package requests the lock was resolved for (the recipe's plus implicit ones).
    pub requests: Vec<String>,
    pub essential: bool,
    /// The packages of the build root (compilers and -dev packages), when the recipe builds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_requests: Vec<String>,
    /// The -dev packages whose run-time libraries the image holds (a built CPython's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_of: Vec<String>,
    /// The platform whose root cross-compiles the others' builds (`[cross] build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_build: Option<String>,
    /// `[python] system_libraries = "add"`: each platform's `system_libraries` are requests too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub add_system_libraries: bool,
    #[serde(rename = "platform")]
    pub platforms: Vec<LockedPlatform>,
    /// The version of the file this was read from when it was older: it is written again in
    /// today's form (nothing is resolved again).
    #[serde(skip)]
    pub migrated_from: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlatform {
    pub platform: String,
    pub release: LockedRelease,
    /// Packages requested because they ship a library a wheel needs (`libstdc++6`), with
    /// `[python] system_libraries = "add"`: a claim checked against the wheels on every build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_libraries: Vec<String>,
    pub packages: Vec<LockedPackage>,
    /// The build root's closure; never part of the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_packages: Vec<LockedPackage>,
    /// The cross build root's closure: the build platform's packages (its build root and the
    /// cross compilers for this platform). Empty when this platform's builds run natively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_packages: Vec<LockedPackage>,
}

/// A bare package name: lower-case letters, digits and `+-._`, starting with a letter or digit.
fn package_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-._".contains(&b))
}

/// The first string of `lock` that holds a control character, cut short.
fn control_characters(lock: &Lockfile) -> Option<String> {
    fn walk(value: &toml::Value) -> Option<String> {
        match value {
            toml::Value::String(s) if s.chars().any(char::is_control) => Some(s.chars().take(80).collect()),
            toml::Value::Array(items) => items.iter().find_map(walk),
            toml::Value::Table(table) => {
                table.iter().find_map(|(k, v)| walk(&toml::Value::String(k.clone())).or_else(|| walk(v)))
            }
            _ => None,
        }
    }
    walk(&toml::Value::try_from(lock).expect("a lock is a TOML value"))
}

pub fn lock_path(recipe: &Path) -> PathBuf {
    recipe.with_extension("lock")
}

impl Lockfile {
    pub fn read(path: &Path) -> Result<Option<Lockfile>, BuildError> {
        // Beside its recipe, and there only: a `recipe.lock` that is a link out of the recipe's
        // directory is refused, as every file a recipe brings is.
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let policy = composer_store::userfile::Policy::within(composer_store::userfile::Kind::LOCK, dir, &[]);
        let text = match composer_store::userfile::read_text_if_exists(path, &policy) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(None),
            Err(e) => return Err(BuildError::Lock { path: path.to_path_buf(), source: e.into() }),
        };
        let located = |e: toml::de::Error| BuildError::Lock {
            path: path.to_path_buf(),
            source: composer_store::userfile::located(&text, e.span(), e.message()).into(),
        };
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let lock: Lockfile = match toml::from_str::<Version>(&text).map_err(located)?.version {
            LOCK_VERSION => toml::from_str(&text).map_err(located)?,
            1 => toml::from_str::<v1::Lock>(&text)
                .map_err(located)?
                .migrate()
                .map_err(|e| BuildError::Lock { path: path.to_path_buf(), source: e.into() })?,
            other => {
                return Err(BuildError::Lock {
                    path: path.to_path_buf(),
                    source: format!("lock version {other} is not {LOCK_VERSION} (nor 1, which is read and rewritten)")
                        .into(),
                });
            }
        };
        let refuse = |reason: String| BuildError::Lock { path: path.to_path_buf(), source: reason.into() };
        // A claim read back into messages and into the next lock: no control character (a line
        // break in a date would forge a line of the log, an escape would drive the terminal).
        if let Some(text) = control_characters(&lock) {
            return Err(refuse(format!("it holds a control character, in `{}`", text.escape_debug())));
        }
        let mut platforms = std::collections::BTreeSet::new();
        if let Some(twice) = lock.platforms.iter().find(|p| !platforms.insert(&p.platform)) {
            return Err(refuse(format!("platform `{}` is locked twice", twice.platform)));
        }
        // These become requests: a name, once, never a relation or text for a terminal.
        for platform in &lock.platforms {
            let mut seen = std::collections::BTreeSet::new();
            for name in &platform.system_libraries {
                if !package_name(name) || !seen.insert(name) {
                    return Err(BuildError::Lock {
                        path: path.to_path_buf(),
                        source: format!(
                            "`system_libraries` of platform `{}` holds `{}`, which is not a package name or is listed twice",
                            platform.platform.escape_debug(),
                            name.escape_debug()
                        )
                        .into(),
                    });
                }
            }
        }
        Ok(Some(lock))
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("locks always serialize");
        format!("# Written by `compose lock`. Do not edit; run `compose lock` to refresh.\n{body}")
    }

    pub fn write(&self, path: &Path) -> Result<(), BuildError> {
        let err = |e: std::io::Error| BuildError::Lock { path: path.to_path_buf(), source: e.into() };
        composer_store::staging::write_beside(path, self.to_toml().as_bytes()).map_err(err)
    }

    /// Why this lock does not cover what is asked, if it does not.
    pub fn mismatch(&self, wanted: &Lockfile) -> Option<LockMismatch> {
        if self.suite != wanted.suite || self.distro != wanted.distro {
            return Some(LockMismatch::Suite {
                locked: format!("{} {}", self.distro, self.suite),
                wanted: format!("{} {}", wanted.distro, wanted.suite),
            });
        }
        if self.components != wanted.components {
            return Some(LockMismatch::Components {
                locked: self.components.clone(),
                wanted: wanted.components.clone(),
            });
        }
        if self.essential != wanted.essential {
            return Some(LockMismatch::Essential);
        }
        if self.add_system_libraries != wanted.add_system_libraries
            || (!self.add_system_libraries && self.platforms.iter().any(|p| !p.system_libraries.is_empty()))
        {
            return Some(LockMismatch::SystemLibraries);
        }
        if let Some(request) = wanted.requests.iter().find(|r| !self.requests.contains(r)) {
            return Some(LockMismatch::NewRequest(request.clone()));
        }
        if let Some(request) = self.requests.iter().find(|r| !wanted.requests.contains(r)) {
            return Some(LockMismatch::DroppedRequest(request.clone()));
        }
        if self.build_requests != wanted.build_requests {
            return Some(LockMismatch::BuildRoot {
                locked: self.build_requests.clone(),
                wanted: wanted.build_requests.clone(),
            });
        }
        if self.cross_build != wanted.cross_build {
            return Some(LockMismatch::Cross { locked: self.cross_build.clone(), wanted: wanted.cross_build.clone() });
        }
        if self.runtime_of != wanted.runtime_of {
            return Some(LockMismatch::RuntimeOf {
                locked: self.runtime_of.clone(),
                wanted: wanted.runtime_of.clone(),
            });
        }
        wanted
            .platforms
            .iter()
            .find(|platform| !self.platforms.iter().any(|p| p.platform == platform.platform))
            .map(|platform| LockMismatch::Platform(platform.platform.clone()))
    }
}

/// What changed between two locks, one line per package and platform, as cargo reports it:
/// `add NAME VERSION`, `remove NAME VERSION`, `update NAME OLD -> NEW`.
pub fn changes(old: &Lockfile, new: &Lockfile) -> Vec<String> {
    let mut out = Vec::new();
    for platform in &new.platforms {
        let before = old.platforms.iter().find(|p| p.platform == platform.platform);
        for (label, old_list, new_list) in [
            ("", before.map(|p| &p.packages), &platform.packages),
            (" (build root)", before.map(|p| &p.build_packages), &platform.build_packages),
            (" (cross build root)", before.map(|p| &p.cross_packages), &platform.cross_packages),
        ] {
            let old_versions: std::collections::BTreeMap<&str, &str> =
                old_list.into_iter().flatten().map(|p| (p.name.as_str(), p.version.as_str())).collect();
            let new_versions: std::collections::BTreeMap<&str, &str> =
                new_list.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
            let at = format!("[{}]{label}", platform.platform);
            for (name, version) in &new_versions {
                match old_versions.get(name) {
                    None => out.push(format!("add {name} {version} {at}")),
                    Some(old) if old != version => out.push(format!("update {name} {old} -> {version} {at}")),
                    Some(_) => {}
                }
            }
            for (name, version) in &old_versions {
                if !new_versions.contains_key(name) {
                    out.push(format!("remove {name} {version} {at}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(requests: &[&str], platforms: &[&str]) -> Lockfile {
        Lockfile {
            version: LOCK_VERSION,
            distro: "distro".into(),
            suite: "stable".into(),
            components: vec!["main".into()],
            requests: requests.iter().map(|r| r.to_string()).collect(),
            essential: false,
            build_requests: vec![],
            runtime_of: vec![],
            cross_build: None,
            add_system_libraries: false,
            migrated_from: None,
            platforms: platforms
                .iter()
                .map(|p| LockedPlatform {
                    platform: p.to_string(),
                    release: LockedRelease { digest: "00".repeat(32), date: "d".into(), fields: Default::default() },
                    system_libraries: vec![],
                    packages: vec![],
                    build_packages: vec![],
                    cross_packages: vec![],
                })
                .collect(),
        }
    }

    fn with_packages(mut lock: Lockfile, packages: &[(&str, &str)]) -> Lockfile {
        lock.platforms[0].packages = packages
            .iter()
            .map(|(name, version)| LockedPackage {
                name: name.to_string(),
                version: version.to_string(),
                architecture: "arch".into(),
                source: name.to_string(),
                filename: format!("pool/{name}.deb"),
                size: 1,
                identity: composer_distro::Identity::file_sha256(&composer_store::Sha256([0; 32])),
            })
            .collect();
        lock
    }

    #[test]
    fn changes_between_locks_are_said_as_cargo_says_them() {
        let old = with_packages(lock(&["a"], &["linux/amd64"]), &[("a", "1"), ("b", "1"), ("c", "1")]);
        let new = with_packages(lock(&["a"], &["linux/amd64"]), &[("a", "1"), ("b", "2"), ("d", "3")]);
        assert_eq!(
            changes(&old, &new),
            ["update b 1 -> 2 [linux/amd64]", "add d 3 [linux/amd64]", "remove c 1 [linux/amd64]",]
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn a_lock_covers_the_same_request_and_a_subset_of_its_platforms() {
        let locked = lock(&["a", "b"], &["linux/amd64", "linux/arm64"]);
        assert_eq!(locked.mismatch(&lock(&["a", "b"], &["linux/amd64"])), None);
    }

    #[test]
    fn every_change_that_needs_a_new_resolution_is_named() {
        let locked = lock(&["a", "b"], &["linux/amd64"]);
        let cases: Vec<(Lockfile, &str)> = vec![
            (lock(&["a", "b", "c"], &["linux/amd64"]), "package `c` is not in the lock"),
            (lock(&["a"], &["linux/amd64"]), "the lock holds `b`"),
            (lock(&["a", "b"], &["linux/arm64"]), "platform `linux/arm64` is not in the lock"),
            (
                Lockfile { suite: "testing".into(), ..lock(&["a", "b"], &["linux/amd64"]) },
                "the recipe asks for distro testing",
            ),
            (Lockfile { components: vec!["main".into(), "contrib".into()], ..locked.clone() }, "components"),
            (Lockfile { essential: true, ..locked.clone() }, "`essential`"),
            (Lockfile { build_requests: vec!["cc".into()], ..locked.clone() }, "build root"),
            (Lockfile { runtime_of: vec!["libx-dev".into()], ..locked.clone() }, "run-time libraries"),
            (Lockfile { cross_build: Some("linux/amd64".into()), ..locked.clone() }, "cross-compile"),
        ];
        for (wanted, said) in cases {
            let reason =
                locked.mismatch(&wanted).unwrap_or_else(|| panic!("no mismatch found for `{said}`")).to_string();
            assert!(reason.contains(said), "{reason}");
        }
    }

    #[test]
    fn a_lock_reads_back_as_written_and_refuses_another_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        let written = lock(&["a"], &["linux/amd64"]);
        written.write(&path).unwrap();
        assert_eq!(Lockfile::read(&path).unwrap(), Some(written));
        let text = std::fs::read_to_string(&path).unwrap().replace("version = 2", "version = 99");
        std::fs::write(&path, text).unwrap();
        assert!(
            matches!(Lockfile::read(&path), Err(BuildError::Lock { source, .. }) if source.to_string().contains("99"))
        );
        assert_eq!(Lockfile::read(&dir.path().join("none.lock")).unwrap(), None);
    }

    const V1: &str = r#"# Written by `compose lock`. Do not edit; run `compose lock` to refresh.
version = 1
distro = "debian"
suite = "bookworm"
components = ["main"]
requests = ["base-files"]
essential = false

[[platform]]
platform = "linux/amd64"
architecture = "amd64"

[platform.release]
suite = "stable"
codename = "bookworm"
date = "Sat, 08 Nov 2025 10:00:00 UTC"
inrelease_sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[[platform.packages]]
name = "base-files"
version = "12.4"
architecture = "amd64"
source = "base-files"
filename = "pool/main/b/base-files/base-files_12.4_amd64.deb"
size = 70000
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
"#;

    #[test]
    fn a_lock_of_version_1_reads_as_the_same_claims_and_writes_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        std::fs::write(&path, V1).unwrap();
        let lock = Lockfile::read(&path).unwrap().unwrap();
        assert_eq!(lock.migrated_from, Some(1));
        assert_eq!(lock.version, LOCK_VERSION);
        let platform = &lock.platforms[0];
        assert_eq!(platform.release.digest, "1".repeat(64));
        assert_eq!(platform.release.date, "Sat, 08 Nov 2025 10:00:00 UTC");
        assert_eq!(platform.release.fields.get("codename").map(String::as_str), Some("bookworm"));
        let package = &platform.packages[0];
        assert_eq!(package.identity.key(), "2".repeat(64), "keys as before: every store keeps matching");
        assert_eq!(package.size, 70000);
        lock.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("version = 2") && !text.contains("inrelease_sha256"), "{text}");
        assert!(text.contains(&format!("identity = [\"sha256:{}\"]", "2".repeat(64))), "{text}");
        let again = Lockfile::read(&path).unwrap().unwrap();
        assert_eq!(again.migrated_from, None);
        assert_eq!(Lockfile { migrated_from: None, ..lock }, again);
    }

    #[test]
    fn a_version_1_lock_with_a_bad_digest_is_refused_naming_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        std::fs::write(&path, V1.replace(&"2".repeat(64), "xyz")).unwrap();
        let error = Lockfile::read(&path).unwrap_err();
        assert!(format!("{:?}", error).contains("base-files"), "{error:?}");
    }

    /// What a lock says is read back into messages and the next lock: refused whole when it
    /// holds what a terminal obeys, names a platform twice, or carries a field no writer wrote.
    #[test]
    fn a_lock_with_control_characters_twice_a_platform_or_a_stray_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.lock");
        let written = with_packages(lock(&["a"], &["linux/amd64"]), &[("a", "1")]);
        written.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let refused = |text: String, said: &str| {
            std::fs::write(&path, &text).unwrap();
            let error = Lockfile::read(&path).unwrap_err();
            let shown = format!("{error:?}");
            assert!(shown.contains(said), "{said}: {shown}\n{text}");
        };
        refused(text.replace("date = \"d\"", "date = \"d\\nerror: forged\""), "control character");
        refused(text.replace("name = \"a\"", "name = \"a\\u001b[2J\""), "control character");
        let platform = &text[text.find("[[platform]]").unwrap()..];
        refused(format!("{text}\n{platform}"), "locked twice");
        refused(text.replace("size = 1", "size = 1\nsha256 = \"00\""), "unknown field");
        refused(V1.replace("size = 70000", "size = 70000\nidentity = [\"sha256:00\"]"), "unknown field");
    }
}
