//! The shell both adapters loop around, over the core's sans-IO
//! [`client_credentials::driver`]: the lock around it, the published
//! snapshot for lock-free cached reads, the clock, the callbacks and logs,
//! reading the assertions (files, callbacks), and the guard that hands an
//! unfinished job back. Every decision (single flight, store order, provider
//! and fleet rounds, sign-out, background timing) is the core driver's; an
//! adapter asks [`Driver::step`] what to do, performs its own I/O for each
//! task of a [`Job`] outside the lock (a request, a store call, the
//! provider, an assertion read, an external signature), and waits
//! (`Condvar` / `Notify`) when told to.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use client_credentials::driver::{self as machine, AssertionRole, Background, Call, Caller, Invalidated, Settle};
use client_credentials::{
    AccessToken, Config, DpopProof, Error, Outgoing, ProviderMetadata, Timestamp, TokenParams, TokenSource,
};

use crate::clock::TimeSource;
use crate::job::{Job, Revocation, Step};
use crate::observe;
use crate::published::Published;
use crate::settings::Settings;

/// How the shell wakes the callers an adapter has waiting.
pub trait Wake: Send + Sync + 'static {
    /// The `tracing` target of the shell's log lines: the adapter's crate.
    const LOG_TARGET: crate::LogTarget = crate::LogTarget::Common;

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

/// The shared state of one client's token (all the client's clones): see
/// the module docs. A client serving several keys ([`TokenParams`]) has
/// one per key, sharing the settings (store, provider, callbacks, clock)
/// and the adapter's I/O (transport, waiters); see [`Driver::for_key`].
///
/// [`TokenParams`]: client_credentials::TokenParams
pub struct Driver<W: Io> {
    /// What a cached read touches, kept together.
    front: Front,
    state: Mutex<State>,
    /// This key's configuration (the client's own, or with a key's params).
    config: Config,
    /// The first 8 hex digits of the config's fingerprint: names the key in
    /// logs and spans without revealing what it is for. (Inline: every key
    /// has one, and 8 ASCII bytes need no allocation.)
    key: [u8; 8],
    /// Why this key can fetch nothing (its params were refused): every call
    /// that reaches the lock returns it. (Boxed: most keys have none.)
    refused: Option<Box<Error>>,
    pub(crate) settings: Arc<Settings<W::Store, W::Provider>>,
    /// The assertion files read so far, each with what was last seen of it,
    /// by role: read by one caller at a time (the core driver says which),
    /// never under `state`'s lock.
    pub(crate) assertion_files: Mutex<Vec<(AssertionRole, crate::assertion_file::AssertionFile)>>,
    /// The labels of this key's metrics.
    pub(crate) labels: observe::Labels,
    /// The adapter's side: its transport, waiters (shared by every key).
    pub io: Arc<W>,
}

/// The fields of a [`Driver`] a cached read of its key touches, side by
/// side (a driver is over a kilobyte; a read at many keys pays a cache miss
/// per line it touches).
#[repr(C)]
struct Front {
    published: Published,
    /// The client is on the wall clock: cached reads skip the lock.
    wall_clock: bool,
    /// When the key was last used, in its [`Keys`](crate::Keys)' ticks.
    last_used: AtomicU64,
    /// The key's params (empty: the client's default key).
    params: TokenParams,
}

struct State {
    /// The core driver while it works: boxed, as it is large and most of a
    /// client's keys are idle, [resting](machine::Resting) instead. Exactly
    /// one of `live` and `resting` is set between calls.
    live: Option<Box<machine::Driver>>,
    resting: Option<machine::Resting>,
    /// What was last published (the token and its refresh time), so an
    /// unchanged state is not published again.
    shown: Option<(AccessToken, Timestamp)>,
}

