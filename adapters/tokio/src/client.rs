//! The client: the shared driver (`client-credentials-common`) looped around
//! in async code; the jobs it hands out run in spawned tasks, which await
//! this adapter's I/O; waiters are woken by `Notify`.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use client_credentials::{AccessToken, Config, Error, TokenParams, TransportError, TransportErrorKind};
use client_credentials_common::{
    self as common, AsyncTokenStore, BoxFuture, Call, Caller, Driver, Job, Keys, LogTarget, Outcome, Provider,
    Settings, Step, Task, TimeSource, Wake,
};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::transport::{ReqwestTransport, Transport};

/// Why a client used outside any tokio runtime cannot fetch.
const NO_RUNTIME: &str = "client-credentials-tokio needs a tokio runtime";

/// Gets, caches and refreshes tokens for one [`Config`] (one more per
/// [`TokenParams`] key: [`Client::token_for`], [`Client::with_params`]); cheap to clone
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
    /// This handle's key: the client's default one, or the key of
    /// [`Client::with_params`].
    pub(crate) driver: Arc<Driver<Io>>,
    /// Every key of the client (shared by all its clones and handles).
    keys: Arc<Keys<Io>>,
}

/// What this adapter does itself: the I/O, and waking the waiters.
pub(crate) struct Io {
    transport: Arc<dyn Transport>,
    /// Wakes callers waiting for a flight (`notify_waiters`).
    done: Notify,
    /// Wakes the background refresh task: the state changed or the client is gone.
    changed: Arc<Notify>,
    background: AtomicBool,
    runtime: Option<Handle>,
}

impl Io {
    /// Spawns `task` on the current runtime, else the one the client was built in.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> Result<(), TransportError> {
        let runtime = Handle::try_current().ok().or_else(|| self.runtime.clone());
        let runtime = runtime.ok_or_else(|| TransportError::new(TransportErrorKind::Other, NO_RUNTIME))?;
        drop(runtime.spawn(task));
        Ok(())
    }
}

impl Wake for Io {
    const LOG_TARGET: LogTarget = LogTarget::Tokio;

    fn wake(&self) {
        self.done.notify_waiters();
        self.changed.notify_one();
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // The last clone is gone: stop the background task (notify_one keeps
        // a permit, so it is seen even if the task is not waiting right now).
        self.changed.notify_one();
    }
}

/// Builds a [`Client`]; from [`Client::builder`].
pub struct ClientBuilder {
    settings: Settings,
    transport: Option<Arc<dyn Transport>>,
    reqwest: Option<reqwest::Client>,
    timeout: Duration,
    background: bool,
}

impl Client {
    /// A builder, to set a transport, callbacks, a store, background refresh.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            settings: Settings::new(config),
            timeout: ReqwestTransport::DEFAULT_TIMEOUT,
            transport: None,
            reqwest: None,
            background: false,
        }
    }
}

impl ClientBuilder {
    client_credentials_common::builder_methods!(async);

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

    /// A custom token source, asked once per round before its first request,
    /// inside the single flight (concurrent callers wait for its answer): it
    /// gets the cached token (if any) and returns a token to use or `None`.
    /// A returned token replaces the cached one only if it is usable now and
    /// expires later (a provider never downgrades the cache); otherwise, or
    /// on `None`, the client fetches.
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
        self.settings.provider = Some(Box::new(provider));
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
        self.settings.clock = TimeSource::tokio(enabled);
        self
    }

    /// The client. Infallible: the `Config` was validated when built, and
    /// the store is read on first use.
    pub fn build(self) -> Client {
        let max_body = self.settings.config.max_body_size();
        let transport: Arc<dyn Transport> = match (self.transport, self.reqwest) {
            (Some(transport), _) => transport,
            (None, Some(client)) => Arc::new(ReqwestTransport::with_client(client, self.timeout, max_body)),
            (None, None) => Arc::new(ReqwestTransport::new(self.timeout, max_body)),
        };
        let io = Io {
            transport,
            done: Notify::new(),
            changed: Arc::new(Notify::new()),
            background: AtomicBool::new(self.background),
            runtime: Handle::try_current().ok(),
        };
        let max_keys = self.settings.max_keys;
        let driver = Arc::new(Driver::new(self.settings, io));
        Client {
            keys: Arc::new(Keys::new(Arc::clone(&driver), max_keys)),
            driver,
        }
    }
}

