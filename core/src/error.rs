//! The one error type, shared by the core and every adapter, and the errors
//! it wraps: [`ConfigError`], [`DiscoveryError`], [`ClientAuthError`].
//!
//! They live together, below every module that returns them, so that no
//! module imports one that imports it back: this one names only leaves.

use std::fmt;

use http::StatusCode;

use crate::assertion::AssertionRole;
use crate::id::RequestId;
use crate::jws::{JwsAlgorithm, SignError};
use crate::redact::Credentials;
use crate::time::Timestamp;

/// Everything that can go wrong while getting a token.
///
/// Adapters return this same type (I/O failures as [`Error::Transport`]), so
/// [`Error::is_retryable`] and the messages are the same whichever adapter is
/// used. No variant ever contains the client secret or a token value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an RFC 6749 §5.2 error response.
    #[error("{code}{} (HTTP {} from the authorization server)", describe(.description), .status.as_u16())]
    OAuth {
        /// The `error` code, as on the wire.
        code: OAuthErrorCode,
        /// The `error_description`, if any (control characters removed, shortened).
        description: Option<String>,
        /// The `error_uri`, if any.
        uri: Option<String>,
        /// The HTTP status of the response.
        status: StatusCode,
    },
    /// A non-success status without an OAuth error body (an HTML error page, a
    /// gateway error, a redirect: redirects are never followed on the token endpoint).
    #[error("unexpected HTTP status {} from the server{}", .status.as_u16(), excerpt(.body_excerpt))]
    UnexpectedStatus {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body, at most 200 characters, with the client secret removed.
        body_excerpt: String,
    },
    /// A response that cannot be used: not JSON, truncated, no `access_token`,
    /// an unsupported token type, too large.
    #[error("invalid token response: {reason}")]
    InvalidResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// Discovery of the provider's metadata failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The HTTP exchange itself failed (connect, timeout, I/O).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No client assertion or DPoP proof could be made or used (an expired
    /// or unreadable assertion, an algorithm the provider does not list, a
    /// failed signer, a DPoP nonce loop). Nothing was sent.
    #[error(transparent)]
    ClientAuth(#[from] ClientAuthError),
    /// DPoP (RFC 9449) was required and not met: a token that is not
    /// DPoP-bound although [`ConfigBuilder::dpop`](crate::ConfigBuilder::dpop)
    /// is set, or metadata that requires DPoP-bound tokens without it.
    /// Nothing was cached or stored.
    #[error(transparent)]
    Dpop(#[from] DpopError),
    /// The grant could not be made or its answer does not match it (a token
    /// exchange's subject or actor token, a JWT bearer grant's assertion;
    /// an `issued_token_type` other than the one asked for). Nothing was
    /// sent, or nothing was cached.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The resource server rejected a token fetched in the current round (or
    /// while the provider was failing): fetching yet another at once would
    /// most likely be rejected too, so the round counts as failed and the
    /// next token is fetched after the back-off ([`TokenSource::retry_at`](crate::TokenSource::retry_at)).
    /// Check the token's audience, scopes and binding against what the
    /// resource expects.
    #[error("the resource server rejected a token fetched moments before; the next is fetched after the back-off (check the token's audience, scopes and binding)")]
    TokenRejected,
    /// A response or transport result was handed in for a request that is not
    /// the one in flight (stale, abandoned, or from before a sign-out). It was
    /// ignored and nothing changed.
    #[error("result for request {id} ignored: it is not the request in flight")]
    UnknownRequest {
        /// The id that was handed in.
        id: RequestId,
    },
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

fn excerpt(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Error {
    /// Whether trying the same request again later can succeed.
    ///
    /// Retryable: transport failures, HTTP 5xx, 429 and 408, and the OAuth codes
    /// `temporarily_unavailable` / `server_error`. Not retryable: OAuth 4xx errors
    /// (`invalid_client`, `invalid_scope`, …), invalid responses, configuration
    /// errors, and discovery documents that fail validation.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::OAuth { code, status, .. } => {
                retryable_status(*status)
                    || matches!(code, OAuthErrorCode::Other(c) if c == "temporarily_unavailable" || c == "server_error")
            }
            Error::UnexpectedStatus { status, .. } => retryable_status(*status),
            Error::Transport(_) => true,
            Error::Discovery(d) => d.is_retryable(),
            Error::InvalidResponse { .. }
            | Error::Config(_)
            | Error::ClientAuth(_)
            | Error::Dpop(_)
            | Error::Grant(_)
            | Error::TokenRejected
            | Error::UnknownRequest { .. } => false,
        }
    }

    /// The OAuth error code, when this is an [`Error::OAuth`].
    pub fn oauth_code(&self) -> Option<&OAuthErrorCode> {
        match self {
            Error::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of the response this error came from, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::OAuth { status, .. } | Error::UnexpectedStatus { status, .. } => Some(*status),
            Error::Discovery(DiscoveryError::UnexpectedStatus { status, .. }) => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidResponse { reason: reason.into() }
    }
}

pub(crate) fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
}