impl State {
    /// The state of a new driver: at rest when `keyed` and it can (a key
    /// made by `with_params` may stay unused for long; without a store
    /// to load, a new driver can rest).
    fn new(machine: machine::Driver, keyed: bool) -> State {
        let mut state = State {
            live: Some(Box::new(machine)),
            resting: None,
            shown: None,
        };
        if keyed {
            state.rest();
        }
        state
    }

    /// The live core driver, woken if it rests (it then stays live until a
    /// job of its ends and it rests again).
    fn live(&mut self, fresh: impl FnOnce() -> machine::Driver) -> &mut machine::Driver {
        if let Some(resting) = self.resting.take() {
            self.live = Some(Box::new(resting.wake()));
        }
        // Never empty: one of the two is set between calls, and nothing
        // between the `take` and the wake above can fail. Were it empty,
        // the key would start afresh (`fresh`) rather than fail.
        self.live.get_or_insert_with(|| Box::new(fresh()))
    }

    /// Rests the core driver if it can (see [`machine::Driver::rest`]).
    fn rest(&mut self) {
        if let Some(live) = self.live.take() {
            match live.rest() {
                Ok(resting) => self.resting = Some(resting),
                Err(live) => self.live = Some(live),
            }
        }
    }

    /// The cached token and its refresh time, live or at rest.
    fn published(&self) -> Option<(&AccessToken, Timestamp)> {
        match (&self.live, &self.resting) {
            (Some(live), _) => live.published(),
            (None, Some(resting)) => resting.published(),
            (None, None) => None,
        }
    }

    /// The cached token, fresh or not, live or at rest.
    fn token(&self) -> Option<&AccessToken> {
        match (&self.live, &self.resting) {
            (Some(live), _) => live.token(),
            (None, Some(resting)) => resting.token(),
            (None, None) => None,
        }
    }

    /// The metadata in use, live or at rest.
    fn metadata(&self) -> Option<&ProviderMetadata> {
        match (&self.live, &self.resting) {
            (Some(live), _) => live.metadata(),
            (None, Some(resting)) => resting.metadata(),
            (None, None) => None,
        }
    }

    /// For a background refresh task, live or at rest.
    fn background(&self, now: Timestamp) -> Background {
        match (&self.live, &self.resting) {
            (Some(live), _) => live.background(now),
            (None, Some(resting)) => resting.background(now),
            (None, None) => Background::Sleep(None),
        }
    }
}

/// A new core driver for `config`, with the client's store and provider.
fn fresh_machine<S: ?Sized, P: ?Sized>(config: &Config, settings: &Settings<S, P>) -> machine::Driver {
    // Always random: processes sharing a client must never repeat a jti.
    let source = TokenSource::new(config.clone(), crate::random_bytes());
    let mut machine = machine::Driver::new(source);
    if settings.store.is_some() {
        machine = machine.with_store();
    }
    if settings.provider.is_some() {
        machine = machine.with_provider();
    }
    machine
}

impl<W: Io> Driver<W> {
    /// A driver for `settings`, waking through `io`.
    pub fn new(settings: Settings<W::Store, W::Provider>, io: W) -> Self {
        let config = settings.config.clone();
        Driver::keyed(Arc::new(settings), Arc::new(io), config, TokenParams::new(), None)
    }

    /// A driver for another key of the same client: `params`, whose config
    /// (from `Config::with_params`) is `config`, sharing this one's settings
    /// and I/O, with its own token, single flight and failure state.
    pub fn for_key(&self, config: Config, params: TokenParams) -> Self {
        Driver::keyed(Arc::clone(&self.settings), Arc::clone(&self.io), config, params, None)
    }

    /// A driver for a key whose params were refused: every call that misses
    /// the (empty) cache returns `error`; nothing is ever sent.
    pub fn refusing(&self, error: Error) -> Self {
        Driver::keyed(
            Arc::clone(&self.settings),
            Arc::clone(&self.io),
            self.config.clone(),
            TokenParams::new(),
            Some(Box::new(error)),
        )
    }

