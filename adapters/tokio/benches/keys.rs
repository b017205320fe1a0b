//! The tokio client's cached `token_for` at 1, 100 and 10,000 live keys (one
//! thread, each read for the next key in turn, awaited in a loop inside one
//! `block_on`), beside a plain `token()` and `SystemTime::now()` in the same
//! run. The two-thread case is the blocking bench's (`keys`): the lookup is
//! the same shared code.
//!
//! `cargo bench -p client-credentials-tokio --bench keys -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use client_credentials::{Config, TokenParams};
use client_credentials_testkit::TestIssuer;
use client_credentials_tokio::Client;
use criterion::{criterion_group, criterion_main, Criterion};

fn keys(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .expect("valid config");
    let client = Client::builder(config).max_keys(10_000).build();
    let all: Vec<TokenParams> = (0..10_000)
        .map(|n| {
            TokenParams::new()
                .scope("api.read")
                .param("tenant", format!("tenant-{n:05}"))
        })
        .collect();
    runtime.block_on(async {
        client.token().await.expect("first token");
        for params in &all {
            client.token_for(params).await.expect("a key's first token");
        }
    });

    let mut group = c.benchmark_group("keys");
    group.bench_function("SystemTime::now", |b| b.iter(|| black_box(SystemTime::now())));
    for live in [1usize, 100, 10_000] {
        group.bench_function(format!("token_for/{live} keys/1 thread"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters {
                        let params = &all[(i as usize) % live];
                        black_box(client.token_for(params).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.bench_function("token/1 thread", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(client.token().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    assert_eq!(issuer.token_requests().len(), 10_001, "a read went to the issuer");
}

criterion_group!(benches, keys);
criterion_main!(benches);
