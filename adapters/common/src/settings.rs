//! What a client is built from (shared by both adapters' builders), and
//! the builder and client items both adapters share, as macros.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use client_credentials::driver::{self as machine, Discovery};
use client_credentials::{AccessToken, Config, Error, Timestamp};

use crate::clock::TimeSource;
use crate::store::{AsyncTokenStore, TokenStore};

/// `on_token_update`: called once for each new token.
pub type TokenCallback = Box<dyn Fn(&AccessToken) + Send + Sync>;
/// `on_error`: called when a refresh fails while the cached token is still served.
/// `on_refresh_failed`: called once per failed round.
pub type ErrorCallback = Box<dyn Fn(&Error) + Send + Sync>;

/// A boxed, `Send` future, as the tokio adapter's transport, store and
/// provider return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The tokio adapter's custom token provider (see `ClientBuilder::token_provider`).
pub type Provider = dyn Fn(Option<AccessToken>) -> BoxFuture<'static, Option<AccessToken>> + Send + Sync;
/// The blocking adapter's custom token provider.
pub type BlockingProvider = dyn Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync;

/// What a client is built from, besides its I/O.
pub struct Settings<S: ?Sized = dyn AsyncTokenStore, P: ?Sized = Provider> {
    /// The validated configuration.
    pub config: Config,
    /// Where `now` comes from.
    pub clock: TimeSource,
    /// Called once per new token (fetched, provided, or from the fleet), after
    /// it is saved and before the callers waiting for it are woken.
    pub on_token_update: Option<TokenCallback>,
    /// Called when a refresh fails while the cached token is still served.
    pub on_error: Option<ErrorCallback>,
    /// Called once per round that ends without a new token (served token
    /// or not), after the store's changes and before the waiters are woken.
    pub on_refresh_failed: Option<ErrorCallback>,
    /// The store, if any (loaded first, fleet hooks, ordered writes).
    pub store: Option<Box<S>>,
    /// The custom token provider, if any.
    pub provider: Option<Box<P>>,
    /// How many keys besides the default one a client keeps (see
    /// [`Keys`](crate::Keys)); default [`Settings::DEFAULT_MAX_KEYS`].
    pub max_keys: usize,
    /// The client's latest discovery result, shared by its keys.
    pub discovery: SharedDiscovery,
}

/// The latest discovery result of a client (see [`Discovery`]), shared by
/// its keys so they discover once, hold one copy of the metadata and one
/// pinned authorization server: a key adopts it before it steps and
/// publishes its own after (see [`SharedDiscovery::around`]). What is
/// usable, and which result is kept, the core decides.
#[derive(Default)]
pub struct SharedDiscovery {
    latest: Mutex<Latest>,
}

#[derive(Default)]
struct Latest {
    discovery: Option<Discovery>,
    /// The key reading the metadata now (its driver's address, an identity
    /// only), if any.
    discovering: Option<usize>,
    /// A read ended without metadata before the client had any: from then
    /// on, until one succeeds, cold keys read for themselves (see
    /// [`SharedDiscovery::around`]).
    first_read_failed: bool,
}

impl SharedDiscovery {
    fn lock(&self) -> MutexGuard<'_, Latest> {
        // Only whole values are stored: a panic elsewhere leaves one intact.
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest result, if any key has discovered.
    pub fn latest(&self) -> Option<Discovery> {
        self.lock().discovery.clone()
    }

