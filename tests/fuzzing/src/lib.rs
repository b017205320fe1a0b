//! Fuzz targets for every input the core parses from the network or a store,
//! and for the `WWW-Authenticate` challenges the adapters' authorised HTTP
//! clients read (`client-credentials-common`).
//!
//! Each function takes raw bytes, runs the core on them and `assert!`s its
//! invariants: a panic is a bug. They live in this unpublished crate, not in
//! the core (which users compile) nor in `fuzz/` (which needs nightly), so
//! that `tests/corpus_replay.rs` replays the checked-in corpus on stable Rust
//! in `cargo test --workspace` and the `cargo fuzz` targets stay one line
//! each. They use only public APIs.

use std::time::Duration;

use base64::Engine as _;
use http::{HeaderValue, Response};
use serde_json::Value;

use client_credentials::{
    discovery_request_at, parse_discovery, parse_resource_metadata, parse_token_response, resource_metadata_url,
    token_type, AccessToken, Action, AssertionSource, Config, DiscoveryError, DiscoveryLocation, Error, Event, Grant,
    GrantError, RequestId, RequestKind, ResourceMetadata, Timestamp, TokenExchange, TokenSource, TransportErrorKind,
};
use client_credentials_common::authorized::policy::{
    assess, parse_challenges, AllowedOrigins, Assessment, Challenge, Exchange, DPOP_NONCE,
};
use http::StatusCode;

/// The client secret of every fuzzed config: no error message may contain it.
const CLIENT_SECRET: &str = "fuzz-client-secret-7Qx";
const ISSUER: &str = "https://id.example";
/// When requests are "sent": 2023-11-14, a realistic wall clock.
const NOW: Timestamp = Timestamp::from_unix_secs(1_700_000_000);

/// The range the core clamps token lifetimes to (1 s ..= 366 days).
const MIN_LIFETIME: Duration = Duration::from_secs(1);
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A config for the token endpoint; the builder input is fixed and valid, so
/// a failure here is a bug in `Config::build` worth a panic.
fn token_config(small: bool) -> Config {
    let builder = Config::builder("fuzz-client", CLIENT_SECRET).token_endpoint("https://id.example/token");
    let builder = if small {
        builder
            .max_body_size(1024)
            .accept_token_type("DPoP")
            .default_lifetime(Duration::from_secs(60))
    } else {
        builder.scope("api:read")
    };
    builder.build().expect("fixed fuzz config is valid")
}

fn response(status: u16, body: &[u8]) -> Response<Vec<u8>> {
    let mut response = Response::new(body.to_vec());
    // `status` comes from fixed tables of valid codes below.
    *response.status_mut() = http::StatusCode::from_u16(status).expect("valid status code");
    response
}

/// Checks what every error promises: no client secret in its message.
fn check_error(error: &Error) {
    check_error_with(error, true);
}

/// `secret_known`: whether the code that made `error` had the client secret
/// to redact (standalone `parse_discovery` has none).
fn check_error_with(error: &Error, secret_known: bool) {
    let message = error.to_string();
    // Whatever the server sent (a body, an OAuth description or code, a
    // mismatched issuer, a rejected endpoint) is quoted with the secret cut out.
    if secret_known {
        assert!(!message.contains(CLIENT_SECRET), "client secret in error: {message}");
    }
    let _ = error.is_retryable();
    let _ = format!("{error:?}");
}

/// The credentials `request` carries, read independently of the core's own
/// redaction: the `Authorization` credential and the credential members of a
/// form or JSON body, plus the client secret (always known to the core).
fn carried(request: &http::Request<Vec<u8>>) -> Vec<String> {
    let mut values = vec![CLIENT_SECRET.to_owned()];
    if let Some(header) = request.headers().get(http::header::AUTHORIZATION) {
        let header = header.to_str().expect("the core sends ASCII headers");
        values.push(header.split_once(' ').map_or(header, |(_, v)| v).to_owned());
    }
    let names = ["client_secret", "refresh_token", "token", "client_assertion"];
    if let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(request.body()) {
        values.extend(
            names
                .iter()
                .filter_map(|n| members.get(*n)?.as_str().map(str::to_owned)),
        );
    } else {
        values.extend(
            form_urlencoded::parse(request.body())
                .filter(|(name, _)| names.contains(&name.as_ref()))
                .map(|(_, value)| value.into_owned()),
        );
    }
    values.retain(|v| v.len() >= 4);
    values
}

/// The forms a server may echo `value` in: raw, form-encoded, lower-case
/// hex, every byte percent-encoded, JSON with `\/`, JSON with `\uXXXX` for
/// every non-alphanumeric, HTML character references.
fn echoed_forms(value: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let mut lower = String::new();
    let mut hex_left = 0u8;
    for c in form.chars() {
        lower.push(if hex_left > 0 { c.to_ascii_lowercase() } else { c });
        hex_left = if c == '%' { 2 } else { hex_left.saturating_sub(1) };
    }
    let every_byte: String = value.bytes().map(|b| format!("%{b:02x}")).collect();
    let json = serde_json::to_string(value).expect("a string serialises");
    let json = json.trim_matches('"').replace('/', "\\/");
    let unicode: String = value
        .encode_utf16()
        .map(|unit| match char::from_u32(u32::from(unit)) {
            Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
            _ => format!("\\u{unit:04x}"),
        })
        .collect();
    let html: String = value
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            c if c.is_ascii_alphanumeric() => c.to_string(),
            c => format!("&#{};", u32::from(c)),
        })
        .collect();
    vec![value.to_owned(), form, lower, every_byte, json, unicode, html]
}

/// `text` quotes none of `credentials` in any echoed form.
fn assert_no_credential(text: &str, credentials: &[String]) {
    for credential in credentials {
        for form in echoed_forms(credential) {
            assert!(
                !text.contains(&form),
                "credential {credential:?} as {form:?} in: {text}"
            );
        }
    }
}

