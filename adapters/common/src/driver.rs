//! The shell both adapters loop around, over the core's sans-IO
//! [`client_credentials::driver`]: the lock around it, the published
//! snapshot for lock-free cached reads, the clock, the callbacks and logs,
//! reading the assertion file, and the guard that hands an unfinished job
//! back. Every decision (single flight, store order, provider and fleet
//! rounds, sign-out, background timing) is the core driver's; an adapter
//! asks [`Driver::step`] what to do, performs its own I/O for each task of a
//! [`Job`] outside the lock (a request, a store call, the provider), and
//! waits (`Condvar` / `Notify`) when told to.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use client_credentials::driver::{
    self as machine, Background, Call, Caller, Invalidated, Outcome, Report, Settle, Task, Ticket,
};
use client_credentials::{
    AccessToken, Config, Error, Outgoing, ProviderMetadata, Timestamp, TokenSource, TransportError,
};

use crate::assertion_file::AssertionFile;
use crate::clock::TimeSource;
use crate::published::Published;
use crate::store::{store_failed, AsyncTokenStore, FleetTurn, TokenStore};

/// `on_token_update`: called once for each new token.
pub type TokenCallback = Box<dyn Fn(&AccessToken) + Send + Sync>;
/// `on_error`: called when a refresh fails while the cached token is still served.
pub type ErrorCallback = Box<dyn Fn(&Error) + Send + Sync>;

/// A boxed, `Send` future, as the tokio adapter's transport, store and
/// provider return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The tokio adapter's custom token provider (see `ClientBuilder::token_provider`).
pub type Provider = dyn Fn(Option<AccessToken>) -> BoxFuture<'static, Option<AccessToken>> + Send + Sync;
/// The blocking adapter's custom token provider.
pub type BlockingProvider = dyn Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync;

/// How the shell wakes the callers an adapter has waiting.
pub trait Wake: Send + Sync + 'static {
    /// The state changed (a job ended, a token was dropped): wake every
    /// caller waiting, so it steps again.
    fn wake(&self);
}

/// An adapter's side of the shell: its waking, and the kinds of store and
/// provider it calls (blocking or async).
pub trait Io: Wake {
    /// The store trait object (`dyn TokenStore` or `dyn AsyncTokenStore`).
    type Store: ?Sized + Send + Sync + 'static;
    /// The provider (`BlockingProvider` or `Provider`).
    type Provider: ?Sized + Send + Sync + 'static;
}

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
    /// The store, if any (loaded first, fleet hooks, ordered writes).
    pub store: Option<Box<S>>,
    /// The custom token provider, if any.
    pub provider: Option<Box<P>>,
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
            store: None,
            provider: None,
        }
    }
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

/// The shared state of one client (all its clones): see the module docs.
pub struct Driver<W: Io> {
    state: Mutex<State>,
    published: Published,
    settings: Settings<W::Store, W::Provider>,
    /// The client assertion file, if the config names one: read by one
    /// caller at a time (the core driver says which), never under `state`'s lock.
    assertion_file: Option<Mutex<AssertionFile>>,
    /// The adapter's side: its transport, waiters.
    pub io: W,
}

struct State {
    machine: machine::Driver,
    /// What was last published (the token and its refresh time), so an
    /// unchanged state is not published again.
    shown: Option<(AccessToken, Timestamp)>,
}

/// What a caller does next, from [`Driver::step`].
pub enum Step<W: Io, T = AccessToken> {
    /// Return this: a call's token; for a [`Settle`], its writes landed.
    Ready(T),
    /// Return this error.
    Failed(Error),
    /// Wait until woken ([`Wake::wake`]) or for this long (`None`: until
    /// woken), then step again.
    Wait(Option<Duration>),
    /// This caller performs a job: its tasks, then step again.
    Work(Job<W>),
}

/// A job for the caller performing it: [`Job::next_task`] hands out the
/// adapter's tasks (the reports and the assertion file are performed here),
/// [`Job::hand_back`] takes each result. Dropped unfinished (a panic, a
/// cancelled future), it hands the job back to the core driver and wakes
/// every waiter, so one caller's failure never leaves the others waiting for
/// a result that will not come.
pub struct Job<W: Io> {
    driver: Arc<Driver<W>>,
    /// The task not yet handed out.
    work: Option<machine::Work>,
    /// The ticket of the task handed out, until its result is handed back.
    ticket: Option<Ticket>,
}

