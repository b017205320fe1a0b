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
    /// Every field, length-prefixed in a fixed order: equal encodings are
    /// equal params. The only copy of the values: the accessors and
    /// [`Config::with_params`] decode them, so a key's params cost no
    /// allocation when short (a client with many keys keeps one per key).
    /// Empty for [`TokenParams::new`].
    encoded: Encoded,
    /// The FNV-1a hash of `encoded`.
    hash: u64,
}

/// Encodings up to this long are kept inline (a scope and a tenant fit),
/// keeping a `TokenParams` at 64 bytes.
const INLINE: usize = 54;

/// A [`TokenParams`]' encoding, inline when short: comparing two params
/// (a key lookup, after their hashes matched) then reads no memory beyond
/// the two structs, where a heap copy would cost a cache miss at many keys.
#[derive(Clone)]
enum Encoded {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Default for Encoded {
    fn default() -> Self {
        Encoded::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl Encoded {
    fn new(encoded: &[u8]) -> Encoded {
        match u8::try_from(encoded.len()) {
            Ok(len) if encoded.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..encoded.len()].copy_from_slice(encoded);
                Encoded::Inline { len, bytes }
            }
            _ => Encoded::Heap(encoded.into()),
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Encoded::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Encoded::Heap(bytes) => bytes,
        }
    }
}

/// The values of a [`TokenParams`], borrowed from its encoding (or from the
/// builder's arguments, while one is being added).
#[derive(Default)]
struct Parts<'a> {
    scopes: Vec<&'a str>,
    resources: Vec<&'a str>,
    audience: Option<&'a str>,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> Parts<'a> {
    fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.resources.is_empty() && self.audience.is_none() && self.params.is_empty()
    }

    /// The params with these values: their canonical encoding and its hash
    /// (no changes: [`TokenParams::new`]).
    fn encode(&self) -> TokenParams {
        /// LEB128: short, and no encoding is a prefix of another.
        fn len(out: &mut Vec<u8>, len: usize) {
            let mut n = len as u64;
            while n >= 0x80 {
                // Truncation intended: the low seven bits, flagged.
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        if self.is_empty() {
            return TokenParams::default();
        }
        let mut out = Vec::new();
        len(&mut out, self.scopes.len());
        for scope in &self.scopes {
            field(&mut out, scope.as_bytes());
        }
        len(&mut out, self.resources.len());
        for resource in &self.resources {
            field(&mut out, resource.as_bytes());
        }
        match self.audience {
            Some(audience) => {
                out.push(1);
                field(&mut out, audience.as_bytes());
            }
            None => out.push(0),
        }
        len(&mut out, self.params.len());
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
        TokenParams {
            encoded: Encoded::new(&out),
            hash,
        }
    }

    /// The values [`Parts::encode`] wrote into `bytes` (empty: none), or
    /// `None` if `bytes` are not such an encoding.
    fn decode(bytes: &'a [u8]) -> Option<Parts<'a>> {
        struct Reader<'a>(&'a [u8]);
        impl<'a> Reader<'a> {
            fn byte(&mut self) -> Option<u8> {
                let (&first, rest) = self.0.split_first()?;
                self.0 = rest;
                Some(first)
            }
            fn len(&mut self) -> Option<usize> {
                let mut n: u64 = 0;
                for shift in (0..64).step_by(7) {
                    let byte = self.byte()?;
                    n |= u64::from(byte & 0x7f) << shift;
                    if byte & 0x80 == 0 {
                        return usize::try_from(n).ok();
                    }
                }
                None
            }
            fn field(&mut self) -> Option<&'a str> {
                let len = self.len()?;
                let (field, rest) = self.0.split_at_checked(len)?;
                self.0 = rest;
                std::str::from_utf8(field).ok()
            }
            fn list(&mut self) -> Option<Vec<&'a str>> {
                // At most one entry per remaining byte: a bad count cannot
                // reserve more than the encoding's length.
                let count = self.len()?;
                let mut list = Vec::with_capacity(count.min(self.0.len()));
                for _ in 0..count {
                    list.push(self.field()?);
                }
                Some(list)
            }
        }
        if bytes.is_empty() {
            return Some(Parts::default());
        }
        let mut reader = Reader(bytes);
        let scopes = reader.list()?;
        let resources = reader.list()?;
        let audience = match reader.byte()? {
            0 => None,
            _ => Some(reader.field()?),
        };
        let count = reader.len()?;
        let mut params = Vec::with_capacity(count.min(reader.0.len()));
        for _ in 0..count {
            params.push((reader.field()?, reader.field()?));
        }
        Some(Parts {
            scopes,
            resources,
            audience,
            params,
        })
    }
}

