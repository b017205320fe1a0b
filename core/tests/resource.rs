//! RFC 9728: a client configured with only the resource finds its
//! authorization server from the resource's metadata, then discovers it.

mod common;

use client_credentials::{
    parse_resource_metadata, resource_metadata_url, Action, Config, ConfigError, DiscoveryError, Error, Event,
    Outgoing, RequestKind, ResourceMetadata, Timestamp, TokenSource,
};
use common::{at, form, response, send, token_ok, CLIENT_ID, SECRET};

const RESOURCE: &str = "https://api.example/mcp";
const AS: &str = "https://id.example/tenant";
const AS_OPENID: &str = "https://id.example/tenant/.well-known/openid-configuration";

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

/// Reads the resource metadata and the provider metadata, returning the
/// token request and the resource's metadata.
fn discover(source: &mut TokenSource) -> (http::Request<Vec<u8>>, ResourceMetadata) {
    let out = send(source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
    let event = source.handle_response(at(0), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)));
    let Ok(Event::ResourceMetadataUpdated(metadata)) = event else {
        panic!("{event:?}")
    };
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
    (request, metadata)
}

#[test]
fn the_resource_names_the_issuer_and_the_token_is_asked_for_the_resource() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let (request, metadata) = discover(&mut source);
    let resources: Vec<_> = form(&request).into_iter().filter(|(k, _)| k == "resource").collect();
    assert_eq!(resources, [("resource".to_owned(), RESOURCE.to_owned())]);
    assert!(matches!(source.poll(at(1)), Action::Ready(_)));
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
    // Not retryable: the cool-down hands the error to callers.
    assert!(matches!(
        source.poll(at(0)),
        Action::Failed(Error::Discovery(DiscoveryError::ResourceMismatch { .. }))
    ));
    // After it, the resource is read again: no issuer was taken from the document.
    let retry_at = source.retry_at().expect("a cool-down");
    let out = send(&mut source, retry_at);
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
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
    let out = send(&mut source, at(0));
    assert_eq!(
        out.request.uri(),
        "https://id2.example/.well-known/openid-configuration"
    );

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

const HINT: &str = "https://api.example/.well-known/oauth-protected-resource/mcp/tenant-b";
const AS2: &str = "https://id2.example";

fn allowing(server: &str) -> Config {
    Config::builder(CLIENT_ID, SECRET)
        .resource_server(RESOURCE)
        .allow_authorization_server(server)
        .jitter_seed(7)
        .build()
        .expect("valid config")
}

/// Evicts the cached token, as a resource's 401 at `now` does, so the next poll sends.
fn rejected(source: &mut TokenSource, now: Timestamp) {
    let token = source.usable(now).cloned().expect("a token");
    assert!(source.invalidate(now, &token));
}

/// The next request, once any back-off step is over (`now` moves to it):
/// inside a rejection streak the discovery answers count towards the
/// back-off, as they do for a failing provider.
fn send_when_due(source: &mut TokenSource, now: &mut Timestamp) -> Outgoing {
    loop {
        match source.poll(*now) {
            Action::Send(outgoing) => return outgoing,
            Action::Wait { until: Some(until) } if until > *now => *now = until,
            other => panic!("expected a request or a back-off at {now:?}, got {other:?}"),
        }
    }
}

