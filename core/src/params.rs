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
/// written (same values, same order); an empty one names the client's
/// default token. `Debug` shows parameter names, never their values.
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
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[must_use]
pub struct TokenParams {
    scopes: Vec<String>,
    resources: Vec<String>,
    audience: Option<String>,
    params: Vec<(String, String)>,
}

impl TokenParams {
    /// No changes: the client's default token.
    pub fn new() -> TokenParams {
        TokenParams::default()
    }

    /// Adds a scope (repeatable); the scopes given replace the configured ones.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Adds an RFC 8707 resource indicator (repeatable); the resources given
    /// replace the configured ones.
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.resources.push(uri.into());
        self
    }

    /// Sets the `audience` parameter, replacing the configured one.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets an extra token request parameter (repeatable), replacing a
    /// configured one of the same name. Reserved names are refused when the
    /// parameters are used (see the [type docs](TokenParams)).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
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
