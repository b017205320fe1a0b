//! The client driver both adapters loop around: the core behind a lock, the
//! published snapshot, single-flight bookkeeping with its panic-safe guard,
//! the custom provider, the store's load and fleet turn, store sequencing,
//! callbacks. An adapter asks [`Driver::step`] what to do, performs the
//! [`Task`] it is handed (an HTTP exchange, a store call, the provider) with
//! its own I/O, hands the result back with [`Flight::finish`], and waits
//! (`Condvar` / `Notify`) when told to. Every decision is made here or in the
//! core, so both adapters behave the same.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use client_credentials::{
    AccessToken, Action, Config, Error, Event, Outgoing, ProviderMetadata, RefreshTicket, RequestId, RequestKind,
    Timestamp, TokenSource, TransportError, TransportErrorKind,
};

use crate::assertion_file::AssertionFile;
use crate::clock::TimeSource;
use crate::observe::{self, Attempts, Sent};
use crate::published::Published;
use crate::store::{store_failed, AsyncTokenStore, Blocking, FleetTurn, StoreChange, TokenStore};

/// `on_token_update`: called once for each new token.
pub type TokenCallback = Box<dyn Fn(&AccessToken) + Send + Sync>;
/// `on_error`: called when a refresh fails while the cached token is still served.
/// `on_refresh_failed`: called once per failed round.
pub type ErrorCallback = Box<dyn Fn(&Error) + Send + Sync>;

/// A boxed, `Send` future, as [`Io`] methods return (the tokio adapter's
/// `BoxFuture` is the same type).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the driver wakes the callers an adapter has waiting.
pub trait Wake: Send + Sync + 'static {
    /// The `tracing` target of the driver's log lines: the adapter's crate.
    const LOG_TARGET: crate::LogTarget = crate::LogTarget::Common;

    /// The state changed (a result arrived, a round ended, the token was
    /// dropped): wake every caller waiting, so it steps again.
    fn wake(&self);
}

/// An adapter's transport, as a future: the tokio adapter's is a real one;
/// the blocking adapter sends on the calling thread and returns a future
/// that is ready at once. The flight logic around it ([`Driver::fly`],
/// [`Driver::signout`], [`Driver::save_changes`]) is written once, here.
pub trait Io: Wake {
    /// Performs one HTTP exchange (no redirects, body capped).
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>>;
}

/// A custom token provider, as a future (see `ClientBuilder::token_provider`).
pub type Provider = Box<dyn Fn(Option<AccessToken>) -> BoxFuture<'static, Option<AccessToken>> + Send + Sync>;

/// What a client is built from, besides its I/O.
pub struct Settings {
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
    pub store: Option<Box<dyn AsyncTokenStore>>,
    /// The custom token provider, if any.
    pub provider: Option<Provider>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("store", &self.store.is_some())
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

/// The shared state of one client (all its clones): see the module docs.
pub struct Driver<W> {
    state: Mutex<State>,
    published: Published,
    settings: Settings,
    /// The client assertion file to read for the core, if the config names
    /// one: read under its own lock, never under `state`'s.
    assertion_file: Option<Mutex<AssertionFile>>,
    /// The labels of this client's metrics.
    labels: observe::Labels,
    /// The adapter's I/O: its transport, store, provider and waiters.
    pub io: W,
}

struct State {
    source: TokenSource,
    /// The store was read (or there is none); `loading`: a caller reads it now.
    loaded: bool,
    loading: bool,
    /// This round asked the provider already / began a fleet turn (so
    /// `end_fetch` is due when it ends).
    asked: bool,
    fleet: bool,
    /// The store changes not yet applied, oldest first, each with its
    /// number (recorded under this lock in the order they happen; at most a
    /// deletion then a save, see [`Driver::record`]), and whether a caller is
    /// applying changes now ([`Driver::save_changes`]).
    store_pending: VecDeque<(u64, StoreChange)>,
    store_busy: bool,
    /// How many changes were recorded; every change numbered up to
    /// `store_done` has been applied (or replaced by a later one that was).
    store_recorded: u64,
    store_done: u64,
    /// Callers waiting for a change of theirs to land ([`StoreSettled`]).
    store_waiters: Vec<Waker>,
    /// Numbers flights; `current` is the one running (0: none), so the
    /// result of a flight cut short by `signout()` is dropped.
    flights: u64,
    current: u64,
    /// Numbers each round's requests for their spans.
    attempts: Attempts,
}

/// Which result a caller is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A usable token (`token()`).
    Token,
    /// The outcome of the forced refresh that returned this ticket
    /// (`refresh()`): its new token, or its round's error.
    Refresh(RefreshTicket),
}

