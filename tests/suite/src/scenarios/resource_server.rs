//! Discovery from the resource (RFC 9728): the client knows only the API.

use client_credentials::{Config, DiscoveryError, Error};
use client_credentials_testkit::{TestIssuer, TestResourceServer};

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
