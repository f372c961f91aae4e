//! What a lock records of a package and of the release it was resolved from. The fields the
//! planner reads are named here; what a digest is, and what else a release record holds, is the
//! backend's.

use std::collections::BTreeMap;

use composer_store::Sha256;
use serde::{Deserialize, Serialize};

/// One package as resolved and locked: everything needed to fetch and verify it again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub source: String,
    pub filename: String,
    pub size: u64,
    pub identity: Identity,
}

/// What a signed index says a package is: the digests its repository format signs, each
/// `KIND:VALUE` (Debian: `sha256:` of the `.deb`; APK signs the control member's SHA-1 and the
/// data member's SHA-256, and never the file's). The planner, the store and the caches treat it
/// as opaque; only the backend that wrote it checks a file against it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Identity(Vec<String>);

/// The kind of digest that is the package file's own SHA-256.
pub const FILE_SHA256: &str = "sha256";

impl Identity {
    /// From `(kind, value)` pairs, in a canonical order.
    pub fn new<'a>(digests: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Identity, String> {
        Identity::try_from(digests.into_iter().map(|(kind, value)| format!("{kind}:{value}")).collect::<Vec<_>>())
    }

    /// The identity of a package whose index signs its file's SHA-256.
    pub fn file_sha256(sha256: &Sha256) -> Identity {
        Identity(vec![format!("{FILE_SHA256}:{}", sha256.to_hex())])
    }

    /// The digest of `kind`, as written.
    pub fn get(&self, kind: &str) -> Option<&str> {
        self.0.iter().find_map(|d| d.strip_prefix(kind)?.strip_prefix(':'))
    }

    /// The SHA-256 of the package file, where the repository format signs it: then the store
    /// and any cache find the file by it, and no other record is needed.
    pub fn sha256(&self) -> Option<Sha256> {
        self.get(FILE_SHA256)?.parse().ok()
    }

    /// The identity as step keys and maps hold it. A file digest alone is its bare hex, as keys
    /// held it before identities had kinds, so that every store and cache keeps matching; any
    /// other identity is its digests joined, which no hex can equal.
    pub fn key(&self) -> String {
        match (self.0.as_slice(), self.sha256()) {
            ([_], Some(sha256)) => sha256.to_hex(),
            _ => self.0.join(" "),
        }
    }
}

impl TryFrom<Vec<String>> for Identity {
    type Error = String;

    fn try_from(mut digests: Vec<String>) -> Result<Identity, String> {
        if digests.is_empty() {
            return Err("a package identity names at least one digest".into());
        }
        for digest in &digests {
            let Some((kind, value)) = digest.split_once(':') else {
                return Err(format!("`{}` is not KIND:VALUE", digest.escape_debug()));
            };
            let kind_ok =
                !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            // Values are hex or base64: nothing that could split a key or move a terminal.
            let value_ok = !value.is_empty()
                && value.len() <= 256
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b));
            if !kind_ok || !value_ok {
                return Err(format!("`{}` is not KIND:VALUE", digest.escape_debug()));
            }
        }
        digests.sort();
        if digests.windows(2).any(|w| w[0].split_once(':').map(|d| d.0) == w[1].split_once(':').map(|d| d.0)) {
            return Err("a package identity names each kind of digest once".into());
        }
        if digests.iter().any(|d| d.starts_with("sha256:")) && Identity(digests.clone()).sha256().is_none() {
            return Err("its sha256 is not 64 hex digits".into());
        }
        Ok(Identity(digests))
    }
}

impl From<Identity> for Vec<String> {
    fn from(identity: Identity) -> Vec<String> {
        identity.0
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// The signed document a platform's packages were resolved from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedRelease {
    /// The document's digest, 64 hex digits (Debian: the SHA-256 of `InRelease`): equal digests
    /// mean equal indexes, and resolutions are keyed by it.
    pub digest: String,
    /// When it was published, as it says; for messages (the backend orders releases).
    pub date: String,
    /// What else the backend records of it (Debian: `suite` and `codename`).
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_digest_alone_keys_as_its_hex_and_any_other_identity_by_its_digests() {
        let sha: Sha256 = "ab".repeat(32).parse().unwrap();
        let file = Identity::file_sha256(&sha);
        assert_eq!(file.key(), "ab".repeat(32));
        assert_eq!(file.sha256(), Some(sha));
        let apk = Identity::new([("data-sha256", &*"cd".repeat(32)), ("control-sha1", "Q1abc/+=")]).unwrap();
        assert_eq!(apk.sha256(), None);
        assert_eq!(apk.get("control-sha1"), Some("Q1abc/+="));
        assert_eq!(apk.key(), format!("control-sha1:Q1abc/+= data-sha256:{}", "cd".repeat(32)));
    }

    #[test]
    fn an_identity_refuses_what_could_split_a_key_or_hide_a_digest() {
        for bad in [
            vec![],
            vec!["sha256".to_string()],
            vec!["sha256:".to_string()],
            vec!["sha256:zz".to_string()],
            vec!["Kind:ab".to_string()],
            vec!["k:a b".to_string()],
            vec!["k:a\u{1b}[2J".to_string()],
            vec!["k:a".to_string(), "k:b".to_string()],
        ] {
            assert!(Identity::try_from(bad.clone()).is_err(), "{bad:?}");
        }
    }
}