client_credentials_common::client_items!();

impl Client {
    /// A fresh token: the cached one (no lock, no allocation), or the result
    /// of the one request all concurrent callers share.
    ///
    /// Dropping the returned future (a timeout, a lost `select!`) does not
    /// cancel the request: it runs in its own task and the next call gets its result.
    /// So a per-call deadline is `tokio::time::timeout` around the call: the
    /// caller gets `Elapsed` when it passes, and the shared refresh carries on
    /// for the other callers (the blocking client's `token_timeout`):
    ///
    /// ```no_run
    /// # async fn run(client: client_credentials_tokio::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// match tokio::time::timeout(Duration::from_millis(800), client.token()).await {
    ///     Ok(token) => { let _token = token?; /* use it */ }
    ///     Err(_elapsed) => { /* answer "try later"; the refresh goes on */ }
    /// }
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn token(&self) -> impl Future<Output = Result<AccessToken, Error>> + Send + '_ {
        TokenFuture(self, None)
    }

    /// A token for `params` (scopes, resources, audience, parameters
    /// replacing or adding to the config's: see [`TokenParams`]), with
    /// everything [`Client::token`] has, per key: the cached one while fresh
    /// (no lock, no allocation), single flight, the failure policy, refresh
    /// ahead (the one background task covers every key), the store keyed by
    /// that token's own fingerprint. Keys share this client's transport,
    /// credentials, clock, store and callbacks; at most
    /// [`max_keys`](ClientBuilder::max_keys) idle keys are kept. Empty params
    /// are the default key ([`Client::token`]'s). On any handle of the
    /// client, `params` apply to the config the client was built with.
    ///
    /// Params that break the config builder's rules (a reserved parameter
    /// name, a scope with a quote, a relative resource) return
    /// [`Error::Config`] and send nothing.
    ///
    /// ```no_run
    /// use client_credentials::TokenParams;
    /// # async fn run(client: client_credentials_tokio::Client) -> Result<(), client_credentials::Error> {
    /// let orders = TokenParams::new().audience("https://orders.example");
    /// let billing = TokenParams::new().scope("billing.read");
    /// let for_orders = client.token_for(&orders).await?;
    /// let for_billing = client.token_for(&billing).await?;
    /// # let _ = (for_orders, for_billing); Ok(()) }
    /// ```
    pub async fn token_for(&self, params: &TokenParams) -> Result<AccessToken, Error> {
        match self.keys.fresh(params) {
            Some(token) => Ok(token),
            None => self.for_key(self.keys.driver(params)?).run(Call::token()).await,
        }
    }

    /// A handle bound to the key of `params`: its [`Client::token`] (and
    /// every other method) serves that key's token, with the same lock-free
    /// cached read as the client's own. It shares the client's transport,
    /// credentials, store, callbacks, background refresher and keys; while
    /// it lives its key is never dropped by
    /// [`max_keys`](ClientBuilder::max_keys). Refused params (see
    /// [`Client::token_for`]) give a handle whose calls return that
    /// [`Error::Config`].
    ///
    /// ```no_run
    /// use client_credentials::TokenParams;
    /// # async fn run(client: client_credentials_tokio::Client) -> Result<(), client_credentials::Error> {
    /// let orders = client.with_params(TokenParams::new().audience("https://orders.example"));
    /// let header = orders.authorization_header().await?;
    /// # let _ = header; Ok(()) }
    /// ```
    pub fn with_params(&self, params: TokenParams) -> Client {
        self.for_key(self.keys.bound(&params))
    }

    /// A handle of this client on `driver`'s key.
    fn for_key(&self, driver: Arc<Driver<Io>>) -> Client {
        Client {
            driver,
            keys: Arc::clone(&self.keys),
        }
    }

    /// Fetches a new token even if the cached one is fresh, and returns it;
    /// calls made while such a request is under way share it. If that round
    /// fails, its error is returned (a refresh that did not happen is not
    /// reported as one) while `token()` keeps serving the cached token until
    /// it expires. During the cool-down after a failed round nothing is sent:
    /// that round's error is returned at once.
    pub async fn refresh(&self) -> Result<AccessToken, Error> {
        let call = self.driver.refresh()?;
        self.run(call).await
    }

    /// `Bearer <token>` for the `Authorization` header (marked sensitive).
    pub async fn authorization_header(&self) -> Result<http::HeaderValue, Error> {
        Ok(self.token().await?.authorization_header())
    }

    /// The resource server rejected `token` (HTTP 401): stop serving it. A
    /// token fetched moments before, after another rejection or while the
    /// provider was failing, fails the round: `token()` returns
    /// `Error::TokenRejected` until the back-off ends. A token older than
    /// the cached one evicts nothing. The stored token is deleted (in a
    /// task) when the token is evicted.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Some(eviction) = self.driver.invalidate(token) {
            let client = self.clone();
            let evicting = async move { drop(client.run(eviction).await) };
            if self.driver.io.spawn(evicting).is_err() {
                tracing::warn!("client-credentials: no tokio runtime to delete the stored token");
            }
        }
    }

    /// Forgets the token, deletes it from the store and, when the provider
    /// has a revocation endpoint (configured or discovered), revokes it
    /// (RFC 7009). Errors come from the revocation; a store failure is logged.
    pub async fn signout(&self) -> Result<(), Error> {
        let (deletion, revocation) = self.driver.signout();
        // Returns once the store's deletion has landed, even when another
        // caller applies it.
        let _ = self.run(deletion).await;
        let Some(mut revocation) = revocation else {
            return Ok(());
        };
        // An external signer signs the revocation's assertion first, on the
        // blocking pool.
        if let Some(signing) = revocation.take_signing() {
            let signature = common::sign_on_blocking_pool(&signing).await;
            revocation.signed(signing, signature);
        }
        match revocation.take_request() {
            Some((request, exchange)) => {
                let result = self
                    .driver
                    .io
                    .transport
                    .send(request)
                    .instrument(exchange.span().clone())
                    .await;
                revocation.finish(exchange, result)
            }
            None => Ok(()),
        }
    }

    /// Steps the driver until the call ends: jobs run in their own task (so
    /// dropping this future cancels nothing); waits on `Notify`. (Boxed with
    /// its `Send` bound spelled out: the background task it may spawn runs
    /// it too.)
    fn run<C: Caller + Send + 'static>(&self, mut call: C) -> BoxFuture<'_, Result<C::Output, Error>>
    where
        C::Output: Send,
    {
        Box::pin(async move {
            if self.driver.io.background.swap(false, Ordering::AcqRel) {
                let _ = self.driver.io.spawn(background(Arc::downgrade(&self.keys)));
            }
            // Counts this caller among the waiting until it returns or its
            // future is dropped.
            let mut waiting = None;
            loop {
                // Register for the wake-up before stepping, so none is missed.
                let mut notified = pin!(self.driver.io.done.notified());
                notified.as_mut().enable();
                let wait = match self.driver.step(&mut call) {
                    Step::Ready(token) => return Ok(token),
                    Step::Failed(error) => return Err(error),
                    Step::Wait(wait) => wait,
                    Step::Work(job) => {
                        self.driver.io.spawn(perform(job))?;
                        None
                    }
                };
                waiting.get_or_insert_with(|| self.driver.waiting());
                woken_or(notified, wait).await;
            }
        })
    }
}

