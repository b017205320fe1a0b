//! An async service: many tasks sharing one `Client`, background refresh,
//! and cancellation by timeout.
//!
//! What it shows, against the workspace's test issuer on loopback (offline,
//! about 3.5 s, most of it the service running):
//! - **Cancellation is safe**: a caller that gives up (`tokio::time::timeout`
//!   around `client.token()`, a lost `select!`) does not cancel the token
//!   request. It runs in its own task; the next call gets its result without a
//!   second request.
//! - **One `Client`, many tasks**: 64 tasks clone one client and call
//!   `token()` before every job, each job under its own deadline.
//! - **Background refresh**: with `.background_refresh(true)` a task refreshes
//!   the token when it is due (4 s tokens here, at half-life), so no caller
//!   ever waits for a refresh, even one the issuer takes a second to answer:
//!   no job misses its 800 ms deadline (a caller that waited for the refresh
//!   would wait up to its full second).
//! - **`on_token_update`**: called once per new token.
//!
//! ```sh
//! cargo run -p client-credentials-tokio --example service
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_credentials::{AccessToken, Config};
use client_credentials_testkit::{Fault, TestIssuer};
use client_credentials_tokio::Client;
use tokio::time::timeout;

const TASKS: usize = 64;
const RUN_FOR: Duration = Duration::from_millis(2800);
const SLOW_REFRESH: Duration = Duration::from_secs(1);
// Well under the refresh's second, with room for a busy machine's scheduling
// (500 ms was missed once on a loaded 2-vCPU VM, with no refresh involved).
const JOB_DEADLINE: Duration = Duration::from_millis(800);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Tokens live 4 s, so the run sees a background refresh (at half-life: 2 s).
    let issuer = TestIssuer::builder().lifetime(4).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .scope("orders:read")
        .build()?;
    let started = Instant::now();
    let updates = Arc::new(AtomicUsize::new(0));
    let client = Client::builder(config)
        .background_refresh(true)
        .on_token_update({
            let updates = Arc::clone(&updates);
            move |token: &AccessToken| {
                updates.fetch_add(1, Ordering::Relaxed);
                // Log what a token is for; never the token itself.
                println!(
                    "[{:>5} ms] new token for scope {:?}",
                    started.elapsed().as_millis(),
                    token.scope().unwrap_or("")
                );
            }
        })
        .on_error(|error| eprintln!("background refresh failed, still serving the cached token: {error}"))
        .build();

    // 1. The issuer is slow this once (700 ms); the caller gives up after 200 ms.
    issuer.push_fault(Fault::Delay(Duration::from_millis(700)));
    let gave_up = timeout(Duration::from_millis(200), client.token()).await;
    assert!(gave_up.is_err());
    println!(
        "[{:>5} ms] caller timed out; the request goes on",
        started.elapsed().as_millis()
    );
    // The next caller joins the same request instead of sending another.
    client.token().await?;
    println!(
        "[{:>5} ms] next caller got the token of that request ({} token request so far)",
        started.elapsed().as_millis(),
        issuer.token_requests().len()
    );
    assert_eq!(issuer.token_requests().len(), 1);

    // 2. The service: tasks share one client, each job under a deadline.
    // Each refresh now takes the issuer a second: a caller that waited for
    // one would miss its job's deadline.
    for _ in 0..3 {
        issuer.push_fault(Fault::Delay(SLOW_REFRESH));
    }
    let jobs = Arc::new(AtomicUsize::new(0));
    let missed = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let service_started = Instant::now();
    for _ in 0..TASKS {
        let (client, jobs, missed) = (client.clone(), Arc::clone(&jobs), Arc::clone(&missed));
        tasks.spawn(async move {
            while service_started.elapsed() < RUN_FOR {
                match timeout(JOB_DEADLINE, client.token()).await {
                    Ok(Ok(token)) => {
                        let _header = token.authorization_header(); // send the job's request with it
                        jobs.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(error)) => eprintln!("job failed: {error}"),
                    Err(_elapsed) => {
                        missed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("job missed its deadline waiting for a token");
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await; // the rest of the job
            }
        });
    }
    while let Some(task) = tasks.join_next().await {
        task?;
    }

    let requests = issuer.token_requests().len();
    let updates = updates.load(Ordering::Relaxed);
    let missed = missed.load(Ordering::Relaxed);
    println!(
        "{TASKS} tasks, {} jobs, {missed} missed deadlines, {requests} token requests, {updates} update callbacks, {:.1} s",
        jobs.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    // The first token and one background refresh (due 2 s after the first
    // request, answered a second later): no job waited for it.
    assert_eq!(missed, 0, "jobs waited for the refresh");
    assert_eq!((requests, updates), (2, 2));
    Ok(())
}
