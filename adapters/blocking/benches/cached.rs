//! Cached `token()` against the clocks it reads, on one and two threads, and
//! the first token against a bare `ureq` POST of the same request.
//!
//! `cargo bench -p client-credentials-blocking --bench cached -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::hint::black_box;
use std::io::Read;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use client_credentials::{Action, Config, TokenSource};
use client_credentials_blocking::Client;
use client_credentials_testkit::TestIssuer;
use criterion::{criterion_group, criterion_main, Criterion};

fn config(issuer: &TestIssuer) -> Config {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap()
}

fn cached(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let client = Client::new(config(&issuer));
    client.token().unwrap();

    let mut group = c.benchmark_group("cached");
    group.bench_function("SystemTime::now", |b| b.iter(|| black_box(SystemTime::now())));
    group.bench_function("coarse_now", |b| {
        b.iter(|| black_box(client_credentials_common::coarse_now()))
    });
    group.bench_function("token/1 thread", |b| b.iter(|| black_box(client.token().unwrap())));
    group.bench_function("token/2 threads", |b| {
        b.iter_custom(|iters| {
            let client = client.clone();
            on_two_threads(iters, move || black_box(client.token().unwrap()))
        })
    });
    // The controls: the clock alone on two threads, and cloning then
    // dropping an `Arc` of each thread's own (two uncontended atomic
    // read-modify-writes, as handing out an owned token costs), share nothing
    // between the threads: they show what running two threads at once costs here.
    group.bench_function("coarse_now/2 threads", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || black_box(client_credentials_common::coarse_now())))
    });
    let own = Arc::new(0u64);
    group.bench_function("own Arc clone+drop/1 thread", |b| {
        b.iter(|| black_box(Arc::clone(&own)))
    });
    group.bench_function("own Arc clone+drop/2 threads", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                thread_local!(static OWN: Arc<u64> = Arc::new(0));
                OWN.with(|own| black_box(Arc::clone(own)))
            })
        })
    });
    group.finish();
}

/// Wall time for each of two threads to make `iters` calls, started together
/// after one warm-up call each (which makes the thread's copy of the token).
fn on_two_threads<T>(iters: u64, call: impl Fn() -> T + Clone + Send + 'static) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (call, barrier) = (call.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                call();
                barrier.wait();
                for _ in 0..iters {
                    call();
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

fn first_token(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let config = config(&issuer);
    // The exact request the client sends (same form body, same Basic header).
    let request = match TokenSource::new(config.clone(), [7; 32]).poll(client_credentials_common::now()) {
        Action::Send(outgoing) => outgoing.request,
        other => panic!("expected a request, got {other:?}"),
    };

    let mut group = c.benchmark_group("first token");
    group.bench_function("bare ureq POST", |b| {
        b.iter(|| {
            // A new agent each time, as a new client has (a new connection),
            // configured as the client's default agent.
            let agent = ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .timeout_connect(Some(Duration::from_secs(10)))
                .build()
                .new_agent();
            let mut response = agent.run(request.clone()).unwrap();
            let mut body = Vec::new();
            response.body_mut().as_reader().read_to_end(&mut body).unwrap();
            assert!(response.status().is_success());
            black_box(body)
        })
    });
    group.bench_function("Client::token", |b| {
        b.iter(|| black_box(Client::new(config.clone()).token().unwrap()))
    });
    group.finish();
    issuer.clear_requests();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = cached, first_token
}
criterion_main!(benches);