#[test]
fn a_challenge_names_another_metadata_url_which_is_read_in_the_next_round() {
    let mut source = TokenSource::new(allowing(AS2), [7; 32]);
    discover(&mut source);
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
    assert!(
        !source.follow_resource_metadata(RESOURCE, HINT),
        "the same URL changes nothing"
    );
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), HINT);
    source
        .handle_response(at(5), out.id, resource_document(RESOURCE, &format!(r#"["{AS2}"]"#)))
        .unwrap();
    let out = send(&mut source, at(5));
    assert_eq!(
        out.request.uri(),
        "https://id2.example/.well-known/openid-configuration"
    );
}

#[test]
fn a_hint_on_another_origin_is_ignored_and_the_pinned_server_keeps_the_credentials() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    for (requested, hint) in [
        // The attack: a metadata URL on another origin.
        (
            RESOURCE,
            "https://evil.example/.well-known/oauth-protected-resource/mcp",
        ),
        (RESOURCE, "http://evil.example/meta"),
        // Another port, another scheme: another origin.
        (
            RESOURCE,
            "https://api.example:8443/.well-known/oauth-protected-resource/mcp",
        ),
        // A request to another origin says nothing about this resource.
        (
            "https://other.example/mcp",
            "https://other.example/.well-known/oauth-protected-resource/mcp",
        ),
        ("https://other.example/mcp", HINT),
        ("not a url", HINT),
        (RESOURCE, "/.well-known/oauth-protected-resource/mcp"),
    ] {
        assert!(!source.follow_resource_metadata(requested, hint), "{requested} {hint}");
    }
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), "https://id.example/tenant/token");
}

#[test]
fn a_hint_is_not_taken_while_the_resources_metadata_is_being_read() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    // The answer in flight is checked against the location it was sent for.
    assert!(!source.follow_resource_metadata(RESOURCE, HINT));
    let event = source.handle_response(at(0), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)));
    assert!(matches!(event, Ok(Event::ResourceMetadataUpdated(_))), "{event:?}");
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
}

#[test]
fn a_hint_naming_the_well_known_url_is_the_well_known_document() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    let well_known = "https://api.example/.well-known/oauth-protected-resource/mcp";
    assert!(
        !source.follow_resource_metadata("https://api.example/mcp/tools/call", well_known),
        "already the document in use"
    );
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
    assert!(source.follow_resource_metadata("https://api.example/mcp/tools/call", well_known));
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), well_known);
    // Checked as at first discovery: `resource` is the configured resource.
    let event = source.handle_response(at(5), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)));
    assert!(matches!(event, Ok(Event::ResourceMetadataUpdated(_))), "{event:?}");
}

#[test]
fn a_hinted_document_must_name_the_url_requested() {
    let requested = "https://api.example/mcp/tools?session=private";
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    assert!(source.follow_resource_metadata(requested, HINT));
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), HINT);
    // RFC 9728 §3.3: the URL requested, not the configured resource.
    let event = source.handle_response(at(5), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)));
    match event {
        Ok(Event::Fallback {
            error: Error::Discovery(DiscoveryError::ResourceMismatch { expected, found }),
        }) => {
            // Named without its query: the error may be logged.
            assert_eq!(expected, "https://api.example/mcp/tools?…");
            assert_eq!(found, RESOURCE);
        }
        other => panic!("{other:?}"),
    }
    // The earlier metadata stays in use: the token request goes to the pinned server.
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), "https://id.example/tenant/token");
    source.handle_response(at(5), out.id, token_ok("tok-2", 3600)).unwrap();

    // A document that names the URL requested is accepted. (The token is
    // rejected after its probation, so a new one is fetched at once.)
    assert!(source.follow_resource_metadata(requested, HINT));
    rejected(&mut source, at(40));
    let out = send(&mut source, at(40));
    assert_eq!(out.request.uri(), HINT);
    let event = source.handle_response(at(40), out.id, resource_document(requested, &format!(r#"["{AS}"]"#)));
    assert!(matches!(event, Ok(Event::ResourceMetadataUpdated(_))), "{event:?}");
}

#[test]
fn a_document_naming_a_server_not_allowed_is_refused_and_nothing_is_sent_to_it() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), HINT);
    let named = r#"["https://evil.example", "https://evil2.example"]"#;
    let event = source.handle_response(at(5), out.id, resource_document(RESOURCE, named));
    match event {
        Ok(Event::Fallback {
            error: Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { named }),
        }) => assert_eq!(named, ["https://evil.example", "https://evil2.example"]),
        other => panic!("{other:?}"),
    }
    // The metadata of the server in use stays: the token goes there.
    let out = send(&mut source, at(5));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), "https://id.example/tenant/token");
    source.handle_response(at(5), out.id, token_ok("tok-2", 3600)).unwrap();
    // The refused hint is forgotten: the next read is the well-known document.
    rejected(&mut source, at(5));
    let out = send(&mut source, at(24 * 3600 + 10));
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
}

