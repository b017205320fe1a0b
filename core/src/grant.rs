//! The grant a token request uses: client credentials (RFC 6749 §4.4),
//! token exchange (RFC 8693), or the JWT bearer grant (RFC 7523 §2.1).

use std::fmt;

use crate::assertion::AssertionSource;

/// The token type URIs of RFC 8693 §3, for
/// [`TokenExchange::new`]'s subject, [`TokenExchange::actor`] and
/// [`TokenExchange::requested_token_type`].
pub mod token_type {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// A JWT (RFC 7519): a Kubernetes projected service-account token, a
    /// SPIFFE JWT-SVID, a JWT authorization grant for identity chaining.
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// An OpenID Connect ID token.
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// A base64url-encoded SAML 2.0 assertion.
    pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
    /// A base64url-encoded SAML 1.1 assertion.
    pub const SAML1: &str = "urn:ietf:params:oauth:token-type:saml1";
}

/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `grant_type` of the JWT bearer authorization grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How the client asks for its tokens; set with
/// [`ConfigBuilder::grant`](crate::ConfigBuilder::grant).
///
/// Client authentication ([`ClientAuth`](crate::ClientAuth)) is independent
/// of the grant: a token exchange may authenticate with a secret, a key, an
/// assertion, mutual TLS, or not at all ([`ClientAuth::None`](crate::ClientAuth::None),
/// for a public security token service). Everything else — the cache, the
/// refresh ahead of expiry, single flight, retries, stores, DPoP — works the
/// same for every grant.
///
/// ```
/// use client_credentials::{token_type, AssertionSource, ClientAuth, Config, Grant, TokenExchange};
///
/// // A Kubernetes projected service-account token exchanged at an STS.
/// let subject = AssertionSource::file("/var/run/secrets/tokens/sts-token");
/// let config = Config::builder("workload", "")
///     .token_endpoint("https://sts.example.com/v1/token")
///     .auth(ClientAuth::None)
///     .grant(Grant::token_exchange(
///         TokenExchange::new(subject, token_type::JWT).audience("https://api.example.com"),
///     ))
///     .build()?;
/// assert_eq!(config.grant().grant_type(), "urn:ietf:params:oauth:grant-type:token-exchange");
/// # Ok::<(), client_credentials::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Grant {
    kind: GrantKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum GrantKind {
    #[default]
    ClientCredentials,
    TokenExchange(TokenExchange),
    JwtBearer(AssertionSource),
}

impl Grant {
    /// The client credentials grant (RFC 6749 §4.4): the default.
    pub fn client_credentials() -> Grant {
        Grant {
            kind: GrantKind::ClientCredentials,
        }
    }

    /// Token exchange (RFC 8693): a subject token (and optionally an actor
    /// token) traded for a token from this authorization server.
    pub fn token_exchange(exchange: TokenExchange) -> Grant {
        Grant {
            kind: GrantKind::TokenExchange(exchange),
        }
    }

    /// The JWT bearer authorization grant (RFC 7523 §2.1): the JWT from
    /// `assertion` is sent as `assertion`. Its `exp` is checked before each
    /// request, as for a client assertion.
    pub fn jwt_bearer(assertion: AssertionSource) -> Grant {
        Grant {
            kind: GrantKind::JwtBearer(assertion),
        }
    }

    /// The `grant_type` sent.
    pub fn grant_type(&self) -> &'static str {
        match &self.kind {
            GrantKind::ClientCredentials => "client_credentials",
            GrantKind::TokenExchange(_) => TOKEN_EXCHANGE_GRANT_TYPE,
            GrantKind::JwtBearer(_) => JWT_BEARER_GRANT_TYPE,
        }
    }

    /// The token exchange's settings, for [`Grant::token_exchange`].
    pub fn as_token_exchange(&self) -> Option<&TokenExchange> {
        match &self.kind {
            GrantKind::TokenExchange(exchange) => Some(exchange),
            _ => None,
        }
    }

    /// The assertion's source, for [`Grant::jwt_bearer`].
    pub fn as_jwt_bearer(&self) -> Option<&AssertionSource> {
        match &self.kind {
            GrantKind::JwtBearer(source) => Some(source),
            _ => None,
        }
    }

    /// Whether this is the client credentials grant.
    pub fn is_client_credentials(&self) -> bool {
        matches!(self.kind, GrantKind::ClientCredentials)
    }

    /// The source of the grant's subject: the exchange's subject token, or
    /// the JWT bearer grant's assertion.
    pub(crate) fn subject(&self) -> Option<&AssertionSource> {
        match &self.kind {
            GrantKind::ClientCredentials => None,
            GrantKind::TokenExchange(exchange) => Some(&exchange.subject),
            GrantKind::JwtBearer(source) => Some(source),
        }
    }

    /// The source of the exchange's actor token.
    pub(crate) fn actor(&self) -> Option<&AssertionSource> {
        self.as_token_exchange()
            .and_then(|exchange| exchange.actor.as_ref())
            .map(|(source, _)| source)
    }

    pub(crate) fn kind(&self) -> &GrantKind {
        &self.kind
    }
}