/// A reply that echoes one of `credentials` in one of its forms, chosen by `pick`.
fn echo_body(credentials: &[String], pick: u8) -> Vec<u8> {
    if credentials.is_empty() {
        return Vec::new();
    }
    let credential = &credentials[usize::from(pick) % credentials.len()];
    let forms = echoed_forms(credential);
    let form = &forms[usize::from(pick / 8) % forms.len()];
    match pick % 3 {
        0 => format!("<html><pre>Authorization: Basic {form}</pre></html>"),
        1 => format!(
            r#"{{"error":"invalid_grant","error_description":"refresh token {} expired"}}"#,
            form.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        _ => format!(r#"{{"error":"{}"}}"#, form.replace('\\', "\\\\").replace('"', "\\\"")),
    }
    .into_bytes()
}

/// Checks a parsed token: sendable, lifetime clamped, secret-free `Debug`,
/// and a store round trip that gives the same token back.
fn check_token(token: &AccessToken, sent_at: Timestamp) {
    let secret = token.secret();
    assert!(!secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()));
    let header = token.authorization_header();
    assert!(header.is_sensitive());
    assert_eq!(
        header.as_bytes(),
        format!("{} {}", token.token_type(), secret).as_bytes()
    );
    assert_eq!(token.received_at(), sent_at);
    if let Some(expires_at) = token.expires_at() {
        let lifetime = expires_at.saturating_duration_since(sent_at);
        assert!(
            (MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime),
            "lifetime {lifetime:?} not clamped"
        );
    }
    // `Debug` must not depend on the secret: a twin with another secret prints the same.
    let mut twin = AccessToken::builder("twin")
        .token_type(token.token_type())
        .received_at(token.received_at());
    if let Some(at) = token.expires_at() {
        twin = twin.expires_at(at);
    }
    if let Some(scope) = token.scope() {
        twin = twin.scope(scope);
    }
    if token.refresh_token().is_some() {
        twin = twin.refresh_token("twin-refresh");
    }
    let twin = twin.build().expect("the twin of a valid token is valid");
    assert_eq!(format!("{token:?}"), format!("{twin:?}"), "Debug depends on the token");
    check_stored_round_trip(token);
}

fn check_stored_round_trip(token: &AccessToken) {
    let stored = serde_json::to_vec(token).expect("a token always serialises");
    let back: AccessToken = match serde_json::from_slice(&stored) {
        Ok(back) => back,
        Err(e) => panic!("a stored token does not load back: {e}"),
    };
    assert_eq!(&back, token);
    assert_eq!(back.received_at(), token.received_at());
    assert_eq!(back.scope(), token.scope());
    assert_eq!(
        back.refresh_token().map(str::to_owned),
        token.refresh_token().map(str::to_owned)
    );
}

/// A token endpoint response body, read as a success (200) with two configs.
pub fn token_response(data: &[u8]) {
    for small in [false, true] {
        let config = token_config(small);
        match parse_token_response(&config, NOW, &response(200, data)) {
            Ok(token) => {
                assert!(data.len() <= config.max_body_size());
                check_token(&token, NOW);
            }
            Err(error) => check_error(&error),
        }
    }
}

/// The subject token of the exchange fuzz configs: a JWT expiring 10
/// minutes after `NOW`, the bound of an opaque token issued without `expires_in`.
const SUBJECT_EXP: u64 = 1_700_000_600;
const SUBJECT_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2s4cy5leGFtcGxlIiwic3ViIjoiYXBwIiwiZXhwIjoxNzAwMDAwNjAwfQ.c2ln";

/// A token exchange's success body (RFC 8693 §2.2.1), answered to a token
/// exchange that asked for nothing, for an access token, and for a JWT
/// (identity chaining): a token only when `issued_token_type` (if a string)
/// is the type asked for (without a request, an access token or a JWT);
/// `token_type` `N_A` only when a JWT was asked for; an opaque token
/// without `expires_in` lives no longer than the subject; a retryable
/// error schedules a retry; never the subject token or the secret in an
/// error.
pub fn exchange_response(data: &[u8]) {
    // Read as the core reads a token response: a leading UTF-8 BOM is
    // skipped.
    let json = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let body: Option<serde_json::Map<String, Value>> = serde_json::from_slice(json).ok();
    let issued = body
        .as_ref()
        .and_then(|b| b.get("issued_token_type"))
        .and_then(Value::as_str);
    for requested in [None, Some(token_type::ACCESS_TOKEN), Some(token_type::JWT)] {
        let subject = AssertionSource::callback(|| Ok::<_, String>(SUBJECT_TOKEN.to_owned()));
        let mut exchange = TokenExchange::new(subject, token_type::JWT);
        if let Some(requested) = requested {
            exchange = exchange.requested_token_type(requested);
        }
        let config = Config::builder("fuzz-client", CLIENT_SECRET)
            .token_endpoint("https://sts.example/token")
            .grant(Grant::token_exchange(exchange))
            .build()
            .expect("fixed fuzz config is valid");
        let mut source = TokenSource::new(config, [3; 32]);
        let id = match source.poll(NOW) {
            Action::Send(outgoing) => outgoing.id,
            other => panic!("a token exchange is sent first, got {other:?}"),
        };
        match source.handle_response(NOW, id, response(200, data)) {
            Ok(Event::TokenUpdated(token)) => {
                check_token(&token, NOW);
                if let Some(issued) = issued {
                    let expected = match requested {
                        Some(requested) => issued == requested,
                        None => issued == token_type::ACCESS_TOKEN || issued == token_type::JWT,
                    };
                    assert!(expected, "issued_token_type {issued:?} accepted for {requested:?}");
                }
                if token.token_type().eq_ignore_ascii_case("n_a") {
                    assert_eq!(
                        requested,
                        Some(token_type::JWT),
                        "N_A accepted without asking for a JWT"
                    );
                }
                let opaque = token.secret().split('.').count() != 3;
                let no_expires_in = body
                    .as_ref()
                    .is_some_and(|b| b.get("expires_in").is_none_or(Value::is_null));
                if opaque && no_expires_in {
                    assert!(
                        token.expires_at() <= Some(Timestamp::from_unix_secs(SUBJECT_EXP)),
                        "an opaque token outlives its subject"
                    );
                }
            }
            // A retryable error (`temporarily_unavailable`, even with a
            // 200) schedules the next attempt: checked as any error.
            Ok(Event::RetryScheduled { at, error, .. }) => {
                assert!(at >= NOW, "a retry scheduled in the past: {at:?}");
                check_error(&error);
                let message = error.to_string();
                assert!(!message.contains(SUBJECT_TOKEN), "subject token in error: {message}");
            }
            Ok(other) => panic!("a token response gives a token, an error or a retry, got {other:?}"),
            Err(error) => {
                check_error(&error);
                let message = error.to_string();
                assert!(!message.contains(SUBJECT_TOKEN), "subject token in error: {message}");
                if let Error::Grant(GrantError::IssuedTokenType { issued: shown, .. }) = &error {
                    assert!(issued.is_some(), "an issued_token_type error without one: {shown}");
                }
            }
        }
    }
}

/// A token endpoint response body under every error status: never a token.
/// Also the same body after an echo of a credential the client sends (the
/// secret, the Basic value) in some escaped form: never quoted.
pub fn error_response(data: &[u8]) {
    let config = token_config(false);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("fuzz-client:{CLIENT_SECRET}"));
    let credentials = [CLIENT_SECRET.to_owned(), basic];
    if let Some((&pick, rest)) = data.split_first() {
        let mut echoed = echo_body(&credentials, pick);
        echoed.extend_from_slice(rest);
        for status in [200, 400, 401, 500] {
            if let Err(error) = parse_token_response(&config, NOW, &response(status, &echoed)) {
                assert_no_credential(&format!("{error} {error:?}"), &credentials);
            }
        }
    }
    for status in [400, 401, 403, 404, 405, 408, 429, 500, 502, 503] {
        let error = match parse_token_response(&config, NOW, &response(status, data)) {
            Ok(_) => panic!("HTTP {status} gave a token"),
            Err(error) => error,
        };
        check_error(&error);
        assert_eq!(
            error.status().map(|s| s.as_u16()),
            Some(status).filter(|_| data.len() <= config.max_body_size())
        );
        if let Error::OAuth { description, .. } = &error {
            assert!(description.as_ref().is_none_or(|d| d.chars().count() <= 301));
        }
        let retryable = matches!(status, 408 | 429 | 500..=599);
        if retryable && data.len() <= config.max_body_size() {
            assert!(error.is_retryable(), "HTTP {status} not retryable: {error}");
        }
    }
}

