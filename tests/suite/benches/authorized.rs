//! What an authorised HTTP client adds to a request: the same loopback GET
//! to the test resource server (keep-alive) sent with the header set by hand
//! (the baseline) and through each authorised client, in one run. The tower
//! layer's baseline is the same `reqwest::Client`, as a tower service, called
//! without the layer.
//!
//! `cargo bench -p client-credentials-suite --bench authorized -- --warm-up-time 1 --measurement-time 3`
//!
//! Criterion measures each function after the other: on a busy machine they
//! see different loads. `benches/authorized_paired.rs` sends the same
//! requests in turn instead.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

mod loopback;

use criterion::{criterion_group, criterion_main, Criterion};
use loopback::Requests;

fn authorized(c: &mut Criterion) {
    let requests = Requests::start();
    let mut group = c.benchmark_group("blocking loopback GET");
    group.bench_function("ureq, header by hand (baseline)", |b| {
        b.iter(|| requests.ureq_by_hand())
    });
    group.bench_function("AuthorizedAgent", |b| b.iter(|| requests.authorized_agent()));
    group.finish();
    let mut group = c.benchmark_group("tokio loopback GET");
    group.bench_function("reqwest, header by hand (baseline)", |b| {
        b.iter(|| requests.reqwest_by_hand())
    });
    group.bench_function("reqwest-middleware AuthMiddleware", |b| {
        b.iter(|| requests.auth_middleware())
    });
    group.finish();
    let mut group = c.benchmark_group("tokio loopback GET, tower");
    group.bench_function("reqwest as a tower service, header by hand (baseline)", |b| {
        b.iter(|| requests.tower_by_hand())
    });
    group.bench_function("tower AuthLayer around it", |b| b.iter(|| requests.auth_layer()));
    group.finish();
}

criterion_group!(benches, authorized);
criterion_main!(benches);
