//! A token is fetched once, served from cache, refreshed ahead of expiry.

use std::time::Duration;

use client_credentials::ClientAuth;
use client_credentials_blocking::ManualClock;
use client_credentials_testkit::{AuthMethod, TestIssuer};

use super::config;
use crate::{Adapter, Options};

/// Three calls, one request; the server saw the right grant and credentials.
pub fn cached_token_is_reused<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    for _ in 0..3 {
        assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    }
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 1, "{}", A::NAME);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(request.auth_method, Some(AuthMethod::Basic));
    assert_eq!(request.client_id.as_deref(), Some(issuer.client_id().as_str()));
    // The default secret has reserved characters: RFC 6749 §2.3.1 encoding round-trips.
    assert_eq!(request.client_secret.as_deref(), Some(issuer.client_secret().as_str()));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(issuer.issued_tokens(), vec![first.secret().to_owned()]);
}

/// `authorization_header()` is `Bearer <token>`, marked sensitive.
pub fn authorization_header_is_bearer<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let header = A::authorization_header(&client).unwrap();
    assert!(header.is_sensitive());
    let token = A::token(&client).unwrap();
    assert_eq!(header.to_str().unwrap(), format!("Bearer {}", token.secret()));
    assert_eq!(issuer.token_requests().len(), 1);
}

/// A 2 s token is refreshed at half-life (the 300 s margin is capped at lifetime / 2).
pub fn refreshes_ahead_of_expiry<A: Adapter>() {
    let issuer = TestIssuer::builder().lifetime(2).start();
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    assert_eq!(issuer.token_requests().len(), 1);
    clock.advance(Duration::from_millis(1200));
    let second = A::token(&client).unwrap();
    assert_ne!(second.secret(), first.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// `invalidate` evicts the current token; an older handle evicts nothing.
pub fn invalidate_fetches_a_new_token<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    A::invalidate(&client, &first);
    let second = A::token(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    A::invalidate(&client, &first); // stale handle: no effect
    assert_eq!(A::token(&client).unwrap().secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// `refresh()` fetches a new token although the cached one is fresh.
pub fn refresh_forces_a_new_token<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    let second = A::refresh(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(A::token(&client).unwrap().secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// `ClientAuth::Post` and `ClientAuth::Json` put the credentials in the body.
pub fn post_and_json_authentication<A: Adapter>() {
    for (auth, method) in [
        (ClientAuth::Post, AuthMethod::Post),
        (ClientAuth::Json, AuthMethod::Json),
    ] {
        let issuer = TestIssuer::start();
        let config = config(&issuer)
            .auth(auth.clone())
            .scope("read")
            .resource("https://api.example.test/")
            .build()
            .unwrap();
        let client = A::build(config, Options::default());
        A::token(&client).unwrap();
        let request = &issuer.token_requests()[0];
        assert_eq!(request.auth_method, Some(method), "{auth:?}");
        assert!(request.header("authorization").is_none());
        assert_eq!(request.client_secret.as_deref(), Some(issuer.client_secret().as_str()));
        assert_eq!(request.param("scope"), Some("read"));
        assert_eq!(request.params("resource"), vec!["https://api.example.test/"]);
    }
}

/// Scopes (deduplicated, space-joined), resources, audience and extra parameters reach the server.
pub fn parameters_reach_the_server<A: Adapter>() {
    let issuer = TestIssuer::start();
    let config = config(&issuer)
        .scope("read")
        .scope("write read")
        .resource("https://a.example/")
        .resource("https://b.example/")
        .audience("orders")
        .param("tenant", "t 1")
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(token.scope(), Some("read write"));
    let request = &issuer.token_requests()[0];
    assert_eq!(request.param("scope"), Some("read write"));
    assert_eq!(
        request.params("resource"),
        vec!["https://a.example/", "https://b.example/"]
    );
    assert_eq!(request.param("audience"), Some("orders"));
    assert_eq!(request.param("tenant"), Some("t 1"));
}

/// A refresh token in a response is used for the next refresh (RFC 6749 §6).
pub fn refresh_token_grant_is_used<A: Adapter>() {
    let issuer = TestIssuer::builder().issue_refresh_tokens(true).start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    assert!(first.refresh_token().is_some());
    let second = A::refresh(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    let grants: Vec<_> = issuer
        .token_requests()
        .iter()
        .map(|r| r.grant_type.clone().unwrap_or_default())
        .collect();
    assert_eq!(grants, ["client_credentials", "refresh_token"]);
}
