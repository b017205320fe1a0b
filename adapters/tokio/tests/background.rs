//! Background refresh: on tokio's paused clock with an in-memory transport
//! (exact timing, no sockets), and in real time against the test issuer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_credentials::{Config, TransportError, TransportErrorKind};
use client_credentials_testkit::TestIssuer;
use client_credentials_tokio::{BoxFuture, Client, Transport};

mod common;

/// Answers every token request at once with `t<n>`, valid for 600 s.
struct Canned(Arc<AtomicUsize>);

impl Transport for Canned {
    fn send(&self, _: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
        answer(&self.0)
    }
}

fn answer(counter: &AtomicUsize) -> BoxFuture<'static, Result<http::Response<Vec<u8>>, TransportError>> {
    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    {
        Box::pin(async move {
            let body = format!(r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":600}}"#);
            http::Response::builder()
                .status(200)
                .body(body.into_bytes())
                .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_the_refresh_time_on_a_paused_clock() {
    let requests = Arc::new(AtomicUsize::new(0));
    let config = Config::builder("id", "secret")
        .token_endpoint("https://id.example/token")
        .clock_skew(Duration::ZERO)
        .refresh_margin(Duration::from_secs(300))
        .build()
        .unwrap();
    let client = Client::builder(config)
        .transport(Canned(requests.clone()))
        .background_refresh(true)
        .tokio_clock(true)
        .build();
    assert_eq!(client.token().await.unwrap().secret(), "t1");
    // Refresh time: 600 s lifetime - 300 s margin.
    tokio::time::sleep(Duration::from_secs(299)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(client.token().await.unwrap().secret(), "t1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 2, "refreshed in the background");
    assert_eq!(client.token().await.unwrap().secret(), "t2");
    // And again 300 s after that one.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(client.token().await.unwrap().secret(), "t3");
    assert_eq!(requests.load(Ordering::SeqCst), 3, "callers never fetched");
    // The task ends with the last clone: no refresh after the drop.
    drop(client);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_ahead_of_expiry_in_real_time() {
    let issuer = TestIssuer::builder().lifetime(2).start();
    let config = common::config(&issuer).clock_skew(Duration::ZERO).build().unwrap();
    let client = Client::builder(config).background_refresh(true).build();
    let first = client.token().await.unwrap();
    // Lifetime 2 s: refreshed at 1 s (half the lifetime, below the margin).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(issuer.token_requests().len(), 2);
    let second = client.token().await.unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2, "the caller did not wait for a fetch");
}

/// Panics inside the request future on its first use, then answers like [`Canned`].
struct PanicsOnce(Arc<AtomicUsize>);

impl Transport for PanicsOnce {
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
        let first = self.0.load(Ordering::SeqCst) == 0;
        let _ = request;
        let canned = answer(&self.0);
        Box::pin(async move {
            let response = canned.await;
            assert!(!first, "transport bug (expected by the test)");
            response
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_request_task_wakes_the_waiters() {
    let requests = Arc::new(AtomicUsize::new(0));
    let config = Config::builder("id", "secret")
        .token_endpoint("https://id.example/token")
        .build()
        .unwrap();
    let client = Client::builder(config).transport(PanicsOnce(requests.clone())).build();
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token().await })
        })
        .collect();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap().secret(), "t2");
    }
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "the abandoned request was sent again, once"
    );
}

/// One background task refreshes every live key, each at its own refresh
/// time: the default key and two `token_for` keys are all refreshed ahead
/// of expiry, and no caller waits for a fetch afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_every_key_ahead_of_expiry() {
    use client_credentials::TokenParams;
    let issuer = TestIssuer::builder().lifetime(2).start();
    let config = common::config(&issuer).clock_skew(Duration::ZERO).build().unwrap();
    let client = Client::builder(config).background_refresh(true).build();
    let keys = [
        TokenParams::new().param("tenant", "a"),
        TokenParams::new().param("tenant", "b"),
    ];
    let default = client.token().await.unwrap();
    let mut first = Vec::new();
    for params in &keys {
        first.push(client.token_for(params).await.unwrap());
    }
    assert_eq!(issuer.token_requests().len(), 3);
    // Lifetime 2 s: each is refreshed at 1 s after it was fetched.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(issuer.token_requests().len(), 6, "every key was refreshed");
    assert_ne!(client.token().await.unwrap().secret(), default.secret());
    for (params, first) in keys.iter().zip(&first) {
        assert_ne!(client.token_for(params).await.unwrap().secret(), first.secret());
    }
    assert_eq!(issuer.token_requests().len(), 6, "no caller waited for a fetch");
}
