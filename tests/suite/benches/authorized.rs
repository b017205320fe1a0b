//! What an authorised HTTP client adds to a request: the same loopback GET
//! to the test resource server (keep-alive) sent with the header set by hand
//! (the baseline) and through each authorised client, in one run.
//!
//! `cargo bench -p client-credentials-suite --bench authorized -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::io::Read;

use client_credentials::Config;
use client_credentials_testkit::{TestIssuer, TestResourceServer};
use criterion::{criterion_group, criterion_main, Criterion};

fn blocking(c: &mut Criterion) {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap();
    let client = client_credentials_blocking::Client::new(config);
    let header = client.authorization_header().unwrap();
    let url = format!("{}/things", api.resource());
    let agent = ureq::Agent::new_with_defaults();
    let authorized =
        client_credentials_blocking::AuthorizedAgent::new(agent.clone(), client.clone()).allow_origin(api.base_url());
    let mut group = c.benchmark_group("blocking loopback GET");
    group.bench_function("ureq, header by hand (baseline)", |b| {
        b.iter(|| {
            let mut response = agent.get(&url).header("authorization", header.clone()).call().unwrap();
            response.body_mut().as_reader().read_to_end(&mut Vec::new()).unwrap();
        })
    });
    group.bench_function("AuthorizedAgent", |b| {
        b.iter(|| {
            let request = http::Request::get(&url).body(Vec::new()).unwrap();
            let mut response = authorized.run(request).unwrap();
            assert_eq!(response.status(), 200);
            response.body_mut().as_reader().read_to_end(&mut Vec::new()).unwrap();
        })
    });
    group.finish();
}

fn tokio(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let client = client_credentials_tokio::Client::new(config);
    let header = runtime.block_on(client.authorization_header()).unwrap();
    let url = format!("{}/things", api.resource());
    let plain = reqwest::Client::new();
    let with_middleware = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(client_credentials_tokio::AuthMiddleware::new(client.clone()).allow_origin(api.base_url()))
        .build();
    let mut group = c.benchmark_group("tokio loopback GET");
    group.bench_function("reqwest, header by hand (baseline)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = plain
                    .get(&url)
                    .header("authorization", header.clone())
                    .send()
                    .await
                    .unwrap();
                response.bytes().await.unwrap();
            })
        })
    });
    group.bench_function("reqwest-middleware AuthMiddleware", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = with_middleware.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, blocking, tokio);
criterion_main!(benches);
