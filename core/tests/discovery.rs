//! Standalone discovery: URL construction and `parse_discovery`.

use client_credentials::{
    discovery_request, discovery_request_at, parse_discovery, ClientAuth, DiscoveryError,
    DiscoveryLocation::{OpenId, Rfc8414},
    Error,
};

fn url(issuer: &str, location: client_credentials::DiscoveryLocation) -> String {
    discovery_request_at(issuer, location)
        .unwrap_or_else(|e| panic!("{issuer}: {e}"))
        .uri()
        .to_string()
}

#[test]
fn urls_for_issuers_with_and_without_paths() {
    let cases = [
        (
            "https://id.example",
            "https://id.example/.well-known/openid-configuration",
            "https://id.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://id.example/",
            "https://id.example/.well-known/openid-configuration",
            "https://id.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://id.example/tenant/a",
            "https://id.example/tenant/a/.well-known/openid-configuration",
            "https://id.example/.well-known/oauth-authorization-server/tenant/a",
        ),
        (
            "https://id.example/tenant/a/",
            "https://id.example/tenant/a/.well-known/openid-configuration",
            "https://id.example/.well-known/oauth-authorization-server/tenant/a",
        ),
        (
            "https://ID.Example:8443/realms/x",
            "https://id.example:8443/realms/x/.well-known/openid-configuration",
            "https://id.example:8443/.well-known/oauth-authorization-server/realms/x",
        ),
        (
            "http://localhost:8080/issuer",
            "http://localhost:8080/issuer/.well-known/openid-configuration",
            "http://localhost:8080/.well-known/oauth-authorization-server/issuer",
        ),
        (
            "http://[::1]:9000",
            "http://[::1]:9000/.well-known/openid-configuration",
            "http://[::1]:9000/.well-known/oauth-authorization-server",
        ),
    ];
    for (issuer, openid, rfc8414) in cases {
        assert_eq!(url(issuer, OpenId), openid, "{issuer}");
        assert_eq!(url(issuer, Rfc8414), rfc8414, "{issuer}");
    }
}

#[test]
fn unusable_issuers_are_clear_errors() {
    for issuer in [
        "",
        "id.example",
        "/tenant",
        "http://id.example",
        "https://id.example?x=1",
        "https://id.example#frag",
        "ftp://id.example",
        "https://user:pw@id.example",
    ] {
        for location in [OpenId, Rfc8414] {
            let e = discovery_request_at(issuer, location).unwrap_err();
            assert!(
                matches!(e, Error::Discovery(DiscoveryError::InvalidIssuer { .. })),
                "{issuer}: {e:?}"
            );
            assert!(e.to_string().starts_with("issuer "), "{e}");
            assert!(!e.to_string().contains("pw@"), "{e}");
            assert!(!e.is_retryable());
        }
    }
}

#[test]
fn requests_are_plain_gets_for_json() {
    let request = discovery_request_at("https://id.example/t", OpenId).unwrap();
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri(), "https://id.example/t/.well-known/openid-configuration");
    assert_eq!(request.headers()[http::header::ACCEPT], "application/json");
    assert!(request.body().is_empty());
    let request = discovery_request_at("https://id.example/t", Rfc8414).unwrap();
    assert_eq!(
        request.uri(),
        "https://id.example/.well-known/oauth-authorization-server/t"
    );
}

#[test]
fn the_one_argument_builder_is_the_openid_location_and_sends_nothing_for_a_bad_issuer() {
    let request = discovery_request("https://id.example/t");
    assert_eq!(request.uri(), "https://id.example/t/.well-known/openid-configuration");
    assert_eq!(
        request.uri(),
        discovery_request_at("https://id.example/t", OpenId).unwrap().uri()
    );
    // Unusable issuers: no host to send to; discovery_request_at says why.
    for bad in ["not a url", "http://id.example", "https://id.example/?q=1"] {
        assert!(discovery_request(bad).uri().host().is_none(), "{bad}");
        assert!(discovery_request_at(bad, OpenId).is_err(), "{bad}");
    }
}

fn doc(status: u16, body: &str) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .unwrap()
}

const ISSUER: &str = "https://id.example";

