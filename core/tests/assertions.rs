//! Client authentication beyond secrets: `private_key_jwt`,
//! `client_secret_jwt`, assertions made elsewhere, mutual TLS, and DPoP
//! (RFC 7523, RFC 8705, RFC 9449), as scenarios on a simulated clock.
#![cfg(feature = "signing")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use client_credentials::driver::{Call, Driver, Outcome, Step, Task, Work};
use client_credentials::{
    AssertionSource, ClientAuth, ClientAuthError, Config, ConfigError, Error, Event, JwsAlgorithm, JwtKey, RequestKind,
    TokenSource, JWT_BEARER_ASSERTION_TYPE, SPIFFE_ASSERTION_TYPE,
};
use common::*;
use serde_json::{json, Value};

const RSA_PEM: &str = include_str!("keys/rsa.pem");
const RSA_PKCS1_PEM: &str = include_str!("keys/rsa-pkcs1.pem");
const RSA_1024_PEM: &str = include_str!("keys/rsa-1024.pem");
const EC_PEM: &str = include_str!("keys/ec.pem");
const EC_SEC1_PEM: &str = include_str!("keys/ec-sec1.pem");
const ED_PEM: &str = include_str!("keys/ed25519.pem");

fn key(alg: JwsAlgorithm) -> JwtKey {
    let pem = match alg {
        JwsAlgorithm::Rs256 | JwsAlgorithm::Ps256 => RSA_PEM,
        JwsAlgorithm::Es256 => EC_PEM,
        _ => ED_PEM,
    };
    JwtKey::from_pem(pem, alg).expect("test key loads")
}

/// A client secret long enough for an HS256 key (RFC 7518 §3.2: 256 bits).
const HMAC_SECRET: &str = "hmac-secret-of-32-bytes-or-more/+";

const ALGORITHMS: [JwsAlgorithm; 4] = [
    JwsAlgorithm::Rs256,
    JwsAlgorithm::Ps256,
    JwsAlgorithm::Es256,
    JwsAlgorithm::Ed25519,
];

/// A decoded compact JWS: header, claims, signing input, signature.
struct Jws {
    header: Value,
    claims: Value,
    input: String,
    signature: Vec<u8>,
}

fn decode(jws: &str) -> Jws {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    Jws {
        header: serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap(),
        claims: serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap(),
        input: format!("{}.{}", parts[0], parts[1]),
        signature: b64.decode(parts[2]).unwrap(),
    }
}

/// A resource proof a built-in key signed in place.
fn signed(proof: client_credentials::DpopProof) -> http::HeaderValue {
    match proof {
        client_credentials::DpopProof::Signed(header) => header,
        client_credentials::DpopProof::Unsigned(_) => panic!("a built-in key signs in place"),
    }
}

/// Verifies a signature with the public JWK the key publishes.
fn verify(jwk: &Value, alg: &str, jws: &Jws) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let field = |name: &str| b64.decode(jwk[name].as_str().unwrap()).unwrap();
    match alg {
        "RS256" | "PS256" => {
            use rsa::signature::Verifier as _;
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&field("n")),
                rsa::BigUint::from_bytes_be(&field("e")),
            )
            .unwrap();
            if alg == "RS256" {
                let signature = rsa::pkcs1v15::Signature::try_from(jws.signature.as_slice()).unwrap();
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public)
                    .verify(jws.input.as_bytes(), &signature)
                    .expect("RS256 verifies");
            } else {
                let signature = rsa::pss::Signature::try_from(jws.signature.as_slice()).unwrap();
                rsa::pss::VerifyingKey::<sha2::Sha256>::new(public)
                    .verify(jws.input.as_bytes(), &signature)
                    .expect("PS256 verifies");
            }
        }
        "ES256" => {
            use p256::ecdsa::signature::Verifier as _;
            let mut sec1 = vec![4u8];
            sec1.extend(field("x"));
            sec1.extend(field("y"));
            let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
            let signature = p256::ecdsa::Signature::from_slice(&jws.signature).unwrap();
            public.verify(jws.input.as_bytes(), &signature).expect("ES256 verifies");
        }
        "Ed25519" | "EdDSA" => {
            use ed25519_dalek::Verifier as _;
            let public = ed25519_dalek::VerifyingKey::from_bytes(&field("x").try_into().unwrap()).unwrap();
            let signature = ed25519_dalek::Signature::from_slice(&jws.signature).unwrap();
            public.verify(jws.input.as_bytes(), &signature).expect("EdDSA verifies");
        }
        other => panic!("unexpected alg {other}"),
    }
}

fn assertion_of(request: &http::Request<Vec<u8>>) -> Jws {
    decode(&form_value(request, "client_assertion").expect("a client_assertion"))
}

