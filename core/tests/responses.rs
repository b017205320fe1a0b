//! `parse_token_response`: every branch, and the errors it produces.

mod common;

use std::time::Duration;

use client_credentials::{
    parse_token_response, AccessToken, Config, DiscoveryError, Error, OAuthErrorCode, Timestamp, TransportError,
    TransportErrorKind,
};
use common::*;
use http::StatusCode;

/// The range the core clamps token lifetimes to.
const MIN_LIFETIME: Duration = Duration::from_secs(1);
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

const SENT: u64 = START;

fn sent() -> Timestamp {
    Timestamp::from_unix_secs(SENT)
}

fn parse_with(config: &Config, status: u16, body: &str) -> Result<AccessToken, Error> {
    parse_token_response(config, sent(), &response(status, body))
}

fn parse(status: u16, body: &str) -> Result<AccessToken, Error> {
    parse_with(&config(), status, body)
}

fn ok(body: &str) -> AccessToken {
    parse(200, body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn lifetime(token: &AccessToken) -> Duration {
    token
        .expires_at()
        .unwrap()
        .saturating_duration_since(token.received_at())
}

fn invalid(status: u16, body: &str) -> String {
    match parse(status, body) {
        Err(Error::InvalidResponse { reason }) => reason,
        other => panic!("{body:?}: expected InvalidResponse, got {other:?}"),
    }
}

#[test]
fn a_typical_response() {
    let token = ok(r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600,"scope":"read"}"#);
    assert_eq!(token.secret(), "abc");
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.received_at(), sent());
    assert_eq!(token.expires_at(), Some(Timestamp::from_unix_secs(SENT + 3600)));
    assert_eq!(token.scope(), Some("read"));
    assert!(token.refresh_token().is_none());
    assert_eq!(token.authorization_header(), "Bearer abc");
    assert!(token.authorization_header().is_sensitive());
    // Any 2xx is a success.
    assert_eq!(parse(201, r#"{"access_token":"abc"}"#).unwrap().secret(), "abc");
}

#[test]
fn expires_in_forms() {
    let cases: &[(&str, Duration)] = &[
        ("3600", Duration::from_secs(3600)),
        ("\"3600\"", Duration::from_secs(3600)),
        ("\" 120 \"", Duration::from_secs(120)),
        ("59.5", Duration::from_millis(59_500)),
        ("\"59.5\"", Duration::from_millis(59_500)),
        ("0", MIN_LIFETIME),
        ("-30", MIN_LIFETIME),
        ("0.0001", MIN_LIFETIME),
        ("1e300", MAX_LIFETIME),
        ("1e20", MAX_LIFETIME),
        ("18446744073709551615", MAX_LIFETIME),
        ("null", Duration::from_secs(3600)),
    ];
    for (value, want) in cases {
        let body = format!(r#"{{"access_token":"abc","token_type":"bearer","expires_in":{value}}}"#);
        assert_eq!(lifetime(&ok(&body)), *want, "expires_in {value}");
    }
    for value in [
        "\"soon\"",
        "\"\"",
        "true",
        "[3600]",
        "{}",
        "\"NaN\"",
        "\"inf\"",
        "\"1e400\"",
    ] {
        let body = format!(r#"{{"access_token":"abc","expires_in":{value}}}"#);
        let reason = invalid(200, &body);
        assert!(reason.contains("expires_in"), "{value}: {reason}");
    }
}

#[test]
fn without_expires_in_a_jwt_exp_sets_the_lifetime() {
    // exp - iat bounds it when the receiving clock runs behind the issuer's.
    let token = jwt(&format!(r#"{{"iss":"x","iat":{},"exp":{}}}"#, SENT + 100, SENT + 1000));
    let t = ok(&format!(r#"{{"access_token":"{token}","token_type":"Bearer"}}"#));
    assert_eq!(lifetime(&t), Duration::from_secs(900));
    // exp - sent without iat.
    let token = jwt(&format!(r#"{{"exp":{}}}"#, SENT + 1200));
    let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
    assert_eq!(lifetime(&t), Duration::from_secs(1200));
    // iat after exp is ignored: exp - sent.
    let token = jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, SENT + 5000, SENT + 600));
    let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
    assert_eq!(lifetime(&t), Duration::from_secs(600));
    // An exp in the past is the minimum lifetime, not a refetch loop.
    let token = jwt(r#"{"exp":1000}"#);
    let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
    assert_eq!(lifetime(&t), MIN_LIFETIME);
    // A huge exp is capped.
    let token = jwt(r#"{"exp":1e300}"#);
    let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
    assert_eq!(lifetime(&t), MAX_LIFETIME);
    // expires_in wins over exp.
    let token = jwt(r#"{"iat":1000,"exp":1900}"#);
    let t = ok(&format!(r#"{{"access_token":"{token}","expires_in":60}}"#));
    assert_eq!(lifetime(&t), Duration::from_secs(60));
}

/// A provider handing out a cached JWT issued 50 minutes
/// ago with a 1 h life (and no `expires_in`) has 10 minutes left, not 60.
#[test]
fn jwt_lifetime_counts_exp_from_the_receive_time_bounded_by_exp_minus_iat() {
    let token = jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, SENT - 3000, SENT + 600));
    let t = ok(&format!(r#"{{"access_token":"{token}","token_type":"Bearer"}}"#));
    assert_eq!(t.expires_at(), Some(Timestamp::from_unix_secs(SENT + 600)));
    // Already expired when received: the minimum lifetime, not exp - iat.
    let token = jwt(&format!(r#"{{"iat":{},"exp":{}}}"#, SENT - 7200, SENT - 3600));
    let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
    assert_eq!(lifetime(&t), MIN_LIFETIME);
}

#[test]
fn without_expires_in_or_a_readable_exp_the_default_lifetime_applies() {
    let not_readable = [
        "opaque".to_owned(),
        jwt(r#"{"sub":"no exp"}"#),
        jwt(r#"{"exp":"1900"}"#),
        jwt("[1,2]"),
        format!("{}.{}", b64url("{}"), b64url(r#"{"exp":1900}"#)),
        format!("a.{}.c.d", b64url(r#"{"exp":1900}"#)),
        "a.!!!.c".to_owned(),
        "a..c".to_owned(),
    ];
    for token in &not_readable {
        let t = ok(&format!(r#"{{"access_token":"{token}"}}"#));
        assert_eq!(lifetime(&t), Duration::from_secs(3600), "{token}");
    }
    let config = builder().default_lifetime(Duration::from_secs(90)).build().unwrap();
    let t = parse_with(&config, 200, r#"{"access_token":"opaque"}"#).unwrap();
    assert_eq!(lifetime(&t), Duration::from_secs(90));
    let config = builder()
        .default_lifetime(Duration::from_secs(10 * 366 * 86400))
        .build()
        .unwrap();
    let t = parse_with(&config, 200, r#"{"access_token":"opaque"}"#).unwrap();
    assert_eq!(lifetime(&t), MAX_LIFETIME);
}

#[test]
fn token_type_in_any_case_or_missing_is_bearer() {
    for body in [
        r#"{"access_token":"a","token_type":"bearer"}"#,
        r#"{"access_token":"a","token_type":"BEARER"}"#,
        r#"{"access_token":"a","token_type":"bEaReR"}"#,
        r#"{"access_token":"a"}"#,
        r#"{"access_token":"a","token_type":null}"#,
    ] {
        assert_eq!(ok(body).token_type(), "Bearer", "{body}");
    }
}

#[test]
fn other_token_types_are_refused_unless_accepted() {
    let reason = invalid(200, r#"{"access_token":"a","token_type":"DPoP"}"#);
    assert!(reason.contains("\"DPoP\" is not Bearer"), "{reason}");
    assert!(reason.contains("accept_token_type"), "{reason}");
    let reason = invalid(200, r#"{"access_token":"a","token_type":"N_A"}"#);
    assert!(reason.contains("N_A"), "{reason}");
    let reason = invalid(200, r#"{"access_token":"a","token_type":""}"#);
    assert!(reason.contains("not Bearer"), "{reason}");
    let reason = invalid(200, r#"{"access_token":"a","token_type":42}"#);
    assert!(reason.contains("token_type is not a string"), "{reason}");

    let config = builder().accept_token_type("dpop").build().unwrap();
    let token = parse_with(&config, 200, r#"{"access_token":"a","token_type":"DPoP"}"#).unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(token.authorization_header(), "DPoP a");
    // A type that cannot be an auth scheme is refused even when "accepted".
    let config = builder().accept_token_type("bad type").build().unwrap();
    let e = parse_with(&config, 200, r#"{"access_token":"a","token_type":"bad type"}"#).unwrap_err();
    assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
}

#[test]
fn unknown_fields_are_ignored_and_refresh_tokens_kept() {
    let token = ok(
        r#"{"access_token":"a","token_type":"Bearer","expires_in":60,"id_token":"x","ext_expires_in":120,
            "not-before-policy":0,"session_state":{"a":[1,2]},"refresh_token":"rt","refresh_expires_in":1800}"#,
    );
    assert_eq!(token.refresh_token(), Some("rt"));
    assert_eq!(lifetime(&token), Duration::from_secs(60));
    // An empty or non-string refresh token is ignored.
    assert!(ok(r#"{"access_token":"a","refresh_token":""}"#)
        .refresh_token()
        .is_none());
    assert!(ok(r#"{"access_token":"a","refresh_token":7}"#)
        .refresh_token()
        .is_none());
}

#[test]
fn the_scope_echo_wins_else_the_requested_scope_is_recorded() {
    let config = builder().scope("read write").build().unwrap();
    let token = parse_with(&config, 200, r#"{"access_token":"a","scope":"read"}"#).unwrap();
    assert_eq!(token.scope(), Some("read"));
    let token = parse_with(&config, 200, r#"{"access_token":"a"}"#).unwrap();
    assert_eq!(token.scope(), Some("read write"));
    let token = parse_with(&config, 200, r#"{"access_token":"a","scope":["read"]}"#).unwrap();
    assert_eq!(token.scope(), Some("read write"));
    assert_eq!(ok(r#"{"access_token":"a"}"#).scope(), None);
}

#[test]
fn the_access_token_must_be_a_non_empty_sendable_string() {
    assert!(invalid(200, r#"{"token_type":"Bearer","expires_in":3600}"#).contains("no access_token"));
    assert!(invalid(200, r#"{"access_token":""}"#).contains("empty"));
    assert!(invalid(200, r#"{"access_token":null}"#).contains("not a string"));
    assert!(invalid(200, r#"{"access_token":12345}"#).contains("not a string"));
    assert!(invalid(200, r#"{"access_token":{"value":"a"}}"#).contains("not a string"));
    for token in ["two words", "line\\nbreak", "tab\\there", "caf\u{e9}"] {
        let reason = invalid(200, &format!(r#"{{"access_token":"{token}"}}"#));
        assert!(reason.contains("Authorization header"), "{token}: {reason}");
    }
}

#[test]
fn bodies_that_are_not_a_json_object() {
    let cases = [
        ("", "the body is empty"),
        ("  \r\n ", "the body is empty"),
        ("\u{feff}", "the body is empty"),
        ("<html>OK</html>", "not JSON"),
        ("access_token=abc&token_type=bearer", "not JSON"),
        (r#"{"access_token":"abc","#, "truncated"),
        (r#"{"access_token":"ab"#, "truncated"),
        (r#"[{"access_token":"abc"}]"#, "not an object"),
        ("\"abc\"", "not an object"),
        ("null", "not an object"),
        (r#"{"access_token":"abc"} trailing"#, "not JSON"),
    ];
    for (body, want) in cases {
        let reason = invalid(200, body);
        assert!(reason.contains(want), "{body:?}: {reason}");
        assert!(reason.contains("HTTP 200"), "{body:?}: {reason}");
    }
    // A UTF-8 byte order mark is tolerated.
    assert_eq!(ok("\u{feff}{\"access_token\":\"abc\"}").secret(), "abc");
    // Invalid UTF-8 is not JSON.
    let e = parse_token_response(&config(), sent(), &response(200, b"\xff\xfe{}".to_vec())).unwrap_err();
    assert!(matches!(e, Error::InvalidResponse { .. }), "{e:?}");
}

#[test]
fn bodies_over_the_cap_are_refused_whatever_the_status() {
    let config = builder().max_body_size(1024).build().unwrap();
    let padding = "x".repeat(1024);
    let body = format!(r#"{{"access_token":"abc","padding":"{padding}"}}"#);
    for status in [200, 400, 503] {
        let e = parse_with(&config, status, &body).unwrap_err();
        match &e {
            Error::InvalidResponse { reason } => assert!(reason.contains("1024-byte limit"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(!e.is_retryable());
    }
    // Exactly at the cap is fine.
    let exact = format!(r#"{{"access_token":"abc","p":"{}"}}"#, "x".repeat(1024 - 29));
    assert_eq!(exact.len(), 1024);
    assert!(parse_with(&config, 200, &exact).is_ok());
}

#[test]
fn a_200_with_an_error_member_is_an_oauth_error() {
    let e = parse(200, r#"{"error":"invalid_client","error_description":"bad secret"}"#).unwrap_err();
    assert_eq!(
        e,
        Error::OAuth {
            code: OAuthErrorCode::InvalidClient,
            description: Some("bad secret".into()),
            uri: None,
            status: StatusCode::OK,
        }
    );
    assert!(!e.is_retryable());
    // Even alongside an access_token.
    let e = parse(200, r#"{"access_token":"a","error":"server_error"}"#).unwrap_err();
    assert!(matches!(&e, Error::OAuth { code: OAuthErrorCode::Other(c), .. } if c == "server_error"));
    assert!(e.is_retryable());
}

#[test]
fn error_responses_with_an_rfc6749_body() {
    let codes = [
        ("invalid_request", OAuthErrorCode::InvalidRequest),
        ("invalid_client", OAuthErrorCode::InvalidClient),
        ("invalid_grant", OAuthErrorCode::InvalidGrant),
        ("unauthorized_client", OAuthErrorCode::UnauthorizedClient),
        ("unsupported_grant_type", OAuthErrorCode::UnsupportedGrantType),
        ("invalid_scope", OAuthErrorCode::InvalidScope),
        ("invalid_target", OAuthErrorCode::InvalidTarget),
        ("slow_down", OAuthErrorCode::Other("slow_down".into())),
    ];
    for (wire, code) in codes {
        for status in [400, 401, 403] {
            let body = format!(
                r#"{{"error":"{wire}","error_description":"The thing\nfailed","error_uri":"https://id.example/e"}}"#
            );
            let e = parse(status, &body).unwrap_err();
            assert_eq!(
                e,
                Error::OAuth {
                    code: code.clone(),
                    description: Some("The thing failed".into()),
                    uri: Some("https://id.example/e".into()),
                    status: StatusCode::from_u16(status).unwrap(),
                }
            );
            assert_eq!(e.oauth_code(), Some(&code));
            assert_eq!(e.status(), StatusCode::from_u16(status).ok());
            assert_eq!(code.as_str(), wire);
            assert_eq!(OAuthErrorCode::from_wire(wire), code);
            let message = e.to_string();
            assert!(message.starts_with(&format!("{wire}: The thing failed")), "{message}");
            assert!(message.contains(&format!("HTTP {status}")), "{message}");
            assert!(!e.is_retryable(), "{wire} {status}");
        }
    }
    // Description and URI are optional; an empty description adds nothing.
    let e = parse(400, r#"{"error":"invalid_scope"}"#).unwrap_err();
    assert_eq!(e.to_string(), "invalid_scope (HTTP 400 from the authorization server)");
    let e = parse(400, r#"{"error":"invalid_scope","error_description":""}"#).unwrap_err();
    assert_eq!(e.to_string(), "invalid_scope (HTTP 400 from the authorization server)");
    // A 5xx with an OAuth body is an OAuth error, and retryable.
    let e = parse(503, r#"{"error":"temporarily_unavailable"}"#).unwrap_err();
    assert!(matches!(
        e,
        Error::OAuth {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ..
        }
    ));
    assert!(e.is_retryable());
    // Long descriptions are shortened.
    let long = "d".repeat(5000);
    let e = parse(
        400,
        &format!(r#"{{"error":"invalid_request","error_description":"{long}"}}"#),
    )
    .unwrap_err();
    assert!(e.to_string().len() < 500, "{}", e.to_string().len());
}

#[test]
fn error_statuses_without_an_oauth_body_are_unexpected_status() {
    let html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let e = parse(502, html).unwrap_err();
    match &e {
        Error::UnexpectedStatus { status, body_excerpt } => {
            assert_eq!(*status, StatusCode::BAD_GATEWAY);
            assert_eq!(body_excerpt, html);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable());
    assert!(e.to_string().starts_with("unexpected HTTP status 502"), "{e}");
    // JSON without a string `error` member is not an OAuth error.
    for body in [r#"{"message":"Forbidden"}"#, r#"{"error":{"code":403}}"#, "[]", ""] {
        let e = parse(403, body).unwrap_err();
        assert!(matches!(e, Error::UnexpectedStatus { .. }), "{body}: {e:?}");
        assert!(!e.is_retryable());
    }
    let e = parse(500, "").unwrap_err();
    assert_eq!(e.to_string(), "unexpected HTTP status 500 from the server");
    // Redirects are never followed: a 3xx is an error.
    let e = parse(302, "").unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnexpectedStatus {
                status: StatusCode::FOUND,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.is_retryable());
}

#[test]
fn excerpts_are_short_printable_and_never_contain_the_client_secret() {
    let long = format!("<html>{}</html>", "x".repeat(10_000));
    let Error::UnexpectedStatus { body_excerpt, .. } = parse(500, &long).unwrap_err() else {
        panic!()
    };
    assert!(body_excerpt.chars().count() <= 201, "{}", body_excerpt.len());
    let Error::UnexpectedStatus { body_excerpt, .. } = parse(500, "a\r\nb\u{0}c").unwrap_err() else {
        panic!()
    };
    assert!(!body_excerpt.chars().any(char::is_control), "{body_excerpt:?}");

    // A server that echoes the request, raw or form-encoded, anywhere in the
    // body: the secret never reaches the error.
    let encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    let percent = percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC).to_string();
    for offset in 0..260 {
        for form in [SECRET, encoded.as_str(), percent.as_str()] {
            let body = format!("{}{form} tail", "-".repeat(offset));
            let e = parse(500, &body).unwrap_err();
            let message = e.to_string();
            let Error::UnexpectedStatus { body_excerpt, .. } = e else {
                panic!()
            };
            for leak in [SECRET, "p@ss", "p%40ss", "w/rd", "w%2Frd"] {
                assert!(
                    !body_excerpt.contains(leak),
                    "offset {offset}, {form}: {body_excerpt:?}"
                );
                assert!(!message.contains(leak), "offset {offset}: {message}");
            }
        }
    }
}

#[test]
fn oauth_descriptions_never_contain_the_client_secret() {
    let body = format!(r#"{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}"#);
    let e = parse(401, &body).unwrap_err();
    assert!(!e.to_string().contains("p@ss"), "{e}");
    assert!(!format!("{e:?}").contains("p@ss"), "{e:?}");
}

#[test]
fn is_retryable_table() {
    let status = |s: u16| StatusCode::from_u16(s).unwrap();
    let unexpected = |s: u16| Error::UnexpectedStatus {
        status: status(s),
        body_excerpt: String::new(),
    };
    let oauth = |code: &str, s: u16| Error::OAuth {
        code: OAuthErrorCode::from_wire(code),
        description: None,
        uri: None,
        status: status(s),
    };
    let table: Vec<(Error, bool)> = vec![
        (unexpected(500), true),
        (unexpected(502), true),
        (unexpected(503), true),
        (unexpected(504), true),
        (unexpected(429), true),
        (unexpected(408), true),
        (unexpected(400), false),
        (unexpected(401), false),
        (unexpected(404), false),
        (unexpected(301), false),
        (oauth("invalid_client", 401), false),
        (oauth("invalid_scope", 400), false),
        (oauth("invalid_grant", 400), false),
        (oauth("invalid_request", 400), false),
        (oauth("unauthorized_client", 400), false),
        (oauth("invalid_target", 400), false),
        (oauth("temporarily_unavailable", 400), true),
        (oauth("server_error", 400), true),
        (oauth("invalid_request", 503), true),
        (oauth("slow_down", 429), true),
        (Error::InvalidResponse { reason: "x".into() }, false),
        (
            Error::Transport(TransportError::new(TransportErrorKind::Connect, "refused")),
            true,
        ),
        (Error::Transport(TransportErrorKind::Timeout.into()), true),
        (Error::Transport(TransportErrorKind::Io.into()), true),
        (Error::Transport(TransportErrorKind::Other.into()), true),
        (Error::Config(client_credentials::ConfigError::MissingEndpoint), false),
        (Error::Discovery(DiscoveryError::NotFound { url: "u".into() }), false),
        (Error::Discovery(DiscoveryError::MissingTokenEndpoint), false),
        (
            Error::Discovery(DiscoveryError::IssuerMismatch {
                expected: "a".into(),
                found: "b".into(),
            }),
            false,
        ),
        (
            Error::Discovery(DiscoveryError::UnexpectedStatus {
                status: status(503),
                body_excerpt: String::new(),
            }),
            true,
        ),
        (
            Error::Discovery(DiscoveryError::UnexpectedStatus {
                status: status(403),
                body_excerpt: String::new(),
            }),
            false,
        ),
    ];
    for (error, retryable) in table {
        assert_eq!(error.is_retryable(), retryable, "{error:?}");
    }
}

#[test]
fn transport_error_messages() {
    let e = Error::Transport(TransportError::new(TransportErrorKind::Connect, "connection refused"));
    assert_eq!(e.to_string(), "could not connect: connection refused");
    assert_eq!(
        Error::Transport(TransportErrorKind::Timeout.into()).to_string(),
        "timed out"
    );
    let t = TransportError::new(TransportErrorKind::Io, "reset");
    assert_eq!(t.kind(), TransportErrorKind::Io);
    assert_eq!(t.message(), "reset");
}

#[test]
fn tokens_serialize_for_stores_and_debug_redacts() {
    let token = ok(r#"{"access_token":"tok-123","expires_in":60,"scope":"r","refresh_token":"rt-456"}"#);
    let debug = format!("{token:?}");
    assert!(!debug.contains("tok-123") && !debug.contains("rt-456"), "{debug}");
    let json = serde_json::to_string(&token).unwrap();
    assert!(json.contains("tok-123") && json.contains("rt-456"), "{json}");
    let back: AccessToken = serde_json::from_str(&json).unwrap();
    assert_eq!(back, token);
    assert_eq!(back.refresh_token(), token.refresh_token());
    assert_eq!(back.scope(), token.scope());
    assert_eq!(back.received_at(), token.received_at());
    // A stored token that could not be sent is refused on load.
    for json in [
        r#"{"access_token":"","token_type":"Bearer"}"#,
        r#"{"access_token":"a b","token_type":"Bearer"}"#,
        r#"{"access_token":"a","token_type":"bad type"}"#,
        r#"{"access_token":"a"}"#,
        r#"{"access_token":"a","token_type":"Bearer","expires_at":-1}"#,
    ] {
        assert!(serde_json::from_str::<AccessToken>(json).is_err(), "{json}");
    }
}
