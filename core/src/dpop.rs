//! DPoP proofs (RFC 9449): a fresh signed JWT per request that proves
//! possession of the key a token is bound to.

use http::{HeaderValue, Method};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jose::{b64, SignError};
use crate::key::JwtKey;
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

/// Builds a DPoP proof for a request, signed by `key`, with `alg` written as given.
///
/// [`TokenSource`](crate::TokenSource) calls it for its own token requests,
/// and [`TokenSource::dpop_proof`](crate::TokenSource::dpop_proof) for
/// resource requests (with a fresh `jti` and the latest nonce).
pub(crate) fn dpop_proof(key: &JwtKey, alg: &str, claims: DpopClaims<'_>) -> Result<HeaderValue, SignError> {
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
    let proof = key.sign_jwt(alg, Some(DPOP_TYP), Some(("jwk", jwk)), false, &body)?;
    // A JWS compact serialisation is base64url and dots: always a valid header value.
    HeaderValue::try_from(proof).map_err(|_| SignError::new("the proof is not a valid header value"))
}