fn metadata_response(extra: Value) -> http::Response<Vec<u8>> {
    let mut doc = json!({
        "issuer": ISSUER,
        "token_endpoint": "https://id.example/tenant/oauth/token",
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    response(200, doc.to_string())
}

/// Discovers (answering with `extra` members) and returns the first token request.
fn discover(source: &mut TokenSource, extra: Value) -> client_credentials::Outgoing {
    let out = send(source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    source.handle_response(at(0), out.id, metadata_response(extra)).unwrap();
    send(source, at(0))
}

#[test]
fn private_key_jwt_signs_an_assertion_for_the_issuer_with_every_algorithm() {
    for alg in ALGORITHMS {
        let key = key(alg).with_key_id("kid-1");
        let config = Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::PrivateKeyJwt(key.clone()))
            .jitter_seed(7)
            .build()
            .unwrap();
        let mut source = TokenSource::new(config, [7; 32]);
        let out = discover(&mut source, json!({}));
        let request = &out.request;
        assert_eq!(request.uri(), "https://id.example/tenant/oauth/token");
        assert!(request.headers().get(http::header::AUTHORIZATION).is_none(), "{alg}");
        assert_eq!(
            form_value(request, "client_assertion_type").unwrap(),
            JWT_BEARER_ASSERTION_TYPE
        );
        assert_eq!(form_value(request, "client_id").unwrap(), CLIENT_ID);
        assert_eq!(form_value(request, "client_secret"), None);

        let jws = assertion_of(request);
        assert_eq!(jws.header["alg"], alg.as_str());
        assert_eq!(jws.header["kid"], "kid-1");
        assert_eq!(jws.header.get("typ"), None, "untyped unless asked for");
        assert_eq!(jws.claims["iss"], CLIENT_ID);
        assert_eq!(jws.claims["sub"], CLIENT_ID);
        assert_eq!(
            jws.claims["aud"], ISSUER,
            "the issuer identifier, not the token endpoint"
        );
        assert_eq!(jws.claims["iat"], START);
        assert_eq!(jws.claims["exp"], START + 60);
        assert_eq!(jws.claims["jti"].as_str().unwrap().len(), 22);
        verify(&key.public_jwk(), alg.as_str(), &jws);
    }
}

#[test]
fn pkcs1_and_sec1_keys_load_and_sign_like_pkcs8_ones() {
    for (pem, alg) in [(RSA_PKCS1_PEM, JwsAlgorithm::Rs256), (EC_SEC1_PEM, JwsAlgorithm::Es256)] {
        let key = JwtKey::from_pem(pem, alg).unwrap();
        let pkcs8 = self::key(alg);
        assert_eq!(key.thumbprint(), pkcs8.thumbprint(), "the same key in two encodings");
    }
}

#[test]
fn the_token_endpoint_audience_lifetime_and_typ_are_configurable() {
    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
        .assertion_audience_token_endpoint()
        .assertion_lifetime(Duration::from_secs(120))
        .build()
        .unwrap();
    let jws = assertion_of(&send(&mut TokenSource::new(config, [7; 32]), at(5)).request);
    assert_eq!(jws.claims["aud"], TOKEN_URL);
    assert_eq!(
        jws.claims["exp"].as_u64().unwrap() - jws.claims["iat"].as_u64().unwrap(),
        120
    );

    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
        .assertion_audience(ISSUER)
        .assertion_typ(true)
        .build()
        .unwrap();
    let jws = assertion_of(&send(&mut TokenSource::new(config, [7; 32]), at(5)).request);
    assert_eq!(jws.claims["aud"], ISSUER);
    assert_eq!(jws.header["typ"], "client-authentication+jwt");

    // A token endpoint configured directly, no issuer known: the endpoint is the identifier.
    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
        .build()
        .unwrap();
    let jws = assertion_of(&send(&mut TokenSource::new(config, [7; 32]), at(5)).request);
    assert_eq!(jws.claims["aud"], TOKEN_URL);
}

#[test]
fn inconsistent_assertion_settings_are_config_errors() {
    let typed_to_endpoint = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
        .assertion_typ(true)
        .assertion_audience_token_endpoint()
        .build();
    assert_eq!(typed_to_endpoint.unwrap_err(), ConfigError::TypedAssertionAudience);
    for lifetime in [Duration::ZERO, Duration::from_secs(3600)] {
        assert!(matches!(
            builder().assertion_lifetime(lifetime).build(),
            Err(ConfigError::InvalidDuration {
                field: "assertion_lifetime",
                ..
            })
        ));
    }
    let no_secret = Config::builder(CLIENT_ID, "")
        .token_endpoint(TOKEN_URL)
        .auth(ClientAuth::ClientSecretJwt)
        .build();
    assert!(matches!(no_secret, Err(ConfigError::MissingSecret { .. })));
    let typed_without_issuer = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
        .assertion_typ(true)
        .build();
    assert_eq!(
        typed_without_issuer.unwrap_err(),
        ConfigError::TypedAssertionWithoutIssuer
    );
    assert!(matches!(
        builder().param("client_assertion", "x").build(),
        Err(ConfigError::ReservedParameter { .. })
    ));
}

#[test]
fn every_attempt_gets_a_fresh_jti_retries_included() {
    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Ed25519)))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let mut seen = Vec::new();
    let mut now = at(0);
    for _ in 0..3 {
        let out = send(&mut source, now);
        let jws = assertion_of(&out.request);
        assert_eq!(
            jws.claims["iat"].as_u64().unwrap(),
            now.as_unix_millis() / 1000,
            "iat is the attempt's now"
        );
        seen.push(jws.claims["jti"].as_str().unwrap().to_owned());
        match source.handle_response(now, out.id, response(503, "")) {
            Ok(Event::RetryScheduled { at, .. }) => now = at,
            Err(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen.len(), 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{seen:?}");
}

#[test]
fn the_jti_sequence_is_repeatable_from_the_seed_and_differs_across_seeds() {
    let first_jti = |seed: Option<[u8; 32]>| {
        let config = builder()
            .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Ed25519)))
            .build()
            .unwrap();
        let mut source = TokenSource::new(config, seed.unwrap_or([7; 32]));
        assertion_of(&send(&mut source, at(0)).request).claims["jti"].clone()
    };
    assert_eq!(first_jti(None), first_jti(None));
    assert_eq!(first_jti(Some([1; 32])), first_jti(Some([1; 32])));
    assert_ne!(first_jti(Some([1; 32])), first_jti(Some([2; 32])));
}

