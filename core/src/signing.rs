//! The built-in signers (feature `signing`): RSA, P-256 and Ed25519 keys from
//! PEM, signed with the RustCrypto crates.
//!
//! Pure computation, no random source: ECDSA uses RFC 6979 deterministic
//! nonces, Ed25519 is deterministic, and the randomness RSA wants (the PSS
//! salt, and blinding against timing attacks) comes from a generator keyed by
//! a hash of the private key and the message, which an attacker cannot predict
//! without the key and which differs for every assertion (each has a fresh `jti`).
//!
//! Key material is overwritten when dropped: the RustCrypto keys zeroize
//! themselves (`ZeroizeOnDrop`, checked by a test), and the bytes derived
//! from the private key here are held in `Zeroizing` or cleared by `Drop`.

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::ConfigError;
use crate::jws::{b64, JwsAlgorithm, SignError, Signer};

/// The smallest RSA modulus accepted (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;

fn invalid(alg: JwsAlgorithm, reason: &'static str) -> ConfigError {
    ConfigError::InvalidKey { alg, reason }
}

pub(crate) fn from_pem(pem: &str, alg: JwsAlgorithm) -> Result<Arc<dyn Signer>, ConfigError> {
    let pem = pem.trim();
    if !pem.starts_with("-----BEGIN ") {
        return Err(invalid(alg, "it is not PEM (no '-----BEGIN' line)"));
    }
    match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => RsaSigner::from_pem(pem, alg).map(|s| Arc::new(s) as _),
        JwsAlgorithm::Es256 => EcSigner::from_pem(pem).map(|s| Arc::new(s) as _),
        JwsAlgorithm::Ed25519 => EdSigner::from_pem(pem).map(|s| Arc::new(s) as _),
    }
}

struct RsaSigner {
    alg: JwsAlgorithm,
    pkcs1v15: rsa::pkcs1v15::SigningKey<Sha256>,
    pss: rsa::pss::SigningKey<Sha256>,
    /// Keys the per-message generator; derived from the private exponent.
    nonce_key: Zeroizing<[u8; 32]>,
    jwk: Map<String, Value>,
}

impl RsaSigner {
    fn from_pem(pem: &str, alg: JwsAlgorithm) -> Result<Self, ConfigError> {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};

        let key = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|_| ())
        } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| ())
        } else {
            return Err(invalid(
                alg,
                "expected a PKCS#8 'PRIVATE KEY' or PKCS#1 'RSA PRIVATE KEY' PEM block",
            ));
        }
        .map_err(|_| invalid(alg, "the PEM does not hold a valid RSA private key"))?;
        if key.validate().is_err() {
            return Err(invalid(alg, "the RSA key is inconsistent"));
        }
        if key.size() * 8 < MIN_RSA_BITS {
            return Err(invalid(alg, "RSA keys must have at least 2048 bits"));
        }
        let exponent = Zeroizing::new(key.d().to_bytes_be());
        let nonce_key = Zeroizing::new(
            Sha256::new()
                .chain_update(b"client-credentials rsa nonce key")
                .chain_update(&*exponent)
                .finalize()
                .into(),
        );
        let mut jwk = Map::new();
        jwk.insert("kty".into(), "RSA".into());
        jwk.insert("n".into(), b64(&key.n().to_bytes_be()).into());
        jwk.insert("e".into(), b64(&key.e().to_bytes_be()).into());
        Ok(RsaSigner {
            alg,
            pkcs1v15: rsa::pkcs1v15::SigningKey::new(key.clone()),
            pss: rsa::pss::SigningKey::new(key),
            nonce_key,
            jwk,
        })
    }
}

impl Signer for RsaSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.alg
    }

    fn public_jwk(&self) -> Map<String, Value> {
        self.jwk.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
        let mut rng = MessageRng::new(&self.nonce_key, message);
        let signature = match self.alg {
            JwsAlgorithm::Ps256 => self.pss.try_sign_with_rng(&mut rng, message).map(|s| s.to_vec()),
            _ => self.pkcs1v15.try_sign_with_rng(&mut rng, message).map(|s| s.to_vec()),
        };
        signature.map_err(|_| SignError::new("the RSA signature could not be computed"))
    }
}

