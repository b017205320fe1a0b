//! An in-process OAuth 2.0 / OpenID Connect **test issuer** for
//! client-credentials clients.
//!
//! [`TestIssuer::start`] binds `127.0.0.1:0`, serves a discovery document
//! (OpenID Connect and RFC 8414 locations), a token endpoint (RFC 6749
//! `client_credentials` and optionally `refresh_token` grants), a revocation
//! endpoint (RFC 7009) and an empty JWKS, on its own std threads. It therefore
//! works from blocking tests and from async (e.g. tokio) tests alike, and it
//! stops when dropped.
//!
//! The issuer validates requests strictly, like a real authorization server
//! (client authentication per RFC 6749 §2.3.1, content types, grant types,
//! scopes, RFC 8707 resource indicators), records every request it receives
//! ([`TestIssuer::requests`]) and can be told to misbehave on the next request
//! ([`TestIssuer::push_fault`] with a [`Fault`]).
//!
//! [`TestResourceServer`] is the other side: a protected resource (an API)
//! that serves its RFC 9728 metadata naming the issuer, accepts the tokens
//! the issuer issued, can reject a token (`401` with
//! `WWW-Authenticate: Bearer error="invalid_token"`) or every token, redirects
//! to another origin, and counts what it accepted and rejected.
//!
//! # Endpoints
//!
//! With `{issuer}` = [`TestIssuer::issuer_url`] and `{base}` =
//! [`TestIssuer::base_url`]:
//!
//! | Request | Answer |
//! |---|---|
//! | `GET {issuer}/.well-known/openid-configuration` | discovery document ([`DiscoveryMode::Oidc`] or [`DiscoveryMode::Both`]) |
//! | `GET {base}/.well-known/oauth-authorization-server{issuer_path}` | the same document ([`DiscoveryMode::Rfc8414`] or [`DiscoveryMode::Both`]) |
//! | `POST {issuer}/token` | RFC 6749 §4.4 token response or §5.2 error |
//! | `POST {issuer}/revoke` | RFC 7009 revocation (if [enabled](TestIssuerBuilder::revocation)) |
//! | `GET {issuer}/jwks` | `{"keys":[]}` |
//! | anything else | `404` |
//!
//! The token endpoint accepts `application/x-www-form-urlencoded` bodies and,
//! as an extension, JSON object bodies. Clients authenticate with exactly one
//! of HTTP Basic (id and secret form-urlencoded before base64, RFC 6749
//! §2.3.1) or `client_id` + `client_secret` body parameters; failures are
//! `401 invalid_client` with `WWW-Authenticate: Basic realm="test"`. Other
//! errors: wrong method `405`; bad content type, duplicated parameters,
//! missing `grant_type` `400 invalid_request`; unknown grant
//! `unsupported_grant_type`; scope outside [`TestIssuerBuilder::scopes`]
//! `invalid_scope`; a `resource` that is not an absolute URI without fragment
//! `invalid_target`; an unknown, used or revoked refresh token
//! `invalid_grant`. Malformed HTTP is answered with `400` (or `413` for
//! bodies over 1 MiB); the issuer never panics on client input.
//!
//! # Example
//!
//! ```
//! use std::io::{Read, Write};
//! use client_credentials_testkit::{AuthMethod, Fault, TestIssuer};
//!
//! let issuer = TestIssuer::start();
//!
//! // Any HTTP client works; a raw socket keeps the example dependency-free.
//! let post = |body: &str| {
//!     let mut s = std::net::TcpStream::connect(issuer.addr()).unwrap();
//!     write!(
//!         s,
//!         "POST /token HTTP/1.1\r\nHost: {}\r\n\
//!          Content-Type: application/x-www-form-urlencoded\r\n\
//!          Content-Length: {}\r\n\r\n{}",
//!         issuer.addr(), body.len(), body
//!     ).unwrap();
//!     let mut response = String::new();
//!     s.read_to_string(&mut response).unwrap();
//!     response
//! };
//! let body: String = form_urlencoded::Serializer::new(String::new())
//!     .append_pair("grant_type", "client_credentials")
//!     .append_pair("client_id", &issuer.client_id())
//!     .append_pair("client_secret", &issuer.client_secret())
//!     .finish();
//!
//! let response = post(&body);
//! assert!(response.starts_with("HTTP/1.1 200"));
//! assert!(response.contains(&issuer.issued_tokens()[0]));
//!
//! let recorded = &issuer.token_requests()[0];
//! assert_eq!(recorded.auth_method, Some(AuthMethod::Post));
//! assert_eq!(recorded.grant_type.as_deref(), Some("client_credentials"));
//!
//! // Make the next token request fail.
//! issuer.push_fault(Fault::retry_after(503, "1"));
//! assert!(post(&body).starts_with("HTTP/1.1 503"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assertion;
mod http;
pub mod redis;
mod resource;
mod server;

