//! A resource that rejects tokens, through the authorised HTTP clients of
//! both adapters: the failure policy holds, and DPoP nonces are kept.

use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use client_credentials::{AccessToken, JwsAlgorithm, JwtKey, Timestamp};
use client_credentials_blocking::ManualClock;
use client_credentials_testkit::{TestIssuer, TestResourceServer};

use super::config;
use super::parity::{clock_now, Ticker};
use crate::authorized::{each, Authorized, Body, Origins};
use crate::{Adapter, Options};

/// A resource answering `401 invalid_token` to every token, on simulated
/// time: 20 calls in a burst through each authorised client cost at most 3
/// token requests (not 2 per call), and each returns at once with the `401`
/// or the back-off's error; callers who keep calling then cost at most 10
/// token requests in the first simulated minute and 2 a minute after, as a
/// failing provider does.
pub fn a_resource_rejecting_every_token_is_backed_off<A: Adapter>() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    api.reject_all(true);
    let origins = Origins::Only(vec![api.base_url()]);
    let url = format!("{}/things", api.resource());
    let clock = ManualClock::starting_now();
    // Every token request is answered with a token: its simulated time is
    // when the request went out (the clock stands still during it, or nearly).
    let fetched: Arc<Mutex<Vec<Timestamp>>> = Arc::default();
    let (times, at) = (fetched.clone(), clock.clone());
    let options = Options {
        clock: Some(clock.clone()),
        on_update: Some(Arc::new(move |_: &AccessToken| {
            times.lock().unwrap().push(clock_now(&at))
        })),
        ..Options::default()
    };
    let build = || A::build(config(&issuer).build().unwrap(), options.clone());
    // A client per flavour: the counts are per process.
    for (_client, flavour) in each::<A>(build, &origins) {
        let flavour: Arc<dyn Authorized> = Arc::from(flavour);
        let name = format!("{} {}", A::NAME, flavour.name());
        let before = issuer.token_requests().len();
        fetched.lock().unwrap().clear();
        // 20 calls one after another, at one simulated instant: the clock
        // stands still, so a call held for a back-off would never return.
        let (done, results) = mpsc::channel();
        let (caller, target) = (flavour.clone(), url.clone());
        thread::spawn(move || {
            for _ in 0..20 {
                let _ = done.send(caller.send("GET", &target, Body::Empty));
            }
        });
        for _ in 0..20 {
            let result = results
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{name}: a call was held"));
            match result {
                Ok(401) => {}
                Err(error) if error.contains("rejected") => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        let burst = issuer.token_requests().len() - before;
        eprintln!("{name}: 20 calls in a burst, {burst} token requests");
        assert!(burst <= 3, "{name}: {burst} token requests for 20 calls");

        // Callers keep calling for three simulated minutes.
        let start = clock_now(&clock);
        let minute = move |n: u64| start.saturating_add(Duration::from_secs(60 * n));
        let ticker = Ticker::start(&clock);
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (flavour, clock, url) = (flavour.clone(), clock.clone(), url.clone());
                thread::spawn(move || {
                    while clock_now(&clock) < minute(3) {
                        let _ = flavour.send("GET", &url, Body::Empty);
                        thread::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        drop(ticker);
        let times = fetched.lock().unwrap().clone();
        assert_eq!(
            times.len(),
            issuer.token_requests().len() - before,
            "{name}: every request got a token"
        );
        let first = times.iter().filter(|t| **t < minute(1)).count();
        let later = times
            .iter()
            .filter(|t| **t >= minute(1))
            .map(|t| {
                times
                    .iter()
                    .filter(|u| *u >= t && **u < t.saturating_add(Duration::from_secs(60)))
                    .count()
            })
            .max()
            .unwrap_or(0);
        eprintln!("{name}: {first} token requests in the first simulated minute, at most {later} in any minute after");
        assert!(first <= 10, "{name}: {first} token requests in the first minute");
        assert!(
            later <= 2,
            "{name}: {later} token requests within a later minute: {times:?}"
        );
    }
}

/// A token that was never rejected and is still valid keeps being served:
/// callers holding a token the resource rejected earlier do not evict the
/// newer one, and no token request follows.
pub fn a_token_never_rejected_keeps_being_served<A: Adapter>() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    A::invalidate(&client, &first);
    let second = A::token(&client).unwrap();
    assert_ne!(second.secret(), first.secret());
    for _ in 0..5 {
        A::invalidate(&client, &first);
    }
    let origins = Origins::Only(vec![api.base_url()]);
    for flavour in A::authorized(&client, &origins) {
        let status = flavour.send("GET", &format!("{}/things", api.resource()), Body::Empty);
        assert_eq!(status, Ok(200), "{} {}", A::NAME, flavour.name());
    }
    assert_eq!(A::token(&client).unwrap().secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

/// A resource that demands a DPoP nonce: its nonce is kept for its origin,
/// so 4 calls take 5 requests (the first answered `use_dpop_nonce` and sent
/// again), not 8. ureq's middleware cannot send again: its first call
/// returns the `401`, the next three succeed with the kept nonce.
pub fn four_calls_to_a_nonce_demanding_resource_take_five_requests<A: Adapter>() {
    let issuer = TestIssuer::builder().token_type("DPoP").start();
    let api = TestResourceServer::builder()
        .accept_tokens_of(&issuer)
        .require_dpop(Some("server-nonce-1"))
        .start();
    let key = JwtKey::from_pem(super::assertions::EC_PEM, JwsAlgorithm::Es256).unwrap();
    let origins = Origins::Only(vec![api.base_url()]);
    let build = || A::build(config(&issuer).dpop(key.clone()).build().unwrap(), Options::default());
    for (_client, flavour) in each::<A>(build, &origins) {
        let name = format!("{} {}", A::NAME, flavour.name());
        api.clear_requests();
        let statuses: Vec<_> = (0..4)
            .map(|i| {
                let url = format!("{}/orders/{i}", api.resource());
                flavour.send("POST", &url, Body::Buffered(b"{}".to_vec()))
            })
            .collect();
        let requests = api.requests().len();
        eprintln!("{name}: 4 calls, {requests} requests to the resource");
        if flavour.retries() {
            assert_eq!(statuses, [Ok(200), Ok(200), Ok(200), Ok(200)], "{name}");
            assert_eq!(requests, 5, "{name}");
        } else {
            assert_eq!(statuses, [Ok(401), Ok(200), Ok(200), Ok(200)], "{name}");
            assert_eq!(requests, 4, "{name}");
        }
    }
}

/// With `.dpop(key)`, a provider that issues bearer tokens is refused: the
/// call fails with `Error::Dpop`, and nothing is cached (the next call asks
/// again, after the back-off) or stored.
pub fn with_dpop_a_bearer_token_is_refused_and_not_stored<A: Adapter>() {
    use client_credentials::{DpopError, Error};
    let issuer = TestIssuer::start();
    let store = Arc::new(crate::RecordingStore::new());
    let options = Options {
        store: crate::StoreChoice::Recording(store.clone()),
        ..Options::default()
    };
    let key = JwtKey::from_pem(super::assertions::EC_PEM, JwsAlgorithm::Es256).unwrap();
    let client = A::build(config(&issuer).dpop(key).max_attempts(1).build().unwrap(), options);
    for _ in 0..3 {
        match A::token(&client) {
            Err(Error::Dpop(DpopError::UnboundToken { token_type })) => assert_eq!(token_type, "Bearer"),
            other => panic!("{}: {other:?}", A::NAME),
        }
    }
    assert_eq!(issuer.token_requests().len(), 1, "{}: backed off", A::NAME);
    assert!(store.token().is_none(), "{}: {:?}", A::NAME, store.calls());
    assert!(
        !store.calls().iter().any(|call| call.starts_with("save")),
        "{}: {:?}",
        A::NAME,
        store.calls()
    );
}