    /// Runs `f` on the core driver of key `key` (held under the key's lock)
    /// between adopting the client's latest result and publishing the
    /// key's own, when it replaces the latest.
    ///
    /// While another key reads the metadata (the client's first read, or a
    /// read again past the TTL or once stale), this key's discovery is held
    /// ([`machine::Driver::hold_discovery`]): its callers are served an
    /// unexpired token or wait for that result, woken when that key's job
    /// ends, so a client discovers once however many cold keys are asked
    /// for at once, and rediscovers once however many keys refresh then.
    /// Should the client's first read fail, cold keys are no longer held
    /// until one succeeds: each reads for itself, as it would alone, rather
    /// than every waiting key wait out one more failure per sibling. A key
    /// about to send a metadata request, or to pin the client's
    /// authorization server (a resource server's first read), runs `f`
    /// under this lock: no other key starts a read meanwhile, and the first
    /// document read pins one server for every key.
    pub fn around<R>(
        &self,
        machine: &mut machine::Driver,
        now: Timestamp,
        key: usize,
        f: impl FnOnce(&mut machine::Driver, Timestamp) -> R,
    ) -> R {
        let mut latest = self.lock();
        if let Some(discovery) = &latest.discovery {
            machine.adopt_discovery(discovery, now);
        }
        let read_before = latest.discovery.as_ref().is_some_and(|d| d.metadata().is_some());
        let held = latest.discovering.is_some_and(|other| other != key) && (read_before || !latest.first_read_failed);
        machine.hold_discovery(held);
        if machine.pins_next() || (!held && machine.discovery_due(now)) {
            let result = f(machine, now);
            Self::publish(&mut latest, machine, key);
            return result;
        }
        drop(latest);
        let result = f(machine, now);
        Self::publish(&mut self.lock(), machine, key);
        result
    }

    fn publish(latest: &mut Latest, machine: &machine::Driver, key: usize) {
        if let Some(discovery) = machine.discovery() {
            if discovery.replaces(latest.discovery.as_ref()) {
                latest.discovery = Some(discovery);
            }
        }
        let read = latest.discovery.as_ref().is_some_and(|d| d.metadata().is_some());
        if machine.is_discovering() {
            latest.discovering.get_or_insert(key);
        } else if latest.discovering == Some(key) {
            latest.discovering = None;
            // The read this key made ended; without metadata, it failed.
            latest.first_read_failed = !read;
        }
    }
}

impl fmt::Debug for SharedDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latest = self.lock();
        f.debug_struct("SharedDiscovery")
            .field("latest", &latest.discovery)
            .field("discovering", &latest.discovering.is_some())
            .finish()
    }
}

/// The blocking adapter's settings.
pub type BlockingSettings = Settings<dyn TokenStore, BlockingProvider>;

impl<S: ?Sized, P: ?Sized> fmt::Debug for Settings<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("store", &self.store.is_some())
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: ?Sized, P: ?Sized> Settings<S, P> {
    /// Settings for `config`: the wall clock, no callbacks, no store, no provider.
    pub fn new(config: Config) -> Self {
        Settings {
            config,
            clock: TimeSource::System,
            on_token_update: None,
            on_error: None,
            on_refresh_failed: None,
            store: None,
            provider: None,
            max_keys: Self::DEFAULT_MAX_KEYS,
            discovery: SharedDiscovery::default(),
        }
    }

    /// The default of `max_keys`: 1,000 keys.
    pub const DEFAULT_MAX_KEYS: usize = 1_000;
}

impl BlockingSettings {
    /// Uses a blocking store.
    pub fn blocking_store(&mut self, store: impl TokenStore) {
        self.store = Some(Box::new(store));
    }

    /// Uses a blocking provider.
    pub fn blocking_provider(
        &mut self,
        provider: impl Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync + 'static,
    ) {
        self.provider = Some(Box::new(provider));
    }
}

/// The `Client` items both adapters share, written once: `new()`, `config()`,
/// `metadata()` and the `Debug` impls of `Client` and `ClientBuilder` (the
/// client has a `driver` field, the builder a `settings` field). Neither
/// `Debug` shows the secret or a token.
#[macro_export]
macro_rules! client_items {
    () => {
        impl Client {
            /// A client with the default transport (30 s per exchange), no
            /// store and no callbacks: `Client::builder(config).build()`.
            pub fn new(config: client_credentials::Config) -> Client {
                Client::builder(config).build()
            }

            /// The configuration this client was built with.
            pub fn config(&self) -> &client_credentials::Config {
                self.driver.config()
            }

            /// The provider metadata, once discovered (a config with
            /// `.issuer(..)`, or `.resource_server(..)`).
            pub fn metadata(&self) -> Option<client_credentials::ProviderMetadata> {
                self.driver.metadata()
            }
        }

        impl std::fmt::Debug for Client {
            /// The configuration (secret redacted) and whether a token is cached; never the token.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.driver.fmt(f)
            }
        }

        impl std::fmt::Debug for ClientBuilder {
            /// The settings (secret redacted).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.settings.fmt(f)
            }
        }
    };
}

