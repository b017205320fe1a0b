//! The cached read allocates nothing. Its own test binary: `allocation-counter`
//! installs a counting global allocator (counts are per thread).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use client_credentials_testkit::TestIssuer;
use client_credentials_tokio::Client;

mod common;

#[test]
fn a_cached_token_costs_no_allocation() {
    let issuer = TestIssuer::start();
    let client = Client::new(common::config(&issuer).build().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let expected = runtime.block_on(client.token()).unwrap();
    // Measure only the call: poll the future once by hand (no runtime in the
    // way). The first read on a thread makes that thread's copy; warm it up.
    let mut cx = Context::from_waker(Waker::noop());
    let mut read = || match pin!(client.token()).as_mut().poll(&mut cx) {
        Poll::Ready(Ok(token)) => token,
        other => panic!("the cached read must complete at once: {other:?}"),
    };
    assert_eq!(read().secret(), expected.secret());
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            std::hint::black_box(read());
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}
