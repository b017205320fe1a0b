//! Plumbing shared by the `client-credentials` adapters, written once:
//!
//! - [`Driver`]: the shell both adapters loop around, over the core's sans-IO
//!   `client_credentials::driver` (which decides single flight, store order,
//!   provider and fleet rounds, sign-out, background timing): the lock, the
//!   published snapshot, the [`Job`] guard that hands an unfinished job back,
//!   the tasks it performs itself (callbacks, logs, metrics). An adapter
//!   keeps only its I/O (sending, its store, its provider, reading an
//!   assertion with [`Driver::read_assertion`], an external signature), its
//!   waiting and its clock;
//! - [`Published`]: the token published for lock-free cached reads, with one
//!   detached copy per thread so concurrent readers do not contend;
//! - [`coarse_now`] / [`now`], [`Clock`], [`ManualClock`]: the clocks the
//!   adapters read (the core reads none);
//! - [`discovery`]: standalone discovery, OpenID Connect then RFC 8414;
//! - [`TokenStore`] / [`AsyncTokenStore`] (the adapters' store traits),
//!   [`FleetTurn`], [`MemoryStore`], [`FileStore`];
//! - [`token_file`]: loading and atomically saving a token file with owner-only permissions;
//! - [`proxy`]: which requests bypass proxies (plain http to loopback);
//! - [`observe`]: what a client reports — a `tracing` span per request with
//!   OpenTelemetry field names, parented to the caller's span, and (feature
//!   `metrics`) counters, histograms and gauges through the `metrics` facade;
//! - [`loggable_uri`]: a request URI as logs show it, without its query;
//! - [`random_bytes`]: each client's seed (retry jitter, `jti`s) from the OS;
//! - reading the assertions the core asks for (`AssertionSource::file`, re-read
//!   when it changes, or a callback), outside the lock;
//! - [`authorized`]: the authorised HTTP clients, generic over the
//!   adapter's `Client` (features `ureq-middleware`, `reqwest-middleware`,
//!   `tower`), with their decisions in [`authorized::policy`] (origin
//!   allow-list, `WWW-Authenticate` challenges, the one-retry rule, redirect
//!   stripping); a resource request's DPoP proof is built under the lock
//!   and, with a key of the user's, signed after it (the tokio adapter on
//!   its blocking pool, [`sign_on_blocking_pool`]); and [`ureq_transport`](mod@ureq_transport) (feature `ureq`):
//!   ureq errors as the core's.
//!
//! This crate is an implementation detail of `client-credentials-blocking` and
//! `client-credentials-tokio` (which re-export what users name); its API may
//! change between releases.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod assertion_file;
pub mod authorized;
mod clock;
pub mod discovery;
mod driver;
mod job;
mod keys;
pub mod observe;
pub mod proxy;
mod published;
mod report;
mod settings;
mod store;
pub mod token_file;
#[cfg_attr(docsrs, doc(cfg(feature = "ureq")))]
#[cfg(feature = "ureq")]
pub mod ureq_transport;

pub use client_credentials::driver::{Call, Caller, Outcome, Settle, Task};
pub use clock::{coarse_now, now, Clock, ManualClock, TimeSource};
pub use driver::{Driver, Io, Wake};
#[cfg(feature = "tokio")]
pub use job::sign_on_blocking_pool;
pub use job::{Job, Revocation, Step};
pub use keys::Keys;
pub use published::Published;
pub use settings::{
    BlockingProvider, BlockingSettings, BoxFuture, ErrorCallback, Provider, Settings, SharedDiscovery, TokenCallback,
};
pub use store::{AsyncTokenStore, FileStore, FleetTurn, MemoryStore, TokenStore};

/// The crate whose name a log line of the shared code carries as its
/// `tracing` target: the adapter's (`client_credentials_blocking`,
/// `client_credentials_tokio`), so `RUST_LOG=client_credentials_tokio=debug`
/// shows what the client does whichever crate the code lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// `client_credentials_blocking`.
    Blocking,
    /// `client_credentials_tokio`.
    Tokio,
    /// This crate's module path (code used without an adapter).
    Common,
}