/// The `ClientBuilder` methods both adapters share, written once: the
/// builder has a `settings: Settings` field. `blocking` or `async` says which
/// store trait `.store(..)` takes.
#[macro_export]
macro_rules! builder_methods {
    (blocking) => {
        $crate::builder_methods!(@shared);

        /// Keeps the token in `store`: loaded by the first call that needs a
        /// token, saved on each new one, deleted at sign-out and
        /// invalidation, writes applied in order (see [`TokenStore`](crate::TokenStore)).
        pub fn store(mut self, store: impl $crate::TokenStore) -> Self {
            self.settings.blocking_store(store);
            self
        }
    };
    (async) => {
        $crate::builder_methods!(@shared);

        /// Keeps the token in `store`: loaded by the first call that needs a
        /// token, saved on each new one, deleted at sign-out and
        /// invalidation, writes applied in order (see [`TokenStore`](crate::TokenStore)).
        pub fn store(mut self, store: impl $crate::AsyncTokenStore) -> Self {
            self.settings.store = Some(Box::new(store));
            self
        }
    };
    (@shared) => {
        /// Called once for each new token (fetched, given by the
        /// [provider](ClientBuilder::token_provider), or by a fleet store;
        /// not for the token loaded from the store), outside the client's
        /// lock, by the caller or task that obtained it: after the token is
        /// saved to the store and before the callers waiting for it are
        /// woken. Keep it short.
        pub fn on_token_update(
            mut self,
            callback: impl Fn(&client_credentials::AccessToken) + Send + Sync + 'static,
        ) -> Self {
            self.settings.on_token_update = Some(Box::new(callback));
            self
        }

        /// Called when a refresh fails while the cached token is still valid
        /// and keeps being served (the failure is also logged with
        /// `tracing::warn!`). Failures without a usable token are returned
        /// by `token()` instead.
        pub fn on_error(mut self, callback: impl Fn(&client_credentials::Error) + Send + Sync + 'static) -> Self {
            self.settings.on_error = Some(Box::new(callback));
            self
        }

        /// Called once for each round that ends without a new token (its
        /// retries exhausted, a final OAuth error, a failed discovery),
        /// whether or not a cached token is still served; beside
        /// [`on_token_update`](ClientBuilder::on_token_update), for counting
        /// or alerting. Runs outside the client's lock, by the caller or
        /// task that ran the round, before the callers waiting for it are
        /// woken. Keep it short.
        pub fn on_refresh_failed(
            mut self,
            callback: impl Fn(&client_credentials::Error) + Send + Sync + 'static,
        ) -> Self {
            self.settings.on_refresh_failed = Some(Box::new(callback));
            self
        }

        /// How many tokens for other [`TokenParams`](client_credentials::TokenParams)
        /// (`token_for`, `with_params`) this client keeps besides its default
        /// one; default 1,000. Beyond it, the key used least recently is
        /// dropped when a new one is added — only an idle one: never a key
        /// with a caller waiting, a request under way or a
        /// [`with_params`](Client::with_params) handle alive. Its token is
        /// then fetched again (or loaded from the store) when next asked for.
        pub fn max_keys(mut self, keys: usize) -> Self {
            self.settings.max_keys = keys;
            self
        }

        /// Reads time from `clock` instead of the wall clock: a
        /// [`ManualClock`](crate::ManualClock) lets tests step through expiry
        /// and back-off without sleeping. Cached reads then go through the
        /// client's lock (the lock-free path reads the wall clock).
        pub fn clock(mut self, clock: impl $crate::Clock) -> Self {
            self.settings.clock = $crate::TimeSource::Manual(std::sync::Arc::new(clock));
            self
        }
    };
}