impl PartialEq for TokenParams {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.encoded.as_slice() == other.encoded.as_slice()
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

    /// The values, decoded from the encoding.
    fn parts(&self) -> Parts<'_> {
        // Only `Parts::encode` writes `encoded`, from `&str`s, so it always
        // decodes; the empty default is never reached.
        Parts::decode(self.encoded.as_slice()).unwrap_or_default()
    }

    /// Adds a scope (repeatable); the scopes given replace the configured ones.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        let mut parts = self.parts();
        parts.scopes.push(&scope);
        parts.encode()
    }

    /// Adds an RFC 8707 resource indicator (repeatable); the resources given
    /// replace the configured ones.
    pub fn resource(self, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        let mut parts = self.parts();
        parts.resources.push(&uri);
        parts.encode()
    }

    /// Sets the `audience` parameter, replacing the configured one.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        let mut parts = self.parts();
        parts.audience = Some(&audience);
        parts.encode()
    }

    /// Sets an extra token request parameter (repeatable), replacing a
    /// configured one of the same name. Reserved names are refused when the
    /// parameters are used (see the [type docs](TokenParams)).
    pub fn param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        let mut parts = self.parts();
        parts.params.push((&name, &value));
        parts.encode()
    }

    /// A 64-bit hash of these params, equal for equal params: what their
    /// [`Hash`] writes (once computed by the builder methods).
    pub fn key_hash(&self) -> u64 {
        self.hash
    }

    /// Whether these change nothing (the client's default token).
    pub fn is_empty(&self) -> bool {
        self.encoded.as_slice().is_empty()
    }

    /// The scopes given, as written.
    pub fn scopes(&self) -> Vec<&str> {
        self.parts().scopes
    }

    /// The resources given, as written.
    pub fn resources(&self) -> Vec<&str> {
        self.parts().resources
    }

    /// The audience given.
    pub fn audience_value(&self) -> Option<&str> {
        self.parts().audience
    }

    /// The extra parameters given, in order.
    pub fn params(&self) -> Vec<(&str, &str)> {
        self.parts().params
    }
}

impl fmt::Debug for TokenParams {
    /// Scopes, resources and audience; parameter names only (their values
    /// may be sensitive, as with [`Config`]'s `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self.parts();
        let names: Vec<&str> = parts.params.iter().map(|(name, _)| *name).collect();
        f.debug_struct("TokenParams")
            .field("scopes", &parts.scopes)
            .field("resources", &parts.resources)
            .field("audience", &parts.audience)
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
        let parts = params.parts();
        let scopes = if parts.scopes.is_empty() {
            None
        } else {
            Some(checked_scopes(&parts.scopes)?)
        };
        let resources = if parts.resources.is_empty() {
            None
        } else {
            Some(checked_resources(
                parts.resources.iter().map(|r| (*r).to_owned()).collect(),
            )?)
        };
        let pairs: Vec<(String, String)> = parts
            .params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        check_params(&pairs)?;
        Ok(self.merged(scopes, resources, parts.audience.map(str::to_owned), &pairs))
    }
}
