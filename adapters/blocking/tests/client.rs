//! What is particular to the blocking client, against the in-process test
//! issuer: its transport (ureq, a panicking one), threads waiting on a
//! refresh, its store and provider types, its `Debug`. What both adapters
//! do alike is in the suite (`tests/suite`), run against each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use client_credentials::{http, AccessToken, Config, Error, Timestamp, TransportError};
use client_credentials_blocking::{
    discover, discover_with, Client, FileStore, ManualClock, MemoryStore, TokenStore, Transport, UreqTransport,
};
use client_credentials_testkit::{DiscoveryMode, Fault, TestIssuer};

mod common;

use common::config;

fn client(issuer: &TestIssuer) -> Client {
    Client::new(config(issuer).build().unwrap())
}

fn counter() -> (Arc<AtomicUsize>, impl Fn() -> usize) {
    let count = Arc::new(AtomicUsize::new(0));
    let read = {
        let count = Arc::clone(&count);
        move || count.load(Ordering::SeqCst)
    };
    (count, read)
}

fn far_future() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now() + Duration::from_secs(3600))
}

fn on_64_threads<T: Send + 'static>(client: &Client, call: fn(&Client) -> T) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (client, barrier) = (client.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                call(&client)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The client's refusal of redirects is a suite scenario; here the ureq
/// transport itself hands a 307 back, with the default agent and a user's.
#[test]
fn the_ureq_transport_hands_a_redirect_back() {
    let issuer = TestIssuer::start();
    let elsewhere = TestIssuer::start();
    for transport in [
        UreqTransport::default(),
        UreqTransport::with_agent(ureq::Agent::new_with_defaults()),
    ] {
        issuer.push_fault(Fault::Redirect(elsewhere.token_endpoint()));
        let request = http::Request::post(issuer.token_endpoint())
            .body(b"x=1".to_vec())
            .unwrap();
        let response = transport.send(request).unwrap();
        assert_eq!(response.status().as_u16(), 307);
        assert_eq!(
            response.headers()["location"].to_str().unwrap(),
            elsewhere.token_endpoint()
        );
    }
    assert!(elsewhere.requests().is_empty());
}

#[test]
fn inside_the_refresh_window_one_thread_refreshes_while_others_are_served() {
    let issuer = TestIssuer::builder().lifetime(40).start();
    let (errors, error_count) = counter();
    let clock = ManualClock::starting_now();
    let client = Client::builder(config(&issuer).build().unwrap())
        .on_error(move |_| {
            errors.fetch_add(1, Ordering::SeqCst);
        })
        .clock(clock.clone())
        .build();
    let old = client.token().unwrap();
    clock.advance(Duration::from_secs(21)); // refresh at half the lifetime

    // A malformed answer while the token is usable: served anyway, reported.
    issuer.push_fault(Fault::Malformed("<html>".into()));
    assert_eq!(client.token().unwrap().secret(), old.secret());
    assert_eq!(error_count(), 1);
    assert_eq!(issuer.token_requests().len(), 2);

    // After the cool-down a slow refresh: the others are served meanwhile.
    clock.advance(Duration::from_secs(5));
    issuer.push_fault(Fault::Delay(Duration::from_millis(500)));
    let refresher = {
        let client = client.clone();
        thread::spawn(move || client.token().unwrap())
    };
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(client.token().unwrap().secret(), old.secret());
    assert!(started.elapsed() < Duration::from_millis(100));
    refresher.join().unwrap();
    assert_ne!(client.token().unwrap().secret(), old.secret());
    assert_eq!(issuer.token_requests().len(), 3);
}

#[test]
fn stores_carry_the_token_to_the_next_client() {
    let issuer = TestIssuer::start();
    let memory = MemoryStore::new();
    let first = Client::builder(config(&issuer).build().unwrap())
        .store(memory.clone())
        .build();
    let token = first.token().unwrap();
    assert_eq!(memory.get().unwrap().secret(), token.secret());
    let second = Client::builder(config(&issuer).build().unwrap())
        .store(memory.clone())
        .build();
    assert_eq!(second.token().unwrap().secret(), token.secret());
    assert_eq!(issuer.token_requests().len(), 1);

    // Sharing a file between clients is a suite scenario.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    // A stored token that has expired is refreshed, and the file follows.
    let expired = AccessToken::builder("old")
        .expires_at(Timestamp::from_unix_secs(1_000))
        .build()
        .unwrap();
    let cfg = config(&issuer).build().unwrap();
    FileStore::new(&path).save(&cfg, &expired).unwrap();
    let third = Client::builder(config(&issuer).build().unwrap())
        .store(FileStore::new(&path))
        .build();
    let fresh = third.token().unwrap();
    assert_ne!(fresh.secret(), "old");
    assert_eq!(
        FileStore::new(&path).load(&cfg).unwrap().unwrap().secret(),
        fresh.secret()
    );

    // A file that is not a token is an empty store, not an error.
    std::fs::write(&path, b"garbage").unwrap();
    let fourth = Client::builder(config(&issuer).build().unwrap())
        .store(FileStore::new(&path))
        .build();
    fourth.token().unwrap();
}

