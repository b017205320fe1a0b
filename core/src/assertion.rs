//! Client assertions (RFC 7521, RFC 7523; OpenID Connect `private_key_jwt` and
//! `client_secret_jwt`): building them, and taking ones made elsewhere.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ClientAuthError;
use crate::jws::{b64, hs256, signing_input, SignError};
use crate::jwt_key::{finish_jws, Jws, JwtKey};
use crate::redact::clean;
use crate::time::Timestamp;
use zeroize::Zeroizing;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `client_assertion_type` of a SPIFFE JWT-SVID (draft-ietf-oauth-spiffe-client-auth).
pub const SPIFFE_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
/// The `typ` header of an explicitly typed client assertion (draft-ietf-oauth-rfc7523bis §4).
pub(crate) const CLIENT_ASSERTION_TYP: &str = "client-authentication+jwt";

/// A client assertion made outside this client: by your code (a callback) or
/// by the platform (a file: a Kubernetes projected service-account token, a
/// cloud's federated token file, a SPIFFE JWT-SVID).
///
/// Sent as `client_assertion` with no client secret. Before each token
/// request the assertion's `exp` is checked against `now`: an expired or
/// unreadable assertion is an [`Error::ClientAuth`](crate::Error::ClientAuth),
/// never a request with a stale assertion.
///
/// The core never reads files nor calls the callback: the
/// [`driver`](crate::driver) hands out a
/// [`Task::ReadAssertion`](crate::driver::Task::ReadAssertion) before a
/// request is due, and the adapter reads the file (again whenever it
/// changes) or calls the callback outside its lock, so a callback may block
/// (the tokio adapter runs it on its blocking pool). (A
/// [`TokenSource`](crate::TokenSource) polled by hand, without the driver,
/// calls a callback from `poll` and cannot read a file.)
///
/// ```
/// use client_credentials::{AssertionSource, ClientAuth, Config};
///
/// let svid = AssertionSource::file("/run/spiffe/jwt-svid").spiffe();
/// let config = Config::builder("spiffe://example.org/worker", "")
///     .issuer("https://id.example")
///     .auth(ClientAuth::Assertion(svid))
///     .build()?;
/// assert_eq!(config.assertion_file().unwrap().to_str(), Some("/run/spiffe/jwt-svid"));
/// # Ok::<(), client_credentials::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AssertionSource {
    origin: Origin,
    assertion_type: String,
}

#[derive(Clone)]
enum Origin {
    Callback(Arc<dyn Fn() -> Result<String, String> + Send + Sync>),
    File(PathBuf),
}

impl AssertionSource {
    /// Assertions returned by `callback`, called before every token request.
    /// Its error is shown in [`ClientAuthError::AssertionUnavailable`].
    pub fn callback<F, E>(callback: F) -> Self
    where
        F: Fn() -> Result<String, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        AssertionSource {
            origin: Origin::Callback(Arc::new(move || callback().map_err(|e| e.to_string()))),
            assertion_type: JWT_BEARER_ASSERTION_TYPE.into(),
        }
    }

    /// Assertions read from the file at `path` by the adapter, again whenever
    /// it changes (rotated tokens are picked up without a restart).
    ///
    /// The adapters read it only if it is a regular file (a FIFO is refused
    /// at once, never waited on), owned by the process's user or root, not
    /// writable by group or others, at most 64 KiB, reached through at most
    /// one symlink owned by that user or root (the kubelet's projected-token
    /// layout); otherwise the token request fails with
    /// [`ClientAuthError::AssertionUnavailable`] saying why.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        AssertionSource {
            origin: Origin::File(path.into()),
            assertion_type: JWT_BEARER_ASSERTION_TYPE.into(),
        }
    }

    /// Sends the assertion as a SPIFFE JWT-SVID ([`SPIFFE_ASSERTION_TYPE`]).
    pub fn spiffe(self) -> Self {
        self.with_assertion_type(SPIFFE_ASSERTION_TYPE)
    }

    /// Sends another `client_assertion_type` (default [`JWT_BEARER_ASSERTION_TYPE`]).
    pub fn with_assertion_type(mut self, assertion_type: impl Into<String>) -> Self {
        self.assertion_type = assertion_type.into();
        self
    }

    /// The `client_assertion_type` sent.
    pub fn assertion_type(&self) -> &str {
        &self.assertion_type
    }

    /// The file the adapter reads, for a file source.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(path) => Some(path),
            Origin::Callback(_) => None,
        }
    }

    /// Calls the callback: the assertion, or the callback's error as text.
    /// `None` for a file source, which the adapter reads itself. What an
    /// adapter does for a [`Task::ReadAssertion`](crate::driver::Task::ReadAssertion)
    /// of a callback source, outside its lock.
    pub fn call(&self) -> Option<Result<String, String>> {
        match &self.origin {
            Origin::Callback(callback) => Some(callback()),
            Origin::File(_) => None,
        }
    }
}