/// What is wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The client id is empty.
    #[error("the client id is empty")]
    EmptyClientId,
    /// A credential contains a control character (often a stray newline from a secret file).
    #[error("the {field} contains a control character (a trailing newline from a file?)")]
    ControlCharacter {
        /// `client_id` or `client_secret`.
        field: &'static str,
    },
    /// [`ClientAuth::BasicUnencoded`](crate::ClientAuth::BasicUnencoded) cannot carry a client id with `:`.
    #[error("the client id contains ':', which ClientAuth::BasicUnencoded cannot send; use ClientAuth::Basic")]
    ColonInClientId,
    /// Neither a token endpoint nor an issuer was given.
    #[error("no endpoint: set .token_endpoint(url) or .issuer(url) (or .resource_server(url) to find the issuer from the resource)")]
    MissingEndpoint,
    /// More than one of a token endpoint, an issuer and a resource server was given.
    #[error("more than one of .token_endpoint(..), .issuer(..) and .resource_server(..) is set; choose one")]
    ConflictingEndpoints,
    /// [`allow_authorization_server`](crate::ConfigBuilder::allow_authorization_server)
    /// was given without a resource server: only a client that learns its
    /// authorization server from the resource's metadata has a choice of servers.
    #[error(".allow_authorization_server(..) needs .resource_server(..); with .issuer(..) or .token_endpoint(..) the server is fixed")]
    AuthorizationServerWithoutResourceServer,
    /// A URL does not parse or is not usable.
    #[error("{field} {url:?} is not a usable URL: {reason}")]
    InvalidUrl {
        /// Which setting.
        field: &'static str,
        /// The value given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A URL is relative.
    #[error("{field} {url:?} is relative; give an absolute https:// URL")]
    RelativeUrl {
        /// Which setting.
        field: &'static str,
        /// The value given.
        url: String,
    },
    /// A URL has a fragment (RFC 6749 §3.2 forbids it for endpoints).
    #[error("{field} {url:?} has a fragment ('#…'), which endpoints may not have (RFC 6749 §3.2)")]
    UrlWithFragment {
        /// Which setting.
        field: &'static str,
        /// The value given.
        url: String,
    },
    /// An authorised HTTP client (a middleware, a layer, an agent) allows no
    /// origin: it would send every request without the token.
    #[error("the authorised HTTP client allows no origin, so no request would get the token; add .allow_origin(\"https://api.example.com\") (or .allow_any_origin()), or configure .resource_server(url) or .resource(uri)")]
    NoAllowedOrigin,
    /// An authorised HTTP client was given `.params_for(origin, params)` for
    /// an origin it does not allow: `params_for` picks which token an
    /// allowed origin gets, it never allows one by itself.
    #[error("params_for({origin:?}, ..) names an origin the authorised HTTP client does not allow, so it would never get that token; params_for allows nothing by itself: add .allow_origin({origin:?}) (or .allow_any_origin())")]
    OriginNotAllowed {
        /// The origin given to `params_for`, as `scheme://host:port`.
        origin: String,
    },
    /// Plain `http:` to a host that is not loopback.
    #[error("{field} {url:?} uses plain http to a non-loopback host, which would send the client secret in clear text; use https, or .allow_insecure_http() on a test network")]
    InsecureUrl {
        /// Which setting.
        field: &'static str,
        /// The value given.
        url: String,
    },
    /// A scope is empty or has characters RFC 6749 §3.3 forbids.
    #[error("invalid scope {scope:?}: {reason}")]
    InvalidScope {
        /// The value given.
        scope: String,
        /// Why.
        reason: String,
    },
    /// A resource indicator is not an absolute URI without fragment (RFC 8707 §2).
    #[error("invalid resource {resource:?}: {reason}")]
    InvalidResource {
        /// The value given.
        resource: String,
        /// Why.
        reason: String,
    },
    /// An extra parameter would override one the client sets.
    #[error("parameter {name:?} is set by the client itself and cannot be overridden with .param()")]
    ReservedParameter {
        /// The parameter name.
        name: String,
    },
    /// An extra parameter has an empty name.
    #[error("an extra parameter has an empty name")]
    EmptyParameterName,
    /// A duration setting is out of range.
    #[error("{field} {reason}")]
    InvalidDuration {
        /// Which setting.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The retry settings are inconsistent.
    #[error("invalid retry settings: {reason}")]
    InvalidRetry {
        /// Why.
        reason: &'static str,
    },
    /// A private key does not parse or does not fit the algorithm. The key is never quoted.
    #[error("the {alg} private key cannot be used: {reason}")]
    InvalidKey {
        /// The algorithm it was loaded for.
        alg: JwsAlgorithm,
        /// Why.
        reason: &'static str,
    },
    /// A method that needs the client secret was chosen with an empty one.
    #[error("{method} needs a client secret, and the one given is empty")]
    MissingSecret {
        /// The method.
        method: &'static str,
    },
    /// `.assertion_typ(true)` with `.assertion_audience_token_endpoint()`.
    #[error("typed client assertions (assertion_typ) must have the issuer as audience (draft-ietf-oauth-rfc7523bis); drop assertion_audience_token_endpoint()")]
    TypedAssertionAudience,
    /// `.assertion_typ(true)` with a token endpoint configured directly and
    /// no issuer identifier to put in `aud`.
    #[error("typed client assertions (assertion_typ) carry the issuer identifier as audience (draft-ietf-oauth-rfc7523bis), and none is known: configure .issuer(..), or .assertion_audience(issuer) beside .token_endpoint(..)")]
    TypedAssertionWithoutIssuer,
    /// `client_secret_jwt` with a client secret shorter than 32 bytes.
    #[error("client_secret_jwt signs with HS256, whose key must have at least 256 bits (RFC 7518 §3.2): use a client secret of 32 bytes or more, or another method")]
    HmacSecretTooShort,
    /// A token type identifier of a token exchange is not an absolute URI
    /// (RFC 8693 §3): use one of [`token_type`](crate::token_type)'s.
    #[error("the token exchange's {field} {value:?} is not a URI; use one of client_credentials::token_type's (urn:ietf:params:oauth:token-type:…)")]
    InvalidTokenType {
        /// `subject_token_type`, `actor_token_type` or `requested_token_type`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// [`ClientAuth::None`](crate::ClientAuth::None) with the client
    /// credentials grant, which only a confidential client may use (RFC 6749 §4.4).
    #[error("the client credentials grant needs client authentication (RFC 6749 §4.4); ClientAuth::None is for another grant (token exchange, JWT bearer) at a public endpoint")]
    UnauthenticatedClientCredentials,
    /// The body limit is too small for any real token response.
    #[error("max_body_size of {bytes} bytes is too small; use at least 1024")]
    BodyLimitTooSmall {
        /// The value given.
        bytes: usize,
    },
}

impl ConfigError {
    /// The same error with `credentials` cut out of the URL it quotes (for
    /// URLs that came from a server, which could echo anything).
    pub(crate) fn redacted(self, credentials: &Credentials) -> Self {
        let cut = |url: String| credentials.redact(&url);
        match self {
            ConfigError::InvalidUrl { field, url, reason } => ConfigError::InvalidUrl {
                field,
                url: cut(url),
                reason,
            },
            ConfigError::RelativeUrl { field, url } => ConfigError::RelativeUrl { field, url: cut(url) },
            ConfigError::UrlWithFragment { field, url } => ConfigError::UrlWithFragment { field, url: cut(url) },
            ConfigError::InsecureUrl { field, url } => ConfigError::InsecureUrl { field, url: cut(url) },
            other => other,
        }
    }
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer cannot be used to build a metadata URL.
    #[error("issuer {issuer:?} is not usable: {reason}")]
    InvalidIssuer {
        /// The issuer given.
        issuer: String,
        /// Why.
        reason: String,
    },
    /// No metadata document at the location(s) tried.
    #[error("no metadata document at {url} (HTTP 404); check the issuer URL")]
    NotFound {
        /// The last URL tried.
        url: String,
    },
    /// A status other than 200 or 404.
    #[error("discovery answered HTTP {}{}", .status.as_u16(), if .body_excerpt.is_empty() { String::new() } else { format!(": {}", .body_excerpt) })]
    UnexpectedStatus {
        /// The status.
        status: StatusCode,
        /// The start of the body.
        body_excerpt: String,
    },
    /// The document is not a usable JSON object.
    #[error("invalid metadata document: {reason}")]
    InvalidDocument {
        /// Why.
        reason: String,
    },
    /// The document's `issuer` is not the configured issuer (OpenID Connect
    /// Discovery §4.3, RFC 8414 §3.3): it is not used, and no request goes to its endpoints.
    #[error("metadata issuer {found:?} does not match the configured issuer {expected:?}; the document was rejected")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's issuer.
        found: String,
    },
    /// The document has no `token_endpoint`.
    #[error("the metadata document has no token_endpoint")]
    MissingTokenEndpoint,
    /// An endpoint in the document is not acceptable (not https, relative, …).
    #[error("metadata {0}")]
    InvalidEndpoint(ConfigError),
    /// A resource identifier cannot be used to build its metadata URL (RFC 9728 §3.1).
    #[error("resource {resource:?} is not usable: {reason}")]
    InvalidResource {
        /// The resource identifier given.
        resource: String,
        /// Why.
        reason: String,
    },
    /// The protected resource metadata's `resource` is not the one expected
    /// (RFC 9728 §3.3): the configured resource for its well-known metadata,
    /// the URL of the request for a document a 401 named. The document was
    /// rejected, and its authorization servers are not contacted.
    #[error("resource metadata names resource {found:?}, not the expected {expected:?}; the document was rejected")]
    ResourceMismatch {
        /// The resource identifier expected: the configured one, or the URL
        /// requested when a 401's `resource_metadata` named the document.
        expected: String,
        /// The document's `resource`.
        found: String,
    },
    /// The protected resource metadata names no usable authorization server
    /// (none listed, or none https with loopback aside).
    #[error("the resource metadata names no usable authorization server (authorization_servers)")]
    NoAuthorizationServer,
    /// The protected resource metadata names only authorization servers the
    /// client may not use: neither the one the resource's metadata named at
    /// first discovery nor one allowed with
    /// [`allow_authorization_server`](crate::ConfigBuilder::allow_authorization_server).
    /// The document was rejected and nothing was sent to them; if they are
    /// legitimate, allow them in the configuration.
    #[error("the resource metadata names authorization server(s) {named:?}, none of which is the one first discovered or allowed with .allow_authorization_server(..); the document was rejected and nothing was sent to them")]
    AuthorizationServerNotAllowed {
        /// The servers the document named (the first few).
        named: Vec<String>,
    },
}

impl DiscoveryError {
    /// Whether fetching again later can succeed (5xx, 429, 408).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DiscoveryError::UnexpectedStatus { status, .. } if retryable_status(*status))
    }
}

