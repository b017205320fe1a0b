//! The client: the shared driver (`client-credentials-common`) looped around
//! on the calling thread, which performs the I/O of the jobs it is handed;
//! waiters park on a `Condvar`.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use client_credentials::{AccessToken, Config, Error, TokenParams, TransportError, TransportErrorKind};
use client_credentials_common::{
    self as common, BlockingProvider, BlockingSettings, Call, Caller, Driver, Job, Keys, LogTarget, Outcome, Step,
    Task, TokenStore, Wake,
};

use crate::transport::{Transport, UreqTransport, DEFAULT_TIMEOUT};

/// How long a caller waiting for another caller's request sleeps before it
/// looks again, should a wake-up be missed.
const RECHECK: Duration = Duration::from_secs(1);

/// A thread-safe OAuth 2.0 client credentials client: fetches, caches and
/// refreshes the token of one [`Config`] (and, through
/// [`Client::token_for`] / [`Client::with_params`], one more per
/// [`TokenParams`] key).
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
    /// This handle's key: the client's default one, or the key of
    /// [`Client::with_params`].
    pub(crate) driver: Arc<Driver<Io>>,
    /// Every key of the client (shared by all its clones and handles).
    keys: Arc<Keys<Io>>,
}

/// What this adapter does itself: the I/O, and waking the waiters.
pub(crate) struct Io {
    transport: Box<dyn Transport>,
    /// Bumped on every state change; waiters park on `changed` until it moves.
    epoch: Mutex<u64>,
    changed: Condvar,
}

impl Wake for Io {
    const LOG_TARGET: LogTarget = LogTarget::Blocking;

    fn wake(&self) {
        *self.epoch.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }
}

/// Configures a [`Client`]: transport, timeouts, store, callbacks, provider, clock.
pub struct ClientBuilder {
    settings: BlockingSettings,
    transport: Option<Box<dyn Transport>>,
    agent: Option<ureq::Agent>,
    timeout: Option<Duration>,
}

impl ClientBuilder {
    client_credentials_common::builder_methods!(blocking);

    /// Uses your own HTTP client (see [`Transport`] for the contract).
    /// [`ClientBuilder::agent`] and [`ClientBuilder::timeout`] then do not apply.
    pub fn transport(self, transport: impl Transport) -> Self {
        let transport: Option<Box<dyn Transport>> = Some(Box::new(transport));
        ClientBuilder { transport, ..self }
    }

    /// Uses your `ureq` agent (proxy, TLS roots, pool); redirects and status
    /// errors are switched off per request and the body cap still applies.
    pub fn agent(self, agent: ureq::Agent) -> Self {
        ClientBuilder {
            agent: Some(agent),
            ..self
        }
    }

    /// The overall time limit of one HTTP exchange. Default 30 s
    /// ([`DEFAULT_TIMEOUT`]), of which at most 10 s to connect. A `token()`
    /// call can take longer: the core retries failed exchanges with back-off.
    pub fn timeout(self, timeout: Duration) -> Self {
        ClientBuilder {
            timeout: Some(timeout),
            ..self
        }
    }