/// RFC 7518 §3.2: an HS256 key has at least 256 bits. A shorter client
/// secret would let anyone who sees one assertion brute-force it offline.
#[test]
fn client_secret_jwt_needs_a_secret_of_at_least_32_bytes() {
    let with_secret = |secret: &str| {
        Config::builder(CLIENT_ID, secret)
            .token_endpoint(TOKEN_URL)
            .auth(ClientAuth::ClientSecretJwt)
            .build()
    };
    for short in ["secret", SECRET, &"s".repeat(31)] {
        assert_eq!(
            with_secret(short).unwrap_err(),
            ConfigError::HmacSecretTooShort,
            "{short}"
        );
    }
    assert!(with_secret(&"s".repeat(32)).is_ok());
    // The error names the rule, never the secret.
    let message = with_secret("hunter2").unwrap_err().to_string();
    assert!(
        message.contains("32 bytes") && !message.contains("hunter2"),
        "{message}"
    );
    // Other methods take a short secret as before.
    assert!(Config::builder(CLIENT_ID, "secret")
        .token_endpoint(TOKEN_URL)
        .build()
        .is_ok());
}

#[test]
fn client_secret_jwt_is_hs256_over_the_secret_which_is_never_sent() {
    use hmac::Mac as _;
    let config = Config::builder(CLIENT_ID, HMAC_SECRET)
        .token_endpoint(TOKEN_URL)
        .auth(ClientAuth::ClientSecretJwt)
        .build()
        .unwrap();
    let request = send(&mut TokenSource::new(config, [7; 32]), at(0)).request;
    assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
    assert_eq!(form_value(&request, "client_secret"), None);
    let body = String::from_utf8(request.body().clone()).unwrap();
    assert!(!body.contains("hmac-secret"), "the secret is not in the body");
    let jws = assertion_of(&request);
    assert_eq!(jws.header["alg"], "HS256");
    assert_eq!(jws.claims["iss"], CLIENT_ID);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).unwrap();
    mac.update(jws.input.as_bytes());
    mac.verify_slice(&jws.signature).expect("HS256 over the client secret");
}

fn unsigned_assertion(exp: u64) -> String {
    jwt(&format!(
        r#"{{"iss":"spiffe://example.org/w","sub":"spiffe://example.org/w","aud":"{ISSUER}","exp":{exp}}}"#
    ))
}

#[test]
fn a_callback_assertion_is_sent_as_made_and_an_expired_one_is_never_sent() {
    let current = Arc::new(Mutex::new(unsigned_assertion(START + 300)));
    let shared = current.clone();
    let source_fn = AssertionSource::callback(move || Ok::<_, String>(shared.lock().unwrap().clone()));
    let config = Config::builder(CLIENT_ID, "")
        .token_endpoint(TOKEN_URL)
        .auth(ClientAuth::Assertion(source_fn))
        .jitter_seed(7)
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    assert_eq!(
        form_value(&out.request, "client_assertion").unwrap(),
        unsigned_assertion(START + 300)
    );
    assert_eq!(
        form_value(&out.request, "client_assertion_type").unwrap(),
        JWT_BEARER_ASSERTION_TYPE
    );
    source.handle_response(at(0), out.id, token_ok("t1", 60)).unwrap();

    // The token is due for refresh, and the assertion expired meanwhile: no request.
    let now = at(400);
    assert!(matches!(
        failed(&mut source, now),
        Error::ClientAuth(ClientAuthError::AssertionExpired { .. })
    ));
    assert!(source.retry_at().is_some());

    // Renewed: the next round sends it.
    *current.lock().unwrap() = unsigned_assertion(START + 900);
    let until = source.retry_at();
    let out = send(&mut source, until.unwrap());
    assert_eq!(
        form_value(&out.request, "client_assertion").unwrap(),
        unsigned_assertion(START + 900)
    );
}

#[test]
fn a_failing_callback_is_a_clear_error() {
    let source_fn = AssertionSource::callback(|| Err::<String, _>("token file missing"));
    let config = builder().auth(ClientAuth::Assertion(source_fn)).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let error = failed(&mut source, at(0));
    assert!(matches!(
        error,
        Error::ClientAuth(ClientAuthError::AssertionUnavailable { .. })
    ));
    assert!(error.to_string().contains("token file missing"), "{error}");
    assert!(!error.is_retryable());
}

