//! Validated client configuration.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use url::Url;

use crate::assertion::{token_identity, AssertionRole, AssertionSource};
use crate::endpoint::{check_endpoint, without_userinfo};
use crate::error::ConfigError;
use crate::grant::{is_uri, Grant, GrantKind};
use crate::jwt_key::JwtKey;
use crate::policy::RetryPolicy;
use crate::secret::Secret;

/// How the client authenticates to the token endpoint.
///
/// The secret-based methods are cheap to copy; the others hold a key or an
/// assertion source behind an `Arc`, so cloning is cheap too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`), RFC 6749 §2.3.1: the id and the
    /// secret are each `application/x-www-form-urlencoded` (a space written as
    /// `%20`, never `+`, so servers that only percent-decode read it right),
    /// joined by `:` and base64-encoded. The default, and what RFC 6749 says
    /// servers must support.
    #[default]
    Basic,
    /// HTTP Basic with the raw `id:secret` base64-encoded, not form-encoded
    /// first: for servers that never form-decode (a known interop quirk). Use
    /// only when a provider rejects [`ClientAuth::Basic`] for secrets with
    /// reserved characters. The client id may not contain `:`.
    BasicUnencoded,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
    /// A JSON body with `grant_type`, `client_id`, `client_secret`, `scope`
    /// and a `resource` array, for APIs that require JSON instead of a form.
    Json,
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a JWT
    /// signed with this key, built fresh for every attempt: `iss` = `sub` =
    /// client id, `aud` = the issuer identifier (see
    /// [`ConfigBuilder::assertion_audience_token_endpoint`]), a unique `jti`,
    /// `iat`/`exp` from `now` ([`ConfigBuilder::assertion_lifetime`], default
    /// 60 s). The client secret may be empty.
    PrivateKeyJwt(JwtKey),
    /// `client_secret_jwt`: the same assertion, signed HS256 with the client
    /// secret, which itself is never sent. The secret must have at least
    /// [`ConfigBuilder::MIN_HMAC_SECRET_BYTES`] bytes (RFC 7518 §3.2).
    ClientSecretJwt,
    /// A client assertion made elsewhere (workload identity, SPIFFE): see
    /// [`AssertionSource`]. The client secret may be empty.
    Assertion(AssertionSource),
    /// `tls_client_auth` (RFC 8705 §2.1): the HTTP client presents a
    /// certificate issued by a CA the provider trusts; only `client_id` goes in
    /// the body. Configure the certificate on the adapter's transport (a
    /// `reqwest::Client` with an `Identity`, a `ureq::Agent` with a client
    /// certificate). Discovery's `mtls_endpoint_aliases` are used when present.
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): as [`ClientAuth::TlsClientAuth`]
    /// with a self-signed certificate registered with the provider.
    SelfSignedTlsClientAuth,
    /// No client authentication (`none`, RFC 8414; a public client, RFC 6749
    /// §2.1): only `client_id` goes in the body. For a security token
    /// service that takes a token exchange or JWT bearer grant from anyone
    /// holding the subject token; the client credentials grant refuses it
    /// ([`ConfigError::UnauthenticatedClientCredentials`]). Never negotiated.
    None,
}

impl ClientAuth {
    /// The RFC 8414 / OpenID Connect name of the method (`Json` has none and
    /// reports `client_secret_post`; an [`AssertionSource`] reports `private_key_jwt`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuth::Basic | ClientAuth::BasicUnencoded => "client_secret_basic",
            ClientAuth::Post | ClientAuth::Json => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) | ClientAuth::Assertion(_) => "private_key_jwt",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            ClientAuth::None => "none",
        }
    }

    /// Whether the client secret is sent or used (the Basic, Post, Json and
    /// `client_secret_jwt` methods).
    pub fn uses_secret(&self) -> bool {
        matches!(
            self,
            ClientAuth::Basic
                | ClientAuth::BasicUnencoded
                | ClientAuth::Post
                | ClientAuth::Json
                | ClientAuth::ClientSecretJwt
        )
    }

    /// Whether the method authenticates with the TLS client certificate (RFC 8705).
    pub fn is_mutual_tls(&self) -> bool {
        matches!(self, ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth)
    }
}

/// The `aud` of the client assertions this client builds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The issuer identifier: the configured (and discovered) issuer, or the
    /// one set with [`ConfigBuilder::assertion_audience`]. With a token
    /// endpoint configured directly and no issuer known, the token endpoint
    /// URL is the only identifier there is, and is used. The default: the
    /// 2025 audience-injection findings (CVE-2025-27370/27371) moved the
    /// OpenID specifications to the issuer, and draft-ietf-oauth-rfc7523bis
    /// makes it the only valid `aud`.
    #[default]
    Issuer,
    /// The token endpoint URL, for providers that still demand it.
    TokenEndpoint,
}

/// Which discovery location is tried first when the other answers 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DiscoveryOrder {
    /// `{issuer}/.well-known/openid-configuration` first, then RFC 8414. The
    /// default: the major providers are OpenID Connect providers and some serve
    /// only this location.
    #[default]
    OpenIdFirst,
    /// `/.well-known/oauth-authorization-server{path}` (RFC 8414) first.
    Rfc8414First,
    /// Only OpenID Connect Discovery.
    OpenIdOnly,
    /// Only RFC 8414.
    Rfc8414Only,
}

// Where the token endpoint comes from; the machine names it through `config`.
pub(crate) use crate::endpoint::{Endpoint, Issuer, ResourceServer};

/// A validated configuration, cheap to clone (one `Arc`).
///
/// Built with [`Config::builder`]; see [`ConfigBuilder`] for every setting and
/// its default.
///
/// ```
/// use client_credentials::{ClientAuth, Config};
///
/// let config = Config::builder("my-client", "my-secret")
///     .token_endpoint("https://auth.example.com/oauth2/token")
///     .scope("api:read")
///     .scope("api:write")
///     .auth(ClientAuth::Post)
///     .build()?;
/// assert_eq!(config.scope().as_deref(), Some("api:read api:write"));
/// // Secrets never print.
/// assert!(!format!("{config:?}").contains("my-secret"));
/// # Ok::<(), client_credentials::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    inner: Arc<Inner>,
}

/// What [`TokenParams`](crate::TokenParams) may change, beside the rest
/// (shared): the keys of one client each keep their own `Inner` and share
/// one `Shared`, so a key costs its own values, not a copy of every setting.
#[derive(Clone)]
struct Inner {
    shared: Arc<Shared>,
    // Boxed: a client with many keys keeps one `Inner` per key, and these
    // never grow once built.
    scopes: Box<[String]>,
    resources: Box<[String]>,
    audience: Option<Box<str>>,
    params: Box<[(String, String)]>,
}

