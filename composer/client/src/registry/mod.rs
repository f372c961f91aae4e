//! The OCI distribution API, as `compose push` and registry caches use it: manifests and blobs
//! by digest, uploads (monolithic, or in chunks for large blobs), cross-repository mounts, and
//! the registry's own authentication: anonymous, basic, or a bearer token from the realm its
//! `WWW-Authenticate` challenge names.
//!
//! HTTPS is verified against the machine's roots (and the caller's CA file). Plain HTTP is used
//! only for a loopback host or one the caller names as insecure, and only after HTTPS failed to
//! connect, as Docker does.
//!
//! A registry is not trusted, neither about where credentials go nor about what it holds:
//! credentials go to a token service it names only over HTTPS, or to loopback, or to a host the
//! user named insecure ([`credentials_may_go_to`]; otherwise the command fails before
//! connecting); a redirect never carries them; and a blob counts as held only when the
//! registry's answer names its size and digest ([`Registry::has_blob`]), after an upload or a
//! mount as well, and a manifest only when the digest echoed is the one sent.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Client;

mod credentials;
mod problems;
mod upload;

pub use credentials::credentials_may_go_to;
use credentials::{authority_of, plain_http_allowed};
pub use problems::{Disagreement, ProtocolProblem, Withheld};
pub use upload::{BlobSource, StoreBlob};

/// Uploads larger than this go in chunks of this size.
pub const CHUNK: u64 = 16 << 20;
const ATTEMPTS: u32 = 3;
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// How registries are reached, as the caller resolved it.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) that may be reached over plain HTTP besides loopback ones.
    pub insecure_hosts: Vec<String>,
    /// Credentials by host (`host[:port]`), from the user's auth files.
    pub credentials: BTreeMap<String, Credentials>,
    /// Credentials for every host, given for this run (`--creds`).
    pub override_credentials: Option<Credentials>,
    /// Directories of registry CA certificates, trusted besides the machine's roots: each
    /// `<dir>/<host[:port]>/*.crt` for that registry (podman's `certs.d` layout), and
    /// `<dir>/*.crt` for every registry (`--cert-dir`, as skopeo takes it).
    pub cert_dirs: Vec<std::path::PathBuf>,
}

/// The CA certificate files `cert_dirs` hold for `host`.
fn registry_certificates(cert_dirs: &[std::path::PathBuf], host: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in cert_dirs {
        for candidate in [dir.clone(), dir.join(host)] {
            let Ok(entries) = std::fs::read_dir(&candidate) else { continue };
            let mut found: Vec<_> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "crt"))
                .collect();
            found.sort();
            out.extend(found);
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {host}: {what} failed: HTTP {status}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Status { host: String, what: String, status: u16, detail: Option<String> },
    #[error("registry {host} refused the credentials{}", if *given { "" } else { " (none were given)" })]
    Unauthorized { host: String, given: bool },
    #[error("registry {host}: {what} failed")]
    Transport {
        host: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("registry {host} is needed but composer is offline")]
    Offline { host: String },
    #[error("registry {host}: {what}: {reason}")]
    Protocol {
        host: String,
        what: String,
        #[source]
        reason: ProtocolProblem,
    },
    #[error("registry {host}: the credentials are not sent to {realm_host}, the token service it names: {reason}")]
    CredentialsWithheld {
        host: String,
        realm_host: String,
        #[source]
        reason: Box<Withheld>,
    },
    #[error("registry {host} does not hold what it says for {what}: {reason}")]
    Disagrees {
        host: String,
        what: String,
        #[source]
        reason: Box<Disagreement>,
    },
}

