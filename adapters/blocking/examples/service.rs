//! A threaded service: a pool of worker threads sharing one `Client`, a token
//! store that survives restarts, and the update callback.
//!
//! What it shows, against the workspace's test issuer on loopback (offline,
//! about 3 s):
//! - **Restart**: a previous run left a token in a `FileStore`; the service
//!   starts with it and sends no token request until that token needs
//!   refreshing.
//! - **One `Client`, many threads**: eight workers clone one client and call
//!   `token()` before every job. Cached reads take no lock; when the token is
//!   due (2 s tokens here, refreshed at half-life), the workers that ask at
//!   that moment share one request.
//! - **`on_token_update`**: called once per new token, e.g. to log or export it.
//! - **A 401**: each job is a real HTTP call (`ureq`) to a protected API (the
//!   testkit's resource server). The API rejects the current token once;
//!   every worker that gets the 401 calls `invalidate(&token)`, only the first
//!   of them evicts it (a caller holding an older token never evicts a newer
//!   one), so one new token is fetched.
//!
//! ```sh
//! cargo run -p client-credentials-blocking --example service
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_credentials::{AccessToken, Config};
use client_credentials_blocking::{Client, FileStore};
use client_credentials_testkit::{TestIssuer, TestResourceServer};

const WORKERS: usize = 8;
const RUN_FOR: Duration = Duration::from_millis(2500);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Tokens live 2 s, so the run sees refreshes (at half-life: 1 s).
    let issuer = TestIssuer::builder().lifetime(2).start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let orders = format!("{}/orders", api.resource());
    // The service's HTTP client for its API; a 401 is an answer, not an error.
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .scope("orders:read")
        .build()?;
    let token_file = std::env::temp_dir().join(format!("client-credentials-service-{}.json", std::process::id()));

    // A previous run of the service fetched a token and stored it.
    Client::builder(config.clone())
        .store(FileStore::new(&token_file))
        .build()
        .token()?;
    assert_eq!(issuer.token_requests().len(), 1);

    // This run: one client for the whole process, built once.
    let updates = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let client = Client::builder(config)
        .store(FileStore::new(&token_file))
        .on_token_update({
            let updates = Arc::clone(&updates);
            move |token: &AccessToken| {
                updates.fetch_add(1, Ordering::Relaxed);
                // Log what a token is for and how long it lives; never the token itself.
                let lifetime = token.expires_at().map_or("without expiry".to_owned(), |at| {
                    format!("valid for {:?}", at.saturating_duration_since(token.received_at()))
                });
                println!(
                    "[{:>5} ms] new token for scope {:?}, {lifetime}",
                    started.elapsed().as_millis(),
                    token.scope().unwrap_or("")
                );
            }
        })
        .on_error(|error| eprintln!("refresh failed, still serving the cached token: {error}"))
        .build();
    client.token()?;
    assert_eq!(issuer.token_requests().len(), 1, "the stored token was reused");
    println!("restarted with the stored token: no token request");

    let jobs = AtomicUsize::new(0);
    let rejected = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            let client = client.clone(); // cheap: clones share one cache and one flight
            let (http, orders, jobs, rejected) = (&http, &orders, &jobs, &rejected);
            scope.spawn(move || {
                while started.elapsed() < RUN_FOR {
                    let token = match client.token() {
                        Ok(token) => token,
                        Err(error) => {
                            // No usable token and the provider failed: this
                            // job fails; the next call tries again (the core
                            // spaces out the attempts).
                            eprintln!("job skipped: {error}");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    let response = http
                        .get(orders)
                        .header(http::header::AUTHORIZATION, token.authorization_header())
                        .call();
                    match response.map(|r| r.status()) {
                        Ok(http::StatusCode::OK) => {
                            jobs.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(http::StatusCode::UNAUTHORIZED) => {
                            // This token is no good any more: drop it, unless a
                            // newer one has replaced it already.
                            rejected.fetch_add(1, Ordering::Relaxed);
                            client.invalidate(&token);
                        }
                        other => eprintln!("job failed: {other:?}"),
                    }
                    std::thread::sleep(Duration::from_millis(5)); // the rest of the job
                }
            });
        }
        // Halfway through, the API stops accepting the current token.
        std::thread::sleep(RUN_FOR / 2);
        if let Ok(current) = client.token() {
            api.reject_token(current.secret());
        }
        println!(
            "[{:>5} ms] the API revoked the token in use",
            started.elapsed().as_millis()
        );
    });

    let requests = issuer.token_requests().len() - 1;
    let updates = updates.load(Ordering::Relaxed);
    println!(
        "{WORKERS} workers, {} jobs, {} rejected by the API, {requests} token requests, {updates} update callbacks, {:.1} s",
        jobs.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    // Every new token was announced once; the workers never stampeded the issuer:
    // about one request per second of 2 s tokens, plus one for the revocation.
    assert_eq!(updates, requests);
    assert_eq!(api.accepted(), jobs.load(Ordering::Relaxed));
    assert!(api.rejected() >= 1);
    assert!((2..=6).contains(&requests), "{requests} token requests");
    std::fs::remove_file(&token_file)?;
    Ok(())
}
