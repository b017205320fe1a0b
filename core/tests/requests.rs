//! The token requests a `TokenSource` emits: client authentication (RFC 6749
//! §2.3.1), bodies, parameters and the refresh-token grant.

mod common;

use client_credentials::{ClientAuth, Config, Event, RequestKind, TokenSource};
use common::*;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

fn first_request(config: Config) -> http::Request<Vec<u8>> {
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    assert_eq!(out.kind, RequestKind::Token);
    out.request
}

#[test]
fn basic_auth_form_encodes_then_base64_and_round_trips_any_secret() {
    let request = first_request(config());
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), TOKEN_URL);
    assert_eq!(request.headers()[ACCEPT], "application/json");
    assert_eq!(request.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
    assert!(request.headers()[AUTHORIZATION].is_sensitive());
    // A space is %20, never '+', which percent-only decoders would read as a plus.
    let raw = basic_raw(&request);
    assert_eq!(raw, "client-1:p%40ss%3Aw%2Frd%2B%20%26%3D%25");
    assert!(!raw.contains('+'));
    assert_eq!(basic_decoded(&request), (CLIENT_ID.to_owned(), SECRET.to_owned()));
    // The secret is not in the body.
    assert_eq!(
        form(&request),
        [("grant_type".to_owned(), "client_credentials".to_owned())]
    );
    let body = String::from_utf8(request.body().clone()).unwrap();
    assert!(!body.contains("client_secret"));

    // Percent-decoding alone (servers that never form-decode) reads the same.
    let (_, secret) = raw.split_once(':').unwrap();
    let percent_only = percent_encoding::percent_decode_str(secret).decode_utf8().unwrap();
    assert_eq!(percent_only, SECRET);
}

#[test]
fn basic_auth_round_trips_colons_and_unicode_in_the_client_id() {
    for (id, secret) in [
        ("urn:client:1", "s"),
        ("clïent", "sécret ☃"),
        ("a+b", "++  ::"),
        ("id", ""),
    ] {
        let config = Config::builder(id, secret).token_endpoint(TOKEN_URL).build().unwrap();
        let request = first_request(config);
        assert_eq!(
            basic_decoded(&request),
            (id.to_owned(), secret.to_owned()),
            "{id:?} {secret:?}"
        );
    }
}

#[test]
fn basic_unencoded_sends_the_raw_pair() {
    let request = first_request(builder().auth(ClientAuth::BasicUnencoded).build().unwrap());
    assert_eq!(basic_raw(&request), format!("{CLIENT_ID}:{SECRET}"));
    assert!(request.headers()[AUTHORIZATION].is_sensitive());
}

