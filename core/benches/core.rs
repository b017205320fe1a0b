//! The core's hot paths against a `SystemTime::now()` baseline measured in
//! the same run: `poll(now)` on a fresh cached token (what every cached
//! `token()` call costs under the adapter's lock) and parsing a typical
//! ~1 KiB token response carrying a JWT access token.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::SystemTime;

use base64::Engine as _;
use client_credentials::{
    parse_token_response, Action, ClientAuth, Config, JwsAlgorithm, JwtKey, Timestamp, TokenSource,
};
use criterion::{criterion_group, criterion_main, Criterion};

const NOW: u64 = 1_700_000_000;

fn config() -> Config {
    Config::builder("bench-client", "bench-secret")
        .token_endpoint("https://auth.example/oauth2/token")
        .scope("api:read api:write")
        .build()
        .expect("valid config")
}

/// A realistic token response: an RS256 JWT access token with the claims
/// Auth0/Okta/Entra-style issuers put in it, about 1 KiB in all.
fn token_response() -> http::Response<Vec<u8>> {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = b64(r#"{"alg":"RS256","typ":"at+jwt","kid":"3b4c6e2a9f1d4e7b8a0c5d2e1f3a4b6c"}"#);
    let claims = b64(&format!(
        r#"{{"iss":"https://auth.example/","sub":"bench-client@clients","aud":"https://api.example/","iat":{NOW},"exp":{},"scope":"api:read api:write","gty":"client-credentials","azp":"bench-client","jti":"6f1e0c2a-4b1d-4c8e-9a3f-2d7b5e8c1a90","client_id":"bench-client","permissions":["api:read","api:write"],"org_id":"org_8f2a7c1e9b3d4a6f","ver":2}}"#,
        NOW + 3600
    ));
    let signature = b64(&"s".repeat(256));
    let jwt = format!("{header}.{claims}.{signature}");
    let body =
        format!(r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600,"scope":"api:read api:write"}}"#);
    http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.into_bytes())
        .expect("valid response")
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");

    group.bench_function("baseline: SystemTime::now()", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });

    let response = token_response();
    eprintln!("token response body: {} bytes", response.body().len());
    let config = config();
    let mut source = TokenSource::new(config.clone(), [7; 32]);
    let now = Timestamp::from_unix_secs(NOW);
    let Action::Send(outgoing) = source.poll(now) else {
        panic!("expected a request")
    };
    source
        .handle_response(now, outgoing.id, response.clone())
        .expect("a token");
    let later = Timestamp::from_unix_secs(NOW + 60);
    group.bench_function("poll(now) on a fresh token", |b| {
        b.iter(|| match source.poll(black_box(later)) {
            Action::Ready(token) => {
                black_box(token);
            }
            _ => unreachable!("the token is fresh"),
        })
    });

    group.bench_function("parse_token_response (~1 KiB, JWT)", |b| {
        b.iter(|| black_box(parse_token_response(&config, black_box(now), black_box(&response))).expect("parses"))
    });
    group.finish();
}

/// The cost of building one token request: a plain Basic one against the
/// same request authenticated with a freshly signed client assertion
/// (`private_key_jwt`), per algorithm, and with a DPoP proof on top.
fn signed_requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("token request");
    let now = Timestamp::from_unix_secs(NOW);
    let mut build = |name: &str, config: Config| {
        let mut source = TokenSource::new(config, [7; 32]);
        group.bench_function(name, |b| {
            b.iter(|| match source.poll(black_box(now)) {
                Action::Send(outgoing) => {
                    source.abandon(outgoing.id);
                    black_box(outgoing);
                }
                _ => unreachable!("nothing is cached or in flight"),
            })
        });
    };
    let rsa = include_str!("../tests/keys/rsa.pem");
    let ec = include_str!("../tests/keys/ec.pem");
    let ed = include_str!("../tests/keys/ed25519.pem");
    let key = |pem, alg| JwtKey::from_pem(pem, alg).expect("test key");
    let with = |auth: ClientAuth| {
        Config::builder("bench-client", "bench-secret")
            .token_endpoint("https://auth.example/oauth2/token")
            .scope("api:read api:write")
            .auth(auth)
    };
    build("baseline: client_secret_basic", config());
    build(
        "client_secret_jwt (HS256)",
        Config::builder("bench-client", "bench-secret-of-32-bytes-or-more")
            .token_endpoint("https://auth.example/oauth2/token")
            .scope("api:read api:write")
            .auth(ClientAuth::ClientSecretJwt)
            .build()
            .expect("valid"),
    );
    build(
        "private_key_jwt RS256",
        with(ClientAuth::PrivateKeyJwt(key(rsa, JwsAlgorithm::Rs256)))
            .build()
            .expect("valid"),
    );
    build(
        "private_key_jwt ES256",
        with(ClientAuth::PrivateKeyJwt(key(ec, JwsAlgorithm::Es256)))
            .build()
            .expect("valid"),
    );
    build(
        "private_key_jwt EdDSA",
        with(ClientAuth::PrivateKeyJwt(key(ed, JwsAlgorithm::Ed25519)))
            .build()
            .expect("valid"),
    );
    build(
        "private_key_jwt EdDSA + DPoP EdDSA",
        with(ClientAuth::PrivateKeyJwt(key(ed, JwsAlgorithm::Ed25519)))
            .dpop(key(ed, JwsAlgorithm::Ed25519))
            .build()
            .expect("valid"),
    );
    group.finish();
}

criterion_group!(core, benches, signed_requests);
criterion_main!(core);
