//! The blocking client against the in-process test issuer: caching, single
//! flight, retries, faults, stores, callbacks, sign-out, discovery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use client_credentials::{
    http, AccessToken, Config, ConfigBuilder, Error, OAuthErrorCode, Timestamp, TransportError, TransportErrorKind,
};
use client_credentials_blocking::{
    discover, discover_with, Client, FileStore, ManualClock, MemoryStore, TokenStore, Transport, UreqTransport,
};
use client_credentials_testkit::{DiscoveryMode, Fault, TestIssuer};

fn config(issuer: &TestIssuer) -> ConfigBuilder {
    Config::builder(issuer.client_id(), issuer.client_secret()).token_endpoint(issuer.token_endpoint())
}

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

#[test]
fn a_cached_token_makes_no_second_request() {
    let issuer = TestIssuer::start();
    let client = client(&issuer);
    let first = client.token().unwrap();
    let second = client.token().unwrap();
    assert_eq!(first.secret(), second.secret());
    assert_eq!(first.secret(), issuer.issued_tokens()[0]);
    assert_eq!(issuer.token_requests().len(), 1);
    let header = client.authorization_header().unwrap();
    assert_eq!(header.to_str().unwrap(), format!("Bearer {}", first.secret()));
    assert!(header.is_sensitive());
    assert_eq!(issuer.token_requests().len(), 1);
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

#[test]
fn sixty_four_threads_share_one_request_and_its_token() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(200)));
    let client = client(&issuer);
    let tokens = on_64_threads(&client, |c| c.token().unwrap().secret().to_owned());
    assert_eq!(issuer.token_requests().len(), 1);
    assert!(tokens.iter().all(|t| *t == issuer.issued_tokens()[0]));
}

#[test]
fn sixty_four_threads_share_one_request_and_its_error() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(401, "invalid_client", "bad secret"));
    let client = client(&issuer);
    let errors = on_64_threads(&client, |c| c.token().unwrap_err());
    assert_eq!(issuer.token_requests().len(), 1);
    assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
    assert_eq!(errors[0].oauth_code(), Some(&OAuthErrorCode::InvalidClient));
}

#[test]
fn retry_after_is_honoured_then_the_retry_succeeds() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::retry_after(503, "1"));
    let client = client(&issuer);
    let started = Instant::now();
    client.token().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(issuer.token_requests().len(), 2);
}

