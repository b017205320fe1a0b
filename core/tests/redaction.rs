//! Every credential a request carried is cut out of the
//! server text that errors and events quote, in every escaped form a server
//! may echo it in.

mod common;

use client_credentials::{ClientAuth, Error, Event, TransportError, TransportErrorKind};
use common::*;

/// A refresh token with characters that escape differently in each syntax.
const REFRESH_TOKEN: &str = "rt/9+Zq=w&x<y\"z é";

/// The forms a server may echo `value` in: raw, form-encoded (upper and lower
/// case hex, `+` for space), JSON (`\/`, `\uXXXX` for everything but letters
/// and digits), HTML (`&amp;`, numeric references), in a JSON string.
fn echoed_forms(value: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let lower = lowercase_hex(&form);
    let percent_all: String = value.bytes().map(|b| format!("%{b:02x}")).collect();
    let json = serde_json::to_string(value).unwrap();
    let json = json.trim_matches('"').replace('/', "\\/");
    let json_unicode: String = value
        .encode_utf16()
        .map(|unit| match char::from_u32(u32::from(unit)) {
            Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
            _ => format!("\\u{unit:04X}"),
        })
        .collect();
    let html = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('/', "&#x2F;")
        .replace('+', "&#43;");
    vec![value.to_owned(), form, lower, percent_all, json, json_unicode, html]
}

fn lowercase_hex(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|c| c.to_ascii_lowercase()));
        }
    }
    out
}

/// The error as a user, a log line and a debugger see it: none of them may
/// hold `value` in any form.
fn assert_clean(what: &str, text: &str, value: &str) {
    for form in echoed_forms(value) {
        assert!(!text.contains(&form), "{what}: {form:?} in {text}");
    }
}

fn views(error: &Error) -> String {
    format!("{error} | {error:?}")
}

fn error_page(status: u16, echoed: &str) -> http::Response<Vec<u8>> {
    response(status, format!("<html><pre>you sent: {echoed}</pre></html>"))
}

fn oauth_echo(status: u16, code: &str, echoed: &str) -> http::Response<Vec<u8>> {
    let description = serde_json::to_string(&format!("credential {echoed} refused")).unwrap();
    response(
        status,
        format!(r#"{{"error":"{code}","error_description":{description}}}"#),
    )
}

#[test]
fn the_basic_header_value_is_redacted_in_every_form() {
    for auth in [ClientAuth::Basic, ClientAuth::BasicUnencoded] {
        let mut source = client_credentials::TokenSource::new(builder().auth(auth.clone()).build().unwrap(), [7; 32]);
        let out = send(&mut source, at(0));
        let header = out.request.headers()["authorization"].to_str().unwrap().to_owned();
        let value = header.strip_prefix("Basic ").unwrap().to_owned();
        for form in echoed_forms(&value) {
            let mut source =
                client_credentials::TokenSource::new(builder().auth(auth.clone()).build().unwrap(), [7; 32]);
            let out = send(&mut source, at(0));
            let echo = format!("Authorization: Basic {form}");
            let error = source
                .handle_response(at(0), out.id, error_page(401, &echo))
                .unwrap_err();
            assert_clean("unexpected status", &views(&error), &value);
            assert!(error.to_string().contains("[redacted]"), "{error}");
            // In an OAuth description too, and in the retry event of a 5xx.
            let out = send(&mut source, at(3600));
            let error = source
                .handle_response(at(3600), out.id, oauth_echo(400, "invalid_client", &form))
                .unwrap_err();
            assert_clean("oauth description", &views(&error), &value);
            let out = send(&mut source, at(7200));
            let event = source
                .handle_response(at(7200), out.id, error_page(503, &echo))
                .unwrap();
            assert!(matches!(event, Event::RetryScheduled { .. }), "{event:?}");
            assert_clean("retry event", &format!("{event:?}"), &value);
        }
    }
}

/// Fetches a first token (600 s) at `at(0)` whose response carries
/// `REFRESH_TOKEN`, so the next refresh sends it.
fn fetch_with_refresh_token(source: &mut client_credentials::TokenSource) {
    let out = send(source, at(0));
    let body = serde_json::json!({
        "access_token": "at-1", "token_type": "Bearer", "expires_in": 600, "refresh_token": REFRESH_TOKEN,
    });
    source
        .handle_response(at(0), out.id, response(200, body.to_string()))
        .unwrap();
}

#[test]
fn the_refresh_token_sent_in_a_refresh_grant_is_redacted_in_every_form() {
    for form in echoed_forms(REFRESH_TOKEN) {
        let mut source = source();
        fetch_with_refresh_token(&mut source);
        let out = send(&mut source, at(500));
        assert_eq!(
            form_value(&out.request, "refresh_token").as_deref(),
            Some(REFRESH_TOKEN)
        );
        // "refresh token … expired": the fallback event quotes it.
        let event = source
            .handle_response(at(500), out.id, oauth_echo(400, "invalid_grant", &form))
            .unwrap();
        assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
        assert_clean("fallback event", &format!("{event:?}"), REFRESH_TOKEN);
        let Event::Fallback { error } = event else {
            unreachable!()
        };
        assert_clean("fallback error", &views(&error), REFRESH_TOKEN);
        assert!(error.to_string().contains("[redacted]"), "{error}");
    }
    // An error page, a transport error message, the JSON body variant.
    let mut source = client_credentials::TokenSource::new(builder().auth(ClientAuth::Json).build().unwrap(), [7; 32]);
    fetch_with_refresh_token(&mut source);
    let out = send(&mut source, at(500));
    let event = source
        .handle_response(
            at(500),
            out.id,
            error_page(502, &lowercase_hex(&form_encode(REFRESH_TOKEN))),
        )
        .unwrap();
    assert_clean("refresh failed", &format!("{event:?}"), REFRESH_TOKEN);
    let out = send(&mut source, at(900));
    let message = format!("proxy said: refresh_token={}", form_encode(REFRESH_TOKEN));
    let event = source
        .handle_transport_error(at(900), out.id, TransportError::new(TransportErrorKind::Io, message))
        .unwrap();
    assert_clean("transport error", &format!("{event:?}"), REFRESH_TOKEN);
}

fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[test]
fn the_token_sent_to_revocation_is_redacted_in_every_form() {
    for (refresh, revoked) in [(true, REFRESH_TOKEN), (false, "access/tok+en=&<>")] {
        for form in echoed_forms(revoked) {
            let mut source = client_credentials::TokenSource::new(
                builder()
                    .revocation_endpoint("https://auth.example/revoke")
                    .build()
                    .unwrap(),
                [7; 32],
            );
            let out = send(&mut source, at(0));
            let mut body =
                serde_json::json!({"access_token": "access/tok+en=&<>", "token_type": "Bearer", "expires_in": 600});
            if refresh {
                body["refresh_token"] = REFRESH_TOKEN.into();
            }
            source
                .handle_response(at(0), out.id, response(200, body.to_string()))
                .unwrap();
            let out = source.signout(at(1)).expect("a revocation request");
            assert_eq!(form_value(&out.request, "token").as_deref(), Some(revoked));
            let error = source
                .handle_response(at(1), out.id, oauth_echo(400, "invalid_request", &form))
                .unwrap_err();
            assert_clean("revocation error", &views(&error), revoked);
            assert!(error.to_string().contains("[redacted]"), "{error}");

            // An HTML page echoing it, after a second sign-in.
            let out = send(&mut source, at(10));
            source
                .handle_response(at(10), out.id, response(200, body.to_string()))
                .unwrap();
            let out = source.signout(at(11)).expect("a revocation request");
            let error = source
                .handle_response(at(11), out.id, error_page(500, &form))
                .unwrap_err();
            assert_clean("revocation page", &views(&error), revoked);
        }
    }
}

#[test]
fn the_client_secret_is_redacted_in_every_form() {
    for form in echoed_forms(SECRET) {
        for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Json] {
            let mut source = client_credentials::TokenSource::new(builder().auth(auth).build().unwrap(), [7; 32]);
            let out = send(&mut source, at(0));
            let error = source
                .handle_response(at(0), out.id, error_page(400, &form))
                .unwrap_err();
            assert_clean("error page", &views(&error), SECRET);
        }
    }
}

