//! OCI output: deterministic layer tars, image configs, manifests and indexes, written from and
//! into the store, then exported as an OCI image layout, an `oci-archive` or a `docker-archive`.
//!
//! Every JSON document is written canonically (keys sorted, no insignificant whitespace), so the
//! same inputs give the same digests on any machine.

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod archive;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod layout;
pub mod members;
pub mod not_a_layout;
pub mod output;
pub mod push;

pub use image::{ImageSpec, LayerDescriptor, PlatformImage};
pub use layer::{Compression, LayerBlob};
pub use not_a_layout::LayoutProblem;
pub use output::{Image, Output, export};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("failed to write layer {what}")]
    Layer {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        path: std::path::PathBuf,
        #[source]
        reason: LayoutProblem,
    },
    #[error("invalid OCI document: {0}")]
    Spec(String),
    #[error("output `{0}` is not understood")]
    Output(String),
    /// A docker-archive holds one platform's image, and which one was not said.
    #[error("a docker-archive holds one platform, and the image has {}: {}", platforms.len(), platforms.join(", "))]
    OnePlatform { platforms: Vec<String> },
    #[error("platform {asked} is not in the image (it has {})", have.join(", "))]
    PlatformNotInImage { asked: String, have: Vec<String> },
    #[error("output `{output}` names the transport `{transport}:`, which composer does not write")]
    UnknownTransport { output: String, transport: String },
    #[error(transparent)]
    Store(#[from] composer_store::StoreError),
    #[error("`{0}` is not an image reference")]
    Reference(String),
    #[error(transparent)]
    Registry(composer_client::registry::RegistryError),
}

impl OciError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            OciError::Output(_) => Some("use a directory, `oci-archive:FILE` or `docker-archive:FILE`".into()),
            OciError::OnePlatform { platforms } => Some(format!(
                "add `--platform {}` (or another of them), or write all of them with `-o oci-archive:FILE`",
                platforms.first().map(String::as_str).unwrap_or("PLATFORM")
            )),
            OciError::PlatformNotInImage { have, .. } => {
                Some(format!("pick one of {} with --platform", have.join(", ")))
            }
            OciError::UnknownTransport { .. } => Some(
                "write a directory (`oci:DIR` or a plain path), `oci-archive:FILE` or `docker-archive:FILE`; \
                 to push it to a registry, use `compose push` or `compose build --push`"
                    .into(),
            ),
            OciError::Reference(text) if text.contains(composer_client::REDACTED) => Some(
                "a reference holds no credentials: write HOST[:PORT]/REPOSITORY[:TAG] and log in with --creds, \
                 `podman login` or `docker login`"
                    .into(),
            ),
            OciError::Reference(_) => {
                Some("write HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/team/app:v1".into())
            }
            OciError::Registry(e) => e.hint(),
            _ => None,
        }
    }
}

/// An I/O error of a write fed by store objects: the store's verdict on a damaged object the
/// reader met, or `otherwise` the I/O error.
pub(crate) fn store_or(source: std::io::Error, otherwise: impl FnOnce(std::io::Error) -> OciError) -> OciError {
    composer_store::StoreError::carried(source).map_or_else(otherwise, OciError::Store)
}

/// Serialises any value as canonical JSON: object keys sorted, compact.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // serde_json's Value keeps maps in a BTreeMap (no `preserve_order`), which sorts keys,
    // whatever HashMap the typed document used.
    let value = serde_json::to_value(value).expect("OCI documents serialize");
    serde_json::to_vec(&value).expect("JSON values serialize")
}
