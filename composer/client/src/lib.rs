//! The one network client of composer. Every download goes through [`Client`], which
//!
//! - obeys `--offline` (only `file://` URLs are read; anything else is an error naming the URL),
//! - retries transient failures (connection errors, timeouts, HTTP 408/429/5xx) with backoff,
//! - streams bodies straight into the store, hashing as it goes, so that nothing unverified and
//!   nothing partial is ever visible there.
//!
//! ```no_run
//! # let store = composer_store::Store::open("/tmp/s".as_ref()).unwrap();
//! let client = composer_client::Client::new(composer_client::ClientOptions::default());
//! let bytes = client.get_bytes("file:///etc/hostname").unwrap();
//! ```

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use composer_store::{BlobInfo, Sha256, Store, StoreError};

pub mod registry;
mod resolver;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{url}` is needed but composer is offline")]
    Offline { url: String },
    #[error("`{url}` was not found ({detail})")]
    NotFound { url: String, detail: String },
    #[error("failed to fetch `{url}` after {attempts} attempt(s)")]
    Transport {
        url: String,
        attempts: u32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to read `{}`", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{url}` is not a URL composer can fetch (expected http://, https:// or file://)")]
    Scheme { url: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub offline: bool,
    pub retries: u32,
    pub timeout: Duration,
    /// The machine's CA bundle as the environment names it (`SSL_CERT_FILE`), resolved by the
    /// caller; `None` for the distribution's default bundle.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { offline: false, retries: 4, timeout: Duration::from_secs(120), ca_file: None }
    }
}

pub struct Client {
    options: ClientOptions,
    agent: ureq::Agent,
}

enum Attempt<T> {
    Done(T),
    Retry(Box<dyn std::error::Error + Send + Sync>),
    Fail(FetchError),
}

/// The machine's trust store (`ca_file`, else the distribution's CA bundle), as pip, uv and apt
/// use it: an organisation's own CA or a TLS-inspecting proxy is trusted where the machine
/// trusts it. Without a bundle, the built-in web PKI roots.
fn system_roots(ca_file: Option<&std::path::Path>) -> ureq::tls::RootCerts {
    roots_with(ca_file, &[])
}

/// The machine's trust store (as [`system_roots`]) plus the certificates in `extra` PEM files
/// (a registry's own CA, as podman finds it in `certs.d`).
fn roots_with(ca_file: Option<&std::path::Path>, extra: &[std::path::PathBuf]) -> ureq::tls::RootCerts {
    let file = ca_file.map(std::path::Path::to_path_buf).unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    let mut certs: Vec<ureq::tls::Certificate<'static>> = Vec::new();
    for path in std::iter::once(&file).chain(extra) {
        let Ok(pem) = std::fs::read(path) else { continue };
        certs.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        }));
    }
    if certs.is_empty() { ureq::tls::RootCerts::WebPki } else { ureq::tls::RootCerts::new_with_certs(&certs) }
}

impl Client {
    pub fn new(options: ClientOptions) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(Duration::from_secs(20)))
            .max_idle_connections_per_host(16)
            .user_agent(concat!("composer/", env!("CARGO_PKG_VERSION")))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(system_roots(options.ca_file.as_deref())).build())
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            resolver::CachingResolver::default(),
        );
        Client { options, agent }
    }

    pub fn offline(&self) -> bool {
        self.options.offline
    }

    /// Fetches a small document (an `InRelease`, an index) into memory.
    pub fn get_bytes(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self.with_reader(url, |reader| {
            let mut out = Vec::new();
            reader.read_to_end(&mut out)?;
            Ok(out)
        })
    }

    /// Streams `url` into the store. With `expected`, the object enters the store only if its
    /// SHA-256 (and size) match; `what` names it in errors. `progress` is told of each chunk.
    pub fn fetch_to_store(
        &self,
        store: &Store,
        url: &str,
        expected: Option<(&Sha256, Option<u64>)>,
        what: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<BlobInfo, FetchError> {
        self.with_reader(url, |reader| {
            let mut writer = store.writer().map_err(io::Error::other)?;
            let mut buf = vec![0u8; 128 * 1024];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                io::Write::write_all(&mut writer, &buf[..n])?;
                progress(n as u64);
            }
            let checked = match expected {
                Some((sha, size)) => writer.finish_checked(Some((sha, what)), size),
                None => writer.finish(),
            };
            // Carried through io::Error so that `with_reader` can tell it from a broken stream.
            checked.map_err(io::Error::other)
        })
    }

    fn with_reader<T>(
        &self,
        url: &str,
        mut consume: impl FnMut(&mut dyn Read) -> io::Result<T>,
    ) -> Result<T, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            let mut file = std::fs::File::open(&path).map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => FetchError::NotFound { url: url.to_string(), detail: "no such file".into() },
                _ => FetchError::File { path: path.clone(), source },
            })?;
            return consume(&mut file).map_err(|source| match store_error(source) {
                Ok(e) => FetchError::Store(e),
                Err(source) => FetchError::File { path, source },
            });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme { url: url.to_string() });
        }
        if self.options.offline {
            return Err(FetchError::Offline { url: url.to_string() });
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_once(url, &mut consume) {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(source) => {
                    if attempt > self.options.retries {
                        return Err(FetchError::Transport { url: url.to_string(), attempts: attempt, source });
                    }
                    std::thread::sleep(Duration::from_millis(250 * (1 << attempt.min(5))));
                }
            }
        }
    }

    fn try_once<T>(&self, url: &str, consume: &mut impl FnMut(&mut dyn Read) -> io::Result<T>) -> Attempt<T> {
        match self.agent.get(url).call() {
            Ok(response) => {
                let mut reader = response.into_body().into_reader();
                match consume(&mut reader) {
                    Ok(value) => Attempt::Done(value),
                    // A failed verification (or store write) is final; a broken stream is worth
                    // another try.
                    Err(e) => match store_error(e) {
                        Ok(e) => Attempt::Fail(FetchError::Store(e)),
                        Err(e) => Attempt::Retry(Box::new(e)),
                    },
                }
            }
            Err(ureq::Error::StatusCode(status)) if matches!(status, 408 | 429 | 500..=599) => {
                Attempt::Retry(format!("HTTP {status}").into())
            }
            Err(ureq::Error::StatusCode(status)) => {
                Attempt::Fail(FetchError::NotFound { url: url.to_string(), detail: format!("HTTP {status}") })
            }
            Err(e) => Attempt::Retry(Box::new(e)),
        }
    }
}

/// The store's error, if `error` carries one (a failed verification or store write), else the
/// I/O error unchanged.
fn store_error(error: io::Error) -> Result<StoreError, io::Error> {
    if error.get_ref().is_some_and(|inner| inner.is::<StoreError>()) {
        let inner = error.into_inner().expect("checked above");
        return Ok(*inner.downcast::<StoreError>().expect("checked above"));
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_are_told_apart_from_broken_streams() {
        let verification = io::Error::other(StoreError::Corrupt { what: "x".into(), reason: "y".into() });
        assert!(matches!(store_error(verification), Ok(StoreError::Corrupt { .. })));
        let broken = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(store_error(broken).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }
}