/// Steps a caller at `now` to its next request, answering each assertion
/// read the driver hands out with `read` (as an adapter reading the file
/// would): the work that sends it, or the caller's error.
fn driven(
    driver: &mut Driver,
    now: client_credentials::Timestamp,
    read: Option<Result<String, String>>,
) -> Result<Work, Error> {
    let mut call = Call::token();
    loop {
        match driver.step(now, &mut call) {
            Step::Work(work) if matches!(work.task, Task::ReadAssertion { .. }) => {
                assert!(driver
                    .handle(now, work.ticket, Outcome::Assertion(read.clone()))
                    .is_none());
            }
            Step::Work(work) => return Ok(work),
            Step::Failed(error) => return Err(error),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn sent(work: &Work) -> &http::Request<Vec<u8>> {
    match &work.task {
        Task::Send(outgoing, _) => &outgoing.request,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn a_file_assertion_is_what_the_adapter_provides_with_its_assertion_type() {
    let config = Config::builder("spiffe://example.org/w", "")
        .issuer(ISSUER)
        .auth(ClientAuth::Assertion(AssertionSource::file("/run/svid.jwt").spiffe()))
        .jitter_seed(7)
        .build()
        .unwrap();
    assert_eq!(config.assertion_file().unwrap().to_str(), Some("/run/svid.jwt"));
    let mut driver = Driver::new(TokenSource::new(config, [7; 32]));
    // Nothing read yet (`None`: the file did not change): discovery needs no
    // assertion, the token request cannot be made.
    let discovery = driven(&mut driver, at(0), None).unwrap();
    assert!(driver
        .handle(at(0), discovery.ticket, Outcome::Response(metadata_response(json!({}))))
        .is_none());
    // Nothing provided yet: a clear error, no request.
    assert!(matches!(
        driven(&mut driver, at(0), None),
        Err(Error::ClientAuth(ClientAuthError::AssertionUnavailable { .. }))
    ));

    let read = Some(Ok(format!("{}\n", unsigned_assertion(START + 3600))));
    let work = driven(&mut driver, at(60), read).unwrap();
    let out = sent(&work);
    assert_eq!(
        form_value(out, "client_assertion").unwrap(),
        unsigned_assertion(START + 3600)
    );
    assert_eq!(form_value(out, "client_assertion_type").unwrap(), SPIFFE_ASSERTION_TYPE);
    assert_eq!(form_value(out, "client_secret"), None);
}

#[test]
fn an_unreadable_or_malformed_file_assertion_is_a_clear_error() {
    for (provided, expect_unavailable) in [
        (Err("permission denied".to_owned()), true),
        (Ok("not a jwt".to_owned()), false),
        (Ok(jwt("[1,2]")), false),
    ] {
        let config = builder()
            .auth(ClientAuth::Assertion(AssertionSource::file("/t")))
            .build()
            .unwrap();
        let mut driver = Driver::new(TokenSource::new(config, [7; 32]));
        match driven(&mut driver, at(0), Some(provided)).map(|_| ()).unwrap_err() {
            Error::ClientAuth(ClientAuthError::AssertionUnavailable { .. }) => assert!(expect_unavailable),
            Error::ClientAuth(ClientAuthError::InvalidAssertion { .. }) => assert!(!expect_unavailable),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn mutual_tls_sends_the_client_id_only_and_uses_the_discovered_alias() {
    let config = Config::builder(CLIENT_ID, "")
        .issuer(ISSUER)
        .auth(ClientAuth::TlsClientAuth)
        .build()
        .unwrap();
    assert!(config.uses_mutual_tls());
    let mut source = TokenSource::new(config, [7; 32]);
    let out = discover(
        &mut source,
        json!({"mtls_endpoint_aliases": {"token_endpoint": "https://mtls.id.example/tenant/oauth/token"}}),
    );
    assert_eq!(out.request.uri(), "https://mtls.id.example/tenant/oauth/token");
    assert!(out.request.headers().get(http::header::AUTHORIZATION).is_none());
    assert_eq!(
        form(&out.request),
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned())
        ]
    );

    // Without a client certificate the alias is not used.
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, SECRET).issuer(ISSUER).build().unwrap(),
        [7; 32],
    );
    let out = discover(
        &mut source,
        json!({"mtls_endpoint_aliases": {"token_endpoint": "https://mtls.id.example/tenant/oauth/token"}}),
    );
    assert_eq!(out.request.uri(), "https://id.example/tenant/oauth/token");
}

#[test]
fn discovery_negotiates_private_key_jwt_and_mtls_when_the_credential_is_configured() {
    let negotiated = |builder: client_credentials::ConfigBuilder, methods: Value| {
        let mut source = TokenSource::new(builder.issuer(ISSUER).build().unwrap(), [7; 32]);
        let out = discover(&mut source, json!({ "token_endpoint_auth_methods_supported": methods }));
        let has_assertion = form_value(&out.request, "client_assertion").is_some();
        let has_basic = out.request.headers().contains_key(http::header::AUTHORIZATION);
        let has_secret = form_value(&out.request, "client_secret").is_some();
        (has_assertion, has_basic, has_secret)
    };
    let with_key = || Config::builder(CLIENT_ID, SECRET).client_assertion_key(key(JwsAlgorithm::Es256));
    assert_eq!(
        negotiated(with_key(), json!(["client_secret_basic", "private_key_jwt"])),
        (true, false, false)
    );
    assert_eq!(
        negotiated(with_key(), json!(["client_secret_basic"])),
        (false, true, false)
    );
    // No key: the secret methods as before, client_secret_jwt when it is the only one.
    let plain = || Config::builder(CLIENT_ID, SECRET);
    assert_eq!(
        negotiated(plain(), json!(["private_key_jwt", "client_secret_post"])),
        (false, false, true)
    );
    let hmac = || Config::builder(CLIENT_ID, HMAC_SECRET);
    assert_eq!(negotiated(hmac(), json!(["client_secret_jwt"])), (true, false, false));
    // A secret too short for an HS256 key is never used as one (RFC 7518 §3.2).
    assert_eq!(negotiated(plain(), json!(["client_secret_jwt"])), (false, true, false));
    // A client certificate and tls_client_auth listed: only the client id.
    assert_eq!(
        negotiated(plain().mutual_tls(), json!(["tls_client_auth", "client_secret_basic"])),
        (false, false, false)
    );
}

#[test]
fn an_algorithm_the_provider_does_not_list_is_a_typed_error_and_eddsa_is_spoken_when_needed() {
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Es256)))
            .build()
            .unwrap(),
        [7; 32],
    );
    let out = send(&mut source, at(0));
    let listed = json!({"token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256"]});
    source
        .handle_response(at(0), out.id, metadata_response(listed))
        .unwrap();
    match failed(&mut source, at(0)) {
        Error::ClientAuth(ClientAuthError::UnsupportedAlgorithm { alg, supported, .. }) => {
            assert_eq!(alg, JwsAlgorithm::Es256);
            assert_eq!(supported, &["RS256", "PS256"]);
        }
        other => panic!("unexpected {other:?}"),
    }

    let ed = key(JwsAlgorithm::Ed25519);
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::PrivateKeyJwt(ed.clone()))
            .build()
            .unwrap(),
        [7; 32],
    );
    let out = discover(
        &mut source,
        json!({"token_endpoint_auth_signing_alg_values_supported": ["RS256", "EdDSA"]}),
    );
    let jws = assertion_of(&out.request);
    assert_eq!(jws.header["alg"], "EdDSA");
    verify(&ed.public_jwk(), "EdDSA", &jws);
}

