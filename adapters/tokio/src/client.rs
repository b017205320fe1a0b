//! The client: a `TokenSource` behind a short lock, requests run in spawned tasks, waiters woken by `Notify`.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use client_credentials::{
    AccessToken, Action, Config, Error, Event, Outgoing, ProviderMetadata, RequestId, Timestamp, TokenSource,
    TransportError, TransportErrorKind,
};
use client_credentials_common::Published;
use tokio::sync::{Notify, OnceCell};

use crate::clock::Clock;
use crate::store::TokenStore;
use crate::transport::{BoxFuture, ReqwestTransport, Transport};

type Callback<T> = Arc<dyn Fn(&T) + Send + Sync>;
type Provider = Arc<dyn Fn(Option<AccessToken>) -> BoxFuture<'static, Option<AccessToken>> + Send + Sync>;

/// Gets, caches and refreshes tokens for one [`Config`]; cheap to clone
/// (clones share the cache), `Send + Sync`, usable from any tokio runtime.
///
/// ```no_run
/// use client_credentials::Config;
/// use client_credentials_tokio::Client;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::builder("my-client", "my-secret")
///     .token_endpoint("https://auth.example.com/oauth2/token")
///     .build()?;
/// let client = Client::new(config);
/// let header = client.authorization_header().await?; // `Bearer …`
/// # let _ = header; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<TokenSource>,
    published: Published,
    /// Wakes callers waiting for the request in flight (`notify_waiters`).
    done: Notify,
    /// Wakes the background refresh task: the token changed or the client is gone.
    changed: Arc<Notify>,
    config: Config,
    transport: Arc<dyn Transport>,
    clock: Clock,
    on_token_update: Option<Callback<AccessToken>>,
    on_error: Option<Callback<Error>>,
    provider: Option<Provider>,
    store: Option<Arc<dyn TokenStore>>,
    store_loaded: OnceCell<()>,
    background: bool,
    background_started: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last clone is gone: stop the background task (notify_one keeps
        // a permit, so it is seen even if the task is not waiting right now).
        self.changed.notify_one();
    }
}

/// Builds a [`Client`]; from [`Client::builder`].
pub struct ClientBuilder {
    config: Config,
    transport: Option<Arc<dyn Transport>>,
    reqwest: Option<reqwest::Client>,
    timeout: Duration,
    on_token_update: Option<Callback<AccessToken>>,
    on_error: Option<Callback<Error>>,
    provider: Option<Provider>,
    store: Option<Arc<dyn TokenStore>>,
    background: bool,
    tokio_clock: bool,
}

