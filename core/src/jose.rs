//! JSON Web Signatures for client assertions (RFC 7523) and DPoP proofs
//! (RFC 9449): the algorithms, the [`Signer`] trait and the [`JwtKey`] handle.
//!
//! Signing never does I/O here: the built-in signers (feature `signing`,
//! default on) are pure computation, and a [`Signer`] you implement is called
//! synchronously while a request is built.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

#[cfg(feature = "signing")]
use crate::error::ConfigError;

/// A JWS algorithm for client assertions and DPoP proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 (the FAPI 2.0 choice for RSA keys).
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// EdDSA on Ed25519. Written `Ed25519` (RFC 9864's fully specified name),
    /// or `EdDSA` where the provider lists only that.
    Ed25519,
}

impl JwsAlgorithm {
    /// The `alg` value (`RS256`, `PS256`, `ES256`, `Ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Ed25519 => "Ed25519",
        }
    }

    /// The `alg` to write given what a provider lists (`None`: it lists
    /// nothing, so the RFC name is used). `Err` when the list does not contain
    /// the algorithm under any of its names.
    pub(crate) fn negotiate(self, listed: Option<&[String]>) -> Result<&'static str, ()> {
        let Some(listed) = listed else { return Ok(self.as_str()) };
        let has = |name: &str| listed.iter().any(|l| l == name);
        if has(self.as_str()) {
            Ok(self.as_str())
        } else if self == JwsAlgorithm::Ed25519 && has("EdDSA") {
            // RFC 9864 §2.2: the polymorphic name, for providers that predate it.
            Ok("EdDSA")
        } else {
            Err(())
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signature could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing failed: {reason}")]
pub struct SignError {
    reason: String,
}

impl SignError {
    /// A signing failure with a reason (which must not contain key material).
    pub fn new(reason: impl Into<String>) -> Self {
        SignError { reason: reason.into() }
    }

    /// Why it failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A private key that signs client assertions and DPoP proofs.
///
/// Implement it for keys held in an HSM or a KMS; [`JwtKey::from_pem`] covers
/// keys in files. `sign` is called synchronously while the core builds a
/// request, so it should be quick; a signer that needs network I/O is better
/// served by [`crate::AssertionSource::callback`] fed by the adapter's thread,
/// since the core itself never waits for anything.
pub trait Signer: Send + Sync + 'static {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> JwsAlgorithm;

    /// The key id (`kid`) to put in the JWS header, if any.
    fn key_id(&self) -> Option<&str> {
        None
    }

    /// The public key as a JWK (RFC 7517) without private members: sent in
    /// DPoP proofs, and what the provider registers for `private_key_jwt`.
    fn public_jwk(&self) -> Map<String, Value>;

    /// Signs `message` (the JWS signing input), returning the raw signature
    /// as JWS wants it (for ES256 the 64-byte `r || s`, not DER).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// A signing key for client assertions and DPoP proofs: cheap to clone.
///
/// `Debug` shows the algorithm and key id only; the key never prints.
///
/// ```
/// # #[cfg(feature = "signing")] {
/// use client_credentials::{JwsAlgorithm, JwtKey};
///
/// let pem = "-----BEGIN PRIVATE KEY-----\n\
///     MC4CAQAwBQYDK2VwBCIEILS2CeFGmeAWJMWwoTCix9ninGoYV4gyiHwzgTbGNkS4\n\
///     -----END PRIVATE KEY-----\n";
/// let key = JwtKey::from_pem(pem, JwsAlgorithm::Ed25519)?.with_key_id("key-1");
/// assert_eq!(key.key_id(), Some("key-1"));
/// assert_eq!(key.public_jwk()["kty"], "OKP");
/// assert!(!format!("{key:?}").contains("MC4CAQAw"));
/// # }
/// # Ok::<(), client_credentials::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    signer: Arc<dyn Signer>,
    key_id: Option<String>,
}

impl JwtKey {
    /// A key backed by your own [`Signer`] (HSM, KMS, …).
    pub fn from_signer(signer: impl Signer) -> Self {
        let key_id = signer.key_id().map(str::to_owned);
        JwtKey {
            signer: Arc::new(signer),
            key_id,
        }
    }

    /// Loads a private key from PEM for `alg`: PKCS#8 (`BEGIN PRIVATE KEY`)
    /// for every algorithm, PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA, SEC1
    /// (`BEGIN EC PRIVATE KEY`) for P-256. RSA keys must have at least 2048 bits.
    ///
    /// The error never quotes the key.
    #[cfg(feature = "signing")]
    pub fn from_pem(pem: &str, alg: JwsAlgorithm) -> Result<JwtKey, ConfigError> {
        crate::sign::from_pem(pem, alg).map(|signer| JwtKey { signer, key_id: None })
    }

    /// Sets the key id (`kid`) sent in the JWS header (overrides the signer's).
    pub fn with_key_id(mut self, kid: impl Into<String>) -> Self {
        self.key_id = Some(kid.into());
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.signer.algorithm()
    }

    /// The key id, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The public key as a JWK (with `kid` and `alg` when known), e.g. to
    /// register with the provider.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.signer.public_jwk();
        if let Some(kid) = &self.key_id {
            jwk.insert("kid".into(), kid.clone().into());
        }
        jwk.insert("alg".into(), self.algorithm().as_str().into());
        Value::Object(jwk)
    }

    /// The RFC 7638 JWK SHA-256 thumbprint, base64url: the `jkt` a DPoP-bound
    /// token's `cnf` claim carries.
    pub fn thumbprint(&self) -> String {
        let jwk = self.signer.public_jwk();
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
        let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => &["e", "kty", "n"],
            Some("EC") => &["crv", "kty", "x", "y"],
            Some("OKP") => &["crv", "kty", "x"],
            _ => &[],
        };
        let mut canonical = Map::new();
        for name in members {
            if let Some(value) = jwk.get(*name) {
                canonical.insert((*name).to_owned(), value.clone());
            }
        }
        // serde_json's Map keeps keys sorted (no `preserve_order` feature).
        let json = Value::Object(canonical).to_string();
        b64(&Sha256::digest(json.as_bytes()))
    }

    /// The signer's public JWK without `kid`/`alg` (for DPoP's `jwk` header).
    pub(crate) fn bare_jwk(&self) -> Map<String, Value> {
        self.signer.public_jwk()
    }

    /// Signs a JWT: header members `alg` (as given), `typ` (if any), `kid`
    /// (when set and `with_kid`) plus `extra`, then the claims.
    pub(crate) fn sign_jwt(
        &self,
        alg: &str,
        typ: Option<&str>,
        extra: Option<(&str, Value)>,
        with_kid: bool,
        claims: &Map<String, Value>,
    ) -> Result<String, SignError> {
        let mut header = Map::new();
        header.insert("alg".into(), alg.into());
        if let Some(typ) = typ {
            header.insert("typ".into(), typ.into());
        }
        if let Some(kid) = self.key_id.as_ref().filter(|_| with_kid) {
            header.insert("kid".into(), kid.clone().into());
        }
        if let Some((name, value)) = extra {
            header.insert(name.into(), value);
        }
        let input = signing_input(&header, claims);
        let signature = self.signer.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64(&signature)))
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Two keys are equal when they have the same algorithm, key id and public key.
impl PartialEq for JwtKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.signer, &other.signer)
            || (self.algorithm() == other.algorithm()
                && self.key_id == other.key_id
                && self.signer.public_jwk() == other.signer.public_jwk())
    }
}

impl Eq for JwtKey {}

impl Hash for JwtKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.algorithm().hash(state);
        self.key_id.hash(state);
        self.thumbprint().hash(state);
    }
}

/// `base64url(header) . base64url(claims)`.
pub(crate) fn signing_input(header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let header = serde_json::to_vec(header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    format!("{}.{}", b64(&header), b64(&claims))
}

/// Base64url without padding (RFC 7515 §2).
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// HS256 (HMAC-SHA-256) over `input` with `secret`, for `client_secret_jwt`.
pub(crate) fn hs256(secret: &[u8], input: &str) -> Vec<u8> {
    use hmac::Mac as _;
    // HMAC accepts keys of any length, so this never fails.
    match hmac::Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}