pub use resource::{TestResourceServer, TestResourceServerBuilder};

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use http::Running;
use server::{Config, Kind, Shared, State};

/// Default client id of a [`TestIssuer`] started without
/// [`TestIssuerBuilder::client`].
pub const DEFAULT_CLIENT_ID: &str = "test-client";
/// Default client secret. It contains characters that must be
/// form-urlencoded in HTTP Basic credentials (RFC 6749 §2.3.1) on purpose.
pub const DEFAULT_CLIENT_SECRET: &str = "p@ss:w/rd+ &=%";

/// A running test issuer. Dropping it stops the server and closes all of its
/// connections (including ones held by [`Fault::Hang`]).
pub struct TestIssuer {
    shared: Running<Shared>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer_url", &self.issuer_url())
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Starts an issuer with the default configuration (see
    /// [`TestIssuerBuilder`]).
    ///
    /// # Panics
    ///
    /// Panics if `127.0.0.1:0` cannot be bound.
    pub fn start() -> TestIssuer {
        TestIssuer::builder().start()
    }

    /// Returns a builder to configure the issuer before starting it.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::default()
    }

    /// The issuer identifier: `http://127.0.0.1:PORT` followed by the
    /// configured [issuer path](TestIssuerBuilder::issuer_path), without a
    /// trailing slash.
    pub fn issuer_url(&self) -> String {
        format!("{}{}", self.base_url(), self.shared.config.issuer_path)
    }

    /// The token endpoint: [`issuer_url`](Self::issuer_url) + `/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer_url())
    }

    /// The revocation endpoint: [`issuer_url`](Self::issuer_url) + `/revoke`
    /// (served only when [revocation](TestIssuerBuilder::revocation) is
    /// enabled).
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/revoke", self.issuer_url())
    }

    /// The socket address the issuer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`, without any issuer path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The id of the first configured client.
    pub fn client_id(&self) -> String {
        self.shared.config.clients[0].0.clone()
    }

    /// The secret of the first configured client.
    pub fn client_secret(&self) -> String {
        self.shared.config.clients[0].1.clone()
    }

    /// Queues a fault for the token endpoint: each token-endpoint request
    /// takes the oldest queued fault (one per request) when it arrives and is
    /// answered according to it instead of normally.
    pub fn push_fault(&self, fault: Fault) {
        self.state().token_faults.push_back(fault);
    }

    /// Queues a fault for discovery-document requests (both well-known
    /// locations), like [`push_fault`](Self::push_fault).
    pub fn push_discovery_fault(&self, fault: Fault) {
        self.state().discovery_faults.push_back(fault);
    }

    /// Sets the `expires_in` value of tokens issued from now on.
    pub fn set_lifetime(&self, secs: i64) {
        self.state().lifetime = secs;
    }

    /// Every request received so far, in order of arrival (including
    /// malformed and faulted ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded(|_| true)
    }

    /// The requests to the token endpoint.
    pub fn token_requests(&self) -> Vec<RecordedRequest> {
        self.recorded(|k| k == Kind::Token)
    }

    /// The requests to the revocation endpoint.
    pub fn revocation_requests(&self) -> Vec<RecordedRequest> {
        self.recorded(|k| k == Kind::Revocation)
    }

    /// The requests to either well-known discovery location (whether or not
    /// that location is served in the configured [`DiscoveryMode`]).
    pub fn discovery_requests(&self) -> Vec<RecordedRequest> {
        self.recorded(Kind::is_discovery)
    }

    /// Answers every token exchange from now on with this
    /// `issued_token_type` (`None`: the type asked for), to script a
    /// mismatch.
    pub fn set_issued_token_type(&self, issued: Option<&str>) {
        self.state().issued_token_type = issued.map(str::to_owned);
    }

    /// Forgets all recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// The access tokens issued so far, in order.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().issued.clone()
    }

    fn recorded(&self, keep: impl Fn(Kind) -> bool) -> Vec<RecordedRequest> {
        self.state()
            .requests
            .iter()
            .filter(|(k, _)| keep(*k))
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }
}