#[test]
fn bad_keys_are_typed_errors_that_never_quote_the_key() {
    let garbage =
        "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq\n-----END PRIVATE KEY-----\n";
    let cases = [
        ("", JwsAlgorithm::Rs256),
        ("not pem at all", JwsAlgorithm::Es256),
        (garbage, JwsAlgorithm::Rs256),
        (RSA_1024_PEM, JwsAlgorithm::Rs256),
        (EC_PEM, JwsAlgorithm::Rs256),
        (RSA_PEM, JwsAlgorithm::Es256),
        (RSA_PEM, JwsAlgorithm::Ed25519),
        (RSA_PKCS1_PEM, JwsAlgorithm::Ed25519),
        (EC_SEC1_PEM, JwsAlgorithm::Ed25519),
        (ED_PEM, JwsAlgorithm::Es256),
    ];
    for (pem, alg) in cases {
        let error = JwtKey::from_pem(pem, alg).unwrap_err();
        assert!(matches!(error, ConfigError::InvalidKey { .. }), "{error:?}");
        let shown = format!("{error} {error:?}");
        for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 8) {
            assert!(!shown.contains(&line[..8]), "{shown}");
        }
    }
    let key = key(JwsAlgorithm::Rs256);
    let shown = format!("{key:?} {:?}", ClientAuth::PrivateKeyJwt(key.clone()));
    assert!(!shown.contains("MII"), "{shown}");
    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key.clone()))
        .dpop(key)
        .build()
        .unwrap();
    assert!(!format!("{config:?}").contains("MII"));
}

#[test]
fn signout_revokes_with_a_fresh_assertion_at_the_mtls_or_plain_endpoint() {
    let key = key(JwsAlgorithm::Es256);
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::PrivateKeyJwt(key))
            .jitter_seed(7)
            .build()
            .unwrap(),
        [7; 32],
    );
    let out = discover(
        &mut source,
        json!({"revocation_endpoint": "https://id.example/tenant/revoke"}),
    );
    let token_jti = assertion_of(&out.request).claims["jti"].clone();
    source.handle_response(at(0), out.id, token_ok("t1", 600)).unwrap();
    ready(&mut source, at(30));
    let revoke = source.signout(at(45)).expect("a revocation request");
    assert_eq!(revoke.request.uri(), "https://id.example/tenant/revoke");
    assert_eq!(form_value(&revoke.request, "token").unwrap(), "t1");
    let jws = assertion_of(&revoke.request);
    assert_ne!(jws.claims["jti"], token_jti);
    assert_eq!(jws.claims["iat"], START + 45, "dated at the sign-out");

    // With a client certificate, the revocation alias; only the client id in the body.
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::SelfSignedTlsClientAuth)
            .build()
            .unwrap(),
        [7; 32],
    );
    let aliases = json!({
        "revocation_endpoint": "https://id.example/tenant/revoke",
        "mtls_endpoint_aliases": {
            "token_endpoint": "https://mtls.id.example/token",
            "revocation_endpoint": "https://mtls.id.example/revoke"
        }
    });
    let out = discover(&mut source, aliases);
    assert_eq!(out.request.uri(), "https://mtls.id.example/token");
    source.handle_response(at(0), out.id, token_ok("t2", 600)).unwrap();
    let revoke = source.signout(at(1)).unwrap();
    assert_eq!(revoke.request.uri(), "https://mtls.id.example/revoke");
    assert_eq!(form_value(&revoke.request, "client_id").unwrap(), CLIENT_ID);
    assert_eq!(form_value(&revoke.request, "client_secret"), None);
}

#[test]
fn an_mtls_alias_that_is_not_https_is_ignored() {
    let mut source = TokenSource::new(
        Config::builder(CLIENT_ID, "")
            .issuer(ISSUER)
            .auth(ClientAuth::TlsClientAuth)
            .build()
            .unwrap(),
        [7; 32],
    );
    let out = discover(
        &mut source,
        json!({"mtls_endpoint_aliases": {"token_endpoint": "http://mtls.id.example/token"}}),
    );
    assert_eq!(out.request.uri(), "https://id.example/tenant/oauth/token");
}

#[test]
fn the_refresh_token_grant_authenticates_with_a_new_assertion_too() {
    let config = builder()
        .auth(ClientAuth::PrivateKeyJwt(key(JwsAlgorithm::Ed25519)))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let first = assertion_of(&out.request).claims["jti"].clone();
    let answer = response(
        200,
        r#"{"access_token":"t1","token_type":"Bearer","expires_in":60,"refresh_token":"r1"}"#,
    );
    source.handle_response(at(0), out.id, answer).unwrap();
    let out = send(&mut source, at(50));
    assert_eq!(form_value(&out.request, "grant_type").unwrap(), "refresh_token");
    assert_ne!(assertion_of(&out.request).claims["jti"], first);
}

/// An HSM/KMS stand-in: signs with a key it keeps to itself, counting calls.
struct CountingSigner {
    inner: JwtKey,
    calls: Arc<Mutex<u32>>,
    fail: bool,
}

