//! Heap use, counted by `allocation-counter`'s global allocator (per thread):
//! a cached `token()` allocates nothing; an oversized body is never buffered.

use std::time::{Duration, Instant};

use client_credentials::Error;
use client_credentials_blocking::Client;
use client_credentials_testkit::{Fault, TestIssuer};

mod common;

fn client(issuer: &TestIssuer) -> Client {
    Client::new(common::config(issuer).build().unwrap())
}

#[test]
fn a_cached_token_costs_no_allocation() {
    let issuer = TestIssuer::start();
    let client = client(&issuer);
    // Warm up: the first calls fetch, then make this thread's copy.
    client.token().unwrap();
    client.token().unwrap();
    let counts = allocation_counter::measure(|| {
        for _ in 0..1_000 {
            let token = client.token().unwrap();
            std::hint::black_box(&token);
        }
    });
    assert_eq!(counts.count_total, 0, "{counts:?}");
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn an_oversized_body_is_rejected_quickly_without_buffering_it() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Oversized(64 << 20));
    let client = client(&issuer);
    let started = Instant::now();
    let mut result = None;
    let counts = allocation_counter::measure(|| result = Some(client.token()));
    let error = result.unwrap().unwrap_err();
    assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(counts.bytes_max < 4 << 20, "peak heap {} bytes", counts.bytes_max);
    assert_eq!(issuer.token_requests().len(), 1, "invalid responses are not retried");
}
