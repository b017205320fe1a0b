//! The cached read with a Redis store attached, against the same read with
//! no store and against one `SystemTime::now()`, both adapters: the store
//! must add nothing (the cached read never touches Redis).
//!
//! `cargo bench -p client-credentials-redis --all-features --bench cached -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use client_credentials::Config;
use client_credentials_redis::RedisStore;
use client_credentials_testkit::redis::RedisServer;
use client_credentials_testkit::TestIssuer;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

fn config(issuer: &TestIssuer) -> Config {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap()
}

fn cached(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let server = RedisServer::start();
    let store = || RedisStore::builder(server.url()).build().unwrap();

    let plain = client_credentials_blocking::Client::new(config(&issuer));
    let fleet = client_credentials_blocking::Client::builder(config(&issuer))
        .store(store())
        .build();
    plain.token().unwrap();
    fleet.token().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tokio_plain, tokio_fleet) = runtime.block_on(async {
        let plain = client_credentials_tokio::Client::new(config(&issuer));
        let fleet = client_credentials_tokio::Client::builder(config(&issuer))
            .store(store())
            .build();
        plain.token().await.unwrap();
        fleet.token().await.unwrap();
        (plain, fleet)
    });

    let mut group = c.benchmark_group("cached");
    group.bench_function("SystemTime::now", |b| b.iter(|| black_box(SystemTime::now())));
    group.bench_function("blocking/no store", |b| b.iter(|| black_box(plain.token().unwrap())));
    group.bench_function("blocking/redis store", |b| b.iter(|| black_box(fleet.token().unwrap())));
    group.bench_function("tokio/no store", |b| {
        b.iter_custom(|iters| tokio_reads(&runtime, &tokio_plain, iters))
    });
    group.bench_function("tokio/redis store", |b| {
        b.iter_custom(|iters| tokio_reads(&runtime, &tokio_fleet, iters))
    });
    group.finish();
}

/// How long `iters` cached reads of `client` take on `runtime`.
fn tokio_reads(runtime: &Runtime, client: &client_credentials_tokio::Client, iters: u64) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(client.token().await.unwrap());
        }
        started.elapsed()
    })
}

criterion_group!(benches, cached);
criterion_main!(benches);
