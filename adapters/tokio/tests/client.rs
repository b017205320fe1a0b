//! The tokio adapter against the in-process test issuer: one scenario per test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_credentials::{AccessToken, Config, ConfigBuilder, Error, OAuthErrorCode, TransportErrorKind};
use client_credentials_testkit::{Fault, TestIssuer};
use client_credentials_tokio::{discover, Client, FileStore, MemoryStore, TokenStore};

fn builder(issuer: &TestIssuer) -> ConfigBuilder {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .jitter_seed(7)
        .backoff(Duration::from_millis(50), Duration::from_secs(2))
}

fn config(issuer: &TestIssuer) -> Config {
    builder(issuer).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_the_token() {
    let issuer = TestIssuer::start();
    let client = Client::new(config(&issuer));
    let a = client.token().await.unwrap();
    let b = client.token().await.unwrap();
    assert_eq!(a.secret(), b.secret());
    assert_eq!(issuer.issued_tokens(), vec![a.secret().to_owned()]);
    assert_eq!(issuer.token_requests().len(), 1);
    let header = client.authorization_header().await.unwrap();
    assert_eq!(header.to_str().unwrap(), format!("Bearer {}", a.secret()));
    assert!(header.is_sensitive());
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_the_current_thread_runtime() {
    let issuer = TestIssuer::start();
    let client = Client::new(config(&issuer));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token().await.unwrap().secret().to_owned() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), issuer.issued_tokens()[0]);
    }
    assert_eq!(issuer.token_requests().len(), 1);
}

async fn many_at_once(client: &Client, n: usize) -> Vec<Result<AccessToken, Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token().await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tasks_share_one_request() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(200)));
    let client = Client::new(config(&issuer));
    let results = many_at_once(&client, 1000).await;
    assert_eq!(issuer.token_requests().len(), 1);
    let first = results[0].as_ref().unwrap().secret().to_owned();
    assert!(results.iter().all(|r| r.as_ref().unwrap().secret() == first));
}