/// A discovery document, checked against a fixed issuer and against the
/// issuer it names itself (so validation past the issuer check is reached).
pub fn discovery_document(data: &[u8]) {
    let named = serde_json::from_slice::<Value>(data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data))
        .ok()
        .and_then(|v| v.get("issuer")?.as_str().map(str::to_owned));
    let mut issuers = vec![ISSUER.to_owned()];
    issuers.extend(named);
    for issuer in &issuers {
        for location in [DiscoveryLocation::OpenId, DiscoveryLocation::Rfc8414] {
            if let Ok(request) = discovery_request_at(issuer, location) {
                let url = url::Url::parse(&request.uri().to_string()).expect("the request URI is a URL");
                assert!(is_https_or_loopback(&url), "discovery URL {url}");
                assert!(url.query().is_none() && url.fragment().is_none());
            }
        }
        for status in [200, 404, 500] {
            match parse_discovery(issuer, response(status, data)) {
                Ok(metadata) => {
                    assert_eq!(status, 200);
                    assert_eq!(&metadata.issuer, issuer);
                    let endpoint = url::Url::parse(&metadata.token_endpoint).expect("token_endpoint was validated");
                    assert!(is_https_or_loopback(&endpoint), "token endpoint {endpoint}");
                    // An https issuer never downgrades an endpoint to http.
                    let https = issuer.starts_with("https:");
                    assert!(!https || endpoint.scheme() == "https", "token endpoint {endpoint}");
                    if let Some(revocation) = &metadata.revocation_endpoint {
                        let revocation = url::Url::parse(revocation).expect("revocation_endpoint was validated");
                        assert!(is_https_or_loopback(&revocation), "revocation endpoint {revocation}");
                        assert!(
                            !https || revocation.scheme() == "https",
                            "revocation endpoint {revocation}"
                        );
                    }
                    let _ = metadata.preferred_auth();
                    assert_eq!(metadata.get("issuer"), Some(Value::String(issuer.clone())));
                    let stored = serde_json::to_string(&metadata).expect("metadata serialises");
                    let back: client_credentials::ProviderMetadata = match serde_json::from_str(&stored) {
                        Ok(back) => back,
                        Err(e) => panic!("stored metadata does not load back: {e}"),
                    };
                    assert_eq!(back, metadata);
                }
                Err(error) => check_error_with(&error, false),
            }
        }
    }
    // The same document met by a source configured with the issuer.
    let config = Config::builder("fuzz-client", CLIENT_SECRET)
        .issuer(ISSUER)
        .build()
        .expect("fixed fuzz config is valid");
    for status in [200, 503] {
        let mut source = TokenSource::new(config.clone(), [7; 32]);
        let Action::Send(outgoing) = source.poll(NOW) else {
            panic!("an empty source must send");
        };
        assert_eq!(outgoing.kind, RequestKind::Discovery);
        match source.handle_response(NOW, outgoing.id, response(status, data)) {
            Ok(Event::DiscoveryUpdated(metadata)) => {
                let Action::Send(next) = source.poll(NOW) else {
                    panic!("discovery must be followed by a token request");
                };
                assert_eq!(next.kind, RequestKind::Token);
                let sent = url::Url::parse(&next.request.uri().to_string()).expect("an emitted URI parses");
                let advertised = url::Url::parse(&metadata.token_endpoint).expect("validated");
                assert_eq!(sent, advertised, "the token request goes elsewhere than advertised");
            }
            Ok(_) => {}
            Err(error) => check_error(&error),
        }
    }
}

