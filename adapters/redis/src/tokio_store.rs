//! The store on an async multiplexed connection, for `client-credentials-tokio`.

use std::io;
use std::sync::PoisonError;

use client_credentials::{AccessToken, Config, SharedBackoff, Timestamp};
use client_credentials_common::{BoxFuture, FleetTurn};
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::time::Instant;

use crate::fleet::{self, Operation, Step};
use crate::store::{RedisStoreError, Shared, Target, TOO_LARGE};

/// A multiplexed connection (cheap to clone: clones share it).
#[derive(Clone)]
pub(crate) enum AsyncConnection {
    Single(redis::aio::MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

async fn connect(shared: &Shared) -> RedisResult<AsyncConnection> {
    let half = shared.timeout / 2;
    match &shared.target {
        Target::Single(client) => {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(half))
                .set_response_timeout(Some(half));
            Ok(AsyncConnection::Single(
                client.get_multiplexed_async_connection_with_config(&config).await?,
            ))
        }
        #[cfg(feature = "cluster")]
        Target::Cluster(client) => Ok(AsyncConnection::Cluster(client.get_async_connection().await?)),
    }
}

fn slot(shared: &Shared) -> std::sync::MutexGuard<'_, Option<AsyncConnection>> {
    shared.async_conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends `cmd` within the store's timeout, connecting first if needed; drops
/// the connection and leaves Redis alone for a while after a failure to
/// reach it.
async fn query(shared: &Shared, cmd: &Cmd) -> RedisResult<Value> {
    shared.check_available()?;
    let existing = slot(shared).clone();
    let attempt = async {
        let mut connection = match existing {
            Some(connection) => connection,
            None => {
                let connection = connect(shared).await?;
                *slot(shared) = Some(connection.clone());
                connection
            }
        };
        match &mut connection {
            AsyncConnection::Single(connection) => cmd.query_async::<Value>(connection).await,
            #[cfg(feature = "cluster")]
            AsyncConnection::Cluster(connection) => cmd.query_async::<Value>(connection).await,
        }
    };
    let result = match tokio::time::timeout(shared.timeout, attempt).await {
        Ok(result) => result.and_then(fleet::capped),
        Err(_) => Err(RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    };
    // A reply over the limit: whatever sent it is not to be read further.
    if shared.record(&result) || result.as_ref().is_err_and(|error| error.code() == Some(TOO_LARGE)) {
        *slot(shared) = None;
    }
    result
}

/// Runs one store call: sends the commands it asks for, sleeps when it says.
async fn run<O: Operation>(shared: &Shared, mut operation: O) -> O::Output {
    let started = Instant::now();
    let mut answer = None;
    loop {
        match operation.step(answer.take(), started.elapsed()) {
            Step::Send(cmd) => answer = Some(query(shared, &cmd).await),
            Step::Sleep(pause) => tokio::time::sleep(pause).await,
            Step::Done(output) => return output,
        }
    }
}

pub(crate) async fn load(shared: &Shared, config: &Config) -> io::Result<Option<AccessToken>> {
    run(shared, fleet::load(shared, config)).await
}

pub(crate) async fn save(shared: &Shared, config: &Config, token: &AccessToken) -> io::Result<()> {
    run(shared, fleet::save(shared, config, token, fleet::wall_now())).await
}

pub(crate) async fn delete(shared: &Shared, config: &Config) -> io::Result<()> {
    run(shared, fleet::delete(shared, config)).await
}

pub(crate) async fn evict(
    shared: &Shared,
    config: &Config,
    token: &AccessToken,
    backoff: Option<&SharedBackoff>,
) -> io::Result<()> {
    run(shared, fleet::evict(shared, config, token, backoff)).await
}

pub(crate) async fn begin_fetch(shared: &Shared, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
    run(shared, fleet::begin_fetch(shared, config, now)).await
}

impl crate::RedisStore {
    /// As [`check`](Self::check), on an async connection (feature `tokio`;
    /// call it inside a tokio runtime): one trivial script within the store's
    /// [`timeout`](crate::RedisStoreBuilder::timeout), on a fresh connection.
    pub async fn check_async(&self) -> Result<(), RedisStoreError> {
        let shared = &*self.shared;
        let ping = async {
            let mut connection = connect(shared).await?;
            let cmd = crate::fleet::probe();
            match &mut connection {
                AsyncConnection::Single(connection) => cmd.query_async::<Value>(connection).await,
                #[cfg(feature = "cluster")]
                AsyncConnection::Cluster(connection) => cmd.query_async::<Value>(connection).await,
            }
        };
        let result = match tokio::time::timeout(shared.timeout, ping).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "Redis did not answer in time",
            ))),
        };
        shared.record(&result);
        result.map(drop).map_err(|error| RedisStoreError::Unreachable {
            servers: shared.server_list(),
            reason: error.to_string(),
        })
    }
}

