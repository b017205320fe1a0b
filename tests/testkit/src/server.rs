//! Connection handling, routing, validation and fault injection.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::http::{self, Connections, RawRequest, ReadOutcome, Response};
use crate::{lock, AuthMethod, DiscoveryMode, Fault, RecordedRequest, TokenFormat};

/// Immutable issuer configuration.
#[derive(Debug)]
pub(crate) struct Config {
    pub clients: Vec<(String, String)>,
    pub omit_expires_in: bool,
    pub expires_in_as_string: bool,
    pub token_format: TokenFormat,
    pub issuer_path: String,
    pub discovery: DiscoveryMode,
    pub advertise_issuer: Option<String>,
    pub revocation: bool,
    pub auth_methods: Vec<String>,
    pub scopes: Vec<String>,
    pub issue_refresh_tokens: bool,
    pub token_type: String,
    pub jwks: Vec<(String, Value)>,
    pub accept_endpoint_audience: bool,
    /// Clients that may use a grant other than client credentials without
    /// authenticating (`client_id` only: a public security token service).
    pub public_clients: Vec<String>,
}

/// What a request was addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Token,
    Revocation,
    /// `{issuer}/.well-known/openid-configuration`.
    OidcDiscovery,
    /// `{base}/.well-known/oauth-authorization-server{issuer_path}`.
    Rfc8414Discovery,
    Jwks,
    Other,
}

impl Kind {
    pub fn is_discovery(self) -> bool {
        matches!(self, Kind::OidcDiscovery | Kind::Rfc8414Discovery)
    }
}

/// A refresh token that has been issued and not yet used or revoked.
#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
    scope: Option<String>,
    resources: Vec<String>,
}

/// Mutable issuer state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub token_faults: VecDeque<Fault>,
    pub discovery_faults: VecDeque<Fault>,
    pub lifetime: i64,
    pub requests: Vec<(Kind, RecordedRequest)>,
    pub issued: Vec<String>,
    /// Each issued access token's targets: the `audience` and `resource`
    /// values of the request that got it.
    pub targets: HashMap<String, Vec<String>>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    counter: u64,
    /// Client assertion `jti`s already used, per client.
    seen_jtis: std::collections::HashSet<(String, String)>,
    /// When set, the `issued_token_type` of every token exchange answer.
    pub issued_token_type: Option<String>,
}

/// State shared between the [`crate::TestIssuer`] handle and its threads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub config: Config,
    pub connections: Connections,
    state: Mutex<State>,
    seed: u64,
}