impl client_credentials::Signer for CountingSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.inner.algorithm()
    }
    fn key_id(&self) -> Option<&str> {
        Some("hsm-key-7")
    }
    fn public_jwk(&self) -> serde_json::Map<String, Value> {
        let mut jwk = self.inner.public_jwk().as_object().unwrap().clone();
        jwk.remove("alg");
        jwk
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, client_credentials::SignError> {
        *self.calls.lock().unwrap() += 1;
        if self.fail {
            return Err(client_credentials::SignError::new("the HSM is offline"));
        }
        // The key inside the "HSM": the Ed25519 test key.
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        use ed25519_dalek::Signer as _;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(ED_PEM).unwrap();
        Ok(key.sign(message).to_bytes().to_vec())
    }
}

#[test]
fn a_signer_of_your_own_signs_assertions_and_its_failure_is_typed() {
    let calls = Arc::new(Mutex::new(0));
    let signer = CountingSigner {
        inner: key(JwsAlgorithm::Ed25519),
        calls: calls.clone(),
        fail: false,
    };
    let key = JwtKey::from_signer(signer);
    assert_eq!(key.key_id(), Some("hsm-key-7"), "the signer's key id");
    let config = builder().auth(ClientAuth::PrivateKeyJwt(key.clone())).build().unwrap();
    let out = send(&mut TokenSource::new(config, [7; 32]), at(0));
    let jws = assertion_of(&out.request);
    assert_eq!(jws.header["kid"], "hsm-key-7");
    assert_eq!(jws.header["alg"], "Ed25519");
    verify(&key.public_jwk(), "Ed25519", &jws);
    assert_eq!(*calls.lock().unwrap(), 1);

    let failing = JwtKey::from_signer(CountingSigner {
        inner: self::key(JwsAlgorithm::Ed25519),
        calls,
        fail: true,
    });
    let config = builder().auth(ClientAuth::PrivateKeyJwt(failing)).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    match source.poll(at(0)) {
        client_credentials::Action::Failed(Error::ClientAuth(ClientAuthError::Signing(error))) => {
            assert_eq!(error.reason(), "the HSM is offline");
        }
        other => panic!("unexpected {other:?}"),
    }
}

// ---- DPoP ----

fn dpop_config() -> Config {
    builder().dpop(key(JwsAlgorithm::Es256)).build().unwrap()
}

fn proof_of(request: &http::Request<Vec<u8>>) -> Jws {
    decode(request.headers().get("dpop").expect("a DPoP header").to_str().unwrap())
}

