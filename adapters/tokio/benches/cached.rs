//! The tokio adapter's costs, each against a baseline measured in the same run:
//!
//! - `cached/system_time_now` (baseline) vs `cached/token/1 thread` and
//!   `cached/token/2 threads`: a cached `token().await`, awaited in a loop
//!   inside one `block_on` per thread, so the runtime's per-`block_on`
//!   overhead is not counted per read, and unwrapped as callers do with `?`
//!   (as the blocking bench does) (2 threads: wall time for each of two
//!   threads to make the same number of calls at once);
//! - `fetch/one_task` (baseline) vs `fetch/1000_tasks`: a fresh client (nothing
//!   cached) against the loopback test issuer, one caller vs 1,000 spawned
//!   tasks asking at once, which must share one token request.
//!
//! `cargo bench -p client-credentials-tokio --bench cached -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use client_credentials::Config;
use client_credentials_testkit::TestIssuer;
use client_credentials_tokio::Client;
use criterion::{criterion_group, criterion_main, Criterion};

fn config(issuer: &TestIssuer) -> Config {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .expect("valid config")
}

fn cached(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let runtime = current_thread();
    let client = Client::new(config(&issuer));
    runtime.block_on(client.token()).expect("first token");

    let mut group = c.benchmark_group("cached");
    group.bench_function("system_time_now", |b| b.iter(|| black_box(SystemTime::now())));
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
    group.bench_function("token/2 threads", |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(3));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (client, barrier) = (client.clone(), barrier.clone());
                    thread::spawn(move || {
                        // Each thread awaits on a runtime of its own, as a
                        // task on a multi-thread runtime's worker would.
                        let runtime = current_thread();
                        runtime.block_on(async {
                            let _ = client.token().await;
                            barrier.wait();
                            for _ in 0..iters {
                                black_box(client.token().await.unwrap());
                            }
                        })
                    })
                })
                .collect();
            barrier.wait();
            let started = Instant::now();
            for thread in threads {
                thread.join().expect("thread");
            }
            started.elapsed()
        })
    });
    group.finish();
    assert_eq!(issuer.token_requests().len(), 1);
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn fetch(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("fetch");
    group.sample_size(20);
    for tasks in [1usize, 1000] {
        let name = if tasks == 1 {
            "one_task".to_owned()
        } else {
            format!("{tasks}_tasks")
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    issuer.clear_requests();
                    let client = Client::new(config(&issuer));
                    total += runtime.block_on(async {
                        let start = Instant::now();
                        let handles: Vec<_> = (0..tasks)
                            .map(|_| {
                                let client = client.clone();
                                tokio::spawn(async move { client.token().await.map(|t| t.secret().len()) })
                            })
                            .collect();
                        for handle in handles {
                            let served = handle.await.expect("task").expect("token");
                            black_box(served);
                        }
                        start.elapsed()
                    });
                    assert_eq!(issuer.token_requests().len(), 1, "single flight");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cached, fetch);
criterion_main!(benches);
