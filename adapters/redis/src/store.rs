//! [`RedisStore`], its builder and errors, and what both drivers share:
//! the target, the key names, the health of the connection, lock ownership.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use client_credentials::Config;
use client_credentials_common::FleetTurn;
use redis::{ErrorKind, RedisError};

use crate::fleet::{Settings, Turn};
use crate::keys::Keys;
use crate::seal::{self, Sealer};

/// The key prefix unless [`RedisStoreBuilder::key_prefix`] sets another.
pub const DEFAULT_KEY_PREFIX: &str = "client-credentials:";
/// How long a process may hold the fleet lock unless
/// [`RedisStoreBuilder::lock_ttl`] says otherwise.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);
/// The longest Redis may delay a token request unless
/// [`RedisStoreBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a waiting process looks for the lock holder's token unless
/// [`RedisStoreBuilder::poll_interval`] says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// After a failed Redis call, the store leaves Redis alone this long (every
/// call fetches or reads locally at once), then tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The largest value the store reads or writes, and the largest reply it
/// accepts: far above any token (a token response is capped at 64 KiB by
/// default), far below what would hurt. A larger stored value is not sent
/// by Redis at all (the scripts check its length first).
pub const MAX_VALUE_SIZE: usize = 256 * 1024;

/// A token store on Redis (or a Redis Cluster, or any server speaking its
/// protocol) that lets a whole fleet of processes share one token and one
/// token request per token lifetime.
///
/// Give it to a client with `.store(store)` (features `blocking` and
/// `tokio`). Clones share one connection; one store may serve clients of
/// different configurations (each has its own key).
///
/// - **Key**: `{prefix}{fingerprint}` (see [`Config::fingerprint`]); the
///   secret never appears in it. The value is the token sealed with
///   XChaCha20-Poly1305 under a key derived from the client secret or from
///   [`encryption_key`](RedisStoreBuilder::encryption_key), with the key name
///   (so the fingerprint) as associated data; its TTL is the token's
///   remaining lifetime (the config's default lifetime for a token without
///   expiry).
/// - **Sealed means sealed**: a client with no secret (`private_key_jwt`, an
///   assertion, mutual TLS, an empty secret) needs an
///   [`encryption_key`](RedisStoreBuilder::encryption_key); without one the
///   store reads and writes nothing for it, and every store call fails with
///   [`RedisStoreError::EncryptionKeyRequired`] (inside the `io::Error`,
///   logged by the client, which fetches on its own). The store cannot know
///   at `build()` which clients it will serve: call
///   [`check_config`](RedisStore::check_config) at start to refuse early.
/// - **Writes are fenced**: a save is a script that keeps a stored token
///   that expires later than the one being written, so a process whose lock
///   expired mid-request never replaces the newer token another process
///   wrote meanwhile. An eviction after a resource server rejected a token
///   deletes only that token (compare-and-delete on a keyed hash of it), so
///   a process holding a token the fleet has replaced never deletes the
///   newer one.
/// - **Fleet single flight**: when a process's token reaches its refresh
///   time it asks Redis first; if another process already wrote a fresh
///   token, it uses that one. Otherwise one process takes a short lock
///   (`SET NX PX`, random owner), fetches and writes the token; the others
///   poll every few milliseconds and pick it up. If the holder dies, its
///   lock expires after [`lock_ttl`](RedisStoreBuilder::lock_ttl) and
///   another process takes over.
/// - **One back-off for the fleet**: when a resource rejects a token on
///   probation, the eviction's script also writes the round's back-off
///   (its end and failure count, sealed, TTL the policy's maximum back-off)
///   under `…:rejected`; the other processes' fleet turns read it and fail
///   their rounds at once (`FleetTurn::HoldBack`) while it holds, so a
///   resource that rejects every token sees the request bounds of one
///   client, not one per process. A value that does not open is passed
///   over, and the client caps what a genuine one imposes at its maximum
///   back-off.
/// - **Redis trouble never fails a token request**: each call is bounded by
///   [`timeout`](RedisStoreBuilder::timeout) (500 ms by default); on an error
///   the process fetches on its own, leaves Redis alone for a second, and
///   shares again once Redis answers.
/// - The cached read (`token()` while fresh) never touches Redis.
/// - Replies are capped at [`MAX_VALUE_SIZE`]: a larger stored value is
///   never sent by the store's scripts, and a larger reply is
///   [`RedisStoreError::TooLarge`] and drops the connection. (A server that
///   is not Redis can still make the redis crate buffer what it sends
///   before the store's timeout; `rediss://` keeps a network attacker from
///   being that server.)
///
/// `Debug` shows the servers without credentials; so do its log lines.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) shared: Arc<Shared>,
}

