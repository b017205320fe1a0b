//! The real OpenID Connect peer: `tests/oidc-provider/server.mjs` (the npm
//! package `oidc-provider`) run under Node.js.
//!
//! [`OidcPeer::shared`] starts it once per test binary. Node.js is required:
//! without it the peer panics, so interop tests fail rather than pass silently.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::tls::TestPki;

/// How long the peer may take to print its `listening` line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long discovery may take to answer 200 once the peer listens.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `npm ci` may take, for the install lock's staleness.
const INSTALL_LOCK_STALE: Duration = Duration::from_secs(600);
/// Most of the peer's stderr kept for panic messages.
const STDERR_KEEP: usize = 64 * 1024;

/// Serialises installs within one process; the lock file does it across
/// processes (test binaries run in parallel).
static INSTALL: Mutex<()> = Mutex::new(());
static SHARED: OnceLock<OidcPeer> = OnceLock::new();
static SHARED_MTLS: OnceLock<(OidcPeer, TestPki)> = OnceLock::new();

/// A running `oidc-provider` peer. Dropping it kills the node process.
#[derive(Debug)]
pub struct OidcPeer {
    child: Child,
    /// Held open: the peer exits when this pipe closes.
    _stdin: Option<ChildStdin>,
    issuer: String,
    version: String,
    stderr: Arc<Mutex<String>>,
    mtls: Option<String>,
}

impl OidcPeer {
    /// The confidential client that authenticates with HTTP Basic
    /// (`client_secret_basic`).
    pub const BASIC_CLIENT_ID: &str = "basic-client";
    /// Secret of [`Self::BASIC_CLIENT_ID`]. It holds characters that RFC 6749
    /// §2.3.1 encoding must escape (`:`, `/`, `+`, space, `&`, `=`, `%`, `?`,
    /// `#`, `~`); oidc-provider only accepts printable ASCII secrets.
    pub const BASIC_CLIENT_SECRET: &str = "s3cr:et/+ &=%?#~";
    /// The confidential client that sends its secret in the form body
    /// (`client_secret_post`).
    pub const POST_CLIENT_ID: &str = "post-client";
    /// Secret of [`Self::POST_CLIENT_ID`].
    pub const POST_CLIENT_SECRET: &str = "post-client-secret";
    /// The client that authenticates with `private_key_jwt` (RFC 7523); its
    /// JWKS holds the public halves of `core/tests/keys/{ec,ed25519,rsa}.pem`
    /// (as ES256, Ed25519 and PS256 keys).
    pub const PRIVATE_KEY_JWT_CLIENT_ID: &str = "private-key-jwt-client";
    /// The client that authenticates with `client_secret_jwt`.
    pub const CLIENT_SECRET_JWT_CLIENT_ID: &str = "client-secret-jwt-client";
    /// Secret of [`Self::CLIENT_SECRET_JWT_CLIENT_ID`] (HS256 wants 32 bytes or more).
    pub const CLIENT_SECRET_JWT_SECRET: &str = "client-secret-jwt-secret-of-32-bytes+";
    /// A `client_secret_basic` client whose tokens are DPoP-bound
    /// (RFC 9449); the peer requires a server nonce in every DPoP proof.
    pub const DPOP_CLIENT_ID: &str = "dpop-client";
    /// Secret of [`Self::DPOP_CLIENT_ID`].
    pub const DPOP_CLIENT_SECRET: &str = "dpop-client-secret";
    /// The one resource indicator the peer knows: it issues JWT access tokens
    /// with this audience for it, and answers `invalid_target` for any other.
    pub const RESOURCE: &str = "https://api.example.test/";
    /// The scopes the peer knows; any other answers `invalid_scope`.
    pub const SCOPES: [&str; 2] = ["api:read", "api:write"];
    /// Access token lifetime in seconds, unless `CC_TTL` overrides it.
    pub const DEFAULT_TTL_SECS: u64 = 5;

