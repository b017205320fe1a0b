//! A small protected resource (an API) for tests of authorised HTTP clients.

use std::collections::HashSet;
use std::fmt;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::http::{self, Connections, RawRequest, ReadOutcome, Response, Running};
use crate::{lock, server, RecordedRequest, TestIssuer};

/// A protected resource on `127.0.0.1:0`, real HTTP/1.1 with keep-alive, on
/// its own std threads (usable from blocking and async tests); stops when dropped.
///
/// | Request | Answer |
/// |---|---|
/// | `GET /.well-known/oauth-protected-resource{path}` | its RFC 9728 metadata (`resource` = [`resource`](Self::resource)) |
/// | a path given to [`serve_document`](Self::serve_document) | that JSON document |
/// | `/redirect/{rest}` | `307` to [`redirect_to`](TestResourceServerBuilder::redirect_to)`{rest}` |
/// | anything else | `200` with `{"ok":true,"method":…,"path":…,"body":…}` for an accepted token, else `401` |
///
/// A token is accepted when it comes as `Authorization: Bearer …` (or
/// `DPoP …`), was not [rejected](Self::reject_token) and, with
/// [`accept_tokens_of`](TestResourceServerBuilder::accept_tokens_of), was
/// issued by that issuer (and, with
/// [`require_audience`](TestResourceServerBuilder::require_audience), for
/// that audience). A rejected token gets `401` with
/// `WWW-Authenticate: Bearer error="invalid_token", resource_metadata="…"`
/// (its own metadata URL, or the one given to
/// [`challenge_metadata_url`](Self::challenge_metadata_url));
/// a request without a token gets the challenge without an error code
/// (RFC 6750 §3.1). Every request is recorded ([`requests`](Self::requests)).
///
/// ```
/// use client_credentials_testkit::{TestIssuer, TestResourceServer};
///
/// let issuer = TestIssuer::start();
/// let api = TestResourceServer::builder().authorization_server(&issuer).start();
/// assert_eq!(api.metadata_url(), format!("{}/.well-known/oauth-protected-resource/api", api.base_url()));
/// api.reject_token("old-token");
/// assert_eq!(api.requests().len(), 0);
/// ```
pub struct TestResourceServer {
    shared: Running<Shared>,
}

struct Shared {
    addr: SocketAddr,
    path: String,
    authorization_servers: Vec<String>,
    redirect_to: Option<String>,
    issuer: Option<Arc<server::Shared>>,
    dpop: Option<Option<String>>,
    audience: Option<String>,
    connections: Connections,
    state: Mutex<State>,
    /// Wakes the requests held by [`TestResourceServer::gather`].
    gathered: Condvar,
}

#[derive(Default)]
struct State {
    rejected: HashSet<String>,
    reject_all: bool,
    /// `(expected, arrived)`: requests are held until `expected` have arrived.
    gate: Option<(usize, usize)>,
    /// Each request with what became of it (`accepted`, `rejected`, …).
    requests: Vec<(RecordedRequest, &'static str)>,
    /// The `resource_metadata` URL of the 401 challenges, when not its own.
    challenge_metadata_url: Option<String>,
    /// JSON documents served at a path: `(path, document)`.
    documents: Vec<(String, serde_json::Value)>,
}

impl fmt::Debug for TestResourceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResourceServer")
            .field("resource", &self.resource())
            .finish_non_exhaustive()
    }
}

/// Configures a [`TestResourceServer`].
#[derive(Default)]
pub struct TestResourceServerBuilder {
    path: Option<String>,
    authorization_servers: Vec<String>,
    redirect_to: Option<String>,
    issuer: Option<Arc<server::Shared>>,
    dpop: Option<Option<String>>,
    audience: Option<String>,
}

impl fmt::Debug for TestResourceServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResourceServerBuilder")
            .field("path", &self.path)
            .field("authorization_servers", &self.authorization_servers)
            .finish_non_exhaustive()
    }
}

impl TestResourceServerBuilder {
    /// The resource identifier's path (default `/api`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Names `issuer` in the metadata's `authorization_servers` and accepts
    /// only tokens it issued.
    pub fn authorization_server(mut self, issuer: &TestIssuer) -> Self {
        self.authorization_servers.push(issuer.issuer_url());
        self.issuer = Some(Arc::clone(&issuer.shared));
        self
    }

    /// Names `issuer` (any string) in `authorization_servers` without checking tokens against it.
    pub fn advertise_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Accepts only tokens `issuer` issued (without naming it in the metadata).
    pub fn accept_tokens_of(mut self, issuer: &TestIssuer) -> Self {
        self.issuer = Some(Arc::clone(&issuer.shared));
        self
    }

    /// Where `/redirect/{rest}` sends clients: `{url}{rest}` with a `307`.
    pub fn redirect_to(mut self, url: impl Into<String>) -> Self {
        self.redirect_to = Some(url.into());
        self
    }

