//! Client assertion verification (RFC 7523 §3, OpenID Connect Core §9), as a
//! strict provider does it: signature against the registered key (or HS256
//! against the client secret), `iss` = `sub` = the client, `aud` = the issuer,
//! `exp` in the future, and every `jti` used at most once.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a verified assertion told.
pub(crate) struct Verified {
    pub client_id: String,
    /// `client_secret_jwt` or `private_key_jwt`.
    pub method: &'static str,
}

/// The parts of a compact JWS.
pub(crate) struct Decoded {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub input: String,
    pub signature: Vec<u8>,
}

pub(crate) fn decode(jws: &str) -> Option<Decoded> {
    let mut parts = jws.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let object =
        |part: &str| -> Option<Map<String, Value>> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok() };
    Some(Decoded {
        header: object(h)?,
        claims: object(c)?,
        input: format!("{h}.{c}"),
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

/// What the verifier needs to know about the issuer.
pub(crate) struct Expect<'a> {
    pub issuer: &'a str,
    pub token_endpoint: &'a str,
    /// Accept the token endpoint URL as `aud` too (providers from before the
    /// 2025 audience fixes).
    pub accept_endpoint_audience: bool,
    /// Registered clients: id, secret.
    pub clients: &'a [(String, String)],
    /// Registered public keys: client id, JWK.
    pub jwks: &'a [(String, Value)],
    pub now: u64,
}

/// Verifies `assertion` for the request's `client_id` (if sent), recording
/// its `jti` in `seen`. The error is the `error_description` to answer with.
pub(crate) fn verify(
    expect: &Expect<'_>,
    assertion_type: Option<&str>,
    assertion: &str,
    client_id: Option<&str>,
    seen: &mut HashSet<(String, String)>,
) -> Result<Verified, String> {
    if assertion_type != Some(JWT_BEARER) {
        return Err(format!("unsupported client_assertion_type {assertion_type:?}"));
    }
    let jws = decode(assertion).ok_or("client_assertion is not a compact JWS")?;
    let claim = |name: &str| jws.claims.get(name).and_then(Value::as_str);
    let iss = claim("iss").ok_or("client_assertion has no iss")?;
    if claim("sub") != Some(iss) {
        return Err("client_assertion sub must equal iss".into());
    }
    if client_id.is_some_and(|id| id != iss) {
        return Err("client_assertion iss does not match client_id".into());
    }
    let audience_ok =
        |aud: &str| aud == expect.issuer || (expect.accept_endpoint_audience && aud == expect.token_endpoint);
    let aud_ok = match jws.claims.get("aud") {
        Some(Value::String(aud)) => audience_ok(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(audience_ok),
        _ => false,
    };
    if !aud_ok {
        return Err("client_assertion aud is not this issuer".into());
    }
    let exp = jws
        .claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or("client_assertion has no exp")?;
    if exp <= expect.now {
        return Err("client_assertion has expired".into());
    }
    let jti = claim("jti").ok_or("client_assertion has no jti")?;

    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or_default();
    let method = if alg == "HS256" {
        let secret = registered(expect.clients, iss).ok_or("unknown client")?;
        verify_hs256(secret, &jws)?;
        "client_secret_jwt"
    } else {
        let jwk = registered(expect.jwks, iss).ok_or("no key registered for this client")?;
        verify_signature(jwk, alg, &jws)?;
        "private_key_jwt"
    };
    // RFC 7523 §3 item 7: a jti is used once.
    if !seen.insert((iss.to_owned(), jti.to_owned())) {
        return Err("client_assertion jti was already used (replay)".into());
    }
    Ok(Verified {
        client_id: iss.to_owned(),
        method,
    })
}

/// What `list` registers for the client `client_id`.
fn registered<'a, T>(list: &'a [(String, T)], client_id: &str) -> Option<&'a T> {
    list.iter().find(|(id, _)| id == client_id).map(|(_, value)| value)
}

fn verify_hs256(secret: &str, jws: &Decoded) -> Result<(), String> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
    mac.update(jws.input.as_bytes());
    mac.verify_slice(&jws.signature)
        .map_err(|_| "client_assertion signature is invalid".into())
}

/// Verifies a JWS signature with a public JWK for `alg`.
pub(crate) fn verify_signature(jwk: &Value, alg: &str, jws: &Decoded) -> Result<(), String> {
    let invalid = || "client_assertion signature is invalid".to_owned();
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("jwk has no {name}"))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| format!("jwk {name} is not base64url"))
    };
    let input = jws.input.as_bytes();
    match alg {
        "RS256" | "PS256" => {
            use rsa::signature::Verifier as _;
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&field("n")?),
                rsa::BigUint::from_bytes_be(&field("e")?),
            )
            .map_err(|_| "jwk is not an RSA key")?;
            if alg == "RS256" {
                let signature = rsa::pkcs1v15::Signature::try_from(jws.signature.as_slice()).map_err(|_| invalid())?;
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public)
                    .verify(input, &signature)
                    .map_err(|_| invalid())
            } else {
                let signature = rsa::pss::Signature::try_from(jws.signature.as_slice()).map_err(|_| invalid())?;
                rsa::pss::VerifyingKey::<sha2::Sha256>::new(public)
                    .verify(input, &signature)
                    .map_err(|_| invalid())
            }
        }
        "ES256" => {
            use p256::ecdsa::signature::Verifier as _;
            let mut sec1 = vec![4u8];
            sec1.extend(field("x")?);
            sec1.extend(field("y")?);
            let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "jwk is not a P-256 key")?;
            let signature = p256::ecdsa::Signature::from_slice(&jws.signature).map_err(|_| invalid())?;
            public.verify(input, &signature).map_err(|_| invalid())
        }
        "EdDSA" | "Ed25519" => {
            use ed25519_dalek::Verifier as _;
            let x: [u8; 32] = field("x")?.try_into().map_err(|_| "jwk x is not 32 bytes")?;
            let public = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| "jwk is not an Ed25519 key")?;
            let signature = ed25519_dalek::Signature::from_slice(&jws.signature).map_err(|_| invalid())?;
            public.verify(input, &signature).map_err(|_| invalid())
        }
        other => Err(format!("unsupported alg {other:?}")),
    }
}
