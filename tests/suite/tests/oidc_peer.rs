//! Proof that the oidc-provider peer is configured as the suite expects,
//! checked with raw HTTP over `TcpStream` only (no client code, no HTTP crate).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use client_credentials_suite::oidc::raw;
use client_credentials_suite::OidcPeer;
use serde_json::Value;

/// RFC 6749 §2.3.1: id and secret each application/x-www-form-urlencoded
/// (space as `%20`), joined by `:`, then base64.
fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// Form-urlencoding with a space written `%20` rather than `+`: a literal `+`
/// is already `%2B`, so every `+` left stands for a space.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn discovery(peer: &OidcPeer) -> Value {
    let url = format!("{}/.well-known/openid-configuration", peer.issuer());
    let resp = raw::get(&url).expect("GET discovery");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    resp.json()
}

fn token_endpoint(peer: &OidcPeer) -> String {
    discovery(peer)["token_endpoint"]
        .as_str()
        .expect("token_endpoint")
        .to_owned()
}

fn basic_token(peer: &OidcPeer, authorization: &str, form: &[(&str, &str)]) -> raw::Response {
    let mut all = vec![("grant_type", "client_credentials")];
    all.extend_from_slice(form);
    raw::post_form(&token_endpoint(peer), &[("Authorization", authorization)], &all).expect("POST token")
}

fn assert_error(resp: &raw::Response, status: u16, error: &str) {
    assert_eq!(resp.status, status, "{}", resp.body_text());
    assert_eq!(resp.json()["error"], error, "{}", resp.body_text());
}

fn assert_bearer(resp: &raw::Response) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let json = resp.json();
    assert!(json["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{json}");
    assert_eq!(json["token_type"], "Bearer", "{json}");
    assert!(json["expires_in"].as_u64().is_some_and(|e| e > 0), "{json}");
    json
}

#[test]
fn discovery_names_the_issuer_and_token_endpoint() {
    let peer = OidcPeer::shared();
    let doc = discovery(peer);
    assert_eq!(doc["issuer"], peer.issuer());
    assert!(peer.issuer().starts_with("http://127.0.0.1:"));
    assert!(peer.issuer().ends_with("/oidc"));
    let token = doc["token_endpoint"].as_str().expect("token_endpoint");
    assert!(token.starts_with(peer.issuer()), "{token}");
    assert!(doc["revocation_endpoint"].is_string(), "{doc}");
    assert!(doc["introspection_endpoint"].is_string(), "{doc}");
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "client_credentials")),
        "{doc}"
    );
    println!("reached oidc-provider@{}", peer.version());
}

#[test]
fn basic_auth_gets_an_opaque_token() {
    let peer = OidcPeer::shared();
    let auth = basic(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET);
    let json = assert_bearer(&basic_token(peer, &auth, &[]));
    let token = json["access_token"].as_str().unwrap_or_default();
    assert_ne!(token.split('.').count(), 3, "no resource: opaque, {json}");
    if std::env::var_os("CC_TTL").is_none() {
        assert_eq!(json["expires_in"], OidcPeer::DEFAULT_TTL_SECS, "{json}");
    }
}

#[test]
fn basic_auth_space_as_plus_is_also_decoded() {
    let peer = OidcPeer::shared();
    let plus = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            plus(OidcPeer::BASIC_CLIENT_ID),
            plus(OidcPeer::BASIC_CLIENT_SECRET)
        ))
    );
    assert!(auth.len() > 6);
    assert_bearer(&basic_token(peer, &auth, &[]));
}

#[test]
fn unencoded_basic_secret_is_rejected() {
    let peer = OidcPeer::shared();
    let auth = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            OidcPeer::BASIC_CLIENT_ID,
            OidcPeer::BASIC_CLIENT_SECRET
        ))
    );
    assert_error(&basic_token(peer, &auth, &[]), 400, "invalid_request");
}

#[test]
fn resource_gets_a_jwt_for_that_audience() {
    let peer = OidcPeer::shared();
    let auth = basic(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET);
    let resp = basic_token(peer, &auth, &[("resource", OidcPeer::RESOURCE), ("scope", "api:read")]);
    let json = assert_bearer(&resp);
    assert_eq!(json["scope"], "api:read", "{json}");
    let token = json["access_token"].as_str().unwrap_or_default();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT expected: {token}");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).expect("JSON claims");
    assert_eq!(claims["aud"], OidcPeer::RESOURCE, "{claims}");
    assert_eq!(claims["iss"], peer.issuer(), "{claims}");
    assert_eq!(claims["client_id"], OidcPeer::BASIC_CLIENT_ID, "{claims}");
    assert_eq!(claims["scope"], "api:read", "{claims}");
}

#[test]
fn unknown_resource_is_invalid_target() {
    let peer = OidcPeer::shared();
    let auth = basic(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET);
    let resp = basic_token(peer, &auth, &[("resource", "https://other.example.test/")]);
    assert_error(&resp, 400, "invalid_target");
}

#[test]
fn wrong_secret_is_invalid_client() {
    let peer = OidcPeer::shared();
    let auth = basic(OidcPeer::BASIC_CLIENT_ID, "not the secret");
    let resp = basic_token(peer, &auth, &[]);
    assert_error(&resp, 401, "invalid_client");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic "), "{challenge}");
}

#[test]
fn unknown_scope_is_invalid_scope() {
    let peer = OidcPeer::shared();
    let auth = basic(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET);
    let resp = basic_token(peer, &auth, &[("scope", "api:read api:delete")]);
    assert_error(&resp, 400, "invalid_scope");
    let resp = basic_token(
        peer,
        &auth,
        &[("scope", "api:delete"), ("resource", OidcPeer::RESOURCE)],
    );
    assert_error(&resp, 400, "invalid_scope");
}

#[test]
fn post_client_authenticates_in_the_body() {
    let peer = OidcPeer::shared();
    let resp = raw::post_form(
        &token_endpoint(peer),
        &[],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", OidcPeer::POST_CLIENT_ID),
            ("client_secret", OidcPeer::POST_CLIENT_SECRET),
            ("scope", "api:read api:write"),
        ],
    )
    .expect("POST token");
    let json = assert_bearer(&resp);
    assert_eq!(json["scope"], "api:read api:write", "{json}");
}

#[test]
fn a_second_peer_starts_and_stops() {
    let peer = OidcPeer::start();
    assert_ne!(peer.issuer(), OidcPeer::shared().issuer());
    let url = format!("{}/.well-known/openid-configuration", peer.issuer());
    drop(peer);
    assert!(raw::get(&url).is_err(), "the dropped peer still answers");
}
