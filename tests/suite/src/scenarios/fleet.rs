//! A fleet of processes on one Redis store (`client-credentials-redis`):
//! one token request per token lifetime for the whole fleet, and every
//! caller still gets a token when Redis or the lock holder dies. Each
//! worker is a separate OS process (see [`crate::fleet`]) with
//! [`THREADS`] threads calling `token()` at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use client_credentials_testkit::redis::{RedisCluster, RedisServer};
use client_credentials_testkit::{Fault, TestIssuer};

use crate::fleet::{Burst, Fleet, THREADS};
use crate::Adapter;

const PROCESSES: usize = 8;

fn fleet(issuer: &TestIssuer, redis: Vec<String>, cluster: bool, lock_ttl: Duration) -> Fleet {
    Fleet {
        redis,
        cluster,
        lock_ttl,
        endpoint: issuer.token_endpoint(),
        client_id: issuer.client_id(),
        client_secret: issuer.client_secret(),
        binary: std::env::current_exe().expect("the test binary"),
    }
}

fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

fn assert_all_served<A: Adapter>(bursts: &[Burst]) {
    for burst in bursts {
        assert_eq!(burst.ok, THREADS, "{}: {:?}", A::NAME, burst.errors);
    }
}

/// 8 processes × 16 threads start together with no token, then again once
/// the shared token has expired: one token request each time, and every
/// caller of a round gets the same token.
fn one_request_per_lifetime<A: Adapter>(redis: Vec<String>, cluster: bool) {
    // Three seconds: refreshed after 1.5 s, so a worker starting late
    // still finds the shared token fresh.
    let issuer = TestIssuer::builder().lifetime(3).start();
    let fleet = fleet(&issuer, redis, cluster, Duration::from_secs(2));
    let first = SystemTime::now() + Duration::from_millis(1_200);
    let expired = first + Duration::from_millis(3_300);
    let workers: Vec<_> = (0..PROCESSES).map(|_| fleet.spawn::<A>(&[first, expired])).collect();
    sleep_until(first + Duration::from_millis(1_000));
    assert_eq!(issuer.token_requests().len(), 1, "{}: cold start", A::NAME);
    let results: Vec<Vec<Burst>> = workers.into_iter().map(|w| w.wait()).collect();
    assert_eq!(issuer.token_requests().len(), 2, "{}: after expiry", A::NAME);
    for round in 0..2 {
        let bursts: Vec<Burst> = results.iter().map(|r| r[round].clone()).collect();
        assert_all_served::<A>(&bursts);
        let tokens: BTreeSet<&String> = bursts.iter().flat_map(|b| &b.tokens).collect();
        assert_eq!(tokens.len(), 1, "{}: round {round}: {tokens:?}", A::NAME);
    }
}

/// The fleet on one `redis-server`.
pub fn one_request_for_a_fleet_on_one_server<A: Adapter>() {
    let server = RedisServer::start();
    one_request_per_lifetime::<A>(vec![server.url()], false);
}

/// The fleet on a three-master Redis Cluster, each process given one node.
pub fn one_request_for_a_fleet_on_a_cluster<A: Adapter>() {
    let cluster = RedisCluster::start();
    one_request_per_lifetime::<A>(cluster.urls(), true);
}

/// Redis is killed while one process fetches for the fleet and the others
/// wait: every caller still gets a token, promptly.
pub fn every_caller_gets_a_token_when_redis_dies_mid_run<A: Adapter>() {
    let mut server = RedisServer::start();
    let issuer = TestIssuer::start();
    // The fleet's request takes a second: the others are waiting when Redis dies.
    issuer.push_fault(Fault::Delay(Duration::from_millis(1_000)));
    let fleet = fleet(&issuer, vec![server.url()], false, Duration::from_secs(5));
    let start = SystemTime::now() + Duration::from_millis(1_200);
    let workers: Vec<_> = (0..PROCESSES).map(|_| fleet.spawn::<A>(&[start])).collect();
    sleep_until(start + Duration::from_millis(300));
    server.kill();
    for worker in workers {
        let bursts = worker.wait();
        assert_all_served::<A>(&bursts);
        // Not the lock TTL (5 s): the waiters fetch as soon as Redis fails.
        assert!(
            bursts[0].slowest < Duration::from_secs(3),
            "{}: {:?}",
            A::NAME,
            bursts[0].slowest
        );
    }
    let requests = issuer.token_requests().len();
    assert!((2..=PROCESSES).contains(&requests), "{}: {requests}", A::NAME);
}

