//! The store on a synchronous connection, for `client-credentials-blocking`.

use std::io;
use std::time::Instant;

use client_credentials::{AccessToken, Config, Timestamp};
use client_credentials_common::FleetTurn;
use redis::{Cmd, RedisResult, Value};

use crate::fleet::{self, Operation, Step};
use crate::store::{Shared, Target};

/// One connection per store, to a server or a cluster.
pub(crate) type SyncConnection = Box<dyn redis::ConnectionLike + Send>;

fn connect(shared: &Shared) -> RedisResult<SyncConnection> {
    let half = shared.timeout / 2;
    match &shared.target {
        Target::Single(client) => {
            let connection = client.get_connection_with_timeout(half)?;
            connection.set_read_timeout(Some(half))?;
            connection.set_write_timeout(Some(half))?;
            Ok(Box::new(connection))
        }
        #[cfg(feature = "cluster")]
        Target::Cluster(client) => Ok(Box::new(client.get_connection()?)),
    }
}

/// Sends `cmd`, connecting first if needed; drops the connection and leaves
/// Redis alone for a while after a failure to reach it.
fn query(shared: &Shared, cmd: &Cmd) -> RedisResult<Value> {
    shared.check_available()?;
    let mut slot = shared
        .sync_conn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = match &mut *slot {
        Some(connection) => cmd.query::<Value>(&mut **connection),
        None => connect(shared).and_then(|connection| cmd.query::<Value>(&mut **slot.insert(connection))),
    };
    if shared.record(&result) {
        *slot = None;
    }
    result
}

/// Runs one store call: sends the commands it asks for, sleeps when it says.
fn run<O: Operation>(shared: &Shared, mut operation: O) -> O::Output {
    let started = Instant::now();
    let mut answer = None;
    loop {
        match operation.step(answer.take(), started.elapsed()) {
            Step::Send(cmd) => answer = Some(query(shared, &cmd)),
            Step::Sleep(pause) => std::thread::sleep(pause),
            Step::Done(output) => return output,
        }
    }
}

pub(crate) fn load(shared: &Shared, config: &Config) -> io::Result<Option<AccessToken>> {
    run(shared, fleet::load(shared, config))
}

pub(crate) fn save(shared: &Shared, config: &Config, token: &AccessToken) -> io::Result<()> {
    run(shared, fleet::save(shared, config, token, fleet::wall_now()))
}

pub(crate) fn delete(shared: &Shared, config: &Config) -> io::Result<()> {
    run(shared, fleet::delete(shared, config))
}

pub(crate) fn begin_fetch(shared: &Shared, config: &Config, now: Timestamp) -> FleetTurn {
    run(shared, fleet::begin_fetch(shared, config, now))
}

pub(crate) fn end_fetch(shared: &Shared, config: &Config) {
    run(shared, fleet::end_fetch(shared, config));
}

#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
impl client_credentials_common::TokenStore for crate::RedisStore {
    fn load(&self, config: &Config) -> io::Result<Option<AccessToken>> {
        load(&self.shared, config)
    }

    fn save(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        save(&self.shared, config, token)
    }

    fn delete(&self, config: &Config) -> io::Result<()> {
        delete(&self.shared, config)
    }

    fn begin_fetch(&self, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
        Ok(begin_fetch(&self.shared, config, now))
    }

    fn end_fetch(&self, config: &Config) {
        end_fetch(&self.shared, config);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use client_credentials_testkit::redis::RedisServer;

    use super::*;
    use crate::fixtures::{config, config_with_secret, token};
    use crate::RedisStore;

    fn store(server: &RedisServer) -> RedisStore {
        RedisStore::builder(server.url())
            .lock_ttl(Duration::from_millis(400))
            .build()
            .unwrap()
    }

    /// Asks for the fleet's turn, which must be this process's to fetch;
    /// returns how long the answer took.
    fn fetch_turn(shared: &Shared, config: &Config) -> Duration {
        let started = Instant::now();
        let turn = begin_fetch(shared, config, fleet::wall_now());
        assert!(matches!(turn, FleetTurn::Fetch), "{turn:?}");
        started.elapsed()
    }

    /// Two processes' stores, the first having taken the lock for `config`.
    fn two_with_the_first_holding_the_lock(server: &RedisServer, config: &Config) -> (RedisStore, RedisStore) {
        let (first, second) = (store(server), store(server));
        fetch_turn(&first.shared, config);
        (first, second)
    }

    #[test]
    fn a_saved_token_loads_sealed_with_its_remaining_lifetime_as_ttl_and_deletes() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let shared = &store.shared;
        assert!(load(shared, &config).unwrap().is_none());
        let saved = token("tok-abc", Duration::from_secs(600));
        save(shared, &config, &saved).unwrap();
        assert_eq!(load(shared, &config).unwrap(), Some(saved));
        let key = store.key(&config);
        let ttl: u64 = server.cli(&["pttl", &key]).parse().unwrap();
        assert!((590_000..=600_000).contains(&ttl), "{ttl}");
        assert!(!server.cli(&["get", &key]).contains("tok-abc"));
        delete(shared, &config).unwrap();
        assert!(load(shared, &config).unwrap().is_none());
    }