/// Why a client assertion or a DPoP proof could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// The provider's metadata lists signing algorithms, and not this key's.
    #[error("the provider does not accept {alg} for {purpose} (it lists {}); use a key of a listed algorithm", .supported.join(", "))]
    UnsupportedAlgorithm {
        /// `client assertions` or `DPoP proofs`.
        purpose: &'static str,
        /// The key's algorithm.
        alg: JwsAlgorithm,
        /// What the provider lists.
        supported: Vec<String>,
    },
    /// The signer failed.
    #[error(transparent)]
    Signing(#[from] SignError),
    /// An assertion made elsewhere could not be had (unreadable file, a
    /// callback's error, nothing provided yet).
    #[error("no client assertion available: {reason}")]
    AssertionUnavailable {
        /// Why (the file's read error, the callback's error).
        reason: String,
    },
    /// An assertion made elsewhere has expired: nothing was sent. Whatever
    /// writes it (the kubelet, the SPIFFE agent) has not renewed it.
    #[error("the client assertion expired at {expired_at:?} (unix seconds {}); it was not sent", .expired_at.as_unix_millis() / 1000)]
    AssertionExpired {
        /// Its `exp`.
        expired_at: Timestamp,
    },
    /// An assertion made elsewhere is not a JWT whose claims can be read.
    #[error("the client assertion is not a usable JWT: {reason}")]
    InvalidAssertion {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token endpoint asked for a new DPoP nonce twice in a row (RFC 9449 §8).
    #[error(
        "the token endpoint asked for a new DPoP nonce again after a retry with one (use_dpop_nonce twice in a row)"
    )]
    DpopNonceLoop,
}

