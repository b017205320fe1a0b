//! `token_for` cached reads at 1, 100 and 10,000 live keys, on one and two
//! threads, each read for the next key in turn; a bound handle's `token()`
//! beside the plain `token()`; all beside `SystemTime::now()` in the same run.
//!
//! `cargo bench -p client-credentials-blocking --bench keys -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use client_credentials::{Config, TokenParams};
use client_credentials_blocking::Client;
use client_credentials_testkit::TestIssuer;
use criterion::{criterion_group, criterion_main, Criterion};

fn config(issuer: &TestIssuer) -> Config {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap()
}

fn keys(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let client = Client::builder(config(&issuer)).max_keys(10_000).build();
    client.token().unwrap();
    let all: Arc<Vec<TokenParams>> = Arc::new(
        (0..10_000)
            .map(|n| {
                TokenParams::new()
                    .scope("api.read")
                    .param("tenant", format!("tenant-{n:05}"))
            })
            .collect(),
    );
    for params in all.iter() {
        client.token_for(params).unwrap();
    }

    let mut group = c.benchmark_group("keys");
    group.bench_function("SystemTime::now", |b| b.iter(|| black_box(SystemTime::now())));
    for live in [1usize, 100, 10_000] {
        let client = client.clone();
        let all = Arc::clone(&all);
        group.bench_function(format!("token_for/{live} keys/1 thread"), |b| {
            let mut next = 0;
            b.iter(|| {
                next = (next + 1) % live;
                black_box(client.token_for(&all[next]).unwrap())
            })
        });
        let (client, all) = (client.clone(), Arc::clone(&all));
        group.bench_function(format!("token_for/{live} keys/2 threads"), move |b| {
            b.iter_custom(|iters| {
                let (client, all) = (client.clone(), Arc::clone(&all));
                on_two_threads(iters, move |i| {
                    black_box(client.token_for(&all[(i as usize) % live]).unwrap())
                })
            })
        });
    }
    let bound = client.with_params(all[0].clone());
    group.bench_function("token/1 thread", |b| b.iter(|| black_box(client.token().unwrap())));
    group.bench_function("with_params(..).token/1 thread", |b| {
        b.iter(|| black_box(bound.token().unwrap()))
    });
    {
        let client = client.clone();
        group.bench_function("token/2 threads", move |b| {
            b.iter_custom(|iters| {
                let client = client.clone();
                on_two_threads(iters, move |_| black_box(client.token().unwrap()))
            })
        });
    }
    group.bench_function("with_params(..).token/2 threads", move |b| {
        b.iter_custom(|iters| {
            let bound = bound.clone();
            on_two_threads(iters, move |_| black_box(bound.token().unwrap()))
        })
    });
    group.finish();
    assert_eq!(issuer.token_requests().len(), 10_001, "a read went to the issuer");
}

/// Wall time for each of two threads to make `iters` calls (numbered, each
/// thread from its own starting point), started together after one warm-up
/// call each.
fn on_two_threads<T>(iters: u64, call: impl Fn(u64) -> T + Clone + Send + 'static) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (call, barrier) = (call.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let offset = t * 5_000;
                call(offset);
                barrier.wait();
                for i in 0..iters {
                    call(offset + i);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    started.elapsed()
}

criterion_group!(benches, keys);
criterion_main!(benches);
