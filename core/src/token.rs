//! The access token handed to callers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::secret::Secret;
use crate::time::Timestamp;

/// An access token with its metadata: cheap to clone (one `Arc`), `Send + Sync`.
///
/// `Debug` prints everything but the token and the refresh token.
/// `Serialize`/`Deserialize` write the token out in full, for token stores:
/// that is the one place the secret leaves the process.
///
/// ```
/// use client_credentials::{AccessToken, Timestamp};
///
/// let token = AccessToken::builder("eyJraWQiOi")
///     .received_at(Timestamp::from_unix_secs(1_000))
///     .expires_at(Timestamp::from_unix_secs(4_600))
///     .build()?;
/// assert_eq!(token.authorization_header().to_str().unwrap(), "Bearer eyJraWQiOi");
/// assert!(!format!("{token:?}").contains("eyJraWQiOi"));
/// # Ok::<(), client_credentials::Error>(())
/// ```
#[derive(Clone)]
pub struct AccessToken(Arc<Inner>);

/// Kept once per cached token (a client with many keys keeps one per key),
/// so kept small: the strings are exact-sized, and the token type is not
/// stored apart but read from the start of the header it begins.
struct Inner {
    secret: Box<str>,
    expires_at: Option<Timestamp>,
    received_at: Timestamp,
    scope: Option<Box<str>>,
    refresh_token: Option<Secret>,
    /// `<token type> <secret>`, marked sensitive.
    header: HeaderValue,
    /// How many bytes of `header` the token type takes.
    type_len: u32,
}

impl AccessToken {
    /// Starts building a token by hand (from a database, a custom provider, a test).
    pub fn builder(secret: impl Into<String>) -> AccessTokenBuilder {
        AccessTokenBuilder {
            secret: secret.into(),
            token_type: "Bearer".into(),
            expires_at: None,
            received_at: Timestamp::UNIX_EPOCH,
            scope: None,
            refresh_token: None,
        }
    }

    /// The token value, for the `Authorization` header of your own requests.
    pub fn secret(&self) -> &str {
        &self.0.secret
    }

    /// The token type, `Bearer` (normalised) for bearer tokens.
    pub fn token_type(&self) -> &str {
        let len = usize::try_from(self.0.type_len).unwrap_or(usize::MAX);
        // `build` checked the type: ASCII letters, digits and `-_.`, so
        // these bytes are valid UTF-8 and the fallback is never taken.
        self.0
            .header
            .as_bytes()
            .get(..len)
            .and_then(|scheme| std::str::from_utf8(scheme).ok())
            .unwrap_or_default()
    }

    /// When the token expires, if known. A token without expiry is served until
    /// invalidated.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.0.expires_at
    }

    /// When the request that obtained it was sent (expiry is counted from here,
    /// which is conservative by one round trip).
    pub fn received_at(&self) -> Timestamp {
        self.0.received_at
    }

    /// The granted scope: the `scope` of the response, else the scope requested.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// The refresh token that came with it, if any: a `&str`, like
    /// [`secret`](Self::secret) (`Debug` redacts both).
    pub fn refresh_token(&self) -> Option<&str> {
        self.0.refresh_token.as_ref().map(Secret::expose_secret)
    }

    /// The refresh token as the core keeps it.
    pub(crate) fn refresh_secret(&self) -> Option<&Secret> {
        self.0.refresh_token.as_ref()
    }

    /// How long the token stays unexpired from `now`: `Some(Duration::ZERO)`
    /// once expired, `None` when its expiry is unknown (served until
    /// invalidated).
    ///
    /// ```
    /// use std::time::Duration;
    /// use client_credentials::{AccessToken, Timestamp};
    ///
    /// let now = Timestamp::from_unix_secs(1_000);
    /// let token = AccessToken::builder("t").expires_at(Timestamp::from_unix_secs(1_060)).build()?;
    /// assert_eq!(token.expires_in(now), Some(Duration::from_secs(60)));
    /// assert_eq!(token.expires_in(Timestamp::from_unix_secs(2_000)), Some(Duration::ZERO));
    /// # Ok::<(), client_credentials::Error>(())
    /// ```
    pub fn expires_in(&self, now: Timestamp) -> Option<Duration> {
        self.0
            .expires_at
            .map(|at| Duration::from_millis(at.as_unix_millis().saturating_sub(now.as_unix_millis())))
    }

    /// `Bearer <token>` as a header value marked sensitive (so HTTP libraries
    /// leave it out of their logs). A cheap clone.
    pub fn authorization_header(&self) -> HeaderValue {
        self.0.header.clone()
    }

    /// Whether the token is unexpired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.0.expires_at.is_some_and(|at| now >= at)
    }

    /// Whether both handles refer to the same token value.
    pub fn same_token(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.secret == other.0.secret
    }

    /// A copy with its own allocation.
    fn detached_clone(&self) -> AccessToken {
        AccessToken(Arc::new(Inner {
            secret: self.0.secret.clone(),
            expires_at: self.0.expires_at,
            received_at: self.0.received_at,
            scope: self.0.scope.clone(),
            refresh_token: self.0.refresh_token.clone(),
            header: self.0.header.clone(),
            type_len: self.0.type_len,
        }))
    }

    pub(crate) fn with_refresh_token(&self, refresh_token: Option<Secret>) -> AccessToken {
        let copy = self.detached_clone();
        match Arc::try_unwrap(copy.0) {
            Ok(mut inner) => {
                inner.refresh_token = refresh_token;
                AccessToken(Arc::new(inner))
            }
            Err(shared) => AccessToken(shared),
        }
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.same_token(other) && self.0.expires_at == other.0.expires_at && self.token_type() == other.token_type()
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("token_type", &self.token_type())
            .field("expires_at", &self.0.expires_at)
            .field("received_at", &self.0.received_at)
            .field("scope", &self.0.scope)
            .field("refresh_token", &self.0.refresh_token)
            .finish()
    }
}

