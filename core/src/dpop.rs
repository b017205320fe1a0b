//! DPoP proofs (RFC 9449): a fresh signed JWT per request that proves
//! possession of the key a token is bound to.

use http::{HeaderValue, Method};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::driver::Signing;
use crate::jws::{b64, SignError};
use crate::jwt_key::{Jws, JwtKey};
use crate::time::Timestamp;

/// The `typ` header of a DPoP proof (RFC 9449 §4.2).
const DPOP_TYP: &str = "dpop+jwt";
/// The error code of a token endpoint that wants a (new) nonce (RFC 9449 §8).
pub(crate) const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// What one DPoP proof covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DpopClaims<'a> {
    /// The request's method (`htm`).
    pub method: &'a Method,
    /// The request's URI; query and fragment are dropped for `htu`.
    pub uri: &'a str,
    /// When the proof is made (`iat`).
    pub now: Timestamp,
    /// A unique id for this proof (`jti`).
    pub jti: &'a str,
    /// The server's latest `DPoP-Nonce`, if it sent one.
    pub nonce: Option<&'a str>,
    /// For requests to a resource: the access token, hashed into `ath`.
    pub access_token: Option<&'a str>,
}

/// The `htu` of a URI: without query and fragment (RFC 9449 §4.2).
fn dpop_htu(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    &uri[..end]
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub fn dpop_ath(access_token: &str) -> String {
    b64(&Sha256::digest(access_token.as_bytes()))
}

/// A DPoP proof (RFC 9449 §7) for a request to a resource, from
/// [`TokenSource::dpop_proof`](crate::TokenSource::dpop_proof) or
/// [`Driver::dpop_proof`](crate::driver::Driver::dpop_proof): send it as
/// the `DPoP` header next to `Authorization: DPoP <token>`.
///
/// A built-in key (`JwtKey::from_pem`) signs in place, so the proof comes
/// out [`Signed`](DpopProof::Signed). A key of your own
/// ([`JwtKey::from_signer`](crate::JwtKey::from_signer), an HSM or a KMS)
/// is never called by the core: the proof comes out
/// [`Unsigned`](DpopProof::Unsigned), its claims fixed (`jti`, `iat`, the
/// nonce), and you sign it where a slow signer holds up no one — outside
/// the lock you keep the source or driver behind — then finish it.
///
/// ```
/// use client_credentials::{DpopProof, Error};
///
/// fn header(proof: DpopProof) -> Result<http::HeaderValue, Error> {
///     match proof {
///         DpopProof::Signed(header) => Ok(header),
///         // Outside the lock: the signer may wait for an HSM.
///         DpopProof::Unsigned(signing) => {
///             let signature = signing.sign();
///             signing.finish(signature)
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub enum DpopProof {
    /// Signed by a built-in key: the `DPoP` header's value.
    Signed(HeaderValue),
    /// To be signed by an external signer ([`Signing::sign`], outside any
    /// lock), then finished with [`Signing::finish`].
    Unsigned(Signing),
}

/// Builds a DPoP proof for a request, for `key`, with `alg` written as given:
/// signed by a built-in key, left unsigned for an external signer (see
/// [`Jws`]); [`proof_header`] makes the header of the signed proof.
///
/// [`TokenSource`](crate::TokenSource) calls it for its own token requests,
/// and [`TokenSource::dpop_proof`](crate::TokenSource::dpop_proof) for
/// resource requests (with a fresh `jti` and the latest nonce).
pub(crate) fn dpop_proof(key: &JwtKey, alg: &str, claims: DpopClaims<'_>) -> Result<Jws, SignError> {
    let mut body = Map::new();
    body.insert("jti".into(), claims.jti.into());
    body.insert("htm".into(), claims.method.as_str().into());
    body.insert("htu".into(), dpop_htu(claims.uri).into());
    body.insert("iat".into(), (claims.now.as_unix_millis() / 1000).into());
    if let Some(nonce) = claims.nonce {
        body.insert("nonce".into(), nonce.into());
    }
    if let Some(token) = claims.access_token {
        body.insert("ath".into(), dpop_ath(token).into());
    }
    let jwk = Value::Object(key.bare_jwk());
    // RFC 9449 §4.2: the header carries the public key itself, not a `kid`.
    key.jwt(alg, Some(DPOP_TYP), Some(("jwk", jwk)), false, &body)
}

/// The `DPoP` header of a signed proof.
pub(crate) fn proof_header(proof: &str) -> Result<HeaderValue, SignError> {
    // A JWS compact serialisation is base64url and dots: always a valid header value.
    HeaderValue::try_from(proof).map_err(|_| SignError::new("the proof is not a valid header value"))
}

/// How many origins' nonces are kept: a client talking to more servers
/// than this asks the oldest for a nonce again, nothing worse.
const MAX_NONCE_ORIGINS: usize = 64;
/// A longer `DPoP-Nonce` is not kept (real ones are tens of bytes).
const MAX_NONCE_LEN: usize = 1024;

/// The latest `DPoP-Nonce` of each origin (RFC 9449 §8, §9): a server's
/// nonce is valid for its own origin only, until it sends another. At most
/// [`MAX_NONCE_ORIGINS`] are kept, the origin heard from longest ago dropped first.
#[derive(Debug, Clone, Default)]
pub(crate) struct DpopNonces {
    /// `(origin, nonce)`, the most recently heard from last.
    entries: Vec<(String, String)>,
}

impl DpopNonces {
    /// Keeps `nonce` for `url`'s origin (nothing for a URL without one).
    pub(crate) fn remember(&mut self, url: &str, nonce: &str) {
        let Some(origin) = origin_of(url) else { return };
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return;
        }
        self.entries.retain(|(known, _)| *known != origin);
        if self.entries.len() >= MAX_NONCE_ORIGINS {
            self.entries.remove(0);
        }
        self.entries.push((origin, nonce.to_owned()));
    }

    /// Whether no nonce is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nonce kept for `url`'s origin.
    pub(crate) fn get(&self, url: &str) -> Option<&str> {
        let origin = origin_of(url)?;
        self.entries
            .iter()
            .find(|(known, _)| *known == origin)
            .map(|(_, nonce)| nonce.as_str())
    }
}

/// `scheme://host[:port]` of an absolute URL, normalised (case, default port).
fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_kept_per_origin_latest_first_and_bounded() {
        let mut nonces = DpopNonces::default();
        nonces.remember("https://a.example/x?q", "1");
        nonces.remember("HTTPS://A.example:443/y", "2");
        assert_eq!(
            nonces.get("https://a.example/z"),
            Some("2"),
            "one origin, the latest nonce"
        );
        assert_eq!(nonces.get("http://a.example/z"), None, "another scheme");
        // Nothing is kept for what has no origin, nor an empty or oversized nonce.
        nonces.remember("data:text/plain,x", "3");
        nonces.remember("not a url", "3");
        nonces.remember("https://b.example/", "");
        nonces.remember("https://b.example/", &"n".repeat(MAX_NONCE_LEN + 1));
        assert_eq!(nonces.entries.len(), 1);
        for i in 0..2 * MAX_NONCE_ORIGINS {
            nonces.remember(&format!("https://r{i}.example/"), "x");
            assert!(nonces.entries.len() <= MAX_NONCE_ORIGINS);
        }
        assert_eq!(nonces.get("https://a.example/"), None, "the oldest is dropped");
        let last = format!("https://r{}.example/", 2 * MAX_NONCE_ORIGINS - 1);
        assert_eq!(nonces.get(&last), Some("x"));
    }
}