/// Runs a job to its end, awaiting this adapter's I/O for each task.
async fn perform(mut job: Job<Io>) {
    while let Some(task) = job.next_task() {
        let outcome = {
            let driver = job.driver();
            let config = driver.config();
            let store = driver.store();
            match task {
                Task::Send(outgoing, attempt) => {
                    let exchange = job.exchange(&outgoing, attempt);
                    let sending = driver.io.transport.send(outgoing.request);
                    let result = sending.instrument(exchange.span().clone()).await;
                    job.exchanged(exchange, result)
                }
                Task::Provide(cached) => Outcome::Provided(match driver.provider() {
                    Some(provide) => provide(cached).await,
                    None => None,
                }),
                Task::Load => driver.loaded(match store {
                    Some(store) => store.load(config).await,
                    None => Ok(None),
                }),
                Task::TakeFleetTurn(now) => driver.fleet_turn(match store {
                    Some(store) => store.begin_fetch(config, now).await,
                    None => Ok(common::FleetTurn::Fetch),
                }),
                Task::Save(token) => driver.written(
                    "save",
                    match store {
                        Some(store) => store.save(config, &token).await,
                        None => Ok(()),
                    },
                ),
                Task::Delete => driver.written(
                    "delete",
                    match store {
                        Some(store) => store.delete(config).await,
                        None => Ok(()),
                    },
                ),
                Task::Evict(token, backoff) => driver.written(
                    "evict",
                    match store {
                        Some(store) => store.evict_rejected(config, &token, backoff.as_ref()).await,
                        None => Ok(()),
                    },
                ),
                Task::EndFetch => {
                    if let Some(store) = store {
                        store.end_fetch(config).await;
                    }
                    Outcome::Done
                }
                // User code (a callback, a `Signer`) and file I/O are
                // synchronous: on the blocking pool, never on the runtime.
                Task::ReadAssertion { role, source } => {
                    let driver = Arc::clone(driver);
                    let read = tokio::task::spawn_blocking(move || driver.read_assertion(role, &source));
                    read.await
                        .unwrap_or_else(|_| Outcome::Assertion(Some(Err("the assertion callback panicked".to_owned()))))
                }
                Task::Sign(signing) => Outcome::Signed(common::sign_on_blocking_pool(&signing).await),
                // Performed by the shell itself.
                _ => Outcome::Done,
            }
        };
        job.hand_back(outcome);
    }
}