impl RedisStore {
    /// Starts configuring a store on the Redis server at `url`:
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS,
    /// feature `tls`). With [`RedisStoreBuilder::cluster`], `url` is one
    /// node of a Redis Cluster.
    ///
    /// ```
    /// use std::time::Duration;
    /// use client_credentials_redis::RedisStore;
    ///
    /// let store = RedisStore::builder("redis://fleet:s3cret@127.0.0.1:6379/0")
    ///     .key_prefix("billing-api:")
    ///     .lock_ttl(Duration::from_secs(10))
    ///     .build()?; // parses the URL; connects on first use
    /// assert!(!format!("{store:?}").contains("s3cret"));
    /// # Ok::<(), client_credentials_redis::RedisStoreError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            urls: vec![url.into()],
            cluster: false,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            lock_ttl: DEFAULT_LOCK_TTL,
            timeout: DEFAULT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            encryption_key: None,
            previous_encryption_key: None,
            tls: Tls::default(),
        }
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis key holding the token of `config` (for inspection and
    /// tests; the lock is this name followed by `:lock`).
    pub fn key(&self, config: &Config) -> String {
        self.shared.keys(config).token
    }

    /// Whether this store can seal tokens for `config`: `Err`
    /// ([`RedisStoreError::EncryptionKeyRequired`]) for a client without a
    /// secret when no [`encryption_key`](RedisStoreBuilder::encryption_key)
    /// is set. Call it at start to refuse a misconfiguration early; without
    /// the check, the store refuses the same at first use and nothing is
    /// read or written.
    ///
    /// ```
    /// use client_credentials::{ClientAuth, Config};
    /// use client_credentials_redis::{RedisStore, RedisStoreError};
    ///
    /// let mtls = Config::builder("my-service", "")
    ///     .token_endpoint("https://auth.example.com/oauth/token")
    ///     .auth(ClientAuth::TlsClientAuth)
    ///     .build()?;
    /// let store = RedisStore::builder("redis://127.0.0.1:6379").build()?;
    /// assert_eq!(store.check_config(&mtls), Err(RedisStoreError::EncryptionKeyRequired));
    /// let keyed = RedisStore::builder("redis://127.0.0.1:6379")
    ///     .encryption_key(*b"0123456789abcdef0123456789abcdef")
    ///     .build()?;
    /// assert_eq!(keyed.check_config(&mtls), Ok(()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_config(&self, config: &Config) -> Result<(), RedisStoreError> {
        self.shared.sealer(config).map(drop)
    }

    /// The servers, without credentials (as in `Debug` and the log lines).
    pub fn servers(&self) -> &[String] {
        &self.shared.servers
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("servers", &self.shared.servers)
            .field("cluster", &self.shared.target.is_cluster())
            .field("key_prefix", &self.shared.prefix)
            .field("lock_ttl", &self.shared.settings.lock_ttl)
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisStore`]; from [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    lock_ttl: Duration,
    timeout: Duration,
    poll_interval: Duration,
    encryption_key: Option<Vec<u8>>,
    previous_encryption_key: Option<Vec<u8>>,
    tls: Tls,
}

/// Certificates for `rediss://` beyond the system's roots.
#[derive(Default)]
struct Tls {
    root: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    fn is_set(&self) -> bool {
        self.root.is_some() || self.client.is_some()
    }

    #[cfg(feature = "tls")]
    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.root.clone(),
        }
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Prepended to every key (default `client-credentials:`). Give each
    /// application sharing a Redis instance its own prefix, and grant its
    /// Redis user only `~prefix*` keys (see the README on ACLs). Must not
    /// contain `{` or `}`: the key's hash tag is the fingerprint.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the process fetching for the fleet holds the lock at most
    /// (default 5 s): if it dies, the others take over after this long. Make
    /// it longer than a token request usually takes; a request that outlasts
    /// it costs one more request, never a failure.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// The longest Redis may hold up a token request when it is down or
    /// slow (default 500 ms): connecting and each command get half of it;
    /// on a timeout the client fetches on its own.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often a process waiting for the lock holder's token looks for it
    /// (default 5 ms): the delay between the holder's write and the others
    /// seeing it is at most about this long.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// `url` is a node of a Redis Cluster (feature `cluster`); the others are
    /// discovered from it. Add more seed nodes with
    /// [`cluster_node`](Self::cluster_node).
    pub fn cluster(mut self) -> Self {
        self.cluster = true;
        self
    }

    /// Another seed node of the Redis Cluster (implies [`cluster`](Self::cluster)).
    pub fn cluster_node(mut self, url: impl Into<String>) -> Self {
        self.cluster = true;
        self.urls.push(url.into());
        self
    }

    /// Seals values with a key derived from `key` (at least 32 bytes, e.g.
    /// 32 random ones) instead of from the client id and secret. Required
    /// for clients without a secret (`private_key_jwt`, assertions, mutual
    /// TLS), whose id alone is public; also keeps sharing across a secret
    /// rotation. Every process of the fleet must use the same key. A shorter
    /// key is refused by [`build`](Self::build)
    /// ([`RedisStoreError::EncryptionKeyTooShort`]).
    pub fn encryption_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.encryption_key = Some(key.into());
        self
    }

    /// The key values were sealed with before [`encryption_key`](Self::encryption_key)
    /// changed (at least 32 bytes): values sealed under it still open, and
    /// the next write of each token seals it under the new key. Roll the new
    /// key out with this set, then drop it once every token has been
    /// refreshed (one token lifetime later).
    pub fn previous_encryption_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.previous_encryption_key = Some(key.into());
        self
    }

    /// Trusts this certificate authority (PEM) for `rediss://` instead of
    /// the system's roots: for a Redis behind a private CA. Feature `tls`.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) on `rediss://`
    /// connections, for servers that require mutual TLS. Feature `tls`.
    pub fn tls_client_certificate(mut self, certificate: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.tls.client = Some((certificate.into(), key.into()));
        self
    }

    /// Checks the settings and parses the URLs. Does not connect: the store
    /// connects on first use and reconnects after failures, so a Redis that
    /// is down when the program starts only delays sharing.
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        if self.prefix.contains(['{', '}']) {
            return Err(RedisStoreError::InvalidKeyPrefix);
        }
        for (name, key) in [
            ("encryption_key", &self.encryption_key),
            ("previous_encryption_key", &self.previous_encryption_key),
        ] {
            if key.as_ref().is_some_and(|key| key.len() < seal::MIN_KEY_LEN) {
                return Err(RedisStoreError::EncryptionKeyTooShort { name });
            }
        }
        for (name, value) in [
            ("lock_ttl", self.lock_ttl),
            ("timeout", self.timeout),
            ("poll_interval", self.poll_interval),
        ] {
            if value < Duration::from_millis(1) {
                return Err(RedisStoreError::InvalidDuration { name });
            }
        }
        let mut servers = Vec::new();
        let mut infos = Vec::new();
        for url in &self.urls {
            let (info, server) = parse_url(url)?;
            servers.push(server);
            infos.push(info);
        }
        if self.tls.is_set() && !servers.iter().all(|server| server.starts_with("rediss://")) {
            return Err(RedisStoreError::InvalidUrl {
                reason: "TLS certificates are set but the URL is not rediss://",
            });
        }
        let target = if self.cluster {
            cluster_target(infos, self.timeout, &self.tls)?
        } else {
            // `urls` holds exactly the builder's URL when not a cluster.
            let info = infos
                .pop()
                .ok_or(RedisStoreError::InvalidUrl { reason: "no URL given" })?;
            Target::Single(single_target(info, &self.tls)?)
        };
        Ok(RedisStore {
            shared: Arc::new(Shared {
                target,
                servers,
                prefix: self.prefix,
                settings: Settings {
                    lock_ttl: self.lock_ttl,
                    poll_interval: self.poll_interval,
                },
                timeout: self.timeout,
                encryption_key: self.encryption_key,
                previous_encryption_key: self.previous_encryption_key,
                down_until: Mutex::new(None),
                owners: Mutex::new(HashMap::new()),
                #[cfg(feature = "blocking")]
                sync_conn: Mutex::new(None),
                #[cfg(feature = "tokio")]
                async_conn: Mutex::new(None),
            }),
        })
    }
}