/// Whether a URL is one the core may send credentials to (without `allow_insecure_http`).
fn is_https_or_loopback(url: &url::Url) -> bool {
    let loopback = match url.host() {
        // Not `*.localhost`: a resolver or proxy may send those elsewhere.
        Some(url::Host::Domain(domain)) => domain.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

/// A JWT access token: the bytes as a whole token, and as the claims of one.
/// Without `expires_in`, the token's lifetime comes from its claims, clamped.
pub fn jwt_exp(data: &[u8]) {
    let now = NOW;
    let config = token_config(false);
    if let Ok(text) = std::str::from_utf8(data) {
        let body = serde_json::json!({ "access_token": text, "token_type": "Bearer" }).to_string();
        match parse_token_response(&config, now, &response(200, body.as_bytes())) {
            Ok(token) => check_token(&token, now),
            Err(error) => check_error(&error),
        }
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwt = format!("{}.{}.c2ln", b64(br#"{"alg":"RS256","typ":"JWT"}"#), b64(data));
    let claims = serde_json::from_slice::<Value>(data).ok();
    let number = |name: &str| {
        claims
            .as_ref()?
            .as_object()?
            .get(name)?
            .as_f64()
            .filter(|v| v.is_finite())
    };
    let expected = match (number("exp"), number("iat")) {
        (Some(exp), Some(iat)) if exp > iat => Some((exp - 1_700_000_000.0).min(exp - iat)),
        (Some(exp), _) => Some(exp - 1_700_000_000.0),
        (None, _) => None,
    };
    let body = serde_json::json!({ "access_token": jwt, "token_type": "Bearer" }).to_string();
    let token = match parse_token_response(&config, now, &response(200, body.as_bytes())) {
        Ok(token) => token,
        Err(error) if body.len() > config.max_body_size() => return check_error(&error),
        Err(error) => panic!("a well-formed JWT response was rejected: {error}"),
    };
    check_token(&token, now);
    let lifetime = token
        .expires_at()
        .expect("a parsed token expires")
        .saturating_duration_since(now);
    match expected {
        Some(secs) => {
            let want = secs.clamp(MIN_LIFETIME.as_secs_f64(), MAX_LIFETIME.as_secs_f64());
            let got = lifetime.as_secs_f64();
            assert!(
                (got - want).abs() <= 0.001 + want * 1e-12,
                "lifetime {got} s, claims say {want} s"
            );
        }
        None => assert_eq!(lifetime, config.default_lifetime().clamp(MIN_LIFETIME, MAX_LIFETIME)),
    }
}

/// A `Retry-After` header value on a 503: the retry waits at least what it
/// says (capped by `max_retry_after`), never less than the back-off step.
pub fn retry_after(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let config = token_config(false);
    let cap = config.retry().max_retry_after;
    // The header as HTTP reads it: visible ASCII only, optional whitespace (SP, HTAB) around it.
    let text = value.to_str().map(|v| v.trim_matches([' ', '\t'])).unwrap_or("");
    let seconds = (!text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    let mut source = TokenSource::new(config, [7; 32]);
    let Action::Send(outgoing) = source.poll(NOW) else {
        panic!("an empty source must send");
    };
    let mut reply = response(503, b"busy");
    reply.headers_mut().insert(http::header::RETRY_AFTER, value);
    let after = NOW.saturating_add(Duration::from_secs(1));
    let result = source.handle_response(after, outgoing.id, reply);
    let at = match &result {
        Ok(Event::RetryScheduled { at, .. }) => *at,
        Ok(event) => panic!("unexpected event {event:?}"),
        Err(error) => {
            check_error(error);
            assert!(matches!(source.poll(after), Action::Failed(_)));
            source.retry_at().expect("a cool-down after a failed round")
        }
    };
    let wait = at.saturating_duration_since(after);
    assert!(
        wait >= Duration::from_millis(500),
        "under the first back-off step: {wait:?}"
    );
    // At most the cap plus 10 % jitter, whatever the header says.
    assert!(
        wait <= cap + cap / 10,
        "a Retry-After beyond the cap was honoured: {wait:?}"
    );
    if let Some(seconds) = seconds {
        assert!(wait >= seconds.min(cap), "Retry-After {seconds:?} undercut: {wait:?}");
    }
    assert!(matches!(
        source.poll(at.saturating_sub(Duration::from_millis(1))),
        Action::Wait { .. } | Action::Failed(_)
    ));
}

/// A stored token (the JSON a token store writes), loaded and served.
pub fn stored_token(data: &[u8]) {
    let Ok(token) = serde_json::from_slice::<AccessToken>(data) else {
        return;
    };
    let secret = token.secret();
    assert!(!secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()));
    check_stored_round_trip(&token);
    let mut source = TokenSource::with_token(token_config(false), token.clone(), [7; 32]);
    for now in [Timestamp::UNIX_EPOCH, token.received_at(), NOW, Timestamp::MAX] {
        if let Some(refresh_at) = source.refresh_at() {
            if now < refresh_at {
                match source.poll(now) {
                    Action::Ready(served) => assert!(served.same_token(&token)),
                    other => panic!("fresh stored token not served: {other:?}"),
                }
                continue;
            }
        }
        let usable = source.usable(now).is_some();
        match source.poll(now) {
            Action::Send(outgoing) => {
                let result = source.handle_response(now, outgoing.id, response(500, b"<html>oops</html>"));
                if usable {
                    assert!(source.usable(now).is_some(), "a usable stored token was lost");
                    assert!(result.is_ok());
                }
                source = TokenSource::with_token(token_config(false), token.clone(), [7; 32]);
            }
            Action::Ready(served) => assert!(served.same_token(&token)),
            Action::Wait { .. } | Action::Failed(_) => {
                panic!("nothing in flight, no back-off, yet {:?}", source.poll(now))
            }
        }
    }
}

/// Reads a schedule from the fuzzer's bytes; every read past the end is 0.
struct Schedule<'a> {
    data: &'a [u8],
}

impl Schedule<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[usize::from(self.byte()) % table.len()]
    }

    fn slice(&mut self, len: usize) -> &[u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }
}

const STEPS_MS: &[u64] = &[
    0,
    1,
    250,
    1_000,
    5_000,
    30_000,
    150_000,
    300_000,
    1_800_000,
    3_300_000,
    3_600_000,
    86_400_000,
    400 * 86_400_000,
];
const STATUSES: &[u16] = &[
    200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 408, 410, 429, 500, 502, 503,
];
const RETRY_AFTER: &[&str] = &[
    "0",
    "1",
    "5",
    "120",
    "3600",
    "99999999999999999999",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Wed, 21 Oct 2099 07:28:00 GMT",
    "Tue, 14 Nov 2023 22:14:00 GMT",
    "soon",
    "",
];
const CONTENT_TYPES: &[&str] = &["application/json", "application/json;charset=UTF-8", "text/html"];
const BODIES: &[&str] = &[
    r#"{"access_token":"tok-a","token_type":"Bearer","expires_in":3600}"#,
    r#"{"access_token":"tok-b","token_type":"bearer","expires_in":"60","refresh_token":"rt-1","scope":"api:read"}"#,
    r#"{"access_token":"tok-c","expires_in":1}"#,
    r#"{"access_token":"tok-d","token_type":"Bearer","expires_in":0}"#,
    r#"{"access_token":"tok-e","token_type":"Bearer"}"#,
    r#"{"error":"invalid_client","error_description":"bad secret"}"#,
    r#"{"error":"invalid_grant"}"#,
    r#"{"error":"temporarily_unavailable"}"#,
    r#"{"issuer":"https://id.example","token_endpoint":"https://id.example/token","revocation_endpoint":"https://id.example/revoke","token_endpoint_auth_methods_supported":["client_secret_post"]}"#,
    r#"{"issuer":"https://id.example","token_endpoint":"https://id.example/oauth2/v2/token"}"#,
    r#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}"#,
    r#"{"issuer":"https://id.example","token_endpoint":"http://id.example/token"}"#,
    "<html><body>502 Bad Gateway</body></html>",
    r#"{"access_token":"tok-g/+=&","token_type":"Bearer","expires_in":60,"refresh_token":"rt/+=&\"<é x"}"#,
    r#"{"access_token":"tok-f","token_type":"Bearer","expires_in":36"#,
    "",
];

/// Drives a whole [`TokenSource`] through a schedule of (time step, status,
/// headers, body) and asserts its invariants: no panic; at most one request
/// in flight (no second `Send` before the first one's result, transport
/// error or abandonment); a token usable before a response or transport
/// error is still usable after it; `Ready` only while a token is unexpired;
/// `refresh_at` agrees with `poll` (the adapters' lock-free fast path); no
/// error or event quotes a credential the request carried, in any form, even
/// when the reply echoes one.
pub fn token_source(data: &[u8]) {
    let mut schedule = Schedule { data };
    let flags = schedule.byte();
    let mut builder = Config::builder("fuzz-client", CLIENT_SECRET).jitter_seed(u64::from(flags));
    builder = if flags & 1 == 0 {
        builder.token_endpoint("https://id.example/token")
    } else {
        builder.issuer(ISSUER)
    };
    if flags & 2 != 0 {
        builder = builder.max_attempts(1);
    }
    if flags & 4 != 0 {
        builder = builder.revocation_endpoint("https://id.example/revoke");
    }
    if flags & 8 != 0 {
        builder = builder.clock_skew(Duration::from_secs(30));
    }
    if flags & 16 != 0 {
        builder = builder.use_refresh_tokens(false);
    }
    let config = builder.build().expect("fixed fuzz config is valid");
    let mut source = TokenSource::new(config.clone(), [7; 32]);
    let mut now = NOW;
    let mut in_flight: Option<RequestId> = None;
    let mut stale: Option<RequestId> = None;
    let mut revoking: Option<RequestId> = None;
    let mut sent: Vec<String> = Vec::new();
    let mut ops = 0;
    while !schedule.data.is_empty() && ops < 256 {
        ops += 1;
        match schedule.byte() % 8 {
            0 => now = now.saturating_add(Duration::from_millis(schedule.pick(STEPS_MS))),
            1 => now = now.saturating_sub(Duration::from_millis(u64::from(schedule.byte()) * 100)),
            2 | 3 => {
                let fresh = source.refresh_at().filter(|at| now < *at).is_some();
                let cached = cached(&source);
                match source.poll(now) {
                    Action::Ready(token) => {
                        assert!(!token.is_expired(now), "an expired token was served");
                        assert!(cached.is_some_and(|c| c.same_token(token)));
                    }
                    Action::Send(outgoing) => {
                        assert!(!fresh, "refresh_at says fresh but poll sent");
                        assert!(in_flight.is_none(), "a second request while one is in flight");
                        in_flight = Some(outgoing.id);
                        sent = carried(&outgoing.request);
                    }
                    Action::Wait { until } => {
                        assert!(!fresh, "refresh_at says fresh but poll waits");
                        match until {
                            Some(until) => assert!(until > now),
                            None => assert!(in_flight.is_some()),
                        }
                    }
                    Action::Failed(error) => {
                        assert!(!fresh, "refresh_at says fresh but poll failed");
                        assert!(in_flight.is_none(), "failed while a request is in flight");
                        check_error(error);
                    }
                }
            }
            4 | 5 => {
                let status = schedule.pick(STATUSES);
                let headers = schedule.byte();
                let body = match schedule.byte() {
                    b if usize::from(b) < BODIES.len() * 8 => BODIES[usize::from(b) % BODIES.len()].as_bytes().to_vec(),
                    b if b >= 0xF0 => echo_body(&sent, schedule.byte()),
                    _ => {
                        let len = usize::from(schedule.byte());
                        schedule.slice(len).to_vec()
                    }
                };
                let mut reply = response(status, &body);
                if headers & 1 != 0 {
                    let value = RETRY_AFTER[usize::from(headers >> 4) % RETRY_AFTER.len()];
                    reply
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static(value));
                }
                if headers & 2 != 0 {
                    let value = CONTENT_TYPES[usize::from(headers >> 2) % CONTENT_TYPES.len()];
                    reply
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
                }
                let id = match (in_flight, stale, headers & 8 != 0) {
                    (_, Some(old), true) | (None, Some(old), _) => old,
                    (Some(id), _, _) => id,
                    (None, None, _) => continue,
                };
                let before = Before::of(&source, now, id, revoking);
                let result = source.handle_response(now, id, reply);
                check_quoted(&result, &sent);
                after_result(&mut source, now, id, &mut in_flight, &mut stale, before, result);
            }
            6 => {
                let kind = schedule.pick(&[
                    TransportErrorKind::Connect,
                    TransportErrorKind::Timeout,
                    TransportErrorKind::Io,
                    TransportErrorKind::Other,
                ]);
                let Some(id) = in_flight.or(stale) else { continue };
                let before = Before::of(&source, now, id, revoking);
                let result = source.handle_transport_error(now, id, kind);
                after_result(&mut source, now, id, &mut in_flight, &mut stale, before, result);
            }
            _ => match schedule.byte() % 5 {
                0 => {
                    if let Some(id) = in_flight.take() {
                        assert!(source.abandon(id));
                        stale = Some(id);
                    }
                }
                1 => {
                    if let Some(token) = cached(&source) {
                        assert!(source.invalidate(now, &token));
                        assert!(cached(&source).is_none());
                    }
                }
                2 => {
                    let _ = source.force_refresh(now);
                }
                3 => {
                    if let Some(outgoing) = source.signout(now) {
                        stale = in_flight.or(stale);
                        in_flight = Some(outgoing.id);
                        revoking = Some(outgoing.id);
                        sent = carried(&outgoing.request);
                    } else if in_flight.is_some() {
                        stale = in_flight.take();
                    }
                    assert!(cached(&source).is_none());
                }
                _ => {
                    let token = AccessToken::builder("inserted-token")
                        .received_at(now)
                        .expires_at(now.saturating_add(Duration::from_secs(600)))
                        .build()
                        .expect("a fixed token is valid");
                    // Seeded by hand, as from a store: a new source, so
                    // nothing is in flight.
                    source = TokenSource::with_token(config.clone(), token, [7; 32]);
                    (in_flight, stale, revoking) = (None, None, None);
                }
            },
        }
    }
}

/// The cached token, fresh or not: `usable` at the Unix epoch, before any
/// token of these schedules expires.
fn cached(source: &TokenSource) -> Option<AccessToken> {
    source.usable(Timestamp::UNIX_EPOCH).cloned()
}

/// Neither the error nor the event (as printed or debugged) quotes a credential.
fn check_quoted(result: &Result<Event, Error>, sent: &[String]) {
    let text = match result {
        // A new token or document is what the server sent, not a quote.
        Ok(Event::TokenUpdated(_) | Event::DiscoveryUpdated(_)) => return,
        Ok(event) => format!("{event:?}"),
        Err(error) => format!("{error} {error:?}"),
    };
    assert_no_credential(&text, sent);
}

/// What `after_result` compares against.
struct Before {
    usable: bool,
    revocation: bool,
}

impl Before {
    fn of(source: &TokenSource, now: Timestamp, id: RequestId, revoking: Option<RequestId>) -> Before {
        Before {
            usable: source.usable(now).is_some(),
            revocation: revoking == Some(id),
        }
    }
}

/// The invariants after a response or transport error was handed back.
fn after_result(
    source: &mut TokenSource,
    now: Timestamp,
    id: RequestId,
    in_flight: &mut Option<RequestId>,
    stale: &mut Option<RequestId>,
    before: Before,
    result: Result<Event, Error>,
) {
    if Some(id) != *in_flight {
        assert!(
            matches!(result, Err(Error::UnknownRequest { .. })),
            "a result for a request not in flight was accepted"
        );
        return;
    }
    *in_flight = None;
    *stale = Some(id);
    match &result {
        Err(Error::UnknownRequest { .. }) => panic!("the request in flight was not recognised"),
        Err(error) => {
            check_error(error);
            if !before.revocation {
                assert!(
                    source.usable(now).is_none(),
                    "Err returned while a usable token is cached"
                );
                assert!(
                    matches!(source.poll(now), Action::Failed(_)),
                    "Err returned without a cool-down error"
                );
            }
        }
        Ok(Event::RefreshFailed { .. }) => assert!(source.usable(now).is_some()),
        Ok(Event::TokenUpdated(token)) => {
            assert!(cached(source).is_some_and(|t| t.same_token(token)));
            // Clock skew must not eat a new token's whole lifetime: at the
            // moment it was requested it is usable, else every poll refetches.
            assert!(
                source.usable(token.received_at()).is_some(),
                "a new token is unusable from the start"
            );
            check_token(token, token.received_at());
        }
        Ok(_) => {}
    }
    // A token response replaces the cached token; nothing else may lose it.
    if before.usable && !matches!(result, Ok(Event::TokenUpdated(_))) {
        assert!(
            source.usable(now).is_some(),
            "a usable token was lost to a bad response"
        );
    }
}

/// The resource server of the RFC 9728 targets, and the request its 401 answers.
const RESOURCE: &str = "https://api.example/v1";
/// A request to the resource whose query the application treats as private.
const REQUESTED: &str = "https://api.example/v1/items?key=fuzz-query-secret";
/// The access token a request to the resource carries.
const ACCESS_TOKEN: &str = "fuzz-access-token-K3v";

/// A config that discovers its authorization server from [`RESOURCE`].
fn resource_config() -> Config {
    Config::builder("fuzz-client", CLIENT_SECRET)
        .resource_server(RESOURCE)
        .build()
        .expect("fixed fuzz config is valid")
}

/// A request the core sends before it knows where credentials may go (to the
/// resource, for its metadata, or to a discovery document) carries none.
fn check_carries_no_credential(request: &http::Request<Vec<u8>>) {
    assert_eq!(request.method(), http::Method::GET);
    assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
    assert!(request.body().is_empty(), "a metadata request has a body");
}

/// The header values a fuzz input stands for: one per line, with the bytes a
/// header value cannot hold (controls other than tab) left out, as they
/// never reach a parser from the wire.
fn header_values(data: &[u8]) -> Vec<HeaderValue> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let kept: Vec<u8> = line
                .iter()
                .copied()
                .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
                .collect();
            HeaderValue::from_bytes(&kept).ok()
        })
        .collect()
}

