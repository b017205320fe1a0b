//! What one token of a client is for, when a client serves several: the
//! per-call scopes, resources, audience and extra parameters.

use std::fmt;

use crate::config::{check_params, checked_resources, checked_scopes, Config};
use crate::error::ConfigError;

/// What a token is for, per call: one client, many tokens (a scope set per
/// API, an RFC 8707 resource or an `audience` per API, a `tenant` per
/// customer), each cached, refreshed and stored under its own key.
///
/// The client's [`Config`] gives the defaults; a [`TokenParams`] changes
/// them (see [`Config::with_params`]):
///
/// - [`scope`](TokenParams::scope)s **replace** the configured scopes when
///   at least one is given (a token for `api-b.read` should not also carry
///   the default scopes of API A);
/// - [`resource`](TokenParams::resource)s **replace** the configured
///   resources when at least one is given;
/// - an [`audience`](TokenParams::audience) **replaces** the configured one;
/// - each [`param`](TokenParams::param) **replaces** a configured parameter
///   of the same name, or is **added**.
///
/// The rules are the config builder's: scopes are RFC 6749 §3.3 tokens (a
/// value with spaces adds each of its words), resources absolute URIs
/// without a fragment, and a parameter name the client sets itself
/// (`grant_type`, `scope`, `client_id`, …; see
/// [`ConfigBuilder::param`](crate::ConfigBuilder::param)) is refused. A
/// builder method cannot fail in the middle of a chain, so the checks run
/// when the parameters are used: [`Config::with_params`] returns the
/// [`ConfigError`], and the adapters' `token_for` return it as
/// [`Error::Config`](crate::Error::Config).
///
/// Two `TokenParams` name the same cached token when they are equal as
/// written (the same scopes, resources and parameters in the same order,
/// the same audience, whatever order the builder methods were called in);
/// an empty one names the client's default token. `Debug` shows parameter
/// names, never their values.
///
/// Looking one up is cheap however many keys a client has: each
/// `TokenParams` keeps a canonical encoding of its values and a 64-bit
/// hash of it, computed by the builder methods, so [`Hash`] writes one
/// `u64` and [`Eq`] compares the hashes, then one byte string. The hash is
/// deterministic (the core holds no random state): a map keyed by
/// `TokenParams` whose keys come from untrusted input should mix it with a
/// secret of its own, as the adapters' key maps do.
///
/// ```
/// use client_credentials::{Config, ConfigError, TokenParams};
///
/// let config = Config::builder("id", "secret")
///     .token_endpoint("https://auth.example/token")
///     .scope("api-a.read")
///     .param("tenant", "default")
///     .build()?;
/// let for_b = TokenParams::new()
///     .scope("api-b.read")
///     .audience("https://api-b.example")
///     .param("tenant", "t-42");
/// let config_b = config.with_params(&for_b)?;
/// assert_eq!(config_b.scope().as_deref(), Some("api-b.read"));
/// assert_eq!(config_b.audience(), Some("https://api-b.example"));
/// assert_eq!(config_b.params(), [("tenant".to_owned(), "t-42".to_owned())]);
/// assert_ne!(config_b.fingerprint(), config.fingerprint());
///
/// let refused = config.with_params(&TokenParams::new().param("client_id", "other"));
/// assert!(matches!(refused, Err(ConfigError::ReservedParameter { .. })));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct TokenParams {
    scopes: Vec<String>,
    resources: Vec<String>,
    audience: Option<String>,
    params: Vec<(String, String)>,
    /// Every field, length-prefixed in a fixed order: equal encodings are
    /// equal params.
    encoded: Vec<u8>,
    /// The FNV-1a hash of `encoded`.
    hash: u64,
}

impl PartialEq for TokenParams {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.encoded == other.encoded
    }
}

impl Eq for TokenParams {}

impl std::hash::Hash for TokenParams {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl TokenParams {
    /// No changes: the client's default token.
    pub fn new() -> TokenParams {
        TokenParams::default()
    }

    /// Adds a scope (repeatable); the scopes given replace the configured ones.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self.encode();
        self
    }

    /// Adds an RFC 8707 resource indicator (repeatable); the resources given
    /// replace the configured ones.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self.encode();
        self
    }

    /// Sets the `audience` parameter, replacing the configured one.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self.encode();
        self
    }

    /// Sets an extra token request parameter (repeatable), replacing a
    /// configured one of the same name. Reserved names are refused when the
    /// parameters are used (see the [type docs](TokenParams)).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self.encode();
        self
    }

    /// Recomputes the canonical encoding and its hash after a change.
    fn encode(&mut self) {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        let mut out = std::mem::take(&mut self.encoded);
        out.clear();
        out.extend_from_slice(&(self.scopes.len() as u64).to_le_bytes());
        for scope in &self.scopes {
            field(&mut out, scope.as_bytes());
        }
        out.extend_from_slice(&(self.resources.len() as u64).to_le_bytes());
        for resource in &self.resources {
            field(&mut out, resource.as_bytes());
        }
        match &self.audience {
            Some(audience) => {
                out.push(1);
                field(&mut out, audience.as_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        for (name, value) in &self.params {
            field(&mut out, name.as_bytes());
            field(&mut out, value.as_bytes());
        }
        // FNV-1a, 64 bits: deterministic and short; see the type docs on
        // mixing it with a secret for untrusted keys.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in &out {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.encoded = out;
        self.hash = hash;
    }

    /// A 64-bit hash of these params, equal for equal params: what their
    /// [`Hash`] writes (once computed by the builder methods).
    pub fn key_hash(&self) -> u64 {
        self.hash
    }

    /// Whether these change nothing (the client's default token).
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.resources.is_empty() && self.audience.is_none() && self.params.is_empty()
    }

    /// The scopes given, as written.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The resources given, as written.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The audience given.
    pub fn audience_value(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The extra parameters given, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
}

impl fmt::Debug for TokenParams {
    /// Scopes, resources and audience; parameter names only (their values
    /// may be sensitive, as with [`Config`]'s `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("TokenParams")
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("audience", &self.audience)
            .field("params", &names)
            .finish()
    }
}

impl Config {
    /// The configuration of the token `params` ask for: this one with the
    /// scopes, resources, audience and parameters changed as the
    /// [`TokenParams`] docs say. Its [fingerprint](Config::fingerprint) is
    /// the cache key of that token (stores, the fleet, the CLI's cache).
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] the config builder would return for the same
    /// values: [`ConfigError::InvalidScope`],
    /// [`ConfigError::InvalidResource`],
    /// [`ConfigError::ReservedParameter`], [`ConfigError::EmptyParameterName`].
    pub fn with_params(&self, params: &TokenParams) -> Result<Config, ConfigError> {
        if params.is_empty() {
            return Ok(self.clone());
        }
        let scopes = if params.scopes.is_empty() {
            None
        } else {
            Some(checked_scopes(&params.scopes)?)
        };
        let resources = if params.resources.is_empty() {
            None
        } else {
            Some(checked_resources(params.resources.clone())?)
        };
        check_params(&params.params)?;
        Ok(self.merged(scopes, resources, params.audience.clone(), &params.params))
    }
}
