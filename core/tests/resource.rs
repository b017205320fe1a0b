//! RFC 9728: a client configured with only the resource finds its
//! authorization server from the resource's metadata, then discovers it.

mod common;

use client_credentials::{
    parse_resource_metadata, resource_metadata_url, Action, Config, ConfigError, DiscoveryError, Error, Event,
    RequestKind, TokenSource,
};
use common::{at, form, response, send, token_ok, CLIENT_ID, SECRET};

const RESOURCE: &str = "https://api.example/mcp";
const AS: &str = "https://id.example/tenant";

fn resource_config() -> Config {
    Config::builder(CLIENT_ID, SECRET)
        .resource_server(RESOURCE)
        .jitter_seed(7)
        .build()
        .expect("valid config")
}

fn resource_document(resource: &str, servers: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"resource":"{resource}","authorization_servers":{servers},"scopes_supported":["tools"]}}"#),
    )
}

fn as_document(issuer: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"issuer":"{issuer}","token_endpoint":"{issuer}/token"}}"#),
    )
}

/// Reads the resource metadata and the provider metadata, returning the token request.
fn discover(source: &mut TokenSource) -> http::Request<Vec<u8>> {
    let out = send(source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
    let event = source.handle_response(at(0), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)));
    assert!(matches!(event, Ok(Event::ResourceMetadataUpdated(_))), "{event:?}");
    assert_eq!(source.discovery_issuer(), Some(AS));
    let out = send(source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(
        out.request.uri(),
        "https://id.example/tenant/.well-known/openid-configuration"
    );
    let event = source.handle_response(at(0), out.id, as_document(AS));
    assert!(matches!(event, Ok(Event::DiscoveryUpdated(_))), "{event:?}");
    let out = send(source, at(0));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), "https://id.example/tenant/token");
    let request = out.request;
    let event = source.handle_response(at(0), out.id, token_ok("tok-1", 3600));
    assert!(matches!(event, Ok(Event::TokenUpdated(_))), "{event:?}");
    request
}

#[test]
fn the_resource_names_the_issuer_and_the_token_is_asked_for_the_resource() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let request = discover(&mut source);
    let resources: Vec<_> = form(&request).into_iter().filter(|(k, _)| k == "resource").collect();
    assert_eq!(resources, [("resource".to_owned(), RESOURCE.to_owned())]);
    assert!(matches!(source.poll(at(1)), Action::Ready(_)));
    let metadata = source.resource_metadata().expect("resource metadata kept");
    assert_eq!(metadata.scopes_supported.as_deref(), Some(&["tools".to_owned()][..]));
}

#[test]
fn a_document_for_another_resource_is_rejected_and_no_issuer_is_contacted() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let result = source.handle_response(
        at(0),
        out.id,
        resource_document("https://api.example/other", r#"["https://evil.example"]"#),
    );
    assert!(
        matches!(result, Err(Error::Discovery(DiscoveryError::ResourceMismatch { .. }))),
        "{result:?}"
    );
    assert_eq!(source.discovery_issuer(), None);
    // Not retryable: the cool-down hands the error to callers.
    assert!(matches!(
        source.poll(at(0)),
        Action::Failed(Error::Discovery(DiscoveryError::ResourceMismatch { .. }))
    ));
    assert!(source.retry_at().is_some());
}

#[test]
fn a_trailing_slash_is_a_different_resource() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let result = source.handle_response(
        at(0),
        out.id,
        resource_document("https://api.example/mcp/", r#"["https://id.example"]"#),
    );
    assert!(matches!(
        result,
        Err(Error::Discovery(DiscoveryError::ResourceMismatch { .. }))
    ));
}

#[test]
fn plain_http_authorization_servers_are_skipped() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let servers = r#"["http://id.example", 7, "https://id.example/a?b=c", "https://id2.example"]"#;
    source
        .handle_response(at(0), out.id, resource_document(RESOURCE, servers))
        .expect("one usable server");
    assert_eq!(source.discovery_issuer(), Some("https://id2.example"));

    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let result = source.handle_response(at(0), out.id, resource_document(RESOURCE, r#"["http://id.example"]"#));
    assert!(matches!(
        result,
        Err(Error::Discovery(DiscoveryError::NoAuthorizationServer))
    ));
}

#[test]
fn the_issuer_must_be_the_one_the_resource_named() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    source
        .handle_response(at(0), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)))
        .unwrap();
    let out = send(&mut source, at(0));
    let result = source.handle_response(at(0), out.id, as_document("https://id.example/other"));
    assert!(
        matches!(result, Err(Error::Discovery(DiscoveryError::IssuerMismatch { .. }))),
        "{result:?}"
    );
}