/// `tchar` (RFC 9110 §5.6.2) plus `/`, which token68 also allows.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b))
}

/// The challenges written back as one header value, every param quoted.
fn write_challenges(challenges: &[Challenge]) -> Vec<u8> {
    let written: Vec<String> = challenges
        .iter()
        .map(|challenge| {
            let mut out = challenge.scheme().to_owned();
            if let Some(token68) = challenge.token68() {
                out.push(' ');
                out.push_str(token68);
            }
            let params: Vec<String> = challenge
                .params()
                .map(|(name, value)| format!("{name}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if !params.is_empty() {
                out.push(' ');
                out.push_str(&params.join(", "));
            }
            out
        })
        .collect();
    written.join(", ").into_bytes()
}

/// `WWW-Authenticate` values (one per line) under a `401` and other
/// statuses: the parser's output is well formed, bounded by the input and
/// reads back the same when written out again; the 401 decisions agree with
/// the challenges (reject the token, answer a DPoP nonce, retry once at
/// most) and never print the token; a `resource_metadata` URL handed to a
/// source makes it read nothing outside the resource's own origin, with no
/// credential.
pub fn www_authenticate(data: &[u8]) {
    let values = header_values(data);
    let challenges = parse_challenges(&values);
    // Each value parses on its own: several headers are their concatenation.
    let one_by_one: Vec<Challenge> = values.iter().flat_map(|v| parse_challenges([v])).collect();
    assert_eq!(challenges, one_by_one);
    // Bounded: every output byte comes from an input byte (an invalid UTF-8
    // byte in a quoted string becomes U+FFFD, three bytes).
    let input: usize = values.iter().map(|v| v.len()).sum();
    assert!(challenges.len() <= input);
    let mut output = 0;
    for challenge in &challenges {
        assert!(is_token(challenge.scheme()), "scheme {:?}", challenge.scheme());
        output += challenge.scheme().len();
        if let Some(token68) = challenge.token68() {
            assert!(is_token(token68.trim_end_matches('=')), "token68 {token68:?}");
            assert_eq!(challenge.params().count(), 0, "token68 and params");
            output += token68.len();
        }
        for (name, value) in challenge.params() {
            assert!(is_token(name), "param name {name:?}");
            assert!(challenge.param(name).is_some());
            assert!(challenge.param(&name.to_ascii_uppercase()).is_some());
            output += name.len() + value.len();
        }
    }
    assert!(output <= 3 * input, "{output} bytes out of {input}");
    // Written out canonically, the challenges read back the same.
    let written = write_challenges(&challenges);
    let written = HeaderValue::from_bytes(&written).expect("the challenges write a valid header value");
    assert_eq!(parse_challenges([&written]), challenges, "round trip of {written:?}");

    let mut headers = http::HeaderMap::new();
    for value in &values {
        headers.append(http::header::WWW_AUTHENTICATE, value.clone());
    }
    for status in [StatusCode::OK, StatusCode::FORBIDDEN] {
        assert_eq!(assess(status, &headers), Assessment::default());
    }
    for nonce in [None, Some("n-1")] {
        if let Some(nonce) = nonce {
            headers.insert(DPOP_NONCE, HeaderValue::from_static(nonce));
        }
        let assessment = assess(StatusCode::UNAUTHORIZED, &headers);
        let ours: Vec<&Challenge> = challenges.iter().filter(|c| c.is("Bearer") || c.is("DPoP")).collect();
        let named = ours.iter().find_map(|c| c.param("resource_metadata"));
        assert_eq!(assessment.resource_metadata.as_deref(), named);
        let asks_nonce = ours.iter().any(|c| c.param("error") == Some("use_dpop_nonce"));
        assert_eq!(assessment.dpop_nonce.is_some(), nonce.is_some() && asks_nonce);
        if assessment.dpop_nonce.is_some() {
            assert_eq!(nonce, assessment.dpop_nonce.as_ref().and_then(|n| n.to_str().ok()));
            assert!(!assessment.invalid_token, "a nonce request rejects the token");
        } else if ours.iter().all(|c| c.param("error").is_none()) {
            assert!(assessment.invalid_token, "a 401 without an error code keeps the token");
        }
        check_exchange(&headers, &assessment);
    }

    if let Some(url) = assess(StatusCode::UNAUTHORIZED, &headers).resource_metadata {
        check_hint(&url);
    }
}

/// One request through the authorised clients' decisions, given a 401 with
/// `headers` (whose assessment is `assessment`).
fn check_exchange(headers: &http::HeaderMap, assessment: &Assessment) {
    let config = resource_config();
    let origins = AllowedOrigins::for_config(&config);
    let uri: http::Uri = REQUESTED.parse().expect("a fixed URI");
    let token = AccessToken::builder(ACCESS_TOKEN)
        .build()
        .expect("a fixed token is valid");
    let mut exchange = Exchange::new(&origins, &uri);
    assert!(exchange.authorizes());
    let mut retries = 0;
    for attempt in 0..3 {
        exchange.sending(token.clone());
        let verdict = exchange.received(StatusCode::UNAUTHORIZED, headers, true);
        assert!(
            !format!("{verdict:?} {exchange:?}").contains(ACCESS_TOKEN),
            "the token printed"
        );
        assert_eq!(verdict.invalidate.is_some(), assessment.invalid_token);
        assert!(verdict.invalidate.iter().all(|t| t.same_token(&token)));
        assert_eq!(verdict.retry, attempt == 0 && assessment.wants_retry());
        if let Some(hint) = &verdict.resource_metadata {
            assert_eq!(hint.requested, REQUESTED);
            assert_eq!(Some(&hint.metadata_url), assessment.resource_metadata.as_ref());
        }
        retries += usize::from(verdict.retry);
    }
    assert!(retries <= 1, "retried {retries} times");
    // Another origin never got the token: its 401 says nothing about it.
    let elsewhere: http::Uri = "https://other.example/v1".parse().expect("a fixed URI");
    let mut exchange = Exchange::new(&origins, &elsewhere);
    assert!(!exchange.authorizes());
    let verdict = exchange.received(StatusCode::UNAUTHORIZED, headers, true);
    assert!(verdict.invalidate.is_none() && verdict.resource_metadata.is_none() && !verdict.retry);
}

/// A challenge's `resource_metadata` URL handed to a source: its next request
/// stays on the resource's origin and carries no credential.
fn check_hint(url: &str) {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let followed = source.follow_resource_metadata(REQUESTED, url);
    let Action::Send(outgoing) = source.poll(NOW) else {
        panic!("an empty source must send");
    };
    assert_eq!(outgoing.kind, RequestKind::Discovery);
    check_carries_no_credential(&outgoing.request);
    let sent = url::Url::parse(&outgoing.request.uri().to_string()).expect("an emitted URI parses");
    let resource = url::Url::parse(RESOURCE).expect("a fixed URL");
    assert_eq!(
        sent.origin(),
        resource.origin(),
        "a hint {url:?} moved the metadata read to {sent}"
    );
    if followed {
        assert_eq!(
            Some(sent),
            url::Url::parse(url).ok(),
            "a followed hint is read where it points"
        );
    }
}

/// An RFC 9728 protected resource metadata document, checked for a fixed
/// resource and for the resource it names itself, then read by a source
/// configured with the resource (at its well-known location and where a
/// 401 pointed): accepted metadata names the resource expected and only
/// https authorization servers without query or fragment, round-trips
/// through serde, and the source's next request is discovery at the first
/// of them, without credentials; no error quotes the client secret or the
/// query of the URL requested.
pub fn resource_metadata(data: &[u8]) {
    let named = serde_json::from_slice::<Value>(data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data))
        .ok()
        .and_then(|v| v.get("resource")?.as_str().map(str::to_owned));
    let mut resources = vec![RESOURCE.to_owned()];
    resources.extend(named);
    for resource in &resources {
        if let Ok(url) = resource_metadata_url(resource) {
            assert!(is_https_or_loopback(&url), "metadata URL {url}");
            assert!(url.path().starts_with("/.well-known/oauth-protected-resource"));
            assert!(url.fragment().is_none() && url.username().is_empty() && url.password().is_none());
            let given = url::Url::parse(resource).expect("an accepted resource parses");
            assert_eq!(url.origin(), given.origin());
            assert_eq!(url.query(), given.query());
        }
        for status in [200, 404, 500] {
            match parse_resource_metadata(resource, response(status, data)) {
                Ok(metadata) => {
                    assert_eq!(status, 200);
                    check_resource_metadata(&metadata, resource);
                }
                Err(error) => check_error_with(&error, false),
            }
        }
    }
    for status in [200, 503] {
        let mut source = TokenSource::new(resource_config(), [7; 32]);
        read_resource_metadata(&mut source, status, data, RESOURCE);
    }
    // The document read where a 401 pointed must name the URL requested.
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    assert!(source.follow_resource_metadata(REQUESTED, "https://api.example/meta/items"));
    read_resource_metadata(&mut source, 200, data, REQUESTED);
}

