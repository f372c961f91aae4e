//! `InRelease`: an OpenPGP cleartext-signed `Release` file. It is verified against a keyring
//! before a single field of it is believed; the verified text then lists the SHA-256 and size of
//! every index file of the suite.

use std::collections::BTreeMap;
use std::path::Path;

use composer_store::Sha256;
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

use crate::DebError;

/// The fields of a verified Release file that composer uses.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub date: String,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Index path (relative to the suite directory) → (sha256, size).
    pub files: BTreeMap<String, (Sha256, u64)>,
    /// The signed text, as it was verified.
    pub text: String,
}

/// Loads every public key of a keyring file (binary `.gpg` or ASCII-armored `.asc`).
pub fn load_keyring(path: &Path) -> Result<Vec<SignedPublicKey>, DebError> {
    let bytes = std::fs::read(path)
        .map_err(|source| DebError::Keyring { path: path.to_path_buf(), reason: source.to_string() })?;
    let (keys, _) = SignedPublicKey::from_reader_many(std::io::Cursor::new(bytes))
        .map_err(|e| DebError::Keyring { path: path.to_path_buf(), reason: e.to_string() })?;
    let keys: Vec<_> = keys.filter_map(Result::ok).collect();
    if keys.is_empty() {
        return Err(DebError::Keyring { path: path.to_path_buf(), reason: "it holds no OpenPGP public key".into() });
    }
    Ok(keys)
}

/// Verifies an `InRelease` document against `keys` and parses it. `what` names it in errors.
pub fn verify_inrelease(data: &[u8], keys: &[SignedPublicKey], what: &str) -> Result<Release, DebError> {
    let bad = |reason: String| DebError::BadSignature { what: what.to_string(), reason };
    let text = std::str::from_utf8(data).map_err(|_| bad("it is not UTF-8 text".into()))?;
    let (message, _) =
        CleartextSignedMessage::from_string(text).map_err(|e| bad(format!("it is not a signed message: {e}")))?;
    let verified = keys.iter().any(|key| {
        message.verify(&key.primary_key).is_ok()
            || key.public_subkeys.iter().any(|sub| message.verify(&sub.key).is_ok())
    });
    if !verified {
        return Err(bad(format!("no signature verifies against the {} key(s) of the keyring", keys.len())));
    }
    parse_release(&message.signed_text().replace("\r\n", "\n"), what)
}

pub fn parse_release(text: &str, what: &str) -> Result<Release, DebError> {
    let paragraph = crate::control::parse(text).into_iter().next().unwrap_or_default();
    let field = |name: &str| paragraph.get(name).unwrap_or("").to_string();
    let mut files = BTreeMap::new();
    for line in paragraph.get("SHA256").unwrap_or("").lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [sha, size, path] = parts[..] {
            let sha: Sha256 = sha.parse().map_err(|e: String| DebError::Index { what: what.to_string(), reason: e })?;
            let size = size
                .parse()
                .map_err(|_| DebError::Index { what: what.to_string(), reason: format!("bad size `{size}`") })?;
            files.insert(path.to_string(), (sha, size));
        }
    }
    if files.is_empty() {
        return Err(DebError::Index { what: what.to_string(), reason: "it lists no SHA256 checksums".into() });
    }
    let words = |s: String| s.split_whitespace().map(str::to_string).collect();
    Ok(Release {
        suite: field("Suite"),
        codename: field("Codename"),
        date: field("Date"),
        architectures: words(field("Architectures")),
        components: words(field("Components")),
        files,
        text: text.to_string(),
    })
}