fn parse_url(url: &str) -> Result<(redis::ConnectionInfo, String), RedisStoreError> {
    let parsed = url::Url::parse(url).map_err(|_| RedisStoreError::InvalidUrl { reason: "not a URL" })?;
    match parsed.scheme() {
        "redis" => {}
        "rediss" if cfg!(feature = "tls") => {
            #[cfg(feature = "tls")]
            {
                // rustls needs one process-wide crypto provider; this crate
                // brings only ring (no C toolchain, unlike aws-lc-rs). Newer
                // rustls marks ring's provider deprecated because it lacks
                // post-quantum key exchange: a program that wants it installs
                // the aws-lc-rs provider first, which this keeps.
                #[allow(deprecated)]
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
        }
        "rediss" => return Err(RedisStoreError::TlsNotEnabled),
        _ => {
            return Err(RedisStoreError::InvalidUrl {
                reason: "the scheme must be redis:// or rediss://",
            })
        }
    }
    let host = parsed
        .host_str()
        .ok_or(RedisStoreError::InvalidUrl { reason: "no host" })?;
    let server = match parsed.port() {
        Some(port) => format!("{}://{host}:{port}{}", parsed.scheme(), parsed.path()),
        None => format!("{}://{host}{}", parsed.scheme(), parsed.path()),
    };
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|_| RedisStoreError::InvalidUrl {
        reason: "the redis crate refused it",
    })?;
    Ok((info, server))
}