impl ClientBuilder {
    /// Sends requests through `transport` instead of the default
    /// [`ReqwestTransport`] (then [`timeout`](Self::timeout) is the transport's business).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Uses your own `reqwest::Client` (proxies, an mTLS identity, extra
    /// roots). The timeout and body cap still apply. Build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: a token endpoint should
    /// never redirect, and a redirect the client follows anyway is reported
    /// as a transport error (an unfollowed `3xx` is rejected by the core).
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.reqwest = Some(client);
        self
    }

    /// Overall time for one HTTP exchange (default 30 s; connecting has its
    /// own 10 s limit, or this one if shorter). A timed-out attempt is retried
    /// like any transport failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called once for each new token, fetched from the token endpoint or supplied
    /// by the [token provider](ClientBuilder::token_provider) (not for the
    /// token loaded from the store at start), after it
    /// is saved and before the callers waiting for it are woken. Keep it
    /// short: it runs on a runtime thread.
    pub fn on_token_update(mut self, callback: impl Fn(&AccessToken) + Send + Sync + 'static) -> Self {
        self.on_token_update = Some(Arc::new(callback));
        self
    }

    /// Called when a refresh fails while a still-usable token keeps being
    /// served (callers see no error then). Also logged with `tracing::warn!`.
    pub fn on_error(mut self, callback: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// A custom token source consulted before fetching: called with the
    /// cached token (expired, inside its refresh margin, or `None`) at most
    /// once per [`Client::token`] call that misses the cache, when no request is in
    /// flight. `Some(token)` is cached and served if fresh; `None` (or a
    /// token that is not fresh) makes the client fetch one.
    ///
    /// ```
    /// # use client_credentials::Config;
    /// use client_credentials_tokio::Client;
    /// # let config = Config::builder("id", "secret").token_endpoint("https://id.example/token").build().unwrap();
    /// let client = Client::builder(config)
    ///     .token_provider(|_last| Box::pin(async { None /* e.g. read it from a database */ }))
    ///     .build();
    /// ```
    pub fn token_provider(
        mut self,
        provider: impl Fn(Option<AccessToken>) -> BoxFuture<'static, Option<AccessToken>> + Send + Sync + 'static,
    ) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// Persists tokens in `store` (loaded lazily, on the first call that misses the cache).
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Refreshes in a background task when the refresh time comes, so callers
    /// never wait for a refresh (default off). The task starts with the first
    /// [`Client::token`] call, holds no strong reference to the client, and
    /// ends when the last clone is dropped.
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.background = enabled;
        self
    }

    /// Reads time from tokio's clock (anchored at the wall clock when the
    /// client is built) instead of the wall clock, so tests on a paused
    /// runtime (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`)
    /// drive expiry and background refresh. Cached reads then take a short
    /// lock instead of the lock-free path, whose coarse wall clock would
    /// disagree. Default off.
    pub fn tokio_clock(mut self, enabled: bool) -> Self {
        self.tokio_clock = enabled;
        self
    }

    /// The client. Infallible: the `Config` was validated when built, and
    /// the store is read on first use.
    pub fn build(self) -> Client {
        let max_body = self.config.max_body_size();
        let transport: Arc<dyn Transport> = match (self.transport, self.reqwest) {
            (Some(transport), _) => transport,
            (None, Some(client)) => Arc::new(ReqwestTransport::with_client(client, self.timeout, max_body)),
            (None, None) => Arc::new(ReqwestTransport::new(self.timeout, max_body)),
        };
        let mut source = TokenSource::new(self.config.clone());
        if self.config.jitter_seed().is_none() {
            source.set_jitter_seed(client_credentials_common::random_seed());
        }
        Client {
            shared: Arc::new(Shared {
                state: Mutex::new(source),
                published: Published::new(),
                done: Notify::new(),
                changed: Arc::new(Notify::new()),
                config: self.config,
                transport,
                clock: if self.tokio_clock {
                    Clock::tokio()
                } else {
                    Clock::System
                },
                on_token_update: self.on_token_update,
                on_error: self.on_error,
                provider: self.provider,
                store: self.store,
                store_loaded: OnceCell::new(),
                background: self.background,
                background_started: AtomicBool::new(false),
            }),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .field("background_refresh", &self.background)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Client {
    /// The configuration (secret redacted) and whether a token is cached; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.shared.config)
            .field("has_token", &self.shared.lock().token().is_some())
            .field("background_refresh", &self.shared.background)
            .finish_non_exhaustive()
    }
}

/// What a waiting caller does next. Short-lived on the stack; boxing the
/// request would cost an allocation per round for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Spawn(Outgoing),
    Wait(Option<Timestamp>),
}

impl Client {
    /// A client with the default transport and settings.
    pub fn new(config: Config) -> Client {
        Client::builder(config).build()
    }

