//! The store on a synchronous connection, for `client-credentials-blocking`.
//!
//! The connection lives on a thread of its own, which the calling thread
//! waits for with the store's timeout: the redis crate bounds each socket
//! read, not a whole reply (a server trickling bytes, a cluster redirecting
//! from node to node would hold the caller indefinitely). After a timeout
//! the thread and its connection are abandoned; the thread ends once its
//! call returns.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use client_credentials::{AccessToken, Config, SharedBackoff, Timestamp};
use client_credentials_common::FleetTurn;
use redis::{Cmd, RedisError, RedisResult, Value};

use crate::fleet::{self, Operation, Step};
use crate::store::{RedisStoreError, Shared, Target};

/// The thread holding a store's connection (to a server or a cluster): it
/// runs one command at a time, in the order sent.
pub(crate) struct SyncConnection {
    commands: Sender<Cmd>,
    replies: Receiver<RedisResult<Value>>,
}

impl SyncConnection {
    fn start(target: Target, timeout: Duration) -> io::Result<SyncConnection> {
        let (commands, inbox) = mpsc::channel::<Cmd>();
        let (outbox, replies) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("client-credentials-redis".to_owned())
            .spawn(move || serve(&target, timeout, &inbox, &outbox))?;
        Ok(SyncConnection { commands, replies })
    }