impl common::Io for Io {
    type Store = dyn AsyncTokenStore;
    type Provider = Provider;
}

/// Sleeps until the earliest refresh time of any key, refreshes every key
/// that is due (concurrently, each in its own task), repeats: one task for
/// all keys, not one per key. Holds the client only while scanning and
/// refreshing, and ends once the last clone is dropped.
async fn background(keys: Weak<Keys<Io>>) {
    while let Some(strong) = keys.upgrade() {
        let changed = strong.default_driver().io.changed.clone();
        let mut wait: Option<Duration> = None;
        let mut refreshing = Vec::new();
        for driver in strong.drivers() {
            match driver.refresh_due() {
                None => {
                    let client = Client {
                        driver,
                        keys: Arc::clone(&strong),
                    };
                    refreshing.push(tokio::spawn(async move { drop(client.run(Call::token()).await) }));
                }
                Some(None) => {}
                Some(Some(due)) => wait = Some(wait.map_or(due, |wait| wait.min(due))),
            }
        }
        drop(strong);
        if !refreshing.is_empty() {
            for refresh in refreshing {
                let _ = refresh.await;
            }
            continue;
        }
        woken_or(changed.notified(), wait).await;
    }
}

/// Waits until `woken` resolves or `wait` passes (`None`: until woken).
/// Waits are capped at a day: tokio timers cover about two years, and
/// waking early only means stepping again.
async fn woken_or(woken: impl Future<Output = ()>, wait: Option<Duration>) {
    let wait = wait.unwrap_or(Duration::MAX).min(Duration::from_secs(86_400));
    drop(tokio::time::timeout(wait, woken).await);
}

/// What [`Client::token`] returns: its first poll reads the published token
/// (no lock, no allocation); only a miss starts the boxed slow path (the
/// second field).
struct TokenFuture<'a>(&'a Client, Option<BoxFuture<'a, Result<AccessToken, Error>>>);

impl Future for TokenFuture<'_> {
    type Output = Result<AccessToken, Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let TokenFuture(client, slow) = self.get_mut();
        let slow = match slow {
            Some(slow) => slow,
            None => match client.driver.fresh() {
                Some(token) => return Poll::Ready(Ok(token)),
                None => slow.insert(client.run(Call::token())),
            },
        };
        slow.as_mut().poll(cx)
    }
}