impl fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AssertionSource");
        match &self.origin {
            Origin::Callback(_) => d.field("callback", &".."),
            Origin::File(path) => d.field("file", path),
        };
        d.field("assertion_type", &self.assertion_type).finish()
    }
}

/// Equal when both are the same callback, or files at the same path, with the same type.
impl PartialEq for AssertionSource {
    fn eq(&self, other: &Self) -> bool {
        let same = match (&self.origin, &other.origin) {
            (Origin::Callback(a), Origin::Callback(b)) => Arc::ptr_eq(a, b),
            (Origin::File(a), Origin::File(b)) => a == b,
            _ => false,
        };
        same && self.assertion_type == other.assertion_type
    }
}

impl Eq for AssertionSource {}

impl std::hash::Hash for AssertionSource {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path().hash(state);
        self.assertion_type.hash(state);
    }
}

/// Unique `jti` values from a seed: SHA-256 over the seed, a counter and the
/// time, cut to 128 bits. Repeatable in tests; adapters seed it randomly.
/// The time is mixed in so that two processes that were given the same seed
/// still do not repeat each other's values across restarts.
#[derive(Debug)]
pub(crate) struct JtiSource {
    seed: [u8; 32],
    counter: AtomicU64,
}

impl JtiSource {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        JtiSource {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self, now: Timestamp) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update(count.to_le_bytes())
            .chain_update(now.as_unix_millis().to_le_bytes())
            .finalize();
        b64(&digest[..16])
    }
}

/// Which key signs a built assertion.
pub(crate) enum AssertionKey<'a> {
    /// `private_key_jwt`, with the `alg` name to write.
    Private(&'a JwtKey, &'a str),
    /// `client_secret_jwt`: HS256 over the secret.
    Secret(&'a str),
}

/// The claims and settings of one assertion.
pub(crate) struct AssertionClaims<'a> {
    pub client_id: &'a str,
    pub audience: &'a str,
    pub jti: String,
    pub now: Timestamp,
    pub lifetime: Duration,
    pub typ: Option<&'static str>,
}

/// Builds a client assertion (RFC 7523 §3): signed, or for an external
/// signer waiting for its signature.
pub(crate) fn build_assertion(key: AssertionKey<'_>, claims: AssertionClaims<'_>) -> Result<Jws, SignError> {
    let iat = claims.now.as_unix_millis() / 1000;
    let mut body = Map::new();
    body.insert("iss".into(), claims.client_id.into());
    body.insert("sub".into(), claims.client_id.into());
    body.insert("aud".into(), claims.audience.into());
    body.insert("jti".into(), claims.jti.into());
    body.insert("iat".into(), iat.into());
    body.insert("exp".into(), (iat + claims.lifetime.as_secs().max(1)).into());
    match key {
        AssertionKey::Private(key, alg) => key.jwt(alg, claims.typ, None, true, &body),
        AssertionKey::Secret(secret) => {
            let mut header = Map::new();
            header.insert("alg".into(), "HS256".into());
            if let Some(typ) = claims.typ {
                header.insert("typ".into(), typ.into());
            }
            let input = signing_input(&header, &body);
            let mac = hs256(secret.as_bytes(), &input);
            Ok(Jws::Signed(Zeroizing::new(finish_jws(&input, &mac))))
        }
    }
}