    /// A custom token source, asked once per round before its first request,
    /// inside the single flight (concurrent callers wait for its answer): it
    /// gets the cached token (if any) and returns a token to use or `None`.
    /// A returned token replaces the cached one only if it is usable now and
    /// expires later (a provider never downgrades the cache); otherwise, or
    /// on `None`, the client fetches.
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
        self.settings.blocking_provider(provider);
        self
    }

    /// Builds the client (the `Config` was validated when it was built, so
    /// this cannot fail). The store is read by the first call that needs it.
    pub fn build(self) -> Client {
        let max_body = self.settings.config.max_body_size();
        let transport = self.transport.unwrap_or_else(|| {
            let ureq = match (self.agent, self.timeout) {
                (Some(agent), None) => UreqTransport::with_agent(agent),
                (Some(agent), Some(timeout)) => UreqTransport::with_agent(agent).timeout(timeout),
                (None, timeout) => UreqTransport::new(timeout.unwrap_or(DEFAULT_TIMEOUT)),
            };
            Box::new(ureq.max_body_size(max_body))
        });
        let io = Io {
            transport,
            epoch: Mutex::new(0),
            changed: Condvar::new(),
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
    /// Starts configuring a client.
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder {
            settings: BlockingSettings::new(config),
            transport: None,
            agent: None,
            timeout: None,
        }
    }

    /// A token to use now: the cached one while fresh (no lock, no
    /// allocation), else one fetched for all callers waiting at that moment.
    /// Inside the refresh window the cached token is returned while one caller
    /// refreshes; after a failed refresh it is served until it expires.
    #[inline]
    pub fn token(&self) -> Result<AccessToken, Error> {
        match self.driver.fresh() {
            Some(token) => Ok(token),
            None => self.run(Call::token()),
        }
    }

    /// A token for `params` (scopes, resources, audience, parameters
    /// replacing or adding to the config's: see [`TokenParams`]), with
    /// everything [`Client::token`] has, per key: the cached one while fresh
    /// (no lock, no allocation), single flight, the failure policy, refresh
    /// ahead, the store keyed by that token's own fingerprint. Keys share
    /// this client's transport, credentials, clock, store and callbacks; at
    /// most [`max_keys`](ClientBuilder::max_keys) idle keys are kept. Empty
    /// params are the default key ([`Client::token`]'s). On any handle of
    /// the client, `params` apply to the config the client was built with.
    ///
    /// Params that break the config builder's rules (a reserved parameter
    /// name, a scope with a quote, a relative resource) return
    /// [`Error::Config`] and send nothing.
    ///
    /// ```no_run
    /// use client_credentials::TokenParams;
    /// # let client = client_credentials_blocking::Client::new(
    /// #     client_credentials::Config::builder("id", "s").token_endpoint("https://a.example/t").build()?);
    /// let orders = TokenParams::new().audience("https://orders.example");
    /// let billing = TokenParams::new().scope("billing.read");
    /// let for_orders = client.token_for(&orders)?;
    /// let for_billing = client.token_for(&billing)?;
    /// # let _ = (for_orders, for_billing);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn token_for(&self, params: &TokenParams) -> Result<AccessToken, Error> {
        match self.keys.fresh(params) {
            Some(token) => Ok(token),
            None => self.for_key(self.keys.driver(params)?).run(Call::token()),
        }
    }

    /// A handle bound to the key of `params`: its [`Client::token`] (and
    /// every other method) serves that key's token, with the same lock-free
    /// cached read as the client's own. It shares the client's transport,
    /// credentials, store, callbacks and keys; while it lives its key is
    /// never dropped by [`max_keys`](ClientBuilder::max_keys). Refused
    /// params (see [`Client::token_for`]) give a handle whose calls return
    /// that [`Error::Config`].
    ///
    /// ```no_run
    /// use client_credentials::TokenParams;
    /// # let client = client_credentials_blocking::Client::new(
    /// #     client_credentials::Config::builder("id", "s").token_endpoint("https://a.example/t").build()?);
    /// let orders = client.with_params(TokenParams::new().audience("https://orders.example"));
    /// let header = orders.authorization_header()?;
    /// # let _ = header;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
    pub fn refresh(&self) -> Result<AccessToken, Error> {
        let call = self.driver.refresh()?;
        self.run(call)
    }

    /// `Authorization: Bearer …` for [`Client::token`], marked sensitive.
    pub fn authorization_header(&self) -> Result<http::HeaderValue, Error> {
        self.token().map(|token| token.authorization_header())
    }

    /// [`Client::token`], giving up after `timeout`: past it, a
    /// [`Error::Transport`] of kind [`TransportErrorKind::Timeout`] is
    /// returned, while the shared refresh carries on for the other callers
    /// (and caches its token for the next call). A fresh cached token is
    /// returned at once, as by `token()`.
    ///
    /// When this caller would start the request itself, the request runs
    /// on a thread of its own, so it is neither cut short nor holds this
    /// caller past its deadline.
    ///
    /// ```no_run
    /// # let client = client_credentials_blocking::Client::new(
    /// #     client_credentials::Config::builder("id", "s").token_endpoint("https://a.example/t").build()?);
    /// use std::time::Duration;
    /// use client_credentials::{Error, TransportErrorKind};
    /// match client.token_timeout(Duration::from_millis(800)) {
    ///     Ok(token) => { /* use it */ }
    ///     Err(Error::Transport(e)) if e.kind() == TransportErrorKind::Timeout => {
    ///         /* answer "try later"; the refresh goes on */
    ///     }
    ///     Err(error) => return Err(error.into()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn token_timeout(&self, timeout: Duration) -> Result<AccessToken, Error> {
        match self.driver.fresh() {
            Some(token) => Ok(token),
            None => self.run_until(Call::token(), Instant::now().checked_add(timeout)),
        }
    }

    /// [`Client::authorization_header`] within `timeout`, as [`Client::token_timeout`].
    pub fn authorization_header_timeout(&self, timeout: Duration) -> Result<http::HeaderValue, Error> {
        self.token_timeout(timeout).map(|token| token.authorization_header())
    }

    /// The resource server rejected `token`: stop serving it, so the next
    /// `token()` fetches a new one — unless the token was fetched moments
    /// before, after another rejection or while the provider was failing:
    /// then the round failed, and `token()` returns `Error::TokenRejected`
    /// until the back-off ends. A token older than the cached one evicts
    /// nothing. The stored token is deleted when the token is evicted.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Some(eviction) = self.driver.invalidate(token) {
            let _ = self.run(eviction);
        }
    }

    /// Forgets the token (in memory and in the store) and, when the provider
    /// has a revocation endpoint (configured or discovered), revokes it
    /// (RFC 7009). The error is the revocation's; the state is cleared anyway.
    pub fn signout(&self) -> Result<(), Error> {
        let (deletion, revocation) = self.driver.signout();
        // Returns once the store's deletion has landed, even when another
        // caller applies it.
        let _ = self.run(deletion);
        let Some(mut revocation) = revocation else {
            return Ok(());
        };
        // An external signer signs the revocation's assertion first, here.
        if let Some(signing) = revocation.take_signing() {
            let signature = signing.sign();
            revocation.signed(signing, signature);
        }
        match revocation.take_request() {
            Some((request, exchange)) => {
                let result = exchange.span().in_scope(|| self.driver.io.transport.send(request));
                revocation.finish(exchange, result)
            }
            None => Ok(()),
        }
    }

    /// Steps the driver until the call ends, performing the jobs it is
    /// handed on this thread and parking on the condvar otherwise.
    fn run<C: Caller>(&self, call: C) -> Result<C::Output, Error> {
        self.run_until(call, None)
    }

    /// [`Client::run`], giving up at `deadline` (if any) with a timeout
    /// error. A caller with a deadline that is handed a job runs it on a
    /// thread of its own and waits for it like any other caller.
    fn run_until<C: Caller>(&self, mut call: C, deadline: Option<Instant>) -> Result<C::Output, Error> {
        let io = &self.driver.io;
        let mut waiting = None;
        loop {
            let seen = *io.epoch.lock().unwrap_or_else(PoisonError::into_inner);
            let wait = match self.driver.step(&mut call) {
                Step::Ready(value) => return Ok(value),
                Step::Failed(error) => return Err(error),
                Step::Work(job) if deadline.is_none() => {
                    perform(job);
                    continue;
                }
                Step::Work(job) => {
                    let working = std::thread::Builder::new()
                        .name("client-credentials-refresh".into())
                        .spawn(move || perform(job));
                    if let Err(error) = working {
                        // No thread to be had: the job (dropped with the
                        // closure) was handed back; report it like a transport
                        // failure rather than block past the deadline.
                        return Err(common::transport_error(TransportErrorKind::Other, &error).into());
                    }
                    None
                }
                Step::Wait(wait) => wait,
            };
            let mut timeout = wait.unwrap_or(RECHECK);
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(deadline_passed());
                }
                timeout = timeout.min(left);
            }
            waiting.get_or_insert_with(|| self.driver.waiting());
            let epoch = io.epoch.lock().unwrap_or_else(PoisonError::into_inner);
            let timeout = timeout.max(Duration::from_millis(1));
            drop(io.changed.wait_timeout_while(epoch, timeout, |now| *now == seen));
        }
    }
}