/// The invariants of metadata accepted for `resource`.
fn check_resource_metadata(metadata: &ResourceMetadata, resource: &str) {
    assert_eq!(metadata.resource, resource);
    assert!(!metadata.authorization_servers.is_empty());
    assert_eq!(metadata.authorization_server(), metadata.authorization_servers[0]);
    let https = resource.starts_with("https:");
    for server in &metadata.authorization_servers {
        let url = url::Url::parse(server).expect("an authorization server was validated");
        assert!(is_https_or_loopback(&url), "authorization server {url}");
        assert!(!https || url.scheme() == "https", "authorization server {url}");
        assert!(
            url.query().is_none() && url.fragment().is_none(),
            "authorization server {url}"
        );
    }
    for typed in [
        "resource",
        "authorization_servers",
        "scopes_supported",
        "bearer_methods_supported",
        "dpop_bound_access_tokens_required",
    ] {
        assert!(!metadata.additional.contains_key(typed), "{typed} left in additional");
    }
    let stored = serde_json::to_string(metadata).expect("metadata serialises");
    let back: ResourceMetadata = match serde_json::from_str(&stored) {
        Ok(back) => back,
        Err(e) => panic!("stored metadata does not load back: {e}"),
    };
    // The typed members load back exactly. Extra members keep their names;
    // a float among them may come back one unit in the last place off
    // (serde_json parses floats fast, not round-trip exact), so their
    // values are not compared.
    assert_eq!(back.resource, metadata.resource);
    assert_eq!(back.authorization_servers, metadata.authorization_servers);
    assert_eq!(back.scopes_supported, metadata.scopes_supported);
    assert_eq!(back.bearer_methods_supported, metadata.bearer_methods_supported);
    assert_eq!(
        back.dpop_bound_access_tokens_required,
        metadata.dpop_bound_access_tokens_required
    );
    assert!(back.additional.keys().eq(metadata.additional.keys()));
}