fn parse(status: u16, body: &str) -> Result<client_credentials::ProviderMetadata, DiscoveryError> {
    match parse_discovery(ISSUER, doc(status, body)) {
        Ok(m) => Ok(m),
        Err(Error::Discovery(e)) => Err(e),
        Err(other) => panic!("not a discovery error: {other:?}"),
    }
}

#[test]
fn a_full_document_is_typed_and_the_rest_kept() {
    let body = r#"{
        "issuer":"https://id.example",
        "token_endpoint":"https://id.example/token",
        "revocation_endpoint":"https://id.example/revoke",
        "jwks_uri":"https://id.example/jwks",
        "token_endpoint_auth_methods_supported":["client_secret_post", 7],
        "scopes_supported":["openid","api"],
        "grant_types_supported":["client_credentials"],
        "introspection_endpoint":"https://id.example/introspect"
    }"#;
    let m = parse(200, body).unwrap();
    assert_eq!(m.issuer, ISSUER);
    assert_eq!(m.token_endpoint, "https://id.example/token");
    assert_eq!(m.revocation_endpoint.as_deref(), Some("https://id.example/revoke"));
    assert_eq!(m.jwks_uri.as_deref(), Some("https://id.example/jwks"));
    assert_eq!(
        m.token_endpoint_auth_methods_supported,
        Some(vec!["client_secret_post".to_owned()])
    );
    assert_eq!(m.scopes_supported, Some(vec!["openid".to_owned(), "api".to_owned()]));
    assert_eq!(m.grant_types_supported, Some(vec!["client_credentials".to_owned()]));
    assert_eq!(m.preferred_auth(), ClientAuth::Post);
    assert_eq!(
        m.get("introspection_endpoint"),
        Some(serde_json::json!("https://id.example/introspect"))
    );
    assert_eq!(
        m.get("token_endpoint"),
        Some(serde_json::json!("https://id.example/token"))
    );
    assert_eq!(m.get("nope"), None);
    // Serialising gives the document back (round trip).
    let json = serde_json::to_string(&m).unwrap();
    let back: client_credentials::ProviderMetadata = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
}

