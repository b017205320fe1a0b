//! Discovery from the resource (RFC 9728): the client knows only the API.

use client_credentials::{Config, DiscoveryError, Error};
use client_credentials_testkit::{TestIssuer, TestResourceServer};
use serde_json::json;

use crate::authorized::{Authorized, Body, Origins};
use crate::{Adapter, Options};

/// The resource's metadata names the issuer; the issuer is discovered; the
/// token is asked for the resource (RFC 8707) and the API accepts it.
pub fn the_resource_names_the_issuer_and_tokens_are_for_the_resource<A: Adapter>() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .resource_server(api.resource())
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(issuer.issued_tokens(), [token.secret()]);
    let metadata_reads: Vec<_> = api.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(metadata_reads, ["/.well-known/oauth-protected-resource/api"]);
    assert_eq!(issuer.discovery_requests().len(), 1);
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].params("resource"), [api.resource().as_str()]);
    // Refreshes reuse both documents.
    A::refresh(&client).unwrap();
    assert_eq!(api.requests().len(), 1);
    assert_eq!(issuer.discovery_requests().len(), 1);
}

/// Metadata for another resource is rejected: no issuer is contacted.
pub fn metadata_for_another_resource_is_rejected<A: Adapter>() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .resource_server(format!("{}/", api.resource()))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    // `{resource}/` has the same metadata URL, but the document names `{resource}`.
    match A::token(&client) {
        Err(Error::Discovery(DiscoveryError::ResourceMismatch { expected, found })) => {
            assert_eq!(expected, format!("{}/", api.resource()));
            assert_eq!(found, api.resource());
        }
        other => panic!("{other:?}"),
    }
    assert!(issuer.requests().is_empty());
}

/// A resource at `/api/x` whose well-known metadata names `issuer`, and a
/// client of adapter `A` configured with only that resource (and `allowed`
/// as further authorization servers).
fn pinned_setup<A: Adapter>(issuer: &TestIssuer, allowed: &[&TestIssuer]) -> (TestResourceServer, A::Client) {
    let api = TestResourceServer::builder()
        .path("/api/x")
        .advertise_authorization_server(issuer.issuer_url())
        .start();
    let config = allowed
        .iter()
        .fold(
            Config::builder(issuer.client_id(), issuer.client_secret()).resource_server(api.resource()),
            |config, server| config.allow_authorization_server(server.issuer_url()),
        )
        .jitter_seed(7)
        .build()
        .unwrap();
    (api, A::build(config, Options::default()))
}

/// Three calls through `flavour`; each comes back at once with the
/// resource's `401` (or the client's error), never a `200` from elsewhere.
fn three_rejected_calls(flavour: &dyn Authorized, url: &str) {
    for _ in 0..3 {
        let status = flavour.send("GET", url, Body::Empty);
        assert!(matches!(status, Ok(401) | Err(_)), "{}: {status:?}", flavour.name());
    }
}

/// A `401` whose `resource_metadata` points at another origin, where a
/// document copies the resource string and names that origin's own
/// authorization server: the hint is ignored, and not one request (no
/// metadata read, no discovery, no token request with the client's
/// credentials) reaches the other servers, through any authorised client.
pub fn a_challenge_pointing_at_another_origin_sends_nothing_there<A: Adapter>() {
    let issuer = TestIssuer::start();
    let (api, client) = pinned_setup::<A>(&issuer, &[]);
    let attacker_issuer = TestIssuer::start();
    let attacker = TestResourceServer::start();
    let hint = "/.well-known/oauth-protected-resource/api/x";
    attacker.serve_document(
        hint,
        json!({"resource": api.resource(), "authorization_servers": [attacker_issuer.issuer_url()]}),
    );
    api.challenge_metadata_url(format!("{}{hint}", attacker.base_url()));
    api.reject_all(true);
    for flavour in A::authorized(&client, &Origins::Default) {
        three_rejected_calls(&*flavour, &api.resource());
    }
    let stolen = attacker_issuer.token_requests();
    let with_basic = stolen.iter().filter(|r| r.header("authorization").is_some()).count();
    assert_eq!(
        (stolen.len(), with_basic),
        (0, 0),
        "token requests (with Authorization) reached the attacker's authorization server"
    );
    assert_eq!(
        attacker_issuer.requests().len(),
        0,
        "the attacker's server was contacted"
    );
    assert_eq!(attacker.requests().len(), 0, "the attacker's metadata was read");
    assert!(!issuer.token_requests().is_empty());
}

/// A `401` naming a metadata document on the resource's own origin that
/// names another authorization server: the document is read and refused
/// (the server is neither the one first discovered nor allowed), nothing
/// reaches that server, and the calls come back with the resource's `401`.
pub fn a_document_naming_an_authorization_server_not_allowed_is_refused<A: Adapter>() {
    let issuer = TestIssuer::start();
    let (api, client) = pinned_setup::<A>(&issuer, &[]);
    let other_issuer = TestIssuer::start();
    let hint = "/.well-known/oauth-protected-resource/api/x/other";
    api.serve_document(
        hint,
        json!({"resource": api.resource(), "authorization_servers": [other_issuer.issuer_url()]}),
    );
    api.challenge_metadata_url(format!("{}{hint}", api.base_url()));
    api.reject_all(true);
    for flavour in A::authorized(&client, &Origins::Default) {
        three_rejected_calls(&*flavour, &api.resource());
    }
    assert!(
        api.requests().iter().any(|r| r.path == hint),
        "the hint on the resource's origin was not read"
    );
    assert_eq!(
        other_issuer.requests().len(),
        0,
        "requests reached a server not allowed"
    );
    assert!(
        issuer.discovery_requests().len() <= 2,
        "{:?}",
        issuer.discovery_requests()
    );
}

/// A second authorization server added with `.allow_authorization_server`
/// may take over when the resource's metadata names it.
pub fn an_allowed_second_authorization_server_is_used<A: Adapter>() {
    let first = TestIssuer::start();
    let second = TestIssuer::start();
    let flavours = A::authorized(&pinned_setup::<A>(&first, &[]).1, &Origins::Default).len();
    for index in 0..flavours {
        // A new client each time: each flavour starts on the first server.
        let (api, client) = pinned_setup::<A>(&first, &[&second]);
        let flavour = A::authorized(&client, &Origins::Default).swap_remove(index);
        let name = flavour.name();
        let stale = A::token(&client).unwrap();
        let hint = "/.well-known/oauth-protected-resource/api/x/second";
        api.serve_document(
            hint,
            json!({"resource": api.resource(), "authorization_servers": [second.issuer_url()]}),
        );
        api.challenge_metadata_url(format!("{}{hint}", api.base_url()));
        api.reject_token(stale.secret());
        let before = second.token_requests().len();
        let status = flavour.send("GET", &api.resource(), Body::Empty);
        if flavour.retries() {
            assert_eq!(status, Ok(200), "{name}");
        } else {
            assert_eq!(status, Ok(401), "{name}: ureq's middleware cannot re-send");
            assert_eq!(flavour.send("GET", &api.resource(), Body::Empty), Ok(200), "{name}");
        }
        assert_eq!(
            second.token_requests().len() - before,
            1,
            "{name}: the token came from the second server"
        );
    }
}
