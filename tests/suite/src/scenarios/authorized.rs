//! Authorised HTTP clients (both adapters, every flavour) against the test
//! issuer and the test resource server, over real HTTP on loopback.

use std::sync::{Arc, Barrier};

use client_credentials::TokenParams;
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

/// Two APIs that each accept only tokens for their own audience (`orders`
/// by `audience`, `billing` by RFC 8707 `resource`), and a third, `plain`,
/// that accepts any token of the issuer and has no `params_for`.
struct ThreeApis {
    issuer: TestIssuer,
    orders: TestResourceServer,
    billing: TestResourceServer,
    plain: TestResourceServer,
}

const ORDERS_AUDIENCE: &str = "https://orders.example";
const BILLING_RESOURCE: &str = "https://billing.example/api";

impl ThreeApis {
    fn start() -> ThreeApis {
        let issuer = TestIssuer::start();
        let api = |audience: Option<&str>| {
            let builder = TestResourceServer::builder().accept_tokens_of(&issuer);
            match audience {
                Some(audience) => builder.require_audience(audience).start(),
                None => builder.start(),
            }
        };
        let (orders, billing, plain) = (api(Some(ORDERS_AUDIENCE)), api(Some(BILLING_RESOURCE)), api(None));
        ThreeApis {
            issuer,
            orders,
            billing,
            plain,
        }
    }

    fn orders_params() -> TokenParams {
        TokenParams::new().audience(ORDERS_AUDIENCE)
    }

    fn billing_params() -> TokenParams {
        TokenParams::new().resource(BILLING_RESOURCE)
    }

    /// All three allowed; `orders` and `billing` with a key of their own.
    fn origins(&self) -> Origins {
        let allowed = vec![self.orders.base_url(), self.billing.base_url(), self.plain.base_url()];
        Origins::keyed(
            Origins::Only(allowed),
            vec![
                (self.orders.base_url(), Self::orders_params()),
                (self.billing.base_url(), Self::billing_params()),
            ],
        )
    }

    fn client<A: Adapter>(&self) -> A::Client {
        A::build(config(&self.issuer).build().unwrap(), Options::default())
    }

    fn url(api: &TestResourceServer) -> String {
        format!("{}/things", api.resource())
    }

    /// The token requests since `from` asking for `audience`/`resource`
    /// (`None`, `None`: the default key's).
    fn fetched(&self, from: usize, audience: Option<&str>, resource: Option<&str>) -> usize {
        self.issuer.token_requests()[from..]
            .iter()
            .filter(|r| r.param("audience") == audience && r.param("resource") == resource)
            .count()
    }
}

fn bearer(token: &client_credentials::AccessToken) -> String {
    format!("Bearer {}", token.secret())
}

/// Each API with `params_for` gets its own key's token (one request per
/// key, then cached), and an origin without params gets the default key's.
pub fn each_origin_with_params_for_gets_its_own_keys_token<A: Adapter>() {
    let apis = ThreeApis::start();
    for (client, flavour) in each::<A>(|| apis.client::<A>(), &apis.origins()) {
        let name = flavour.name();
        let from = apis.issuer.token_requests().len();
        for _ in 0..2 {
            for api in [&apis.orders, &apis.billing, &apis.plain] {
                let status = flavour.send("GET", &ThreeApis::url(api), Body::Empty);
                assert_eq!(status, Ok(200), "{name}: {}", api.resource());
            }
        }
        assert_eq!(
            apis.issuer.token_requests().len() - from,
            3,
            "{name}: one per key, then cached"
        );
        assert_eq!(apis.fetched(from, Some(ORDERS_AUDIENCE), None), 1, "{name}");
        assert_eq!(apis.fetched(from, None, Some(BILLING_RESOURCE)), 1, "{name}");
        assert_eq!(apis.fetched(from, None, None), 1, "{name}");
        // Each API saw its own key's token (cached reads: nothing fetched).
        let expect = [
            (
                &apis.orders,
                A::token_for(&client, &ThreeApis::orders_params()).unwrap(),
            ),
            (
                &apis.billing,
                A::token_for(&client, &ThreeApis::billing_params()).unwrap(),
            ),
            (&apis.plain, A::token(&client).unwrap()),
        ];
        for (api, token) in expect {
            let seen = api
                .requests()
                .last()
                .and_then(|r| r.header("authorization").map(str::to_owned));
            assert_eq!(seen, Some(bearer(&token)), "{name}: {}", api.resource());
        }
        assert_eq!(apis.issuer.token_requests().len() - from, 3, "{name}");
    }
}