/// Format of issued access tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// Unique opaque strings such as `tk-1-0123456789abcdef`.
    #[default]
    Opaque,
    /// JWTs `b64url(header).b64url(payload).b64url(signature)` whose payload
    /// holds `iss`, `sub`, `client_id`, `aud` (the requested resources, if
    /// any), `iat`, `exp`, `jti` and `scope` (if any). The signature is not
    /// verifiable (the JWKS is empty).
    Jwt,
}

/// Which discovery documents are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// Only `{issuer}/.well-known/openid-configuration`.
    Oidc,
    /// Only `{base}/.well-known/oauth-authorization-server{issuer_path}`
    /// (RFC 8414 §3).
    Rfc8414,
    /// Both locations.
    #[default]
    Both,
    /// Neither location (404).
    None,
}

/// How a client authenticated a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` form parameters (`client_secret_post`).
    Post,
    /// `client_id` and `client_secret` members of a JSON body.
    Json,
    /// A `client_assertion` signed HS256 with the client secret (`client_secret_jwt`).
    ClientSecretJwt,
    /// A `client_assertion` signed with a registered key (`private_key_jwt`).
    PrivateKeyJwt,
}

/// A misbehaviour to apply to one request instead of answering it normally
/// (see [`TestIssuer::push_fault`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer exactly this status, headers and body (`Content-Length` and
    /// `Connection: close` are added unless present in `headers`).
    Status {
        /// HTTP status code.
        status: u16,
        /// Response body.
        body: String,
        /// Response headers.
        headers: Vec<(String, String)>,
    },
    /// Wait this long before sending anything, then answer normally.
    Delay(Duration),
    /// Answer normally, but write the body one byte per `interval`.
    Dribble {
        /// Pause before each body byte.
        interval: Duration,
    },
    /// `200` with a JSON-looking body (`{"access_token":"aaaa…"}`) of this many
    /// bytes, with `Content-Length`.
    Oversized(usize),
    /// Like [`Fault::Oversized`] but with `Transfer-Encoding: chunked` and no
    /// `Content-Length`.
    OversizedChunked(usize),
    /// Write the status line, headers and half of the normal body, then close
    /// the connection.
    CloseMidResponse,
    /// Read the request, then close the connection without answering.
    CloseImmediately,
    /// Read the request and never answer; the connection is held open until
    /// the issuer is dropped.
    Hang,
    /// `307 Temporary Redirect` with `Location` set to this URL.
    Redirect(String),
    /// `200` with `Content-Type: application/json` and this raw body.
    Malformed(String),
}

impl Fault {
    /// `status` with `Content-Type: application/json` and `body`.
    pub fn status(status: u16, body: impl Into<String>) -> Fault {
        Fault::Status {
            status,
            body: body.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
        }
    }

    /// `status` with a `Retry-After` header (e.g. `503` and `"1"`) and an
    /// empty body.
    pub fn retry_after(status: u16, retry_after: impl Into<String>) -> Fault {
        Fault::Status {
            status,
            body: String::new(),
            headers: vec![("Retry-After".into(), retry_after.into())],
        }
    }