#[test]
fn a_redirect_is_not_followed_but_is_an_error() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let redirect = common::with_header(response(302, ""), "location", "https://evil.example/meta");
    let result = source.handle_response(at(0), out.id, redirect);
    assert!(
        matches!(result, Err(Error::Discovery(DiscoveryError::UnexpectedStatus { .. }))),
        "{result:?}"
    );
}

#[test]
fn a_challenge_names_another_metadata_url_which_is_read_in_the_next_round() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    let hint = "https://api.example/.well-known/oauth-protected-resource/tenant-b";
    assert!(source.follow_resource_metadata(hint));
    assert!(!source.follow_resource_metadata(hint), "the same URL changes nothing");
    assert!(
        !source.follow_resource_metadata("http://evil.example/meta"),
        "plain http refused"
    );
    let token = source.token().cloned().unwrap();
    source.invalidate(&token);
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), hint);
    source
        .handle_response(at(5), out.id, resource_document(RESOURCE, r#"["https://id2.example"]"#))
        .unwrap();
    let out = send(&mut source, at(5));
    assert_eq!(
        out.request.uri(),
        "https://id2.example/.well-known/openid-configuration"
    );
}

#[test]
fn a_challenge_is_ignored_without_a_resource_server() {
    let mut source = TokenSource::new(common::config(), [7; 32]);
    assert!(!source.follow_resource_metadata("https://api.example/.well-known/oauth-protected-resource"));
}

#[test]
fn rediscovery_after_the_ttl_reads_the_resource_again() {
    let config = Config::builder(CLIENT_ID, SECRET)
        .resource_server(RESOURCE)
        .discovery_ttl(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    discover(&mut source);
    let token = source.token().cloned().unwrap();
    source.invalidate(&token);
    let out = send(&mut source, at(120));
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
}

#[test]
fn the_resource_server_is_exclusive_with_other_endpoints() {
    let both = Config::builder("id", "s").resource_server(RESOURCE).issuer(AS).build();
    assert!(matches!(both, Err(ConfigError::ConflictingEndpoints)));
    let insecure = Config::builder("id", "s").resource_server("http://api.example").build();
    assert!(matches!(insecure, Err(ConfigError::InsecureUrl { .. })));
    let loopback = Config::builder("id", "s")
        .resource_server("http://127.0.0.1:8080/api")
        .build();
    assert!(loopback.is_ok());
    // Given as a resource too: not sent twice.
    let config = Config::builder("id", "s")
        .resource_server(RESOURCE)
        .resource(RESOURCE)
        .resource("https://other.example")
        .build()
        .unwrap();
    assert_eq!(config.resources(), [RESOURCE, "https://other.example"]);
    assert_eq!(config.issuer(), None);
    assert!(format!("{config:?}").contains(RESOURCE));
}

#[test]
fn standalone_parsing_checks_the_same_rules() {
    assert_eq!(
        resource_metadata_url("http://localhost:9000/").unwrap().as_str(),
        "http://localhost:9000/.well-known/oauth-protected-resource"
    );
    assert!(resource_metadata_url("https://api.example/#x").is_err());
    let ok = resource_document("https://api.example", r#"["https://id.example"]"#);
    assert!(parse_resource_metadata("https://api.example", &ok).is_ok());
    for (status, body) in [
        (200, "not json"),
        (200, r#"{"authorization_servers":["https://id.example"]}"#),
        (200, r#"{"resource":"https://api.example"}"#),
        (404, ""),
        (500, "down"),
    ] {
        assert!(
            parse_resource_metadata("https://api.example", response(status, body)).is_err(),
            "{status} {body}"
        );
    }
    let big = format!(r#"{{"resource":"https://api.example","x":"{}"}}"#, "a".repeat(70_000));
    assert!(parse_resource_metadata("https://api.example", response(200, big)).is_err());
}

#[test]
fn errors_never_quote_the_client_secret() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let echo = resource_document(&format!("https://x.example/{SECRET}"), "[]");
    let error = source.handle_response(at(0), out.id, echo).unwrap_err();
    assert!(!error.to_string().contains(SECRET), "{error}");
}

#[test]
fn the_fingerprint_names_the_resource_server() {
    let a = resource_config();
    let b = Config::builder(CLIENT_ID, SECRET)
        .resource_server("https://api.example/other")
        .build()
        .unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint(), resource_config().fingerprint());
}

/// Issue 13, defect 4: metadata from an https resource cannot send the client
/// to a plain-http authorization server, not even on loopback.
#[test]
fn an_https_resource_cannot_name_a_plain_http_loopback_authorization_server() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let servers = r#"["http://localhost:8080", "http://127.0.0.1", "https://id2.example"]"#;
    source
        .handle_response(at(0), out.id, resource_document(RESOURCE, servers))
        .expect("one usable server");
    assert_eq!(source.discovery_issuer(), Some("https://id2.example"));
}
