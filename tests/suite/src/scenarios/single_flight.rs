//! Concurrent callers share one request and one outcome.

use std::sync::{Arc, Barrier};
use std::thread;

use client_credentials::{Error, OAuthErrorCode};
use client_credentials_testkit::{Fault, TestIssuer};
use std::time::Duration;

use super::config;
use crate::{Adapter, Options};

const THREADS: usize = 64;

fn all_at_once<A: Adapter>(client: &A::Client) -> Vec<Result<String, Error>> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                A::token(&client).map(|t| t.secret().to_owned())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// 64 threads, no token yet: one request, one token for all.
pub fn sixty_four_threads_one_request<A: Adapter>() {
    let issuer = TestIssuer::start();
    // Slow the answer so every thread arrives while the request is in flight.
    issuer.push_fault(Fault::Delay(Duration::from_millis(200)));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let results = all_at_once::<A>(&client);
    let first = results[0].as_ref().unwrap().clone();
    assert!(results.iter().all(|r| r.as_ref().ok() == Some(&first)), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
}

/// 64 threads and a final `invalid_client`: one request, the same typed error for all.
pub fn sixty_four_threads_one_error<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(200)));
    // The delayed request is then validated like any other: the secret is wrong.
    let config = client_credentials::Config::builder(issuer.client_id(), "wrong-secret")
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let results = all_at_once::<A>(&client);
    for result in &results {
        match result {
            Err(Error::OAuth {
                code: OAuthErrorCode::InvalidClient,
                status,
                ..
            }) => assert_eq!(status.as_u16(), 401),
            other => panic!("{}: {other:?}", A::NAME),
        }
    }
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
}