impl Shared {
    pub fn new(addr: SocketAddr, config: Config, lifetime: i64) -> Shared {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = mix(u64::from(addr.port()) ^ (instance << 16) ^ (u64::from(nanos) << 32));
        Shared {
            addr,
            config,
            connections: Connections::default(),
            state: Mutex::new(State {
                lifetime,
                ..State::default()
            }),
            seed,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn issuer_url(&self) -> String {
        format!("{}{}", self.base_url(), self.config.issuer_path)
    }
}

/// SplitMix64 finalizer: a cheap, well-distributed counter mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl AsRef<Connections> for Shared {
    fn as_ref(&self) -> &Connections {
        &self.connections
    }
}

/// Answers one request on `stream`, then closes it.
pub(crate) fn handle_connection(mut stream: TcpStream, shared: &Shared) {
    let req = match http::read_request(&mut stream, &shared.connections.shutdown) {
        Ok(ReadOutcome::Request(req)) => req,
        Ok(ReadOutcome::Nothing) | Err(_) => return,
    };
    let path = req.target.split('?').next().unwrap_or("").to_owned();
    let kind = classify(&shared.config.issuer_path, &path);
    let body = parse_body(&req);
    let recorded = record(&req, &body);
    let fault = {
        let mut state = shared.state();
        state.requests.push((kind, recorded));
        match kind {
            Kind::Token => state.token_faults.pop_front(),
            k if k.is_discovery() => state.discovery_faults.pop_front(),
            _ => None,
        }
    };
    let respond = || respond(shared, kind, &req, &body);
    let stop = &shared.connections.shutdown;
    let finished = match fault {
        None => send(&mut stream, &respond(), stop),
        Some(Fault::Status { status, body, headers }) => send(
            &mut stream,
            &Response {
                status,
                headers,
                body: body.into_bytes(),
            },
            stop,
        ),
        Some(Fault::Delay(delay)) => http::sleep(delay, stop) && send(&mut stream, &respond(), stop),
        Some(Fault::Dribble { interval }) => {
            let response = respond();
            http::write_all(&mut stream, &response.head(false), stop).is_ok()
                && response.body.iter().all(|b| {
                    http::sleep(interval, stop) && http::write_all(&mut stream, std::slice::from_ref(b), stop).is_ok()
                })
        }
        Some(Fault::Oversized(size)) => send(
            &mut stream,
            &Response::new(200)
                .with_header("Content-Type", "application/json")
                .with_body(oversized_body(size)),
            stop,
        ),
        Some(Fault::OversizedChunked(size)) => {
            let response = Response::new(200).with_header("Content-Type", "application/json");
            let body = oversized_body(size);
            let mut ok = http::write_all(&mut stream, &response.head(true), stop).is_ok();
            for chunk in body.chunks(16 * 1024) {
                if !ok {
                    break;
                }
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
                ok = http::write_all(&mut stream, &framed, stop).is_ok();
            }
            ok && http::write_all(&mut stream, b"0\r\n\r\n", stop).is_ok()
        }
        Some(Fault::CloseMidResponse) => {
            let response = respond();
            let mut partial = response.head(false);
            partial.extend_from_slice(&response.body[..response.body.len() / 2]);
            let _ = http::write_all(&mut stream, &partial, stop);
            false
        }
        Some(Fault::CloseImmediately) => false,
        Some(Fault::Hang) => {
            while http::sleep(Duration::from_secs(1), stop) {}
            false
        }
        Some(Fault::Redirect(location)) => send(
            &mut stream,
            &Response::new(307).with_header("Location", &location),
            stop,
        ),
        Some(Fault::Malformed(raw)) => send(
            &mut stream,
            &Response::new(200)
                .with_header("Content-Type", "application/json")
                .with_body(raw.into_bytes()),
            stop,
        ),
    };
    if finished {
        linger(&mut stream, stop);
    }
}

/// Writes a complete response; `true` on success.
fn send(stream: &mut TcpStream, response: &Response, stop: &AtomicBool) -> bool {
    let mut bytes = response.head(false);
    bytes.extend_from_slice(&response.body);
    http::write_all(stream, &bytes, stop).is_ok()
}

/// Half-closes the connection and briefly drains what the peer still sends,
/// so that unread request bytes do not turn the close into a reset that could
/// destroy the response before the client reads it.
fn linger(stream: &mut TcpStream, stop: &AtomicBool) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(http::POLL));
    let end = Instant::now() + Duration::from_millis(500);
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
}

fn oversized_body(size: usize) -> Vec<u8> {
    const PREFIX: &[u8] = br#"{"access_token":""#;
    const SUFFIX: &[u8] = br#"","token_type":"Bearer"}"#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(&PREFIX[..PREFIX.len().min(size)]);
    let fill = size.saturating_sub(PREFIX.len() + SUFFIX.len());
    body.resize(body.len() + fill, b'a');
    let room = size - body.len();
    body.extend_from_slice(&SUFFIX[SUFFIX.len() - room.min(SUFFIX.len())..]);
    body
}

fn classify(issuer_path: &str, path: &str) -> Kind {
    let Some(rest) = path.strip_prefix(issuer_path) else {
        return rfc8414_or_other(issuer_path, path);
    };
    match rest {
        "/token" => Kind::Token,
        "/revoke" => Kind::Revocation,
        "/jwks" => Kind::Jwks,
        "/.well-known/openid-configuration" => Kind::OidcDiscovery,
        _ => rfc8414_or_other(issuer_path, path),
    }
}

fn rfc8414_or_other(issuer_path: &str, path: &str) -> Kind {
    match path.strip_prefix("/.well-known/oauth-authorization-server") {
        Some(rest) if rest == issuer_path => Kind::Rfc8414Discovery,
        _ => Kind::Other,
    }
}

/// The decoded body of a request.
#[derive(Debug)]
struct Body {
    kind: BodyKind,
    params: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
    /// `application/json` that is not a JSON object.
    InvalidJson,
    /// Any other or a missing content type.
    Other,
}