/// `source` reads the resource's metadata, answered with `data` under
/// `status`; `expected` is the `resource` the document must name.
fn read_resource_metadata(source: &mut TokenSource, status: u16, data: &[u8], expected: &str) {
    let Action::Send(outgoing) = source.poll(NOW) else {
        panic!("an empty source must send");
    };
    assert_eq!(outgoing.kind, RequestKind::Discovery);
    check_carries_no_credential(&outgoing.request);
    let read_at = outgoing.request.uri().clone();
    match source.handle_response(NOW, outgoing.id, response(status, data)) {
        Ok(Event::ResourceMetadataUpdated(metadata)) => {
            assert_eq!(status, 200);
            check_resource_metadata(&metadata, expected);
            let issuer = metadata.authorization_server();
            let Action::Send(next) = source.poll(NOW) else {
                panic!("the resource's metadata must be followed by discovery");
            };
            assert_eq!(next.kind, RequestKind::Discovery);
            check_carries_no_credential(&next.request);
            let discovery = [DiscoveryLocation::OpenId, DiscoveryLocation::Rfc8414]
                .map(|location| discovery_request_at(issuer, location).map(|r| r.uri().to_string()).ok());
            let sent = next.request.uri().to_string();
            assert!(
                discovery.contains(&Some(sent.clone())),
                "discovery of {issuer} went to {sent}"
            );
        }
        Ok(event) => {
            // A retry scheduled after a 5xx: the error it carries is checked too.
            assert_ne!(status, 200, "a 200 gave {event:?}");
            assert_no_credential(&format!("{event:?}"), &[CLIENT_SECRET.to_owned()]);
            rereads_resource_metadata(source, &read_at);
        }
        Err(error) => {
            check_error(&error);
            if let Error::Discovery(DiscoveryError::ResourceMismatch { expected, .. }) = &error {
                assert!(
                    !expected.contains("fuzz-query-secret"),
                    "the query requested quoted: {expected}"
                );
            }
            rereads_resource_metadata(source, &read_at);
        }
    }
}

