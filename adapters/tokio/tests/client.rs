//! What is particular to the tokio client, against the in-process test
//! issuer: runtimes and tasks waiting, cancelled callers, a user's `reqwest`
//! client, its async store and provider types, its `Debug`. What both
//! adapters do alike is in the suite (`tests/suite`), run against each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_credentials::{AccessToken, Config, Error, OAuthErrorCode, TransportErrorKind};
use client_credentials_testkit::{Fault, TestIssuer};
use client_credentials_tokio::{Client, MemoryStore, TokenStore};

mod common;

fn config(issuer: &TestIssuer) -> Config {
    common::config(issuer).build().unwrap()
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
async fn the_discovered_metadata_is_kept_on_the_client() {
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
