//! Just enough HTTP/1.1 for test servers: a fault-injecting proxy in front of
//! a registry and a token issuer. One request per connection (`Connection: close`).

use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn read_request(s: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if s.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        s.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        s.read_exact(&mut body).ok()?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            s.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            s.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(req)
}

pub fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
}

/// A server on 127.0.0.1:<free port>; each connection gets one request; stops on drop.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: impl Fn(Request, &mut TcpStream) + Send + Sync + 'static) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let h = handler.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    if let Some(req) = read_request(&mut r) {
                        let mut c = conn;
                        h(req, &mut c);
                    }
                });
            }
        });
        Server { port, stop }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forward `req` to `upstream` and return the raw response (head, body).
pub fn forward(upstream: &str, req: &Request) -> (String, Vec<u8>) {
    let mut u = TcpStream::connect(upstream).unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection")
            && !k.eq_ignore_ascii_case("transfer-encoding")
            && !k.eq_ignore_ascii_case("content-length")
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        req.body.len()
    ));
    u.write_all(head.as_bytes()).unwrap();
    u.write_all(&req.body).unwrap();
    let mut raw = Vec::new();
    u.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    (head, raw[split + 4..].to_vec())
}

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    Pass,
    /// Answer this status without forwarding (`Retry-After` seconds when given).
    Status(u16, Option<u32>),
    /// Forward, then send the head and half the body and close.
    Truncate,
    /// Forward, then close without answering.
    DropResponse,
    /// Answer this status with this distribution error code, without forwarding.
    Refuse(u16, &'static str),
}

/// A proxy in front of `upstream` that applies `policy(n, &request)` to the n-th request.
pub struct FaultProxy {
    pub server: Server,
    pub faults: Arc<Mutex<Vec<(String, String, Fault)>>>,
}

impl FaultProxy {
    pub fn start(
        upstream: String,
        policy: impl Fn(usize, &Request) -> Fault + Send + Sync + 'static,
    ) -> Self {
        let counter = Arc::new(AtomicUsize::new(0));
        let faults = Arc::new(Mutex::new(Vec::new()));
        let log = faults.clone();
        let server = Server::start(move |req, conn| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let f = policy(n, &req);
            if f != Fault::Pass {
                log.lock()
                    .unwrap()
                    .push((req.method.clone(), req.target.clone(), f));
            }
            match f {
                Fault::Status(code, after) => {
                    let h: Vec<(&str, String)> = after
                        .map(|a| ("Retry-After", a.to_string()))
                        .into_iter()
                        .collect();
                    respond(
                        conn,
                        code,
                        &h,
                        b"{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"injected\"}]}",
                    );
                }
                Fault::DropResponse => {
                    forward(&upstream, &req);
                }
                Fault::Refuse(code, what) => {
                    let body = format!(
                        "{{\"errors\":[{{\"code\":\"{what}\",\"message\":\"injected\"}}]}}"
                    );
                    respond(conn, code, &[], body.as_bytes());
                }
                Fault::Pass | Fault::Truncate => {
                    let (head, body) = forward(&upstream, &req);
                    let mut out = String::new();
                    for line in head.split("\r\n") {
                        if !line.to_ascii_lowercase().starts_with("connection:") {
                            out.push_str(line);
                            out.push_str("\r\n");
                        }
                    }
                    out.push_str("Connection: close\r\n\r\n");
                    let _ = conn.write_all(out.as_bytes());
                    let n = if f == Fault::Truncate {
                        body.len() / 2
                    } else {
                        body.len()
                    };
                    let _ = conn.write_all(&body[..n]);
                }
            }
        });
        FaultProxy { server, faults }
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A distribution token issuer: RS256 JWTs with an `x5c` chain, signed by openssl.
pub struct TokenIssuer {
    pub server: Server,
    /// Lifetime of the tokens it issues, in seconds.
    pub expires_in: Arc<std::sync::atomic::AtomicU64>,
    pub cert: PathBuf,
    /// (Authorization header present, scopes) per token request.
    pub requests: TokenLog,
}

/// (Authorization header present, scopes) per token request.
pub type TokenLog = Arc<Mutex<Vec<(bool, Vec<String>)>>>;

/// The refresh token (docker's `identitytoken`) the issuer accepts.
pub const REFRESH_TOKEN: &str = "refresh-Hq7-secret-token";

pub const ISSUER: &str = "cairn-test-issuer";
pub const SERVICE: &str = "cairn-test-registry";

impl TokenIssuer {
    /// Tokens for `user`/`password` get what they ask; anonymous ones get nothing.
    pub fn start(dir: &Path, user: &str, password: &str) -> Self {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=cairn-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "openssl req");
        let der = std::process::Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let expires_in = Arc::new(std::sync::atomic::AtomicU64::new(300));
        let life = expires_in.clone();
        let server = Server::start(move |req, conn| {
            let url = url::Url::parse(&format!("http://x{}", req.target)).unwrap();
            // GET with Basic credentials, or the OAuth2 refresh-token POST form.
            let (granted, scopes): (Option<bool>, Vec<String>) = if req.method == "POST" {
                let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                    .into_owned()
                    .collect();
                let get = |k: &str| form.iter().find(|(fk, _)| fk == k).map(|(_, v)| v.clone());
                let ok = get("grant_type").as_deref() == Some("refresh_token")
                    && get("refresh_token").as_deref() == Some(REFRESH_TOKEN);
                let scopes = get("scope")
                    .map(|s| s.split(' ').map(str::to_owned).collect())
                    .unwrap_or_default();
                (Some(ok), scopes)
            } else {
                let scopes = url
                    .query_pairs()
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                (req.header("authorization").map(|a| a == want), scopes)
            };
            log.lock()
                .unwrap()
                .push((granted.is_some(), scopes.clone()));
            if granted == Some(false) {
                respond(conn, 401, &[], b"{\"details\":\"bad credentials\"}");
                return;
            }
            let access: Vec<serde_json::Value> = if granted == Some(true) {
                scopes
                    .iter()
                    .filter_map(|s| {
                        let (t, rest) = s.split_once(':')?;
                        let (name, actions) = rest.rsplit_once(':')?;
                        Some(serde_json::json!({"type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": ISSUER, "sub": "test", "aud": SERVICE, "exp": now + life.load(Ordering::SeqCst), "nbf": now - 10,
                "iat": now, "jti": format!("{now}-{}", scopes.len()), "access": access,
            });
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let mut child = std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(signing_input.as_bytes())
                .unwrap();
            let sig = child.wait_with_output().unwrap().stdout;
            let token = format!("{signing_input}.{}", b64url(&sig));
            let secs = life.load(Ordering::SeqCst);
            let body = if req.method == "POST" {
                serde_json::json!({"access_token": token, "expires_in": secs})
            } else {
                serde_json::json!({"token": token, "expires_in": secs})
            }
            .to_string();
            respond(
                conn,
                200,
                &[("Content-Type", "application/json".into())],
                body.as_bytes(),
            );
        });
        TokenIssuer {
            server,
            expires_in,
            cert,
            requests,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr())
    }
}

/// A loopback address that accepts connections and holds them open, never
/// reading or answering (a registry that hangs).
pub fn silent_listener() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    addr
}