/// Settings reach `Shared`'s fields as `inner.field`.
impl std::ops::Deref for Inner {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// Every setting but the ones [`TokenParams`](crate::TokenParams) change.
struct Shared {
    client_id: String,
    client_secret: Secret,
    endpoint: Endpoint,
    revocation_endpoint: Option<Url>,
    auth: Option<ClientAuth>,
    refresh_margin: Duration,
    clock_skew: Duration,
    default_lifetime: Duration,
    retry: RetryPolicy,
    max_body_size: usize,
    allow_insecure_http: bool,
    token_types: Vec<String>,
    jitter_seed: Option<u64>,
    discovery_ttl: Duration,
    discovery_order: DiscoveryOrder,
    use_refresh_tokens: bool,
    client_assertion_key: Option<JwtKey>,
    assertion_audience: AssertionAudience,
    assertion_issuer: Option<String>,
    assertion_lifetime: Duration,
    assertion_typ: bool,
    dpop: Option<JwtKey>,
    mutual_tls: bool,
    allowed_authorization_servers: Vec<String>,
    grant: Grant,
    /// Who the grant's subject and actor tokens last read speak for (see
    /// [`Config::fingerprint`]), shared by every clone of this configuration.
    seen_tokens: Arc<Mutex<SeenTokens>>,
}

/// The identities of the subject and actor tokens last read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SeenTokens {
    subject: Option<[u8; 32]>,
    actor: Option<[u8; 32]>,
}