/// `source` took nothing from a refused document: once its back-off is
/// over, it reads the resource's metadata again, at `read_at` or (a refused
/// hint is forgotten) at the well-known location.
fn rereads_resource_metadata(source: &mut TokenSource, read_at: &http::Uri) {
    let at = source.retry_at().expect("a refused document is backed off");
    match source.poll(at) {
        Action::Send(next) => {
            let uri = next.request.uri();
            let well_known = uri.path().starts_with("/.well-known/oauth-protected-resource");
            assert!(
                uri == read_at || well_known,
                "the resource's metadata read again, not {uri}"
            );
        }
        other => panic!("expected the resource's metadata read again, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `token_source`: with a 30 s clock skew, a token that lives
    /// 1 s was unusable on arrival, so every poll fetched another one.
    #[test]
    fn a_skew_longer_than_the_lifetime_does_not_refetch_on_every_poll() {
        let config = Config::builder("id", "secret")
            .token_endpoint("https://id.example/token")
            .clock_skew(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut source = TokenSource::new(config, [7; 32]);
        let Action::Send(outgoing) = source.poll(NOW) else {
            panic!("expected a request")
        };
        let body = br#"{"access_token":"tok","expires_in":1}"#;
        assert!(matches!(
            source.handle_response(NOW, outgoing.id, response(200, body)),
            Ok(Event::TokenUpdated(_))
        ));
        assert!(matches!(source.poll(NOW), Action::Ready(_)));
        token_source(&[8, 2, 4, 0, 171, 2]);
    }

    /// Found by `discovery_document`: `url` accepts a backtick in a host,
    /// `http::Uri` does not, so a discovered token endpoint like this one was
    /// accepted and the token request silently became an empty `GET /`.
    #[test]
    fn an_endpoint_that_is_no_http_uri_is_rejected() {
        let body = br#"{"issuer":"https://id.example","token_endpoint":"https://id.exa`le/token"}"#;
        assert!(parse_discovery(ISSUER, response(200, body)).is_err());
        let config = Config::builder("id", "secret")
            .token_endpoint("https://id.exa`le/token")
            .build();
        assert!(config.is_err());
        discovery_document(body);
    }

    /// The `www_authenticate` oracle's premise: a challenge naming metadata
    /// on another origin changes nothing, one on the resource's origin moves
    /// the next metadata read there.
    #[test]
    fn only_a_hint_on_the_resources_origin_is_followed() {
        let mut source = TokenSource::new(resource_config(), [7; 32]);
        assert!(
            !source.follow_resource_metadata(REQUESTED, "https://evil.example/.well-known/oauth-protected-resource")
        );
        assert!(source.follow_resource_metadata(REQUESTED, "https://api.example/meta/items"));
        let Action::Send(outgoing) = source.poll(NOW) else {
            panic!("expected a request")
        };
        assert_eq!(outgoing.request.uri(), "https://api.example/meta/items");
        www_authenticate(br#"Bearer error="invalid_token", resource_metadata="https://evil.example/m""#);
        www_authenticate(br#"Bearer error="invalid_token", resource_metadata="https://api.example/m""#);
    }

    /// The `resource_metadata` oracle's premise: a document read where a 401
    /// pointed is accepted only when it names the URL requested, and a
    /// mismatch does not quote that URL's query.
    #[test]
    fn a_hinted_document_must_name_the_url_requested() {
        let document = |resource: &str| {
            format!(r#"{{"resource":"{resource}","authorization_servers":["https://id.example"]}}"#).into_bytes()
        };
        for (resource, accepted) in [
            (REQUESTED, true),
            ("https://api.example/v1/items", false),
            (RESOURCE, false),
        ] {
            let mut source = TokenSource::new(resource_config(), [7; 32]);
            assert!(source.follow_resource_metadata(REQUESTED, "https://api.example/meta/items"));
            let Action::Send(outgoing) = source.poll(NOW) else {
                panic!("expected a request")
            };
            let result = source.handle_response(NOW, outgoing.id, response(200, &document(resource)));
            assert_eq!(
                matches!(result, Ok(Event::ResourceMetadataUpdated(_))),
                accepted,
                "{resource}: {result:?}"
            );
            if let Err(error) = result {
                assert!(!error.to_string().contains("fuzz-query-secret"), "{error}");
            }
            let mut source = TokenSource::new(resource_config(), [7; 32]);
            assert!(source.follow_resource_metadata(REQUESTED, "https://api.example/meta/items"));
            read_resource_metadata(&mut source, 200, &document(resource), REQUESTED);
        }
        resource_metadata(&document(RESOURCE));
    }

    /// Found by `resource_metadata`: a resource identifier that says https
    /// but does not parse as a URL (`]` in the host) let a standalone parse
    /// accept plain-http loopback authorization servers; discovery had the
    /// same gap for such an issuer. Anything but a parsed `http` URL now
    /// counts as https.
    #[test]
    fn an_https_identifier_that_does_not_parse_still_requires_https() {
        let resource = "https://api.exam]ple/v0";
        let metadata =
            format!(r#"{{"resource":"{resource}","authorization_servers":["http://localhost","http://127.0.0.1"]}}"#);
        assert!(parse_resource_metadata(resource, response(200, metadata.as_bytes())).is_err());
        let issuer = "https://id.exa]mple";
        let document = format!(r#"{{"issuer":"{issuer}","token_endpoint":"http://localhost/token"}}"#);
        assert!(parse_discovery(issuer, response(200, document.as_bytes())).is_err());
        resource_metadata(metadata.as_bytes());
        discovery_document(document.as_bytes());
    }
}