    /// The peer shared by every test of this test binary, started on first
    /// use. It is never dropped; the node process exits by itself once this
    /// process is gone.
    pub fn shared() -> &'static OidcPeer {
        SHARED.get_or_init(OidcPeer::start)
    }

    /// The client certificate of [`Self::MTLS_CLIENT_ID`] must have this subject.
    pub const MTLS_CLIENT_ID: &str = "mtls-client";
    /// The `self_signed_tls_client_auth` client, registered with the
    /// self-signed certificate of the PKI its peer was started with.
    pub const SELF_SIGNED_MTLS_CLIENT_ID: &str = "self-signed-mtls-client";

    /// A peer shared by this test binary that also serves its token
    /// endpoint over TLS with client certificates requested (RFC 8705),
    /// advertised as `mtls_endpoint_aliases`; with the PKI it trusts.
    pub fn shared_mtls() -> &'static (OidcPeer, TestPki) {
        SHARED_MTLS.get_or_init(|| {
            let pki = TestPki::generate();
            let peer = OidcPeer::start_with(&[("CC_MTLS_DIR", pki.dir.to_str().expect("a UTF-8 path"))]);
            assert!(
                peer.mtls_endpoint().is_some(),
                "the peer did not start its TLS endpoint"
            );
            (peer, pki)
        })
    }

    /// The TLS base URL (`https://127.0.0.1:PORT/oidc`) of a peer started
    /// with a PKI, whose `/token` is the mTLS token endpoint alias.
    pub fn mtls_endpoint(&self) -> Option<&str> {
        self.mtls.as_deref()
    }

    /// Starts a new peer on a free port of 127.0.0.1, installing its npm
    /// dependencies first (`npm ci`) when `node_modules` is missing, and
    /// returns once its discovery document answers.
    ///
    /// # Panics
    ///
    /// When Node.js or npm is missing, the install fails, or the peer does not
    /// come up in time; the message carries the peer's stderr.
    pub fn start() -> OidcPeer {
        OidcPeer::start_with(&[])
    }

    /// [`OidcPeer::start`] with extra environment variables for the peer.
    pub fn start_with(env: &[(&str, &str)]) -> OidcPeer {
        let dir = peer_dir();
        require_tool("node");
        ensure_installed(&dir);

        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("0")
            .arg(std::process::id().to_string())
            .env("CC_PARENT_PID", std::process::id().to_string())
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node server.mjs` in {}: {e}", dir.display()));

        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || drain_stderr(pipe, &sink));

        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens, keep draining so the peer never blocks
                // on a full pipe.
                let _ = tx.send(line);
            }
        });

        let stdin = child.stdin.take();
        let mut peer = OidcPeer {
            child,
            _stdin: stdin,
            issuer: String::new(),
            version: String::new(),
            stderr,
            mtls: None,
        };

        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let line = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("listening ") => break line,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    peer.fail(&format!("no `listening` line within {LISTEN_TIMEOUT:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    peer.fail("the peer exited before printing its `listening` line")
                }
            }
        };
        let mut words = line.split_whitespace().skip(1);
        let (Some(issuer), Some(version)) = (words.next(), words.next()) else {
            peer.fail(&format!("unexpected readiness line {line:?}"))
        };
        let Some(version) = version.strip_prefix("oidc-provider@") else {
            peer.fail(&format!("unexpected readiness line {line:?}"))
        };
        peer.issuer = issuer.to_owned();
        peer.version = version.to_owned();
        if let (Some("mtls"), Some(url)) = (words.next(), words.next()) {
            peer.mtls = Some(url.to_owned());
        }

        let url = format!("{}/.well-known/openid-configuration", peer.issuer);
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        loop {
            let last = match raw::get(&url) {
                Ok(resp) if resp.status == 200 => break,
                Ok(resp) => format!("status {}: {}", resp.status, resp.body_text()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                peer.fail(&format!("GET {url} did not answer 200 in time: {last}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// The issuer identifier, `http://127.0.0.1:PORT/oidc`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The version of `oidc-provider` that answered, e.g. `9.13.3`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What the peer has written on stderr so far (at most the last 64 KiB).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Let the stderr thread read what the dead process left.
        thread::sleep(Duration::from_millis(200));
        panic!(
            "oidc-provider peer in {}: {what}\n--- peer stderr ---\n{}",
            peer_dir().display(),
            self.stderr()
        );
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain_stderr(mut pipe: impl Read, sink: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Ok(mut s) = sink.lock() else { break };
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                if s.len() > STDERR_KEEP {
                    let mut cut = s.len() - STDERR_KEEP;
                    while !s.is_char_boundary(cut) {
                        cut += 1;
                    }
                    s.drain(..cut);
                }
            }
        }
    }
}