/// Builds an [`AccessToken`] by hand.
#[derive(Clone)]
#[must_use]
pub struct AccessTokenBuilder {
    secret: String,
    token_type: String,
    expires_at: Option<Timestamp>,
    received_at: Timestamp,
    scope: Option<String>,
    refresh_token: Option<String>,
}

impl fmt::Debug for AccessTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenBuilder")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessTokenBuilder {
    /// The token type. Default `Bearer`; any case of `bearer` is normalised.
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// When it expires. Default: unknown (served until invalidated).
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// When it was obtained. Default: the epoch.
    pub fn received_at(mut self, at: Timestamp) -> Self {
        self.received_at = at;
        self
    }

    /// The granted scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// A refresh token for the next refresh.
    pub fn refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Checks the token can be sent in a header.
    pub fn build(self) -> Result<AccessToken, crate::Error> {
        if self.secret.is_empty() {
            return Err(crate::Error::invalid("the access_token is empty"));
        }
        // RFC 6750 §2.1 b64token is narrower; real providers send other
        // visible ASCII too, which is harmless in a header. Anything else is not.
        if !self.secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::Error::invalid(
                "the access_token contains characters that cannot be sent in an Authorization header",
            ));
        }
        let token_type = if self.token_type.eq_ignore_ascii_case("bearer") {
            "Bearer".to_owned()
        } else if self.token_type.eq_ignore_ascii_case("dpop") {
            // RFC 9449 §7.1: the scheme's registered spelling.
            "DPoP".to_owned()
        } else {
            self.token_type
        };
        if token_type.is_empty()
            || !token_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(crate::Error::invalid(
                "the token_type is not a valid authentication scheme name",
            ));
        }
        let type_len = u32::try_from(token_type.len())
            .map_err(|_| crate::Error::invalid("the token_type is not a valid authentication scheme name"))?;
        let mut header = HeaderValue::from_str(&format!("{token_type} {}", self.secret))
            .map_err(|_| crate::Error::invalid("the access_token cannot be sent in an Authorization header"))?;
        header.set_sensitive(true);
        Ok(AccessToken(Arc::new(Inner {
            secret: self.secret.into_boxed_str(),
            expires_at: self.expires_at,
            received_at: self.received_at,
            scope: self.scope.map(String::into_boxed_str),
            refresh_token: self.refresh_token.map(Secret::new),
            header,
            type_len,
        })))
    }
}

/// The stored form of a token (the one place the secret is written out).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    access_token: String,
    token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    #[serde(default)]
    received_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl serde::Serialize for AccessToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Stored {
            access_token: self.0.secret.to_string(),
            token_type: self.token_type().to_owned(),
            expires_at: self.0.expires_at,
            received_at: self.0.received_at,
            scope: self.0.scope.as_deref().map(str::to_owned),
            refresh_token: self.0.refresh_token.as_ref().map(|s| s.expose_secret().to_owned()),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for AccessToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(deserializer)?;
        let mut builder = AccessToken::builder(stored.access_token)
            .token_type(stored.token_type)
            .received_at(stored.received_at);
        if let Some(at) = stored.expires_at {
            builder = builder.expires_at(at);
        }
        if let Some(scope) = stored.scope {
            builder = builder.scope(scope);
        }
        if let Some(refresh) = stored.refresh_token {
            builder = builder.refresh_token(refresh);
        }
        builder.build().map_err(serde::de::Error::custom)
    }
}
