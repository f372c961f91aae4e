//! Cache references as users write them: `oci://HOST[:PORT]/REPO` for a registry repository,
//! `dir:PATH` for an OCI image layout directory.

use std::path::PathBuf;

use crate::CacheError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRef {
    Registry { host: String, repository: String },
    Dir(PathBuf),
}

const HINT: &str = "write a cache as oci://HOST[:PORT]/REPOSITORY (a registry) or dir:PATH (a directory)";
const CREDENTIALS_HINT: &str = "a cache reference holds no credentials: write oci://HOST[:PORT]/REPOSITORY and log in \
     with --creds, `podman login` or `docker login`";

impl std::str::FromStr for CacheRef {
    type Err = CacheError;
    fn from_str(text: &str) -> Result<CacheRef, CacheError> {
        // The text is shown redacted: `USER:PASSWORD@` is refused, never repeated.
        let error = || {
            let shown = composer_client::redact(text).into_owned();
            let hint = if shown.contains(composer_client::REDACTED) { CREDENTIALS_HINT } else { HINT };
            CacheError::Reference { text: shown, hint }
        };
        if let Some(path) = text.strip_prefix("dir:") {
            return if path.is_empty() { Err(error()) } else { Ok(CacheRef::Dir(PathBuf::from(path))) };
        }
        let rest = text.strip_prefix("oci://").ok_or_else(error)?;
        let (host, repository) = rest.split_once('/').ok_or_else(error)?;
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        // The distribution spec's repository name: lower-case components joined by `/`.
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !host_ok || !repository.split('/').all(component_ok) {
            return Err(error());
        }
        Ok(CacheRef::Registry { host: host.to_string(), repository: repository.to_string() })
    }
}

impl std::fmt::Display for CacheRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheRef::Registry { host, repository } => write!(f, "oci://{host}/{repository}"),
            CacheRef::Dir(path) => write!(f, "dir:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_written_and_bad_ones_are_refused() {
        let registry: CacheRef = "oci://127.0.0.1:5000/team/cache".parse().unwrap();
        assert_eq!(registry, CacheRef::Registry { host: "127.0.0.1:5000".into(), repository: "team/cache".into() });
        assert_eq!(registry.to_string(), "oci://127.0.0.1:5000/team/cache");
        assert_eq!("dir:/srv/cache".parse::<CacheRef>().unwrap(), CacheRef::Dir("/srv/cache".into()));
        for bad in ["", "dir:", "/srv/cache", "oci://host", "oci://host/Upper", "oci://host/a//b", "oci://h o/x"] {
            assert!(bad.parse::<CacheRef>().is_err(), "{bad}");
        }
        let refused = "oci://ci:SECRETPW@127.0.0.1:5000/team/cache".parse::<CacheRef>().unwrap_err();
        assert_eq!(refused.to_string(), "`oci://***@127.0.0.1:5000/team/cache` is not a cache reference");
        assert!(refused.hint().unwrap().contains("--creds"));
    }
}