#[test]
fn the_well_known_document_cannot_move_the_client_to_another_server_either() {
    let config = Config::builder(CLIENT_ID, SECRET)
        .resource_server(RESOURCE)
        .discovery_ttl(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    discover(&mut source);
    rejected(&mut source, at(0));
    let out = send(&mut source, at(120));
    let event = source.handle_response(
        at(120),
        out.id,
        resource_document(RESOURCE, r#"["https://evil.example"]"#),
    );
    assert!(
        matches!(
            event,
            Ok(Event::Fallback {
                error: Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { .. })
            })
        ),
        "{event:?}"
    );
    let out = send(&mut source, at(120));
    assert_eq!(out.request.uri(), "https://id.example/tenant/token");
}

#[test]
fn without_usable_metadata_the_refusal_is_the_callers_error() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    // First read: the resource names AS, which is trusted from now on…
    let out = send(&mut source, at(0));
    source
        .handle_response(at(0), out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)))
        .unwrap();
    // …but its discovery document is refused, so the round fails.
    let out = send(&mut source, at(0));
    let result = source.handle_response(at(0), out.id, as_document("https://id.example/other"));
    assert!(result.is_err(), "{result:?}");
    // The next round reads the resource again; it now names another server.
    let retry_at = source.retry_at().expect("a cool-down");
    let out = send(&mut source, retry_at);
    assert_eq!(
        out.request.uri(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
    let result = source.handle_response(
        retry_at,
        out.id,
        resource_document(RESOURCE, r#"["https://evil.example"]"#),
    );
    assert!(
        matches!(
            result,
            Err(Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { .. }))
        ),
        "{result:?}"
    );
    assert!(!result.unwrap_err().is_retryable());
    assert!(matches!(
        source.poll(retry_at),
        Action::Failed(Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { .. }))
    ));
    // The refusal moved nothing: the next round discovers the trusted server.
    let next_round = source.retry_at().expect("a cool-down");
    let out = send(&mut source, next_round);
    let both = format!(r#"["https://evil.example", "{AS}"]"#);
    source
        .handle_response(next_round, out.id, resource_document(RESOURCE, &both))
        .unwrap();
    // After a back-off step: a round has failed since the last token.
    let step = source.retry_at().expect("a back-off step");
    let out = send(&mut source, step);
    assert_eq!(out.request.uri(), AS_OPENID);
}

#[test]
fn an_allowed_second_server_is_accepted_and_the_current_one_preferred() {
    let mut source = TokenSource::new(allowing(AS2), [7; 32]);
    discover(&mut source);
    // Both listed: the server in use stays.
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    let both = format!(r#"["{AS2}", "{AS}"]"#);
    source
        .handle_response(at(5), out.id, resource_document(RESOURCE, &both))
        .unwrap();
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), AS_OPENID);
    source.handle_response(at(5), out.id, as_document(AS)).unwrap();
    let out = send(&mut source, at(5));
    source.handle_response(at(5), out.id, token_ok("tok-2", 3600)).unwrap();
    // Only the allowed one listed, after servers that are not allowed: it is taken.
    let hint_c = "https://api.example/.well-known/oauth-protected-resource/mcp/tenant-c";
    assert!(source.follow_resource_metadata(RESOURCE, hint_c));
    let mut t = at(100);
    rejected(&mut source, t);
    let out = send_when_due(&mut source, &mut t);
    let named = format!(r#"["https://evil.example", "{AS2}"]"#);
    source
        .handle_response(t, out.id, resource_document(RESOURCE, &named))
        .unwrap();
    let out = send_when_due(&mut source, &mut t);
    assert_eq!(
        out.request.uri(),
        "https://id2.example/.well-known/openid-configuration"
    );
    source.handle_response(t, out.id, as_document(AS2)).unwrap();
    let out = send_when_due(&mut source, &mut t);
    assert_eq!(out.request.uri(), "https://id2.example/token");
    // The first server stays trusted: the resource may move back to it.
    source.handle_response(t, out.id, token_ok("tok-3", 3600)).unwrap();
    assert!(source.follow_resource_metadata(RESOURCE, HINT));
    t = at(1000);
    rejected(&mut source, t);
    let out = send_when_due(&mut source, &mut t);
    source
        .handle_response(t, out.id, resource_document(RESOURCE, &format!(r#"["{AS}"]"#)))
        .unwrap();
    let out = send_when_due(&mut source, &mut t);
    assert_eq!(out.request.uri(), AS_OPENID);
}

#[test]
fn the_first_discovery_trusts_the_server_the_resource_names() {
    // The allowed servers add to the one named at first discovery.
    let mut source = TokenSource::new(allowing(AS2), [7; 32]);
    // `discover` checks that the issuer discovered is the one named, AS.
    discover(&mut source);
}

#[test]
fn allowed_servers_need_a_resource_server_and_are_issuer_identifiers() {
    let with_issuer = Config::builder("id", "s")
        .issuer(AS)
        .allow_authorization_server(AS2)
        .build();
    assert!(matches!(
        with_issuer,
        Err(ConfigError::AuthorizationServerWithoutResourceServer)
    ));
    let with_endpoint = Config::builder("id", "s")
        .token_endpoint("https://id.example/token")
        .allow_authorization_server(AS2)
        .build();
    assert!(matches!(
        with_endpoint,
        Err(ConfigError::AuthorizationServerWithoutResourceServer)
    ));
    for bad in [
        "http://id2.example",
        "https://id2.example?x=1",
        "https://id2.example#f",
        "id2.example",
    ] {
        let config = Config::builder("id", "s")
            .resource_server(RESOURCE)
            .allow_authorization_server(bad)
            .build();
        assert!(config.is_err(), "{bad}");
    }
    let config = allowing(AS2);
    assert_eq!(config.allowed_authorization_servers(), [AS2]);
    assert!(format!("{config:?}").contains(AS2));
}

#[test]
fn a_challenge_is_ignored_without_a_resource_server() {
    let mut source = TokenSource::new(common::config(), [7; 32]);
    assert!(!source.follow_resource_metadata(
        "https://api.example/x",
        "https://api.example/.well-known/oauth-protected-resource"
    ));
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
    let token = source.usable(at(0)).cloned().unwrap();
    source.invalidate(at(0), &token);
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

/// Metadata from an https resource cannot send the client
/// to a plain-http authorization server, not even on loopback.
#[test]
fn an_https_resource_cannot_name_a_plain_http_loopback_authorization_server() {
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    let out = send(&mut source, at(0));
    let servers = r#"["http://localhost:8080", "http://127.0.0.1", "https://id2.example"]"#;
    source
        .handle_response(at(0), out.id, resource_document(RESOURCE, servers))
        .expect("one usable server");
    let out = send(&mut source, at(0));
    assert_eq!(
        out.request.uri(),
        "https://id2.example/.well-known/openid-configuration"
    );
}

#[test]
fn the_source_debug_never_shows_the_url_a_hint_was_followed_for() {
    let requested = "https://api.example/mcp/tools?session=private";
    let mut source = TokenSource::new(resource_config(), [7; 32]);
    discover(&mut source);
    assert!(source.follow_resource_metadata(requested, HINT));
    rejected(&mut source, at(0));
    let out = send(&mut source, at(5));
    assert_eq!(out.request.uri(), HINT);
    // The read is in flight: the source knows the URL it must name.
    let shown = format!("{source:?}");
    assert!(!shown.contains("session=private"), "{shown}");
    assert!(shown.contains("ResourceMetadata"), "{shown}");
}
