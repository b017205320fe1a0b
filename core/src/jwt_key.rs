//! [`JwtKey`]: the signing key that client assertions and DPoP proofs are
//! made with, backed by a built-in signer (feature `signing`) or your own
//! [`Signer`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[cfg(feature = "signing")]
use crate::error::ConfigError;
use crate::jws::{b64, signing_input, JwsAlgorithm, SignError, Signer};

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
    /// Backed by a [`Signer`] of the user's (`from_signer`): it may do I/O,
    /// so the driver has it called outside the lock ([`crate::driver::Task::Sign`]).
    /// The built-in signers are pure computation and sign inside the core.
    external: bool,
}

impl JwtKey {
    /// A key backed by your own [`Signer`] (HSM, KMS, …).
    ///
    /// The core never calls it: the [`driver`](crate::driver) hands each
    /// signature out as a [`Task::Sign`](crate::driver::Task::Sign), which
    /// the adapter performs outside its lock (the blocking adapter on the
    /// caller's thread, the tokio adapter on its blocking pool), so a signer
    /// that waits for an HSM or a KMS holds up no other caller. (A
    /// [`TokenSource`](crate::TokenSource) polled by hand, without the driver,
    /// calls it from `poll`.)
    pub fn from_signer(signer: impl Signer) -> Self {
        let key_id = signer.key_id().map(str::to_owned);
        JwtKey {
            signer: Arc::new(signer),
            key_id,
            external: true,
        }
    }

    /// Loads a private key from PEM for `alg`: PKCS#8 (`BEGIN PRIVATE KEY`)
    /// for every algorithm, PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA, SEC1
    /// (`BEGIN EC PRIVATE KEY`) for P-256. RSA keys must have at least 2048 bits.
    ///
    /// The error never quotes the key.
    #[cfg_attr(docsrs, doc(cfg(feature = "signing")))]
    #[cfg(feature = "signing")]
    pub fn from_pem(pem: &str, alg: JwsAlgorithm) -> Result<JwtKey, ConfigError> {
        crate::signing::from_pem(pem, alg).map(|signer| JwtKey {
            signer,
            key_id: None,
            external: false,
        })
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

    /// Signs `message` (a JWS signing input) with the key's signer: what an
    /// adapter does for a [`Task::Sign`](crate::driver::Task::Sign), outside
    /// its lock. An empty signature is refused as a [`SignError`]: no JWS
    /// goes out without one.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.signer.sign(message)? {
            signature if signature.is_empty() => Err(SignError::new("the signer returned an empty signature")),
            signature => Ok(signature),
        }
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

    /// A JWT: header members `alg` (as given), `typ` (if any), `kid` (when
    /// set and `with_kid`) plus `extra`, then the claims. Signed at once by
    /// a built-in key; left [`Jws::Unsigned`] for an external signer.
    pub(crate) fn jwt(
        &self,
        alg: &str,
        typ: Option<&str>,
        extra: Option<(&str, Value)>,
        with_kid: bool,
        claims: &Map<String, Value>,
    ) -> Result<Jws, SignError> {
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
        if self.external {
            return Ok(Jws::Unsigned {
                key: self.clone(),
                input,
            });
        }
        let signature = self.sign(input.as_bytes())?;
        Ok(Jws::Signed(Zeroizing::new(finish_jws(&input, &signature))))
    }
}

/// A JWS the core made: signed, or waiting for an external signer's signature.
#[derive(Clone)]
pub(crate) enum Jws {
    /// The compact serialisation (a credential: zeroized when dropped).
    Signed(Zeroizing<String>),
    /// The signing input, for `key`'s signer.
    Unsigned { key: JwtKey, input: String },
}

/// `input.base64url(signature)`.
pub(crate) fn finish_jws(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", b64(signature))
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