#[test]
fn post_auth_puts_the_credentials_in_the_form_body() {
    let request = first_request(builder().auth(ClientAuth::Post).scope("read write").build().unwrap());
    assert!(request.headers().get(AUTHORIZATION).is_none());
    assert_eq!(request.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
    assert_eq!(
        form(&request),
        [
            ("grant_type", "client_credentials"),
            ("scope", "read write"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn json_auth_sends_a_json_body_with_a_resource_array() {
    // The shape of seed 003: client_id, client_secret, scope and `resource` as an array.
    let config = builder()
        .auth(ClientAuth::Json)
        .scope("api:read api:write")
        .resource("https://api.example/one")
        .resource("https://api.example/two")
        .audience("https://api.example")
        .param("tenant", "acme")
        .build()
        .unwrap();
    let request = first_request(config);
    assert!(request.headers().get(AUTHORIZATION).is_none());
    assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "api:read api:write",
            "resource": ["https://api.example/one", "https://api.example/two"],
            "audience": "https://api.example",
            "tenant": "acme",
        })
    );

    // A single resource is still an array; none means no member at all.
    let request = first_request(
        builder()
            .auth(ClientAuth::Json)
            .resource("https://api.example/one")
            .build()
            .unwrap(),
    );
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["resource"], serde_json::json!(["https://api.example/one"]));
    assert!(body.get("scope").is_none());
    let request = first_request(builder().auth(ClientAuth::Json).build().unwrap());
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert!(body.get("resource").is_none());
}

#[test]
fn scope_resources_audience_and_extra_params_are_sent_in_order() {
    let config = builder()
        .scope("b")
        .scope("a b")
        .resource("https://api.example/one")
        .resource("urn:two")
        .audience("aud value")
        .param("organization", "ac&me=1")
        .param("x", "")
        .build()
        .unwrap();
    let request = first_request(config);
    assert_eq!(
        form(&request),
        [
            ("grant_type", "client_credentials"),
            ("scope", "b a"),
            ("resource", "https://api.example/one"),
            ("resource", "urn:two"),
            ("audience", "aud value"),
            ("organization", "ac&me=1"),
            ("x", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn every_request_has_a_user_agent_and_accepts_json_only() {
    let request = first_request(config());
    let agent = request.headers()[http::header::USER_AGENT].to_str().unwrap();
    assert!(agent.starts_with("client-credentials/"), "{agent}");
    assert_eq!(request.headers().get_all(ACCEPT).iter().count(), 1);
}

#[test]
fn outgoing_debug_shows_no_credentials() {
    let mut source = TokenSource::new(builder().auth(ClientAuth::Post).build().unwrap(), [7; 32]);
    let out = send(&mut source, at(0));
    let debug = format!("{out:?}");
    assert!(debug.contains(TOKEN_URL), "{debug}");
    assert!(debug.contains("Token"), "{debug}");
    assert!(!debug.contains("p@ss") && !debug.contains("p%40ss"), "{debug}");
}

/// A response with a refresh token makes the next refresh use RFC 6749 §6.
#[test]
fn a_refresh_token_is_used_for_the_next_refresh_then_dropped_on_invalid_grant() {
    let mut source = TokenSource::new(builder().scope("read").build().unwrap(), [7; 32]);
    let out = send(&mut source, at(0));
    let body = r#"{"access_token":"first","token_type":"Bearer","expires_in":600,"refresh_token":"rt-1"}"#;
    let Ok(Event::TokenUpdated(token)) = source.handle_response(at(1), out.id, response(200, body)) else {
        panic!("no token");
    };
    assert_eq!(token.refresh_token(), Some("rt-1"));
    assert!(!format!("{token:?}").contains("rt-1"));

    // Refreshed at 600 - 300 = 300 s after sending.
    ready(&mut source, at(299));
    let out = send(&mut source, at(300));
    assert_eq!(
        form(&out.request),
        [("grant_type", "refresh_token"), ("refresh_token", "rt-1")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(basic_decoded(&out.request), (CLIENT_ID.to_owned(), SECRET.to_owned()));

    // RFC 6749 §6: a response without a new refresh token keeps the old one.
    let Ok(Event::TokenUpdated(second)) = source.handle_response(at(301), out.id, token_ok("second", 600)) else {
        panic!("no token");
    };
    assert_eq!(second.refresh_token(), Some("rt-1"));

    // The refresh token is refused: fall back to client credentials at once.
    let out = send(&mut source, at(600));
    assert_eq!(form_value(&out.request, "grant_type").as_deref(), Some("refresh_token"));
    let event = source.handle_response(at(601), out.id, oauth_error(400, "invalid_grant"));
    assert!(matches!(event, Ok(Event::Fallback { .. })), "{event:?}");
    // The client credentials grant goes out on the next poll.
    let out = send(&mut source, at(601));
    assert_eq!(
        form(&out.request),
        [("grant_type", "client_credentials"), ("scope", "read")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let Ok(Event::TokenUpdated(third)) = source.handle_response(at(602), out.id, token_ok("third", 600)) else {
        panic!("no token");
    };
    assert_eq!(third.secret(), "third");
    assert!(third.refresh_token().is_none());
}

#[test]
fn refresh_grant_with_json_and_post_auth() {
    for auth in [ClientAuth::Json, ClientAuth::Post] {
        let mut source = TokenSource::new(builder().auth(auth.clone()).build().unwrap(), [7; 32]);
        let out = send(&mut source, at(0));
        let body = r#"{"access_token":"a","expires_in":600,"refresh_token":"rt"}"#;
        source.handle_response(at(0), out.id, response(200, body)).unwrap();
        let out = send(&mut source, at(300));
        let body = String::from_utf8(out.request.body().clone()).unwrap();
        assert!(body.contains("refresh_token"), "{auth:?}: {body}");
        assert!(body.contains("rt"), "{auth:?}: {body}");
        assert!(!body.contains("client_credentials"), "{auth:?}: {body}");
    }
}

#[test]
fn refresh_tokens_can_be_disabled() {
    let mut source = TokenSource::new(builder().use_refresh_tokens(false).build().unwrap(), [7; 32]);
    let out = send(&mut source, at(0));
    let body = r#"{"access_token":"a","expires_in":600,"refresh_token":"rt"}"#;
    source.handle_response(at(0), out.id, response(200, body)).unwrap();
    let out = send(&mut source, at(300));
    assert_eq!(
        form_value(&out.request, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(form_value(&out.request, "refresh_token"), None);
}

#[test]
fn a_stored_token_with_a_refresh_token_refreshes_with_it() {
    let stored = client_credentials::AccessToken::builder("old")
        .received_at(at(0))
        .expires_at(at(10))
        .refresh_token("stored-rt")
        .build()
        .unwrap();
    let mut source = TokenSource::with_token(config(), stored, [7; 32]);
    let out = send(&mut source, at(100));
    assert_eq!(form_value(&out.request, "refresh_token").as_deref(), Some("stored-rt"));
}
