//! # client-credentials-tokio
//!
//! OAuth 2.0 client credentials tokens (RFC 6749 §4.4) for async Rust: fetched
//! once, cached, refreshed ahead of expiry, retried with back-off. A thin
//! tokio + `reqwest` (rustls) shell around the sans-IO core,
//! [`client_credentials`], which makes every decision; this crate performs
//! the requests it asks for. The blocking adapter, `client-credentials-blocking`,
//! has the same surface: switching is a change of `use` line and `.await`s.
//!
//! ```no_run
//! use client_credentials::Config;
//! use client_credentials_tokio::{Client, FileStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder("my-client", "my-secret")
//!     .issuer("https://id.example.com") // discovery; or .token_endpoint(url)
//!     .scope("api:read")
//!     .build()?;
//! let client = Client::builder(config)
//!     .store(FileStore::new("/var/lib/my-app/token.json"))
//!     .on_token_update(|_token| tracing::info!("new token"))
//!     .background_refresh(true)
//!     .build();
//!
//! let token = client.token().await?;
//! let response = reqwest::Client::new()
//!     .get("https://api.example.com/things")
//!     .header(http::header::AUTHORIZATION, token.authorization_header())
//!     .send()
//!     .await?;
//! if response.status() == http::StatusCode::UNAUTHORIZED {
//!     // Revoked early: drop the token that was sent (not a fresh one), so
//!     // the next call fetches a new one.
//!     client.invalidate(&token);
//! }
//! # Ok(()) }
//! ```
//!
//! ## How it behaves
//! - **Cached reads** ([`Client::token`]) take no lock and allocate nothing
//!   while the token is fresh: a published snapshot checked against a coarse
//!   wall clock (shared with the blocking adapter, `client-credentials-common`).
//! - **Single flight**: however many tasks ask at once, one request is sent
//!   and they all get its result (token or error). Waiters sleep on a
//!   `tokio::sync::Notify`; the lock around the core is a `std::sync::Mutex`
//!   never held across an `.await`.
//! - **Cancellation safe**: the request runs in its own spawned task. Dropping
//!   the `token()` future that started it (a timeout, a lost `select!`) does
//!   not cancel it; the next caller gets its result without a second request.
//!   So `tokio::time::timeout(d, client.token())` is a per-call deadline that
//!   leaves the shared refresh running.
//!   Should that task panic, the request is given back to the core and the
//!   waiters are woken (the next caller starts a new one).
//! - **Background refresh** (opt-in, [`ClientBuilder::background_refresh`]):
//!   a task sleeps until the core's refresh time and refreshes, so callers
//!   never wait; it ends when the last [`Client`] clone is dropped.
//! - **Transport**: [`ReqwestTransport`] by default — rustls, redirects off,
//!   30 s per exchange and 10 s to connect ([`ClientBuilder::timeout`]),
//!   bodies read chunk by chunk and capped at the config's `max_body_size`.
//!   Bring your own `reqwest::Client` ([`ClientBuilder::reqwest_client`]) or
//!   any HTTP stack ([`Transport`]).
//! - **Stores** ([`TokenStore`]: [`MemoryStore`], [`FileStore`]) are loaded
//!   lazily, inside the single flight of the first call that needs a token;
//!   each new token is saved before the callers waiting for it are woken;
//!   `signout()` and `invalidate()` delete it; writes apply in the order of
//!   the changes that caused them. A fleet store can let one process fetch
//!   for all ([`TokenStore::begin_fetch`], [`FleetTurn`]). A failing store is
//!   logged and never fails a token request.
//! - **Time**: the wall clock by default; [`ClientBuilder::tokio_clock`]
//!   follows tokio's clock instead, for tests on a paused runtime.
//! - Works on the current-thread and the multi-thread runtime.
//! - **Observable**: each request is a `tracing` span `oauth.client.request`
//!   with OpenTelemetry HTTP-client fields, a child of the span of the caller
//!   that started it (not of the spawned task's); [`ClientBuilder::on_refresh_failed`]
//!   runs once per failed round. Feature `metrics` (off by default): counters,
//!   histograms and gauges through the `metrics` facade, listed in the README's
//!   "Observability"; `examples/metrics.rs` serves them to Prometheus.
//!
//! ## Authorised HTTP clients
//! [`Client::authorize`] sets `Authorization` on an `http::Request` and
//! returns the token it used. Two optional features build on it: the header
//! on every request, and on a `401` that rejects the token one retry with a
//! new one (concurrent rejections cause one refresh; a body that cannot be
//! cloned is never re-sent; never a second retry):
//! - `reqwest-middleware`: `AuthMiddleware::new(client)`, a
//!   `reqwest_middleware::Middleware`;
//! - `tower`: `AuthLayer::new(client)`, a `tower` `Layer` whose service
//!   retries bodies that implement `ReplayBody`.
//!
//! Only allowed origins ever get the token: by default the config's resource
//! server and resources, else those given with `.allow_origin(origin)`
//! (repeatable, `scheme://host[:port]`); `.allow_any_origin()` is the
//! explicit opt-out. A client that allows no origin, or was given a value
//! that is not an origin, fails every request with `Error::Config`
//! (`ConfigError::NoAllowedOrigin`, `ConfigError::InvalidUrl`) instead of
//! sending it without the token; a bad value is also logged as a warning
//! where it is given.
//! `.params_for(origin, params)` gives an allowed origin its own token
//! key ([`TokenParams`](client_credentials::TokenParams): audience, resource, scopes); a `401` there evicts
//! only that key's token. It does not allow the origin: a keyed origin
//! that is not allowed fails every request with
//! `ConfigError::OriginNotAllowed`.
//!
//! ## Logs
//! Log lines carry the target `client_credentials_tokio` (the shared driver's
//! included): `RUST_LOG=client_credentials_tokio=debug` shows each request
//! sent and each outcome; warnings for failing refreshes and stores.
//!
//! ## Versions
//! reqwest 0.13 and reqwest-middleware 0.5, re-exported as [`reqwest`] and
//! `reqwest_middleware` (with the `tower` feature, `tower_layer` and
//! `tower_service`). reqwest's TLS is its default, rustls on `aws-lc-rs`
//! with the platform's roots, so a `reqwest::Client` of your own works
//! beside this crate's as it is.
//!
//! Errors are the core's [`Error`] (I/O failures as `Error::Transport`), the
//! same whichever adapter is used. No error, log line or `Debug` output
//! contains the client secret or a token.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod authorize;
mod client;
mod discovery;
mod transport;

