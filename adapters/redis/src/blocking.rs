//! The store on a synchronous connection, for `client-credentials-blocking`.

use std::io;
use std::time::Instant;

use client_credentials::{AccessToken, Config, Timestamp};
use client_credentials_common::FleetTurn;
use redis::{Cmd, RedisResult, Value};

use crate::fleet::{self, Next, Round};
use crate::store::{io_error, Shared, Target};

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

pub(crate) fn load(shared: &Shared, config: &Config) -> io::Result<Option<AccessToken>> {
    let keys = shared.keys(config);
    match query(shared, &fleet::get(&keys)) {
        Ok(reply) => Ok(fleet::open_reply(&shared.sealer(config), &keys, reply)),
        Err(error) if fleet::is_foreign(&error) => Ok(None),
        Err(error) => Err(io_error(error)),
    }
}

pub(crate) fn save(shared: &Shared, config: &Config, token: &AccessToken) -> io::Result<()> {
    let keys = shared.keys(config);
    let value = shared.sealer(config).seal(&keys.token, token)?;
    match fleet::set(&keys, value, token, fleet::wall_now()) {
        Some(cmd) => query(shared, &cmd).map(drop).map_err(io_error),
        None => Ok(()),
    }
}

pub(crate) fn delete(shared: &Shared, config: &Config) -> io::Result<()> {
    query(shared, &fleet::delete(&shared.keys(config)))
        .map(drop)
        .map_err(io_error)
}

/// `Some(token)`: another process wrote a fresh one; `None`: fetch.
pub(crate) fn begin_fetch(shared: &Shared, config: &Config, now: Timestamp) -> Option<AccessToken> {
    let keys = shared.keys(config);
    let mut round = Round::new(config, shared.sealer(config), &keys, shared.settings, now);
    let started = Instant::now();
    loop {
        let reply = match query(shared, &round.command()) {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%error, "no fleet coordination for this token request");
                return None;
            }
        };
        match round.on_reply(reply, started.elapsed()) {
            Next::Send => {}
            Next::Sleep(pause) => std::thread::sleep(pause),
            Next::Done(turn) => return shared.finish(&keys, turn),
        }
    }
}

pub(crate) fn end_fetch(shared: &Shared, config: &Config) {
    let keys = shared.keys(config);
    if let Some(owner) = shared.take_owner(&keys) {
        if let Err(error) = query(shared, &fleet::release(&keys, &owner)) {
            // The lock expires by itself after its TTL.
            tracing::debug!(%error, "could not release the fleet lock");
        }
    }
}

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
        Ok(match begin_fetch(&self.shared, config, now) {
            Some(token) => FleetTurn::Use(token),
            None => FleetTurn::Fetch,
        })
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
            assert!(begin_fetch(shared, &config, fleet::wall_now()).is_none());
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
                        Some(token) => token.secret().to_owned(),
                        None => {
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
        let (dead, alive) = (store(&server), store(&server));
        assert!(begin_fetch(&dead.shared, &config, fleet::wall_now()).is_none());
        // `dead` never ends its round.
        let started = Instant::now();
        assert!(begin_fetch(&alive.shared, &config, fleet::wall_now()).is_none());
        let waited = started.elapsed();
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
        let (first, second) = (store(&server), store(&server));
        assert!(begin_fetch(&first.shared, &config, fleet::wall_now()).is_none());
        let waiter = {
            let (shared, config) = (second.shared.clone(), config.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                (begin_fetch(&shared, &config, fleet::wall_now()), started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        end_fetch(&first.shared, &config); // failed: nothing saved
        let (turn, waited) = waiter.join().unwrap();
        assert!(turn.is_none());
        assert!(waited < Duration::from_millis(300), "{waited:?}");
    }

    #[test]
    fn a_dead_or_frozen_redis_delays_a_fetch_by_at_most_the_timeout_and_sharing_resumes() {
        let mut server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let shared = &store.shared;
        save(shared, &config, &token("before", Duration::from_secs(600))).unwrap();

        server.pause();
        let started = Instant::now();
        assert!(begin_fetch(shared, &config, fleet::wall_now()).is_none());
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        // Left alone for a while: no delay at all.
        let started = Instant::now();
        assert!(load(shared, &config).is_err());
        assert!(begin_fetch(shared, &config, fleet::wall_now()).is_none());
        assert!(started.elapsed() < Duration::from_millis(20), "{:?}", started.elapsed());
        server.resume();

        server.kill();
        std::thread::sleep(Duration::from_millis(1_100));
        let started = Instant::now();
        assert!(begin_fetch(shared, &config, fleet::wall_now()).is_none());
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );

        server.restart();
        std::thread::sleep(Duration::from_millis(1_100));
        let shared_token = token("after", Duration::from_secs(600));
        save(shared, &config, &shared_token).unwrap();
        assert_eq!(
            begin_fetch(shared, &config, fleet::wall_now()),
            Some(shared_token),
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
        let started = Instant::now();
        assert!(begin_fetch(&untrusting.shared, &config, fleet::wall_now()).is_none());
        assert!(started.elapsed() < Duration::from_millis(600));
    }
}