/// Why a token exchange or JWT bearer grant could not be made, or its
/// answer was refused. The source is named (`file <path>` or `callback`);
/// the token itself never is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The token could not be had (an unreadable file, a callback's error,
    /// a file not read yet): nothing was sent, never an empty token.
    #[error("the {role} from {source_name} is not available: {reason}")]
    Unavailable {
        /// Which token.
        role: AssertionRole,
        /// `file <path>` or `callback`.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The token is a JWT whose `exp` has passed: whatever writes it has
    /// not renewed it. Nothing was sent.
    #[error("the {role} from {source_name} expired at unix seconds {}; it was not sent", .expired_at.as_unix_millis() / 1000)]
    Expired {
        /// Which token.
        role: AssertionRole,
        /// `file <path>` or `callback`.
        source_name: String,
        /// Its `exp`.
        expired_at: Timestamp,
    },
    /// The token cannot be sent: empty, or (for the JWT bearer grant's
    /// assertion) not a JWT.
    #[error("the {role} from {source_name} is not usable: {reason}")]
    Invalid {
        /// Which token.
        role: AssertionRole,
        /// `file <path>` or `callback`.
        source_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server issued another type of token than the one asked for
    /// (RFC 8693 §2.2.1 `issued_token_type`). Nothing was cached.
    #[error("the token exchange asked for {expected} and the server issued {issued}; the token was not used")]
    IssuedTokenType {
        /// What was asked for (or, when nothing was, an access token or JWT).
        expected: String,
        /// The response's `issued_token_type`.
        issued: String,
    },
}

/// How DPoP (RFC 9449) was required and not met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// With [`ConfigBuilder::dpop`](crate::ConfigBuilder::dpop), the token
    /// endpoint answered with a token that is not DPoP-bound (RFC 9449 §5):
    /// sent as `DPoP` it would be refused, and as a bearer token it would
    /// lose the binding the client asked for. It was not used.
    #[error(
        "the token endpoint issued a token of type {token_type:?}, not a DPoP-bound one (RFC 9449 §5); it was not used"
    )]
    UnboundToken {
        /// The response's `token_type` (shortened, control characters removed).
        token_type: String,
    },
    /// The metadata says DPoP-bound tokens are required
    /// (`dpop_bound_access_tokens_required`, RFC 9728 §2), and no DPoP key
    /// is configured: set one with [`ConfigBuilder::dpop`](crate::ConfigBuilder::dpop).
    #[error(
        "the {metadata} metadata requires DPoP-bound tokens (dpop_bound_access_tokens_required); configure .dpop(key)"
    )]
    Required {
        /// Which metadata: `protected resource`.
        metadata: &'static str,
    },
}