    fn keyed(
        settings: Arc<Settings<W::Store, W::Provider>>,
        io: Arc<W>,
        config: Config,
        params: TokenParams,
        refused: Option<Box<Error>>,
    ) -> Self {
        let machine = fresh_machine(&config, &settings);
        let keyed = !params.is_empty();
        // The fingerprint is 64 hex digits: its first 8 are ASCII.
        let mut key = [b'0'; 8];
        for (byte, digit) in key.iter_mut().zip(config.fingerprint().bytes()) {
            *byte = digit;
        }
        Driver {
            front: Front {
                // A key among many is read through `fresh_shared`.
                published: match keyed {
                    false => Published::new(),
                    true => Published::striped(),
                },
                wall_clock: matches!(settings.clock, TimeSource::System),
                last_used: AtomicU64::new(0),
                params,
            },
            state: Mutex::new(State::new(machine, keyed)),
            labels: observe::Labels::new(&config),
            key,
            refused,
            config,
            settings,
            assertion_files: Mutex::new(Vec::new()),
            io,
        }
    }

    /// The key's short name: the first 8 hex digits of its config's
    /// fingerprint (logs, spans; it reveals nothing the key is for).
    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.key).unwrap_or("")
    }

    /// Whether a caller of this key is waiting or working (something
    /// besides `holders` holds it): such a key is never evicted.
    pub fn is_idle(self: &Arc<Self>, holders: usize) -> bool {
        Arc::strong_count(self) <= holders
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is complete at each unlock (one driver call, then
        // publishing, which cannot panic): a panic elsewhere while the lock
        // was held leaves a consistent state. Carry on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the core driver under the lock, then publishes the
    /// cached token if it changed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut machine::Driver, Timestamp) -> R) -> R {
        let now = self.now();
        let mut state = self.lock();
        let result = self.run(&mut state, now, f);
        self.publish(&mut state, now);
        result
    }

    /// Runs `f` on the live core driver (woken if it rests), between
    /// adopting the client's latest discovery and publishing the key's own
    /// when it discovers (see `SharedDiscovery`).
    fn run<R>(&self, state: &mut State, now: Timestamp, f: impl FnOnce(&mut machine::Driver, Timestamp) -> R) -> R {
        let machine = state.live(|| fresh_machine(&self.config, &self.settings));
        match machine.discovers() {
            false => f(machine, now),
            // The keys of one client discover once (see `SharedDiscovery`).
            true => {
                // This key's identity among the client's keys: its address,
                // stable while it lives (behind its `Arc`), never dereferenced.
                let key = std::ptr::from_ref(self) as usize;
                self.settings.discovery.around(machine, now, key, f)
            }
        }
    }

    /// Hands back the result of a job's task: [`Driver::with`], and when
    /// the job is over, a keyed driver rests if it can (one of many keys,
    /// mostly idle; the default key, one per client, stays live). Only here,
    /// at a job's end, not after each call through the lock: a key used
    /// through the lock is served at rest without waking, and one woken
    /// for anything else stays live until its next job ends.
    pub(crate) fn handle(&self, ticket: machine::Ticket, outcome: machine::Outcome) -> Option<machine::Work> {
        let now = self.now();
        let mut state = self.lock();
        let next = self.run(&mut state, now, |machine, now| machine.handle(now, ticket, outcome));
        self.publish(&mut state, now);
        if next.is_none() && !self.front.params.is_empty() {
            state.rest();
        }
        next
    }

    /// Publishes the cached token if it changed since it was last shown.
    fn publish(&self, state: &mut State, now: Timestamp) {
        let current = state.published();
        let unchanged = match (&state.shown, current) {
            (Some((shown, shown_at)), Some((token, at))) => *shown_at == at && shown.same_token(token),
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            self.front.published.publish(current);
            if let Some(live) = &state.live {
                observe::token_times(&self.labels, live, || now);
            }
            state.shown = current.map(|(token, at)| (token.clone(), at));
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
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
        match self.front.wall_clock {
            true => self.front.published.fresh(),
            false => None,
        }
    }

    /// [`Driver::fresh`] without this thread's copy of the token: one
    /// atomic load and a clone of the shared token (no allocation), for
    /// reads spread over many keys, where per-thread copies would mostly miss.
    #[inline]
    pub fn fresh_shared(&self) -> Option<AccessToken> {
        match self.front.wall_clock {
            true => self.front.published.fresh_shared(),
            false => None,
        }
    }

    /// The params of this driver's key (empty: the client's default key).
    #[inline]
    pub fn params(&self) -> &TokenParams {
        &self.front.params
    }

    /// When this key was last used, as stamped by [`Driver::touch`].
    pub fn last_used(&self) -> u64 {
        self.front.last_used.load(Ordering::Relaxed)
    }

    /// Stamps the key used at `tick` (an LRU clock's value): a write only
    /// when the stamp changes, so a key read over and over by many threads
    /// keeps its cache line shared between their cores.
    #[inline]
    pub fn touch(&self, tick: u64) {
        if self.front.last_used.load(Ordering::Relaxed) != tick {
            self.front.last_used.store(tick, Ordering::Relaxed);
        }
    }

    /// The discovered provider metadata, if any: this key's, or the
    /// client's latest (another key may have discovered it).
    pub fn metadata(&self) -> Option<ProviderMetadata> {
        if let Some(metadata) = self.lock().metadata() {
            return Some(metadata.clone());
        }
        self.settings.discovery.latest()?.metadata().cloned()
    }

    /// Whether a token is cached (fresh or not), for `Debug`.
    pub fn has_token(&self) -> bool {
        self.lock().token().is_some()
    }

    /// What the caller holding `call` does next.
    pub fn step<C: Caller>(self: &Arc<Self>, call: &mut C) -> Step<W, C::Output> {
        if let Some(error) = &self.refused {
            return Step::Failed(Error::clone(error));
        }
        match self.step_core(call) {
            machine::Step::Ready(value) => Step::Ready(value),
            machine::Step::Failed(error) => Step::Failed(error),
            machine::Step::Wait { until } => Step::Wait(self.settings.clock.wait_for(until)),
            machine::Step::Work(work) => Step::Work(Job {
                driver: Arc::clone(self),
                work: Some(work),
                ticket: None,
                parent: tracing::Span::current(),
                wake_when_dropped: None,
            }),
        }
    }

    /// The core's step for `call`: answered at rest when the call needs
    /// nothing else (a fresh token), else by the live driver.
    fn step_core<C: Caller>(&self, call: &mut C) -> machine::Step<C::Output> {
        let now = self.now();
        let mut state = self.lock();
        if let Some(step) = state.resting.as_ref().and_then(|resting| resting.step(now, call)) {
            return step;
        }
        let step = self.run(&mut state, now, |machine, now| machine.step(now, call));
        self.publish(&mut state, now);
        step
    }

    /// Forces a refresh: the call to step for its outcome, or the error of
    /// the failed round whose cool-down still runs (nothing is sent then, and
    /// `token()` keeps serving the unexpired token).
    pub fn refresh(&self) -> Result<Call, Error> {
        if let Some(error) = &self.refused {
            return Err(Error::clone(error));
        }
        self.with(|machine, now| machine.refresh(now))
    }

    /// The resource server rejected `token`: stop serving it (see
    /// [`TokenSource::invalidate`]: a token rejected soon after it was
    /// fetched fails the round, and callers get the back-off's error).
    /// Returns the call that evicts it from the store (deleted only if the
    /// store still holds it), when that is due.
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
    /// then send the revocation's request, if any, and hand its result
    /// to [`Revocation::finish`].
    pub fn signout(self: &Arc<Self>) -> (Settle, Option<Revocation<W>>) {
        let signout = self.with(|machine, now| machine.signout(now));
        self.io.wake();
        let signing = signout.signing.map(|signing| Revocation {
            driver: Arc::clone(self),
            id: None,
            kind: client_credentials::RequestKind::Revocation,
            request: None,
            signing: Some(signing),
            unsigned: None,
            parent: tracing::Span::current(),
        });
        let revocation = signout.revocation.map(|Outgoing { id, kind, request }| Revocation {
            driver: Arc::clone(self),
            id: Some(id),
            kind,
            request: Some(request),
            signing: None,
            unsigned: None,
            parent: tracing::Span::current(),
        });
        (signout.deletion, revocation.or(signing))
    }

    /// For a background refresh task: `None` when a refresh is due now,
    /// else how long to wait before asking again (`Some(None)`: until the
    /// state changes).
    pub fn refresh_due(&self) -> Option<Option<Duration>> {
        // Asked of every key by the background refresher: answered at rest.
        let now = self.now();
        let background = self.lock().background(now);
        match background {
            Background::Refresh => None,
            Background::Sleep(until) => Some(self.settings.clock.wait_for(until)),
        }
    }

    /// A DPoP proof (RFC 9449 §7) for a request to a resource with `token`:
    /// `htm` = `method`, `htu` = `uri` without query and fragment, `ath` =
    /// the token's hash, a fresh `jti`; `nonce` is the resource server's, if
    /// it asked for one, else the latest kept for `uri`'s origin
    /// ([`Driver::remember_dpop_nonce`]). `Ok(None)` when the config has no
    /// DPoP key.
    ///
    /// Only building it takes the lock (the nonce and the `jti` are kept
    /// there); a built-in key signs it then and there, while an external
    /// signer's proof comes back
    /// [`DpopProof::Unsigned`], for
    /// the caller to sign after the lock is released (see
    /// [`authorized`](crate::authorized)).
    pub fn dpop_proof(
        &self,
        method: &http::Method,
        uri: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<Option<DpopProof>, Error> {
        if self.config.dpop_key().is_none() {
            return Ok(None);
        }
        let now = self.now();
        self.lock()
            .live(|| fresh_machine(&self.config, &self.settings))
            .dpop_proof(now, method, uri, token, nonce)
    }

    /// A resource server sent `nonce` as its `DPoP-Nonce` (RFC 9449 §9):
    /// the next proof for `url`'s origin carries it, so a server that
    /// demands nonces costs one extra request per nonce, not per call.
    pub fn remember_dpop_nonce(&self, url: &str, nonce: &str) {
        if self.config.dpop_key().is_some() {
            self.lock()
                .live(|| fresh_machine(&self.config, &self.settings))
                .remember_dpop_nonce(url, nonce);
        }
    }

    /// A resource server's 401 to a request for `requested` named where its
    /// RFC 9728 metadata is: read it there at the next discovery (with
    /// `Config::builder(..).resource_server(..)`, and only on the resource's
    /// own origin; see `TokenSource::follow_resource_metadata`).
    pub fn follow_resource_metadata(&self, requested: &str, url: &str) -> bool {
        self.lock()
            .live(|| fresh_machine(&self.config, &self.settings))
            .follow_resource_metadata(requested, url)
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;

    impl Wake for Quiet {
        fn wake(&self) {}
    }

    impl Io for Quiet {
        type Store = ();
        type Provider = ();
    }

    /// What each key's driver takes inline (its heap, as keys are kept in
    /// `Arc`s): the state holds a boxed live core driver or a resting one.
    #[test]
    fn a_keys_driver_is_small_inline() {
        let driver = std::mem::size_of::<Driver<Quiet>>();
        let state = std::mem::size_of::<Mutex<State>>();
        let live = std::mem::size_of::<machine::Driver>();
        let resting = std::mem::size_of::<machine::Resting>();
        println!("Driver<W>: {driver} bytes inline, of which the state {state} (a live core driver, boxed: {live}; at rest, inline: {resting})");
        assert!(state < live, "{state} bytes");
    }
}
