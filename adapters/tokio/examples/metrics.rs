// ci: features metrics
//! The client's metrics as Prometheus text, scraped from a local port.
//!
//! What it shows, against the workspace's test issuer on loopback (offline,
//! about a second): with the feature `metrics` and any `metrics` recorder
//! installed (here `metrics-exporter-prometheus`, serving `/metrics` on a
//! loopback port), the client counts its requests by kind and outcome, times
//! them, counts back-off waits and failed rounds, and keeps gauges of when
//! its token expires and is refreshed. A few refreshes, one retried after a
//! `503`, and one final OAuth error, then one scrape of what they recorded.
//!
//! ```sh
//! cargo run -p client-credentials-tokio --features metrics --example metrics
//! ```

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_credentials::Config;
use client_credentials_testkit::{Fault, TestIssuer};
use client_credentials_tokio::Client;
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A free loopback port for the exporter (it binds the address it is given).
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    PrometheusBuilder::new().with_http_listener(address).install()?;

    let issuer = TestIssuer::start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .scope("orders:read")
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()?;
    let failures = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(config)
        .on_refresh_failed({
            let failures = Arc::clone(&failures);
            move |error| {
                failures.fetch_add(1, Ordering::Relaxed);
                println!("refresh failed: {error}");
            }
        })
        .build();

    // A first token, then three forced refreshes: the second meets a 503
    // and is retried after a short back-off.
    client.token().await?;
    for round in 0..3 {
        if round == 1 {
            issuer.push_fault(Fault::status(503, "<html>busy</html>"));
        }
        client.refresh().await?;
    }
    // A final OAuth error: one failed round (the cached token is still served).
    issuer.push_fault(Fault::oauth_error(400, "invalid_scope", "scope not allowed"));
    let failed = client.refresh().await;
    assert!(failed.is_err(), "the issuer was told to refuse this refresh");
    client.token().await?;

    let scrape = reqwest::get(format!("http://{address}/metrics")).await?.text().await?;
    println!("\nGET http://{address}/metrics (the client's lines):\n");
    // Histograms are exported as summaries: their count and sum are enough here.
    let lines = scrape
        .lines()
        .filter(|line| line.contains("oauth_client") && !line.contains("quantile="));
    for line in lines {
        println!("{line}");
    }
    println!(
        "\n{} token requests reached the issuer; on_refresh_failed was called {} time(s).",
        issuer.token_requests().len(),
        failures.load(Ordering::Relaxed)
    );
    for expected in [
        "oauth_client_requests",
        "oauth_client_rounds_failed",
        "oauth_client_token_expires_in",
    ] {
        if !scrape.contains(expected) {
            return Err(format!("the scrape has no {expected}").into());
        }
    }
    Ok(())
}