    /// Requires DPoP (RFC 9449 §7): `Authorization: DPoP <token>` with a
    /// `DPoP` proof whose signature verifies with its own `jwk`, `typ`
    /// `dpop+jwt`, `htm`/`htu` of the request and `ath` of the token; and,
    /// with `nonce`, that nonce in the proof (else `401` with
    /// `error="use_dpop_nonce"` and a `DPoP-Nonce` header).
    pub fn require_dpop(mut self, nonce: Option<&str>) -> Self {
        self.dpop = Some(nonce.map(str::to_owned));
        self
    }

    /// Accepts only tokens the issuer of
    /// [`accept_tokens_of`](Self::accept_tokens_of) (or
    /// [`authorization_server`](Self::authorization_server)) issued for
    /// `audience`: to a token request with `audience={audience}` or
    /// `resource={audience}`. Any other token gets `401` with
    /// `error="invalid_token"`, as a resource server checking `aud` answers.
    pub fn require_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound or its thread cannot be spawned.
    pub fn start(self) -> TestResourceServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of listener");
        let shared = Shared {
            addr,
            path: self.path.unwrap_or_else(|| "/api".into()),
            authorization_servers: self.authorization_servers,
            redirect_to: self.redirect_to,
            issuer: self.issuer,
            dpop: self.dpop,
            audience: self.audience,
            connections: Connections::default(),
            state: Mutex::new(State::default()),
            gathered: Condvar::new(),
        };
        TestResourceServer {
            shared: Running::start(listener, shared, "test-resource", serve),
        }
    }
}

impl TestResourceServer {
    /// Starts a resource server that names no authorization server and accepts any token.
    pub fn start() -> TestResourceServer {
        TestResourceServer::builder().start()
    }

    /// Configures one before starting it.
    pub fn builder() -> TestResourceServerBuilder {
        TestResourceServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The resource identifier: [`base_url`](Self::base_url) + the path (`/api` by default).
    pub fn resource(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.path)
    }

    /// The RFC 9728 metadata URL of [`resource`](Self::resource).
    pub fn metadata_url(&self) -> String {
        self.shared.metadata_url()
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Rejects `token` from now on: `401` with `error="invalid_token"`.
    pub fn reject_token(&self, token: &str) {
        lock(&self.shared.state).rejected.insert(token.to_owned());
    }

    /// Rejects every token (`true`) or none beyond [`reject_token`](Self::reject_token)'s (`false`).
    pub fn reject_all(&self, reject: bool) {
        lock(&self.shared.state).reject_all = reject;
    }

    /// Holds the next `count` API requests (not metadata) until all of them
    /// have arrived, then answers them together (at most 10 s of waiting):
    /// a wave of concurrent requests that all carry the same token.
    pub fn gather(&self, count: usize) {
        lock(&self.shared.state).gate = Some((count, 0));
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.state)
            .requests
            .iter()
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// How many requests were answered `200` (their token was accepted).
    pub fn accepted(&self) -> usize {
        self.count("accepted")
    }

    /// How many requests were answered `401` (no token, or a rejected one).
    pub fn rejected(&self) -> usize {
        self.count("rejected")
    }

    fn count(&self, outcome: &str) -> usize {
        lock(&self.shared.state)
            .requests
            .iter()
            .filter(|(_, o)| *o == outcome)
            .count()
    }

    /// Names `url` as the `resource_metadata` of its 401 challenges from now
    /// on (a resource, or someone in between, pointing the client elsewhere).
    pub fn challenge_metadata_url(&self, url: impl Into<String>) {
        lock(&self.shared.state).challenge_metadata_url = Some(url.into());
    }

    /// Serves `document` as JSON to requests for `path` (the query ignored)
    /// from now on: another metadata document, on this origin.
    pub fn serve_document(&self, path: impl Into<String>, document: serde_json::Value) {
        let path = path.into();
        let mut state = lock(&self.shared.state);
        state.documents.retain(|(p, _)| *p != path);
        state.documents.push((path, document));
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.state).requests.clear();
    }
}

impl Shared {
    fn metadata_url(&self) -> String {
        let path = self.path.trim_end_matches('/');
        format!("http://{}/.well-known/oauth-protected-resource{path}", self.addr)
    }

