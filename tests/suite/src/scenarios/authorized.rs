//! Authorised HTTP clients (both adapters, every flavour) against the test
//! issuer and the test resource server, over real HTTP on loopback.

use std::sync::{Arc, Barrier};

use client_credentials_testkit::{TestIssuer, TestResourceServer};

use super::config;
use crate::authorized::{each, Authorized, Body, Origins};
use crate::{Adapter, Options};

/// An issuer, an API that accepts its tokens, and a client of adapter `A`.
fn setup<A: Adapter>() -> (TestIssuer, TestResourceServer, A::Client) {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    (issuer, api, client)
}

fn only(api: &TestResourceServer) -> Origins {
    Origins::Only(vec![api.base_url()])
}

/// 100 concurrent requests holding the same token the API now rejects: one
/// refresh in all, and each rejected request retried exactly once.
pub fn a_wave_of_rejections_causes_one_refresh_and_one_retry_each<A: Adapter>() {
    let (issuer, api, _) = setup::<A>();
    let build = || A::build(config(&issuer).build().unwrap(), Options::default());
    for (client, flavour) in each::<A>(build, &only(&api)) {
        let flavour: Arc<dyn Authorized> = Arc::from(flavour);
        let stale = A::token(&client).unwrap();
        api.reject_token(stale.secret());
        api.clear_requests();
        api.gather(100); // no answer before all 100 have arrived with the stale token
        let fetched_before = issuer.token_requests().len();
        let barrier = Arc::new(Barrier::new(100));
        let url = format!("{}/things", api.resource());
        let threads: Vec<_> = (0..100)
            .map(|i| {
                let (flavour, barrier, url) = (Arc::clone(&flavour), Arc::clone(&barrier), url.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    flavour.send("POST", &url, Body::Buffered(format!("n={i}").into_bytes()))
                })
            })
            .collect();
        let statuses: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let name = flavour.name();
        if flavour.retries() {
            assert_eq!(issuer.token_requests().len() - fetched_before, 1, "{name}: one refresh");
            assert!(statuses.iter().all(|s| *s == Ok(200)), "{name}: {statuses:?}");
            assert_eq!(api.rejected(), 100, "{name}: all 100 carried the stale token");
            assert_eq!(api.accepted(), 100, "{name}: each retried exactly once");
        } else {
            // ureq's middleware cannot re-send: rejected requests come back
            // as 401, and the next request carries the new token.
            assert!(statuses.iter().all(|s| *s == Ok(401)), "{name}: {statuses:?}");
            assert_eq!(
                issuer.token_requests().len(),
                fetched_before,
                "{name}: invalidated, not refetched"
            );
            assert_eq!(flavour.send("GET", &url, Body::Empty), Ok(200), "{name}");
            assert_eq!(issuer.token_requests().len() - fetched_before, 1, "{name}: one refresh");
        }
    }
}

/// A second `401` is handed back: never a second retry.
pub fn no_retry_after_a_second_401<A: Adapter>() {
    let (issuer, api, _) = setup::<A>();
    api.reject_all(true);
    let build = || A::build(config(&issuer).build().unwrap(), Options::default());
    let flavours = each::<A>(build, &only(&api));
    for (client, flavour) in &flavours {
        A::token(client).unwrap();
        api.clear_requests();
        let status = flavour.send("GET", &format!("{}/things", api.resource()), Body::Empty);
        let name = flavour.name();
        assert_eq!(status, Ok(401), "{name}");
        let expected = if flavour.retries() { 2 } else { 1 };
        assert_eq!(api.requests().len(), expected, "{name}");
    }
    let most = 2 * flavours.len();
    assert!(issuer.token_requests().len() <= most, "at most one refresh per 401");
}

/// A streamed body is never re-sent: the 401 comes back, the token is
/// invalidated, and the next request gets a new one.
pub fn streamed_bodies_are_not_retried<A: Adapter>() {
    let (issuer, api, _) = setup::<A>();
    let build = || A::build(config(&issuer).build().unwrap(), Options::default());
    for (client, flavour) in each::<A>(build, &only(&api)) {
        if !flavour.streams() {
            continue;
        }
        let name = flavour.name();
        let stale = A::token(&client).unwrap();
        api.reject_token(stale.secret());
        api.clear_requests();
        let fetched_before = issuer.token_requests().len();
        let url = format!("{}/upload", api.resource());
        let status = flavour.send("POST", &url, Body::Streamed(b"chunk".to_vec()));
        assert_eq!(status, Ok(401), "{name}");
        assert_eq!(api.requests().len(), 1, "{name}: not re-sent");
        assert_eq!(
            flavour.send("POST", &url, Body::Buffered(b"again".to_vec())),
            Ok(200),
            "{name}"
        );
        assert_eq!(issuer.token_requests().len() - fetched_before, 1, "{name}");
    }
}

