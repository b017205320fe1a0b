//! The one error type, shared by the core and every adapter.

use std::fmt;

use http::StatusCode;

use crate::assertion::ClientAuthError;
use crate::config::ConfigError;
use crate::discovery::DiscoveryError;
use crate::id::RequestId;

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
            Error::InvalidResponse { .. } | Error::Config(_) | Error::ClientAuth(_) | Error::UnknownRequest { .. } => {
                false
            }
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