#[cfg(feature = "reqwest-middleware")]
pub use authorize::AuthMiddleware;
#[cfg(feature = "tower")]
pub use authorize::{AuthLayer, AuthService, BoxError, ReplayBody};
pub use client::{Client, ClientBuilder};
pub use client_credentials_common::{
    AsyncTokenStore as TokenStore, Clock, FileStore, FleetTurn, ManualClock, MemoryStore,
};
pub use discovery::{discover, discover_with};
pub use transport::{BoxFuture, ReqwestTransport, Transport};

/// The `http` crate whose types this crate's API uses (`HeaderValue`, `Request`, `Response`).
pub use client_credentials::http;
pub use client_credentials::token_type;
pub use client_credentials::{
    AccessToken, AssertionSource, ClientAuth, ClientAuthError, Config, ConfigBuilder, ConfigError, DiscoveryError,
    Error, Grant, GrantError, JwsAlgorithm, JwtKey, OAuthErrorCode, ProviderMetadata, Secret, Timestamp, TokenExchange,
    TransportError, TransportErrorKind,
};
/// The `reqwest` crate (0.13) this crate sends with: name `reqwest::Client`
/// through it ([`ClientBuilder::reqwest_client`]) to be sure the versions match.
pub use reqwest;
/// The `reqwest-middleware` crate (0.5) that [`AuthMiddleware`] plugs into.
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use reqwest_middleware;
/// The `tower-layer` crate whose `Layer` [`AuthLayer`] implements.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower_layer;
/// The `tower-service` crate whose `Service` [`AuthService`] implements.
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower_service;