struct EcSigner {
    key: p256::ecdsa::SigningKey,
    jwk: Map<String, Value>,
}

impl EcSigner {
    fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let alg = JwsAlgorithm::Es256;
        let key = if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(pem).map(p256::ecdsa::SigningKey::from)
        } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|_| p256::elliptic_curve::Error)
        } else {
            return Err(invalid(
                alg,
                "expected a PKCS#8 'PRIVATE KEY' or SEC1 'EC PRIVATE KEY' PEM block",
            ));
        }
        .map_err(|_| invalid(alg, "the PEM does not hold a valid P-256 private key"))?;
        let point = key.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(invalid(alg, "the P-256 public key is the identity"));
        };
        let mut jwk = Map::new();
        jwk.insert("kty".into(), "EC".into());
        jwk.insert("crv".into(), "P-256".into());
        jwk.insert("x".into(), b64(x).into());
        jwk.insert("y".into(), b64(y).into());
        Ok(EcSigner { key, jwk })
    }
}

impl Signer for EcSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Es256
    }

    fn public_jwk(&self) -> Map<String, Value> {
        self.jwk.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self
            .key
            .try_sign(message)
            .map_err(|_| SignError::new("the ECDSA signature could not be computed"))?;
        // JWS wants the fixed-size r || s (RFC 7518 §3.4), which this is.
        Ok(signature.to_bytes().to_vec())
    }
}

struct EdSigner {
    key: ed25519_dalek::SigningKey,
    jwk: Map<String, Value>,
}

impl EdSigner {
    fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let alg = JwsAlgorithm::Ed25519;
        if !pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(invalid(alg, "expected a PKCS#8 'PRIVATE KEY' PEM block"));
        }
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|_| invalid(alg, "the PEM does not hold a valid Ed25519 private key"))?;
        let mut jwk = Map::new();
        jwk.insert("kty".into(), "OKP".into());
        jwk.insert("crv".into(), "Ed25519".into());
        jwk.insert("x".into(), b64(key.verifying_key().as_bytes()).into());
        Ok(EdSigner { key, jwk })
    }
}

impl Signer for EdSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Ed25519
    }

    fn public_jwk(&self) -> Map<String, Value> {
        self.jwk.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
}

/// SHA-256 in counter mode keyed by a secret and the message: the PSS salt
/// and RSA blinding factors, without a system random source.
struct MessageRng {
    seed: [u8; 32],
    counter: u64,
    buffer: [u8; 32],
    used: usize,
}

impl MessageRng {
    fn new(key: &[u8; 32], message: &[u8]) -> Self {
        let seed = Sha256::new().chain_update(key).chain_update(message).finalize().into();
        MessageRng {
            seed,
            counter: 0,
            buffer: [0; 32],
            used: 32,
        }
    }
}

impl rand_core::RngCore for MessageRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.buffer.len() {
                self.buffer = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize()
                    .into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.buffer[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for MessageRng {}

/// The generator's state derives from the private key: cleared when dropped.
impl Drop for MessageRng {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.buffer.zeroize();
    }
}

#[cfg(test)]
mod tests {
    /// The private keys the built-in signers hold overwrite themselves when
    /// dropped; this fails to compile if a dependency's zeroizing feature is
    /// lost.
    #[test]
    fn the_signing_keys_zeroize_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<rsa::RsaPrivateKey>();
        zeroized_on_drop::<rsa::pkcs1v15::SigningKey<sha2::Sha256>>();
        zeroized_on_drop::<rsa::pss::SigningKey<sha2::Sha256>>();
        zeroized_on_drop::<p256::ecdsa::SigningKey>();
        zeroized_on_drop::<ed25519_dalek::SigningKey>();
    }
}
