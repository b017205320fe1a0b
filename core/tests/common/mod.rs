//! Shared scaffolding for the core's scenario tests: a simulated clock,
//! canned responses, and readers for the requests the core emits.
#![allow(dead_code)]

use base64::Engine as _;
use client_credentials::{AccessToken, Action, Config, ConfigBuilder, Outgoing, Timestamp, TokenSource};

/// The client secret every scenario uses: it has every character that
/// needs care in Basic and form encodings.
pub const SECRET: &str = "p@ss:w/rd+ &=%";
pub const CLIENT_ID: &str = "client-1";
pub const TOKEN_URL: &str = "https://auth.example/oauth2/token";
pub const ISSUER: &str = "https://id.example/tenant";

/// The simulated epoch every scenario starts at.
pub const START: u64 = 1_700_000_000;

/// The cached token, fresh or not: `usable` at the Unix epoch, before any
/// token of these scenarios expires.
pub fn cached(source: &TokenSource) -> Option<AccessToken> {
    source.usable(Timestamp::UNIX_EPOCH).cloned()
}

/// `START + secs` seconds.
pub fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(START + secs)
}

/// `START` plus `millis` milliseconds.
pub fn at_ms(millis: u64) -> Timestamp {
    Timestamp::from_unix_millis(START * 1000 + millis)
}

pub fn builder() -> ConfigBuilder {
    Config::builder(CLIENT_ID, SECRET)
        .token_endpoint(TOKEN_URL)
        .jitter_seed(7)
}

pub fn config() -> Config {
    builder().build().expect("valid config")
}

pub fn source() -> TokenSource {
    TokenSource::new(config(), [7; 32])
}

pub fn response(status: u16, body: impl Into<Vec<u8>>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("valid response")
}

pub fn with_header(mut response: http::Response<Vec<u8>>, name: &'static str, value: &str) -> http::Response<Vec<u8>> {
    response
        .headers_mut()
        .insert(name, http::HeaderValue::from_str(value).expect("valid header"));
    response
}

/// A 200 token response with this token and lifetime.
pub fn token_ok(token: &str, expires_in: u64) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#),
    )
}

pub fn oauth_error(status: u16, code: &str) -> http::Response<Vec<u8>> {
    response(status, format!(r#"{{"error":"{code}","error_description":"refused"}}"#))
}

pub fn send(source: &mut TokenSource, now: Timestamp) -> Outgoing {
    match source.poll(now) {
        Action::Send(outgoing) => outgoing,
        other => panic!("expected Send at {now:?}, got {other:?}"),
    }
}

pub fn ready(source: &mut TokenSource, now: Timestamp) -> AccessToken {
    match source.poll(now) {
        Action::Ready(token) => token.clone(),
        other => panic!("expected Ready at {now:?}, got {other:?}"),
    }
}

pub fn wait(source: &mut TokenSource, now: Timestamp) -> Option<Timestamp> {
    match source.poll(now) {
        Action::Wait { until } => until,
        other => panic!("expected Wait at {now:?}, got {other:?}"),
    }
}

/// The error `poll` gives callers during a cool-down.
pub fn failed(source: &mut TokenSource, now: Timestamp) -> client_credentials::Error {
    match source.poll(now) {
        Action::Failed(error) => error.clone(),
        other => panic!("expected Failed at {now:?}, got {other:?}"),
    }
}

/// Fetches a first token with `lifetime` seconds at `now`, returning it.
pub fn fetch(source: &mut TokenSource, now: Timestamp, token: &str, lifetime: u64) -> AccessToken {
    let out = send(source, now);
    match source.handle_response(now, out.id, token_ok(token, lifetime)) {
        Ok(client_credentials::Event::TokenUpdated(token)) => token,
        other => panic!("expected TokenUpdated, got {other:?}"),
    }
}

/// The form body as pairs, decoded.
pub fn form(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.body())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn form_value(request: &http::Request<Vec<u8>>, name: &str) -> Option<String> {
    form(request).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The raw `id:secret` pair inside the Basic header (base64-decoded only).
pub fn basic_raw(request: &http::Request<Vec<u8>>) -> String {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .expect("an Authorization header")
        .to_str()
        .expect("ASCII");
    let encoded = header.strip_prefix("Basic ").expect("Basic scheme");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(decoded).expect("UTF-8")
}

/// The Basic credentials as an RFC 6749 §2.3.1 server reads them: split at
/// the first ':', then form-urldecode each half.
pub fn basic_decoded(request: &http::Request<Vec<u8>>) -> (String, String) {
    let raw = basic_raw(request);
    let (id, secret) = raw.split_once(':').expect("a ':' separator");
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    (decode(id), decode(secret))
}

pub fn b64url(data: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Base64url without padding, of bytes (a JWS signature).
pub fn b64url_bytes(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An unsigned JWT with these claims.
pub fn jwt(claims: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64url(r#"{"alg":"RS256","typ":"at+jwt"}"#),
        b64url(claims)
    )
}
