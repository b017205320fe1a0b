//! The test issuer verifies client assertions (RFC 7523) like a strict
//! provider: signature, claims, and a `jti` used at most once. The assertions
//! are the core's own, sent over a raw socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::SystemTime;

use client_credentials::{Action, ClientAuth, Config, JwsAlgorithm, JwtKey, Timestamp, TokenSource};
use client_credentials_testkit::{AuthMethod, TestIssuer, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
use serde_json::Value;

const EC_PEM: &str = include_str!("../../../core/tests/keys/ec.pem");
const ED_PEM: &str = include_str!("../../../core/tests/keys/ed25519.pem");

/// Sends `request` over a fresh connection; returns the status and JSON body.
fn perform(issuer: &TestIssuer, request: &http::Request<Vec<u8>>) -> (u16, Value) {
    let mut stream = TcpStream::connect(issuer.addr()).unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method(),
        request.uri().path(),
        issuer.addr(),
        request.body().len()
    );
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(request.body()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}

fn token_request(config: Config) -> http::Request<Vec<u8>> {
    let mut source = TokenSource::new(config, [7; 32]);
    match source.poll(now()) {
        Action::Send(outgoing) => outgoing.request,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn issuer_with_key(jwk: Value) -> TestIssuer {
    TestIssuer::builder()
        .client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .client_jwk(DEFAULT_CLIENT_ID, jwk)
        .auth_methods(["private_key_jwt", "client_secret_jwt"])
        .start()
}

fn config(issuer: &TestIssuer, auth: ClientAuth) -> client_credentials::ConfigBuilder {
    Config::builder(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .token_endpoint(issuer.token_endpoint())
        .assertion_audience(issuer.issuer_url())
        .auth(auth)
}

#[test]
fn a_valid_private_key_jwt_is_accepted_and_its_replay_rejected() {
    for (pem, alg) in [(EC_PEM, JwsAlgorithm::Es256), (ED_PEM, JwsAlgorithm::Ed25519)] {
        let key = JwtKey::from_pem(pem, alg).unwrap();
        let issuer = issuer_with_key(key.public_jwk());
        let request = token_request(config(&issuer, ClientAuth::PrivateKeyJwt(key)).build().unwrap());
        let (status, body) = perform(&issuer, &request);
        assert_eq!(status, 200, "{body}");
        assert_eq!(issuer.token_requests()[0].auth_method, Some(AuthMethod::PrivateKeyJwt));

        // The very same request again: the jti was used.
        let (status, body) = perform(&issuer, &request);
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].as_str().unwrap().contains("replay"), "{body}");
    }
}

/// A client secret long enough for an HS256 key (RFC 7518 §3.2: 256 bits).
const HMAC_CLIENT_ID: &str = "hmac-client";
const HMAC_SECRET: &str = "hmac-secret-of-32-bytes-or-more/+";

#[test]
fn client_secret_jwt_is_verified_with_the_secret() {
    let issuer = TestIssuer::builder()
        .client(HMAC_CLIENT_ID, HMAC_SECRET)
        .auth_methods(["client_secret_jwt"])
        .start();
    let hmac_config = |secret: &str| {
        Config::builder(HMAC_CLIENT_ID, secret)
            .token_endpoint(issuer.token_endpoint())
            .assertion_audience(issuer.issuer_url())
            .auth(ClientAuth::ClientSecretJwt)
            .build()
            .unwrap()
    };
    let request = token_request(hmac_config(HMAC_SECRET));
    let (status, body) = perform(&issuer, &request);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        issuer.token_requests()[0].auth_method,
        Some(AuthMethod::ClientSecretJwt)
    );

    let wrong = hmac_config("another-secret-of-32-bytes-or-more");
    let (status, body) = perform(&issuer, &token_request(wrong));
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[test]
fn a_wrong_audience_or_key_is_invalid_client() {
    let key = JwtKey::from_pem(EC_PEM, JwsAlgorithm::Es256).unwrap();
    let issuer = issuer_with_key(key.public_jwk());
    // The token endpoint as aud: this issuer accepts only its identifier.
    let to_endpoint = config(&issuer, ClientAuth::PrivateKeyJwt(key))
        .assertion_audience_token_endpoint()
        .build()
        .unwrap();
    let (status, body) = perform(&issuer, &token_request(to_endpoint));
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("aud"), "{body}");

    // Signed by a key that is not the registered one.
    let other = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let (status, _) = perform(
        &issuer,
        &token_request(config(&issuer, ClientAuth::PrivateKeyJwt(other)).build().unwrap()),
    );
    assert_eq!(status, 401);
}