fn single_target(info: redis::ConnectionInfo, tls: &Tls) -> Result<redis::Client, RedisStoreError> {
    #[cfg(feature = "tls")]
    if tls.is_set() {
        return redis::Client::build_with_tls(info, tls.certificates())
            .map_err(|_| RedisStoreError::InvalidCertificate);
    }
    let _ = tls;
    redis::Client::open(info).map_err(|_| RedisStoreError::InvalidUrl {
        reason: "the redis crate refused it",
    })
}

#[cfg(feature = "cluster")]
fn cluster_target(infos: Vec<redis::ConnectionInfo>, timeout: Duration, tls: &Tls) -> Result<Target, RedisStoreError> {
    let half = timeout / 2;
    let mut builder = redis::cluster::ClusterClient::builder(infos)
        .connection_timeout(half)
        .response_timeout(half)
        .retries(0);
    #[cfg(feature = "tls")]
    if tls.is_set() {
        builder = builder.certs(tls.certificates());
    }
    let _ = tls;
    let client = builder.build().map_err(|_| RedisStoreError::InvalidUrl {
        reason: "the cluster nodes disagree on credentials, TLS or protocol",
    })?;
    Ok(Target::Cluster(client))
}

#[cfg(not(feature = "cluster"))]
fn cluster_target(_: Vec<redis::ConnectionInfo>, _: Duration, _: &Tls) -> Result<Target, RedisStoreError> {
    Err(RedisStoreError::ClusterNotEnabled)
}

