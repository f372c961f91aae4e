//! Debian's docker-registry (the distribution registry) on a free loopback port, started for a
//! test and stopped by its PID when dropped: without authentication, or behind TLS (a CA the
//! test makes) with htpasswd basic authentication.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod fake;
pub use fake::{FakeRegistry, Lies, Seen};

pub enum Access {
    Open,
    /// TLS with a certificate from the test's own CA, and basic authentication.
    TlsBasic {
        user: String,
        password: String,
    },
    /// Bearer tokens from a small token issuer the test runs ([`TokenIssuer`]), which wants
    /// these basic credentials.
    Token {
        user: String,
        password: String,
    },
}

pub struct RegistryServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The CA that signed the server's certificate (TLS only).
    pub ca: Option<PathBuf>,
    /// The token issuer (token authentication only).
    pub issuer: Option<TokenIssuer>,
}

fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=composer test CA",
        ],
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

impl RegistryServer {
    pub fn start(access: Access) -> RegistryServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: false }} }}\n\
             storage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\n",
            dir.path().join("data").display()
        );
        let mut ca = None;
        let mut issuer = None;
        match &access {
            Access::Open => config.push_str(&format!("http: {{ addr: 127.0.0.1:{port} }}\n")),
            Access::TlsBasic { user, password } => {
                let (ca_pem, cert, key) = certificates(dir.path());
                let entry = run("htpasswd", &["-Bbn", user, password]);
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, entry).unwrap();
                config.push_str(&format!(
                    "http: {{ addr: 127.0.0.1:{port}, tls: {{ certificate: {}, key: {} }} }}\n\
                     auth: {{ htpasswd: {{ realm: composer-test, path: {} }} }}\n",
                    cert.display(),
                    key.display(),
                    htpasswd.display()
                ));
                ca = Some(ca_pem);
            }
            Access::Token { user, password } => {
                let started = TokenIssuer::start(dir.path(), user, password);
                config.push_str(&format!(
                    "http: {{ addr: 127.0.0.1:{port} }}\n\
                     auth: {{ token: {{ realm: \"http://127.0.0.1:{}/token\", service: composer-test, \
                     issuer: composer-test-issuer, rootcertbundle: {} }} }}\n",
                    started.port,
                    started.certificate.display()
                ));
                issuer = Some(started);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        // The access log goes to standard output.
        let log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (.ci/run installs it)");
        // Owned from here on, so that a panic below still stops it.
        let server = RegistryServer { child, port, dir, ca, issuer };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on 127.0.0.1:{port}");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage directory of blob `sha_hex` (the registry's own layout).
    pub fn blob_data(&self, sha_hex: &str) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&sha_hex[..2]).join(sha_hex).join("data")
    }

    /// Requests the registry has answered so far, by method and path, from its access log.
    pub fn requests(&self) -> Vec<String> {
        self.answered().into_iter().map(|(request, _)| request).collect()
    }

    /// Requests answered so far, each with its HTTP status.
    pub fn answered(&self) -> Vec<(String, u16)> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let start = line.find('"')? + 1;
                let request = &line[start..];
                let end = request.find(" HTTP/")?;
                let status = request[end..].split('"').nth(1)?.split_whitespace().next()?.parse().ok()?;
                Some((request[..end].to_string(), status))
            })
            .collect()
    }

    /// Stops the registry (by its PID) before the test ends.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server on loopback that answers every request with HTTP 500, for as long as it lives.
pub struct FailingServer {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FailingServer {
    pub fn start() -> FailingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 8192];
                        let _ = stream.read(&mut buf);
                        let _ = stream.write_all(
                            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FailingServer { port, stop }
    }
}

impl Drop for FailingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A token issuer on loopback, as registries with token authentication use: it checks basic
/// credentials and answers with a JWT (RS256, its certificate in the `x5c` header) granting
/// the scope asked for. It counts the tokens it gave.
pub struct TokenIssuer {
    pub port: u16,
    certificate: PathBuf,
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TokenIssuer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        let key = dir.join("token.key");
        let certificate = dir.join("token.pem");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                certificate.to_str().unwrap(),
                "-days",
                "2",
                "-subj",
                "/CN=composer test token issuer",
            ],
        );
        let der = run("openssl", &["x509", "-in", certificate.to_str().unwrap(), "-outform", "DER"]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), issued.clone());
        use base64::Engine;
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let authorized = text.lines().any(|l| l.eq_ignore_ascii_case(&format!("authorization: {expected}")));
                // Every `scope` parameter, as clients send one per repository.
                let scope = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|target| target.split_once('?'))
                    .map(|(_, query)| {
                        query
                            .split('&')
                            .filter_map(|p| p.strip_prefix("scope="))
                            .map(|s| s.replace("%3A", ":").replace("%2F", "/").replace("%2C", ","))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let response = if authorized {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let token = jwt(&key, &der, &scope);
                    let body = format!("{{\"token\":\"{token}\"}}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        TokenIssuer { port, certificate, issued, stop }
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A JWT granting `scope` (`repository:NAME:ACTIONS`), signed RS256 with openssl.
fn jwt(key: &Path, certificate_der: &[u8], scope: &str) -> String {
    use base64::Engine;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let standard = base64::engine::general_purpose::STANDARD;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let access: Vec<serde_json::Value> = scope
        .split(' ')
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [standard.encode(certificate_der)]});
    let claims = serde_json::json!({
        "iss": "composer-test-issuer", "sub": "ci", "aud": "composer-test",
        "exp": now + 600, "nbf": now - 60, "iat": now, "jti": format!("{now}-{}", scope.len()),
        "access": access,
    });
    let signing_input = format!("{}.{}", url.encode(header.to_string()), url.encode(claims.to_string()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), signing_input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("{signing_input}.{}", url.encode(out.stdout))
}