    /// Sends `cmd` and waits for its reply at most `timeout`.
    fn query(&self, cmd: &Cmd, timeout: Duration) -> RedisResult<Value> {
        let gone = || {
            RedisError::from(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the Redis connection thread stopped",
            ))
        };
        self.commands.send(cmd.clone()).map_err(|_| gone())?;
        match self.replies.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "Redis did not answer in time",
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

/// The connection thread: connects when needed, runs each command, hands
/// back its reply; ends when the store drops it (or abandoned it).
fn serve(target: &Target, timeout: Duration, inbox: &Receiver<Cmd>, outbox: &SyncSender<RedisResult<Value>>) {
    let mut connection: Option<Box<dyn redis::ConnectionLike + Send>> = None;
    for cmd in inbox {
        let result = match &mut connection {
            Some(connection) => cmd.query::<Value>(&mut **connection),
            None => connect(target, timeout).and_then(|fresh| cmd.query::<Value>(&mut **connection.insert(fresh))),
        };
        if result.as_ref().is_err_and(|error| error.code().is_none()) {
            connection = None;
        }
        if outbox.send(result).is_err() {
            return;
        }
    }
}

fn connect(target: &Target, timeout: Duration) -> RedisResult<Box<dyn redis::ConnectionLike + Send>> {
    let half = timeout / 2;
    match target {
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

/// Sends `cmd` within the store's timeout, connecting first if needed;
/// drops the connection and leaves Redis alone for a while after a failure
/// to reach it.
fn query(shared: &Shared, cmd: &Cmd) -> RedisResult<Value> {
    shared.check_available()?;
    let mut slot = shared.sync_conn.lock().unwrap_or_else(PoisonError::into_inner);
    let connection = match &mut *slot {
        Some(connection) => connection,
        None => slot.insert(SyncConnection::start(shared.target.clone(), shared.timeout)?),
    };
    let result = connection.query(cmd, shared.timeout);
    let result = result.and_then(fleet::capped);
    // A reply over the limit: whatever sent it is not to be read further.
    if shared.record(&result)
        || result
            .as_ref()
            .is_err_and(|error| error.code() == Some(crate::store::TOO_LARGE))
    {
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

pub(crate) fn evict(
    shared: &Shared,
    config: &Config,
    token: &AccessToken,
    backoff: Option<&SharedBackoff>,
) -> io::Result<()> {
    run(shared, fleet::evict(shared, config, token, backoff))
}

pub(crate) fn begin_fetch(shared: &Shared, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
    run(shared, fleet::begin_fetch(shared, config, now))
}

impl crate::RedisStore {
    /// Whether the store is reachable now: one trivial script (`EVAL`, so
    /// an ACL user limited to the store's commands may run it) on a fresh
    /// connection, bounded by the store's [`timeout`](crate::RedisStoreBuilder::timeout),
    /// whatever happened before; a refused password is an error too. For a check at start: a store that cannot
    /// be reached never fails a token request, it only costs the fleet its
    /// sharing (and logs a warning naming the server). Feature `blocking`;
    /// with `tokio`, [`check_async`](Self::check_async).
    ///
    /// ```no_run
    /// let store = client_credentials_redis::RedisStore::builder("redis://127.0.0.1:6379").build()?;
    /// if let Err(error) = store.check() {
    ///     eprintln!("{error}"); // names the server, never its password
    /// }
    /// # Ok::<(), client_credentials_redis::RedisStoreError>(())
    /// ```
    pub fn check(&self) -> Result<(), RedisStoreError> {
        let shared = &self.shared;
        let result = SyncConnection::start(shared.target.clone(), shared.timeout)
            .map_err(RedisError::from)
            .and_then(|connection| connection.query(&crate::fleet::probe(), shared.timeout));
        shared.record(&result);
        result.map(drop).map_err(|error| RedisStoreError::Unreachable {
            servers: shared.server_list(),
            reason: error.to_string(),
        })
    }
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

    fn evict(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        evict(&self.shared, config, token, None)
    }

    fn evict_rejected(&self, config: &Config, token: &AccessToken, backoff: Option<&SharedBackoff>) -> io::Result<()> {
        evict(&self.shared, config, token, backoff)
    }

    fn begin_fetch(&self, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
        begin_fetch(&self.shared, config, now)
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
    use crate::{RedisStore, RedisStoreError};

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
        assert!(matches!(turn, Ok(FleetTurn::Fetch)), "{turn:?}");
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
                    match begin_fetch(&store.shared, &config, fleet::wall_now()).unwrap() {
                        FleetTurn::Use(token) => token.secret().to_owned(),
                        FleetTurn::Fetch => {
                            std::thread::sleep(Duration::from_millis(50));
                            let fetched = token("the-one", Duration::from_secs(600));
                            save(&store.shared, &config, &fetched).unwrap();
                            end_fetch(&store.shared, &config);
                            "fetched".to_owned()
                        }
                        FleetTurn::HoldBack(backoff) => panic!("no rejection: {backoff:?}"),
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
            matches!(begin_fetch(shared, &config, fleet::wall_now()), Ok(FleetTurn::Use(t)) if t == shared_token),
            "sharing resumed"
        );
    }

    /// A client whose only credential is public (mutual TLS, an empty
    /// secret): its values would be sealed under a key anyone can derive.
    fn secretless() -> Vec<Config> {
        let endpoint = "https://auth.example.com/token";
        vec![
            Config::builder("fleet-client", "")
                .token_endpoint(endpoint)
                .auth(client_credentials::ClientAuth::TlsClientAuth)
                .build()
                .unwrap(),
            Config::builder("fleet-client", "")
                .token_endpoint(endpoint)
                .build()
                .unwrap(),
        ]
    }

    /// The [`RedisStoreError`] inside a store call's `io::Error`.
    fn typed(error: io::Error) -> Option<RedisStoreError> {
        error.get_ref()?.downcast_ref::<RedisStoreError>().cloned()
    }

    #[test]
    fn a_secretless_client_without_an_encryption_key_reads_and_writes_nothing() {
        let server = RedisServer::start();
        let store = store(&server);
        let required = Some(RedisStoreError::EncryptionKeyRequired);
        for config in secretless() {
            let key = store.key(&config);
            assert_eq!(store.check_config(&config), Err(RedisStoreError::EncryptionKeyRequired));
            let saved = save(&store.shared, &config, &token("open", Duration::from_secs(600)));
            assert_eq!(typed(saved.unwrap_err()), required);
            assert_eq!(server.cli(&["exists", &key]), "0", "nothing written");
            assert_eq!(typed(load(&store.shared, &config).unwrap_err()), required);
            let turn = begin_fetch(&store.shared, &config, fleet::wall_now());
            assert_eq!(typed(turn.unwrap_err()), required);
            assert_eq!(server.cli(&["exists", &format!("{key}:lock")]), "0", "no lock taken");
            end_fetch(&store.shared, &config);

            // With a key of its own, the same client shares sealed tokens.
            let keyed = RedisStore::builder(server.url())
                .encryption_key([9u8; 32])
                .build()
                .unwrap();
            keyed.check_config(&config).unwrap();
            let shared = token("sealed", Duration::from_secs(600));
            save(&keyed.shared, &config, &shared).unwrap();
            assert_eq!(load(&keyed.shared, &config).unwrap(), Some(shared));
            assert!(!server.cli(&["get", &key]).contains("sealed"));
            server.cli(&["del", &key]);
        }
    }

    #[test]
    fn a_rotated_key_opens_old_values_and_reseals_on_the_next_write() {
        let server = RedisServer::start();
        let config = config();
        let keyed = |key: u8, previous: Option<u8>| {
            let mut builder = RedisStore::builder(server.url()).encryption_key([key; 32]);
            if let Some(previous) = previous {
                builder = builder.previous_encryption_key([previous; 32]);
            }
            builder.build().unwrap()
        };
        let (old, rotating, new) = (keyed(1, None), keyed(2, Some(1)), keyed(2, None));
        let before = token("before", Duration::from_secs(600));
        save(&old.shared, &config, &before).unwrap();
        assert_eq!(load(&rotating.shared, &config).unwrap(), Some(before.clone()));
        assert_eq!(load(&new.shared, &config).unwrap(), None);
        // A token sealed under the old key is evicted by a rotating process.
        evict(&rotating.shared, &config, &before, None).unwrap();
        assert_eq!(server.cli(&["exists", &rotating.key(&config)]), "0");

        save(&old.shared, &config, &before).unwrap();
        let after = token("after", Duration::from_secs(900));
        save(&rotating.shared, &config, &after).unwrap();
        assert_eq!(load(&new.shared, &config).unwrap(), Some(after.clone()));
        assert_eq!(load(&old.shared, &config).unwrap(), None);
    }

    #[test]
    fn an_eviction_deletes_only_the_rejected_token() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let key = store.key(&config);
        let stale = token("stale", Duration::from_secs(300));
        let newer = token("newer", Duration::from_secs(600));
        save(&store.shared, &config, &newer).unwrap();
        evict(&store.shared, &config, &stale, None).unwrap();
        assert_eq!(server.cli(&["exists", &key]), "1", "the newer token stays");
        evict(&store.shared, &config, &newer, None).unwrap();
        assert_eq!(server.cli(&["exists", &key]), "0");
        // Anything else under the key is left for the next save to replace.
        server.cli(&["set", &key, "garbage"]);
        evict(&store.shared, &config, &newer, None).unwrap();
        assert_eq!(server.cli(&["get", &key]), "garbage");
    }

    #[test]
    fn a_rejection_back_off_is_written_with_the_eviction_and_held_by_the_fleet_turn() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let (key, held) = (store.key(&config), format!("{}:rejected", store.key(&config)));
        let now = fleet::wall_now();
        let backoff = SharedBackoff::new(now.saturating_add(Duration::from_secs(20)), 2);
        let rejected = token("rejected", Duration::from_secs(300));
        save(&store.shared, &config, &rejected).unwrap();
        evict(&store.shared, &config, &rejected, Some(&backoff)).unwrap();
        // One script: the token gone and the back-off there, sealed.
        assert_eq!(server.cli(&["exists", &key]), "0");
        assert_eq!(server.cli(&["exists", &held]), "1");
        // Bounded by the longest back-off any process obeys.
        let ttl: u64 = server.cli(&["pttl", &held]).parse().unwrap();
        assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
        match begin_fetch(&store.shared, &config, now) {
            Ok(FleetTurn::HoldBack(read)) => assert_eq!(read, backoff),
            other => panic!("{other:?}"),
        }
        // Over: the round takes the lock and fetches.
        let later = now.saturating_add(Duration::from_secs(21));
        assert!(matches!(
            begin_fetch(&store.shared, &config, later),
            Ok(FleetTurn::Fetch)
        ));
        end_fetch(&store.shared, &config);

        // A newer token stored meanwhile is served before any back-off.
        let newer = token("newer", Duration::from_secs(600));
        save(&store.shared, &config, &newer).unwrap();
        evict(&store.shared, &config, &rejected, Some(&backoff)).unwrap();
        assert_eq!(server.cli(&["exists", &key]), "1", "the newer token stays");
        assert!(matches!(begin_fetch(&store.shared, &config, now), Ok(FleetTurn::Use(t)) if t == newer));
    }

    #[test]
    fn a_forged_or_garbage_back_off_holds_nothing_back() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let held = format!("{}:rejected", store.key(&config));
        let now = fleet::wall_now();
        // Sealed for another client (a writer without this client's key).
        let other = RedisStore::builder(server.url()).build().unwrap();
        let forged = SharedBackoff::new(now.saturating_add(Duration::from_secs(3_600)), u32::MAX);
        let other_config = config_with_secret("another-secret");
        let victim = token("victim", Duration::from_secs(300));
        save(&other.shared, &other_config, &victim).unwrap();
        evict(&other.shared, &other_config, &victim, Some(&forged)).unwrap();
        let forged_key = format!("{}:rejected", other.key(&other_config));
        assert_eq!(server.cli(&["rename", &forged_key, &held]), "OK");
        assert!(matches!(begin_fetch(&store.shared, &config, now), Ok(FleetTurn::Fetch)));
        end_fetch(&store.shared, &config);
        for value in ["garbage", &"x".repeat(4_000)] {
            server.cli(&["set", &held, value]);
            assert!(
                matches!(begin_fetch(&store.shared, &config, now), Ok(FleetTurn::Fetch)),
                "{value:.20}"
            );
            end_fetch(&store.shared, &config);
        }
        // A key of another type.
        server.cli(&["del", &held]);
        server.cli(&["rpush", &held, "x"]);
        assert!(matches!(begin_fetch(&store.shared, &config, now), Ok(FleetTurn::Fetch)));
        end_fetch(&store.shared, &config);
    }

    #[test]
    fn check_reports_whether_the_store_answers_and_names_the_server_not_the_password() {
        // Only an ACL user limited to what the store sends.
        let mut server = RedisServer::start_with(&[
            "--user",
            "default",
            "off",
            "--user",
            "fleet",
            "on",
            ">hunter2",
            "~client-credentials:*",
            "+get",
            "+set",
            "+del",
            "+eval",
        ]);
        let url = server.url().replace("redis://", "redis://fleet:hunter2@");
        let store = RedisStore::builder(url).build().unwrap();
        store.check().unwrap();
        let wrong = RedisStore::builder(server.url().replace("redis://", "redis://fleet:wrong@"))
            .build()
            .unwrap();
        assert!(wrong.check().is_err());
        server.kill();
        let error = store.check().unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, RedisStoreError::Unreachable { .. }), "{error:?}");
        assert!(message.contains(&format!("127.0.0.1:{}", server.port())), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_late_writer_never_replaces_a_token_that_expires_later() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let newer = token("newer", Duration::from_secs(600));
        let older = token("older", Duration::from_secs(300));
        save(&store.shared, &config, &newer).unwrap();
        // The process whose lock expired mid-request writes last.
        save(&store.shared, &config, &older).unwrap();
        assert_eq!(load(&store.shared, &config).unwrap(), Some(newer.clone()));
        let later = token("later", Duration::from_secs(900));
        save(&store.shared, &config, &later).unwrap();
        assert_eq!(load(&store.shared, &config).unwrap(), Some(later));
    }

    #[test]
    fn a_token_without_expiry_is_stored_for_the_default_lifetime() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let forever = AccessToken::builder("no-expiry")
            .received_at(fleet::wall_now())
            .build()
            .unwrap();
        save(&store.shared, &config, &forever).unwrap();
        let ttl: i64 = server.cli(&["pttl", &store.key(&config)]).parse().unwrap();
        let lifetime = i64::try_from(config.default_lifetime().as_millis()).unwrap();
        assert!(ttl > lifetime - 10_000 && ttl <= lifetime, "{ttl}");
    }

