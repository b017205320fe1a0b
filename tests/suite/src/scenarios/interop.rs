//! Against a real OpenID Connect provider: `oidc-provider` on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use client_credentials::{jwt_lifetime, ClientAuth, Config, ConfigBuilder, Error, OAuthErrorCode, Timestamp};

use crate::{Adapter, OidcPeer, Options};

fn peer() -> &'static OidcPeer {
    let peer = OidcPeer::shared();
    println!("reached oidc-provider@{} at {}", peer.version(), peer.issuer());
    peer
}

fn basic_client(peer: &OidcPeer) -> ConfigBuilder {
    Config::builder(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET).issuer(peer.issuer())
}

fn counting() -> (Options, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let options = Options {
        on_update: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        ..Options::default()
    };
    (options, count)
}

/// Discovery of the provider, whose issuer has a path component.
pub fn discovery<A: Adapter>() {
    let peer = peer();
    let metadata = A::discover(peer.issuer()).unwrap();
    assert_eq!(metadata.issuer, peer.issuer());
    assert!(metadata.token_endpoint.starts_with(peer.issuer()));
    assert!(metadata.revocation_endpoint.is_some());
    let methods = metadata.token_endpoint_auth_methods_supported.unwrap_or_default();
    assert!(methods.iter().any(|m| m == "client_secret_basic"), "{methods:?}");
}

/// `client_secret_basic` with a secret full of reserved characters (RFC 6749 §2.3.1).
pub fn basic_auth_with_reserved_characters<A: Adapter>() {
    let peer = peer();
    let (options, updates) = counting();
    let client = A::build(basic_client(peer).scope("api:read").build().unwrap(), options);
    let token = A::token(&client).unwrap();
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.scope(), Some("api:read"));
    let lifetime = token
        .expires_at()
        .unwrap()
        .saturating_duration_since(token.received_at());
    assert!(
        lifetime <= Duration::from_secs(OidcPeer::DEFAULT_TTL_SECS + 1),
        "{lifetime:?}"
    );
    assert_eq!(A::token(&client).unwrap().secret(), token.secret(), "cached");
    assert_eq!(updates.load(Ordering::SeqCst), 1, "one token request");
}

/// `client_secret_post`.
pub fn post_auth<A: Adapter>() {
    let peer = peer();
    let config = Config::builder(OidcPeer::POST_CLIENT_ID, OidcPeer::POST_CLIENT_SECRET)
        .issuer(peer.issuer())
        .auth(ClientAuth::Post)
        .scope("api:write")
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    assert_eq!(A::token(&client).unwrap().scope(), Some("api:write"));
}

/// A resource indicator (RFC 8707) yields a JWT access token whose `exp` the client can read.
pub fn resource_indicator_gives_a_jwt<A: Adapter>() {
    let peer = peer();
    let config = basic_client(peer)
        .resource(OidcPeer::RESOURCE)
        .scope("api:read")
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(token.secret().split('.').count(), 3, "a JWT");
    let lifetime = jwt_lifetime(token.secret(), Timestamp::from(std::time::SystemTime::now())).unwrap();
    assert!(
        lifetime > 0.0 && lifetime <= OidcPeer::DEFAULT_TTL_SECS as f64 + 1.0,
        "{lifetime}"
    );
}

/// Short-lived tokens are refreshed at half-life; the provider issues a new one.
pub fn refresh_after_expiry<A: Adapter>() {
    let peer = peer();
    let (options, updates) = counting();
    let client = A::build(basic_client(peer).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    sleep(Duration::from_millis(OidcPeer::DEFAULT_TTL_SECS * 1000 / 2 + 300));
    let second = A::token(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(updates.load(Ordering::SeqCst), 2);
}

/// A wrong secret is a typed, final `invalid_client`.
pub fn wrong_secret_is_invalid_client<A: Adapter>() {
    let peer = peer();
    let config = Config::builder(OidcPeer::BASIC_CLIENT_ID, "not-the-secret")
        .issuer(peer.issuer())
        .build()
        .unwrap();
    let error = A::token(&A::build(config, Options::default())).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::OAuth {
                code: OAuthErrorCode::InvalidClient,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(!error.to_string().contains("not-the-secret"));
}

/// An unknown scope is a typed `invalid_scope`.
pub fn unknown_scope_is_invalid_scope<A: Adapter>() {
    let peer = peer();
    let config = basic_client(peer).scope("api:delete").build().unwrap();
    let error = A::token(&A::build(config, Options::default())).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidScope), "{error:?}");
    assert!(error.to_string().starts_with("invalid_scope"), "{error}");
}