    /// `status` with an RFC 6749 §5.2 error body
    /// `{"error": code, "error_description": description}`.
    pub fn oauth_error(status: u16, code: &str, description: &str) -> Fault {
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut fault = Fault::status(status, body.to_string());
        if let Fault::Status { headers, .. } = &mut fault {
            headers.push(("Cache-Control".into(), "no-store".into()));
        }
        fault
    }
}

/// A request as received by the issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Request method (empty if the request line was unparseable).
    pub method: String,
    /// Request target: path and query.
    pub path: String,
    /// Headers in order of arrival, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Raw (de-chunked) body.
    pub body: Vec<u8>,
    /// Decoded body parameters: the pairs of a form body, or for a JSON
    /// object body its members (strings as-is, array elements as repeated
    /// pairs, other scalars as their JSON text).
    pub form: Vec<(String, String)>,
    /// Client id from HTTP Basic credentials (decoded per RFC 6749 §2.3.1)
    /// or from the body.
    pub client_id: Option<String>,
    /// Client secret from HTTP Basic credentials or from the body.
    pub client_secret: Option<String>,
    /// How the client sent its credentials (`Basic` wins when decodable
    /// Basic credentials are present).
    pub auth_method: Option<AuthMethod>,
    /// The `grant_type` body parameter.
    pub grant_type: Option<String>,
}

impl RecordedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    /// The first body parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params(name).into_iter().next()
    }

    /// All body parameters named `name`, in order.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Configures and starts a [`TestIssuer`]. Every method returns the builder.
#[derive(Clone, Debug)]
pub struct TestIssuerBuilder {
    clients: Vec<(String, String)>,
    lifetime: i64,
    omit_expires_in: bool,
    expires_in_as_string: bool,
    token_format: TokenFormat,
    issuer_path: String,
    discovery: DiscoveryMode,
    advertise_issuer: Option<String>,
    revocation: bool,
    auth_methods: Vec<String>,
    scopes: Vec<String>,
    issue_refresh_tokens: bool,
    token_type: String,
    jwks: Vec<(String, serde_json::Value)>,
    accept_endpoint_audience: bool,
    public_clients: Vec<String>,
}

impl Default for TestIssuerBuilder {
    fn default() -> Self {
        TestIssuerBuilder {
            clients: Vec::new(),
            lifetime: 3600,
            omit_expires_in: false,
            expires_in_as_string: false,
            token_format: TokenFormat::Opaque,
            issuer_path: String::new(),
            discovery: DiscoveryMode::Both,
            advertise_issuer: None,
            revocation: true,
            auth_methods: vec!["client_secret_basic".into(), "client_secret_post".into()],
            scopes: Vec::new(),
            issue_refresh_tokens: false,
            token_type: "Bearer".into(),
            jwks: Vec::new(),
            accept_endpoint_audience: false,
            public_clients: Vec::new(),
        }
    }
}