#[test]
fn every_token_request_carries_a_fresh_dpop_proof() {
    let key = key(JwsAlgorithm::Es256);
    let config = Config::builder(CLIENT_ID, SECRET)
        .token_endpoint("https://auth.example/oauth2/token?tenant=a")
        .dpop(key.clone())
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let proof = proof_of(&out.request);
    assert_eq!(proof.header["typ"], "dpop+jwt");
    assert_eq!(proof.header["alg"], "ES256");
    assert_eq!(proof.header["jwk"]["kty"], "EC");
    assert_eq!(proof.header["jwk"].get("d"), None, "no private member");
    assert_eq!(proof.claims["htm"], "POST");
    assert_eq!(proof.claims["htu"], "https://auth.example/oauth2/token", "no query");
    assert_eq!(proof.claims["iat"], START);
    assert_eq!(proof.claims.get("ath"), None);
    assert_eq!(proof.claims.get("nonce"), None);
    verify(&key.public_jwk(), "ES256", &proof);
    let first_jti = proof.claims["jti"].clone();

    let answer = response(200, r#"{"access_token":"t1","token_type":"DPoP","expires_in":60}"#);
    let token = match source.handle_response(at(0), out.id, answer) {
        Ok(Event::TokenUpdated(token)) => token,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(token.authorization_header(), "DPoP t1");

    let out = send(&mut source, at(50));
    assert_ne!(proof_of(&out.request).claims["jti"], first_jti);
}

#[test]
fn use_dpop_nonce_is_answered_by_one_immediate_retry_and_the_nonce_is_kept() {
    let mut source = TokenSource::new(dpop_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let nonce_answer = with_header(oauth_error(400, "use_dpop_nonce"), "dpop-nonce", "n-1");
    assert!(matches!(
        source.handle_response(at(0), out.id, nonce_answer),
        Ok(Event::Fallback { .. })
    ));
    let out = send(&mut source, at(0));
    assert_eq!(proof_of(&out.request).claims["nonce"], "n-1");
    let ok = with_header(
        response(200, r#"{"access_token":"t1","token_type":"DPoP","expires_in":60}"#),
        "dpop-nonce",
        "n-2",
    );
    source.handle_response(at(0), out.id, ok).unwrap();

    // The next refresh uses the latest nonce from the start.
    let out = send(&mut source, at(50));
    assert_eq!(proof_of(&out.request).claims["nonce"], "n-2");
}

#[test]
fn a_second_use_dpop_nonce_in_a_row_is_a_typed_error() {
    let mut source = TokenSource::new(dpop_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let nonce = |n: &str| with_header(oauth_error(400, "use_dpop_nonce"), "dpop-nonce", n);
    source.handle_response(at(0), out.id, nonce("n-1")).unwrap();
    let out = send(&mut source, at(0));
    let error = source.handle_response(at(0), out.id, nonce("n-2")).unwrap_err();
    assert_eq!(error, Error::ClientAuth(ClientAuthError::DpopNonceLoop));
    assert!(!error.is_retryable());
    assert_eq!(failed(&mut source, at(0)), error);
}

#[test]
fn a_dpop_token_type_is_refused_unless_dpop_was_configured() {
    let mut source = source();
    let out = send(&mut source, at(0));
    let answer = response(200, r#"{"access_token":"t1","token_type":"DPoP","expires_in":60}"#);
    assert!(matches!(
        source.handle_response(at(0), out.id, answer),
        Err(Error::InvalidResponse { .. })
    ));
}

#[test]
fn resource_proofs_bind_the_method_url_and_access_token() {
    let key = key(JwsAlgorithm::Ed25519);
    let config = builder().dpop(key.clone()).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    // With DPoP configured only a DPoP-bound token is ever cached.
    let token = client_credentials::AccessToken::builder("access-token-value")
        .token_type("DPoP")
        .build()
        .unwrap();
    let proof = source
        .dpop_proof(
            at(10),
            &http::Method::GET,
            "https://api.example/v1/items?page=2#top",
            Some(&token),
            None,
        )
        .unwrap()
        .expect("DPoP is configured");
    let proof = decode(signed(proof).to_str().unwrap());
    assert_eq!(proof.claims["htm"], "GET");
    assert_eq!(proof.claims["htu"], "https://api.example/v1/items");
    assert_eq!(proof.claims["iat"], START + 10);
    assert_eq!(proof.claims["ath"], client_credentials::dpop_ath("access-token-value"));
    // RFC 9449 §4.2's example: ath of "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".
    assert_eq!(
        client_credentials::dpop_ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    verify(&key.public_jwk(), "Ed25519", &proof);

    // Without DPoP there is no proof.
    assert!(matches!(
        self::source().dpop_proof(at(0), &http::Method::GET, "https://api.example/", None, None),
        Ok(None)
    ));
}

#[test]
fn a_dpop_algorithm_the_provider_does_not_list_is_a_typed_error() {
    let config = Config::builder(CLIENT_ID, SECRET)
        .issuer(ISSUER)
        .dpop(key(JwsAlgorithm::Ed25519))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let listed = json!({"dpop_signing_alg_values_supported": ["ES256", "RS256"]});
    source
        .handle_response(at(0), out.id, metadata_response(listed))
        .unwrap();
    assert!(matches!(
        failed(&mut source, at(0)),
        Error::ClientAuth(ClientAuthError::UnsupportedAlgorithm {
            purpose: "DPoP proofs",
            ..
        })
    ));
}

#[test]
fn the_public_jwk_and_thumbprint_follow_rfc_7638() {
    let key = key(JwsAlgorithm::Ed25519).with_key_id("k");
    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], "k");
    assert_eq!(jwk["alg"], "Ed25519");
    assert_eq!(jwk.get("d"), None);
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        jwk["x"].as_str().unwrap()
    );
    use sha2::Digest as _;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical));
    assert_eq!(key.thumbprint(), expected);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Over any start time, lifetime and schedule of 5xx answers: each
        /// attempt's assertion has aud = issuer, exp - iat = the lifetime,
        /// iat = that attempt's now, and no jti repeats.
        #[test]
        fn assertion_claims_hold_across_retry_schedules(
            start in 0u64..4_000_000_000,
            lifetime in 1u64..=600,
            statuses in proptest::collection::vec(prop_oneof![Just(500u16), Just(503), Just(429), Just(200)], 1..8),
        ) {
            let config = Config::builder(CLIENT_ID, HMAC_SECRET)
                .token_endpoint(TOKEN_URL)
                .assertion_audience(ISSUER)
                .assertion_lifetime(Duration::from_secs(lifetime))
                .auth(ClientAuth::ClientSecretJwt)
                .dpop(key(JwsAlgorithm::Ed25519))
                .max_attempts(10)
                .jitter_seed(start)
                .build()
                .unwrap();
            let mut source = TokenSource::new(config, [7; 32]);
            let mut now = client_credentials::Timestamp::from_unix_secs(start);
            let mut jtis = Vec::new();
            for status in statuses {
                let out = match source.poll(now) {
                    client_credentials::Action::Send(out) => out,
                    _ => break,
                };
                let jws = assertion_of(&out.request);
                let proof = proof_of(&out.request);
                prop_assert_eq!(&jws.claims["aud"], ISSUER);
                let iat = jws.claims["iat"].as_u64().unwrap();
                prop_assert_eq!(iat, now.as_unix_millis() / 1000);
                prop_assert_eq!(jws.claims["exp"].as_u64().unwrap() - iat, lifetime);
                prop_assert_eq!(&proof.claims["htu"], TOKEN_URL);
                prop_assert_eq!(&proof.claims["htm"], "POST");
                jtis.push(jws.claims["jti"].as_str().unwrap().to_owned());
                jtis.push(proof.claims["jti"].as_str().unwrap().to_owned());
                let answer = if status == 200 { token_ok("t", 1) } else { response(status, "") };
                match source.handle_response(now, out.id, answer) {
                    Ok(Event::RetryScheduled { at, .. }) => now = at,
                    Ok(_) => now = now.saturating_add(Duration::from_secs(2)),
                    Err(_) => break,
                }
            }
            let count = jtis.len();
            jtis.sort();
            jtis.dedup();
            prop_assert_eq!(jtis.len(), count);
        }

        /// Resource proofs: for any method, URL (with or without query and
        /// fragment), token and nonce, `htm`, `htu`, `ath` and `nonce` are
        /// what RFC 9449 §4.2 says, and the signature verifies.
        #[test]
        fn resource_proof_claims_hold_for_any_request(
            method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PATCH")],
            path in "[a-z0-9/]{0,20}",
            query in proptest::option::of("[a-z0-9=&]{0,12}"),
            fragment in proptest::option::of("[a-z0-9]{0,8}"),
            token in "[A-Za-z0-9._~+/-]{1,64}",
            nonce in proptest::option::of("[A-Za-z0-9_-]{1,32}"),
            secs in 0u64..4_000_000_000,
        ) {
            let key = key(JwsAlgorithm::Ed25519);
            let mut source = TokenSource::new(builder().dpop(key.clone()).build().unwrap(), [7; 32]);
            let base = format!("https://api.example/{path}");
            let mut url = base.clone();
            if let Some(q) = &query { url = format!("{url}?{q}"); }
            if let Some(f) = &fragment { url = format!("{url}#{f}"); }
            let access = client_credentials::AccessToken::builder(token.clone()).build().unwrap();
            let method = http::Method::from_bytes(method.as_bytes()).unwrap();
            let now = client_credentials::Timestamp::from_unix_secs(secs);
            let proof = source.dpop_proof(now, &method, &url, Some(&access), nonce.as_deref()).unwrap().unwrap();
            let proof = decode(signed(proof).to_str().unwrap());
            prop_assert_eq!(&proof.claims["htm"], method.as_str());
            prop_assert_eq!(&proof.claims["htu"], base.as_str());
            let ath = client_credentials::dpop_ath(&token);
            prop_assert_eq!(&proof.claims["ath"], ath.as_str());
            prop_assert_eq!(proof.claims["iat"].as_u64(), Some(secs));
            prop_assert_eq!(proof.claims.get("nonce").and_then(Value::as_str), nonce.as_deref());
            verify(&key.public_jwk(), "Ed25519", &proof);
        }

        /// Over any schedule of answers (a nonce request with a new nonce, a
        /// 503, a token with or without a new nonce): every proof carries
        /// the latest nonce the server sent, a nonce request is retried at
        /// once unless it follows another, and the form body always carries
        /// the assertion, never the secret.
        #[test]
        fn the_latest_nonce_is_always_sent_and_nonce_loops_end_the_round(
            answers in proptest::collection::vec((0u8..4, "[A-Za-z0-9]{4,12}"), 1..12),
        ) {
            let config = Config::builder(CLIENT_ID, HMAC_SECRET)
                .token_endpoint(TOKEN_URL)
                .auth(ClientAuth::ClientSecretJwt)
                .dpop(key(JwsAlgorithm::Es256))
                .max_attempts(20)
                .build()
                .unwrap();
            let mut source = TokenSource::new(config, [7; 32]);
            let mut now = at(0);
            let mut latest: Option<String> = None;
            let mut previous_was_nonce = false;
            for (kind, nonce) in answers {
                let out = match source.poll(now) {
                    client_credentials::Action::Send(out) => out,
                    _ => { now = now.saturating_add(Duration::from_secs(3600)); continue; }
                };
                if out.kind != RequestKind::Token { break; }
                let proof = proof_of(&out.request);
                prop_assert_eq!(proof.claims.get("nonce").and_then(Value::as_str), latest.as_deref());
                let assertion_type = form_value(&out.request, "client_assertion_type");
                prop_assert_eq!(assertion_type.as_deref(), Some(JWT_BEARER_ASSERTION_TYPE));
                prop_assert!(form_value(&out.request, "client_secret").is_none());
                let answer = match kind {
                    0 => with_header(oauth_error(400, "use_dpop_nonce"), "dpop-nonce", &nonce),
                    1 => response(503, ""),
                    2 => with_header(token_ok("t", 60), "dpop-nonce", &nonce),
                    _ => token_ok("t", 60),
                };
                if kind == 0 || kind == 2 { latest = Some(nonce.clone()); }
                let result = source.handle_response(now, out.id, answer);
                if kind == 0 {
                    if previous_was_nonce {
                        prop_assert_eq!(result.unwrap_err(), Error::ClientAuth(ClientAuthError::DpopNonceLoop));
                    } else {
                        let is_fallback = matches!(result, Ok(Event::Fallback { .. }));
                        prop_assert!(is_fallback);
                    }
                }
                previous_was_nonce = kind == 0 && !previous_was_nonce;
                now = now.saturating_add(Duration::from_secs(3600));
            }
        }

        /// Whatever an assertion source returns, nothing panics, and a
        /// request goes out only with an unexpired JWT, exactly as given.
        #[test]
        fn external_assertions_are_sent_only_when_usable(
            junk in "\\PC{0,80}",
            exp_offset in proptest::option::of(-600i64..600),
            as_jwt in any::<bool>(),
        ) {
            let assertion = if as_jwt {
                match exp_offset {
                    Some(offset) => jwt(&format!(r#"{{"iss":"w","exp":{}}}"#, START as i64 + offset)),
                    None => jwt(r#"{"iss":"w"}"#),
                }
            } else {
                junk.clone()
            };
            let given = assertion.clone();
            let source_fn = AssertionSource::callback(move || Ok::<_, String>(given.clone()));
            let config = builder().auth(ClientAuth::Assertion(source_fn)).build().unwrap();
            let mut source = TokenSource::new(config, [7; 32]);
            match source.poll(at(0)) {
                client_credentials::Action::Send(out) => {
                    prop_assert!(as_jwt || assertion.trim().split('.').count() == 3);
                    prop_assert!(exp_offset.is_none_or(|offset| offset > 0));
                    prop_assert_eq!(form_value(&out.request, "client_assertion"), Some(assertion.trim().to_owned()));
                }
                client_credentials::Action::Failed(error) => {
                    let failed = matches!(error, Error::ClientAuth(_));
                    prop_assert!(failed);
                    prop_assert!(!as_jwt || exp_offset.is_some_and(|offset| offset <= 0));
                }
                other => prop_assert!(false, "neither sent nor failed: {other:?}"),
            }
        }

        /// No input to the PEM loader panics or echoes itself.
        #[test]
        fn from_pem_never_panics(body in "[A-Za-z0-9+/=\n]{0,300}", alg in 0usize..4) {
            let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
            if let Err(error) = JwtKey::from_pem(&pem, ALGORITHMS[alg]) {
                let shown = error.to_string();
                prop_assert!(body.len() < 12 || !shown.contains(&body[..12]));
            }
        }
    }
}
