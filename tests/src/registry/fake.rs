//! A registry on loopback that lies on purpose: an in-memory implementation of the parts of the
//! distribution API a push uses (HEAD, uploads, manifests) and of a token service, each answer
//! honest unless [`Lies`] says otherwise. It records every request with its `Authorization`
//! header, so a test can tell where credentials went.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake registry lies about. The default lies about nothing.
#[derive(Clone, Default)]
pub struct Lies {
    /// A HEAD for a blob it lacks answers 200, with a wrong `Content-Length` and
    /// `Docker-Content-Digest`.
    pub holds_what_it_lacks: bool,
    /// A HEAD for any blob, held or not, answers 200 with a wrong `Content-Length`.
    pub every_size: bool,
    /// A HEAD for any blob, held or not, answers 200 echoing a wrong `Docker-Content-Digest`.
    pub every_digest: bool,
    /// The PUT that completes an upload echoes a wrong `Docker-Content-Digest`.
    pub upload_digest: bool,
    /// A manifest PUT echoes a wrong `Docker-Content-Digest`.
    pub manifest_digest: bool,
    /// Every `/v2/` request without the fake's bearer token is challenged with
    /// `Bearer realm="<this>"`, where `{self}` stands for the fake's own `127.0.0.1:PORT`. The
    /// fake serves a token itself at `/token`.
    pub realm: Option<String>,
    /// The basic credentials (`user:password`) its `/token` wants; any request gets one without.
    pub token_credentials: Option<String>,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
}

const TOKEN: &str = "fake-registry-token";
const WRONG_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Default)]
struct State {
    blobs: HashMap<String, Vec<u8>>,
    uploads: HashMap<String, Vec<u8>>,
    manifests: HashMap<String, Vec<u8>>,
    seen: Vec<Seen>,
    next_upload: u64,
}

