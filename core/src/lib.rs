//! # client-credentials
//!
//! OAuth 2.0 *client credentials* tokens (RFC 6749 §4.4) for machine-to-machine
//! calls: fetched, cached, refreshed ahead of expiry, retried with back-off,
//! with OpenID Connect / RFC 8414 discovery.
//!
//! This crate is the **sans-IO core**. It will never open a socket, read a
//! clock, read the environment, spawn a thread or need an async runtime. It
//! emits `http::Request`s, consumes `http::Response`s and a `now` you pass in,
//! and makes every decision: whether the cached token is fresh, when to
//! refresh, what to retry and when, whether a response is acceptable. That
//! makes it embeddable anywhere (it builds for `wasm32-unknown-unknown`) and
//! testable with simulated time. Ready-made adapters do the I/O:
//! `client-credentials-blocking` (threads, `ureq`) and
//! `client-credentials-tokio` (async, `reqwest`).
//!
//! ## The loop an adapter runs
//!
//! ```
//! use client_credentials::{Action, Config, Error, Timestamp, TokenSource};
//!
//! # fn perform(request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, client_credentials::TransportErrorKind> {
//! #     Ok(http::Response::builder().status(200)
//! #         .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec()).unwrap())
//! # }
//! # fn sleep_until(_: Timestamp) {}
//! # fn now() -> Timestamp { Timestamp::from_unix_secs(1_700_000_000) }
//! fn token(source: &mut TokenSource) -> Result<String, Error> {
//!     loop {
//!         match source.poll(now()) {
//!             Action::Ready(token) => return Ok(token.secret().to_owned()),
//!             Action::Send(outgoing) => {
//!                 // Perform the request: no redirects, body capped at
//!                 // `Config::max_body_size`. Then hand the result back.
//!                 let result = match perform(outgoing.request) {
//!                     Ok(response) => source.handle_response(now(), outgoing.id, response),
//!                     Err(kind) => source.handle_transport_error(now(), outgoing.id, kind),
//!                 };
//!                 // `Err` is for the callers waiting: the round failed and no
//!                 // unexpired token is cached. `Ok` events: persist, log, loop.
//!                 result?;
//!             }
//!             // Another caller's request is in flight (`None`: wait for its
//!             // result), or a retry waits for its back-off.
//!             Action::Wait { until } => sleep_until(until.unwrap_or_else(now)),
//!             // The last round failed and its cool-down runs: no waiting.
//!             Action::Failed(error) => return Err(error.clone()),
//!         }
//!     }
//! }
//!
//! let config = Config::builder("my-client", "my-secret")
//!     .token_endpoint("https://auth.example.com/oauth2/token")
//!     .scope("api:read")
//!     .build()?;
//! let mut source = TokenSource::new(config, [7; 32]);
//! assert_eq!(token(&mut source)?, "abc");
//! // Cached: the next poll is Ready without a request until the refresh time.
//! assert!(matches!(source.poll(now()), Action::Ready(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A forced refresh (an adapter's `refresh()`) is the same loop after
//! [`TokenSource::force_refresh`], which returns the cool-down error at once
//! during a cool-down; before each poll, [`TokenSource::refresh_failed`] says
//! whether that round failed, even though other callers keep being served
//! the unexpired token:
//!
//! ```
//! # use client_credentials::{AccessToken, Action, Error, Timestamp, TokenSource};
//! # fn perform(_: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> { unimplemented!() }
//! fn refresh(source: &mut TokenSource, now: Timestamp) -> Result<AccessToken, Error> {
//!     let ticket = source.force_refresh(now)?;
//!     loop {
//!         if let Some(error) = source.refresh_failed(now, ticket) {
//!             return Err(error.clone());
//!         }
//!         match source.poll(now) {
//!             Action::Ready(token) => return Ok(token.clone()),
//!             Action::Send(outgoing) => {
//!                 let _ = source.handle_response(now, outgoing.id, perform(outgoing.request));
//!             }
//!             Action::Wait { .. } => { /* wait for the result or the time, then loop */ }
//!             Action::Failed(error) => return Err(error.clone()),
//!         }
//!     }
//! }
//! ```
//!
//! ## The whole client: [`driver`]
//!
//! Around `TokenSource` sits the client's second machine, [`driver::Driver`]:
//! single flight between many callers, which caller sends and which waits,
//! the store's load and ordered writes, the custom provider's and the fleet's
//! turn, re-reading the assertions made elsewhere (files, callbacks), the
//! signatures of keys of your own (HSM, KMS), sign-out, background-refresh
//! timing.
//! Each caller steps a [`driver::Call`]; a [`driver::Work`] is a task
//! (a request, a store call, the provider) performed outside the caller's
//! lock and handed back. Both adapters are shells around it; the
//! [`driver`] module docs show the loop, and `examples/custom_runtime.rs`
//! runs it with threads, a store and a socket of its own.
//!
//! ## Many tokens from one client: [`TokenParams`]
//!
//! A client serving several APIs asks per call: [`TokenParams`] names the
//! scopes, resources, audience or extra parameters of one token, and
//! [`Config::with_params`] yields that token's configuration, whose
//! [`Config::fingerprint`] is its cache key. An adapter keeps one
//! [`driver::Driver`] per key (single flight, failure policy and refresh
//! time each its own) and shares everything else; the adapters'
//! `token_for(&params)` and `with_params(params)` do that. A key's config
//! shares every setting but its own values with the config it came from
//! (one `Arc`), and a `TokenParams` is only its canonical encoding and
//! its hash (64 bytes, the encoding inline when short; the values are
//! decoded when read), so comparing two keys reads no other memory and a
//! short key allocates nothing. An idle, healthy key's driver
//! [rests](driver::Driver::rest): a [`driver::Resting`] keeps its token,
//! refresh time, counters and `jti` state in a fraction of the room
//! (anything rarely set boxed apart), answers a call while the token is
//! fresh and the background refresher's question without waking, and
//! [wakes](driver::Resting::wake) into exactly the driver that rested.
//!
//! The keys of one client discover once: a key's [`driver::Discovery`]
//! (exported by [`driver::Driver::discovery`], the metadata behind an `Arc`)
//! is adopted by its siblings with [`driver::Driver::adopt_discovery`],
//! which takes it only for the same issuer and resource, within the
//! discovery TTL, newer than the key's own and never stale, and refuses
//! one that pins another authorization server than the key's
//! ([`TokenSource::adopt_discovery`]); [`driver::Discovery::replaces`] says
//! which result a client keeps. The adapters keep the client's latest,
//! adopt it before a key steps and keep the key's after; while one key
//! reads the metadata (first, or again), its siblings' discovery is held
//! ([`driver::Driver::hold_discovery`]), so a client discovers and
//! rediscovers once (should its first read fail, cold keys read for
//! themselves until one succeeds).
//!
//! ## Decisions, and where they are documented
//! - Freshness: a token is refreshed at `expires_at - min(refresh_margin, lifetime / 2)`
//!   ([`refresh_time`]); default margin 300 s. Between that time and expiry it is
//!   still served while the refresh runs, and after a failed refresh.
//! - Retries and back-off of a failing provider: [`RetryPolicy`]. The failure
//!   count persists across rounds until a token arrives, so a provider that
//!   fails everything gets at most 10 requests in the first minute and 2 a
//!   minute after, however many callers poll; `Retry-After` is a floor capped
//!   by [`ConfigBuilder::max_retry_after`]. Nothing happens because time
//!   passes: a request only goes out from a poll, never before
//!   [`TokenSource::retry_at`].
//! - Provided tokens: a token from a custom provider or a fleet store is
//!   taken only if it is usable and expires later than the cached one.
//! - Rejected tokens: [`TokenSource::invalidate`]; a rejection on probation
//!   fails the round, and a fleet shares its back-off ([`SharedBackoff`],
//!   capped by the receiver's [`RetryPolicy`]) through its store.
//! - Responses: [`parse_token_response`].
//! - Requests: [`ClientAuth`] (RFC 6749 §2.3.1 Basic by default), the JSON body
//!   variant, the refresh-token grant when a response carried a refresh token.
//! - Discovery: [`ConfigBuilder::issuer`], [`discovery_request`] / [`discovery_request_at`], [`parse_discovery`];
//!   from the resource (RFC 9728): [`ConfigBuilder::resource_server`],
//!   [`resource_metadata_url`], [`parse_resource_metadata`]. The
//!   authorization server the resource names at first discovery is pinned:
//!   credentials go only to it or to one added with
//!   [`ConfigBuilder::allow_authorization_server`]; a `401`'s
//!   `resource_metadata` is followed only on the resource's own origin
//!   ([`TokenSource::follow_resource_metadata`]), and its document must name
//!   the URL requested (RFC 9728 §3.3).
//!
//! - Client authentication beyond secrets: [`ClientAuth::PrivateKeyJwt`] /
//!   [`ClientAuth::ClientSecretJwt`] (RFC 7523 assertions built per attempt,
//!   `aud` = the issuer), [`ClientAuth::Assertion`] ([`AssertionSource`]:
//!   workload identity files, SPIFFE), mutual TLS ([`ClientAuth::TlsClientAuth`]),
//!   DPoP ([`ConfigBuilder::dpop`], [`TokenSource::dpop_proof`]).
//! - Calling out: the driver never runs user code or I/O under its caller's
//!   lock. An [`AssertionSource`] is read by [`driver::Task::ReadAssertion`]
//!   (one cached value per [`AssertionRole`]), a key of your own
//!   ([`JwtKey::from_signer`]) signs in a [`driver::Task::Sign`]; only the
//!   built-in keys and `client_secret_jwt` sign inside the core. A resource
//!   request's DPoP proof ([`TokenSource::dpop_proof`],
//!   [`driver::Driver::dpop_proof`]) with such a key comes back
//!   [`DpopProof::Unsigned`]: built under the lock, signed after it, finished
//!   with [`driver::Signing::finish`]. A `TokenSource` polled by hand calls
//!   a callback or a signer of yours from `poll` (it has no task to hand out).
//!
//! - Grants: [`ConfigBuilder::grant`] with [`Grant::client_credentials`] (the
//!   default), [`Grant::token_exchange`] ([`TokenExchange`], RFC 8693; the
//!   [`token_type`] URNs) or [`Grant::jwt_bearer`] (RFC 7523 §2.1). Subject
//!   and actor tokens come from an [`AssertionSource`] (a file the driver
//!   reads in its [`AssertionRole`], or a callback); what cannot be read is a
//!   [`GrantError`] naming its source. Client authentication is independent
//!   of the grant ([`ClientAuth::None`] for a public STS).
//!
//! ## Features
//! - `signing` (default): `JwtKey::from_pem` for RS256, PS256, ES256 and
//!   Ed25519 keys, on the RustCrypto crates (pure Rust, no random source
//!   needed, builds for wasm32). Without it, implement [`Signer`].
//!
//! No message, error or `Debug` output contains the client secret or a token.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