/// `TokenSource`'s `Debug` shows the state of the lifecycle, never a
/// credential: not a workload-identity assertion handed over by the adapter,
/// not the seed the `jti` values derive from, not the token, the refresh
/// token or anything a request in flight carries.
#[test]
fn the_token_source_debug_shows_no_assertion_seed_or_token() {
    use client_credentials::driver::{Call, Driver, Outcome, Step, Task};
    use client_credentials::{AssertionSource, TokenSource};

    let assertion = jwt(&format!(
        r#"{{"sub":"workload","exp":{},"marker":"ASSERTION-MARKER"}}"#,
        START + 3600
    ));
    let config = builder()
        .auth(ClientAuth::Assertion(AssertionSource::file("/run/token")))
        .build()
        .unwrap();
    // Through the driver, which hands the file's content to the core.
    let mut source = Driver::new(TokenSource::new(config, [0xA5; 32]));
    let mut call = Call::token();
    let Step::Work(read) = source.step(at(0), &mut call) else {
        panic!("the assertion is read first")
    };
    assert!(source
        .handle(at(0), read.ticket, Outcome::Assertion(Some(Ok(assertion.clone()))))
        .is_none());
    let Step::Work(sending) = source.step(at(0), &mut call) else {
        panic!("a request")
    };
    let Task::Send(out, _) = &sending.task else {
        panic!("a request")
    };
    assert_eq!(
        form_value(&out.request, "client_assertion").as_deref(),
        Some(assertion.as_str())
    );
    let in_flight = format!("{source:?}");
    let answer = response(
        200,
        r#"{"access_token":"ACCESS-MARKER","token_type":"Bearer","expires_in":3600,"refresh_token":"REFRESH-MARKER"}"#,
    );
    let mut next = source.handle(at(0), sending.ticket, Outcome::Response(answer));
    while let Some(work) = next {
        next = source.handle(at(0), work.ticket, Outcome::Done);
    }
    assert!(matches!(source.step(at(1), &mut call), Step::Ready(_)));
    let cached = format!("{source:?}");
    for debug in [in_flight, cached] {
        for secret in [
            assertion.as_str(),
            assertion.split('.').nth(1).unwrap(),
            "ACCESS-MARKER",
            "REFRESH-MARKER",
            "165, 165",
            "a5a5",
            SECRET,
        ] {
            assert!(!debug.contains(secret), "{secret:?} in {debug}");
        }
        assert!(debug.contains("source: TokenSource"), "{debug}");
    }
}

/// An `Outgoing`'s `Debug` (what an adapter may log) shows the URI without
/// its query: a token endpoint may carry a key there.
#[test]
fn an_outgoing_request_debug_shows_no_query() {
    let config = builder()
        .token_endpoint("https://auth.example/oauth2/token?key=QUERY-MARKER")
        .build()
        .unwrap();
    let out = send(&mut client_credentials::TokenSource::new(config, [7; 32]), at(0));
    assert_eq!(
        out.request.uri().query(),
        Some("key=QUERY-MARKER"),
        "the request keeps it"
    );
    let debug = format!("{out:?}");
    assert!(!debug.contains("QUERY-MARKER"), "{debug}");
    assert!(debug.contains("https://auth.example/oauth2/token?…"), "{debug}");
}