/// The `error` code of an RFC 6749 §5.2 error response (plus RFC 8707's
/// `invalid_target`). `Display` prints it as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`: unknown client, wrong secret or unsupported authentication method.
    InvalidClient,
    /// `invalid_grant`: e.g. an expired or revoked refresh token.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `invalid_target` (RFC 8707): a requested resource is unknown or not allowed.
    InvalidTarget,
    /// Any other code, as sent.
    Other(String),
}

impl OAuthErrorCode {
    /// Reads a code as sent by a server.
    pub fn from_wire(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an HTTP exchange failed, as reported by the adapter that performed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be established (DNS, refused, TLS handshake).
    Connect,
    /// The request or the response did not complete in time.
    Timeout,
    /// The connection broke while sending or receiving.
    Io,
    /// Anything else.
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "could not connect",
            Self::Timeout => "timed out",
            Self::Io => "connection failed",
            Self::Other => "transport failed",
        })
    }
}

/// A failed HTTP exchange: a [`TransportErrorKind`] plus a message from the
/// HTTP client (which must not contain secrets; adapters pass the client's
/// error text, which never includes request bodies or headers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}{}", excerpt(.message))]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
}

impl TransportError {
    /// A transport error with a message.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The HTTP client's description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<TransportErrorKind> for TransportError {
    fn from(kind: TransportErrorKind) -> Self {
        TransportError::new(kind, "")
    }
}