#[test]
fn oauth_errors_are_final() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(401, "invalid_client", "bad secret"));
    let error = client(&issuer).token().unwrap_err();
    assert!(
        matches!(&error, Error::OAuth { code: OAuthErrorCode::InvalidClient, status, .. } if status.as_u16() == 401),
        "{error:?}"
    );
    assert!(!error.to_string().contains(&issuer.client_secret()));
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn a_hanging_server_times_out() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let config = config(&issuer).max_attempts(1).build().unwrap();
    let client = Client::builder(config).timeout(Duration::from_millis(300)).build();
    let started = Instant::now();
    let error = client.token().unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::Timeout),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn redirects_are_not_followed() {
    let issuer = TestIssuer::start();
    let elsewhere = TestIssuer::start();
    issuer.push_fault(Fault::Redirect(elsewhere.token_endpoint()));
    let error = client(&issuer).token().unwrap_err();
    assert!(
        matches!(&error, Error::UnexpectedStatus { status, .. } if status.as_u16() == 307),
        "{error:?}"
    );
    assert_eq!(issuer.token_requests().len(), 1);
    assert!(elsewhere.requests().is_empty());

    // The transport itself hands the 307 back, for the user's agent too.
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
fn a_failed_refresh_keeps_serving_the_cached_token_and_reports_it() {
    let issuer = TestIssuer::start();
    let (errors, error_count) = counter();
    let clock = ManualClock::starting_now();
    let client = Client::builder(config(&issuer).build().unwrap())
        .on_error(move |_| {
            errors.fetch_add(1, Ordering::SeqCst);
        })
        .clock(clock.clone())
        .build();
    let token = client.token().unwrap();
    issuer.push_fault(Fault::Malformed("{not json".into()));
    let error = client.refresh().unwrap_err();
    assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
    assert_eq!(error_count(), 1);
    assert_eq!(client.token().unwrap().secret(), token.secret());
    // Refreshing again during the cool-down: its error, no request, and the
    // token is still served.
    assert_eq!(client.refresh().unwrap_err(), error);
    assert_eq!(client.token().unwrap().secret(), token.secret());
    assert_eq!(issuer.token_requests().len(), 2);
    // Once it is over, refresh() fetches.
    clock.advance(Duration::from_secs(60));
    let fresh = client.refresh().unwrap();
    assert_ne!(fresh.secret(), token.secret());
    assert_eq!(client.token().unwrap().secret(), fresh.secret());
    assert_eq!(issuer.token_requests().len(), 3);
    assert_eq!(error_count(), 1);
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

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let first = Client::builder(config(&issuer).build().unwrap())
        .store(FileStore::new(&path))
        .build();
    let token = first.token().unwrap();
    let second = Client::builder(config(&issuer).build().unwrap())
        .store(FileStore::new(&path))
        .build();
    assert_eq!(second.token().unwrap().secret(), token.secret());
    assert_eq!(issuer.token_requests().len(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

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
fn on_token_update_fires_once_per_new_token() {
    let issuer = TestIssuer::start();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let seen = Arc::clone(&seen);
        Client::builder(config(&issuer).build().unwrap())
            .on_token_update(move |t| seen.lock().unwrap().push(t.secret().to_owned()))
            .build()
    };
    for _ in 0..3 {
        client.token().unwrap();
    }
    client.refresh().unwrap();
    client.token().unwrap();
    assert_eq!(*seen.lock().unwrap(), issuer.issued_tokens());
    assert_eq!(seen.lock().unwrap().len(), 2);
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

    // None: the client fetches.
    let client = Client::builder(config(&issuer).build().unwrap())
        .token_provider(|_| None)
        .build();
    assert_eq!(client.token().unwrap().secret(), issuer.issued_tokens()[0]);

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
    assert_eq!(client.token().unwrap().secret(), issuer.issued_tokens()[1]);
    assert_eq!(call_count(), 1);
}

#[test]
fn signout_clears_the_store_and_revokes_at_the_discovered_endpoint() {
    let issuer = TestIssuer::start();
    let store = MemoryStore::new();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()
        .unwrap();
    let client = Client::builder(config).store(store.clone()).build();
    let token = client.token().unwrap();
    assert!(store.get().is_some());
    client.signout().unwrap();
    assert!(store.get().is_none());
    let revoked = issuer.revocation_requests();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].param("token"), Some(token.secret()));
    assert_ne!(client.token().unwrap().secret(), token.secret());

    // Configured endpoint, no discovery.
    let config = config_with_revocation(&issuer);
    let client = Client::new(config);
    client.token().unwrap();
    client.signout().unwrap();
    assert_eq!(issuer.revocation_requests().len(), 2);
    // Nothing to revoke: no request.
    client.signout().unwrap();
    assert_eq!(issuer.revocation_requests().len(), 2);
}

fn config_with_revocation(issuer: &TestIssuer) -> Config {
    config(issuer)
        .revocation_endpoint(issuer.revocation_endpoint())
        .build()
        .unwrap()
}

#[test]
fn invalidate_and_refresh_fetch_new_tokens() {
    let issuer = TestIssuer::start();
    let client = client(&issuer);
    let first = client.token().unwrap();
    client.invalidate(&first);
    let second = client.token().unwrap();
    assert_ne!(first.secret(), second.secret());
    client.invalidate(&first); // older than the cached one: nothing happens
    assert_eq!(client.token().unwrap().secret(), second.secret());
    let third = client.refresh().unwrap();
    assert_ne!(third.secret(), second.secret());
    assert_eq!(client.token().unwrap().secret(), third.secret());
    assert_eq!(issuer.token_requests().len(), 3);
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
fn discovery_through_the_issuer_and_standalone() {
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

    let metadata = discover(&issuer.issuer_url()).unwrap();
    assert_eq!(metadata.token_endpoint, issuer.token_endpoint());

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

#[test]
fn connection_refused_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::builder("id", "secret")
        .token_endpoint(format!("http://127.0.0.1:{port}/token"))
        .max_attempts(1)
        .build()
        .unwrap();
    let error = Client::new(config).token().unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.kind() == TransportErrorKind::Connect),
        "{error:?}"
    );
}
