//! Ed25519 keys in the form Nix binary caches use: a key is `NAME:BASE64`, where NAME says whose
//! key it is (`ci-2026`, `team.example`) and is what a signature names, so a verifier picks the
//! key by name instead of trying every one.
//!
//! The secret key file holds `NAME:BASE64(seed ‖ public key)` (64 bytes, as `nix-store
//! --generate-binary-cache-key` writes them); the public key is `NAME:BASE64(public key)`; a
//! signature is `NAME:BASE64(signature)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::{KeyProblem, Untrusted};

/// What a signature covers is prefixed with this, so that a signature over a claim can never be
/// replayed as a signature over anything else signed with the same key.
const CONTEXT: &[u8] = b"composer-claim-v1\n";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a key: expected NAME:BASE64 (the text is not shown: it may be a secret)")]
    Form,
    #[error("the key name `{name}` must be letters, digits, `.`, `-` or `_`")]
    Name { name: String },
    #[error("key `{name}`: {reason}")]
    Value {
        name: String,
        #[source]
        reason: KeyProblem,
    },
}

fn split(text: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let text = text.trim();
    let (name, value) = text.split_once(':').ok_or(KeyError::Form)?;
    check_name(name)?;
    // Where the base64 breaks, never the byte there: it is a byte of the key.
    let bytes = STANDARD.decode(value).map_err(|e| {
        let reason = match e {
            base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
                KeyProblem::NotBase64At(at)
            }
            base64::DecodeError::InvalidLength(length) => KeyProblem::NotBase64Length(length),
            base64::DecodeError::InvalidPadding => KeyProblem::NotBase64Padding,
        };
        KeyError::Value { name: name.to_string(), reason }
    })?;
    Ok((name, bytes))
}

pub fn check_name(name: &str) -> Result<(), KeyError> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if fine { Ok(()) } else { Err(KeyError::Name { name: name.to_string() }) }
}

pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<SecretKey, KeyError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| KeyError::Value { name: name.to_string(), reason: KeyProblem::NoRandomness(e) })?;
        Ok(SecretKey { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        // A file that is not a key (named by mistake) says nothing of its text, not even the
        // part before its first colon.
        let (name, bytes) = split(text).map_err(|e| match e {
            KeyError::Name { .. } => KeyError::Form,
            other => other,
        })?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| KeyError::Value { name: name.to_string(), reason: KeyProblem::SecretLength })?;
        let key = SigningKey::from_keypair_bytes(&bytes)
            .map_err(|_| KeyError::Value { name: name.to_string(), reason: KeyProblem::KeysDiffer })?;
        Ok(SecretKey { name: name.to_string(), key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of the secret key file.
    pub fn to_file_text(&self) -> String {
        format!("{}:{}\n", self.name, STANDARD.encode(self.key.to_keypair_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// `NAME:BASE64` of the signature over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let signature = self.key.sign(&[CONTEXT, message].concat());
        format!("{}:{}", self.name, STANDARD.encode(signature.to_bytes()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let (name, bytes) = split(text)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Value { name: name.to_string(), reason: KeyProblem::PublicLength })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Value { name: name.to_string(), reason: KeyProblem::NotAPoint })?;
        Ok(PublicKey { name: name.to_string(), key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, STANDARD.encode(self.key.to_bytes()))
    }
}

/// The signatures over a document (`NAME:BASE64`), and the public keys (`NAME:BASE64`) of those
/// who signed it, as they say. A signer's key proves nothing (anyone can name any key); it only
/// lets a failed check tell a document altered after signing from one signed by another key that
/// goes by a trusted key's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signatures {
    pub by: Vec<String>,
    pub signers: Vec<String>,
}

impl Signatures {
    /// `key`'s signature over `message`, with its public key.
    pub fn sign(key: &SecretKey, message: &[u8]) -> Signatures {
        Signatures { by: vec![key.sign(message)], signers: vec![key.public().to_string()] }
    }

    /// These and `other`'s, except any by the key names these already hold.
    pub fn merge(&mut self, other: Signatures) {
        let name = |text: &String| text.split_once(':').map(|(n, _)| n.to_string()).unwrap_or_default();
        let ours: Vec<String> = self.by.iter().map(name).collect();
        self.by.extend(other.by.into_iter().filter(|s| !ours.contains(&name(s))));
        self.signers.extend(other.signers.into_iter().filter(|s| !ours.contains(&name(s))));
        self.by.sort();
        self.signers.sort();
    }
}

/// The keys whose signatures make a result usable.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    pub fn new(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the trusted key one of `signed`'s signatures verifies `message` with. A
    /// signature naming a trusted key that does not verify is a failure even if another one would
    /// pass: it means the document was altered after signing, or signed by another key that goes
    /// by a trusted key's name (told apart by the signer's key the document names, if any).
    pub fn check(&self, message: &[u8], signed: &Signatures) -> Result<String, Untrusted> {
        if signed.by.is_empty() {
            return Err(Untrusted::Unsigned);
        }
        let message = [CONTEXT, message].concat();
        let verifies = |key: &VerifyingKey, value: &str| {
            STANDARD
                .decode(value)
                .ok()
                .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                .is_some_and(|bytes| key.verify_strict(&message, &Signature::from_bytes(&bytes)).is_ok())
        };
        let mut unknown = Vec::new();
        let mut good = None;
        for text in &signed.by {
            let Some((name, value)) = text.split_once(':') else { continue };
            let Some(key) = self.keys.iter().find(|k| k.name == name) else {
                unknown.push(name.to_string());
                continue;
            };
            if !verifies(&key.key, value) {
                let named = signed
                    .signers
                    .iter()
                    .filter_map(|s| PublicKey::parse(s).ok())
                    .find(|signer| signer.name == name && signer.key != key.key && verifies(&signer.key, value));
                return Err(match named {
                    Some(theirs) => Untrusted::OtherKey {
                        name: name.to_string(),
                        theirs: theirs.to_string(),
                        ours: key.to_string(),
                    },
                    None => Untrusted::BadSignature(name.to_string()),
                });
            }
            good.get_or_insert_with(|| name.to_string());
        }
        good.ok_or(Untrusted::UnknownKeys(unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file_and_signs_what_its_public_key_verifies() {
        let secret = SecretKey::generate("ci-1").unwrap();
        let again = SecretKey::parse(&secret.to_file_text()).unwrap();
        let public = PublicKey::parse(&again.public().to_string()).unwrap();
        assert_eq!(public, secret.public());
        let trusted = TrustedKeys::new(vec![public]);
        let signed = Signatures::sign(&secret, b"claim");
        assert_eq!(trusted.check(b"claim", &signed), Ok("ci-1".to_string()));
        assert_eq!(trusted.check(b"claim!", &signed), Err(Untrusted::BadSignature("ci-1".into())));
    }

    #[test]
    fn unsigned_and_foreign_signatures_are_told_apart() {
        let ours = SecretKey::generate("ours").unwrap();
        let theirs = SecretKey::generate("theirs").unwrap();
        let trusted = TrustedKeys::new(vec![ours.public()]);
        assert_eq!(trusted.check(b"m", &Signatures::default()), Err(Untrusted::Unsigned));
        assert_eq!(
            trusted.check(b"m", &Signatures::sign(&theirs, b"m")),
            Err(Untrusted::UnknownKeys(vec!["theirs".into()]))
        );
        // A stranger's key under a trusted name is refused, and named for what it is when the
        // document says which key signed it ...
        let impostor = SecretKey::generate("ours").unwrap();
        let said = trusted.check(b"m", &Signatures::sign(&impostor, b"m")).unwrap_err();
        assert_eq!(
            said,
            Untrusted::OtherKey {
                name: "ours".into(),
                theirs: impostor.public().to_string(),
                ours: ours.public().to_string()
            }
        );
        assert!(said.to_string().starts_with("it is signed by another key named `ours`"), "{said}");
        // ... else (or when the document names a key that did not sign it) as a signature that
        // does not verify.
        let bare = Signatures { by: vec![impostor.sign(b"m")], signers: Vec::new() };
        assert_eq!(trusted.check(b"m", &bare), Err(Untrusted::BadSignature("ours".into())));
        let mut altered = Signatures::sign(&impostor, b"m");
        altered.by = vec![impostor.sign(b"other")];
        assert_eq!(trusted.check(b"m", &altered), Err(Untrusted::BadSignature("ours".into())));
    }

    #[test]
    fn merged_signatures_keep_one_per_key_name() {
        let (a, b) = (SecretKey::generate("a").unwrap(), SecretKey::generate("b").unwrap());
        let mut ours = Signatures::sign(&a, b"m");
        let mut theirs = Signatures::sign(&b, b"m");
        theirs.merge(Signatures::sign(&SecretKey::generate("a").unwrap(), b"m"));
        ours.merge(theirs);
        assert_eq!(ours.by.len(), 2);
        assert_eq!(ours.signers.len(), 2);
        let trusted = TrustedKeys::new(vec![a.public(), b.public()]);
        assert_eq!(trusted.check(b"m", &ours), Ok("a".to_string()));
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_the_secret() {
        assert!(matches!(PublicKey::parse("nocolon"), Err(KeyError::Form)));
        assert!(matches!(PublicKey::parse("bad name:AAAA"), Err(KeyError::Name { .. })));
        assert!(matches!(PublicKey::parse("k:AAAA"), Err(KeyError::Value { .. })));
        let secret = "k-thisissecretmaterialthatmustnotbeprinted";
        let message = SecretKey::parse(secret).err().unwrap().to_string();
        assert!(!message.contains("mustnotbeprinted"), "{message}");
        let message = SecretKey::parse("k:AAA$AAAA").err().unwrap().to_string();
        assert_eq!(message, "key `k`: not base64 at offset 3");
        let message = SecretKey::parse("Secret Token:AAAA").err().unwrap().to_string();
        assert!(!message.contains("Secret"), "{message}");
    }
}