/// A `tracing` event (`$level`: `debug`, `warn`, …) with the target a
/// [`LogTarget`] names (`tracing` needs the target as a constant, so each
/// adapter's is spelt out).
#[doc(hidden)]
#[macro_export]
macro_rules! log_event {
    ($target:expr, $level:ident, $($arg:tt)+) => {
        match $target {
            $crate::LogTarget::Blocking => $crate::__tracing::$level!(target: "client_credentials_blocking", $($arg)+),
            $crate::LogTarget::Tokio => $crate::__tracing::$level!(target: "client_credentials_tokio", $($arg)+),
            $crate::LogTarget::Common => $crate::__tracing::$level!($($arg)+),
        }
    };
}

#[doc(hidden)]
pub use tracing as __tracing;

/// A failed exchange with `url`, worded the same by both adapters: the URL
/// as [`loggable_uri`] shows it (never its query or user info, which may
/// carry credentials), then the innermost cause the HTTP client reported,
/// which names what went wrong below the HTTP client's own wording
/// (`could not connect: http://127.0.0.1:9/token: Connection refused (os
/// error 111)`). A timeout is the kind alone (`timed out:
/// http://127.0.0.1:9/token`): each HTTP client words its timers its own way.
///
/// ```
/// use client_credentials::TransportErrorKind;
/// let url: http::Uri = "http://127.0.0.1:9/token?tenant=a".parse().unwrap();
/// let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out");
/// let error = client_credentials_common::transport_failure(TransportErrorKind::Timeout, &url, &cause);
/// assert_eq!(error.to_string(), "timed out: http://127.0.0.1:9/token?…");
/// ```
pub fn transport_failure(
    kind: client_credentials::TransportErrorKind,
    url: &http::Uri,
    error: &dyn std::error::Error,
) -> client_credentials::TransportError {
    if kind == client_credentials::TransportErrorKind::Timeout {
        return client_credentials::TransportError::new(kind, loggable_uri(url));
    }
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    client_credentials::TransportError::new(kind, format!("{}: {cause}", loggable_uri(url)))
}

/// A transport failure of `kind`, described by `error` and its causes
/// (`"error: cause: cause"`, a cause its parent already quotes left out).
pub fn transport_error(
    kind: client_credentials::TransportErrorKind,
    error: &dyn std::error::Error,
) -> client_credentials::TransportError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    client_credentials::TransportError::new(kind, message)
}

/// A request URI as the adapters log it: `scheme://host:port/path`, with
/// `?…` standing for a query and never any user info. A query may carry a
/// credential (an API gateway's `?key=`, a function's `?code=`, a
/// pre-signed URL), and debug logs reach more people than credentials do.
///
/// ```
/// let uri: http::Uri = "https://user:pw@auth.example:8443/token?key=s3cr3t".parse().unwrap();
/// assert_eq!(client_credentials_common::loggable_uri(&uri), "https://auth.example:8443/token?…");
/// ```
pub fn loggable_uri(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().map(|s| format!("{s}://")).unwrap_or_default();
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if uri.query().is_some() { "?…" } else { "" };
    format!("{scheme}{host}{port}{}{query}", uri.path())
}

/// 32 bytes from the operating system's random source, per client and
/// process: the seed of the retry jitter and of the `jti` values of client
/// assertions and DPoP proofs, which must not repeat across the processes
/// that share a client (a provider rejects a reused `jti`).
///
/// Should the OS source fail (it does not on supported platforms), the bytes
/// come from the standard library's randomly keyed hasher instead, mixed
/// with the time and the process id, so they still differ per process.
pub fn random_bytes() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if getrandom::getrandom(&mut seed).is_ok() {
        return seed;
    }
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        hasher.write_u64(now().as_unix_millis());
        hasher.write_u32(std::process::id());
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    seed
}