/// The process holding the fleet lock is killed mid-request: the others
/// take over once the lock expires and all get one new token.
pub fn others_recover_within_the_lock_ttl_when_the_lock_owner_dies<A: Adapter>() {
    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let lock_ttl = Duration::from_millis(1_500);
    let fleet = fleet(&issuer, vec![server.url()], false, lock_ttl);
    let lock = format!("{}:lock", fleet.store().key(&fleet.config()));
    let owner = fleet.spawn::<A>(&[SystemTime::now()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Killed once its request is at the issuer (which never answers it).
    while issuer.token_requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "{}: the first worker never sent its request",
            A::NAME
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        server.cli(&["exists", &lock]),
        "1",
        "{}: the first worker holds the lock",
        A::NAME
    );
    let locked_at = Instant::now();
    owner.kill();
    let start = SystemTime::now() + Duration::from_millis(300);
    let workers: Vec<_> = (1..PROCESSES).map(|_| fleet.spawn::<A>(&[start])).collect();
    let results: Vec<Vec<Burst>> = workers.into_iter().map(|w| w.wait()).collect();
    // Bounded by the lock TTL: a waiting caller waits at most what is left of
    // it (plus process start-up, on a busy machine).
    let recovered = locked_at.elapsed();
    assert!(
        recovered < lock_ttl + Duration::from_secs(5),
        "{}: {recovered:?}",
        A::NAME
    );
    let bursts: Vec<Burst> = results.into_iter().map(|mut r| r.remove(0)).collect();
    assert_all_served::<A>(&bursts);
    for burst in &bursts {
        assert!(
            burst.slowest < lock_ttl + Duration::from_secs(1),
            "{}: {:?}",
            A::NAME,
            burst.slowest
        );
    }
    let tokens: BTreeSet<&String> = bursts.iter().flat_map(|b| &b.tokens).collect();
    assert_eq!(tokens.len(), 1, "{}: {tokens:?}", A::NAME);
    // The dead owner's request and the one that replaced it.
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

fn redis_options(server: &RedisServer, issuer: &TestIssuer) -> (crate::Options, String) {
    let fleet = fleet(issuer, vec![server.url()], false, Duration::from_secs(2));
    let key = fleet.store().key(&fleet.config());
    let options = crate::Options {
        store: crate::StoreChoice::Redis(fleet.store()),
        ..crate::Options::default()
    };
    (options, key)
}

fn client<A: Adapter>(issuer: &TestIssuer, options: &crate::Options) -> A::Client {
    A::build(super::config(issuer).build().unwrap(), options.clone())
}

/// A token the resource server rejected is removed from Redis by
/// `invalidate`, so no process picks it up again; the next one is shared.
pub fn a_rejected_token_is_invalidated_fleet_wide<A: Adapter>() {
    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    let (options, key) = redis_options(&server, &issuer);
    let (one, two) = (client::<A>(&issuer, &options), client::<A>(&issuer, &options));
    let first = A::token(&one).unwrap();
    assert_eq!(A::token(&two).unwrap().secret(), first.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
    assert!(
        !server.cli(&["get", &key]).contains(first.secret()),
        "{}: sealed",
        A::NAME
    );

    A::invalidate(&one, &first);
    // The tokio client deletes in a task of its own: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.cli(&["exists", &key]) != "0" {
        assert!(Instant::now() < deadline, "{}: not deleted fleet-wide", A::NAME);
        std::thread::sleep(Duration::from_millis(5));
    }
    A::invalidate(&two, &first);
    let second = A::token(&two).unwrap();
    assert_ne!(second.secret(), first.secret(), "{}", A::NAME);
    assert_eq!(A::token(&one).unwrap().secret(), second.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

/// A process still holding a token the fleet has already replaced gets it
/// rejected: its eviction leaves the newer token another process stored, so
/// the fleet keeps sharing it and nothing is fetched again.
pub fn a_stale_rejection_never_deletes_a_newer_fleet_token<A: Adapter>() {
    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    let (options, key) = redis_options(&server, &issuer);
    let (one, two) = (client::<A>(&issuer, &options), client::<A>(&issuer, &options));
    let first = A::token(&one).unwrap();
    assert_eq!(A::token(&two).unwrap().secret(), first.secret(), "{}", A::NAME);
    // `two` sees `first` rejected and shares its replacement.
    A::invalidate(&two, &first);
    let deadline = Instant::now() + Duration::from_secs(2);
    let second = loop {
        let token = A::token(&two).unwrap();
        if token.secret() != first.secret() {
            break token;
        }
        assert!(Instant::now() < deadline, "{}: not replaced", A::NAME);
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
    // `one` still serves `first`; its rejection comes late.
    A::invalidate(&one, &first);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.cli(&["exists", &key]),
        "1",
        "{}: the newer token was deleted",
        A::NAME
    );
    assert_eq!(A::token(&one).unwrap().secret(), second.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

/// A client authenticating with a private key has no secret to seal its
/// tokens with: without an encryption key the store reads and writes
/// nothing for it (each client fetches on its own); with one, the fleet
/// shares the sealed token.
pub fn a_client_without_a_secret_shares_only_with_an_encryption_key<A: Adapter>() {
    use client_credentials::{ClientAuth, JwsAlgorithm, JwtKey};
    use client_credentials_redis::RedisStore;

    let server = RedisServer::start();
    let key = JwtKey::from_pem(super::assertions::EC_PEM, JwsAlgorithm::Es256)
        .unwrap()
        .with_key_id("ec-1");
    let issuer = TestIssuer::builder()
        .client("jwt-client", "unused-secret")
        .client_jwk("jwt-client", key.public_jwk())
        .auth_methods(["private_key_jwt"])
        .start();
    let config = client_credentials::Config::builder("jwt-client", "")
        .issuer(issuer.issuer_url())
        .auth(ClientAuth::PrivateKeyJwt(key))
        .jitter_seed(7)
        .build()
        .unwrap();
    let clients = |store: RedisStore| {
        let options = crate::Options {
            store: crate::StoreChoice::Redis(store),
            ..crate::Options::default()
        };
        (
            A::build(config.clone(), options.clone()),
            A::build(config.clone(), options),
        )
    };
    let unkeyed = RedisStore::builder(server.url()).build().unwrap();
    let name = unkeyed.key(&config);
    let (one, two) = clients(unkeyed);
    A::token(&one).unwrap();
    A::token(&two).unwrap();
    assert_eq!(issuer.token_requests().len(), 2, "{}: nothing shared", A::NAME);
    assert_eq!(server.cli(&["exists", &name]), "0", "{}: nothing written", A::NAME);

    let keyed = RedisStore::builder(server.url())
        .encryption_key([7u8; 32])
        .build()
        .unwrap();
    let (three, four) = clients(keyed);
    let shared = A::token(&three).unwrap();
    assert_eq!(A::token(&four).unwrap().secret(), shared.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    assert!(
        !server.cli(&["get", &name]).contains(shared.secret()),
        "{}: sealed",
        A::NAME
    );
}

/// Something else under the key (garbage, another type) is ignored and
/// replaced by the next token, which the fleet then shares.
pub fn a_corrupt_or_foreign_value_is_replaced<A: Adapter>() {
    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    let (options, key) = redis_options(&server, &issuer);
    for (round, setup) in [vec!["set", &key, "not a token"], vec!["rpush", &key, "x"]]
        .into_iter()
        .enumerate()
    {
        server.cli(&["del", &key]);
        server.cli(&setup);
        let token = A::token(&client::<A>(&issuer, &options)).unwrap();
        assert_eq!(issuer.token_requests().len(), round + 1, "{}", A::NAME);
        assert_eq!(server.cli(&["type", &key]), "string", "{}", A::NAME);
        let again = A::token(&client::<A>(&issuer, &options)).unwrap();
        assert_eq!(again.secret(), token.secret(), "{}: shared", A::NAME);
        assert_eq!(issuer.token_requests().len(), round + 1, "{}", A::NAME);
    }
}

/// A frozen Redis (connections open, no answers) delays a token request by
/// at most the store's timeout (500 ms); sharing resumes when it answers.
pub fn a_frozen_redis_delays_a_request_by_at_most_the_timeout<A: Adapter>() {
    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    let (options, _) = redis_options(&server, &issuer);
    server.pause();
    let started = Instant::now();
    let token = A::token(&client::<A>(&issuer, &options));
    let took = started.elapsed();
    server.resume();
    assert!(token.is_ok(), "{}: {token:?}", A::NAME);
    // load and begin_fetch: the first times out, the second is skipped.
    assert!(took < Duration::from_millis(1_500), "{}: {took:?}", A::NAME);
    std::thread::sleep(Duration::from_millis(1_100));
    let shared = A::token(&client::<A>(&issuer, &options)).unwrap();
    let again = A::token(&client::<A>(&issuer, &options)).unwrap();
    assert_eq!(shared.secret(), again.secret(), "{}: sharing again", A::NAME);
}

/// For BENCHMARKS.md: token requests a fleet of `processes` processes (16
/// threads each) sends per token lifetime, with the Redis store or without
/// any store: the cold start, then the refresh after expiry. Returns
/// `(cold, refresh)`.
pub fn requests_per_lifetime<A: Adapter>(processes: usize, with_store: bool) -> (usize, usize) {
    let server = RedisServer::start();
    let issuer = TestIssuer::builder().lifetime(4).start();
    let redis = if with_store { vec![server.url()] } else { Vec::new() };
    let fleet = fleet(&issuer, redis, false, Duration::from_secs(2));
    // Room for many processes to start before the first burst.
    let first = SystemTime::now() + Duration::from_millis(500 + 100 * processes as u64);
    let expired = first + Duration::from_millis(4_300);
    let workers: Vec<_> = (0..processes).map(|_| fleet.spawn::<A>(&[first, expired])).collect();
    sleep_until(first + Duration::from_millis(2_000));
    let cold = issuer.token_requests().len();
    for worker in workers {
        assert_all_served::<A>(&worker.wait());
    }
    (cold, issuer.token_requests().len() - cold)
}

/// Two processes on one Redis store call a resource that answers `401
/// invalid_token` to every token, on one simulated clock: the fleet backs
/// off as one client. 20 calls in a burst through each process's authorised
/// client cost at most 3 token requests for the fleet, every call returning
/// at once with the `401` or the back-off's error; callers that keep
/// calling in both processes cost at most 10 token requests in the first
/// simulated minute and 2 in any minute after, for the whole fleet. The
/// process whose resource rejects a token on probation writes its back-off
/// with the eviction; the other's fleet turn reads it and fails the round
/// without a request.
pub fn a_fleet_backs_off_a_resource_rejecting_every_token_as_one_client<A: Adapter>() {
    use std::sync::{mpsc, Arc, Mutex};

    use client_credentials::{AccessToken, Timestamp};
    use client_credentials_blocking::ManualClock;
    use client_credentials_testkit::TestResourceServer;

    use super::parity::{clock_now, Ticker};
    use crate::authorized::{Authorized, Body, Origins};

    let server = RedisServer::start();
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    api.reject_all(true);
    let origins = Origins::Only(vec![api.base_url()]);
    let url = format!("{}/things", api.resource());
    let flavours = A::authorized(&client::<A>(&issuer, &crate::Options::default()), &origins).len();
    for flavour in 0..flavours {
        server.cli(&["flushall"]);
        let before = issuer.token_requests().len();
        let clock = ManualClock::starting_now();
        // Each token the fleet fetched, at the simulated time a process
        // first saw it (the clock stands still, or nearly, during a request).
        let fetched: Arc<Mutex<Vec<(String, Timestamp)>>> = Arc::default();
        let (seen, at) = (fetched.clone(), clock.clone());
        let options = crate::Options {
            clock: Some(clock.clone()),
            on_update: Some(Arc::new(move |token: &AccessToken| {
                let mut seen = seen.lock().unwrap();
                if !seen.iter().any(|(secret, _)| secret == token.secret()) {
                    seen.push((token.secret().to_owned(), clock_now(&at)));
                }
            })),
            ..crate::Options::default()
        };
        // Two processes: their own clients and connections, one Redis. A
        // generous timeout and lock TTL: on a loaded machine a slow answer
        // must not count as Redis trouble, after which a process fetches
        // on its own.
        let processes: Vec<(A::Client, Arc<dyn Authorized>)> = (0..2)
            .map(|_| {
                let store = client_credentials_redis::RedisStore::builder(server.url())
                    .timeout(Duration::from_secs(10))
                    .lock_ttl(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let options = crate::Options {
                    store: crate::StoreChoice::Redis(store),
                    ..options.clone()
                };
                let client = client::<A>(&issuer, &options);
                let authorized = Arc::from(A::authorized(&client, &origins).swap_remove(flavour));
                (client, authorized)
            })
            .collect();
        let name = format!("{} {}", A::NAME, processes[0].1.name());

        // 20 calls each, one after another in each process, both at once,
        // at one simulated instant: a call held for a back-off never returns.
        let (done, results) = mpsc::channel();
        for (_, authorized) in &processes {
            let (done, authorized, url) = (done.clone(), authorized.clone(), url.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let _ = done.send(authorized.send("GET", &url, Body::Empty));
                }
            });
        }
        for _ in 0..40 {
            let result = results
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{name}: a call was held"));
            match result {
                Ok(401) => {}
                Err(error) if error.contains("rejected") => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        let burst = issuer.token_requests().len() - before;
        eprintln!("{name}: 2 processes × 20 calls in a burst, {burst} token requests");
        assert!(burst <= 3, "{name}: {burst} token requests for the fleet's 40 calls");

        // Four callers in each process keep calling for three simulated minutes.
        let start = clock_now(&clock);
        let minute = move |n: u64| start.saturating_add(Duration::from_secs(60 * n));
        let ticker = Ticker::start(&clock);
        let callers: Vec<_> = processes
            .iter()
            .flat_map(|(_, authorized)| std::iter::repeat_n(authorized, 4))
            .map(|authorized| {
                let (authorized, clock, url) = (authorized.clone(), clock.clone(), url.clone());
                std::thread::spawn(move || {
                    while clock_now(&clock) < minute(3) {
                        let _ = authorized.send("GET", &url, Body::Empty);
                        std::thread::sleep(Duration::from_micros(200));
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().unwrap();
        }
        drop(ticker);
        let times: Vec<Timestamp> = fetched.lock().unwrap().iter().map(|(_, at)| *at).collect();
        assert_eq!(
            times.len(),
            issuer.token_requests().len() - before,
            "{name}: every token request is seen"
        );
        let first = times.iter().filter(|t| **t < minute(1)).count();
        let later = times
            .iter()
            .filter(|t| **t >= minute(1))
            .map(|t| {
                times
                    .iter()
                    .filter(|u| *u >= t && **u < t.saturating_add(Duration::from_secs(60)))
                    .count()
            })
            .max()
            .unwrap_or(0);
        eprintln!("{name}: the fleet's token requests: {first} in the first simulated minute, at most {later} in any minute after");
        assert!(
            first <= 10,
            "{name}: {first} token requests in the first minute: {times:?}"
        );
        assert!(
            later <= 2,
            "{name}: {later} token requests within a later minute: {times:?}"
        );
    }
}
