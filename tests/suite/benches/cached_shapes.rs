//! The cached read of both adapters in the shapes callers (and other
//! benchmarks) write it, side by side in one run, against
//! `SystemTime::now()` measured in the same run:
//!
//! - `blocking/call`: `black_box(client.token())`, the blocking read;
//! - `tokio/awaited`: `client.token()` awaited in the loop, as criterion's
//!   `to_async(..).iter(|| client.token())` does;
//! - `tokio/async block, unwrapped`: `async { client.token().await.unwrap() }`;
//! - `tokio/async block, Result kept`: `async { black_box(client.token().await) }`;
//! - `blocking/async block, Result kept`: `async { black_box(client.token()) }`
//!   with the *blocking* client: the same caller shape around a read that
//!   involves no future at all;
//! - `control/arc clone + drop`: the reference-count round trip an owned
//!   `AccessToken` costs, the floor of any read that returns one.
//!
//! The async shapes are awaited as criterion's async bencher does: one
//! `block_on` per batch, each iteration awaiting a fresh future and
//! `black_box`ing its output. A shape that moves the whole 80-byte
//! `Result<AccessToken, Error>` through an `async` block costs the same with
//! either adapter's read inside: it is the caller's move, not the read.
//!
//! `cargo bench -p client-credentials-suite --bench cached_shapes -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use client_credentials_suite::scenarios::config;
use client_credentials_testkit::TestIssuer;
use criterion::{criterion_group, criterion_main, Criterion};

/// `iters` awaits of `shape()` in one `block_on`, each output `black_box`ed.
fn awaited<F: Future>(runtime: &tokio::runtime::Runtime, iters: u64, shape: impl Fn() -> F) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(shape().await);
        }
        started.elapsed()
    })
}

fn shapes(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let blocking = client_credentials_blocking::Client::new(config(&issuer).build().expect("valid config"));
    let tokio = client_credentials_tokio::Client::new(config(&issuer).build().expect("valid config"));
    blocking.token().expect("first token (blocking)");
    runtime.block_on(tokio.token()).expect("first token (tokio)");
    let own = Arc::new(0u64);

    let mut group = c.benchmark_group("shapes");
    group.bench_function("system_time_now", |b| b.iter(|| black_box(SystemTime::now())));
    group.bench_function("control/arc clone + drop", |b| b.iter(|| black_box(Arc::clone(&own))));
    group.bench_function("blocking/call", |b| b.iter(|| black_box(blocking.token())));
    group.bench_function("tokio/awaited", |b| {
        b.iter_custom(|n| awaited(&runtime, n, || tokio.token()))
    });
    group.bench_function("tokio/async block, unwrapped", |b| {
        b.iter_custom(|n| awaited(&runtime, n, || async { tokio.token().await.unwrap() }))
    });
    group.bench_function("tokio/async block, Result kept", |b| {
        b.iter_custom(|n| awaited(&runtime, n, || async { black_box(tokio.token().await) }))
    });
    group.bench_function("blocking/async block, Result kept", |b| {
        b.iter_custom(|n| awaited(&runtime, n, || async { black_box(blocking.token()) }))
    });
    group.finish();
    assert_eq!(
        issuer.token_requests().len(),
        2,
        "every read after the first two was cached"
    );
}

criterion_group!(benches, shapes);
criterion_main!(benches);
