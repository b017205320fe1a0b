//! A fleet of real processes sharing a Redis store: [`Fleet::spawn`] starts
//! the test binary itself again as a worker ([`worker_main`], called from a
//! `#[test]` that does nothing unless the worker variables are set), which
//! builds a client of the chosen adapter on a `RedisStore` and, at each
//! given wall-clock time, has [`THREADS`] threads call `token()` at once. It
//! prints one `fleet-phase` line per burst, which [`Worker::wait`] reads.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client_credentials::Config;
use client_credentials_redis::RedisStore;

use crate::{Adapter, Blocking, Options, StoreChoice, Tokio};

/// Threads per worker process calling `token()` at once.
pub const THREADS: usize = 16;

const WORKER: &str = "CC_FLEET_WORKER";

/// What every worker of one fleet shares: the Redis servers, the issuer, the lock TTL.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Redis URLs (several: cluster seed nodes); none: no store at all.
    pub redis: Vec<String>,
    /// Whether `redis` are Redis Cluster nodes.
    pub cluster: bool,
    /// The store's lock TTL.
    pub lock_ttl: Duration,
    /// The token endpoint.
    pub endpoint: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// The test binary whose `fleet_worker` test runs the worker.
    pub binary: std::path::PathBuf,
}

impl Fleet {
    /// The config every worker builds.
    pub fn config(&self) -> Config {
        config(&self.endpoint, &self.client_id, &self.client_secret)
    }

    /// The store every worker builds.
    pub fn store(&self) -> RedisStore {
        store(&self.redis, self.cluster, self.lock_ttl)
    }

    /// Starts one worker process of adapter `A`; it runs one burst at each of
    /// `phases` (wall-clock times).
    pub fn spawn<A: Adapter>(&self, phases: &[SystemTime]) -> Worker {
        let phases: Vec<String> = phases
            .iter()
            .map(|at| {
                at.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis()
                    .to_string()
            })
            .collect();
        let child = Command::new(&self.binary)
            .args(["fleet_worker", "--exact", "--nocapture", "--test-threads", "1"])
            .env(WORKER, A::NAME)
            .env("CC_FLEET_REDIS", self.redis.join(","))
            .env("CC_FLEET_CLUSTER", if self.cluster { "1" } else { "0" })
            .env("CC_FLEET_LOCK_TTL_MS", self.lock_ttl.as_millis().to_string())
            .env("CC_FLEET_ENDPOINT", &self.endpoint)
            .env("CC_FLEET_CLIENT_ID", &self.client_id)
            .env("CC_FLEET_CLIENT_SECRET", &self.client_secret)
            .env("CC_FLEET_PHASES", phases.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test binary starts again as a worker");
        Worker { child }
    }
}

/// A running worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
}

impl Worker {
    /// Kills it (`SIGKILL`) wherever it is.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for it to finish and returns its bursts, in order.
    ///
    /// # Panics
    /// When it exits unsuccessfully.
    pub fn wait(mut self) -> Vec<Burst> {
        let mut output = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut output);
        }
        let status = self.child.wait().expect("the worker exits");
        assert!(status.success(), "worker failed: {output}");
        output.lines().filter_map(Burst::parse).collect()
    }
}

/// What one burst of [`THREADS`] `token()` calls in one worker got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Burst {
    /// Calls that returned a token.
    pub ok: usize,
    /// The errors of the others.
    pub errors: Vec<String>,
    /// The distinct tokens returned.
    pub tokens: BTreeSet<String>,
    /// The longest call.
    pub slowest: Duration,
}

impl Burst {
    fn parse(line: &str) -> Option<Burst> {
        // libtest prints `test fleet_worker ... ` without a newline first.
        let rest = &line[line.find("fleet-phase ")? + "fleet-phase ".len()..];
        let mut burst = Burst::default();
        for field in rest.split(' ') {
            let (name, value) = field.split_once('=')?;
            match name {
                "ok" => burst.ok = value.parse().ok()?,
                "slowest_us" => burst.slowest = Duration::from_micros(value.parse().ok()?),
                "tokens" => burst.tokens = value.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
                "errors" => burst.errors = value.split('|').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
                _ => {}
            }
        }
        Some(burst)
    }
}

fn config(endpoint: &str, client_id: &str, client_secret: &str) -> Config {
    Config::builder(client_id, client_secret)
        .token_endpoint(endpoint)
        .jitter_seed(7)
        .build()
        .expect("a valid fleet config")
}

fn store(redis: &[String], cluster: bool, lock_ttl: Duration) -> RedisStore {
    let mut builder = RedisStore::builder(redis[0].clone()).lock_ttl(lock_ttl);
    if cluster {
        builder = builder.cluster();
        for node in &redis[1..] {
            builder = builder.cluster_node(node.clone());
        }
    }
    builder.build().expect("a valid Redis store")
}

/// The worker's body: returns at once unless this process was started by
/// [`Fleet::spawn`].
pub fn worker_main() {
    let Ok(adapter) = std::env::var(WORKER) else { return };
    match adapter.as_str() {
        "blocking" => run::<Blocking>(),
        "tokio" => run::<Tokio>(),
        other => panic!("unknown adapter {other}"),
    }
}

fn run<A: Adapter>() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let redis: Vec<String> = var("CC_FLEET_REDIS")
        .split(',')
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    let lock_ttl = Duration::from_millis(var("CC_FLEET_LOCK_TTL_MS").parse().expect("a number"));
    let store = match redis.is_empty() {
        true => StoreChoice::None,
        false => StoreChoice::Redis(store(&redis, var("CC_FLEET_CLUSTER") == "1", lock_ttl)),
    };
    let config = config(
        &var("CC_FLEET_ENDPOINT"),
        &var("CC_FLEET_CLIENT_ID"),
        &var("CC_FLEET_CLIENT_SECRET"),
    );
    let client = A::build(
        config,
        Options {
            store,
            ..Options::default()
        },
    );
    for (index, at) in var("CC_FLEET_PHASES").split(',').enumerate() {
        let at = UNIX_EPOCH + Duration::from_millis(at.parse().expect("a time"));
        if let Ok(wait) = at.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
        let barrier = Arc::new(Barrier::new(THREADS));
        let calls: Vec<_> = (0..THREADS)
            .map(|_| {
                let (client, barrier) = (client.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    let result = A::token(&client);
                    (result.map(|t| t.secret().to_owned()), started.elapsed())
                })
            })
            .collect();
        let mut burst = Burst::default();
        for call in calls {
            let (result, took) = call.join().expect("a caller thread");
            burst.slowest = burst.slowest.max(took);
            match result {
                Ok(token) => {
                    burst.ok += 1;
                    burst.tokens.insert(token);
                }
                Err(error) => burst.errors.push(error.to_string().replace([' ', '|', '='], "_")),
            }
        }
        println!(
            "fleet-phase index={index} ok={} slowest_us={} tokens={} errors={}",
            burst.ok,
            burst.slowest.as_micros(),
            burst.tokens.iter().cloned().collect::<Vec<_>>().join(","),
            burst.errors.join("|"),
        );
    }
}