impl Config {
    /// Starts a configuration for a confidential client.
    pub fn builder(client_id: impl Into<String>, client_secret: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder {
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            token_endpoint: None,
            issuer: None,
            resource_server: None,
            revocation_endpoint: None,
            auth: None,
            scopes: Vec::new(),
            resources: Vec::new(),
            audience: None,
            params: Vec::new(),
            refresh_margin: ConfigBuilder::DEFAULT_REFRESH_MARGIN,
            clock_skew: Duration::ZERO,
            default_lifetime: ConfigBuilder::DEFAULT_LIFETIME,
            retry: RetryPolicy::default(),
            max_body_size: ConfigBuilder::DEFAULT_MAX_BODY_SIZE,
            allow_insecure_http: false,
            token_types: Vec::new(),
            jitter_seed: None,
            discovery_ttl: ConfigBuilder::DEFAULT_DISCOVERY_TTL,
            discovery_order: DiscoveryOrder::default(),
            use_refresh_tokens: true,
            client_assertion_key: None,
            assertion_audience: AssertionAudience::Issuer,
            assertion_issuer: None,
            assertion_lifetime: ConfigBuilder::DEFAULT_ASSERTION_LIFETIME,
            assertion_typ: false,
            dpop: None,
            mutual_tls: false,
            allowed_authorization_servers: Vec::new(),
            grant: Grant::client_credentials(),
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The client secret.
    pub fn client_secret(&self) -> &Secret {
        &self.inner.client_secret
    }

    /// The token endpoint, when configured directly (not discovered).
    pub fn token_endpoint(&self) -> Option<&Url> {
        match &self.inner.endpoint {
            Endpoint::Token(url) => Some(url),
            Endpoint::Issuer(_) | Endpoint::ResourceServer(_) => None,
        }
    }

    /// The issuer, when the token endpoint is discovered from a configured
    /// issuer (not for [`Config::resource_server`], whose issuer is learned).
    pub fn issuer(&self) -> Option<&str> {
        match &self.inner.endpoint {
            Endpoint::Issuer(issuer) => Some(issuer.as_str()),
            Endpoint::Token(_) | Endpoint::ResourceServer(_) => None,
        }
    }

    /// The protected resource whose RFC 9728 metadata names the issuer, when
    /// configured with [`ConfigBuilder::resource_server`].
    pub fn resource_server(&self) -> Option<&str> {
        match &self.inner.endpoint {
            Endpoint::ResourceServer(resource) => Some(resource.as_str()),
            Endpoint::Token(_) | Endpoint::Issuer(_) => None,
        }
    }

    /// The authorization servers (issuer identifiers) allowed besides the
    /// one the resource's metadata named first, set with
    /// [`ConfigBuilder::allow_authorization_server`].
    pub fn allowed_authorization_servers(&self) -> &[String] {
        &self.inner.allowed_authorization_servers
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The configured revocation endpoint (a discovered one takes its place when present).
    pub fn revocation_endpoint(&self) -> Option<&Url> {
        self.inner.revocation_endpoint.as_ref()
    }

    /// The authentication method chosen by the user, if any (otherwise it is
    /// negotiated from discovery metadata, falling back to [`ClientAuth::Basic`]).
    pub fn auth(&self) -> Option<ClientAuth> {
        self.inner.auth.clone()
    }

    /// The key offered for `private_key_jwt` when the method is negotiated
    /// ([`ConfigBuilder::client_assertion_key`]).
    pub fn client_assertion_key(&self) -> Option<&JwtKey> {
        self.inner.client_assertion_key.as_ref()
    }

    /// The `aud` rule of built client assertions.
    pub fn assertion_audience(&self) -> &AssertionAudience {
        &self.inner.assertion_audience
    }

    /// The issuer identifier set with [`ConfigBuilder::assertion_audience`], if any.
    pub fn assertion_issuer(&self) -> Option<&str> {
        self.inner.assertion_issuer.as_deref()
    }

    /// How long a built client assertion is valid (`exp - iat`).
    pub fn assertion_lifetime(&self) -> Duration {
        self.inner.assertion_lifetime
    }

    /// Whether built client assertions carry `typ: client-authentication+jwt`.
    pub fn assertion_typ(&self) -> bool {
        self.inner.assertion_typ
    }

    /// The file an [`AssertionSource::file`] reads, for the adapter to read
    /// and hand to the core.
    pub fn assertion_file(&self) -> Option<&std::path::Path> {
        match &self.inner.auth {
            Some(ClientAuth::Assertion(source)) => source.path(),
            _ => None,
        }
    }

    /// The grant tokens are asked for with ([`ConfigBuilder::grant`]).
    pub fn grant(&self) -> &Grant {
        &self.inner.grant
    }

    /// The source of the token in `role`, if this configuration has one:
    /// the [`ClientAuth::Assertion`] source, the grant's subject (a token
    /// exchange's subject token or a JWT bearer grant's assertion), or the
    /// exchange's actor.
    pub fn assertion_source(&self, role: AssertionRole) -> Option<&AssertionSource> {
        match role {
            AssertionRole::ClientAssertion => match &self.inner.auth {
                Some(ClientAuth::Assertion(source)) => Some(source),
                _ => None,
            },
            AssertionRole::Subject => self.inner.grant.subject(),
            AssertionRole::Actor => self.inner.grant.actor(),
        }
    }

    /// Records who the subject or actor `token` about to be sent speaks
    /// for, so that the [fingerprint](Config::fingerprint) covers it.
    pub(crate) fn observe_token(&self, role: AssertionRole, token: &str) {
        let identity = Some(token_identity(token));
        let mut seen = self.inner.seen_tokens.lock().unwrap_or_else(PoisonError::into_inner);
        match role {
            AssertionRole::Subject => seen.subject = identity,
            AssertionRole::Actor => seen.actor = identity,
            AssertionRole::ClientAssertion => {}
        }
    }

    /// The assertions made elsewhere that requests carry, each with the role
    /// it is kept under: what the driver has re-read before a request (the
    /// client assertion, then the grant's subject and actor).
    pub(crate) fn assertion_sources(&self) -> impl Iterator<Item = (AssertionRole, &AssertionSource)> {
        AssertionRole::ALL
            .into_iter()
            .filter_map(|role| Some((role, self.assertion_source(role)?)))
    }

    /// The DPoP key (RFC 9449), when tokens are to be sender-constrained.
    pub fn dpop_key(&self) -> Option<&JwtKey> {
        self.inner.dpop.as_ref()
    }

    /// Whether the HTTP client presents a TLS client certificate (RFC 8705):
    /// set by [`ConfigBuilder::mutual_tls`] or an mTLS [`ClientAuth`].
    pub fn uses_mutual_tls(&self) -> bool {
        self.inner.mutual_tls
    }

    /// The requested scopes, deduplicated, in the order first given.
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// The `scope` parameter: the scopes joined by single spaces, or `None`.
    pub fn scope(&self) -> Option<String> {
        if self.inner.scopes.is_empty() {
            None
        } else {
            Some(self.inner.scopes.join(" "))
        }
    }

    /// The `scope` a token request for the configured grant sends: the
    /// configuration's scopes, then a token exchange's, deduplicated.
    pub(crate) fn requested_scope(&self) -> Option<String> {
        let exchange = self.inner.grant.as_token_exchange().map_or(&[][..], |e| e.scopes());
        let mut scopes: Vec<&str> = self.inner.scopes.iter().map(String::as_str).collect();
        for scope in exchange.iter().flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        (!scopes.is_empty()).then(|| scopes.join(" "))
    }

    /// The RFC 8707 resource indicators.
    pub fn resources(&self) -> &[String] {
        &self.inner.resources
    }

    /// The `audience` parameter, if any.
    pub fn audience(&self) -> Option<&str> {
        self.inner.audience.as_deref()
    }

    /// Extra parameters sent with every token request.
    pub fn params(&self) -> &[(String, String)] {
        &self.inner.params
    }

    /// How long before expiry a token is refreshed (at most half its lifetime).
    pub fn refresh_margin(&self) -> Duration {
        self.inner.refresh_margin
    }

    /// How much earlier than the server says a token is treated as expired.
    pub fn clock_skew(&self) -> Duration {
        self.inner.clock_skew
    }

    /// Lifetime assumed when a response has no `expires_in` and the token carries no readable `exp`.
    pub fn default_lifetime(&self) -> Duration {
        self.inner.default_lifetime
    }

    /// The retry settings.
    pub fn retry(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The largest response body accepted, in bytes.
    pub fn max_body_size(&self) -> usize {
        self.inner.max_body_size
    }

    /// Whether plain `http:` is allowed to non-loopback hosts.
    pub fn allows_insecure_http(&self) -> bool {
        self.inner.allow_insecure_http
    }

    /// Token types accepted besides `Bearer` (lowercase).
    pub fn accepted_token_types(&self) -> &[String] {
        &self.inner.token_types
    }

    /// The explicit jitter seed, if one was set.
    pub fn jitter_seed(&self) -> Option<u64> {
        self.inner.jitter_seed
    }

    /// How long discovered metadata is reused before it is fetched again.
    pub fn discovery_ttl(&self) -> Duration {
        self.inner.discovery_ttl
    }

    /// Which discovery location is tried first.
    pub fn discovery_order(&self) -> DiscoveryOrder {
        self.inner.discovery_order
    }

    /// Whether a `refresh_token` in a response is used for the next refresh.
    pub fn uses_refresh_tokens(&self) -> bool {
        self.inner.use_refresh_tokens
    }

    /// A stable identity of what a token from this configuration is good for:
    /// the cache key of every token store. Lowercase hex SHA-256 over
    ///
    /// - the token endpoint, or the issuer or protected resource it is
    ///   discovered from;
    /// - the client id;
    /// - the authentication method, with what identifies the credential
    ///   without revealing it: the RFC 7638 thumbprint of the public key for
    ///   `private_key_jwt` (and of the [`ConfigBuilder::client_assertion_key`]
    ///   offered when the method is negotiated), the `client_assertion_type`
    ///   of an [`AssertionSource`]; and whether the TLS client certificate is
    ///   presented (RFC 8705 §3: a token may be bound to it);
    /// - the scopes (a set: sorted, deduplicated), the resources (in order),
    ///   the audience;
    /// - every [`ConfigBuilder::param`], name and value, in the order given
    ///   (a provider may issue another token for another `organization` or
    ///   `tenant`; the order is kept because a server may read the first of
    ///   two values with one name);
    /// - the DPoP key's thumbprint, when tokens are DPoP-bound (RFC 9449 §6:
    ///   a bound token is useless with another key);
    /// - the [grant](ConfigBuilder::grant): its type; for a token exchange the
    ///   subject and actor (where each is read from, its token type, and who
    ///   the token last read speaks for: the `iss` and `sub` of a JWT, read
    ///   without verifying, else a SHA-256 of the token), the requested
    ///   token type, and the exchange's audiences, resources and scopes; for
    ///   the JWT bearer grant the assertion's source and who it speaks for.
    ///   Until a subject is first read, its identity is "not read": the
    ///   driver reads subject and actor files before it loads the store, so
    ///   a token stored for one workload is never served to another that
    ///   reads the same path, while a rotated token for the same subject
    ///   keeps the key.
    ///
    /// Token stores keep it with a token and ignore a token saved under another
    /// fingerprint, so a token fetched for one client, issuer, scope set or
    /// parameter value is never served to another. The client secret is not
    /// part of it (rotating the secret keeps cached tokens valid, and the
    /// fingerprint reveals nothing about it); neither are timing, retry or
    /// discovery settings, nor how the client assertion is built (its `aud`,
    /// `typ`, lifetime): they change how a token is fetched, not which one.
    ///
    /// The encoding is versioned: a release that adds an input changes every
    /// fingerprint once, so tokens stored by an older version are fetched
    /// anew rather than served under a key that did not cover everything.
    ///
    /// ```
    /// use client_credentials::Config;
    ///
    /// let a = Config::builder("id", "secret").token_endpoint("https://a.example/token").build()?;
    /// let b = Config::builder("id", "other").token_endpoint("https://a.example/token").build()?;
    /// let c = Config::builder("id", "secret").token_endpoint("https://b.example/token").build()?;
    /// let d = Config::builder("id", "secret")
    ///     .token_endpoint("https://a.example/token")
    ///     .param("organization", "org-b")
    ///     .build()?;
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// assert_ne!(a.fingerprint(), c.fingerprint());
    /// assert_ne!(a.fingerprint(), d.fingerprint());
    /// assert_eq!(a.fingerprint().len(), 64);
    /// # Ok::<(), client_credentials::ConfigError>(())
    /// ```
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};

        // Every field is length-prefixed (and optional ones tagged), so no two
        // different configurations encode to the same bytes.
        fn field(hash: &mut Sha256, bytes: &[u8]) {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
        fn list<'a>(hash: &mut Sha256, items: impl ExactSizeIterator<Item = &'a str>) {
            hash.update((items.len() as u64).to_be_bytes());
            for item in items {
                field(hash, item.as_bytes());
            }
        }
        // A key is named by its public JWK (with `kid` and `alg`), member by
        // member in sorted order whatever order the map keeps; its RFC 7638
        // thumbprint alone would not tell apart two keys of a custom signer
        // whose JWK lacks the members a thumbprint covers.
        fn key(hash: &mut Sha256, key: &JwtKey) {
            field(hash, key.thumbprint().as_bytes());
            let jwk = key.public_jwk();
            let mut members: Vec<(&String, String)> = match &jwk {
                serde_json::Value::Object(map) => map.iter().map(|(name, value)| (name, value.to_string())).collect(),
                _ => Vec::new(),
            };
            members.sort_unstable();
            hash.update((members.len() as u64).to_be_bytes());
            for (name, value) in members {
                field(hash, name.as_bytes());
                field(hash, value.as_bytes());
            }
        }

        let i = &self.inner;
        let mut hash = Sha256::new();
        field(&mut hash, b"client-credentials fingerprint v2");
        match &i.endpoint {
            Endpoint::Token(url) => {
                field(&mut hash, b"token_endpoint");
                field(&mut hash, url.as_str().as_bytes());
            }
            Endpoint::Issuer(issuer) => {
                field(&mut hash, b"issuer");
                field(&mut hash, issuer.as_str().as_bytes());
            }
            // The issuer is learned from the resource: the resource names it.
            Endpoint::ResourceServer(resource) => {
                field(&mut hash, b"resource_server");
                field(&mut hash, resource.as_str().as_bytes());
            }
        }
        field(&mut hash, i.client_id.as_bytes());
        let mut scopes: Vec<&str> = i.scopes.iter().map(String::as_str).collect();
        scopes.sort_unstable();
        scopes.dedup();
        list(&mut hash, scopes.into_iter());
        list(&mut hash, i.resources.iter().map(String::as_str));
        match &i.audience {
            Some(audience) => {
                field(&mut hash, b"audience");
                field(&mut hash, audience.as_bytes());
            }
            None => field(&mut hash, b"no audience"),
        }
        let auth: &[u8] = match &i.auth {
            None => b"negotiated",
            Some(ClientAuth::Basic) => b"client_secret_basic",
            Some(ClientAuth::BasicUnencoded) => b"client_secret_basic unencoded",
            Some(ClientAuth::Post) => b"client_secret_post",
            Some(ClientAuth::Json) => b"client_secret_post json",
            Some(ClientAuth::PrivateKeyJwt(_)) => b"private_key_jwt",
            Some(ClientAuth::ClientSecretJwt) => b"client_secret_jwt",
            Some(ClientAuth::Assertion(_)) => b"private_key_jwt external",
            Some(ClientAuth::TlsClientAuth) => b"tls_client_auth",
            Some(ClientAuth::SelfSignedTlsClientAuth) => b"self_signed_tls_client_auth",
            Some(ClientAuth::None) => b"none",
        };
        field(&mut hash, auth);
        match &i.auth {
            Some(ClientAuth::PrivateKeyJwt(signing)) => key(&mut hash, signing),
            Some(ClientAuth::Assertion(source)) => field(&mut hash, source.assertion_type().as_bytes()),
            // Negotiation may pick `private_key_jwt` with the offered key.
            None => match &i.client_assertion_key {
                Some(offered) => {
                    field(&mut hash, b"client_assertion_key");
                    key(&mut hash, offered);
                }
                None => field(&mut hash, b"no client_assertion_key"),
            },
            Some(_) => {}
        }
        field(&mut hash, if i.mutual_tls { b"mutual_tls" } else { b"no mutual_tls" });
        hash.update((i.params.len() as u64).to_be_bytes());
        for (name, value) in &i.params {
            field(&mut hash, name.as_bytes());
            field(&mut hash, value.as_bytes());
        }
        // A DPoP-bound token is useless with another key (RFC 9449 §6), so
        // the key is part of what the token is for.
        match &i.dpop {
            Some(dpop) => {
                field(&mut hash, b"dpop");
                key(&mut hash, dpop);
            }
            None => field(&mut hash, b"no dpop"),
        }
        // The grant, and whom its subject and actor tokens speak for: a
        // token exchanged for one workload is never served to another.
        let seen = *i.seen_tokens.lock().unwrap_or_else(PoisonError::into_inner);
        fn source(hash: &mut Sha256, source: &AssertionSource, seen: Option<[u8; 32]>) {
            match source.path() {
                Some(path) => {
                    field(hash, b"file");
                    field(hash, path.to_string_lossy().as_bytes());
                }
                None => field(hash, b"callback"),
            }
            match seen {
                Some(identity) => {
                    field(hash, b"read");
                    field(hash, &identity);
                }
                None => field(hash, b"not read"),
            }
        }
        // The client credentials grant adds nothing, so the keys of tokens
        // stored before grants existed stay valid; the others add their
        // fields after every field above (length-prefixed), so no encoding
        // of one grant is that of another.
        match i.grant.kind() {
            GrantKind::ClientCredentials => {}
            GrantKind::JwtBearer(assertion) => {
                field(&mut hash, i.grant.grant_type().as_bytes());
                source(&mut hash, assertion, seen.subject);
            }
            GrantKind::TokenExchange(exchange) => {
                field(&mut hash, i.grant.grant_type().as_bytes());
                source(&mut hash, exchange.subject(), seen.subject);
                field(&mut hash, exchange.subject_token_type().as_bytes());
                match exchange.actor_source() {
                    Some((actor, actor_type)) => {
                        field(&mut hash, b"actor");
                        source(&mut hash, actor, seen.actor);
                        field(&mut hash, actor_type.as_bytes());
                    }
                    None => field(&mut hash, b"no actor"),
                }
                match exchange.requested_type() {
                    Some(requested) => {
                        field(&mut hash, b"requested_token_type");
                        field(&mut hash, requested.as_bytes());
                    }
                    None => field(&mut hash, b"no requested_token_type"),
                }
                list(&mut hash, exchange.audiences().iter().map(String::as_str));
                list(&mut hash, exchange.resources().iter().map(String::as_str));
                let mut scopes: Vec<&str> = exchange
                    .scopes()
                    .iter()
                    .flat_map(|s| s.split(' '))
                    .filter(|s| !s.is_empty())
                    .collect();
                scopes.sort_unstable();
                scopes.dedup();
                list(&mut hash, scopes.into_iter());
            }
        }

        let digest = hash.finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
        }
        hex
    }
}

impl Config {
    /// This configuration with what the token is for replaced: `scopes`,
    /// `resources` and `audience` replace the configured ones when given,
    /// `params` replace configured parameters of the same name (compared as
    /// [`ConfigBuilder::param`] compares reserved names) and add the others.
    /// Everything else (and so the [fingerprint](Config::fingerprint)'s
    /// other inputs) is shared. The inputs were checked by the caller.
    pub(crate) fn merged(
        &self,
        scopes: Option<Vec<String>>,
        resources: Option<Vec<String>>,
        audience: Option<String>,
        params: &[(String, String)],
    ) -> Config {
        let mut inner = Inner::clone(&self.inner);
        // Boxed slices: a client with many keys keeps one of these per key,
        // with no spare capacity (the checks that built them push one by one).
        if let Some(scopes) = scopes {
            inner.scopes = scopes.into_boxed_slice();
        }
        if let Some(resources) = resources {
            inner.resources = resources.into_boxed_slice();
        }
        if let Some(audience) = audience {
            inner.audience = Some(audience.into_boxed_str());
        }
        if !params.is_empty() {
            let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
            let kept = inner
                .params
                .iter()
                .filter(|(name, _)| !params.iter().any(|(given, _)| same(given, name)));
            inner.params = kept.chain(params).cloned().collect();
        }
        Config { inner: Arc::new(inner) }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Config");
        d.field("client_id", &i.client_id)
            .field("client_secret", &i.client_secret);
        match &i.endpoint {
            Endpoint::Token(url) => d.field("token_endpoint", &url.as_str()),
            Endpoint::Issuer(issuer) => d.field("issuer", &issuer.as_str()),
            Endpoint::ResourceServer(resource) => d.field("resource_server", &resource.as_str()),
        };
        d.field("auth", &i.auth)
            .field("scopes", &i.scopes)
            .field("resources", &i.resources)
            .field("audience", &i.audience)
            .field("params", &ParamNames(&i.params))
            .field("refresh_margin", &i.refresh_margin)
            .field("clock_skew", &i.clock_skew)
            .field("default_lifetime", &i.default_lifetime)
            .field("retry", &i.retry)
            .field("max_body_size", &i.max_body_size)
            .field("allow_insecure_http", &i.allow_insecure_http)
            .field("client_assertion_key", &i.client_assertion_key)
            .field("dpop", &i.dpop)
            .field("mutual_tls", &i.mutual_tls)
            .field("allowed_authorization_servers", &i.allowed_authorization_servers)
            .field("grant", &i.grant)
            .finish_non_exhaustive()
    }
}

/// Prints extra parameter names only: their values may be sensitive.
struct ParamNames<'a>(&'a [(String, String)]);