/// A `401` from one keyed API evicts only that key's token: the retry (or,
/// for ureq's middleware, the next request) fetches that key again, while
/// the other key and the default key keep their tokens.
pub fn a_401_from_one_origin_evicts_only_its_keys_token<A: Adapter>() {
    let apis = ThreeApis::start();
    for (client, flavour) in each::<A>(|| apis.client::<A>(), &apis.origins()) {
        let name = flavour.name();
        for api in [&apis.orders, &apis.billing, &apis.plain] {
            assert_eq!(
                flavour.send("GET", &ThreeApis::url(api), Body::Empty),
                Ok(200),
                "{name}"
            );
        }
        let billing = A::token_for(&client, &ThreeApis::billing_params()).unwrap();
        let default = A::token(&client).unwrap();
        let stale = A::token_for(&client, &ThreeApis::orders_params()).unwrap();
        apis.orders.reject_token(stale.secret());
        let from = apis.issuer.token_requests().len();
        let status = flavour.send("GET", &ThreeApis::url(&apis.orders), Body::Empty);
        if flavour.retries() {
            assert_eq!(status, Ok(200), "{name}: retried with a new orders token");
        } else {
            assert_eq!(status, Ok(401), "{name}");
            assert_eq!(
                apis.issuer.token_requests().len(),
                from,
                "{name}: invalidated, not refetched"
            );
            let status = flavour.send("GET", &ThreeApis::url(&apis.orders), Body::Empty);
            assert_eq!(status, Ok(200), "{name}");
        }
        assert_eq!(
            apis.fetched(from, Some(ORDERS_AUDIENCE), None),
            1,
            "{name}: orders refetched once"
        );
        for api in [&apis.billing, &apis.plain] {
            assert_eq!(
                flavour.send("GET", &ThreeApis::url(api), Body::Empty),
                Ok(200),
                "{name}"
            );
        }
        assert_eq!(
            apis.issuer.token_requests().len() - from,
            1,
            "{name}: nothing else refetched"
        );
        let kept = A::token_for(&client, &ThreeApis::billing_params()).unwrap();
        assert_eq!(kept.secret(), billing.secret(), "{name}: billing kept its token");
        assert_eq!(A::token(&client).unwrap().secret(), default.secret(), "{name}");
        let fresh = A::token_for(&client, &ThreeApis::orders_params()).unwrap();
        assert_ne!(fresh.secret(), stale.secret(), "{name}");
    }
}

/// `params_for` allows nothing by itself: a keyed origin the client does not
/// allow fails every request with a config error naming it, and params the
/// config builder refuses fail the requests to their origin with that
/// error; either way nothing reaches the APIs or the token endpoint.
pub fn params_for_an_origin_not_allowed_or_with_refused_params_fails_and_sends_nothing<A: Adapter>() {
    let apis = ThreeApis::start();
    let client = apis.client::<A>();
    let not_allowed = Origins::keyed(
        Origins::Only(vec![apis.plain.base_url()]),
        vec![(apis.orders.base_url(), ThreeApis::orders_params())],
    );
    for flavour in A::authorized(&client, &not_allowed) {
        let name = flavour.name();
        for api in [&apis.orders, &apis.plain] {
            let message = flavour.send("GET", &ThreeApis::url(api), Body::Empty).expect_err(name);
            assert!(message.contains("params_for"), "{name}: {message}");
            assert!(message.contains(".allow_origin("), "{name}: says what to do: {message}");
        }
    }
    let refused = Origins::keyed(
        Origins::Only(vec![apis.orders.base_url()]),
        vec![(
            apis.orders.base_url(),
            TokenParams::new().param("client_id", "someone-else"),
        )],
    );
    for flavour in A::authorized(&client, &refused) {
        let name = flavour.name();
        let message = flavour
            .send("GET", &ThreeApis::url(&apis.orders), Body::Empty)
            .expect_err(name);
        assert!(message.contains("client_id"), "{name}: {message}");
    }
    let not_an_origin = Origins::keyed(
        Origins::Only(vec![apis.orders.base_url()]),
        vec![(apis.orders.resource(), ThreeApis::orders_params())],
    );
    for flavour in A::authorized(&client, &not_an_origin) {
        let name = flavour.name();
        let message = flavour
            .send("GET", &ThreeApis::url(&apis.orders), Body::Empty)
            .expect_err(name);
        assert!(
            message.contains("params_for") && message.contains("a path"),
            "{name}: {message}"
        );
    }
    for api in [&apis.orders, &apis.plain] {
        assert!(api.requests().is_empty(), "nothing reached {}", api.resource());
    }
    assert!(apis.issuer.token_requests().is_empty(), "no token was fetched");
}