impl<W: Io> Driver<W> {
    /// A driver for `settings`, waking through `io`.
    pub fn new(settings: Settings<W::Store, W::Provider>, io: W) -> Self {
        // Always random: processes sharing a client must never repeat a jti.
        let source = TokenSource::new(settings.config.clone(), crate::random_bytes());
        let mut machine = machine::Driver::new(source);
        if settings.store.is_some() {
            machine = machine.with_store();
        }
        if settings.provider.is_some() {
            machine = machine.with_provider();
        }
        let assertion_file = settings
            .config
            .assertion_file()
            .map(|path| Mutex::new(AssertionFile::new(path)));
        Driver {
            state: Mutex::new(State { machine, shown: None }),
            published: Published::new(),
            settings,
            assertion_file,
            io,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is complete at each unlock (one driver call, then
        // publishing, which cannot panic): a panic elsewhere while the lock
        // was held leaves a consistent state. Carry on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the core driver under the lock, then publishes the
    /// cached token if it changed.
    fn with<R>(&self, f: impl FnOnce(&mut machine::Driver, Timestamp) -> R) -> R {
        let now = self.now();
        let mut state = self.lock();
        let result = f(&mut state.machine, now);
        let current = state.machine.published();
        let unchanged = match (&state.shown, current) {
            (Some((shown, shown_at)), Some((token, at))) => *shown_at == at && shown.same_token(token),
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            self.published.publish(current);
            state.shown = current.map(|(token, at)| (token.clone(), at));
        }
        result
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    /// The time now, on this client's clock.
    pub fn now(&self) -> Timestamp {
        self.settings.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &TimeSource {
        &self.settings.clock
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&W::Store> {
        self.settings.store.as_deref()
    }

    /// The custom provider, if any.
    pub fn provider(&self) -> Option<&W::Provider> {
        self.settings.provider.as_deref()
    }

    /// The cached token if it is fresh: the lock-free path, for clients on
    /// the wall clock (others step through the lock, whose clock may differ).
    #[inline]
    pub fn fresh(&self) -> Option<AccessToken> {
        match self.settings.clock {
            TimeSource::System => self.published.fresh(),
            _ => None,
        }
    }

    /// The discovered provider metadata, if any.
    pub fn metadata(&self) -> Option<ProviderMetadata> {
        self.lock().machine.source().metadata().cloned()
    }

    /// Whether a token is cached (fresh or not), for `Debug`.
    pub fn has_token(&self) -> bool {
        self.lock().machine.source().token().is_some()
    }

    /// What the caller holding `call` does next.
    pub fn step<C: Caller>(self: &Arc<Self>, call: &mut C) -> Step<W, C::Output> {
        match self.with(|machine, now| machine.step(now, call)) {
            machine::Step::Ready(value) => Step::Ready(value),
            machine::Step::Failed(error) => Step::Failed(error),
            machine::Step::Wait { until } => Step::Wait(self.settings.clock.wait_for(until)),
            machine::Step::Work(work) => Step::Work(Job {
                driver: Arc::clone(self),
                work: Some(work),
                ticket: None,
            }),
        }
    }

    /// Forces a refresh: the call to step for its outcome, or the error of
    /// the failed round whose cool-down still runs (nothing is sent then, and
    /// `token()` keeps serving the unexpired token).
    pub fn refresh(&self) -> Result<Call, Error> {
        self.with(|machine, now| machine.refresh(now))
    }

    /// The resource server rejected `token`: stop serving it. Returns the
    /// call that evicts it from the store (deleted only if the store still
    /// holds it), when that is due.
    pub fn invalidate(&self, token: &AccessToken) -> Option<Settle> {
        match self.with(|machine, now| machine.invalidate(now, token)) {
            Invalidated::NotCurrent => None,
            Invalidated::Evicted(store) => {
                self.io.wake();
                store
            }
        }
    }

    /// Forgets the token and any flight under way, and wakes the waiters:
    /// step the returned call to its end (the store's deletion has landed),
    /// then send the revocation, if any, and hand its result to
    /// [`Revocation::finish`].
    pub fn signout(self: &Arc<Self>) -> (Settle, Option<(http::Request<Vec<u8>>, Revocation<W>)>) {
        let signout = self.with(|machine, now| machine.signout(now));
        self.io.wake();
        let revocation = signout.revocation.map(|Outgoing { id, request, .. }| {
            let guard = Revocation {
                driver: Arc::clone(self),
                id: Some(id),
            };
            (request, guard)
        });
        (signout.deletion, revocation)
    }

    /// For a background refresh task: `None` when a refresh is due now,
    /// else how long to wait before asking again (`Some(None)`: until the
    /// state changes).
    pub fn refresh_due(&self) -> Option<Option<Duration>> {
        match self.with(|machine, now| machine.background(now)) {
            Background::Refresh => None,
            Background::Sleep(until) => Some(self.settings.clock.wait_for(until)),
        }
    }

    /// Sets `Authorization` on a resource request's headers for `token`:
    /// `Bearer …`, or `DPoP …` with a fresh proof for `method` and `uri` when
    /// the config has `.dpop(key)` (`nonce`: the resource server's, if it
    /// asked for one). What each adapter's `Client::authorize` does once it
    /// holds a token.
    pub fn authorize_headers(
        &self,
        method: &http::Method,
        uri: &str,
        headers: &mut http::HeaderMap,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<(), Error> {
        let proof = self.dpop_proof(method, uri, token, nonce)?;
        crate::authorize::set_authorization(headers, token, proof);
        Ok(())
    }

    /// A DPoP proof (RFC 9449 §7) for a request to a resource with `token`:
    /// `htm` = `method`, `htu` = `uri` without query and fragment, `ath` =
    /// the token's hash, a fresh `jti`; `nonce` is the resource server's, if
    /// it asked for one. `Ok(None)` when the config has no DPoP key.
    pub fn dpop_proof(
        &self,
        method: &http::Method,
        uri: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<Option<http::HeaderValue>, Error> {
        if self.settings.config.dpop_key().is_none() {
            return Ok(None);
        }
        let now = self.now();
        self.lock()
            .machine
            .source()
            .dpop_proof(now, method, uri, Some(token), nonce)
    }

    /// A resource server's 401 to a request for `requested` named where its
    /// RFC 9728 metadata is: read it there at the next discovery (with
    /// `Config::builder(..).resource_server(..)`, and only on the resource's
    /// own origin; see `TokenSource::follow_resource_metadata`).
    pub fn follow_resource_metadata(&self, requested: &str, url: &str) -> bool {
        self.lock().machine.follow_resource_metadata(requested, url)
    }

    /// Tells the user what happened: callbacks (outside the lock) and logs.
    fn report(&self, report: Report) {
        match report {
            Report::TokenUpdated(token) => {
                if let Some(callback) = &self.settings.on_token_update {
                    callback(&token);
                }
            }
            Report::RefreshFailed(error) => {
                tracing::warn!(%error, "client-credentials: refresh failed; the cached token is served until it expires");
                if let Some(callback) = &self.settings.on_error {
                    callback(&error);
                }
            }
            Report::RoundFailed(error) => tracing::debug!(%error, "client-credentials: round failed"),
            Report::RetryAfterCapped(asked) => tracing::warn!(
                retry_after_secs = asked.as_secs(),
                waiting_secs = self.config().retry().max_retry_after.as_secs(),
                "client-credentials: the provider's Retry-After is longer than max_retry_after; waiting the maximum"
            ),
            _ => {}
        }
    }

    /// Reads the assertion file if it changed, outside the state lock: callers
    /// served from cache never wait for a file system.
    fn read_assertion_file(&self) -> Outcome {
        let content = self.assertion_file.as_ref().and_then(|file| {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.read_if_changed()
        });
        Outcome::AssertionFile(content)
    }
}

impl<W: Io> Job<W> {
    /// The next task for the adapter to perform (its result goes to
    /// [`Job::hand_back`]), or `None` when the job is over: the waiting
    /// callers have been woken; step again.
    pub fn next_task(&mut self) -> Option<Task> {
        while let Some(machine::Work { task, ticket }) = self.work.take() {
            // Held while a report's callback runs: a panicking callback
            // hands the job back on drop.
            self.ticket = Some(ticket);
            let outcome = match task {
                Task::Report(report) => {
                    self.driver.report(report);
                    Outcome::Done
                }
                Task::ReadAssertionFile => self.driver.read_assertion_file(),
                Task::Send(outgoing) => {
                    tracing::debug!(
                        request = %outgoing.id,
                        kind = ?outgoing.kind,
                        method = %outgoing.request.method(),
                        uri = %crate::loggable_uri(outgoing.request.uri()),
                        "client-credentials: sending"
                    );
                    return Some(Task::Send(outgoing));
                }
                task => return Some(task),
            };
            self.hand_back(outcome);
        }
        None
    }

    /// Hands back the result of the task [`Job::next_task`] gave out.
    pub fn hand_back(&mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            self.work = self.driver.with(|machine, now| machine.handle(now, ticket, outcome));
            if self.work.is_none() {
                self.driver.io.wake();
            }
        }
    }

    /// The client this job belongs to.
    pub fn driver(&self) -> &Arc<Driver<W>> {
        &self.driver
    }
}

impl<W: Io> Drop for Job<W> {
    fn drop(&mut self) {
        let unfinished = self.ticket.take().or_else(|| self.work.take().map(|work| work.ticket));
        if let Some(ticket) = unfinished {
            // Unfinished: the caller panicked or its future was dropped.
            self.driver.with(|machine, now| machine.abandon(now, ticket));
            self.driver.io.wake();
        }
    }
}

/// The sign-out's revocation, sent by the adapter: hand its result to
/// [`Revocation::finish`]. Dropped unfinished, it is forgotten.
pub struct Revocation<W: Io> {
    driver: Arc<Driver<W>>,
    id: Option<client_credentials::RequestId>,
}

impl<W: Io> Revocation<W> {
    /// The revocation's outcome: `Ok` when revoked, or when nothing was left
    /// to revoke.
    pub fn finish(mut self, result: Result<http::Response<Vec<u8>>, TransportError>) -> Result<(), Error> {
        let Some(id) = self.id.take() else { return Ok(()) };
        self.driver
            .with(|machine, now| machine.handle_revocation(now, id, result))
    }
}

impl<W: Io> Drop for Revocation<W> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.driver.with(|machine, _| machine.abandon_revocation(id));
        }
    }
}

/// The outcome of a store's `load`: a failure is logged, and the client
/// starts without the stored token.
pub fn loaded(result: io::Result<Option<AccessToken>>) -> Outcome {
    Outcome::Loaded(result.unwrap_or_else(|error| {
        store_failed("load", &error);
        None
    }))
}

/// The outcome of a store's fleet hook: a failure is logged, and the client fetches.
pub fn fleet_turn(result: io::Result<FleetTurn>) -> Outcome {
    Outcome::FleetTurn(match result {
        Ok(FleetTurn::Use(token)) => Some(token),
        Ok(FleetTurn::Fetch) => None,
        Err(error) => {
            tracing::warn!(%error, "client-credentials: the store's fleet hook failed; fetching");
            None
        }
    })
}

/// The outcome of a store write (`verb`: save, delete, evict): a failure
/// is logged, never fatal (a store is a cache).
pub fn written(verb: &str, result: io::Result<()>) -> Outcome {
    if let Err(error) = result {
        store_failed(verb, &error);
    }
    Outcome::Done
}

/// The outcome of an HTTP exchange.
pub fn exchanged(result: Result<http::Response<Vec<u8>>, TransportError>) -> Outcome {
    match result {
        Ok(response) => Outcome::Response(response),
        Err(error) => Outcome::TransportError(error),
    }
}

impl<W: Io> fmt::Debug for Driver<W> {
    /// What a `Client`'s `Debug` shows: the configuration (secret redacted)
    /// and whether a token is cached; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", self.config())
            .field("has_token", &self.has_token())
            .finish_non_exhaustive()
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