#[test]
fn parse_discovery_errors() {
    assert!(matches!(parse(404, ""), Err(DiscoveryError::NotFound { .. })));
    assert!(matches!(parse(410, ""), Err(DiscoveryError::NotFound { .. })));
    let e = parse(503, "<html>down</html>").unwrap_err();
    assert!(
        matches!(&e, DiscoveryError::UnexpectedStatus { status, body_excerpt } if status.as_u16() == 503 && body_excerpt.contains("down"))
    );
    assert!(e.is_retryable());
    assert_eq!(e.to_string(), "discovery answered HTTP 503: <html>down</html>");
    let e = parse(403, "").unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.to_string(), "discovery answered HTTP 403");
    let e = parse(301, "").unwrap_err();
    assert!(matches!(e, DiscoveryError::UnexpectedStatus { .. }), "{e:?}");

    for (body, want) in [
        ("", "empty"),
        ("<html/>", "not JSON"),
        ("[]", "not an object"),
        (r#"{"issuer":"https://id.exa"#, "truncated"),
        (r#"{"token_endpoint":"https://id.example/token"}"#, "no issuer"),
        (
            r#"{"issuer":7,"token_endpoint":"https://id.example/token"}"#,
            "no issuer",
        ),
    ] {
        match parse(200, body) {
            Err(DiscoveryError::InvalidDocument { reason }) => assert!(reason.contains(want), "{body}: {reason}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    let e = parse(200, r#"{"issuer":"https://id.example"}"#).unwrap_err();
    assert_eq!(e, DiscoveryError::MissingTokenEndpoint);
    let e = parse(200, r#"{"issuer":"https://id.example","token_endpoint":null}"#).unwrap_err();
    assert_eq!(e, DiscoveryError::MissingTokenEndpoint);

    let e = parse(
        200,
        r#"{"issuer":"https://other.example","token_endpoint":"https://other.example/t"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        DiscoveryError::IssuerMismatch {
            expected: ISSUER.into(),
            found: "https://other.example".into()
        }
    );
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(!e.is_retryable());

    for endpoint in [
        "http://id.example/token",
        "/token",
        "https://id.example/token#f",
        "ftp://id.example/t",
    ] {
        let body = format!(r#"{{"issuer":"https://id.example","token_endpoint":"{endpoint}"}}"#);
        let e = parse(200, &body).unwrap_err();
        assert!(matches!(e, DiscoveryError::InvalidEndpoint(_)), "{endpoint}: {e:?}");
        assert!(e.to_string().starts_with("metadata token_endpoint"), "{e}");
    }
    // Oversized documents.
    let body = format!(r#"{{"issuer":"https://id.example","pad":"{}"}}"#, "x".repeat(70_000));
    assert!(matches!(parse(200, &body), Err(DiscoveryError::InvalidDocument { .. })));
}

#[test]
fn auth_negotiation() {
    let with = |methods: &str| {
        let body = format!(r#"{{"issuer":"https://id.example","token_endpoint":"https://id.example/t"{methods}}}"#);
        parse(200, &body).unwrap().preferred_auth()
    };
    assert_eq!(with(""), ClientAuth::Basic);
    assert_eq!(
        with(r#","token_endpoint_auth_methods_supported":[]"#),
        ClientAuth::Basic
    );
    assert_eq!(
        with(r#","token_endpoint_auth_methods_supported":["client_secret_basic"]"#),
        ClientAuth::Basic
    );
    assert_eq!(
        with(r#","token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]"#),
        ClientAuth::Basic
    );
    assert_eq!(
        with(r#","token_endpoint_auth_methods_supported":["client_secret_post"]"#),
        ClientAuth::Post
    );
    assert_eq!(
        with(r#","token_endpoint_auth_methods_supported":["private_key_jwt","tls_client_auth"]"#),
        ClientAuth::Basic
    );
}

/// A document fetched over https must not move the client
/// secret to plain http, not even to a loopback address (where a local proxy
/// or another user's listener could read it).
#[test]
fn an_https_issuer_cannot_switch_the_token_or_revocation_endpoint_to_http() {
    for endpoint in [
        "http://localhost/token",
        "http://127.0.0.1:8080/token",
        "http://[::1]/token",
        "HTTP://localhost/token",
    ] {
        let body = format!(r#"{{"issuer":"https://id.example","token_endpoint":"{endpoint}"}}"#);
        let e = parse(200, &body).unwrap_err();
        assert!(matches!(e, DiscoveryError::InvalidEndpoint(_)), "{endpoint}: {e:?}");
        assert!(e.to_string().contains("https"), "{e}");

        let body = format!(
            r#"{{"issuer":"https://id.example","token_endpoint":"https://id.example/token","revocation_endpoint":"{endpoint}"}}"#
        );
        let metadata = parse(200, &body).unwrap();
        assert_eq!(metadata.revocation_endpoint, None, "{endpoint}");
    }

    // Through a TokenSource, even with .allow_insecure_http().
    let config = client_credentials::Config::builder("id", "secret")
        .issuer(ISSUER)
        .allow_insecure_http()
        .build()
        .unwrap();
    let mut source = client_credentials::TokenSource::new(config, [7; 32]);
    let now = client_credentials::Timestamp::from_unix_secs(1_700_000_000);
    let client_credentials::Action::Send(outgoing) = source.poll(now) else {
        panic!("expected discovery");
    };
    let body = r#"{"issuer":"https://id.example","token_endpoint":"http://127.0.0.1/token"}"#;
    let result = source.handle_response(now, outgoing.id, doc(200, body));
    assert!(
        matches!(result, Err(Error::Discovery(DiscoveryError::InvalidEndpoint(_)))),
        "{result:?}"
    );

    // A plain-http (loopback) issuer may name plain-http loopback endpoints.
    let body = r#"{"issuer":"http://localhost:8080","token_endpoint":"http://localhost:8080/token","revocation_endpoint":"http://localhost:8080/revoke"}"#;
    let metadata = parse_discovery("http://localhost:8080", doc(200, body)).unwrap();
    assert_eq!(metadata.token_endpoint, "http://localhost:8080/token");
    assert!(metadata.revocation_endpoint.is_some());
}