#[test]
fn the_token_provider_is_asked_first_and_once() {
    let issuer = TestIssuer::start();
    let given = AccessToken::builder("from-provider")
        .expires_at(far_future())
        .build()
        .unwrap();
    let (calls, call_count) = counter();
    let client = {
        let given = given.clone();
        Client::builder(config(&issuer).build().unwrap())
            .token_provider(move |last| {
                assert!(last.is_none());
                calls.fetch_add(1, Ordering::SeqCst);
                Some(given.clone())
            })
            .build()
    };
    assert_eq!(client.token().unwrap().secret(), "from-provider");
    assert_eq!(client.token().unwrap().secret(), "from-provider");
    assert_eq!(call_count(), 1);
    assert!(issuer.token_requests().is_empty());

    // A provider that only has a stale token is asked once, then the client fetches.
    let stale = AccessToken::builder("stale")
        .expires_at(Timestamp::from_unix_secs(1_000))
        .build()
        .unwrap();
    let (calls, call_count) = counter();
    let client = Client::builder(config(&issuer).build().unwrap())
        .token_provider(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Some(stale.clone())
        })
        .build();
    assert_eq!(client.token().unwrap().secret(), issuer.issued_tokens()[0]);
    assert_eq!(call_count(), 1);
}

/// Revoking at the discovered endpoint and clearing the store are a suite
/// scenario; here a configured revocation endpoint, and a second sign-out
/// with nothing to revoke.
#[test]
fn signout_revokes_at_a_configured_endpoint_once() {
    let issuer = TestIssuer::start();
    let config = config(&issuer)
        .revocation_endpoint(issuer.revocation_endpoint())
        .build()
        .unwrap();
    let client = Client::new(config);
    client.token().unwrap();
    client.signout().unwrap();
    assert_eq!(issuer.revocation_requests().len(), 1);
    client.signout().unwrap();
    assert_eq!(issuer.revocation_requests().len(), 1);
}

#[test]
fn concurrent_refresh_calls_share_one_request() {
    let issuer = TestIssuer::start();
    let client = client(&issuer);
    client.token().unwrap();
    issuer.push_fault(Fault::Delay(Duration::from_millis(300)));
    let tokens = on_64_threads(&client, |c| c.refresh().unwrap().secret().to_owned());
    assert_eq!(issuer.token_requests().len(), 2);
    assert!(tokens.iter().all(|t| *t == issuer.issued_tokens()[1]));
}

#[test]
fn discovery_through_the_issuer_and_with_a_transport() {
    let issuer = TestIssuer::builder().issuer_path("/tenant/a").start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()
        .unwrap();
    let client = Client::new(config);
    assert!(client.metadata().is_none());
    client.token().unwrap();
    assert_eq!(client.metadata().unwrap().token_endpoint, issuer.token_endpoint());
    assert_eq!(issuer.discovery_requests().len(), 1);

    // Only RFC 8414: the OpenID location is tried first, then this one.
    let rfc8414 = TestIssuer::builder()
        .issuer_path("/t")
        .discovery(DiscoveryMode::Rfc8414)
        .start();
    let metadata = discover_with(&UreqTransport::default(), &rfc8414.issuer_url()).unwrap();
    assert_eq!(metadata.token_endpoint, rfc8414.token_endpoint());
    assert_eq!(rfc8414.discovery_requests().len(), 2);

    let none = TestIssuer::builder().discovery(DiscoveryMode::None).start();
    assert!(matches!(discover(&none.issuer_url()), Err(Error::Discovery(_))));
}

/// Panics on its first exchange, after the other callers are waiting on it.
struct PanicsOnce {
    inner: UreqTransport,
    calls: AtomicUsize,
}

impl Transport for PanicsOnce {
    fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            thread::sleep(Duration::from_millis(200));
            panic!("transport bug");
        }
        self.inner.send(request)
    }
}

#[test]
fn a_panicking_transport_does_not_wedge_other_callers() {
    let issuer = TestIssuer::start();
    let client = Client::builder(config(&issuer).build().unwrap())
        .transport(PanicsOnce {
            inner: UreqTransport::default(),
            calls: AtomicUsize::new(0),
        })
        .build();
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (client.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                client.token().map(|t| t.secret().to_owned())
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1, "one caller panicked");
    for result in results.into_iter().flatten() {
        assert_eq!(result.unwrap(), issuer.issued_tokens()[0]);
    }
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn debug_shows_the_config_without_secrets() {
    let issuer = TestIssuer::start();
    let client = client(&issuer);
    let token = client.token().unwrap();
    let debug = format!("{client:?}");
    assert!(debug.contains(&issuer.client_id()), "{debug}");
    assert!(!debug.contains(&issuer.client_secret()));
    assert!(!debug.contains(token.secret()));
}