/// The settings of a token exchange (RFC 8693 §2.1): the subject token, and
/// optionally an actor token, the token type wanted, and what it is for.
///
/// The subject and actor come from an [`AssertionSource`], as client
/// assertions do: a file the adapter re-reads whenever it changes (a
/// Kubernetes projected token, a SPIFFE JWT-SVID), or a callback — which may
/// return another client's token (identity chaining). A source's
/// `client_assertion_type` is not used here: the token types are given
/// with the source.
///
/// `audience`, `resource` and `scope` here are sent besides the ones set on
/// the [`ConfigBuilder`](crate::ConfigBuilder) (RFC 8693 allows several
/// `audience` and `resource` values).
///
/// ```
/// use client_credentials::{token_type, AssertionSource, TokenExchange};
///
/// let exchange = TokenExchange::new(AssertionSource::file("/run/token"), token_type::JWT)
///     .actor(AssertionSource::file("/run/actor"), token_type::JWT)
///     .requested_token_type(token_type::ACCESS_TOKEN)
///     .audience("https://api.example.com")
///     .scope("read");
/// assert_eq!(exchange.subject_token_type(), token_type::JWT);
/// assert_eq!(exchange.audiences(), ["https://api.example.com"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenExchange {
    subject: AssertionSource,
    subject_token_type: String,
    actor: Option<(AssertionSource, String)>,
    requested_token_type: Option<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    scopes: Vec<String>,
}

impl TokenExchange {
    /// Exchanges the token from `subject`, of type `subject_token_type` (a
    /// URI: one of [`token_type`]'s, or another the server knows).
    pub fn new(subject: AssertionSource, subject_token_type: impl Into<String>) -> TokenExchange {
        TokenExchange {
            subject,
            subject_token_type: subject_token_type.into(),
            actor: None,
            requested_token_type: None,
            audiences: Vec::new(),
            resources: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// Acts on behalf of the subject with the token from `actor`, of type
    /// `actor_token_type` (RFC 8693 §1.1, delegation).
    pub fn actor(mut self, actor: AssertionSource, actor_token_type: impl Into<String>) -> TokenExchange {
        self.actor = Some((actor, actor_token_type.into()));
        self
    }

    /// Asks for a token of this type (a URI). Without it the server picks,
    /// and only an access token (`Bearer`, or `DPoP` with
    /// [`ConfigBuilder::dpop`](crate::ConfigBuilder::dpop)) is accepted. Asking for another type — a JWT
    /// authorization grant for identity chaining — is what allows the
    /// server's `token_type` `N_A` (RFC 8693 §2.2.1: not an access token).
    /// A response's `issued_token_type`, when present, must be the type asked
    /// for.
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> TokenExchange {
        self.requested_token_type = Some(token_type.into());
        self
    }

    /// Adds an `audience` (repeatable): the logical name of the service the
    /// token is for.
    pub fn audience(mut self, audience: impl Into<String>) -> TokenExchange {
        self.audiences.push(audience.into());
        self
    }

    /// Adds a `resource` (repeatable): an absolute URI without fragment
    /// where the token will be used.
    pub fn resource(mut self, resource: impl Into<String>) -> TokenExchange {
        self.resources.push(resource.into());
        self
    }

    /// Adds a scope (repeatable; space-joined with the configuration's).
    pub fn scope(mut self, scope: impl Into<String>) -> TokenExchange {
        self.scopes.push(scope.into());
        self
    }

    /// Where the subject token comes from.
    pub fn subject(&self) -> &AssertionSource {
        &self.subject
    }

    /// The `subject_token_type`.
    pub fn subject_token_type(&self) -> &str {
        &self.subject_token_type
    }

    /// The actor's source and `actor_token_type`, if any.
    pub fn actor_source(&self) -> Option<(&AssertionSource, &str)> {
        self.actor.as_ref().map(|(source, kind)| (source, kind.as_str()))
    }

    /// The `requested_token_type`, if any.
    pub fn requested_type(&self) -> Option<&str> {
        self.requested_token_type.as_deref()
    }

    /// The audiences added.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The resources added.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The scopes added, as given.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the answer may be something other than an access token: a
    /// type other than an access token was asked for.
    pub(crate) fn allows_non_access_token(&self) -> bool {
        self.requested_token_type
            .as_deref()
            .is_some_and(|t| t != token_type::ACCESS_TOKEN)
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("subject", &self.subject)
            .field("subject_token_type", &self.subject_token_type)
            .field("actor", &self.actor)
            .field("requested_token_type", &self.requested_token_type)
            .field("audiences", &self.audiences)
            .field("resources", &self.resources)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Whether `value` is an absolute URI (`scheme:rest`, RFC 3986 §3.1), as
/// token type identifiers must be (RFC 8693 §3).
pub(crate) fn is_uri(value: &str) -> bool {
    match value.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}
