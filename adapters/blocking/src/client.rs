//! The client: the core's `TokenSource` behind a mutex, a condvar for the
//! callers waiting on a request, and the published token for lock-free reads.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use client_credentials::{
    AccessToken, Action, Config, Error, Event, Outgoing, ProviderMetadata, RequestId, Timestamp, TokenSource,
};
use client_credentials_common::{self as common, Published};

use crate::store::TokenStore;
use crate::transport::{Transport, UreqTransport, DEFAULT_TIMEOUT};

type TokenCallback = Box<dyn Fn(&AccessToken) + Send + Sync>;
type ErrorCallback = Box<dyn Fn(&Error) + Send + Sync>;
type Provider = Box<dyn Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync>;

/// How long a caller waiting for another caller's request sleeps before it
/// looks again, should a wake-up be missed.
const RECHECK: Duration = Duration::from_secs(1);

/// A thread-safe OAuth 2.0 client credentials client: fetches, caches and
/// refreshes one token for one [`Config`].
///
/// Cheap to clone (clones share the token). [`Client::token`] returns the
/// cached token without a lock or an allocation while it is fresh; when it is
/// not, concurrent callers share one request (single flight) and all receive
/// its token or its error. Inside the refresh window one caller refreshes while
/// the others keep getting the still-valid token. Every decision (freshness,
/// retries, back-off, discovery) is the core's; this client performs the
/// requests the core asks for.
///
/// `Debug` shows the configuration with the secret redacted.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    published: Published,
    state: Mutex<State>,
    changed: Condvar,
    transport: Box<dyn Transport>,
    store: Option<Box<dyn TokenStore>>,
    on_token_update: Option<TokenCallback>,
    on_error: Option<ErrorCallback>,
    provider: Option<Provider>,
}

struct State {
    source: TokenSource,
    /// Rounds that failed while a usable token was still served, and the last
    /// such error: `refresh()` reports it instead of returning the old token.
    refresh_failures: u64,
    refresh_error: Option<Error>,
}