/// Checks an assertion made elsewhere before it is sent: a JWT (three
/// segments) whose claims parse, and whose `exp`, if any, is after `now`.
pub(crate) fn check_external(assertion: &str, now: Timestamp) -> Result<(), ClientAuthError> {
    let assertion = assertion.trim();
    let invalid = |reason| ClientAuthError::InvalidAssertion { reason };
    if assertion.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut parts = assertion.split('.');
    let (Some(_), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("it does not have the three parts of a signed JWT"));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .map_err(|_| invalid("its claims are not base64url"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| invalid("its claims are not a JSON object"))?;
    match claims.get("exp") {
        None => Ok(()),
        Some(exp) => {
            let exp = exp
                .as_f64()
                .filter(|e| e.is_finite() && *e >= 0.0)
                .ok_or(invalid("its exp is not a number"))?;
            let expired_at = Timestamp::from_unix_millis((exp.min(1e13) * 1000.0) as u64);
            if expired_at <= now {
                Err(ClientAuthError::AssertionExpired { expired_at })
            } else {
                Ok(())
            }
        }
    }
}

/// A callback's or a file's error text, made safe to show.
pub(crate) fn unavailable(reason: &str) -> ClientAuthError {
    ClientAuthError::AssertionUnavailable {
        reason: clean(reason, 200),
    }
}

/// Which assertion a [`Task::ReadAssertion`](crate::driver::Task::ReadAssertion)
/// reads: the client assertion, or the grant's subject or actor. The core
/// keeps the latest value read for each role, re-read the same way whatever
/// its source (a file, a callback); errors name the role and the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AssertionRole {
    /// The client assertion of [`ClientAuth::Assertion`](crate::ClientAuth::Assertion).
    ClientAssertion,
    /// The grant's subject: a token exchange's `subject_token`, or the JWT
    /// bearer grant's `assertion`.
    Subject,
    /// A token exchange's `actor_token`.
    Actor,
}

impl AssertionRole {
    /// Every role, in the order the driver reads them.
    pub const ALL: [AssertionRole; 3] = [
        AssertionRole::ClientAssertion,
        AssertionRole::Subject,
        AssertionRole::Actor,
    ];
}

impl fmt::Display for AssertionRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AssertionRole::ClientAssertion => "client assertion",
            AssertionRole::Subject => "subject token",
            AssertionRole::Actor => "actor token",
        })
    }
}

impl AssertionSource {
    /// Where the source reads from, for messages: `file <path>` or `callback`.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::File(path) => format!("file {}", path.display()),
            Origin::Callback(_) => "callback".to_owned(),
        }
    }
}

/// The claims of a JWT, read without verifying it; `None` for anything that
/// is not three dot-separated parts with a JSON object in the middle.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.trim().split('.');
    let (Some(_), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// A JWT's `exp`, when it has a numeric one.
pub(crate) fn expiry(claims: &Map<String, Value>) -> Option<Timestamp> {
    let exp = claims.get("exp")?.as_f64().filter(|e| e.is_finite() && *e >= 0.0)?;
    Some(Timestamp::from_unix_millis((exp.min(1e13) * 1000.0) as u64))
}

/// Who a subject or actor token speaks for, for the cache key: the `iss`
/// and `sub` of a JWT (read, not verified: a token for another subject
/// must not be served from this one's cache entry, and a rotated token for
/// the same subject keeps the entry), else a SHA-256 of the token itself.
pub(crate) fn token_identity(token: &str) -> [u8; 32] {
    let claims = unverified_claims(token);
    let named = claims.as_ref().and_then(|claims| {
        let iss = claims.get("iss")?.as_str()?;
        let sub = claims.get("sub")?.as_str()?;
        Some((iss, sub))
    });
    let mut hash = Sha256::new();
    match named {
        Some((iss, sub)) => {
            hash.update(b"jwt iss sub");
            hash.update((iss.len() as u64).to_be_bytes());
            hash.update(iss.as_bytes());
            hash.update((sub.len() as u64).to_be_bytes());
            hash.update(sub.as_bytes());
        }
        None => {
            hash.update(b"token sha-256");
            hash.update(token.trim().as_bytes());
        }
    }
    hash.finalize().into()
}