    #[test]
    fn a_huge_stored_value_is_refused_and_replaced() {
        let server = RedisServer::start();
        let (store, config) = (store(&server), config());
        let key = store.key(&config);
        // 16 MiB under the token's key.
        server.cli(&["setrange", &key, "16777216", "x"]);
        let refused = load(&store.shared, &config).unwrap_err();
        assert!(matches!(typed(refused), Some(RedisStoreError::TooLarge { .. })));
        fetch_turn(&store.shared, &config);
        let fresh = token("replacement", Duration::from_secs(600));
        save(&store.shared, &config, &fresh).unwrap();
        end_fetch(&store.shared, &config);
        assert_eq!(load(&store.shared, &config).unwrap(), Some(fresh));
    }

    /// A server that answers every connection with the start of a huge
    /// bulk string, then one byte every 50 ms (each socket read succeeds in
    /// time), for at most 20 s.
    fn trickling_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    use std::io::Write;
                    let _ = stream.write_all(b"$1000000000\r\n");
                    for _ in 0..400 {
                        if stream.write_all(b"x").is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                });
            }
        });
        format!("redis://{address}")
    }

    #[test]
    fn a_trickling_server_costs_at_most_the_timeout_on_every_connection_kind() {
        let url = trickling_server();
        for cluster in [false, true] {
            let mut builder = RedisStore::builder(url.clone()).timeout(Duration::from_millis(400));
            if cluster {
                builder = builder.cluster();
            }
            let store = builder.build().unwrap();
            let (done, finished) = std::sync::mpsc::channel();
            let started = Instant::now();
            std::thread::spawn(move || {
                let _ = done.send(load(&store.shared, &config()).is_err());
            });
            let failed = finished.recv_timeout(Duration::from_secs(3));
            assert_eq!(failed, Ok(true), "cluster: {cluster}");
            assert!(
                started.elapsed() < Duration::from_millis(1_000),
                "{:?}",
                started.elapsed()
            );
        }
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