/// `tests/oidc-provider`, next to this crate.
fn peer_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../oidc-provider");
    dir.canonicalize().unwrap_or(dir)
}

fn require_tool(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "`{tool}` is needed to run the oidc-provider peer of the interop tests but cannot be \
             run ({e}). Install Node.js 20 or later with npm, e.g. `apt-get install nodejs npm` \
             or from https://nodejs.org, and make sure `{tool}` is on PATH."
        ),
    }
}

fn installed(dir: &Path) -> bool {
    dir.join("node_modules/oidc-provider/package.json").is_file()
}

/// Runs `npm ci` once when `node_modules` is missing, guarded against other
/// threads (a static mutex) and other test binaries (a lock file).
fn ensure_installed(dir: &Path) {
    if installed(dir) {
        return;
    }
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let lock = dir.join(".npm-ci.lock");
    loop {
        if installed(dir) {
            return;
        }
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let age = fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok());
                if age.is_some_and(|a| a > INSTALL_LOCK_STALE) {
                    // Left by an install that died: take it over.
                    let _ = fs::remove_file(&lock);
                } else {
                    thread::sleep(Duration::from_millis(250));
                }
            }
            Err(e) => panic!("cannot create {}: {e}", lock.display()),
        }
    }
    struct Unlock<'a>(&'a Path);
    impl Drop for Unlock<'_> {
        fn drop(&mut self) {
            let _ = fs::remove_file(self.0);
        }
    }
    let _unlock = Unlock(&lock);
    if installed(dir) {
        return;
    }
    require_tool("npm");
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `npm ci` in {}: {e}", dir.display()));
    if !out.status.success() || !installed(dir) {
        panic!(
            "`npm ci --no-audit --no-fund` in {} failed ({}):\n{}\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A tiny HTTP/1.1 client over [`std::net::TcpStream`], for plain `http://`
/// URLs only. It exists to check the peer without any HTTP crate: one request
/// per connection (`Connection: close`), the whole response read into memory.
pub mod raw {
    use std::fmt::Write as _;
    use std::io::{self, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    const IO_TIMEOUT: Duration = Duration::from_secs(10);

    /// A response read to its end.
    #[derive(Debug, Clone)]
    pub struct Response {
        /// The status code.
        pub status: u16,
        /// Header fields in order, names lower-cased.
        pub headers: Vec<(String, String)>,
        /// The body, de-chunked when it was sent chunked.
        pub body: Vec<u8>,
    }

    impl Response {
        /// The first value of header `name` (any case).
        pub fn header(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
        }

        /// The body as text (lossy UTF-8).
        pub fn body_text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// The body parsed as JSON.
        ///
        /// # Panics
        ///
        /// When the body is not JSON.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {}", self.status, self.body_text()))
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> io::Result<Response> {
        request("GET", url, &[], None)
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body made of
    /// `form` and the extra header fields `headers`.
    pub fn post_form(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> io::Result<Response> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        request("POST", url, &all, Some(body.as_bytes()))
    }

    /// Sends one request and reads the whole response.
    pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> io::Result<Response> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid(format!("only http:// URLs are supported: {url}")))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        let addr = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };

        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if let Some(body) = body {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");

        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(head.as_bytes())?;
        if let Some(body) = body {
            stream.write_all(body)?;
        }
        stream.flush()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse(&raw)
    }

    fn invalid(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    fn parse(raw: &[u8]) -> io::Result<Response> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| invalid("response has no end of header".into()))?;
        let head = String::from_utf8_lossy(&raw[..end]);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            dechunk(rest)?
        } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
            rest.get(..len)
                .ok_or_else(|| invalid("body shorter than content-length".into()))?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Response { status, headers, body })
    }

    fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| invalid("truncated chunk size".into()))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size_hex = size_text.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_hex, 16).map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                return Ok(body);
            }
            let chunk = rest.get(..size).ok_or_else(|| invalid("truncated chunk".into()))?;
            body.extend_from_slice(chunk);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
    }
}