/// Configures a [`Client`]: transport, timeouts, store, callbacks, provider.
pub struct ClientBuilder {
    config: Config,
    transport: Option<Box<dyn Transport>>,
    agent: Option<ureq::Agent>,
    timeout: Option<Duration>,
    store: Option<Box<dyn TokenStore>>,
    on_token_update: Option<TokenCallback>,
    on_error: Option<ErrorCallback>,
    provider: Option<Provider>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Uses your own HTTP client (see [`Transport`] for the contract).
    /// [`ClientBuilder::agent`] and [`ClientBuilder::timeout`] then do not apply.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Box::new(transport));
        self
    }

    /// Uses your `ureq` agent (proxy, TLS roots, pool); redirects and status
    /// errors are switched off per request and the body cap still applies.
    pub fn agent(mut self, agent: ureq::Agent) -> Self {
        self.agent = Some(agent);
        self
    }

    /// The overall time limit of one HTTP exchange. Default 30 s
    /// ([`DEFAULT_TIMEOUT`]), of which at most 10 s to connect. A `token()`
    /// call can take longer: the core retries failed exchanges with back-off.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Called once for each new token (fetched, or given by the
    /// [provider](ClientBuilder::token_provider)), outside the client's lock,
    /// on the thread that obtained it. Use it to persist or log the token.
    pub fn on_token_update(mut self, callback: impl Fn(&AccessToken) + Send + Sync + 'static) -> Self {
        self.on_token_update = Some(Box::new(callback));
        self
    }

    /// Called when a refresh fails while the cached token is still valid and
    /// keeps being served (the failure is also logged with `tracing::warn!`).
    /// Failures without a usable token are returned by `token()` instead.
    pub fn on_error(mut self, callback: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Box::new(callback));
        self
    }

    /// A custom token source tried before each fetch: it gets the last token
    /// (if any) and returns a token to use (cached, and served if fresh) or
    /// `None` to let the client fetch one. Called at most once per `token()`
    /// call, so a provider returning stale tokens cannot cause a loop; not
    /// called by [`Client::refresh`].
    ///
    /// ```no_run
    /// # let config = client_credentials::Config::builder("id", "s").token_endpoint("https://a.example/t").build()?;
    /// # fn load_from_database() -> Option<client_credentials::AccessToken> { None }
    /// let client = client_credentials_blocking::Client::builder(config)
    ///     .token_provider(|_last| load_from_database())
    ///     .build();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_provider(
        mut self,
        provider: impl Fn(Option<&AccessToken>) -> Option<AccessToken> + Send + Sync + 'static,
    ) -> Self {
        self.provider = Some(Box::new(provider));
        self
    }

    /// Loads the token from `store` now and saves each new token to it.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Builds the client (the `Config` was validated when it was built, so
    /// this cannot fail). Loads the stored token, if a store is set.
    pub fn build(self) -> Client {
        let max_body = self.config.max_body_size();
        let transport = match (self.transport, self.agent) {
            (Some(transport), _) => transport,
            (None, Some(agent)) => {
                let transport = UreqTransport::with_agent(agent).max_body_size(max_body);
                Box::new(match self.timeout {
                    Some(timeout) => transport.timeout(timeout),
                    None => transport,
                })
            }
            (None, None) => {
                Box::new(UreqTransport::new(self.timeout.unwrap_or(DEFAULT_TIMEOUT)).max_body_size(max_body))
            }
        };
        let stored = self.store.as_ref().and_then(|store| {
            store.load().unwrap_or_else(|error| {
                tracing::warn!(%error, "could not load the stored token; starting without it");
                None
            })
        });
        let mut source = match stored {
            Some(token) => TokenSource::with_token(self.config.clone(), token),
            None => TokenSource::new(self.config.clone()),
        };
        if self.config.jitter_seed().is_none() {
            source.set_jitter_seed(common::random_seed());
        }
        let inner = Inner {
            config: self.config,
            published: Published::new(),
            state: Mutex::new(State {
                source,
                refresh_failures: 0,
                refresh_error: None,
            }),
            changed: Condvar::new(),
            transport,
            store: self.store,
            on_token_update: self.on_token_update,
            on_error: self.on_error,
            provider: self.provider,
        };
        inner.publish(&inner.lock().source);
        Client { inner: Arc::new(inner) }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the default transport (ureq, 30 s timeout) and no store.
    pub fn new(config: Config) -> Client {
        Client::builder(config).build()
    }

    /// Starts configuring a client.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            transport: None,
            agent: None,
            timeout: None,
            store: None,
            on_token_update: None,
            on_error: None,
            provider: None,
        }
    }

    /// A token to use now: the cached one while fresh (no lock, no
    /// allocation), else one fetched for all callers waiting at that moment.
    /// Inside the refresh window the cached token is returned while one caller
    /// refreshes; after a failed refresh it is served until it expires.
    pub fn token(&self) -> Result<AccessToken, Error> {
        if let Some(token) = self.inner.published.fresh() {
            return Ok(token);
        }
        self.inner.obtain(self.inner.lock(), Mode::Token, None)
    }

    /// Fetches a new token even if the cached one is fresh. Calls made while
    /// such a request is under way share it. If the request fails, the error
    /// is returned (and the old token, if still valid, stays cached).
    ///
    /// During the cool-down after a failed round, the error of that round is
    /// returned without a request (the provider sees a bounded request rate)
    /// and a still-valid cached token keeps being served to `token()`.
    pub fn refresh(&self) -> Result<AccessToken, Error> {
        let mut state = self.inner.lock();
        let now = common::now();
        // During the cool-down after a failed round nothing may be sent: report
        // that round's error (the core keeps serving an unexpired token to
        // `token()` meanwhile).
        state.source.force_refresh(now)?;
        let outgoing = match state.source.poll(now) {
            Action::Send(outgoing) => Some(outgoing),
            Action::Ready(_) | Action::Wait { .. } | Action::Failed(_) => None,
        };
        self.inner.publish(&state.source);
        self.inner.obtain(state, Mode::Refresh, outgoing)
    }

    /// `Authorization: Bearer …` for [`Client::token`], marked sensitive.
    pub fn authorization_header(&self) -> Result<http::HeaderValue, Error> {
        self.token().map(|token| token.authorization_header())
    }

    /// The resource server rejected `token`: stop serving it, so the next
    /// `token()` fetches a new one. A token older than the cached one evicts
    /// nothing. The store is cleared when the token is evicted.
    pub fn invalidate(&self, token: &AccessToken) {
        let evicted = {
            let mut state = self.inner.lock();
            let evicted = state.source.invalidate(token);
            self.inner.publish(&state.source);
            evicted
        };
        if evicted {
            self.inner.delete_stored();
        }
    }

    /// Forgets the token (in memory and in the store) and, when the provider
    /// has a revocation endpoint (configured or discovered), revokes it
    /// (RFC 7009). The error is the revocation's; the state is cleared anyway.
    pub fn signout(&self) -> Result<(), Error> {
        let outgoing = {
            let mut state = self.inner.lock();
            let outgoing = state.source.signout();
            self.inner.publish(&state.source);
            outgoing
        };
        self.inner.changed.notify_all();
        self.inner.delete_stored();
        match outgoing {
            Some(outgoing) => match self.inner.perform(outgoing) {
                Ok(_) | Err(Error::UnknownRequest { .. }) => Ok(()),
                Err(error) => Err(error),
            },
            None => Ok(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The provider metadata, once discovered (with `Config::builder(..).issuer(..)`).
    pub fn metadata(&self) -> Option<ProviderMetadata> {
        self.inner.lock().source.metadata().cloned()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Token,
    Refresh,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock: a panic elsewhere while
        // holding the lock cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, source: &TokenSource) {
        self.published.publish(source.token().zip(source.refresh_at()));
    }

    /// The core's loop: serve, wait, or perform the request it emits
    /// (starting with `pending`, a request already taken from `poll`).
    fn obtain<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        mode: Mode,
        mut pending: Option<Outgoing>,
    ) -> Result<AccessToken, Error> {
        let failures_before = state.refresh_failures;
        let mut provider_asked = mode == Mode::Refresh;
        loop {
            if let Some(outgoing) = pending.take() {
                self.send(state, outgoing, &mut provider_asked)?;
                state = self.lock();
            }
            let now = common::now();
            let State {
                source,
                refresh_failures,
                refresh_error,
            } = &mut *state;
            let wait = match source.poll(now) {
                Action::Ready(token) => {
                    return match refresh_error {
                        Some(error) if mode == Mode::Refresh && *refresh_failures != failures_before => {
                            Err(error.clone())
                        }
                        _ => Ok(token.clone()),
                    };
                }
                Action::Failed(error) => return Err(error.clone()),
                Action::Wait { until } => until.map_or(RECHECK, |until| millis_until(now, until)),
                Action::Send(outgoing) => {
                    pending = Some(outgoing);
                    continue;
                }
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Performs the request (or asks the provider first), outside the lock.
    fn send(&self, state: MutexGuard<'_, State>, outgoing: Outgoing, provider_asked: &mut bool) -> Result<(), Error> {
        match &self.provider {
            Some(provider) if !*provider_asked => {
                *provider_asked = true;
                let last = state.source.token().cloned();
                drop(state);
                self.ask_provider(provider, outgoing.id, last);
                Ok(())
            }
            _ => {
                drop(state);
                match self.perform(outgoing) {
                    Ok(_) | Err(Error::UnknownRequest { .. }) => Ok(()),
                    Err(error) => Err(error),
                }
            }
        }
    }

    /// Performs `outgoing` outside the lock and hands the result back.
    fn perform(&self, outgoing: Outgoing) -> Result<Event, Error> {
        let Outgoing { id, kind, request } = outgoing;
        let guard = InFlight { inner: self, id };
        tracing::debug!(request = %id, ?kind, method = %request.method(), uri = %request.uri(), "sending");
        let result = self.transport.send(request);
        match &result {
            Ok(response) => {
                tracing::debug!(request = %id, status = response.status().as_u16(), bytes = response.body().len(), "response")
            }
            Err(error) => tracing::debug!(request = %id, %error, "request failed"),
        }
        let mut state = self.lock();
        let now = common::now();
        let handled = match result {
            Ok(response) => state.source.handle_response(now, id, response),
            Err(error) => state.source.handle_transport_error(now, id, error),
        };
        guard.disarm();
        if let Ok(Event::RefreshFailed { error, .. }) = &handled {
            state.refresh_failures += 1;
            state.refresh_error = Some(error.clone());
        }
        self.publish(&state.source);
        drop(state);
        self.changed.notify_all();
        match &handled {
            Ok(Event::TokenUpdated(token)) => self.token_updated(token),
            Ok(Event::RefreshFailed { error, .. }) => {
                tracing::warn!(%error, "token refresh failed; the cached token is served until it expires");
                if let Some(on_error) = &self.on_error {
                    on_error(error);
                }
            }
            Ok(event) => tracing::debug!(request = %id, ?event, "handled"),
            Err(error) => tracing::debug!(request = %id, %error, "round failed"),
        }
        handled
    }

    /// Asks the custom provider for a token while holding the request slot,
    /// so concurrent callers wait for its answer rather than fetching.
    fn ask_provider(&self, provider: &Provider, id: RequestId, last: Option<AccessToken>) {
        let guard = InFlight { inner: self, id };
        let provided = provider(last.as_ref());
        let mut state = self.lock();
        state.source.abandon(id);
        guard.disarm();
        let new = provided.filter(|token| !state.source.token().is_some_and(|current| current.same_token(token)));
        if let Some(token) = &new {
            state.source.insert_token(token.clone());
            self.publish(&state.source);
        }
        drop(state);
        self.changed.notify_all();
        if let Some(token) = &new {
            self.token_updated(token);
        }
    }

    fn token_updated(&self, token: &AccessToken) {
        if let Some(store) = &self.store {
            if let Err(error) = store.save(token) {
                tracing::warn!(%error, "could not save the new token to the store");
            }
        }
        if let Some(on_token_update) = &self.on_token_update {
            on_token_update(token);
        }
    }

    fn delete_stored(&self) {
        if let Some(store) = &self.store {
            if let Err(error) = store.delete() {
                tracing::warn!(%error, "could not delete the stored token");
            }
        }
    }
}

/// Marks a request in flight; if the thread performing it unwinds, the
/// request is abandoned and the waiters are woken, so one caller's panic
/// never leaves the others waiting for a result that will not come.
struct InFlight<'a> {
    inner: &'a Inner,
    id: RequestId,
}

impl InFlight<'_> {
    /// The result was handed back (the caller holds the lock).
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.source.abandon(self.id);
        drop(state);
        self.inner.changed.notify_all();
    }
}

/// The time from `now` to `until`, at least a millisecond (so a wait never spins).
fn millis_until(now: Timestamp, until: Timestamp) -> Duration {
    Duration::from_millis(until.as_unix_millis().saturating_sub(now.as_unix_millis()).max(1))
}