fn parse_body(req: &RawRequest) -> Body {
    let media = req
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media.as_str() {
        "application/x-www-form-urlencoded" => Body {
            kind: BodyKind::Form,
            params: form_urlencoded::parse(&req.body).into_owned().collect(),
        },
        "application/json" => match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(object)) => Body {
                kind: BodyKind::Json,
                params: flatten(object),
            },
            _ => Body {
                kind: BodyKind::InvalidJson,
                params: Vec::new(),
            },
        },
        _ => Body {
            kind: BodyKind::Other,
            params: Vec::new(),
        },
    }
}

fn flatten(object: Map<String, Value>) -> Vec<(String, String)> {
    fn text(value: Value) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }
    let mut params = Vec::new();
    for (name, value) in object {
        match value {
            Value::Array(items) => {
                params.extend(items.into_iter().filter_map(text).map(|v| (name.clone(), v)));
            }
            other => params.extend(text(other).map(|v| (name, v))),
        }
    }
    params
}

impl Body {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn params(&self, name: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first parameter (other than repeatable `resource`) sent more than
    /// once (RFC 6749 §3.2).
    fn duplicate(&self) -> Option<&str> {
        self.params.iter().enumerate().find_map(|(i, (name, _))| {
            (name != "resource" && self.params[..i].iter().any(|(n, _)| n == name)).then_some(name.as_str())
        })
    }

    fn auth_method(&self) -> AuthMethod {
        if self.kind == BodyKind::Json {
            AuthMethod::Json
        } else {
            AuthMethod::Post
        }
    }

    fn has_credentials(&self) -> bool {
        self.param("client_id").is_some() || self.param("client_secret").is_some()
    }

    fn has_assertion(&self) -> bool {
        self.param("client_assertion").is_some() || self.param("client_assertion_type").is_some()
    }
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1).
#[derive(Debug, PartialEq, Eq)]
enum Basic {
    Absent,
    Valid(String, String),
    Invalid,
}

fn basic_credentials(req: &RawRequest) -> Basic {
    let Some(value) = req.header("authorization") else {
        return Basic::Absent;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Basic::Invalid;
    }
    let decoded = STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(decoded) = decoded else {
        return Basic::Invalid;
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return Basic::Invalid;
    };
    match (form_decode(id), form_decode(secret)) {
        (Some(id), Some(secret)) => Basic::Valid(id, secret),
        _ => Basic::Invalid,
    }
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn form_decode(s: &str) -> Option<String> {
    let plus_decoded = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn record(req: &RawRequest, body: &Body) -> RecordedRequest {
    let (client_id, client_secret, auth_method) = match basic_credentials(req) {
        Basic::Valid(id, secret) => (Some(id), Some(secret), Some(AuthMethod::Basic)),
        _ if body.has_assertion() => {
            let decoded = body.param("client_assertion").and_then(crate::assertion::decode);
            let iss = decoded
                .as_ref()
                .and_then(|d| d.claims.get("iss").and_then(Value::as_str).map(str::to_owned));
            let hs256 = decoded
                .as_ref()
                .is_some_and(|d| d.header.get("alg").and_then(Value::as_str) == Some("HS256"));
            let method = if hs256 {
                AuthMethod::ClientSecretJwt
            } else {
                AuthMethod::PrivateKeyJwt
            };
            (body.param("client_id").map(str::to_owned).or(iss), None, Some(method))
        }
        _ if body.has_credentials() => (
            body.param("client_id").map(str::to_owned),
            body.param("client_secret").map(str::to_owned),
            Some(body.auth_method()),
        ),
        _ => (None, None, None),
    };
    RecordedRequest {
        method: req.method.clone(),
        path: req.target.clone(),
        headers: req.headers.clone(),
        body: req.body.clone(),
        form: body.params.clone(),
        client_id,
        client_secret,
        auth_method,
        grant_type: body.param("grant_type").map(str::to_owned),
    }
}

fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    let mut response = Response::json(status, &json!({ "error": code, "error_description": description }))
        .with_header("Cache-Control", "no-store");
    if status == 401 {
        response = response.with_header("WWW-Authenticate", "Basic realm=\"test\"");
    }
    response
}

fn not_found() -> Response {
    Response::json(404, &json!({ "error": "not_found" }))
}

fn method_not_allowed(allow: &str) -> Response {
    oauth_error(405, "invalid_request", &format!("method must be {allow}")).with_header("Allow", allow)
}

fn respond(shared: &Shared, kind: Kind, req: &RawRequest, body: &Body) -> Response {
    if let Some((status, message)) = req.error {
        return oauth_error(status, "invalid_request", message);
    }
    let config = &shared.config;
    match kind {
        Kind::Token => token(shared, req, body).unwrap_or_else(|e| e),
        Kind::Revocation if config.revocation => revoke(shared, req, body).unwrap_or_else(|e| e),
        Kind::OidcDiscovery if matches!(config.discovery, DiscoveryMode::Oidc | DiscoveryMode::Both) => {
            discovery(shared, req)
        }
        Kind::Rfc8414Discovery if matches!(config.discovery, DiscoveryMode::Rfc8414 | DiscoveryMode::Both) => {
            discovery(shared, req)
        }
        Kind::Jwks if req.method == "GET" => Response::json(200, &json!({ "keys": [] })),
        Kind::Jwks => method_not_allowed("GET"),
        _ => not_found(),
    }
}

fn discovery(shared: &Shared, req: &RawRequest) -> Response {
    if req.method != "GET" {
        return method_not_allowed("GET");
    }
    let config = &shared.config;
    let issuer = shared.issuer_url();
    let mut doc = Map::new();
    doc.insert(
        "issuer".into(),
        config.advertise_issuer.clone().unwrap_or(issuer.clone()).into(),
    );
    doc.insert("token_endpoint".into(), format!("{issuer}/token").into());
    if config.revocation {
        doc.insert("revocation_endpoint".into(), format!("{issuer}/revoke").into());
        doc.insert(
            "revocation_endpoint_auth_methods_supported".into(),
            json!(config.auth_methods),
        );
    }
    doc.insert("jwks_uri".into(), format!("{issuer}/jwks").into());
    doc.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(config.auth_methods),
    );
    let mut grants = vec!["client_credentials"];
    if config.issue_refresh_tokens {
        grants.push("refresh_token");
    }
    doc.insert("grant_types_supported".into(), json!(grants));
    if !config.scopes.is_empty() {
        doc.insert("scopes_supported".into(), json!(config.scopes));
    }
    doc.insert("response_types_supported".into(), json!(["token"]));
    Response::json(200, &Value::Object(doc))
}

/// Validates client authentication; returns the authenticated client id.
fn authenticate(shared: &Shared, req: &RawRequest, body: &Body) -> Result<String, Response> {
    let invalid = |description: &str| oauth_error(401, "invalid_client", description);
    // A public client (RFC 6749 §2.1) names itself, for any grant but client credentials.
    let unauthenticated = !body.has_assertion()
        && body.param("client_secret").is_none()
        && matches!(basic_credentials(req), Basic::Absent);
    if unauthenticated && body.param("grant_type") != Some("client_credentials") {
        if let Some(id) = body
            .param("client_id")
            .filter(|id| shared.config.public_clients.iter().any(|p| p == id))
        {
            return Ok(id.to_owned());
        }
    }
    if body.has_assertion() {
        if body.param("client_secret").is_some() || !matches!(basic_credentials(req), Basic::Absent) {
            return Err(invalid("more than one client authentication method used"));
        }
        let issuer = shared.issuer_url();
        let config = &shared.config;
        let expect = crate::assertion::Expect {
            issuer: &issuer,
            token_endpoint: &format!("{issuer}/token"),
            accept_endpoint_audience: config.accept_endpoint_audience,
            clients: &config.clients,
            jwks: &config.jwks,
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let mut state = shared.state();
        let verified = crate::assertion::verify(
            &expect,
            body.param("client_assertion_type"),
            body.param("client_assertion").unwrap_or_default(),
            body.param("client_id"),
            &mut state.seen_jtis,
        )
        .map_err(|reason| invalid(&reason))?;
        if !config.auth_methods.iter().any(|m| m == verified.method) {
            return Err(invalid(&format!("{} is not supported", verified.method)));
        }
        return Ok(verified.client_id);
    }
    let (id, secret, method) = match (basic_credentials(req), body.has_credentials()) {
        (Basic::Invalid, _) => return Err(invalid("malformed HTTP Basic credentials")),
        (Basic::Valid(..), true) => return Err(invalid("more than one client authentication method used")),
        (Basic::Absent, false) => return Err(invalid("client authentication required")),
        (Basic::Valid(id, secret), false) => (id, secret, AuthMethod::Basic),
        (Basic::Absent, true) => {
            let (Some(id), Some(secret)) = (body.param("client_id"), body.param("client_secret")) else {
                return Err(invalid("client_id and client_secret are both required"));
            };
            (id.to_owned(), secret.to_owned(), body.auth_method())
        }
    };
    let method_name = match method {
        AuthMethod::Basic => "client_secret_basic",
        AuthMethod::Post | AuthMethod::Json => "client_secret_post",
        AuthMethod::ClientSecretJwt => "client_secret_jwt",
        AuthMethod::PrivateKeyJwt => "private_key_jwt",
    };
    if !shared.config.auth_methods.iter().any(|m| m == method_name) {
        return Err(invalid(&format!("{method_name} is not supported")));
    }
    let known = shared.config.clients.iter().any(|(i, s)| *i == id && *s == secret);
    if !known {
        return Err(invalid("unknown client or wrong secret"));
    }
    Ok(id)
}

/// Checks method, content type and duplicate parameters common to the token
/// and revocation endpoints.
fn check_request(req: &RawRequest, body: &Body, json_allowed: bool) -> Result<(), Response> {
    if req.method != "POST" {
        return Err(method_not_allowed("POST"));
    }
    let bad = |description: &str| Err(oauth_error(400, "invalid_request", description));
    match body.kind {
        BodyKind::Form => {}
        BodyKind::Json if json_allowed => {}
        BodyKind::InvalidJson if json_allowed => return bad("body is not a JSON object"),
        _ => return bad("unsupported content type"),
    }
    if let Some(name) = body.duplicate() {
        return bad(&format!("parameter {name} sent more than once"));
    }
    Ok(())
}

fn token(shared: &Shared, req: &RawRequest, body: &Body) -> Result<Response, Response> {
    check_request(req, body, true)?;
    let client_id = authenticate(shared, req, body)?;
    let config = &shared.config;
    let error = |code: &str, description: &str| Err(oauth_error(400, code, description));

    let requested_scope: Option<Vec<&str>> = body
        .param("scope")
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect());
    if let Some(scopes) = &requested_scope {
        if !config.scopes.is_empty() {
            if let Some(unknown) = scopes.iter().find(|s| !config.scopes.iter().any(|a| a == *s)) {
                return error("invalid_scope", &format!("scope {unknown} is not allowed"));
            }
        }
    }
    let mut resources: Vec<String> = Vec::new();
    for resource in body.params("resource") {
        if !is_absolute_uri(resource) {
            return error("invalid_target", "resource must be an absolute URI without a fragment");
        }
        resources.push(resource.to_owned());
    }
    let mut scope = requested_scope.filter(|s| !s.is_empty()).map(|s| s.join(" "));

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // For the token exchange and JWT bearer grants: whom the token is for,
    // and (for an exchange) the issued type and whether it is an access token.
    let mut subject: Option<String> = None;
    let mut exchanged: Option<(String, bool)> = None;
    let mut state = shared.state();
    match body.param("grant_type") {
        None => return error("invalid_request", "grant_type is required"),
        Some("client_credentials") => {}
        Some(TOKEN_EXCHANGE) => {
            // RFC 8693 §2.1.
            let (Some(token), Some(token_type)) = (body.param("subject_token"), body.param("subject_token_type"))
            else {
                return error("invalid_request", "subject_token and subject_token_type are required");
            };
            if token.is_empty() || !token_type.contains(':') {
                return error(
                    "invalid_request",
                    "subject_token is empty or subject_token_type is not a URI",
                );
            }
            if body.param("actor_token").is_some() != body.param("actor_token_type").is_some() {
                return error("invalid_request", "actor_token and actor_token_type go together");
            }
            subject = Some(subject_of(token, now).map_err(|reason| oauth_error(400, "invalid_grant", &reason))?);
            let requested = body.param("requested_token_type").unwrap_or(ACCESS_TOKEN_TYPE);
            if requested != ACCESS_TOKEN_TYPE && requested != JWT_TYPE {
                return error(
                    "invalid_request",
                    &format!("requested_token_type {requested} is not issued here"),
                );
            }
            let issued = state.issued_token_type.clone().unwrap_or_else(|| requested.to_owned());
            exchanged = Some((issued, requested == ACCESS_TOKEN_TYPE));
        }
        Some(JWT_BEARER) => {
            // RFC 7523 §2.1, §3: a JWT, not expired.
            let Some(assertion) = body.param("assertion") else {
                return error("invalid_request", "assertion is required");
            };
            if crate::assertion::decode(assertion).is_none() {
                return error("invalid_grant", "the assertion is not a JWT");
            }
            subject = Some(subject_of(assertion, now).map_err(|reason| oauth_error(400, "invalid_grant", &reason))?);
        }
        Some("refresh_token") if config.issue_refresh_tokens => {
            let Some(refresh_token) = body.param("refresh_token") else {
                return error("invalid_request", "refresh_token is required");
            };
            let valid = state
                .refresh_tokens
                .get(refresh_token)
                .is_some_and(|g| g.client_id == client_id);
            if !valid {
                return error("invalid_grant", "refresh token is invalid, used or revoked");
            }
            let grant = state.refresh_tokens.remove(refresh_token).expect("checked above");
            match (&scope, &grant.scope) {
                (None, original) => scope.clone_from(original),
                (Some(requested), original) => {
                    let original: Vec<&str> = original.as_deref().unwrap_or("").split(' ').collect();
                    if requested.split(' ').any(|s| !original.contains(&s)) {
                        // Put the grant back: a rejected request does not use it.
                        state.refresh_tokens.insert(refresh_token.to_owned(), grant);
                        return error("invalid_scope", "scope exceeds the original grant");
                    }
                }
            }
            if resources.is_empty() {
                resources = grant.resources;
            }
        }
        Some(other) => {
            return error(
                "unsupported_grant_type",
                &format!("grant_type {other} is not supported"),
            )
        }
    }

    state.counter += 1;
    let n = state.counter;
    let lifetime = state.lifetime;
    let sub = subject.as_deref().unwrap_or(&client_id);
    // A JWT authorization grant (identity chaining): for the audience asked for.
    let grant_jwt = exchanged.as_ref().is_some_and(|(_, access)| !access);
    let access_token = match config.token_format {
        _ if grant_jwt => {
            let audience: Vec<String> = body.params("audience").into_iter().map(str::to_owned).collect();
            jwt(shared, n, sub, &client_id, scope.as_deref(), &audience, lifetime)
        }
        TokenFormat::Opaque => format!("tk-{n}-{:016x}", mix(shared.seed ^ n)),
        TokenFormat::Jwt => jwt(shared, n, sub, &client_id, scope.as_deref(), &resources, lifetime),
    };
    state.issued.push(access_token.clone());
    let targets = body.params("audience").into_iter().map(str::to_owned);
    let targets = targets.chain(resources.iter().cloned()).collect();
    state.targets.insert(access_token.clone(), targets);

    let mut response = Map::new();
    response.insert("access_token".into(), access_token.into());
    let token_type = if grant_jwt { "N_A" } else { config.token_type.as_str() };
    response.insert("token_type".into(), token_type.into());
    if let Some((issued, _)) = &exchanged {
        response.insert("issued_token_type".into(), issued.clone().into());
    }
    if !config.omit_expires_in {
        let value = if config.expires_in_as_string {
            lifetime.to_string().into()
        } else {
            lifetime.into()
        };
        response.insert("expires_in".into(), value);
    }
    if let Some(scope) = &scope {
        response.insert("scope".into(), scope.clone().into());
    }
    if config.issue_refresh_tokens && subject.is_none() {
        let refresh_token = format!("rt-{n}-{:016x}", mix(!shared.seed ^ n));
        state.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                client_id,
                scope,
                resources,
            },
        );
        response.insert("refresh_token".into(), refresh_token.into());
    }
    Ok(Response::json(200, &Value::Object(response)).with_header("Cache-Control", "no-store"))
}

