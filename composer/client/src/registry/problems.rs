//! What a registry answered that composer cannot go on from: the reasons of
//! [`super::RegistryError`]'s `Protocol`, `CredentialsWithheld` and `Disagrees`, each a fixed
//! condition with what was seen.

/// An answer that breaks the registry protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolProblem {
    #[error("unknown scheme `{0}`")]
    UnknownScheme(String),
    #[error("the bearer challenge names no realm")]
    NoRealm,
    #[error("the token answer holds no token")]
    NoToken,
    #[error("no upload location")]
    NoUploadLocation,
}

/// Why the credentials are not sent to the token service a registry names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    #[error("it is not an http(s) URL")]
    NotAUrl,
    #[error("it names no host")]
    NoHost,
    #[error("it is plain HTTP to {0}, which is neither loopback nor named with --insecure-registry")]
    PlainHttp(String),
    #[error("`{0}:` is not HTTPS")]
    NotHttps(String),
}

/// How a registry's answer about what it holds differs from what was sent or asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disagreement {
    #[error("it answers 404")]
    Missing,
    #[error("it answers for digest {0}")]
    OtherDigest(String),
    #[error("it answers {answered} bytes where the blob has {size}")]
    OtherSize { answered: u64, size: u64 },
    #[error("its answer gives no size (the blob has {0} bytes)")]
    NoSize(u64),
    #[error("the completed upload is answered with digest {0}")]
    UploadDigest(String),
    /// A location already redacted.
    #[error("the completed upload is said to be at {0}, not on the registry")]
    UploadElsewhere(String),
    #[error("it was stored as {stored}, not as {sent}, the digest of the bytes sent")]
    StoredAs { stored: String, sent: String },
}
