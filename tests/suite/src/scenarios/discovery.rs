//! Discovery chained into token fetching.

use client_credentials::{DiscoveryError, Error};
use client_credentials_testkit::{DiscoveryMode, TestIssuer};

use super::discovering;
use crate::{Adapter, Options};

/// OpenID Connect discovery first, then tokens from the discovered endpoint;
/// the metadata is reused across refreshes.
pub fn openid_discovery_then_tokens<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(discovering(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    let second = A::refresh(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    let discovery = issuer.discovery_requests();
    assert_eq!(discovery.len(), 1, "metadata is reused");
    assert!(discovery[0].path.ends_with("/.well-known/openid-configuration"));
    assert_eq!(issuer.token_requests().len(), 2);
}

/// An issuer with a path that serves only RFC 8414 metadata.
pub fn rfc8414_fallback_with_an_issuer_path<A: Adapter>() {
    let issuer = TestIssuer::builder()
        .issuer_path("/tenant/a")
        .discovery(DiscoveryMode::Rfc8414)
        .start();
    let client = A::build(discovering(&issuer).build().unwrap(), Options::default());
    A::token(&client).unwrap();
    let paths: Vec<_> = issuer.discovery_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/tenant/a/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/tenant/a"
        ]
    );
    assert_eq!(issuer.token_requests().len(), 1);
}

/// A document whose issuer differs is rejected and its endpoints never used.
pub fn issuer_mismatch_sends_no_token_request<A: Adapter>() {
    let issuer = TestIssuer::builder().advertise_issuer("https://evil.example").start();
    let client = A::build(discovering(&issuer).build().unwrap(), Options::default());
    match A::token(&client) {
        Err(Error::Discovery(DiscoveryError::IssuerMismatch { expected, found })) => {
            assert_eq!(expected, issuer.issuer_url());
            assert_eq!(found, "https://evil.example");
        }
        other => panic!("{other:?}"),
    }
    assert!(issuer.token_requests().is_empty());
}

/// The standalone `discover` function.
pub fn discover_function<A: Adapter>() {
    let issuer = TestIssuer::builder().issuer_path("/realms/x").start();
    let metadata = A::discover(&issuer.issuer_url()).unwrap();
    assert_eq!(metadata.issuer, issuer.issuer_url());
    assert_eq!(metadata.token_endpoint, issuer.token_endpoint());
    assert_eq!(
        metadata.revocation_endpoint.as_deref(),
        Some(issuer.revocation_endpoint().as_str())
    );
    assert!(issuer.token_requests().is_empty());
}
