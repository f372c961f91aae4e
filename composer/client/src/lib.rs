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

// Unit tests make temporary directories where the machine's TMPDIR says; the library itself may
// not (clippy.toml). Checking the library without `cfg(test)` still holds its code to the rule.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use composer_store::{BlobInfo, Sha256, Store, StoreError};

pub mod parallel;
mod redact;
pub mod registry;
mod resolver;

pub use redact::{REDACTED, redact};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{}` is needed but composer is offline", redact(url))]
    Offline { url: String },
    #[error("`{}` was not found ({detail})", redact(url))]
    NotFound { url: String, detail: String },
    #[error("failed to fetch `{}` after {attempts} attempt(s)", redact(url))]
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
    #[error("`{}` is not a URL composer can fetch (expected http://, https:// or file://)", redact(url))]
    Scheme { url: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "`{}` was not fetched: {host} failed {failures} times in a row and is given up on for this run",
        redact(url)
    )]
    HostDown {
        url: String,
        host: String,
        failures: u32,
        /// The failure that started the run of failures.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl FetchError {
    pub fn hint(&self) -> Option<String> {
        match self {
            FetchError::HostDown { host, .. } => Some(format!(
                "is this machine offline (then use --offline with what the store holds), or is {host} the \
                 wrong address for the mirror or index? `compose -v` says where each URL came from \
                 (--mirror, --index, the environment, the config file, apt or pip)"
            )),
            _ => None,
        }
    }
}

/// A host that has not answered once in this run is given up on after this many failures in a
/// row (refused, timed out, server errors): every other request to it fails at once, instead of
/// each of a hundred packages retrying with backoff.
const HOST_FAILURES: u32 = 3;
/// A host that did answer earlier in the run gets the benefit of the doubt: a passing outage is
/// retried through, and only failures in a row for this long, this many, give it up.
const ANSWERED_HOST_FAILURES: u32 = 12;
const ANSWERED_HOST_OUTAGE: Duration = Duration::from_secs(20);

/// How one host has been answering in this run.
#[derive(Default)]
struct HostHealth {
    answered: bool,
    failures: u32,
    first: Option<(String, std::time::Instant)>,
    down: bool,
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
    hosts: std::sync::Mutex<std::collections::HashMap<String, HostHealth>>,
}

/// `host[:port]` of an http(s) URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
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
        let policy = composer_store::userfile::Policy::anywhere(composer_store::userfile::Kind::CERTIFICATES);
        let Ok(pem) = composer_store::userfile::read(path, &policy) else { continue };
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
        Client { options, agent, hosts: Default::default() }
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
                // A write that fails (a full disk) is the store's, not the source's: said so,
                // it is not reported as a failure to read what was fetched.
                io::Write::write_all(&mut writer, &buf[..n])
                    .map_err(|e| io::Error::other(StoreError::io("write into", store.root(), e)))?;
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
        if let Some(path) = composer_store::userfile::file_url_path(url) {
            let path =
                path.map_err(|e| FetchError::NotFound { url: url.to_string(), detail: e.to_string() })?.to_path_buf();
            // Not a FIFO, a device or a file of any size: a mirror's files are bounded too.
            let policy = composer_store::userfile::Policy::anywhere(composer_store::userfile::Kind::MIRROR_FILE);
            let mut file = composer_store::userfile::open(&path, &policy).map_err(|e| match e.is_not_found() {
                true => FetchError::NotFound { url: url.to_string(), detail: "no such file".into() },
                false => FetchError::File { path: path.clone(), source: io::Error::other(e) },
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
        let host = host_of(url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.host_up(host, url)?;
            match self.try_once(url, &mut consume) {
                Attempt::Done(value) => {
                    let mut hosts = self.hosts.lock().expect("hosts");
                    let health = hosts.entry(host.to_string()).or_default();
                    *health = HostHealth { answered: true, ..HostHealth::default() };
                    return Ok(value);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(source) => {
                    self.host_failed(host, source.as_ref());
                    self.host_up(host, url)?;
                    if attempt > self.options.retries {
                        return Err(FetchError::Transport { url: url.to_string(), attempts: attempt, source });
                    }
                    std::thread::sleep(Duration::from_millis(250 * (1 << attempt.min(5))));
                }
            }
        }
    }

    /// Counts a failure against `host`; enough of them in a row, from any thread, give it up.
    fn host_failed(&self, host: &str, error: &(dyn std::error::Error + Send + Sync)) {
        let mut hosts = self.hosts.lock().expect("hosts");
        let health = hosts.entry(host.to_string()).or_default();
        health.failures += 1;
        let (_, since) = health.first.get_or_insert_with(|| (error.to_string(), std::time::Instant::now()));
        health.down = match health.answered {
            false => health.failures >= HOST_FAILURES,
            true => health.failures >= ANSWERED_HOST_FAILURES && since.elapsed() >= ANSWERED_HOST_OUTAGE,
        };
    }

    /// An error when `host` has been given up on in this run.
    fn host_up(&self, host: &str, url: &str) -> Result<(), FetchError> {
        let hosts = self.hosts.lock().expect("hosts");
        match hosts.get(host) {
            Some(health) if health.down => Err(FetchError::HostDown {
                url: url.to_string(),
                host: host.to_string(),
                failures: health.failures,
                source: health.first.as_ref().map(|(first, _)| first.clone()).unwrap_or_default().into(),
            }),
            _ => Ok(()),
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
    fn urls_are_counted_against_their_host() {
        assert_eq!(host_of("https://user@mirror.test:8080/debian/dists?x"), "mirror.test:8080");
        assert_eq!(host_of("http://127.0.0.1:1/debian"), "127.0.0.1:1");
    }

    #[test]
    fn a_host_that_keeps_failing_is_given_up_after_a_few_tries_from_every_thread() {
        // Nothing listens on a port that was just free: connections are refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(ClientOptions::default());
        let started = std::time::Instant::now();
        let errors: Vec<FetchError> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let client = &client;
                    scope.spawn(move || client.get_bytes(&format!("http://127.0.0.1:{port}/file-{i}")).unwrap_err())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(errors.iter().all(|e| matches!(e, FetchError::HostDown { .. })), "{errors:?}");
        assert!(errors[0].hint().unwrap().contains("offline"));
    }

    #[test]
    fn a_host_that_answered_before_is_retried_through_a_passing_outage() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let mut stream = stream.unwrap();
                let _ = stream.read(&mut [0u8; 4096]);
                let answer: &[u8] = match i {
                    1..=3 => b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                };
                let _ = stream.write_all(answer);
            }
        });
        let client = Client::new(ClientOptions::default());
        assert_eq!(client.get_bytes(&format!("http://127.0.0.1:{port}/first")).unwrap(), b"ok");
        // Three failures in a row would give up a host that never answered; this one did.
        assert_eq!(client.get_bytes(&format!("http://127.0.0.1:{port}/second")).unwrap(), b"ok");
    }

    #[test]
    fn verification_failures_are_told_apart_from_broken_streams() {
        let verification = io::Error::other(StoreError::Corrupt {
            what: "x".into(),
            reason: Box::new(composer_store::Corruption::Longer),
        });
        assert!(matches!(store_error(verification), Ok(StoreError::Corrupt { .. })));
        let broken = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(store_error(broken).unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }
}