/// Why [`RedisStoreBuilder::build`] refused the settings. Never contains a
/// password from the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a `redis://` or `rediss://` URL the client can use.
    #[error("invalid Redis URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `rediss://` URL, but the crate was built without the `tls` feature.
    #[error("rediss:// needs the `tls` feature of client-credentials-redis")]
    TlsNotEnabled,
    /// [`RedisStoreBuilder::cluster`], but the crate was built without the
    /// `cluster` feature.
    #[error("Redis Cluster needs the `cluster` feature of client-credentials-redis")]
    ClusterNotEnabled,
    /// The key prefix contains `{` or `}`, which would move the key's hash tag
    /// away from the fingerprint (the token and its lock must share a slot).
    #[error("the Redis key prefix must not contain '{{' or '}}'")]
    InvalidKeyPrefix,
    /// The redis crate refused the TLS certificates given to the builder.
    /// (PEM it cannot read is not always caught here: then every connection
    /// fails, and the client fetches without the fleet.)
    #[error("a TLS certificate or key for Redis is not valid PEM")]
    InvalidCertificate,
    /// A duration setting is below one millisecond.
    #[error("the Redis store setting `{name}` must be at least 1 ms")]
    InvalidDuration {
        /// Which setting.
        name: &'static str,
    },
    /// An encryption key is shorter than 32 bytes (256 bits, the cipher's
    /// key size): use 32 random bytes.
    #[error("the Redis store's `{name}` must be at least 32 bytes")]
    EncryptionKeyTooShort {
        /// Which setting.
        name: &'static str,
    },
    /// The client has no secret (`private_key_jwt`, an assertion, mutual
    /// TLS, an empty secret), so its tokens could only be sealed under a key
    /// derived from its public client id: set
    /// [`RedisStoreBuilder::encryption_key`]. Nothing was read or written.
    #[error(
        "the Redis store needs an encryption key for a client without a secret (set RedisStoreBuilder::encryption_key); nothing was stored"
    )]
    EncryptionKeyRequired,
    /// A value or reply larger than [`MAX_VALUE_SIZE`]: not read (a value
    /// stored by someone else, or a server that is not behaving), or not
    /// written.
    #[error("a Redis value or reply is larger than the store's limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// [`RedisStore::check`] could not reach the store.
    #[error("the Redis store at {servers} is unreachable: {reason}")]
    Unreachable {
        /// The servers, without credentials.
        servers: String,
        /// What failed (never a password).
        reason: String,
    },
}

/// Where the store connects. One per store, built once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Target {
    Single(redis::Client),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
}

impl Target {
    fn is_cluster(&self) -> bool {
        !matches!(self, Target::Single(_))
    }
}

/// Everything clones of one store share.
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) servers: Vec<String>,
    prefix: String,
    pub(crate) settings: Settings,
    pub(crate) timeout: Duration,
    encryption_key: Option<Vec<u8>>,
    previous_encryption_key: Option<Vec<u8>>,
    /// Set after a failed call: until then, Redis is left alone.
    down_until: Mutex<Option<Instant>>,
    /// The lock this process holds, by token key, between `begin_fetch` and
    /// `end_fetch`.
    owners: Mutex<HashMap<String, String>>,
    #[cfg(feature = "blocking")]
    pub(crate) sync_conn: Mutex<Option<crate::blocking::SyncConnection>>,
    #[cfg(feature = "tokio")]
    pub(crate) async_conn: Mutex<Option<crate::tokio_store::AsyncConnection>>,
}

impl Shared {
    pub(crate) fn keys(&self, config: &Config) -> Keys {
        Keys::new(&self.prefix, &config.fingerprint())
    }

    /// The sealer for `config`; refused for a client without a secret when
    /// no encryption key is set.
    pub(crate) fn sealer(&self, config: &Config) -> Result<Sealer, RedisStoreError> {
        Sealer::new(
            config,
            self.encryption_key.as_deref(),
            self.previous_encryption_key.as_deref(),
        )
    }

    /// The servers for log lines and errors: no credentials.
    pub(crate) fn server_list(&self) -> String {
        self.servers.join(",")
    }

    /// `Err` while Redis is being left alone after a failure.
    pub(crate) fn check_available(&self) -> Result<(), RedisError> {
        let down_until = *self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        match down_until {
            Some(until) if Instant::now() < until => Err(RedisError::from((
                ErrorKind::Io,
                "Redis failed recently; not asking it again yet",
            ))),
            _ => Ok(()),
        }
    }

    /// Records how a call went. Returns whether the connection should be
    /// dropped (the error was about reaching Redis, not an answer from it).
    pub(crate) fn record<T>(&self, result: &Result<T, RedisError>) -> bool {
        let mut down_until = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => {
                if down_until.take().is_some() {
                    tracing::info!(servers = %self.server_list(), "Redis answers again; sharing tokens with the fleet");
                }
                false
            }
            // An error reply (it has a code): Redis is up and answering.
            Err(error) if error.code().is_some() => false,
            Err(error) => {
                if down_until.is_none() {
                    tracing::warn!(
                        servers = %self.server_list(),
                        %error,
                        "Redis is unavailable; fetching tokens without the fleet until it answers"
                    );
                }
                *down_until = Some(Instant::now() + RETRY_AFTER);
                true
            }
        }
    }

    /// What a finished round means for this process: remembers the lock it
    /// took, so `end_fetch` releases it.
    pub(crate) fn finish(&self, keys: &Keys, turn: Turn) -> FleetTurn {
        match turn {
            Turn::Use(token) => FleetTurn::Use(token),
            Turn::HoldBack(backoff) => FleetTurn::HoldBack(backoff),
            Turn::Fetch(owner) => {
                if let Some(owner) = owner {
                    self.owners
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(keys.token.clone(), owner);
                }
                FleetTurn::Fetch
            }
        }
    }

    /// The owner id of the lock this process took for `keys`, if it did.
    pub(crate) fn take_owner(&self, keys: &Keys) -> Option<String> {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&keys.token)
    }
}