/// `grant_type` of token exchange (RFC 8693 §2.1).
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Whom a subject token or assertion speaks for: a JWT's `sub` (refused
/// when its `exp` has passed), else `opaque:` and the token itself.
fn subject_of(token: &str, now: u64) -> Result<String, String> {
    match crate::assertion::decode(token) {
        Some(decoded) => {
            if let Some(exp) = decoded.claims.get("exp").and_then(Value::as_u64) {
                if exp <= now {
                    return Err("the subject token has expired".into());
                }
            }
            let sub = decoded.claims.get("sub").and_then(Value::as_str).unwrap_or_default();
            Ok(sub.to_owned())
        }
        None => Ok(format!("opaque:{token}")),
    }
}

#[allow(clippy::too_many_arguments)]
fn jwt(
    shared: &Shared,
    n: u64,
    sub: &str,
    client_id: &str,
    scope: Option<&str>,
    resources: &[String],
    lifetime: i64,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": "testkit" });
    let mut payload = Map::new();
    payload.insert("iss".into(), shared.issuer_url().into());
    payload.insert("sub".into(), sub.into());
    payload.insert("client_id".into(), client_id.into());
    match resources {
        [] => {}
        [one] => {
            payload.insert("aud".into(), one.clone().into());
        }
        many => {
            payload.insert("aud".into(), json!(many));
        }
    }
    payload.insert("iat".into(), now.into());
    payload.insert("exp".into(), now.saturating_add(lifetime).into());
    payload.insert(
        "jti".into(),
        format!("jti-{n}-{:016x}", mix(shared.seed ^ n ^ 0x5555)).into(),
    );
    if let Some(scope) = scope {
        payload.insert("scope".into(), scope.into());
    }
    let signature: Vec<u8> = (0..4)
        .flat_map(|i| mix(shared.seed ^ n ^ (i << 48)).to_be_bytes())
        .collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(payload).to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn revoke(shared: &Shared, req: &RawRequest, body: &Body) -> Result<Response, Response> {
    check_request(req, body, false)?;
    let client_id = authenticate(shared, req, body)?;
    let Some(token) = body.param("token") else {
        return Err(oauth_error(400, "invalid_request", "token is required"));
    };
    let mut state = shared.state();
    if state
        .refresh_tokens
        .get(token)
        .is_some_and(|g| g.client_id == client_id)
    {
        state.refresh_tokens.remove(token);
    }
    // RFC 7009 §2.2: unknown tokens are answered with 200 as well.
    Ok(Response::new(200).with_header("Cache-Control", "no-store"))
}

/// An absolute URI (RFC 3986 §4.3): a scheme, `:`, something, no fragment.
fn is_absolute_uri(s: &str) -> bool {
    if s.contains('#') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_body_has_exact_size() {
        for size in [0, 1, 5, 17, 18, 40, 41, 42, 1000] {
            assert_eq!(oversized_body(size).len(), size);
        }
        assert!(oversized_body(100).starts_with(br#"{"access_token":"aaa"#));
        assert!(oversized_body(100).ends_with(br#""token_type":"Bearer"}"#));
    }

    #[test]
    fn classify_paths() {
        assert_eq!(classify("", "/token"), Kind::Token);
        assert_eq!(classify("/t/a", "/t/a/token"), Kind::Token);
        assert_eq!(classify("/t/a", "/token"), Kind::Other);
        assert_eq!(
            classify("/t/a", "/.well-known/oauth-authorization-server/t/a"),
            Kind::Rfc8414Discovery
        );
        assert_eq!(
            classify("/t/a", "/t/a/.well-known/openid-configuration"),
            Kind::OidcDiscovery
        );
        assert_eq!(
            classify("", "/.well-known/oauth-authorization-server"),
            Kind::Rfc8414Discovery
        );
    }

    #[test]
    fn absolute_uris() {
        assert!(is_absolute_uri("https://api.example.com/"));
        assert!(is_absolute_uri("urn:example:thing"));
        assert!(!is_absolute_uri("/relative"));
        assert!(!is_absolute_uri("https://a/#frag"));
        assert!(!is_absolute_uri("1http://a"));
        assert!(!is_absolute_uri(""));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_decode("p%40ss%3Aw%2Frd%2B+%26%3D%25").as_deref(),
            Some("p@ss:w/rd+ &=%")
        );
        assert_eq!(form_decode("%FF"), None);
    }
}