#[tokio::test(flavor = "current_thread")]
async fn a_thousand_tasks_share_one_error() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(401, "invalid_client", "bad credentials"));
    let client = Client::new(config(&issuer));
    let results = many_at_once(&client, 1000).await;
    assert_eq!(issuer.token_requests().len(), 1);
    let first = results[0].as_ref().unwrap_err();
    assert_eq!(first.oauth_code(), Some(&OAuthErrorCode::InvalidClient));
    assert!(results.iter().all(|r| r.as_ref().unwrap_err() == first));
    assert!(!first.to_string().contains(&issuer.client_secret()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::retry_after(503, "1"));
    let client = Client::new(config(&issuer));
    let started = std::time::Instant::now();
    client.token().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(issuer.token_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_reqwest_client_is_capped_and_its_redirects_refused() {
    let issuer = TestIssuer::start();
    // Redirects left on by mistake: a 307 cannot replay the body (the
    // transport sends it in a form reqwest cannot clone), so it comes back
    // unfollowed and the core rejects it.
    issuer.push_fault(Fault::Redirect(format!("{}/elsewhere", issuer.base_url())));
    let client = Client::builder(config(&issuer))
        .reqwest_client(reqwest::Client::new())
        .build();
    let error = client.token().await.unwrap_err();
    assert!(
        matches!(&error, Error::UnexpectedStatus { status, .. } if status.as_u16() == 307),
        "{error:?}"
    );
    assert_eq!(issuer.token_requests().len(), 1);
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::OversizedChunked(64 << 20));
    let client = Client::builder(config(&issuer))
        .reqwest_client(reqwest::Client::new())
        .build();
    assert!(matches!(client.token().await, Err(Error::InvalidResponse { .. })));
    assert_eq!(issuer.token_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_oauth_errors_are_not_retried() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(400, "invalid_scope", "no such scope"));
    // A cool-down long enough that the second call surely falls inside it.
    let client = Client::new(
        builder(&issuer)
            .backoff(Duration::from_secs(5), Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let error = client.token().await.unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidScope));
    assert!(error.to_string().starts_with("invalid_scope"), "{error}");
    // The cool-down gives the same error without a new request.
    assert_eq!(client.token().await.unwrap_err(), error);
    assert_eq!(issuer.token_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out() {
    let issuer = TestIssuer::start();
    for _ in 0..3 {
        issuer.push_fault(Fault::Hang);
    }
    let client = Client::builder(config(&issuer))
        .timeout(Duration::from_millis(200))
        .build();
    let error = client.token().await.unwrap_err();
    match &error {
        Error::Transport(e) => assert_eq!(e.kind(), TransportErrorKind::Timeout, "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(issuer.token_requests().len(), 3, "3 attempts per round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    for fault in [Fault::Oversized(64 << 20), Fault::OversizedChunked(64 << 20)] {
        let issuer = TestIssuer::start();
        issuer.push_fault(fault);
        let client = Client::new(config(&issuer));
        let error = client.token().await.unwrap_err();
        assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
        assert!(!error.is_retryable());
        assert_eq!(issuer.token_requests().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Redirect(format!("{}/elsewhere", issuer.base_url())));
    let client = Client::new(config(&issuer));
    let error = client.token().await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(307), "{error:?}");
    assert_eq!(issuer.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_refresh_keeps_the_usable_token() {
    let issuer = TestIssuer::start();
    let errors = Arc::new(AtomicUsize::new(0));
    let seen = errors.clone();
    let client = Client::builder(config(&issuer))
        .on_error(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let first = client.token().await.unwrap();
    issuer.push_fault(Fault::Malformed("{not json".into()));
    // The refresh that failed says so; the usable token is still served.
    client.refresh().await.unwrap_err();
    assert_eq!(client.token().await.unwrap().secret(), first.secret());
    assert_eq!(errors.load(Ordering::SeqCst), 1);
    assert_eq!(issuer.token_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_fetches_a_new_token_and_notifies_once() {
    let issuer = TestIssuer::start();
    let updates = Arc::new(Mutex::new(Vec::new()));
    let seen = updates.clone();
    let client = Client::builder(config(&issuer))
        .on_token_update(move |t| seen.lock().unwrap().push(t.secret().to_owned()))
        .build();
    let a = client.token().await.unwrap();
    let _ = many_at_once(&client, 100).await;
    let b = client.refresh().await.unwrap();
    assert_ne!(a.secret(), b.secret());
    assert_eq!(client.token().await.unwrap().secret(), b.secret());
    assert_eq!(*updates.lock().unwrap(), issuer.issued_tokens());
    assert_eq!(updates.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_evicts_only_the_current_token() {
    let issuer = TestIssuer::start();
    let client = Client::new(config(&issuer));
    let a = client.token().await.unwrap();
    client.invalidate(&a);
    let b = client.token().await.unwrap();
    assert_ne!(a.secret(), b.secret());
    client.invalidate(&a); // older: nothing happens
    assert_eq!(client.token().await.unwrap().secret(), b.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_store_is_shared_between_clients() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let first = Client::builder(config(&issuer)).store(FileStore::new(&path)).build();
    let a = first.token().await.unwrap();
    let second = Client::builder(config(&issuer)).store(FileStore::new(&path)).build();
    assert_eq!(second.token().await.unwrap().secret(), a.secret());
    assert_eq!(issuer.token_requests().len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// A store whose every operation fails.
struct Broken;

impl TokenStore for Broken {
    fn load<'a>(
        &'a self,
        _: &'a Config,
    ) -> client_credentials_tokio::BoxFuture<'a, std::io::Result<Option<AccessToken>>> {
        Box::pin(async { Err(std::io::Error::other("disk on fire")) })
    }
    fn save<'a>(
        &'a self,
        _: &'a Config,
        _: &'a AccessToken,
    ) -> client_credentials_tokio::BoxFuture<'a, std::io::Result<()>> {
        Box::pin(async { Err(std::io::Error::other("disk on fire")) })
    }
    fn delete<'a>(&'a self, _: &'a Config) -> client_credentials_tokio::BoxFuture<'a, std::io::Result<()>> {
        Box::pin(async { Err(std::io::Error::other("disk on fire")) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_never_fails_a_token_request() {
    let issuer = TestIssuer::start();
    let client = Client::builder(config(&issuer)).store(Broken).build();
    client.token().await.unwrap();
    client.signout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_store_seeds_and_receives_tokens() {
    let issuer = TestIssuer::start();
    let store = MemoryStore::new();
    let client = Client::builder(config(&issuer)).store(store.clone()).build();
    let a = client.token().await.unwrap();
    assert_eq!(store.get().unwrap().secret(), a.secret());
    client.signout().await.unwrap();
    assert!(store.get().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_provider_is_used_when_fresh_and_falls_back_otherwise() {
    let issuer = TestIssuer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let stored = AccessToken::builder("from-the-database")
        .expires_at(client_credentials_common::now().saturating_add(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let client = Client::builder(config(&issuer))
        .token_provider(move |last| {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            let stored = stored.clone();
            Box::pin(async move { (first && last.is_none()).then_some(stored) })
        })
        .build();
    assert_eq!(client.token().await.unwrap().secret(), "from-the-database");
    assert_eq!(client.token().await.unwrap().secret(), "from-the-database");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached afterwards");
    assert_eq!(issuer.token_requests().len(), 0);
    // Rejected by the API: the provider now has nothing, so the client fetches.
    client.invalidate(&client.token().await.unwrap());
    let fetched = client.token().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(issuer.issued_tokens(), vec![fetched.secret().to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signout_revokes_the_token() {
    let issuer = TestIssuer::start();
    let client = Client::new(
        builder(&issuer)
            .revocation_endpoint(issuer.revocation_endpoint())
            .build()
            .unwrap(),
    );
    let a = client.token().await.unwrap();
    client.signout().await.unwrap();
    let revoked = issuer.revocation_requests();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].param("token"), Some(a.secret()));
    let b = client.token().await.unwrap();
    assert_ne!(a.secret(), b.secret());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_through_the_issuer() {
    let issuer = TestIssuer::start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()
        .unwrap();
    let client = Client::new(config);
    assert!(client.metadata().is_none());
    client.token().await.unwrap();
    assert_eq!(client.metadata().unwrap().token_endpoint, issuer.token_endpoint());
    assert_eq!(issuer.discovery_requests().len(), 1);
    // The discovered revocation endpoint is used at sign-out.
    client.signout().await.unwrap();
    assert_eq!(issuer.revocation_requests().len(), 1);

    let metadata = discover(&issuer.issuer_url()).await.unwrap();
    assert_eq!(metadata.token_endpoint, issuer.token_endpoint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_caller_does_not_cancel_the_request() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(500)));
    let client = Client::new(config(&issuer));
    let dropped = tokio::time::timeout(Duration::from_millis(50), client.token()).await;
    assert!(dropped.is_err(), "timed out while the request was in flight");
    let token = client.token().await.unwrap();
    assert_eq!(issuer.token_requests().len(), 1);
    assert_eq!(issuer.issued_tokens(), vec![token.secret().to_owned()]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_lost_select_does_not_cancel_the_request() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(300)));
    let client = Client::new(config(&issuer));
    tokio::select! {
        _ = client.token() => panic!("the delay should lose"),
        _ = tokio::time::sleep(Duration::from_millis(30)) => {}
    }
    client.token().await.unwrap();
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn debug_never_shows_secrets() {
    let issuer = TestIssuer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(config(&issuer));
    let token = rt.block_on(client.token()).unwrap();
    let text = format!("{client:?}");
    assert!(!text.contains(&issuer.client_secret()), "{text}");
    assert!(!text.contains(token.secret()), "{text}");
}

#[test]
fn outside_a_runtime_it_errors_instead_of_panicking() {
    let issuer = TestIssuer::start();
    let client = Client::new(config(&issuer));
    let mut future = std::pin::pin!(client.token());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(Error::Transport(e))) => assert_eq!(e.kind(), TransportErrorKind::Other),
        other => panic!("{other:?}"),
    }
}

fn _client_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Client>();
}

use std::future::Future as _;