/// The header goes only to allowed origins: not to another server, not
/// after a redirect to another origin; and another origin's 401 does not
/// invalidate the token.
pub fn the_token_never_reaches_another_origin<A: Adapter>() {
    let (issuer, _, client) = setup::<A>();
    let other = TestResourceServer::start();
    let api = TestResourceServer::builder()
        .accept_tokens_of(&issuer)
        .redirect_to(other.base_url())
        .start();
    for flavour in A::authorized(&client, &only(&api)) {
        let name = flavour.name();
        assert_eq!(
            flavour.send("GET", &format!("{}/api/x", other.base_url()), Body::Empty),
            Ok(401),
            "{name}"
        );
        let status = flavour.send("GET", &format!("{}/redirect/api/y", api.base_url()), Body::Empty);
        assert!(matches!(status, Ok(401 | 307)), "{name}: {status:?}");
        assert!(
            api.requests().iter().all(|r| r.header("authorization").is_some()),
            "{name}"
        );
    }
    assert!(
        other.requests().iter().all(|r| r.header("authorization").is_none()),
        "the other origin saw a token"
    );
    assert!(!other.requests().is_empty());
    assert_eq!(
        issuer.token_requests().len(),
        1,
        "another origin's 401 invalidates nothing"
    );
}

/// By default only the config's resources get the token; `allow_any_origin`
/// opts out of the allow-list.
pub fn the_default_origins_are_the_configs_resources<A: Adapter>() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let other = TestResourceServer::start();
    let config = config(&issuer).resource(api.resource()).build().unwrap();
    let client = A::build(config, Options::default());
    for flavour in A::authorized(&client, &Origins::Default) {
        assert_eq!(
            flavour.send("GET", &api.resource(), Body::Empty),
            Ok(200),
            "{}",
            flavour.name()
        );
        assert_eq!(
            flavour.send("GET", &other.resource(), Body::Empty),
            Ok(401),
            "{}",
            flavour.name()
        );
    }
    assert!(other.requests().iter().all(|r| r.header("authorization").is_none()));
    for flavour in A::authorized(&client, &Origins::Any) {
        assert_eq!(
            flavour.send("GET", &other.resource(), Body::Empty),
            Ok(200),
            "{}",
            flavour.name()
        );
    }
}

/// A client that allows no origin (no resource in the config, no
/// `.allow_origin`) would send every request without the token: each
/// request is a configuration error instead, and nothing is sent anywhere.
pub fn a_client_that_allows_no_origin_fails_every_request<A: Adapter>() {
    let (issuer, api, client) = setup::<A>();
    for flavour in A::authorized(&client, &Origins::Default) {
        let name = flavour.name();
        let result = flavour.send("GET", &format!("{}/things", api.resource()), Body::Empty);
        let message = result.expect_err(name);
        assert!(message.contains("allows no origin"), "{name}: {message}");
        assert!(message.contains(".allow_origin("), "{name}: says what to do: {message}");
    }
    assert!(api.requests().is_empty(), "nothing reached the API");
    assert!(issuer.token_requests().is_empty(), "no token was fetched");
}

/// An `allow_origin` value that is not an origin (no scheme, or a path) is a
/// configuration error on every request, which names the value and why.
pub fn an_allow_origin_that_is_not_an_origin_fails_every_request<A: Adapter>() {
    let (issuer, api, client) = setup::<A>();
    let host_and_port = api.addr().to_string();
    let with_path = api.resource();
    for (value, why) in [(&host_and_port, "no scheme"), (&with_path, "a path")] {
        let origins = Origins::Only(vec![api.base_url(), value.clone()]);
        for flavour in A::authorized(&client, &origins) {
            let name = flavour.name();
            let result = flavour.send("GET", &format!("{}/things", api.resource()), Body::Empty);
            let message = result.expect_err(name);
            assert!(message.contains("allow_origin"), "{name}: {message}");
            assert!(message.contains(value.as_str()), "{name}: quotes the value: {message}");
            assert!(message.contains(why), "{name}: says why: {message}");
        }
    }
    assert!(api.requests().is_empty(), "nothing reached the API");
    assert!(issuer.token_requests().is_empty(), "no token was fetched");
}

/// With DPoP configured, requests carry `Authorization: DPoP …` and a proof
/// the resource server verifies (signature, `htm`, `htu`, `ath`); its
/// `use_dpop_nonce` challenge is answered once with its nonce.
pub fn dpop_proofs_are_accepted_and_a_nonce_is_answered_once<A: Adapter>() {
    use client_credentials::{JwsAlgorithm, JwtKey};
    let issuer = TestIssuer::builder().token_type("DPoP").start();
    let api = TestResourceServer::builder()
        .accept_tokens_of(&issuer)
        .require_dpop(Some("server-nonce-1"))
        .start();
    let key = JwtKey::from_pem(super::assertions::EC_PEM, JwsAlgorithm::Es256).unwrap();
    let build = || A::build(config(&issuer).dpop(key.clone()).build().unwrap(), Options::default());
    let flavours = each::<A>(build, &only(&api));
    for (_, flavour) in &flavours {
        let name = flavour.name();
        api.clear_requests();
        let status = flavour.send(
            "POST",
            &format!("{}/orders?x=1", api.resource()),
            Body::Buffered(b"{}".to_vec()),
        );
        let requests = api.requests();
        assert!(
            requests[0].header("authorization").unwrap().starts_with("DPoP "),
            "{name}"
        );
        assert!(requests[0].header("dpop").is_some(), "{name}");
        if flavour.retries() {
            assert_eq!(status, Ok(200), "{name}");
            assert_eq!((api.rejected(), api.accepted()), (1, 1), "{name}: one nonce retry");
        } else {
            assert_eq!(status, Ok(401), "{name}: ureq's middleware cannot answer the nonce");
        }
    }
    assert_eq!(
        issuer.token_requests().len(),
        flavours.len(),
        "a nonce challenge keeps the token"
    );
}
