//! How soon a process waiting on the fleet lock sees the token the holder
//! writes: from just before the holder's `SET` to the waiter's
//! `begin_fetch` returning it, over many rounds, for two poll intervals;
//! against one Redis round trip (`GET`) measured in the same run.
//!
//! `cargo bench -p client-credentials-redis --features blocking --bench handoff`
#![allow(missing_docs)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use client_credentials::{AccessToken, Config, Timestamp};
use client_credentials_blocking::{FleetTurn, TokenStore};
use client_credentials_redis::RedisStore;
use client_credentials_testkit::redis::RedisServer;

const ROUNDS: usize = 200;

fn config() -> Config {
    Config::builder("bench-client", "bench-secret")
        .token_endpoint("https://auth.example.com/token")
        .build()
        .unwrap()
}

fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

fn token(round: usize) -> AccessToken {
    AccessToken::builder(format!("token-{round}"))
        .received_at(now())
        .expires_at(now().saturating_add(Duration::from_secs(600)))
        .build()
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let server = RedisServer::start();
    let config = config();

    // Baseline: one GET round trip on an open connection.
    let baseline = {
        let store = RedisStore::builder(server.url()).build().unwrap();
        store.load(&config).unwrap();
        let mut trips: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                store.load(&config).unwrap();
                started.elapsed()
            })
            .collect();
        trips.sort();
        percentile(&trips, 0.5)
    };
    println!("baseline: one Redis round trip (GET), median {baseline:?}");
    println!("| poll interval | median | p90 | p99 | max | median / round trip |");
    println!("| --- | --- | --- | --- | --- | --- |");

    for poll in [Duration::from_millis(5), Duration::from_millis(1)] {
        let build = || RedisStore::builder(server.url()).poll_interval(poll).build().unwrap();
        let (holder, waiter) = (build(), build());
        let mut seen = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            server.cli(&["flushall"]);
            assert!(matches!(holder.begin_fetch(&config, now()).unwrap(), FleetTurn::Fetch));
            let (tx, rx) = mpsc::channel();
            let waiting = {
                let (waiter, config) = (waiter.clone(), config.clone());
                std::thread::spawn(move || {
                    tx.send(()).unwrap();
                    let turn = waiter.begin_fetch(&config, now()).unwrap();
                    (turn, Instant::now())
                })
            };
            rx.recv().unwrap();
            // Let the waiter find the lock held and start polling; write at
            // a point unrelated to its polling phase.
            std::thread::sleep(Duration::from_micros(3_000 + (round as u64 * 7_919) % 5_000));
            let written = Instant::now();
            holder.save(&config, &token(round)).unwrap();
            holder.end_fetch(&config);
            let (turn, at) = waiting.join().unwrap();
            assert!(matches!(turn, FleetTurn::Use(ref t) if t.secret() == format!("token-{round}")));
            seen.push(at.saturating_duration_since(written));
        }
        seen.sort();
        let median = percentile(&seen, 0.5);
        println!(
            "| {poll:?} | {median:?} | {:?} | {:?} | {:?} | {:.1}× |",
            percentile(&seen, 0.9),
            percentile(&seen, 0.99),
            seen[seen.len() - 1],
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