/// Performs a job's tasks on this thread: this adapter's I/O.
fn perform(mut job: Job<Io>) {
    while let Some(task) = job.next_task() {
        let driver = job.driver();
        let config = driver.config();
        let store = driver.store();
        let outcome = match task {
            Task::Send(outgoing, attempt) => {
                let exchange = job.exchange(&outgoing, attempt);
                let result = exchange.span().in_scope(|| driver.io.transport.send(outgoing.request));
                job.exchanged(exchange, result)
            }
            Task::Provide(cached) => Outcome::Provided(driver.provider().and_then(|provide| provide(cached.as_ref()))),
            Task::Load => driver.loaded(store.map_or(Ok(None), |store| store.load(config))),
            Task::TakeFleetTurn(now) => {
                driver.fleet_turn(store.map_or(Ok(common::FleetTurn::Fetch), |store| store.begin_fetch(config, now)))
            }
            Task::Save(token) => driver.written("save", store.map_or(Ok(()), |store| store.save(config, &token))),
            Task::Delete => driver.written("delete", store.map_or(Ok(()), |store| store.delete(config))),
            Task::Evict(token, backoff) => driver.written(
                "evict",
                store.map_or(Ok(()), |store| store.evict_rejected(config, &token, backoff.as_ref())),
            ),
            Task::EndFetch => {
                if let Some(store) = store {
                    store.end_fetch(config);
                }
                Outcome::Done
            }
            // User code and file I/O, on this thread, outside the lock.
            Task::ReadAssertion { role, source } => driver.read_assertion(role, &source),
            Task::Sign(signing) => Outcome::Signed(signing.sign()),
            // Performed by the shell itself.
            _ => Outcome::Done,
        };
        job.hand_back(outcome);
    }
}

/// The error of a call whose own deadline passed before the shared refresh ended.
fn deadline_passed() -> Error {
    Error::Transport(TransportError::new(
        TransportErrorKind::Timeout,
        "the call's deadline passed; the refresh carries on for the other callers",
    ))
}

impl common::Io for Io {
    type Store = dyn TokenStore;
    type Provider = BlockingProvider;
}