pub(crate) async fn end_fetch(shared: &Shared, config: &Config) {
    run(shared, fleet::end_fetch(shared, config)).await;
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl client_credentials_common::AsyncTokenStore for crate::RedisStore {
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        Box::pin(load(&self.shared, config))
    }

    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(save(&self.shared, config, token))
    }

    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(delete(&self.shared, config))
    }

    fn evict<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(evict(&self.shared, config, token, None))
    }

    fn evict_rejected<'a>(
        &'a self,
        config: &'a Config,
        token: &'a AccessToken,
        backoff: Option<&'a SharedBackoff>,
    ) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(evict(&self.shared, config, token, backoff))
    }

    fn begin_fetch<'a>(&'a self, config: &'a Config, now: Timestamp) -> BoxFuture<'a, io::Result<FleetTurn>> {
        Box::pin(begin_fetch(&self.shared, config, now))
    }

    fn end_fetch<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, ()> {
        Box::pin(end_fetch(&self.shared, config))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use client_credentials_testkit::redis::{RedisCluster, RedisServer};

    use super::*;
    use crate::fixtures::config;
    use crate::RedisStore;

    fn token(name: &str) -> AccessToken {
        crate::fixtures::token(name, Duration::from_secs(600))
    }

    async fn one_fetches_the_others_use(stores: Vec<RedisStore>) {
        let config = config();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
        let tasks: Vec<_> = stores
            .into_iter()
            .map(|store| {
                let (config, barrier) = (config.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    match begin_fetch(&store.shared, &config, fleet::wall_now()).await.unwrap() {
                        FleetTurn::Use(token) => token.secret().to_owned(),
                        FleetTurn::Fetch => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            save(&store.shared, &config, &token("the-one")).await.unwrap();
                            end_fetch(&store.shared, &config).await;
                            "fetched".to_owned()
                        }
                        FleetTurn::HoldBack(backoff) => panic!("no rejection: {backoff:?}"),
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(results.iter().filter(|r| *r == "fetched").count(), 1, "{results:?}");
        assert!(results.iter().all(|r| r == "fetched" || r == "the-one"), "{results:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_connections_share_one_fetch_and_round_trip_tokens() {
        let server = RedisServer::start();
        let stores: Vec<RedisStore> = (0..8)
            .map(|_| RedisStore::builder(server.url()).build().unwrap())
            .collect();
        let probe = stores[0].clone();
        one_fetches_the_others_use(stores).await;
        let config = config();
        assert_eq!(load(&probe.shared, &config).await.unwrap().unwrap().secret(), "the-one");
        delete(&probe.shared, &config).await.unwrap();
        assert!(load(&probe.shared, &config).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_shares_one_fetch_with_both_keys_in_one_slot() {
        let cluster = tokio::task::spawn_blocking(RedisCluster::start).await.unwrap();
        let urls = cluster.urls();
        let stores: Vec<RedisStore> = (0..8)
            .map(|i| {
                // Each process knows a different seed node.
                RedisStore::builder(urls[i % 3].clone()).cluster().build().unwrap()
            })
            .collect();
        let key = stores[0].key(&config());
        one_fetches_the_others_use(stores).await;
        let blocking_store = RedisStore::builder(urls[1].clone()).cluster().build().unwrap();
        #[cfg(feature = "blocking")]
        assert_eq!(
            crate::blocking::load(&blocking_store.shared, &config())
                .unwrap()
                .unwrap()
                .secret(),
            "the-one"
        );
        drop(blocking_store);
        tokio::task::spawn_blocking(move || {
            assert_eq!(cluster.cli(&["exists", &key]), "1");
            assert_eq!(
                cluster.cli(&["cluster", "keyslot", &key]),
                cluster.cli(&["cluster", "keyslot", &format!("{key}:lock")])
            );
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_async_reports_whether_the_store_answers() {
        let mut server = RedisServer::start();
        let store = RedisStore::builder(server.url()).build().unwrap();
        store.check_async().await.unwrap();
        server.kill();
        let error = store.check_async().await.unwrap_err();
        assert!(matches!(error, RedisStoreError::Unreachable { .. }), "{error:?}");
        assert!(error.to_string().contains(&server.port().to_string()), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frozen_redis_delays_an_async_fetch_by_at_most_the_timeout() {
        let server = RedisServer::start();
        let store = RedisStore::builder(server.url()).build().unwrap();
        let config = config();
        save(&store.shared, &config, &token("before")).await.unwrap();
        server.pause();
        let started = Instant::now();
        let turn = begin_fetch(&store.shared, &config, fleet::wall_now()).await;
        let waited = started.elapsed();
        assert!(matches!(turn, Ok(FleetTurn::Fetch)), "{turn:?}");
        assert!(waited < Duration::from_millis(600), "{waited:?}");
        server.resume();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rediss_with_a_private_ca_round_trips_on_the_async_connection() {
        let server = tokio::task::spawn_blocking(RedisServer::start_tls).await.unwrap();
        let store = RedisStore::builder(server.url())
            .tls_root_certificate(server.ca_certificate())
            .build()
            .unwrap();
        let config = config();
        save(&store.shared, &config, &token("over-tls")).await.unwrap();
        assert_eq!(
            load(&store.shared, &config).await.unwrap().unwrap().secret(),
            "over-tls"
        );
        tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
    }
}