/// What a caller does next, from [`Driver::step`].
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per round
pub enum Step<W: Wake> {
    /// Return this token.
    Ready(AccessToken),
    /// Return this error.
    Failed(Error),
    /// Wait until woken ([`Wake::wake`]) or for this long (`None`: until
    /// woken), then step again.
    Wait(Option<Duration>),
    /// This caller holds the single flight: perform the task and hand its
    /// result to `Flight::finish`.
    Work(Work<W>),
}

/// A task for the caller holding the single flight, with the guard that
/// gives the flight back if the caller panics or is cancelled.
pub struct Work<W: Wake> {
    task: Task,
    flight: Flight<W>,
}

/// The I/O the driver asks an adapter to perform.
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per round
enum Task {
    /// Read the store (`load(config)`): the first call that needs the core
    /// does, inside the single flight.
    Load,
    /// Ask the custom provider, passing the cached token (if any). Once per
    /// round, before the round's first request.
    Provide(Option<AccessToken>),
    /// Call the store's `begin_fetch(config, now)` hook, right before the
    /// round's token request.
    BeginFetch(Timestamp),
    /// Perform this HTTP exchange.
    Send(http::Request<Vec<u8>>, Sent),
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Load => f.write_str("Load"),
            Task::Provide(_) => f.write_str("Provide"),
            Task::BeginFetch(_) => f.write_str("BeginFetch"),
            Task::Send(request, _) => write!(f, "Send({} {})", request.method(), crate::loggable_uri(request.uri())),
        }
    }
}

/// The result of a [`Task`].
enum Outcome {
    /// What `load` returned.
    Loaded(io::Result<Option<AccessToken>>),
    /// What the provider returned.
    Provided(Option<AccessToken>),
    /// What `begin_fetch` returned.
    Turn(io::Result<FleetTurn>),
    /// What the transport returned.
    Response(Result<http::Response<Vec<u8>>, TransportError>),
}

#[allow(clippy::large_enum_variant)] // one per flight
enum Job {
    None,
    Load,
    /// The round's first request, held while the provider or the fleet hook
    /// is asked (it stays in flight, so other callers wait or are served).
    Held(Outgoing),
    Sent(RequestId),
    Revoke(RequestId),
}

/// The single flight, held by the caller performing its task. Dropped
/// without [`Flight::finish`] (a panic, a cancelled future), it gives the
/// flight back to the core and wakes every waiter, so one caller's failure
/// never leaves the others waiting for a result that will not come.
struct Flight<W: Wake> {
    driver: Arc<Driver<W>>,
    number: u64,
    job: Job,
    /// The span of the caller that started the flight: the parent of its
    /// requests' spans, wherever the flight runs.
    parent: tracing::Span,
}

/// What [`Flight::finish`] leads to.
enum Next<W: Wake> {
    /// The flight goes on with another task (e.g. the token request after
    /// discovery, the request after the provider had nothing).
    Work(Work<W>),
    /// The flight is over: apply the store effects, then [`Done::announce`].
    Done(Done<W>),
}

/// The end of a flight: save the store's changes, call `end_fetch` if due,
/// then [`Done::announce`] runs the callbacks; dropping it wakes the waiters.
struct Done<W: Wake> {
    /// Whether to call the store's `end_fetch(config)` (after the save).
    end_fetch: bool,
    announce: Announce,
    flight: Flight<W>,
}