impl RegistryError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { .. } => Some(
                "log in with `podman login` or `docker login` (composer reads their auth files), or pass --creds USER:PASSWORD"
                    .into(),
            ),
            RegistryError::CredentialsWithheld { realm_host, .. } => Some(format!(
                "credentials travel only over HTTPS, to loopback, or to a host named with --insecure-registry: \
                 have the registry name an https:// token service, or, if {realm_host} is yours and its plain \
                 HTTP is intended, pass --insecure-registry {realm_host}"
            )),
            RegistryError::Disagrees { .. } => Some(
                "the registry's storage may be damaged, or something between it and composer alters its answers; \
                 check it, or push to another registry"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Whether the registry could not be reached or answered with a server error.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::Offline { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

type Response = ureq::http::Response<ureq::Body>;

enum Auth {
    None,
    Basic(String),
    Bearer(String),
}

/// One repository of one registry.
pub struct Registry {
    agent: ureq::Agent,
    offline: bool,
    host: String,
    repository: String,
    /// `https://host` or, where allowed and HTTPS failed, `http://host`; chosen at first use.
    base: Mutex<Option<String>>,
    insecure_allowed: bool,
    /// `--insecure-registry` hosts, for the token service a challenge names.
    insecure_hosts: Vec<String>,
    credentials: Option<Credentials>,
    /// `pull` or `pull,push`: what a token is asked for.
    actions: &'static str,
    auth: Mutex<Auth>,
}

impl Registry {
    /// A repository to read from, or to push to as well (`push`: the token asks for it).
    pub fn new(client: &Client, options: &RegistryOptions, host: &str, repository: &str, push: bool) -> Registry {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // A cache that is slow to answer costs a short wait, then the build goes on without it.
            .timeout_recv_response(Some(Duration::from_secs(15)))
            .max_idle_connections_per_host(16)
            // A redirect (a blob served from other storage) never carries the credentials or a
            // token, wherever it points: ureq's default, pinned here.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .user_agent(concat!("composer/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(crate::roots_with(
                        client.options.ca_file.as_deref(),
                        &registry_certificates(&options.cert_dirs, host),
                    ))
                    .build(),
            )
            .build();
        Registry {
            agent: ureq::Agent::new_with_config(config),
            offline: client.options.offline,
            host: host.to_string(),
            repository: repository.to_string(),
            base: Mutex::new(None),
            insecure_allowed: plain_http_allowed(host, &options.insecure_hosts),
            insecure_hosts: options.insecure_hosts.clone(),
            credentials: options.override_credentials.clone().or_else(|| options.credentials.get(host).cloned()),
            actions: if push { "pull,push" } else { "pull" },
            auth: Mutex::new(Auth::None),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn transport(&self, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> RegistryError {
        RegistryError::Transport { host: self.host.clone(), what: what.to_string(), source: Box::new(e) }
    }

    fn status(&self, what: &str, response: Response) -> RegistryError {
        let status = response.status().as_u16();
        let detail = response.into_body().read_to_string().ok().and_then(|body| {
            let value: serde_json::Value = serde_json::from_str(&body).ok()?;
            let first = value["errors"].get(0)?.clone();
            Some(format!("{}: {}", first["code"].as_str()?, first["message"].as_str().unwrap_or("")))
        });
        RegistryError::Status { host: self.host.clone(), what: what.to_string(), status, detail }
    }

    /// The base URL, found on first use: HTTPS, or HTTP where allowed and HTTPS did not connect.
    fn base(&self) -> Result<String, RegistryError> {
        if self.offline {
            return Err(RegistryError::Offline { host: self.host.clone() });
        }
        let mut base = self.base.lock().expect("base");
        if let Some(base) = base.as_ref() {
            return Ok(base.clone());
        }
        let https = format!("https://{}", self.host);
        let chosen = match self.agent.get(format!("{https}/v2/")).call() {
            Ok(_) => https,
            Err(e) if self.insecure_allowed => {
                let http = format!("http://{}", self.host);
                match self.agent.get(format!("{http}/v2/")).call() {
                    Ok(_) => http,
                    Err(_) => return Err(self.transport("connecting", e)),
                }
            }
            Err(e) => return Err(self.transport("connecting", e)),
        };
        *base = Some(chosen.clone());
        Ok(chosen)
    }

    fn url(&self, path: &str) -> Result<String, RegistryError> {
        Ok(format!("{}/v2/{}/{path}", self.base()?, self.repository))
    }

    fn authorization(&self) -> Option<String> {
        match &*self.auth.lock().expect("auth") {
            Auth::None => None,
            Auth::Basic(value) | Auth::Bearer(value) => Some(value.clone()),
        }
    }

    /// Answers a 401 challenge: basic credentials, or a bearer token from the named realm.
    fn authenticate(&self, challenge: &str) -> Result<(), RegistryError> {
        let unauthorized =
            || RegistryError::Unauthorized { host: self.host.clone(), given: self.credentials.is_some() };
        let basic = self
            .credentials
            .as_ref()
            .map(|c| format!("Basic {}", STANDARD.encode(format!("{}:{}", c.username, c.password))));
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let value = basic.ok_or_else(unauthorized)?;
            *self.auth.lock().expect("auth") = Auth::Basic(value);
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RegistryError::Protocol {
                host: self.host.clone(),
                what: "authentication".into(),
                reason: ProtocolProblem::UnknownScheme(scheme.to_string()),
            });
        }
        let params = challenge_params(params);
        let realm = params.get("realm").ok_or_else(|| RegistryError::Protocol {
            host: self.host.clone(),
            what: "authentication".into(),
            reason: ProtocolProblem::NoRealm,
        })?;
        let mut request =
            self.agent.get(realm).query("scope", format!("repository:{}:{}", self.repository, self.actions));
        // A cross-repository mount is challenged for the other repository's scope as well.
        let own = format!("repository:{}:", self.repository);
        if let Some(scope) = params.get("scope").filter(|s| !s.starts_with(&own)) {
            request = request.query("scope", scope);
        }
        if let Some(service) = params.get("service") {
            request = request.query("service", service);
        }
        if let Some(basic) = &basic {
            credentials_may_go_to(&self.host, realm, &self.insecure_hosts).map_err(|reason| {
                RegistryError::CredentialsWithheld {
                    host: self.host.clone(),
                    realm_host: authority_of(realm),
                    reason: Box::new(reason),
                }
            })?;
            request = request.header("Authorization", basic);
        }
        let response = request.call().map_err(|e| self.transport("getting a token", e))?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(unauthorized()),
            _ => return Err(self.status("getting a token", response)),
        }
        let text = response.into_body().read_to_string().map_err(|e| self.transport("reading a token", e))?;
        let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| self.transport("reading a token", e))?;
        let token =
            body["token"].as_str().or(body["access_token"].as_str()).ok_or_else(|| RegistryError::Protocol {
                host: self.host.clone(),
                what: "authentication".into(),
                reason: ProtocolProblem::NoToken,
            })?;
        *self.auth.lock().expect("auth") = Auth::Bearer(format!("Bearer {token}"));
        Ok(())
    }

    /// Sends a request built by `make` (again after a 401 answered, and after transient
    /// failures), returning the response whatever its status.
    fn send(
        &self,
        what: &str,
        make: &dyn Fn(Option<&str>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        self.send_to(what, true, make)
    }

    /// As [`Registry::send`]; `ours`: whether the request goes to the registry itself. Only the
    /// registry's own challenge is answered: a 401 from a location elsewhere that it named would
    /// otherwise send the credentials to a token service of that location's choosing.
    fn send_to(
        &self,
        what: &str,
        ours: bool,
        make: &dyn Fn(Option<&str>) -> Result<Response, ureq::Error>,
    ) -> Result<Response, RegistryError> {
        let mut authenticated = !ours;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let authorization = self.authorization();
            let result = make(authorization.as_deref());
            match result {
                Ok(response) if response.status().as_u16() == 401 && !authenticated => {
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .ok_or_else(|| RegistryError::Unauthorized {
                            host: self.host.clone(),
                            given: self.credentials.is_some(),
                        })?;
                    self.authenticate(&challenge)?;
                    authenticated = true;
                }
                Ok(response) if response.status().as_u16() == 401 => {
                    return Err(RegistryError::Unauthorized {
                        host: self.host.clone(),
                        given: self.credentials.is_some(),
                    });
                }
                Ok(response)
                    if (response.status().as_u16() >= 500 || response.status() == 429) && attempt < ATTEMPTS =>
                {
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
                Ok(response) => return Ok(response),
                Err(_) if attempt < ATTEMPTS => std::thread::sleep(Duration::from_millis(200 << attempt)),
                Err(e) => return Err(self.transport(what, e)),
            }
        }
    }

    /// The manifest (or index) under `reference` (a tag or digest), with its media type.
    pub fn manifest(&self, reference: &str) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("reading manifest {reference}");
        let response = self.send(&what, &|auth| {
            let mut request = self.agent.get(&url).header("Accept", MANIFEST_TYPES);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status(&what, response)),
        }
        let media_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| self.transport(&what, e))?;
        Ok(Some((bytes, media_type)))
    }

    /// Whether the registry holds blob `digest` (of `size` bytes, where known). A `200` counts
    /// only if its `Content-Length` is that size and its `Docker-Content-Digest`, when sent, is
    /// `digest`: a registry that says it holds a blob of another size or digest does not hold
    /// ours.
    pub fn has_blob(&self, digest: &str, size: Option<u64>) -> Result<bool, RegistryError> {
        Ok(self.check_blob(digest, size)?.is_ok())
    }

    /// The registry's HEAD answer for a blob: `Ok(())` if it holds `digest` (of `size` bytes),
    /// else `Err` with what it answered instead.
    pub(crate) fn check_blob(
        &self,
        digest: &str,
        size: Option<u64>,
    ) -> Result<Result<(), Disagreement>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("checking blob {digest}");
        let response = self.send(&what, &|auth| {
            let mut request = self.agent.head(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        match response.status().as_u16() {
            200 => Ok(blob_answer_matches(&response, digest, size)),
            404 => Ok(Err(Disagreement::Missing)),
            _ => Err(self.status(&what, response)),
        }
    }

    /// A blob's bytes as they stream (the caller verifies them).
    pub fn blob(&self, digest: &str) -> Result<Option<Box<dyn Read + Send>>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("reading blob {digest}");
        let response = self.send(&what, &|auth| {
            let mut request = self.agent.get(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.call()
        })?;
        match response.status().as_u16() {
            200 => Ok(Some(Box::new(response.into_body().into_reader()))),
            404 => Ok(None),
            _ => Err(self.status(&what, response)),
        }
    }
}

/// The `Docker-Content-Digest` a response echoes, if any.
fn echoed_digest(response: &Response) -> Option<&str> {
    response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Whether a blob answer is about `digest` of `size` bytes: `Err` says what it claims instead.
fn blob_answer_matches(response: &Response, digest: &str, size: Option<u64>) -> Result<(), Disagreement> {
    if let Some(echoed) = echoed_digest(response).filter(|echoed| *echoed != digest) {
        return Err(Disagreement::OtherDigest(echoed.to_string()));
    }
    if let Some(size) = size {
        let length = response.headers().get("content-length").and_then(|v| v.to_str().ok());
        match length.map(|l| l.trim().parse::<u64>()) {
            Some(Ok(length)) if length == size => {}
            Some(Ok(answered)) => return Err(Disagreement::OtherSize { answered, size }),
            _ => return Err(Disagreement::NoSize(size)),
        }
    }
    Ok(())
}

/// `realm="...",service="...",scope="..."` as a map.
fn challenge_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else { break };
        let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        out.insert(name, value.to_string());
        rest = remaining.trim_start_matches([',', ' ']);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_loopback_hosts_are_read_as_registries_write_them() {
        let params =
            challenge_params(r#"realm="https://auth.test/token",service="registry.test",scope="repository:a/b:pull""#);
        assert_eq!(params["realm"], "https://auth.test/token");
        assert_eq!(params["service"], "registry.test");
        assert_eq!(params["scope"], "repository:a/b:pull");
        assert!(
            credentials::is_loopback("127.0.0.1:5000")
                && credentials::is_loopback("localhost")
                && credentials::is_loopback("[::1]:5000")
        );
        assert!(!credentials::is_loopback("registry.test:5000") && !credentials::is_loopback("10.0.0.1"));
        assert!(
            !credentials::is_loopback("127.example.test") && !credentials::is_loopback("localhost.example.test:80")
        );
    }

    /// A server on loopback answering each request with `answer(request head)`; the heads it
    /// saw are kept.
    fn server(answer: impl Fn(&str) -> String + Send + 'static) -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let response = if head.starts_with(|c: char| c.is_ascii_uppercase()) {
                    answer(&head)
                } else {
                    "HTTP/1.1 400 X\r\nContent-Length: 0\r\n\r\n".into()
                };
                kept.lock().unwrap().push(head);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (port, seen)
    }

    #[test]
    fn a_redirect_carries_no_credentials_to_another_host() {
        let (elsewhere, seen_elsewhere) =
            server(|_| "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nblob".into());
        let (port, _) = server(move |head| {
            if head.starts_with("GET /v2/ ") {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            } else if !head.to_ascii_lowercase().contains("authorization: basic") {
                "HTTP/1.1 401 X\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .into()
            } else {
                format!(
                    "HTTP/1.1 307 X\r\nLocation: http://localhost:{elsewhere}/storage\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n"
                )
            }
        });
        let client = Client::new(crate::ClientOptions::default());
        let options = RegistryOptions {
            override_credentials: Some(Credentials { username: "ci".into(), password: "SECRETPW".into() }),
            ..RegistryOptions::default()
        };
        let registry = Registry::new(&client, &options, &format!("127.0.0.1:{port}"), "team/app", false);
        let mut body = String::new();
        registry.blob("sha256:00").unwrap().unwrap().read_to_string(&mut body).unwrap();
        assert_eq!(body, "blob");
        let seen = seen_elsewhere.lock().unwrap();
        assert!(!seen.is_empty() && seen.iter().all(|h| !h.to_ascii_lowercase().contains("authorization")), "{seen:?}");
    }
}
