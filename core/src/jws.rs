//! JSON Web Signatures for client assertions (RFC 7523) and DPoP proofs
//! (RFC 9449): the algorithms, the [`Signer`] trait and the JWS encoding.
//! The [`JwtKey`](crate::JwtKey) handle is in `jwt_key`, above the built-in
//! signers; this module is a leaf that both build on.
//!
//! Signing never does I/O here: the built-in signers (feature `signing`,
//! default on) are pure computation, and a [`Signer`] you implement is
//! called by the adapter, outside its lock (a [`crate::driver::Task::Sign`]).

use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::Sha256;

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
/// Implement it for keys held in an HSM or a KMS; `JwtKey::from_pem` (feature `signing`) covers
/// keys in files. The core never calls it: it builds the JWS signing input
/// and the driver hands it out as a [`Task::Sign`](crate::driver::Task::Sign),
/// which the adapters perform outside their lock (the blocking client on
/// the caller's thread, the tokio client on its blocking pool), so `sign` may
/// do network I/O. Its error fails the attempt with
/// [`ClientAuthError::Signing`](crate::ClientAuthError::Signing).
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