impl TestIssuerBuilder {
    /// Adds a registered client. Repeatable; the first one is returned by
    /// [`TestIssuer::client_id`]. Without any call, one client
    /// [`DEFAULT_CLIENT_ID`] / [`DEFAULT_CLIENT_SECRET`] is registered.
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients.push((id.into(), secret.into()));
        self
    }

    /// The `expires_in` value sent (default 3600).
    pub fn lifetime(mut self, secs: i64) -> Self {
        self.lifetime = secs;
        self
    }

    /// Send no `expires_in` member at all.
    pub fn omit_expires_in(mut self, omit: bool) -> Self {
        self.omit_expires_in = omit;
        self
    }

    /// Send `expires_in` as a JSON string (`"3600"`), a quirk of some
    /// providers.
    pub fn expires_in_as_string(mut self, as_string: bool) -> Self {
        self.expires_in_as_string = as_string;
        self
    }

    /// Format of issued access tokens (default [`TokenFormat::Opaque`]).
    pub fn token_format(mut self, format: TokenFormat) -> Self {
        self.token_format = format;
        self
    }

    /// Gives the issuer identifier a path component, e.g. `/tenant/a`. A
    /// missing leading slash is added and trailing slashes are removed.
    pub fn issuer_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        let trimmed = path.trim_matches('/');
        self.issuer_path = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Which discovery documents are served (default [`DiscoveryMode::Both`]).
    pub fn discovery(mut self, mode: DiscoveryMode) -> Self {
        self.discovery = mode;
        self
    }

    /// Advertise this `issuer` value in discovery documents instead of the
    /// real one (to test issuer-mismatch detection).
    pub fn advertise_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.advertise_issuer = Some(issuer.into());
        self
    }

    /// Advertise `revocation_endpoint` and serve `POST {issuer}/revoke`
    /// (default `true`).
    pub fn revocation(mut self, enabled: bool) -> Self {
        self.revocation = enabled;
        self
    }

    /// `token_endpoint_auth_methods_supported` (default
    /// `["client_secret_basic", "client_secret_post"]`). Also enforced: HTTP
    /// Basic needs `client_secret_basic`, body credentials (form or JSON)
    /// need `client_secret_post`.
    pub fn auth_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.auth_methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Allowed scopes, advertised as `scopes_supported`. Empty (the default)
    /// accepts any scope; otherwise an unknown scope is answered with `400
    /// invalid_scope`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Include a `refresh_token` in token responses and accept
    /// `grant_type=refresh_token` (default `false`). Refresh tokens are
    /// single-use and rotated.
    pub fn issue_refresh_tokens(mut self, enabled: bool) -> Self {
        self.issue_refresh_tokens = enabled;
        self
    }

    /// Registers a public JWK for `private_key_jwt` of `client_id`
    /// (repeatable). Client assertions (RFC 7523) are verified whenever a
    /// request carries one: the signature (HS256 over the client secret for
    /// `client_secret_jwt`), `iss` = `sub` = the client, `aud` = the issuer
    /// identifier, `exp` in the future, and a `jti` never seen before (a
    /// replay is `401 invalid_client`). The method must be listed in
    /// [`TestIssuerBuilder::auth_methods`].
    pub fn client_jwk(mut self, client_id: impl Into<String>, jwk: serde_json::Value) -> Self {
        self.jwks.push((client_id.into(), jwk));
        self
    }

    /// Also accept the token endpoint URL as a client assertion's `aud`
    /// (default: only the issuer identifier).
    pub fn accept_token_endpoint_audience(mut self, accept: bool) -> Self {
        self.accept_endpoint_audience = accept;
        self
    }

    /// Lets `client_id` use the token exchange and JWT bearer grants
    /// without authenticating (repeatable): a public security token
    /// service. The client credentials grant still needs authentication.
    pub fn public_client(mut self, client_id: impl Into<String>) -> Self {
        self.public_clients.push(client_id.into());
        self
    }

    /// The `token_type` value sent (default `"Bearer"`).
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound or its thread cannot be
    /// spawned.
    pub fn start(self) -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of listener");
        let mut clients = self.clients;
        if clients.is_empty() {
            clients.push((DEFAULT_CLIENT_ID.into(), DEFAULT_CLIENT_SECRET.into()));
        }
        let config = Config {
            clients,
            omit_expires_in: self.omit_expires_in,
            expires_in_as_string: self.expires_in_as_string,
            token_format: self.token_format,
            issuer_path: self.issuer_path,
            discovery: self.discovery,
            advertise_issuer: self.advertise_issuer,
            revocation: self.revocation,
            auth_methods: self.auth_methods,
            scopes: self.scopes,
            issue_refresh_tokens: self.issue_refresh_tokens,
            token_type: self.token_type,
            jwks: self.jwks,
            accept_endpoint_audience: self.accept_endpoint_audience,
            public_clients: self.public_clients,
        };
        let shared = Shared::new(addr, config, self.lifetime);
        TestIssuer {
            shared: Running::start(listener, shared, "test-issuer", server::handle_connection),
        }
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not take
/// the issuer down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
