//! One blocking view over both adapters, so every scenario is written once.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use client_credentials::{AccessToken, Config, Error, ProviderMetadata, TokenParams};
use client_credentials_blocking::ManualClock;

pub use crate::store::RecordingStore;

use crate::authorized::{Authorized, Origins};

/// Which token store a scenario wants.
#[derive(Debug, Clone, Default)]
pub enum StoreChoice {
    /// None.
    #[default]
    None,
    /// The adapter's `FileStore` at this path.
    File(PathBuf),
    /// A Redis fleet store (both adapters take the same `RedisStore`).
    Redis(client_credentials_redis::RedisStore),
    /// A [`RecordingStore`] shared with the scenario.
    Recording(Arc<RecordingStore>),
}

/// Callback type for token updates.
pub type OnUpdate = Arc<dyn Fn(&AccessToken) + Send + Sync>;

/// Callback type for failed rounds (`on_refresh_failed`).
pub type OnFailed = Arc<dyn Fn(&Error) + Send + Sync>;

/// A custom token provider: `None` lets the client fetch.
pub type Provider = Arc<dyn Fn() -> Option<AccessToken> + Send + Sync>;

/// How to build a client for a scenario.
#[derive(Clone, Default)]
pub struct Options {
    /// `.token_provider(..)`.
    pub provider: Option<Provider>,
    /// `.timeout(..)`.
    pub timeout: Option<Duration>,
    /// `.store(..)`.
    pub store: StoreChoice,
    /// `.on_token_update(..)`.
    pub on_update: Option<OnUpdate>,
    /// `.on_refresh_failed(..)`.
    pub on_failed: Option<OnFailed>,
    /// `.clock(..)`: simulated time.
    pub clock: Option<ManualClock>,
    /// An HTTP client of the adapter's own kind (a `ureq::Agent`, a
    /// `reqwest::Client`) that trusts this CA and, when given, presents
    /// this client certificate: the mutual TLS path (RFC 8705).
    pub tls: Option<ClientTls>,
    /// `.max_keys(..)`.
    pub max_keys: Option<usize>,
}

/// TLS settings for the user-supplied HTTP client of [`Options::tls`].
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The CA certificate the peer's server certificate chains to (PEM).
    pub ca_pem: String,
    /// The client certificate and key to present, if any.
    pub identity: Option<crate::tls::Identity>,
}

/// A `ureq::Agent` as a user configures one for mutual TLS.
fn ureq_agent(tls: &ClientTls) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(tls.ca_pem.as_bytes()).expect("the CA certificate");
    let mut config = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
    if let Some(identity) = &tls.identity {
        let cert = Certificate::from_pem(identity.cert_pem.as_bytes()).expect("the client certificate");
        let key = PrivateKey::from_pem(identity.key_pem.as_bytes()).expect("the client key");
        config = config.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(config.build())
        .build()
        .new_agent()
}

/// A `reqwest::Client` as a user configures one for mutual TLS.
fn reqwest_client(tls: &ClientTls) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).expect("the CA certificate");
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([ca]);
    if let Some(identity) = &tls.identity {
        let pem = format!("{}{}", identity.cert_pem, identity.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("the client identity"));
    }
    builder.build().expect("a reqwest client")
}