impl fmt::Debug for ParamNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, _)| k)).finish()
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] validates everything at once.
///
/// Defaults: [`ClientAuth::Basic`] (or negotiated from discovery), refresh
/// margin 300 s, clock skew 0, default lifetime 3600 s, 3 attempts per round
/// with back-off from 0.5 s doubling to at most 30 s, response bodies up to
/// 64 KiB, discovery metadata reused for 24 h, HTTPS required except to
/// loopback hosts.
///
/// Its `Debug` output, like [`Config`]'s, shows neither the secret nor
/// [`ConfigBuilder::param`] values, nor credentials written into a URL.
#[derive(Clone)]
#[must_use]
pub struct ConfigBuilder {
    client_id: String,
    client_secret: Secret,
    token_endpoint: Option<String>,
    issuer: Option<String>,
    resource_server: Option<String>,
    revocation_endpoint: Option<String>,
    auth: Option<ClientAuth>,
    scopes: Vec<String>,
    resources: Vec<String>,
    audience: Option<String>,
    params: Vec<(String, String)>,
    refresh_margin: Duration,
    clock_skew: Duration,
    default_lifetime: Duration,
    retry: RetryPolicy,
    max_body_size: usize,
    allow_insecure_http: bool,
    token_types: Vec<String>,
    jitter_seed: Option<u64>,
    discovery_ttl: Duration,
    discovery_order: DiscoveryOrder,
    use_refresh_tokens: bool,
    client_assertion_key: Option<JwtKey>,
    assertion_audience: AssertionAudience,
    assertion_issuer: Option<String>,
    assertion_lifetime: Duration,
    assertion_typ: bool,
    dpop: Option<JwtKey>,
    mutual_tls: bool,
    allowed_authorization_servers: Vec<String>,
    grant: Grant,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(without_userinfo);
        f.debug_struct("ConfigBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("token_endpoint", &url(&self.token_endpoint))
            .field("issuer", &url(&self.issuer))
            .field("revocation_endpoint", &url(&self.revocation_endpoint))
            .field("auth", &self.auth)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("audience", &self.audience)
            .field("params", &ParamNames(&self.params))
            .field("refresh_margin", &self.refresh_margin)
            .field("clock_skew", &self.clock_skew)
            .field("default_lifetime", &self.default_lifetime)
            .field("retry", &self.retry)
            .field("max_body_size", &self.max_body_size)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("token_types", &self.token_types)
            .field("jitter_seed", &self.jitter_seed)
            .field("discovery_ttl", &self.discovery_ttl)
            .field("discovery_order", &self.discovery_order)
            .field("use_refresh_tokens", &self.use_refresh_tokens)
            .field("allowed_authorization_servers", &self.allowed_authorization_servers)
            .field("grant", &self.grant)
            .finish()
    }
}