enum Announce {
    Nothing,
    Token(AccessToken),
    RefreshFailed(Error),
    /// A round failed with no usable token (its error goes to the callers).
    RoundFailed(Error),
}

impl<W: Wake> Driver<W> {
    /// A driver for `settings`, doing its I/O and waking through `io`.
    pub fn new(settings: Settings, io: W) -> Self {
        // Always random: processes sharing a client must never repeat a jti.
        let source = TokenSource::new(settings.config.clone(), crate::random_bytes());
        let assertion_file = settings
            .config
            .assertion_file()
            .map(|path| Mutex::new(AssertionFile::new(path)));
        let loaded = settings.store.is_none();
        Driver {
            state: Mutex::new(State {
                source,
                loaded,
                loading: false,
                asked: false,
                fleet: false,
                store_pending: VecDeque::new(),
                store_busy: false,
                store_recorded: 0,
                store_done: 0,
                store_waiters: Vec::new(),
                flights: 0,
                current: 0,
                attempts: Attempts::default(),
            }),
            published: Published::new(),
            labels: observe::Labels::new(&settings.config),
            settings,
            assertion_file,
            io,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is complete at each unlock (one core call, then
        // bookkeeping that cannot panic): a panic elsewhere while the lock
        // was held leaves a consistent state. Carry on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Counts a caller among this client's waiting callers until the
    /// returned guard is dropped (see [`observe::Waiting`]).
    pub fn waiting(&self) -> observe::Waiting {
        observe::Waiting::new(&self.labels)
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
        self.lock().source.metadata().cloned()
    }

    /// Whether a token is cached (fresh or not), for `Debug`.
    pub fn has_token(&self) -> bool {
        self.lock().source.token().is_some()
    }

    /// When the cached token is due for refresh (`None`: nothing cached).
    pub fn refresh_at(&self) -> Option<Timestamp> {
        self.lock().source.refresh_at()
    }

    /// For a background refresh task: `None` when a refresh is due now,
    /// else how long to wait before asking again (`Some(None)`: until the
    /// state changes). Not due while a flight runs, nor before the core lets
    /// the next request go ([`TokenSource::retry_at`]: the back-off and
    /// cool-down after failures apply with no caller at all).
    pub fn refresh_due(&self) -> Option<Option<Duration>> {
        let state = self.lock();
        let at = match state.source.refresh_at() {
            _ if state.current != 0 => return Some(None),
            Some(at) if at != Timestamp::MAX => at.max(state.source.retry_at().unwrap_or(at)),
            _ => return Some(None),
        };
        (at > self.now()).then(|| self.settings.clock.wait_for(Some(at)))
    }

    fn publish(&self, source: &TokenSource) {
        self.published.publish(source.token().zip(source.refresh_at()));
        observe::token_times(&self.labels, source, || self.now());
    }

    fn flight(self: &Arc<Self>, state: &mut State, job: Job) -> Flight<W> {
        if state.current == 0 {
            state.flights += 1;
            state.current = state.flights;
        }
        Flight {
            driver: Arc::clone(self),
            number: state.current,
            job,
            parent: tracing::Span::current(),
        }
    }

    /// Records a store change, in the order of the state changes (this runs
    /// under the lock that made them). A deletion (or eviction) replaces
    /// every change not yet applied; a save replaces a pending save but never a pending
    /// deletion, which still lands first: otherwise a save applying now (of
    /// the token the deletion dropped) would stay in the store if the later
    /// save failed or never ran.
    fn record(&self, state: &mut State, change: StoreChange) -> bool {
        if self.settings.store.is_some() {
            state.store_recorded += 1;
            let pending = &mut state.store_pending;
            match change {
                StoreChange::Delete | StoreChange::Evict(_) => pending.clear(),
                StoreChange::Save(_) => {
                    if matches!(pending.back(), Some((_, StoreChange::Save(_)))) {
                        pending.pop_back();
                    }
                }
            }
            pending.push_back((state.store_recorded, change));
        }
        self.settings.store.is_some()
    }

    /// What the caller in `mode` does next.
    pub fn step(self: &Arc<Self>, mode: Mode) -> Step<W> {
        let now = self.now();
        let mut state = self.lock();
        if !state.loaded {
            if state.loading {
                return Step::Wait(self.settings.clock.wait_for(None));
            }
            state.loading = true;
            let flight = self.flight(&mut state, Job::Load);
            return Step::Work(Work {
                task: Task::Load,
                flight,
            });
        }
        if let Some(file) = &self.assertion_file {
            // Only when a request may be built: a fresh token needs no assertion.
            if state.source.refresh_at().is_none_or(|at| now >= at) {
                // Read outside the state lock: callers served from cache, and
                // the flight's own bookkeeping, never wait for a file system.
                // Callers that need the assertion read it one at a time, so
                // each sees the content the one before handed over.
                drop(state);
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                let content = file.read_if_changed();
                state = self.lock();
                drop(file);
                if let Some(content) = content {
                    state.source.provide_assertion(content);
                }
            }
        }
        let state = &mut *state;
        let action = match mode {
            Mode::Token => state.source.poll(now),
            Mode::Refresh(ticket) => state.source.poll_refresh(now, ticket),
        };
        let outgoing = match action {
            Action::Ready(token) => return Step::Ready(token.clone()),
            Action::Failed(error) => return Step::Failed(error.clone()),
            Action::Wait { until } => return Step::Wait(self.settings.clock.wait_for(until)),
            Action::Send(outgoing) => outgoing,
        };
        let (task, job) = self.start(state, now, outgoing);
        let flight = self.flight(state, job);
        Step::Work(Work { task, flight })
    }

    /// The next task of a round for `outgoing`: ask the provider (once per
    /// round), then the fleet (before a token request), then send.
    fn start(&self, state: &mut State, now: Timestamp, outgoing: Outgoing) -> (Task, Job) {
        if self.settings.provider.is_some() && !state.asked {
            state.asked = true;
            (Task::Provide(state.source.token().cloned()), Job::Held(outgoing))
        } else if self.settings.store.is_some() && !state.fleet && outgoing.kind == RequestKind::Token {
            state.fleet = true;
            (Task::BeginFetch(now), Job::Held(outgoing))
        } else {
            let Outgoing { id, kind, request } = outgoing;
            crate::log_event!(W::LOG_TARGET, debug, request = %id, ?kind, method = %request.method(), uri = %crate::loggable_uri(request.uri()), "client-credentials: sending");
            let attempt = state.attempts.next(kind);
            (Task::Send(request, Sent { kind, id, attempt }), Job::Sent(id))
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
    /// it asked for one, else the latest kept for `uri`'s origin
    /// ([`Driver::remember_dpop_nonce`]). `Ok(None)` when the config has no DPoP key.
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
        self.lock().source.dpop_proof(now, method, uri, Some(token), nonce)
    }

    /// A resource server sent `nonce` as its `DPoP-Nonce` (RFC 9449 §9):
    /// the next proof for `url`'s origin carries it, so a server that
    /// demands nonces costs one extra request per nonce, not per call.
    pub fn remember_dpop_nonce(&self, url: &str, nonce: &str) {
        if self.settings.config.dpop_key().is_some() {
            self.lock().source.remember_dpop_nonce(url, nonce);
        }
    }

    /// A resource server's 401 to a request for `requested` named where its
    /// RFC 9728 metadata is: read it there at the next discovery (with
    /// `Config::builder(..).resource_server(..)`, and only on the resource's
    /// own origin; see `TokenSource::follow_resource_metadata`).
    pub fn follow_resource_metadata(&self, requested: &str, url: &str) -> bool {
        self.lock().source.follow_resource_metadata(requested, url)
    }

    /// Forces a refresh: the mode to step in for its outcome, or the error of
    /// the failed round whose cool-down still runs (nothing is sent then, and
    /// `token()` keeps serving the unexpired token).
    pub fn refresh(&self) -> Result<Mode, Error> {
        let now = self.now();
        let mut state = self.lock();
        let ticket = state.source.force_refresh_at(now)?;
        self.publish(&state.source);
        Ok(Mode::Refresh(ticket))
    }

    /// The resource server rejected `token`: stop serving it (see
    /// [`TokenSource::invalidate_at`]: a token rejected soon after it was
    /// fetched fails the round, and callers get the back-off's error).
    /// Returns whether it was the cached token and its eviction from the
    /// store (deleted only if the store still holds it) is due
    /// ([`Driver::save_changes`]).
    pub fn invalidate(&self, token: &AccessToken) -> bool {
        let now = self.now();
        let mut state = self.lock();
        if !state.source.invalidate_at(now, token) {
            return false;
        }
        self.publish(&state.source);
        let delete = self.record(&mut state, StoreChange::Evict(token.clone()));
        drop(state);
        self.io.wake();
        delete
    }

    /// A round ended: the next one asks the provider and the fleet again.
    /// Returns whether the fleet's `end_fetch` is due.
    fn end_round(state: &mut State) -> bool {
        state.asked = false;
        state.attempts.reset();
        std::mem::take(&mut state.fleet)
    }

    /// Caches `token` from the provider or the fleet if the core takes it:
    /// usable now and expiring later than the cached one (a provided token
    /// never downgrades the cache).
    fn offer(source: &mut TokenSource, now: Timestamp, token: &AccessToken) -> bool {
        source.offer_token(now, token.clone())
    }
}

impl<W: Wake> Flight<W> {
    /// Hands back the result of the task: the flight goes on, or is done.
    fn finish(mut self, outcome: Outcome) -> Next<W> {
        let driver = Arc::clone(&self.driver);
        let now = driver.now();
        let mut state = driver.lock();
        let job = std::mem::replace(&mut self.job, Job::None);
        let current = state.current == self.number;
        let mut done = Done {
            end_fetch: false,
            announce: Announce::Nothing,
            flight: self,
        };
        match (job, outcome) {
            (Job::Load, Outcome::Loaded(result)) if current => {
                state.loading = false;
                state.loaded = true;
                match result {
                    Ok(Some(token)) if state.source.token().is_none() => state.source.insert_token(token),
                    Ok(_) => {}
                    Err(error) => store_failed(W::LOG_TARGET, "load", &error),
                }
            }
            (Job::Held(outgoing), Outcome::Provided(token)) if current => {
                match token.filter(|token| Driver::<W>::offer(&mut state.source, now, token)) {
                    Some(token) => {
                        state.source.abandon(outgoing.id);
                        done.end_fetch = Driver::<W>::end_round(&mut state);
                        driver.record(&mut state, StoreChange::Save(token.clone()));
                        done.announce = Announce::Token(token);
                    }
                    None => return done.continue_with(&mut state, now, outgoing),
                }
            }
            (Job::Held(outgoing), Outcome::Turn(turn)) if current => {
                observe::fleet_turn(&driver.labels, &turn);
                let token = match turn {
                    Ok(FleetTurn::Use(token)) => Some(token),
                    Ok(FleetTurn::Fetch) => None,
                    Err(error) => {
                        crate::log_event!(W::LOG_TARGET, warn, %error, "client-credentials: the store's fleet hook failed; fetching");
                        None
                    }
                };
                match token.filter(|token| Driver::<W>::offer(&mut state.source, now, token)) {
                    // The fleet's token is in the store already: not saved again.
                    Some(token) => {
                        state.source.abandon(outgoing.id);
                        done.end_fetch = Driver::<W>::end_round(&mut state);
                        done.announce = Announce::Token(token);
                    }
                    None => return done.continue_with(&mut state, now, outgoing),
                }
            }
            (Job::Sent(id), Outcome::Response(result)) => {
                let handled = match result {
                    Ok(response) => state.source.handle_response(now, id, response),
                    Err(error) => state.source.handle_transport_error(now, id, error),
                };
                let capped = match &handled {
                    Ok(
                        Event::RetryScheduled { retry_after_capped, .. }
                        | Event::RefreshFailed { retry_after_capped, .. },
                    ) => *retry_after_capped,
                    Ok(_) | Err(Error::UnknownRequest { .. }) => None,
                    // The round failed without a usable token.
                    Err(_) => state.source.retry_after_capped(),
                };
                if let Some(asked) = capped {
                    crate::log_event!(W::LOG_TARGET, warn,
                        request = %id,
                        retry_after_secs = asked.as_secs(),
                        waiting_secs = driver.config().retry().max_retry_after.as_secs(),
                        "client-credentials: the provider's Retry-After is longer than max_retry_after; waiting the maximum"
                    );
                }
                observe::handled(&driver.labels, now, &handled);
                match handled {
                    Ok(Event::TokenUpdated(token)) => {
                        done.end_fetch = Driver::<W>::end_round(&mut state);
                        driver.record(&mut state, StoreChange::Save(token.clone()));
                        done.announce = Announce::Token(token);
                    }
                    Ok(Event::RefreshFailed { error, .. }) => {
                        done.end_fetch = Driver::<W>::end_round(&mut state);
                        done.announce = Announce::RefreshFailed(error);
                    }
                    Ok(Event::DiscoveryUpdated(_) | Event::Fallback { .. }) => {
                        // The round goes on at once (the token request after
                        // discovery, the next location, the other grant).
                        if let Action::Send(outgoing) = state.source.poll(now) {
                            return done.continue_with(&mut state, now, outgoing);
                        }
                    }
                    Ok(event) => {
                        crate::log_event!(W::LOG_TARGET, debug, request = %id, ?event, "client-credentials: handled")
                    }
                    Err(Error::UnknownRequest { .. }) => {}
                    Err(error) => {
                        crate::log_event!(W::LOG_TARGET, debug, request = %id, %error, "client-credentials: round failed");
                        done.end_fetch = Driver::<W>::end_round(&mut state);
                        done.announce = Announce::RoundFailed(error);
                    }
                }
            }
            // A flight cut short by `signout()`: its result changes nothing.
            _ => {}
        }
        if current {
            state.current = 0;
        }
        driver.publish(&state.source);
        Next::Done(done)
    }

    /// Hands back the revocation's result: `Ok` when revoked, or when
    /// nothing was left to revoke.
    fn revoked(mut self, result: Result<http::Response<Vec<u8>>, TransportError>) -> Result<(), Error> {
        let Job::Revoke(id) = std::mem::replace(&mut self.job, Job::None) else {
            return Ok(());
        };
        let driver = Arc::clone(&self.driver);
        let now = driver.now();
        let mut state = driver.lock();
        let handled = match result {
            Ok(response) => state.source.handle_response(now, id, response),
            Err(error) => state.source.handle_transport_error(now, id, error),
        };
        if state.current == self.number {
            state.current = 0;
        }
        match handled {
            Ok(_) | Err(Error::UnknownRequest { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl<W: Wake> Done<W> {
    /// The same flight goes on with the next task for `outgoing`.
    fn continue_with(self, state: &mut State, now: Timestamp, outgoing: Outgoing) -> Next<W> {
        let mut flight = self.flight;
        let (task, job) = flight.driver.start(state, now, outgoing);
        flight.job = job;
        flight.driver.publish(&state.source);
        Next::Work(Work { task, flight })
    }

    /// Runs the callbacks for the flight's outcome (`on_token_update` for a
    /// new token, `on_error` and a warning for a failed refresh,
    /// `on_refresh_failed` for any failed round); dropping `self` then wakes
    /// the waiters.
    fn announce(self) {
        let (settings, labels) = (&self.flight.driver.settings, &self.flight.driver.labels);
        let failed = match &self.announce {
            Announce::Token(token) => {
                if let Some(callback) = &settings.on_token_update {
                    callback(token);
                }
                None
            }
            Announce::RefreshFailed(error) => {
                crate::log_event!(W::LOG_TARGET, warn, %error, "client-credentials: refresh failed; the cached token is served until it expires");
                if let Some(callback) = &settings.on_error {
                    callback(error);
                }
                Some(error)
            }
            Announce::RoundFailed(error) => Some(error),
            Announce::Nothing => None,
        };
        if let Some(error) = failed {
            observe::round_failed(labels, error);
            if let Some(callback) = &settings.on_refresh_failed {
                callback(error);
            }
        }
    }
}

impl<W: Wake> Drop for Flight<W> {
    fn drop(&mut self) {
        let job = std::mem::replace(&mut self.job, Job::None);
        if !matches!(job, Job::None) {
            // Unfinished: the caller panicked or its future was dropped.
            let mut state = self.driver.lock();
            let current = state.current == self.number;
            match job {
                // Start without the store rather than fail again.
                Job::Load if current => {
                    state.loading = false;
                    state.loaded = true;
                }
                Job::Held(outgoing) if current => {
                    state.source.abandon(outgoing.id);
                }
                // Sent, and its answer will never come: a failed attempt,
                // so a transport that panics or a task that is cancelled
                // again and again is backed off like a provider that fails.
                Job::Sent(id) => {
                    let now = self.driver.now();
                    let lost = TransportError::new(
                        TransportErrorKind::Other,
                        "the request's task ended before its answer (it panicked or was cancelled)",
                    );
                    let _ = state.source.handle_transport_error(now, id, lost);
                }
                Job::Revoke(id) => {
                    state.source.abandon(id);
                }
                _ => {}
            }
            if current {
                state.current = 0;
            }
            self.driver.publish(&state.source);
        }
        self.driver.io.wake();
    }
}

impl Settings {
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
        }
    }

    /// Uses a blocking store (its futures are ready at once).
    pub fn blocking_store(&mut self, store: impl TokenStore) {
        self.store = Some(Box::new(Blocking(Box::new(store))));
    }

    /// Uses a blocking provider (its futures are ready at once).
    pub fn blocking_provider(
        &mut self,
        provider: impl Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync + 'static,
    ) {
        self.provider = Some(Box::new(move |last| {
            Box::pin(std::future::ready(provider(last.as_ref())))
        }));
    }
}

impl<W: Wake> fmt::Debug for Driver<W> {
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

impl<W: Io> Driver<W> {
    /// Runs a flight to its end: its tasks, then the store's changes, the
    /// fleet's `end_fetch`, the callbacks, and the wake-up.
    pub async fn fly(self: Arc<Self>, work: Work<W>) {
        let Work { mut task, mut flight } = work;
        let done = loop {
            let outcome = self.perform(task, &flight.parent).await;
            match flight.finish(outcome) {
                Next::Work(next) => (task, flight) = (next.task, next.flight),
                Next::Done(done) => break done,
            }
        };
        self.save_changes().await;
        if let (true, Some(store)) = (done.end_fetch, &self.settings.store) {
            store.end_fetch(self.config()).await;
        }
        done.announce();
    }

    /// Performs a flight's task with the adapter's transport, the store, the provider.
    async fn perform(&self, task: Task, parent: &tracing::Span) -> Outcome {
        let (config, store) = (self.config(), self.settings.store.as_deref());
        match task {
            Task::Send(request, sent) => {
                let send = |request| self.io.send(request);
                Outcome::Response(observe::send(config, &self.labels, parent, sent, request, send).await)
            }
            Task::Provide(last) => Outcome::Provided(match &self.settings.provider {
                Some(provide) => provide(last).await,
                None => None,
            }),
            Task::Load => Outcome::Loaded(match store {
                Some(store) => store.load(config).await,
                None => Ok(None),
            }),
            Task::BeginFetch(now) => Outcome::Turn(match store {
                Some(store) => store.begin_fetch(config, now).await,
                None => Ok(FleetTurn::Fetch),
            }),
        }
    }

    /// Applies the store's pending changes in order: unless another caller
    /// is applying them already (it then applies this one too, after its
    /// own), so a save never lands after the sign-out or invalidation that
    /// dropped its token, and two quick saves land in order.
    pub async fn save_changes(&self) {
        let mut turn = StoreTurn {
            driver: self,
            held: false,
            applying: None,
        };
        let Some(store) = &self.settings.store else { return };
        while let Some(change) = turn.next() {
            let result = match &change {
                StoreChange::Save(token) => store.save(self.config(), token).await,
                StoreChange::Delete => store.delete(self.config()).await,
                StoreChange::Evict(token) => store.evict(self.config(), token).await,
            };
            if let Err(error) = result {
                store_failed(W::LOG_TARGET, change.verb(), &error);
            }
        }
    }

    /// Forgets the token (in memory and in the store) and any flight under
    /// way, and revokes the token (RFC 7009) when the provider has a
    /// revocation endpoint: the revocation's error, if any. Returns once the
    /// store's deletion has landed, even when another caller applies it.
    pub async fn signout(self: &Arc<Self>) -> Result<(), Error> {
        let (deletion, revocation) = {
            let mut state = self.lock();
            let outgoing = state.source.signout();
            state.current = 0;
            state.loading = false;
            state.loaded = true;
            state.asked = false;
            state.fleet = false;
            self.publish(&state.source);
            let deletion = self
                .record(&mut state, StoreChange::Delete)
                .then_some(state.store_recorded);
            let revoke = outgoing.map(|outgoing| {
                let sent = Sent {
                    kind: outgoing.kind,
                    id: outgoing.id,
                    attempt: 1,
                };
                (
                    outgoing.request,
                    sent,
                    self.flight(&mut state, Job::Revoke(outgoing.id)),
                )
            });
            (deletion, revoke)
        };
        self.io.wake();
        self.save_changes().await;
        if let Some(seq) = deletion {
            // Another caller may be applying changes (then it applies ours
            // after its own): wait for it, or take over if it stopped.
            while !(StoreSettled { driver: &**self, seq }).await {
                self.save_changes().await;
            }
        }
        let Some((request, sent, flight)) = revocation else {
            return Ok(());
        };
        let result = observe::send(self.config(), &self.labels, &flight.parent, sent, request, |request| {
            self.io.send(request)
        })
        .await;
        flight.revoked(result)
    }
}

/// The right to apply store changes, given back when dropped (even by a
/// panicking store). `applying`: the number of the change being applied.
struct StoreTurn<'a, W: Wake> {
    driver: &'a Driver<W>,
    held: bool,
    applying: Option<u64>,
}

impl<W: Wake> StoreTurn<'_, W> {
    fn next(&mut self) -> Option<StoreChange> {
        let mut state = self.driver.lock();
        if state.store_busy && !self.held {
            return None;
        }
        let waiters = self.finished(&mut state);
        let change = state.store_pending.pop_front().map(|(seq, change)| {
            self.applying = Some(seq);
            change
        });
        state.store_busy = change.is_some();
        self.held = state.store_busy;
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
        change
    }

    /// The change being applied is done (applied, failed, or its store
    /// panicked): the waiters for it are due.
    fn finished(&mut self, state: &mut State) -> Vec<Waker> {
        match self.applying.take() {
            Some(seq) => {
                state.store_done = state.store_done.max(seq);
                std::mem::take(&mut state.store_waiters)
            }
            None => Vec::new(),
        }
    }
}

impl<W: Wake> Drop for StoreTurn<'_, W> {
    fn drop(&mut self) {
        if self.held {
            let mut state = self.driver.lock();
            state.store_busy = false;
            let mut waiters = self.finished(&mut state);
            waiters.append(&mut state.store_waiters);
            drop(state);
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}

/// Resolves once store change `seq` has landed (`true`), or when no caller
/// is applying changes any more (`false`: the waiter applies them itself).
struct StoreSettled<'a, W> {
    driver: &'a Driver<W>,
    seq: u64,
}

impl<W: Wake> Future for StoreSettled<'_, W> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.driver.lock();
        if state.store_done >= self.seq {
            Poll::Ready(true)
        } else if !state.store_busy {
            Poll::Ready(false)
        } else {
            state.store_waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }
}