    fn challenge(&self, error: Option<&str>) -> String {
        let url = lock(&self.state)
            .challenge_metadata_url
            .clone()
            .unwrap_or_else(|| self.metadata_url());
        match error {
            Some(error) => format!(r#"Bearer realm="test", error="{error}", resource_metadata="{url}""#),
            None => format!(r#"Bearer realm="test", resource_metadata="{url}""#),
        }
    }

    /// The answer, and what it says about the token (recorded with the request).
    fn respond(&self, req: &RawRequest) -> (Response, &'static str) {
        let path = req.target.split('?').next().unwrap_or("");
        let document = lock(&self.state)
            .documents
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d.clone());
        if let Some(document) = document {
            return (Response::json(200, &document), "document");
        }
        if path
            == format!(
                "/.well-known/oauth-protected-resource{}",
                self.path.trim_end_matches('/')
            )
        {
            let metadata = json!({
                "resource": format!("http://{}{}", self.addr, self.path),
                "authorization_servers": self.authorization_servers,
                "bearer_methods_supported": ["header"],
            });
            return (Response::json(200, &metadata), "metadata");
        }
        if let (Some(rest), Some(target)) = (path.strip_prefix("/redirect"), &self.redirect_to) {
            return (
                Response::new(307).with_header("Location", &format!("{target}{rest}")),
                "redirected",
            );
        }
        self.wait_for_the_wave();
        let token = req.header("authorization").and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")).then(|| token.trim())
        });
        let Some(token) = token else {
            let response = Response::json(401, &json!({"error": "no token"}))
                .with_header("WWW-Authenticate", &self.challenge(None));
            return (response, "rejected");
        };
        let rejected = {
            let state = lock(&self.state);
            state.reject_all || state.rejected.contains(token)
        };
        let unknown = self.issuer.as_ref().is_some_and(|issuer| {
            let state = issuer.state();
            let for_another = self.audience.as_ref().is_some_and(|audience| {
                !state
                    .targets
                    .get(token)
                    .is_some_and(|targets| targets.contains(audience))
            });
            for_another || !state.issued.iter().any(|t| t == token)
        });
        if let Some(nonce) = &self.dpop {
            if let Err((error, with_nonce)) = self.check_dpop(req, token, nonce.as_deref()) {
                let mut response = Response::json(401, &json!({ "error": error })).with_header(
                    "WWW-Authenticate",
                    &format!(r#"DPoP algs="ES256 EdDSA", error="{error}""#),
                );
                if let Some(nonce) = with_nonce {
                    response = response.with_header("DPoP-Nonce", nonce);
                }
                return (response, "rejected");
            }
        }
        if rejected || unknown {
            let response = Response::json(401, &json!({"error": "invalid_token"}))
                .with_header("WWW-Authenticate", &self.challenge(Some("invalid_token")));
            return (response, "rejected");
        }
        let body = json!({
            "ok": true,
            "method": req.method,
            "path": req.target,
            "body": String::from_utf8_lossy(&req.body),
        });
        (Response::json(200, &body), "accepted")
    }
}

impl Shared {
    /// Checks the DPoP proof of a request carrying `token`: the error code,
    /// and the nonce to send when the proof lacks it.
    fn check_dpop<'n>(
        &self,
        req: &RawRequest,
        token: &str,
        nonce: Option<&'n str>,
    ) -> Result<(), (&'static str, Option<&'n str>)> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let invalid = Err(("invalid_dpop_proof", None));
        let scheme = req.header("authorization").and_then(|v| v.split(' ').next());
        if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("dpop")) {
            return Err(("invalid_token", None));
        }
        let Some(proof) = req.header("dpop").and_then(crate::assertion::decode) else {
            return invalid;
        };
        let header = |name: &str| proof.header.get(name).and_then(serde_json::Value::as_str);
        let claim = |name: &str| proof.claims.get(name).and_then(serde_json::Value::as_str);
        let (Some(jwk), Some(alg)) = (proof.header.get("jwk"), header("alg")) else {
            return invalid;
        };
        let path = req.target.split('?').next().unwrap_or("");
        let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()));
        let fits = header("typ") == Some("dpop+jwt")
            && crate::assertion::verify_signature(jwk, alg, &proof).is_ok()
            && claim("htm") == Some(req.method.as_str())
            && claim("htu") == Some(format!("http://{}{path}", self.addr).as_str())
            && claim("ath") == Some(ath.as_str())
            && claim("jti").is_some();
        if !fits {
            return invalid;
        }
        match nonce {
            Some(nonce) if claim("nonce") != Some(nonce) => Err(("use_dpop_nonce", Some(nonce))),
            _ => Ok(()),
        }
    }

    fn wait_for_the_wave(&self) {
        let mut state = lock(&self.state);
        let Some((expected, arrived)) = state.gate.as_mut() else {
            return;
        };
        *arrived += 1;
        if *arrived >= *expected {
            state.gate = None;
            self.gathered.notify_all();
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while state.gate.is_some() && std::time::Instant::now() < deadline {
            state = self
                .gathered
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl AsRef<Connections> for Shared {
    fn as_ref(&self) -> &Connections {
        &self.connections
    }
}

/// Serves requests on one connection until the peer closes it (keep-alive,
/// so a benchmark measures requests rather than connection set-up).
fn serve(mut stream: TcpStream, shared: &Shared) {
    loop {
        let req = match http::read_request(&mut stream, &shared.connections.shutdown) {
            Ok(ReadOutcome::Request(req)) => req,
            Ok(ReadOutcome::Nothing) | Err(_) => return,
        };
        let (response, outcome) = match req.error {
            Some((status, message)) => (
                Response::new(status).with_body(message.as_bytes().to_vec()),
                "malformed",
            ),
            None => shared.respond(&req),
        };
        let recorded = RecordedRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            ..RecordedRequest::default()
        };
        lock(&shared.state).requests.push((recorded, outcome));
        let keep_alive = req.error.is_none()
            && !req
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = response.with_header("Connection", if keep_alive { "keep-alive" } else { "close" });
        let mut bytes = response.head(false);
        bytes.extend_from_slice(&response.body);
        if http::write_all(&mut stream, &bytes, &shared.connections.shutdown).is_err() || !keep_alive {
            return;
        }
    }
}