/// A client of either adapter, driven through blocking calls.
pub trait Adapter: 'static {
    /// Name for messages.
    const NAME: &'static str;
    /// The adapter's client.
    type Client: Clone + Send + Sync + 'static;
    /// Builds a client.
    fn build(config: Config, options: Options) -> Self::Client;
    /// `token()`.
    fn token(client: &Self::Client) -> Result<AccessToken, Error>;
    /// `token_for(&params)`.
    fn token_for(client: &Self::Client, params: &TokenParams) -> Result<AccessToken, Error>;
    /// `with_params(params)`: a handle bound to that key.
    fn with_params(client: &Self::Client, params: TokenParams) -> Self::Client;
    /// `token()` with a per-call deadline: the blocking client's
    /// `token_timeout(..)`, the tokio client's `token()` inside
    /// `tokio::time::timeout(..)` (its `Elapsed` reported as
    /// [`deadline_passed`]).
    fn token_timeout(client: &Self::Client, timeout: Duration) -> Result<AccessToken, Error>;
    /// `refresh()`.
    fn refresh(client: &Self::Client) -> Result<AccessToken, Error>;
    /// `metadata()`: the provider metadata, once discovered.
    fn metadata(client: &Self::Client) -> Option<ProviderMetadata>;
    /// `authorization_header()`.
    fn authorization_header(client: &Self::Client) -> Result<http::HeaderValue, Error>;
    /// `invalidate(..)`.
    fn invalidate(client: &Self::Client, token: &AccessToken);
    /// `signout()`.
    fn signout(client: &Self::Client) -> Result<(), Error>;
    /// The free function `discover(issuer)`.
    fn discover(issuer: &str) -> Result<ProviderMetadata, Error>;
    /// The adapter's authorised HTTP clients around `client`.
    fn authorized(client: &Self::Client, origins: &Origins) -> Vec<Box<dyn Authorized>>;
}

/// `client-credentials-blocking`.
#[derive(Debug)]
pub enum Blocking {}

impl Adapter for Blocking {
    const NAME: &'static str = "blocking";
    type Client = client_credentials_blocking::Client;

    fn build(config: Config, options: Options) -> Self::Client {
        let mut builder = client_credentials_blocking::Client::builder(config);
        if let Some(tls) = &options.tls {
            builder = builder.agent(ureq_agent(tls));
        }
        if let Some(timeout) = options.timeout {
            builder = builder.timeout(timeout);
        }
        match options.store {
            StoreChoice::None => {}
            StoreChoice::File(path) => builder = builder.store(client_credentials_blocking::FileStore::new(path)),
            StoreChoice::Redis(store) => builder = builder.store(store),
            StoreChoice::Recording(store) => builder = builder.store(store),
        }
        if let Some(clock) = options.clock {
            builder = builder.clock(clock);
        }
        if let Some(on_update) = options.on_update {
            builder = builder.on_token_update(move |t: &AccessToken| on_update(t));
        }
        if let Some(on_failed) = options.on_failed {
            builder = builder.on_refresh_failed(move |e: &Error| on_failed(e));
        }
        if let Some(provider) = options.provider {
            builder = builder.token_provider(move |_last: Option<&AccessToken>| provider());
        }
        if let Some(keys) = options.max_keys {
            builder = builder.max_keys(keys);
        }
        builder.build()
    }
    fn token(client: &Self::Client) -> Result<AccessToken, Error> {
        client.token()
    }
    fn token_for(client: &Self::Client, params: &TokenParams) -> Result<AccessToken, Error> {
        client.token_for(params)
    }
    fn with_params(client: &Self::Client, params: TokenParams) -> Self::Client {
        client.with_params(params)
    }
    fn token_timeout(client: &Self::Client, timeout: Duration) -> Result<AccessToken, Error> {
        client.token_timeout(timeout)
    }
    fn refresh(client: &Self::Client) -> Result<AccessToken, Error> {
        client.refresh()
    }
    fn metadata(client: &Self::Client) -> Option<ProviderMetadata> {
        client.metadata()
    }
    fn authorization_header(client: &Self::Client) -> Result<http::HeaderValue, Error> {
        client.authorization_header()
    }
    fn invalidate(client: &Self::Client, token: &AccessToken) {
        client.invalidate(token);
    }
    fn signout(client: &Self::Client) -> Result<(), Error> {
        client.signout()
    }
    fn discover(issuer: &str) -> Result<ProviderMetadata, Error> {
        client_credentials_blocking::discover(issuer)
    }
    fn authorized(client: &Self::Client, origins: &Origins) -> Vec<Box<dyn Authorized>> {
        crate::authorized::blocking(client, origins)
    }
}

/// `client-credentials-tokio`, each call run to completion on a shared
/// multi-thread runtime (so scenarios with many threads work as they do with
/// the blocking adapter).
#[derive(Debug)]
pub enum Tokio {}

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