/// Parameters the client sets itself, or that change what a token is for
/// through a setting of their own, which [`ConfigBuilder::param`] may not
/// set: the grant and client authentication (RFC 6749 §4.4, §2.3, §6;
/// RFC 7521 §4.2), what the token is for (`scope`, RFC 8707 `resource`,
/// `audience`), and the grant parameters of token exchange (RFC 8693 §2.1)
/// and the JWT bearer grant (RFC 7523 §2.1), which no client credentials
/// request carries.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "scope",
    "resource",
    "audience",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "refresh_token",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "requested_token_type",
    "assertion",
];

/// Whether `name` is reserved. Form decoders compare names exactly, but a
/// server may trim or fold case, so a name that differs from a reserved one
/// only by ASCII case or surrounding whitespace is refused too: no provider
/// parameter is named `Scope` or ` scope`.
fn is_reserved_param(name: &str) -> bool {
    let name = name.trim();
    RESERVED_PARAMS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
}

impl ConfigBuilder {
    /// Default refresh margin: a token is refreshed 300 s before it expires.
    pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);
    /// Default lifetime of a token whose response says nothing about expiry.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
    /// Default cap on response bodies: 64 KiB.
    pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;
    /// Default reuse time of discovered metadata: 24 h.
    pub const DEFAULT_DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
    /// Default lifetime of a built client assertion: 60 s.
    pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
    /// The shortest client secret `client_secret_jwt` signs with: an HS256
    /// key needs at least 256 bits (RFC 7518 §3.2). A shorter secret is a
    /// [`ConfigError::HmacSecretTooShort`] when the method is chosen, and
    /// never negotiated from discovery.
    pub const MIN_HMAC_SECRET_BYTES: usize = 32;

    /// The token endpoint URL (RFC 6749 §3.2). Exclusive with [`ConfigBuilder::issuer`].
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// The issuer URL: the token endpoint is discovered from its OpenID Connect
    /// or RFC 8414 metadata. Exclusive with [`ConfigBuilder::token_endpoint`].
    pub fn issuer(mut self, url: impl Into<String>) -> Self {
        self.issuer = Some(url.into());
        self
    }

    /// The protected resource the tokens are for (RFC 9728): the client reads
    /// its metadata (`/.well-known/oauth-protected-resource` inserted before
    /// the path, or the `resource_metadata` URL of a 401 challenge on the
    /// resource's own origin, see
    /// [`TokenSource::follow_resource_metadata`](crate::TokenSource::follow_resource_metadata)),
    /// checks that the document's `resource` equals this URL exactly (for a
    /// challenge's document: the URL requested), takes the first
    /// authorization server it names (later: only that one or one in
    /// [`allow_authorization_server`](ConfigBuilder::allow_authorization_server)),
    /// discovers that issuer as
    /// [`ConfigBuilder::issuer`] does, and asks for tokens with `resource` set
    /// to this URL (RFC 8707; it is added to the [resources](ConfigBuilder::resource)).
    /// Same rules as issuer discovery: https (loopback aside), no redirects,
    /// exact matches. Exclusive with [`ConfigBuilder::token_endpoint`] and
    /// [`ConfigBuilder::issuer`].
    ///
    /// ```
    /// let config = client_credentials::Config::builder("my-client", "my-secret")
    ///     .resource_server("https://mcp.example.com/mcp")
    ///     .build()?;
    /// assert_eq!(config.resource_server(), Some("https://mcp.example.com/mcp"));
    /// assert_eq!(config.resources(), ["https://mcp.example.com/mcp"]);
    /// # Ok::<(), client_credentials::ConfigError>(())
    /// ```
    pub fn resource_server(mut self, url: impl Into<String>) -> Self {
        self.resource_server = Some(url.into());
        self
    }

    /// Allows `issuer` (repeatable) as an authorization server of the
    /// [`resource_server`](ConfigBuilder::resource_server), besides the one
    /// its metadata names at first discovery.
    ///
    /// The client's credentials (secret, assertions, DPoP-bound requests) go
    /// only to the token endpoint of a server the user chose. With
    /// `.resource_server(url)` that is the first authorization server its
    /// well-known metadata names when the client first reads it; after that
    /// the client follows the resource's metadata (a re-read after the
    /// discovery TTL, or a `401` challenge's `resource_metadata` on the
    /// resource's own origin) only to that server or to one allowed here:
    /// a document naming only other servers is refused with
    /// [`DiscoveryError::AuthorizationServerNotAllowed`](crate::DiscoveryError::AuthorizationServerNotAllowed),
    /// and nothing is sent to them. Issuer identifiers compare exactly
    /// (RFC 8414 §3.3). Only with `.resource_server(url)`: otherwise
    /// [`ConfigError::AuthorizationServerWithoutResourceServer`].
    ///
    /// ```
    /// let config = client_credentials::Config::builder("my-client", "my-secret")
    ///     .resource_server("https://mcp.example.com/mcp")
    ///     .allow_authorization_server("https://login.example.com/tenant-b")
    ///     .build()?;
    /// assert_eq!(config.allowed_authorization_servers(), ["https://login.example.com/tenant-b"]);
    /// # Ok::<(), client_credentials::ConfigError>(())
    /// ```
    pub fn allow_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.allowed_authorization_servers.push(issuer.into());
        self
    }

    /// An RFC 7009 revocation endpoint used by sign-out (a discovered
    /// `revocation_endpoint` is used when this is not set).
    pub fn revocation_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(url.into());
        self
    }

    /// How the client authenticates. Default: negotiated from discovery
    /// metadata, else [`ClientAuth::Basic`].
    pub fn auth(mut self, auth: ClientAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// How tokens are asked for: [`Grant::client_credentials`] (the
    /// default), [`Grant::token_exchange`] (RFC 8693) or
    /// [`Grant::jwt_bearer`] (RFC 7523 §2.1). Client authentication
    /// ([`ConfigBuilder::auth`]) is chosen independently. With another grant
    /// than client credentials, a `refresh_token` in a response is not used:
    /// every refresh is a new grant with the subject read afresh.
    ///
    /// `build()` checks the exchange's token types are URIs
    /// ([`ConfigError::InvalidTokenType`]), and its resources and scopes as
    /// [`ConfigBuilder::resource`] and [`ConfigBuilder::scope`] do.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }

    /// Adds a scope (repeatable; the scopes are space-joined and deduplicated).
    /// A value with spaces adds each of its words.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds an RFC 8707 resource indicator (repeatable): an absolute URI without fragment.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self
    }

    /// Sets the `audience` parameter some providers (Auth0, for one) require.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds an extra parameter to every token request (repeatable), such as
    /// a provider's `organization` or `tenant`. Names and values are part of
    /// the [fingerprint](Config::fingerprint), so stored tokens for another
    /// value are never served.
    ///
    /// [`ConfigBuilder::build`] refuses, with [`ConfigError::ReservedParameter`],
    /// a name the client sets itself or that has a setting of its own:
    /// `grant_type`, `scope` ([`ConfigBuilder::scope`]), `resource`
    /// ([`ConfigBuilder::resource`]), `audience` ([`ConfigBuilder::audience`]),
    /// `client_id`, `client_secret`, `client_assertion`,
    /// `client_assertion_type`, `refresh_token`, and the token exchange and
    /// JWT bearer grant parameters (`subject_token`, `subject_token_type`,
    /// `actor_token`, `actor_token_type`, `requested_token_type`,
    /// `assertion`). Names that differ from these only by ASCII case or
    /// surrounding whitespace are refused too, since some servers fold or
    /// trim them.
    ///
    /// ```
    /// use client_credentials::{Config, ConfigError};
    ///
    /// let builder = Config::builder("id", "secret").token_endpoint("https://auth.example/token");
    /// assert!(builder.clone().param("organization", "org-a").build().is_ok());
    /// let refused = builder.param("Scope", "admin").build();
    /// assert!(matches!(refused, Err(ConfigError::ReservedParameter { .. })));
    /// ```
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// How long before expiry a token is refreshed. Default 300 s. A token is
    /// refreshed at `expires_at - min(margin, lifetime / 2)`, so a short-lived
    /// token is not refreshed on every call.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Treat tokens as expiring this much earlier than the server says (for a
    /// clock that runs behind the resource server's), by at most half a
    /// token's lifetime. Default 0.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Lifetime assumed when a response has no `expires_in` and the access
    /// token is not a JWT with a readable `exp`. Default 3600 s.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// All retry settings at once.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Attempts per round, the first included. Default 3; 1 disables retries.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts;
        self
    }

    /// The first back-off and its cap. Defaults 0.5 s and 30 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry.initial_backoff = initial;
        self.retry.max_backoff = max;
        self
    }

    /// The largest response body accepted, in bytes. Default 64 KiB.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Allows plain `http:` endpoints on non-loopback hosts. Loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `::1`; not `*.localhost`, which a resolver
    /// or proxy may send elsewhere) never need this. Sends the client
    /// secret in clear text: for test networks only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Accepts a token type besides `Bearer` (compared case-insensitively).
    pub fn accept_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_types.push(token_type.into().to_ascii_lowercase());
        self
    }

    /// The longest `Retry-After` honoured (default 5 minutes). A server asking
    /// for longer is waited for this long; the event reports the cap.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.retry.max_retry_after = cap;
        self
    }

    /// The seed of the retry jitter. Adapters draw a random one when this is
    /// not set; set it for repeatable tests.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// How long discovered metadata is reused. Default 24 h.
    pub fn discovery_ttl(mut self, ttl: Duration) -> Self {
        self.discovery_ttl = ttl;
        self
    }

    /// Which discovery location is tried first. Default [`DiscoveryOrder::OpenIdFirst`].
    pub fn discovery_order(mut self, order: DiscoveryOrder) -> Self {
        self.discovery_order = order;
        self
    }

    /// Whether a `refresh_token` in a response is used for the next refresh
    /// (RFC 6749 §6). Default true; an `invalid_grant` answer falls back to the
    /// client credentials grant.
    pub fn use_refresh_tokens(mut self, enabled: bool) -> Self {
        self.use_refresh_tokens = enabled;
        self
    }

    /// Offers `private_key_jwt` with this key when the method is negotiated
    /// from discovery (no [`ConfigBuilder::auth`] given): it is chosen when the
    /// provider lists `private_key_jwt`, or when there is no discovery.
    pub fn client_assertion_key(mut self, key: JwtKey) -> Self {
        self.client_assertion_key = Some(key);
        self
    }

    /// Client assertions get the token endpoint URL as `aud` instead of the
    /// issuer identifier, for providers that still demand it. Not allowed
    /// with [`ConfigBuilder::assertion_typ`] (draft-ietf-oauth-rfc7523bis
    /// makes the issuer the only valid audience of a typed assertion).
    pub fn assertion_audience_token_endpoint(mut self) -> Self {
        self.assertion_audience = AssertionAudience::TokenEndpoint;
        self
    }

    /// The issuer identifier to use as the assertions' `aud` when the token
    /// endpoint is configured directly (with [`ConfigBuilder::issuer`] the
    /// issuer is known and this is not needed).
    pub fn assertion_audience(mut self, issuer: impl Into<String>) -> Self {
        self.assertion_issuer = Some(issuer.into());
        self
    }

    /// How long a built client assertion is valid (`exp - iat`). Default
    /// 60 s; at most 10 minutes.
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.assertion_lifetime = lifetime;
        self
    }

    /// Built client assertions carry the header `typ: client-authentication+jwt`
    /// (explicit typing, draft-ietf-oauth-rfc7523bis §4). Off by default: providers that check
    /// `typ` against the older RFC 7523 profile reject an unknown value, and no
    /// discovery member announces support yet, so turn it on where the
    /// provider accepts (or requires) it.
    ///
    /// A typed assertion always carries the issuer identifier as `aud`:
    /// with [`ConfigBuilder::token_endpoint`], name the issuer with
    /// [`ConfigBuilder::assertion_audience`], or `build()` fails with
    /// [`ConfigError::TypedAssertionWithoutIssuer`].
    pub fn assertion_typ(mut self, enabled: bool) -> Self {
        self.assertion_typ = enabled;
        self
    }

    /// Sender-constrains tokens with DPoP (RFC 9449): every token request
    /// carries a proof signed by `key`, a `use_dpop_nonce` answer is retried
    /// once with the server's nonce, and `token_type: DPoP` is accepted. Use
    /// [`crate::driver::Driver::dpop_proof`] (or the adapters' `authorize`)
    /// for the proofs of resource requests: a key of your own signs those
    /// outside the lock too ([`crate::DpopProof::Unsigned`]).
    pub fn dpop(mut self, key: JwtKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// The HTTP client presents a TLS client certificate (RFC 8705): the
    /// discovered `mtls_endpoint_aliases` are used, and `tls_client_auth` /
    /// `self_signed_tls_client_auth` may be negotiated. Implied by those
    /// [`ClientAuth`] methods.
    pub fn mutual_tls(mut self) -> Self {
        self.mutual_tls = true;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.client_id.is_empty() {
            return Err(ConfigError::EmptyClientId);
        }
        if self.client_id.chars().any(char::is_control) {
            return Err(ConfigError::ControlCharacter { field: "client_id" });
        }
        if self.client_secret.expose_secret().chars().any(char::is_control) {
            return Err(ConfigError::ControlCharacter { field: "client_secret" });
        }
        if self.auth == Some(ClientAuth::BasicUnencoded) && self.client_id.contains(':') {
            return Err(ConfigError::ColonInClientId);
        }
        let insecure = self.allow_insecure_http;
        let mut given_resources = self.resources;
        let endpoint = match (self.token_endpoint, self.issuer, self.resource_server) {
            (None, None, None) => return Err(ConfigError::MissingEndpoint),
            (Some(url), None, None) => Endpoint::Token(check_endpoint("token_endpoint", &url, insecure)?),
            (None, None, Some(resource)) => {
                check_endpoint("resource_server", &resource, insecure)?;
                let url = without_userinfo(&resource);
                let checked = ResourceServer::new(resource.clone(), insecure).map_err(|e| ConfigError::InvalidUrl {
                    field: "resource_server",
                    url,
                    reason: e.to_string(),
                })?;
                // RFC 8707: the token is asked for this resource.
                given_resources.insert(0, resource);
                Endpoint::ResourceServer(checked)
            }
            (None, Some(issuer), None) => {
                check_issuer("issuer", &issuer, insecure)?;
                let url = without_userinfo(&issuer);
                Endpoint::Issuer(Issuer::new(issuer, insecure).map_err(|e| ConfigError::InvalidUrl {
                    field: "issuer",
                    url,
                    reason: e.to_string(),
                })?)
            }
            _ => return Err(ConfigError::ConflictingEndpoints),
        };
        let mut allowed_authorization_servers: Vec<String> = Vec::new();
        for issuer in self.allowed_authorization_servers {
            if !matches!(endpoint, Endpoint::ResourceServer(_)) {
                return Err(ConfigError::AuthorizationServerWithoutResourceServer);
            }
            check_issuer("allow_authorization_server", &issuer, insecure)?;
            if !allowed_authorization_servers.contains(&issuer) {
                allowed_authorization_servers.push(issuer);
            }
        }
        let revocation_endpoint = self
            .revocation_endpoint
            .map(|url| check_endpoint("revocation_endpoint", &url, insecure))
            .transpose()?;

        if let Some(exchange) = self.grant.as_token_exchange() {
            let types = [
                ("subject_token_type", Some(exchange.subject_token_type())),
                ("actor_token_type", exchange.actor_source().map(|(_, t)| t)),
                ("requested_token_type", exchange.requested_type()),
            ];
            for (field, value) in types {
                if let Some(value) = value.filter(|v| !is_uri(v)) {
                    return Err(ConfigError::InvalidTokenType {
                        field,
                        value: value.to_owned(),
                    });
                }
            }
            // The exchange's own scopes and resources follow the same rules.
            checked_scopes(exchange.scopes())?;
            checked_resources(exchange.resources().to_vec())?;
        }
        if self.grant.is_client_credentials() && self.auth == Some(ClientAuth::None) {
            return Err(ConfigError::UnauthenticatedClientCredentials);
        }
        let scopes = checked_scopes(&self.scopes)?;
        let resources = checked_resources(given_resources)?;
        check_params(&self.params)?;

        if self.auth == Some(ClientAuth::ClientSecretJwt) {
            if self.client_secret.expose_secret().is_empty() {
                return Err(ConfigError::MissingSecret {
                    method: "client_secret_jwt",
                });
            }
            // RFC 7518 §3.2: an HS256 key shorter than the hash output is
            // brute-forced offline from a single assertion.
            if self.client_secret.expose_secret().len() < ConfigBuilder::MIN_HMAC_SECRET_BYTES {
                return Err(ConfigError::HmacSecretTooShort);
            }
        }
        if self.assertion_lifetime.is_zero() || self.assertion_lifetime > Duration::from_secs(600) {
            return Err(ConfigError::InvalidDuration {
                field: "assertion_lifetime",
                reason: "must be between 1 second and 10 minutes",
            });
        }
        if self.assertion_typ && self.assertion_audience == AssertionAudience::TokenEndpoint {
            return Err(ConfigError::TypedAssertionAudience);
        }
        // A typed assertion's `aud` is the issuer identifier and nothing else
        // (draft-ietf-oauth-rfc7523bis): with a token endpoint configured
        // directly, the issuer must be named, or no assertion could be typed.
        let builds_assertions = match &self.auth {
            Some(ClientAuth::PrivateKeyJwt(_) | ClientAuth::ClientSecretJwt) => true,
            None => self.client_assertion_key.is_some(),
            Some(_) => false,
        };
        if self.assertion_typ
            && builds_assertions
            && matches!(endpoint, Endpoint::Token(_))
            && self.assertion_issuer.is_none()
        {
            return Err(ConfigError::TypedAssertionWithoutIssuer);
        }
        let mutual_tls = self.mutual_tls || self.auth.as_ref().is_some_and(ClientAuth::is_mutual_tls);
        if self.default_lifetime.is_zero() {
            return Err(ConfigError::InvalidDuration {
                field: "default_lifetime",
                reason: "must be positive",
            });
        }
        validate_retry(&self.retry)?;
        if self.max_body_size < 1024 {
            return Err(ConfigError::BodyLimitTooSmall {
                bytes: self.max_body_size,
            });
        }

        Ok(Config {
            inner: Arc::new(Inner {
                scopes: scopes.into_boxed_slice(),
                resources: resources.into_boxed_slice(),
                audience: self.audience.map(String::into_boxed_str),
                params: self.params.into_boxed_slice(),
                shared: Arc::new(Shared {
                    client_id: self.client_id,
                    client_secret: self.client_secret,
                    endpoint,
                    revocation_endpoint,
                    auth: self.auth,
                    refresh_margin: self.refresh_margin,
                    clock_skew: self.clock_skew,
                    default_lifetime: self.default_lifetime,
                    retry: self.retry,
                    max_body_size: self.max_body_size,
                    allow_insecure_http: self.allow_insecure_http,
                    token_types: self.token_types,
                    jitter_seed: self.jitter_seed,
                    discovery_ttl: self.discovery_ttl,
                    discovery_order: self.discovery_order,
                    use_refresh_tokens: self.use_refresh_tokens,
                    client_assertion_key: self.client_assertion_key,
                    assertion_audience: self.assertion_audience,
                    assertion_issuer: self.assertion_issuer,
                    assertion_lifetime: self.assertion_lifetime,
                    assertion_typ: self.assertion_typ,
                    dpop: self.dpop,
                    mutual_tls,
                    allowed_authorization_servers,
                    grant: self.grant,
                    seen_tokens: Arc::default(),
                }),
            }),
        })
    }
}