    /// A builder, to set a transport, callbacks, a store, background refresh.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            config,
            transport: None,
            reqwest: None,
            timeout: ReqwestTransport::DEFAULT_TIMEOUT,
            on_token_update: None,
            on_error: None,
            provider: None,
            store: None,
            background: false,
            tokio_clock: false,
        }
    }

    /// A fresh token: the cached one (no lock, no allocation), or the result
    /// of the one request all concurrent callers share.
    ///
    /// Dropping the returned future (a timeout, a lost `select!`) does not
    /// cancel the request: it runs in its own task and the next call gets its result.
    #[inline]
    pub fn token(&self) -> impl Future<Output = Result<AccessToken, Error>> + Send + '_ {
        // The fresh check runs before any future exists, so the cached read
        // awaits a ready value: no state machine, no lock, no allocation.
        let fresh = match self.shared.clock {
            Clock::System => self.shared.published.fresh(),
            _ => None,
        };
        match fresh {
            Some(token) => TokenFuture::Ready(Some(token)),
            None => TokenFuture::Slow(Box::pin(Shared::token_slow(&self.shared))),
        }
    }

    /// Fetches a new token now even if the cached one is fresh (the cached one
    /// is served again if the refresh fails before it expires).
    pub async fn refresh(&self) -> Result<AccessToken, Error> {
        {
            let mut source = self.shared.lock();
            // During the cool-down after a failed round nothing may be sent:
            // the core reports that round's error (and token() keeps serving
            // the unexpired token meanwhile).
            source.force_refresh(self.shared.clock.now())?;
            self.shared.publish(&source);
        }
        Shared::token_slow(&self.shared).await
    }

    /// `Bearer <token>` for the `Authorization` header (marked sensitive).
    pub async fn authorization_header(&self) -> Result<http::HeaderValue, Error> {
        Ok(self.token().await?.authorization_header())
    }

    /// The resource server rejected `token` (HTTP 401): stop serving it. A
    /// token older than the cached one evicts nothing.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut source = self.shared.lock();
        if source.invalidate(token) {
            self.shared.publish(&source);
            self.shared.changed.notify_one();
        }
    }

    /// Forgets the token, deletes it from the store and, when the provider
    /// has a revocation endpoint (configured or discovered), revokes it
    /// (RFC 7009). Errors come from the revocation; a store failure is logged.
    pub async fn signout(&self) -> Result<(), Error> {
        let outgoing = {
            let mut source = self.shared.lock();
            let outgoing = source.signout();
            self.shared.publish(&source);
            outgoing
        };
        self.shared.done.notify_waiters();
        if let Some(store) = &self.shared.store {
            if let Err(error) = store.delete().await {
                tracing::warn!(%error, "client-credentials: could not delete the stored token");
            }
        }
        let Some(outgoing) = outgoing else { return Ok(()) };
        // The guard gives the request back to the core if this future is dropped.
        let mut flight = Flight::new(self.shared.clone(), outgoing.id);
        let result = self.shared.transport.send(outgoing.request).await;
        let mut source = self.shared.lock();
        flight.id = None;
        let handled = match result {
            Ok(response) => source.handle_response(self.shared.clock.now(), outgoing.id, response),
            Err(error) => source.handle_transport_error(self.shared.clock.now(), outgoing.id, error),
        };
        handled.map(drop)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The provider metadata, once discovery ran (with [`Config`]'s `issuer`).
    pub fn metadata(&self) -> Option<ProviderMetadata> {
        self.shared.lock().metadata().cloned()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, TokenSource> {
        // A panic elsewhere never leaves the source half-updated: every
        // mutation is one core call. Carry on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, source: &TokenSource) {
        self.published.publish(source.token().zip(source.refresh_at()));
    }

    async fn token_slow(this: &Arc<Shared>) -> Result<AccessToken, Error> {
        if let Some(store) = &this.store {
            this.store_loaded.get_or_init(|| this.load(store.as_ref())).await;
        }
        if this.background && !this.background_started.swap(true, Ordering::AcqRel) {
            start_background(this);
        }
        if let Some(provider) = &this.provider {
            let last = {
                let source = this.lock();
                let fresh = source.refresh_at().is_some_and(|at| this.clock.now() < at);
                match (fresh, source.in_flight()) {
                    (true, _) => return source.token().cloned().ok_or_else(no_token),
                    (false, Some(_)) => None,
                    (false, None) => Some(source.token().cloned()),
                }
            };
            if let Some(last) = last {
                if let Some(token) = provider(last).await {
                    let new = {
                        let mut source = this.lock();
                        let new = !source.token().is_some_and(|current| current.same_token(&token));
                        source.insert_token(token.clone());
                        this.publish(&source);
                        new
                    };
                    // A token the provider supplies is a new token like a
                    // fetched one: stored and announced (as in the blocking adapter).
                    if new {
                        this.report(&Ok(Event::TokenUpdated(token))).await;
                    }
                }
            }
        }
        loop {
            // Register for the wake-up before looking at the state, so a
            // result published in between is not missed.
            let mut notified = pin!(this.done.notified());
            notified.as_mut().enable();
            let step = {
                let mut source = this.lock();
                match source.poll(this.clock.now()) {
                    Action::Ready(token) => return Ok(token.clone()),
                    Action::Send(outgoing) => Step::Spawn(outgoing),
                    Action::Failed(error) => return Err(error.clone()),
                    Action::Wait { until } => Step::Wait(until),
                }
            };
            match step {
                Step::Spawn(outgoing) => {
                    let flight = Flight::new(this.clone(), outgoing.id);
                    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                        Error::Transport(TransportError::new(
                            TransportErrorKind::Other,
                            "client-credentials-tokio needs a tokio runtime",
                        ))
                    })?;
                    handle.spawn(drive(flight, outgoing));
                    notified.await;
                }
                Step::Wait(None) => notified.await,
                Step::Wait(Some(until)) => {
                    let _ = tokio::time::timeout_at(this.clock.deadline(until), notified).await;
                }
            }
        }
    }

    async fn load(&self, store: &dyn TokenStore) {
        match store.load().await {
            Ok(Some(token)) => {
                let mut source = self.lock();
                if source.token().is_none() {
                    source.insert_token(token);
                    self.publish(&source);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "client-credentials: could not load the stored token"),
        }
    }

    /// After a handled result: persist, notify listeners, report failures.
    async fn report(&self, handled: &Result<Event, Error>) {
        match handled {
            Ok(Event::TokenUpdated(token)) => {
                if let Some(store) = &self.store {
                    if let Err(error) = store.save(token).await {
                        tracing::warn!(%error, "client-credentials: could not save the token");
                    }
                }
                if let Some(callback) = &self.on_token_update {
                    callback(token);
                }
            }
            Ok(Event::RefreshFailed { error, .. }) => {
                tracing::warn!(%error, "client-credentials: refresh failed; serving the cached token until it expires");
                if let Some(callback) = &self.on_error {
                    callback(error);
                }
            }
            Ok(_) | Err(Error::UnknownRequest { .. }) => {}
            Err(error) => tracing::debug!(%error, "client-credentials: token request failed"),
        }
    }
}

fn no_token() -> Error {
    Error::InvalidResponse {
        reason: "no token cached".into(),
    }
}

/// A request in flight, owned by the task performing it. Dropped — finished,
/// cancelled with its runtime, or unwinding from a panic — it gives an
/// unanswered request back to the core and wakes everyone waiting.
struct Flight {
    shared: Arc<Shared>,
    id: Option<RequestId>,
}

impl Flight {
    fn new(shared: Arc<Shared>, id: RequestId) -> Flight {
        Flight { shared, id: Some(id) }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let mut source = self.shared.lock();
            source.abandon(id);
            self.shared.publish(&source);
        }
        self.shared.done.notify_waiters();
        self.shared.changed.notify_one();
    }
}