impl Adapter for Tokio {
    const NAME: &'static str = "tokio";
    type Client = client_credentials_tokio::Client;

    fn build(config: Config, options: Options) -> Self::Client {
        let _guard = runtime().enter();
        let mut builder = client_credentials_tokio::Client::builder(config);
        if let Some(tls) = &options.tls {
            builder = builder.reqwest_client(reqwest_client(tls));
        }
        if let Some(timeout) = options.timeout {
            builder = builder.timeout(timeout);
        }
        match options.store {
            StoreChoice::None => {}
            StoreChoice::File(path) => builder = builder.store(client_credentials_tokio::FileStore::new(path)),
            StoreChoice::Redis(store) => builder = builder.store(store),
            StoreChoice::Recording(store) => builder = builder.store(store),
        }
        if let Some(clock) = options.clock {
            builder = builder.clock(clock);
        }
        if let Some(on_update) = options.on_update {
            builder = builder.on_token_update(move |t: &AccessToken| on_update(t));
        }
        if let Some(on_failed) = options.on_failed {
            builder = builder.on_refresh_failed(move |e: &Error| on_failed(e));
        }
        if let Some(provider) = options.provider {
            builder = builder.token_provider(move |_last: Option<AccessToken>| {
                let token = provider();
                Box::pin(async move { token })
            });
        }
        if let Some(keys) = options.max_keys {
            builder = builder.max_keys(keys);
        }
        builder.build()
    }
    fn token(client: &Self::Client) -> Result<AccessToken, Error> {
        runtime().block_on(client.token())
    }
    fn token_for(client: &Self::Client, params: &TokenParams) -> Result<AccessToken, Error> {
        runtime().block_on(client.token_for(params))
    }
    fn with_params(client: &Self::Client, params: TokenParams) -> Self::Client {
        client.with_params(params)
    }
    fn token_timeout(client: &Self::Client, timeout: Duration) -> Result<AccessToken, Error> {
        runtime().block_on(async {
            tokio::time::timeout(timeout, client.token())
                .await
                .unwrap_or_else(|_elapsed| Err(deadline_passed()))
        })
    }
    fn refresh(client: &Self::Client) -> Result<AccessToken, Error> {
        runtime().block_on(client.refresh())
    }
    fn metadata(client: &Self::Client) -> Option<ProviderMetadata> {
        client.metadata()
    }
    fn authorization_header(client: &Self::Client) -> Result<http::HeaderValue, Error> {
        runtime().block_on(client.authorization_header())
    }
    fn invalidate(client: &Self::Client, token: &AccessToken) {
        // Inside the runtime, as in a tokio program: the store delete runs in a task.
        let _guard = runtime().enter();
        client.invalidate(token);
    }
    fn signout(client: &Self::Client) -> Result<(), Error> {
        runtime().block_on(client.signout())
    }
    fn discover(issuer: &str) -> Result<ProviderMetadata, Error> {
        runtime().block_on(client_credentials_tokio::discover(issuer))
    }
    fn authorized(client: &Self::Client, origins: &Origins) -> Vec<Box<dyn Authorized>> {
        crate::authorized::tokio(client, origins)
    }
}

/// What [`Adapter::token_timeout`] returns when the deadline passes: the
/// blocking client's own error, which the tokio harness mirrors for `Elapsed`.
pub fn deadline_passed() -> Error {
    Error::Transport(client_credentials::TransportError::new(
        client_credentials::TransportErrorKind::Timeout,
        "the call's deadline passed",
    ))
}

/// Declares one `#[test]` per scenario per adapter: the scenario list is
/// written once and run against both.
#[macro_export]
macro_rules! scenarios {
    ($module:ident: $($name:ident),* $(,)?) => {
        mod blocking {
            $(#[test] fn $name() { $crate::scenarios::$module::$name::<$crate::Blocking>() })*
        }
        mod tokio {
            $(#[test] fn $name() { $crate::scenarios::$module::$name::<$crate::Tokio>() })*
        }
    };
}
