//! # client-credentials-blocking
//!
//! OAuth 2.0 client credentials tokens (RFC 6749 §4.4) for threaded programs:
//! fetched with [`ureq`], cached, refreshed ahead of expiry, shared by every
//! thread. The decisions (freshness, retries and back-off, discovery, what a
//! response means) are made by the sans-IO core, [`client_credentials`];
//! this crate only performs the requests it asks for, sleeps while it waits,
//! and hands the results back.
//!
//! ```no_run
//! use client_credentials::Config;
//! use client_credentials_blocking::Client;
//!
//! let config = Config::builder("my-client", "my-secret")
//!     .token_endpoint("https://auth.example.com/oauth2/token") // or .issuer(..) to discover it
//!     .scope("api:read")
//!     .build()?;
//! let client = Client::new(config);
//!
//! // From any thread, as often as needed: cached reads take no lock.
//! let header = client.authorization_header()?;
//! # let _ = header;
//!
//! // The API said 401 for this token: drop it, the next call fetches anew.
//! let token = client.token()?;
//! client.invalidate(&token);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Contents
//! - [`Client`], [`ClientBuilder`]: the client; single flight on a `Condvar`,
//!   lock-free cached reads, callbacks ([`ClientBuilder::on_token_update`],
//!   [`ClientBuilder::on_refresh_failed`], [`ClientBuilder::on_error`]) and a
//!   custom [provider](ClientBuilder::token_provider). Per-call deadlines:
//!   [`Client::token_timeout`], [`Client::authorization_header_timeout`] (the
//!   shared refresh carries on past them).
//! - [`Transport`], [`UreqTransport`]: the HTTP exchange (no redirects, body
//!   capped while reading, 30 s overall and 10 s connect timeouts by default).
//! - [`TokenStore`], [`MemoryStore`], [`FileStore`]: tokens that outlive the
//!   client. The store is read lazily, inside the single flight of the first
//!   call that needs a token; each new token is saved before the callers
//!   waiting for it are woken; `signout()` and `invalidate()` delete it. Store
//!   writes apply in the order of the changes that caused them. A fleet store
//!   can let one process fetch for all ([`TokenStore::begin_fetch`], [`FleetTurn`]).
//! - [`Clock`], [`ManualClock`]: time for tests, stepped by hand
//!   ([`ClientBuilder::clock`]).
//! - [`discover`], [`discover_with`]: a provider's metadata, standalone.
//! - [`Client::authorize`]: sets `Authorization` on your `http::Request`.
//!
//! ## Features
//! - `middleware` (off by default): authorised HTTP clients on `ureq` —
//!   `AuthMiddleware` (a `ureq` middleware: the header, and invalidation on a
//!   `401`) and `AuthorizedAgent` (the header and one retry with a new token).
//!   Only allowed origins ever get the token: by default the config's
//!   resource server and resources, else `.allow_origin(origin)`
//!   (repeatable, `scheme://host[:port]`); `.allow_any_origin()` is the
//!   explicit opt-out. A client that allows no origin, or was given a value
//!   that is not an origin, fails every request with `Error::Config`
//!   (`ConfigError::NoAllowedOrigin`, `ConfigError::InvalidUrl`) instead of
//!   sending it without the token; a bad value is also logged as a warning
//!   where it is given.
//!   `.params_for(origin, params)` gives an allowed origin its own token
//!   key ([`TokenParams`](client_credentials::TokenParams): audience, resource, scopes); a `401` there evicts
//!   only that key's token. It does not allow the origin: a keyed origin
//!   that is not allowed fails every request with
//!   `ConfigError::OriginNotAllowed`.
//! - `metrics` (off by default): counters, histograms and gauges through the
//!   `metrics` facade — requests by kind and outcome and their durations,
//!   failed rounds, back-off waits, the token's expiry and refresh times,
//!   callers waiting, fleet turns, store errors (the README's
//!   "Observability" lists them). Nothing on the cached-read path.
//!
//! Errors are the core's [`Error`] (I/O failures as [`Error::Transport`]);
//! the core's types are re-exported here, and so are [`ureq`] and [`http`].
//! Each request is a `tracing` span `oauth.client.request` with
//! OpenTelemetry HTTP-client fields, a child of the calling thread's span.
//! Requests are logged with `tracing::debug!` (method and URI only); refresh
//! and store failures with `tracing::warn!`, all with the target
//! `client_credentials_blocking` (the shared driver's lines included), so
//! `RUST_LOG=client_credentials_blocking=debug` shows them. No log, error or
//! `Debug` output of this crate contains the client secret or a token.
//!
//! ## ureq's own logging: never `TRACE` for `ureq_proto`
//!
//! ureq logs through the `log` crate, outside this crate's control. At
//! `TRACE` level its HTTP layer (log target `ureq_proto`) hex-dumps every
//! request it writes, headers and body: the `Authorization: Basic` value,
//! the client secret of `ClientAuth::Post`, refresh tokens, and the tokens it
//! reads back. If your program forwards `log` records (`env_logger`,
//! `tracing-log`, …) keep that target off, whatever the global level:
//!
//! ```text
//! RUST_LOG=debug,ureq_proto=off      # env_logger, or tracing-subscriber's EnvFilter
//! ```
//!
//! or in code, `env_logger::Builder::new().filter_module("ureq_proto", log::LevelFilter::Off)`.
//! The `client-credentials` CLI installs no `log` bridge, so it never prints them.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod authorize;
mod client;
mod discovery;
mod transport;

/// The `http` crate whose types this crate's API uses (`HeaderValue`, `Request`, `Response`).
pub use client_credentials::http;
pub use client_credentials::token_type;
pub use client_credentials::{
    AccessToken, AssertionSource, ClientAuth, ClientAuthError, Config, ConfigBuilder, ConfigError, DiscoveryError,
    Error, Grant, GrantError, JwsAlgorithm, JwtKey, OAuthErrorCode, ProviderMetadata, Secret, Timestamp, TokenExchange,
    TransportError, TransportErrorKind,
};
pub use client_credentials_common::{Clock, FileStore, FleetTurn, ManualClock, MemoryStore, TokenStore};
/// The `ureq` crate (3.x) this crate sends with: name `ureq::Agent` through it
/// ([`UreqTransport::with_agent`], `AuthorizedAgent::new`) to be sure the versions match.
pub use ureq;

#[cfg(feature = "middleware")]
pub use authorize::{AuthMiddleware, AuthorizedAgent};
pub use client::{Client, ClientBuilder};
pub use discovery::{discover, discover_with};
pub use transport::{Transport, UreqTransport, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