    #[test]
    fn corrupt_and_foreign_values_are_ignored_and_overwritten() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let shared = &store.shared;
        let key = store.key(&config);
        for setup in [vec!["set", &key, "garbage"], vec!["hset", &key, "f", "v"]] {
            server.cli(&setup);
            assert!(load(shared, &config).unwrap().is_none());
            fetch_turn(shared, &config);
            let fresh = token("replacement", Duration::from_secs(600));
            save(shared, &config, &fresh).unwrap();
            end_fetch(shared, &config);
            assert_eq!(load(shared, &config).unwrap(), Some(fresh));
            server.cli(&["del", &key]);
        }
        // Sealed for other credentials: as foreign as garbage.
        let other = config_with_secret("another-secret");
        save(shared, &other, &token("theirs", Duration::from_secs(600))).unwrap();
        assert!(load(shared, &config).unwrap().is_none());
    }

    #[test]
    fn one_of_many_processes_fetches_and_the_others_use_its_token() {
        let server = RedisServer::start();
        let config = config();
        let stores: Vec<RedisStore> = (0..8).map(|_| store(&server)).collect();
        let barrier = Arc::new(Barrier::new(stores.len()));
        let handles: Vec<_> = stores
            .into_iter()
            .map(|store| {
                let (config, barrier) = (config.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match begin_fetch(&store.shared, &config, fleet::wall_now()) {
                        FleetTurn::Use(token) => token.secret().to_owned(),
                        FleetTurn::Fetch => {
                            std::thread::sleep(Duration::from_millis(50));
                            let fetched = token("the-one", Duration::from_secs(600));
                            save(&store.shared, &config, &fetched).unwrap();
                            end_fetch(&store.shared, &config);
                            "fetched".to_owned()
                        }
                    }
                })
            })
            .collect();
        let mut results: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.sort();
        assert_eq!(results.iter().filter(|r| *r == "fetched").count(), 1, "{results:?}");
        assert_eq!(results.iter().filter(|r| *r == "the-one").count(), 7, "{results:?}");
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over_after_its_ttl() {
        let server = RedisServer::start();
        let config = config();
        let (dead, alive) = two_with_the_first_holding_the_lock(&server, &config);
        // `dead` never ends its round.
        let waited = fetch_turn(&alive.shared, &config);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_millis(800), "{waited:?}");
        let key = alive.key(&config);
        assert_eq!(server.cli(&["exists", &format!("{key}:lock")]), "1", "alive holds it");
        // The late `end_fetch` of the first holder leaves the new holder's lock.
        end_fetch(&dead.shared, &config);
        assert_eq!(server.cli(&["exists", &format!("{key}:lock")]), "1");
        end_fetch(&alive.shared, &config);
        assert_eq!(server.cli(&["exists", &format!("{key}:lock")]), "0");
    }

    #[test]
    fn a_failed_round_releases_the_lock_and_a_waiter_fetches() {
        let server = RedisServer::start();
        let config = config();
        let (first, second) = two_with_the_first_holding_the_lock(&server, &config);
        let waiter = {
            let (shared, config) = (second.shared.clone(), config.clone());
            std::thread::spawn(move || fetch_turn(&shared, &config))
        };
        std::thread::sleep(Duration::from_millis(50));
        end_fetch(&first.shared, &config); // failed: nothing saved
        let waited = waiter.join().unwrap();
        assert!(waited < Duration::from_millis(300), "{waited:?}");
    }

    #[test]
    fn a_dead_or_frozen_redis_delays_a_fetch_by_at_most_the_timeout_and_sharing_resumes() {
        let mut server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let shared = &store.shared;
        save(shared, &config, &token("before", Duration::from_secs(600))).unwrap();

        server.pause();
        let waited = fetch_turn(shared, &config);
        assert!(waited < Duration::from_millis(600), "{waited:?}");
        // Left alone for a while: no delay at all.
        let started = Instant::now();
        assert!(load(shared, &config).is_err());
        fetch_turn(shared, &config);
        assert!(started.elapsed() < Duration::from_millis(20), "{:?}", started.elapsed());
        server.resume();

        server.kill();
        std::thread::sleep(Duration::from_millis(1_100));
        let waited = fetch_turn(shared, &config);
        assert!(waited < Duration::from_millis(600), "{waited:?}");

        server.restart();
        std::thread::sleep(Duration::from_millis(1_100));
        let shared_token = token("after", Duration::from_secs(600));
        save(shared, &config, &shared_token).unwrap();
        assert!(
            matches!(begin_fetch(shared, &config, fleet::wall_now()), FleetTurn::Use(t) if t == shared_token),
            "sharing resumed"
        );
    }

    #[test]
    fn rediss_with_a_private_ca_round_trips_and_an_untrusted_server_is_only_a_delay() {
        let server = RedisServer::start_tls();
        let config = config();
        let trusting = RedisStore::builder(server.url())
            .tls_root_certificate(server.ca_certificate())
            .build()
            .unwrap();
        let saved = token("over-tls", Duration::from_secs(600));
        save(&trusting.shared, &config, &saved).unwrap();
        assert_eq!(load(&trusting.shared, &config).unwrap(), Some(saved));
        assert!(server.cli(&["exists", &trusting.key(&config)]) == "1");

        // The system roots do not know this CA: the handshake fails, and
        // the client fetches on its own at once.
        let untrusting = RedisStore::builder(server.url()).build().unwrap();
        assert!(load(&untrusting.shared, &config).is_err());
        assert!(fetch_turn(&untrusting.shared, &config) < Duration::from_millis(600));
    }
}