// The unit tests share the scenario scaffolding of `core/tests`, which
// names the crate by its name.
#[cfg(test)]
extern crate self as client_credentials;

mod assertion;
mod config;
mod discovery;
mod dpop;
pub mod driver;
mod endpoint;
mod error;
mod grant;
mod http_date;
mod id;
mod jws;
mod jwt_key;
mod machine;
mod params;
mod policy;
mod redact;
mod request;
mod resource;
mod response;
mod secret;
#[cfg(feature = "signing")]
mod signing;
mod time;
mod token;

pub use assertion::{AssertionRole, AssertionSource, JWT_BEARER_ASSERTION_TYPE, SPIFFE_ASSERTION_TYPE};
pub use config::{AssertionAudience, ClientAuth, Config, ConfigBuilder, DiscoveryOrder};
pub use discovery::{discovery_request, discovery_request_at, parse_discovery, DiscoveryLocation, ProviderMetadata};
pub use dpop::{dpop_ath, DpopProof};
pub use error::{
    ClientAuthError, ConfigError, DiscoveryError, DpopError, Error, GrantError, OAuthErrorCode, TransportError,
    TransportErrorKind,
};
pub use grant::{token_type, Grant, TokenExchange, JWT_BEARER_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE};
pub use id::RequestId;
pub use jws::{JwsAlgorithm, SignError, Signer};
pub use jwt_key::JwtKey;
pub use machine::{Action, Event, Outgoing, RefreshTicket, RequestKind, TokenSource};
pub use params::TokenParams;
pub use policy::{refresh_time, RetryPolicy, SharedBackoff};
pub use resource::{parse_resource_metadata, resource_metadata_url, ResourceMetadata};
pub use response::parse_token_response;
pub use secret::Secret;
pub use time::Timestamp;
pub use token::{AccessToken, AccessTokenBuilder};

/// Re-exported so users name the same `http` types the core uses.
pub use http;