/// The code of the error reply a script sends for a stored value larger
/// than [`MAX_VALUE_SIZE`], and of the error a driver makes of a larger reply.
pub(crate) const TOO_LARGE: &str = "TOOLARGE";

/// The `io::Error` for a [`RedisStoreError`]: callers find it with
/// `error.get_ref()` and `downcast_ref::<RedisStoreError>()`.
pub(crate) fn store_error(error: RedisStoreError) -> std::io::Error {
    let kind = match error {
        RedisStoreError::TooLarge { .. } => std::io::ErrorKind::InvalidData,
        _ => std::io::ErrorKind::InvalidInput,
    };
    std::io::Error::new(kind, error)
}

/// The `io::Error` the store traits return for a Redis failure (its message
/// names no credentials: the redis crate does not echo URLs).
pub(crate) fn io_error(error: RedisError) -> std::io::Error {
    if error.code() == Some(TOO_LARGE) {
        return store_error(RedisStoreError::TooLarge { limit: MAX_VALUE_SIZE });
    }
    let kind = if error.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else if error.is_connection_refusal() {
        std::io::ErrorKind::ConnectionRefused
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, format!("Redis: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_urls_prefixes_and_durations() {
        assert!(RedisStore::builder("redis://127.0.0.1:6379").build().is_ok());
        assert!(matches!(
            RedisStore::builder("http://127.0.0.1").build(),
            Err(RedisStoreError::InvalidUrl { .. })
        ));
        assert!(matches!(
            RedisStore::builder("not a url").build(),
            Err(RedisStoreError::InvalidUrl { .. })
        ));
        assert_eq!(
            RedisStore::builder("redis://h").key_prefix("a{b}:").build().err(),
            Some(RedisStoreError::InvalidKeyPrefix)
        );
        assert!(matches!(
            RedisStore::builder("redis://h").tls_root_certificate("x").build(),
            Err(RedisStoreError::InvalidUrl { .. })
        ));
        assert_eq!(
            RedisStore::builder("redis://h").lock_ttl(Duration::ZERO).build().err(),
            Some(RedisStoreError::InvalidDuration { name: "lock_ttl" })
        );
    }

    #[test]
    fn encryption_keys_shorter_than_32_bytes_are_refused() {
        for short in [&b""[..], b"secret", &[7u8; 31]] {
            assert_eq!(
                RedisStore::builder("redis://h").encryption_key(short).build().err(),
                Some(RedisStoreError::EncryptionKeyTooShort { name: "encryption_key" }),
                "{} bytes",
                short.len()
            );
            assert_eq!(
                RedisStore::builder("redis://h")
                    .encryption_key([7u8; 32])
                    .previous_encryption_key(short)
                    .build()
                    .err(),
                Some(RedisStoreError::EncryptionKeyTooShort {
                    name: "previous_encryption_key"
                }),
            );
        }
        assert!(RedisStore::builder("redis://h")
            .encryption_key([7u8; 32])
            .build()
            .is_ok());
    }

    #[test]
    fn passwords_stay_out_of_debug_and_errors() {
        let store = RedisStore::builder("redis://user:hunter2@127.0.0.1:6390/2")
            .build()
            .unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("127.0.0.1:6390/2"), "{debug}");
        let error = RedisStore::builder("redis://user:hunter2@").build().unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn the_key_is_prefix_and_fingerprint_never_the_secret() {
        let store = RedisStore::builder("redis://h").key_prefix("svc:").build().unwrap();
        let config = Config::builder("id", "very-secret")
            .token_endpoint("https://auth.example.com/token")
            .build()
            .unwrap();
        let key = store.key(&config);
        assert_eq!(key, format!("svc:{{{}}}", config.fingerprint()));
        assert!(!key.contains("very-secret"));
    }
}
