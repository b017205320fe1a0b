//! Why a command failed: one line for a person, and an exit code for a script.

use std::fmt;

use client_credentials::{Error, GrantError, OAuthErrorCode};

/// Success.
pub const OK: u8 = 0;
/// The output could not be written (stdout closed).
pub const OUTPUT: u8 = 1;
/// Usage or configuration error, including a key, client assertion, subject
/// token or grant assertion that cannot be used (clap's own usage errors exit
/// with 2 too).
pub const USAGE: u8 = 2;
/// The provider answered with an OAuth error (`invalid_client`, `invalid_scope`, …).
pub const OAUTH: u8 = 3;
/// Network, transport or server error (connect, timeout, 5xx, invalid response).
pub const TRANSPORT: u8 = 4;
/// Discovery failed (no document, issuer mismatch, invalid document).
pub const DISCOVERY: u8 = 5;

/// A failed command: printed as `error: {message}` on stderr, then the process
/// exits with `code`. The message never holds a secret or a token: it is built
/// from the core's errors, which redact both, and from our own text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// One line that says what went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A usage or configuration error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: USAGE,
            message: message.into(),
        }
    }
}

impl Failure {
    /// For network and server errors, names the request that failed last
    /// (`POST https://…/token`): a refused connection says nothing of where.
    pub fn after(mut self, last_request: Option<String>) -> Self {
        if let (TRANSPORT, Some(request)) = (self.code, last_request) {
            self.message = format!("{} (last request: {request})", self.message);
        }
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            code: exit_code(&error),
            message: one_line(&format!("{error}{}", hint(&error))),
        }
    }
}

impl From<client_credentials::ConfigError> for Failure {
    fn from(error: client_credentials::ConfigError) -> Self {
        Failure::usage(one_line(&error.to_string()))
    }
}

/// The exit code for a core error.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        // A key, an assertion or a DPoP setting that cannot be used: ours to fix.
        Error::Config(_) | Error::ClientAuth(_) => USAGE,
        // A token exchange's answer of another type than asked for: the
        // server's doing, like any other unusable response.
        Error::Grant(GrantError::IssuedTokenType { .. }) => TRANSPORT,
        // A subject, actor or grant assertion file that cannot be read or
        // used (missing, expired, not a JWT): ours to fix; nothing was sent.
        Error::Grant(_) => USAGE,
        // `temporarily_unavailable` and friends sent with a 5xx are server trouble.
        Error::OAuth { status, .. } if status.is_server_error() => TRANSPORT,
        Error::OAuth { .. } => OAUTH,
        Error::Discovery(_) => DISCOVERY,
        _ => TRANSPORT,
    }
}

/// What to check next, for the errors whose cause is usually on our side.
fn hint(error: &Error) -> &'static str {
    match error.oauth_code() {
        Some(OAuthErrorCode::InvalidClient) => " (check --client-id, the client secret and --auth)",
        Some(OAuthErrorCode::InvalidScope) => " (check --scope)",
        Some(OAuthErrorCode::InvalidTarget) => " (check --resource)",
        Some(OAuthErrorCode::InvalidGrant) => " (check --subject-token-file or --grant-assertion-file)",
        _ => "",
    }
}

/// Error output is one line: a provider's description could hold line breaks.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use client_credentials::{TransportError, TransportErrorKind};

    fn oauth(code: &str, status: u16) -> Error {
        Error::OAuth {
            code: OAuthErrorCode::from_wire(code),
            description: Some("no\nway".into()),
            uri: None,
            status: http::StatusCode::from_u16(status).unwrap(),
        }
    }

    #[test]
    fn each_kind_of_error_has_its_exit_code() {
        assert_eq!(exit_code(&oauth("invalid_client", 401)), OAUTH);
        assert_eq!(exit_code(&oauth("temporarily_unavailable", 503)), TRANSPORT);
        assert_eq!(
            exit_code(&Error::Transport(TransportError::new(
                TransportErrorKind::Connect,
                "refused"
            ))),
            TRANSPORT
        );
        assert_eq!(
            exit_code(&Error::InvalidResponse {
                reason: "not JSON".into()
            }),
            TRANSPORT
        );
        assert_eq!(
            exit_code(&Error::Discovery(
                client_credentials::DiscoveryError::MissingTokenEndpoint
            )),
            DISCOVERY
        );
        assert_eq!(
            exit_code(&Error::Config(client_credentials::ConfigError::EmptyClientId)),
            USAGE
        );
        assert_eq!(
            exit_code(&Error::Grant(GrantError::Unavailable {
                role: client_credentials::AssertionRole::Subject,
                source_name: "file /run/token".into(),
                reason: "not found".into(),
            })),
            USAGE
        );
        assert_eq!(
            exit_code(&Error::Grant(GrantError::IssuedTokenType {
                expected: "a".into(),
                issued: "b".into(),
            })),
            TRANSPORT
        );
    }

    #[test]
    fn messages_are_one_line_with_a_hint() {
        let failure = Failure::from(oauth("invalid_client", 401));
        assert!(!failure.message.contains('\n'));
        assert!(
            failure.message.starts_with("invalid_client: no way"),
            "{}",
            failure.message
        );
        assert!(failure.message.contains("--client-id"));
    }
}