pub struct FakeRegistry {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FakeRegistry {
    pub fn start(mut lies: Lies) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        lies.realm = lies.realm.map(|realm| realm.replace("{self}", &format!("127.0.0.1:{port}")));
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, flag) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (state, lies) = (shared.clone(), lies.clone());
                        std::thread::spawn(move || serve(stream, &state, &lies));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeRegistry { port, state, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every request answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Whether it holds blob `digest` (`sha256:...`).
    pub fn holds(&self, digest: &str) -> bool {
        self.state.lock().unwrap().blobs.contains_key(digest)
    }

    /// The blobs it holds.
    pub fn blob_count(&self) -> usize {
        self.state.lock().unwrap().blobs.len()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        // A TLS hello (a client trying HTTPS first) is not waited on.
        if !data[0].is_ascii_uppercase() {
            return None;
        }
    };
    let head = std::str::from_utf8(&data[..head_end]).ok()?.to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let (path, query) = target.split_once('?').map_or((target.clone(), String::new()), |(p, q)| (p.into(), q.into()));
    Some(Request { method, path, query, headers, body })
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

/// An answer: status, headers, body (not sent for HEAD; its `Content-Length` header is).
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn serve(mut stream: TcpStream, state: &Mutex<State>, lies: &Lies) {
    let _ = stream.set_nonblocking(false);
    let Some(request) = read_request(&mut stream) else {
        // Not HTTP (a TLS hello, say): refused as a plain server would.
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let (status, headers, body) = answer(&request, state, lies);
    let mut text = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n == "Content-Length") {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in &headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let _ = stream.write_all(text.as_bytes());
    if request.method != "HEAD" {
        let _ = stream.write_all(&body);
    }
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::sha256_hex(bytes))
}

fn answer(request: &Request, state: &Mutex<State>, lies: &Lies) -> Answer {
    let mut state = state.lock().unwrap();
    state.seen.push(Seen {
        method: request.method.clone(),
        target: format!("{}?{}", request.path, request.query),
        authorization: request.header("authorization").map(str::to_string),
    });
    let header = |n: &str, v: &str| (n.to_string(), v.to_string());
    if request.path == "/token" {
        let wanted = lies.token_credentials.as_ref().map(|c| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c))
        });
        if wanted.is_some() && request.header("authorization") != wanted.as_deref() {
            return (401, vec![], vec![]);
        }
        return (200, vec![header("Content-Type", "application/json")], format!("{{\"token\":\"{TOKEN}\"}}").into());
    }
    if let Some(realm) = &lies.realm
        && request.header("authorization") != Some(&format!("Bearer {TOKEN}"))
    {
        let challenge = format!("Bearer realm=\"{realm}\",service=\"fake-registry\"");
        return (401, vec![header("WWW-Authenticate", &challenge)], vec![]);
    }
    if request.path == "/v2/" {
        return (200, vec![], vec![]);
    }
    let Some(rest) = request.path.strip_prefix("/v2/") else { return (404, vec![], vec![]) };
    if let Some((_, digest)) = rest.rsplit_once("/blobs/").filter(|(_, d)| d.starts_with("sha256:")) {
        let held = state.blobs.get(digest).cloned();
        return match (request.method.as_str(), held) {
            ("HEAD", held) => {
                let (length, mut echoed) = match &held {
                    Some(bytes) => (bytes.len() + usize::from(lies.every_size), digest.to_string()),
                    None if lies.holds_what_it_lacks || lies.every_size || lies.every_digest => {
                        (1, WRONG_DIGEST.to_string())
                    }
                    None => return (404, vec![], vec![]),
                };
                if lies.every_digest {
                    echoed = WRONG_DIGEST.to_string();
                }
                let headers =
                    vec![header("Content-Length", &length.to_string()), header("Docker-Content-Digest", &echoed)];
                (200, headers, vec![])
            }
            ("GET", Some(bytes)) => (200, vec![header("Docker-Content-Digest", digest)], bytes),
            _ => (404, vec![], vec![]),
        };
    }
    if let Some((repository, upload)) = rest.split_once("/blobs/uploads/") {
        let location = |id: &str| format!("/v2/{repository}/blobs/uploads/{id}");
        return match request.method.as_str() {
            "POST" => {
                state.next_upload += 1;
                let id = state.next_upload.to_string();
                state.uploads.insert(id.clone(), Vec::new());
                (202, vec![header("Location", &location(&id))], vec![])
            }
            "PATCH" => match state.uploads.get_mut(upload) {
                Some(data) => {
                    data.extend_from_slice(&request.body);
                    (202, vec![header("Location", &location(upload))], vec![])
                }
                None => (404, vec![], vec![]),
            },
            "PUT" => {
                let Some(mut data) = state.uploads.remove(upload) else { return (404, vec![], vec![]) };
                data.extend_from_slice(&request.body);
                let digest = digest_of(&data);
                if query_param(&request.query, "digest") != Some(digest.replace(':', "%3A").as_str())
                    && query_param(&request.query, "digest") != Some(digest.as_str())
                {
                    return (400, vec![], br#"{"errors":[{"code":"DIGEST_INVALID","message":"digest"}]}"#.to_vec());
                }
                state.blobs.insert(digest.clone(), data);
                let echoed = if lies.upload_digest { WRONG_DIGEST.to_string() } else { digest.clone() };
                let headers = vec![
                    header("Location", &format!("/v2/{repository}/blobs/{digest}")),
                    header("Docker-Content-Digest", &echoed),
                ];
                (201, headers, vec![])
            }
            _ => (405, vec![], vec![]),
        };
    }
    if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        return match request.method.as_str() {
            "PUT" => {
                let digest = digest_of(&request.body);
                state.manifests.insert(reference.to_string(), request.body.clone());
                state.manifests.insert(digest.clone(), request.body.clone());
                let echoed = if lies.manifest_digest { WRONG_DIGEST.to_string() } else { digest };
                (201, vec![header("Docker-Content-Digest", &echoed)], vec![])
            }
            "GET" | "HEAD" => match state.manifests.get(reference) {
                Some(bytes) => (
                    200,
                    vec![
                        header("Content-Type", "application/vnd.oci.image.index.v1+json"),
                        header("Docker-Content-Digest", &digest_of(bytes)),
                    ],
                    bytes.clone(),
                ),
                None => (404, vec![], vec![]),
            },
            _ => (405, vec![], vec![]),
        };
    }
    (404, vec![], vec![])
}