/// The scopes as given (each value may hold several, space-separated),
/// checked against RFC 6749 §3.3 and deduplicated in order.
pub(crate) fn checked_scopes<S: AsRef<str>>(given_scopes: &[S]) -> Result<Vec<String>, ConfigError> {
    let mut scopes: Vec<String> = Vec::new();
    for given in given_scopes {
        let given = given.as_ref();
        if given.trim().is_empty() {
            return Err(ConfigError::InvalidScope {
                scope: given.to_owned(),
                reason: "a scope may not be empty".into(),
            });
        }
        for scope in given.split(' ').filter(|s| !s.is_empty()) {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if let Some(bad) = scope
                .chars()
                .find(|&c| !matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
            {
                return Err(ConfigError::InvalidScope {
                    scope: given.to_owned(),
                    reason: format!(
                        "{bad:?} is not allowed in a scope (RFC 6749 §3.3: printable ASCII except '\"' and '\\')"
                    ),
                });
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
    }
    Ok(scopes)
}

/// The RFC 8707 resource indicators, each an absolute URI without a
/// fragment, deduplicated in order.
pub(crate) fn checked_resources(given: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut resources: Vec<String> = Vec::new();
    for resource in given {
        let reason = match Url::parse(&resource) {
            Err(url::ParseError::RelativeUrlWithoutBase) => Some("it is not an absolute URI".to_owned()),
            Err(e) => Some(e.to_string()),
            Ok(_) if resource.contains('#') => Some("it has a fragment (RFC 8707 §2)".to_owned()),
            Ok(_) => None,
        };
        if let Some(reason) = reason {
            return Err(ConfigError::InvalidResource { resource, reason });
        }
        if !resources.contains(&resource) {
            resources.push(resource);
        }
    }
    Ok(resources)
}

/// Extra parameters have a name, and not one the client sets itself.
pub(crate) fn check_params(params: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, _) in params {
        if name.is_empty() {
            return Err(ConfigError::EmptyParameterName);
        }
        if is_reserved_param(name) {
            return Err(ConfigError::ReservedParameter { name: name.clone() });
        }
    }
    Ok(())
}

/// Checks an issuer identifier: a usable endpoint URL without a query
/// component (RFC 8414 §2).
fn check_issuer(field: &'static str, issuer: &str, insecure: bool) -> Result<(), ConfigError> {
    check_endpoint(field, issuer, insecure)?;
    if issuer.contains('?') {
        return Err(ConfigError::InvalidUrl {
            field,
            url: without_userinfo(issuer),
            reason: "an issuer has no query component (RFC 8414 §2)".into(),
        });
    }
    Ok(())
}

/// Whether the retry settings are consistent.
fn validate_retry(retry: &RetryPolicy) -> Result<(), ConfigError> {
    if retry.max_attempts == 0 {
        return Err(ConfigError::InvalidRetry {
            reason: "max_attempts must be at least 1",
        });
    }
    if retry.initial_backoff > retry.max_backoff {
        return Err(ConfigError::InvalidRetry {
            reason: "the initial back-off exceeds the maximum back-off",
        });
    }
    Ok(())
}