/// Runs a round from its first request: send, hand the result to the core,
/// publish, report, wake the waiters; then the retry or follow-up request
/// the core asks for, until the round ends.
async fn drive(mut flight: Flight, mut outgoing: Outgoing) {
    let shared = flight.shared.clone();
    loop {
        let id = outgoing.id;
        let result = shared.transport.send(outgoing.request).await;
        let (handled, next) = {
            let mut source = shared.lock();
            let now = shared.clock.now();
            flight.id = None;
            let handled = match result {
                Ok(response) => source.handle_response(now, id, response),
                Err(error) => source.handle_transport_error(now, id, error),
            };
            shared.publish(&source);
            let next = match &handled {
                Ok(Event::RetryScheduled { at, .. }) => Some(*at),
                Ok(Event::Fallback { .. } | Event::DiscoveryUpdated(_)) => Some(now),
                _ => None,
            };
            (handled, next)
        };
        shared.report(&handled).await;
        shared.done.notify_waiters();
        let Some(at) = next else { return };
        if at > shared.clock.now() {
            tokio::time::sleep_until(shared.clock.deadline(at)).await;
        }
        let mut source = shared.lock();
        match source.poll(shared.clock.now()) {
            Action::Send(next) => {
                flight.id = Some(next.id);
                outgoing = next;
            }
            // A caller started the retry first, or a usable token is served.
            Action::Ready(_) | Action::Wait { .. } | Action::Failed(_) => return,
        }
    }
}

fn start_background(shared: &Arc<Shared>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(background(Arc::downgrade(shared), shared.changed.clone()));
    }
}

/// Sleeps until the refresh time, refreshes, repeats; holds the client only
/// while refreshing, and ends once the last clone is dropped.
async fn background(client: Weak<Shared>, changed: Arc<Notify>) {
    loop {
        let due = {
            let Some(shared) = client.upgrade() else { return };
            let refresh_at = shared.lock().refresh_at();
            match refresh_at {
                Some(at) if at != Timestamp::MAX && at <= shared.clock.now() => Ok(shared),
                Some(at) if at != Timestamp::MAX => Err(Some(shared.clock.deadline(at))),
                _ => Err(None),
            }
        };
        match due {
            Ok(shared) => {
                let _ = Shared::token_slow(&shared).await;
                let refresh_at = shared.lock().refresh_at();
                let still_due = refresh_at.is_some_and(|at| at != Timestamp::MAX && at <= shared.clock.now());
                let pause = shared.config.retry().initial_backoff.max(Duration::from_millis(100));
                drop(shared);
                if still_due {
                    // The round failed and the cached token is still served:
                    // the core's cool-down decides when the next round may start.
                    tokio::time::sleep(pause).await;
                }
            }
            Err(Some(deadline)) => {
                let _ = tokio::time::timeout_at(deadline, changed.notified()).await;
            }
            Err(None) => changed.notified().await,
        }
    }
}

/// What [`Client::token`] returns: a value already there, or the slow path
/// (boxed: it only runs when the cache misses, once per refresh).
enum TokenFuture<'a> {
    Ready(Option<AccessToken>),
    Slow(BoxFuture<'a, Result<AccessToken, Error>>),
}

impl Future for TokenFuture<'_> {
    type Output = Result<AccessToken, Error>;

    #[inline]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            TokenFuture::Ready(token) => match token.take() {
                Some(token) => Poll::Ready(Ok(token)),
                None => Poll::Ready(Err(no_token())),
            },
            TokenFuture::Slow(future) => future.as_mut().poll(cx),
        }
    }
}
