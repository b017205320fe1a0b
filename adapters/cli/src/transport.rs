//! What `-v` shows: each HTTP exchange, logged by a [`Transport`] wrapped around ureq's.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use client_credentials::TransportError;
use client_credentials_blocking::{Transport, UreqTransport};
use http::{Request, Response, Uri};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Logs each exchange at debug level: method, URL (without user info or query),
/// status and time taken. Never headers or bodies, which carry the credentials.
///
/// The CLI logs here rather than relying on the adapter's own logs, so `-v`
/// shows exactly one line per request whatever the adapter logs.
/// It also remembers the last request, so that an error message can say where a
/// connection failed.
#[derive(Debug, Clone)]
pub struct LoggingTransport<T> {
    inner: T,
    last: LastRequest,
}

/// The method and loggable URL of the last request a [`LoggingTransport`] sent.
#[derive(Debug, Clone, Default)]
pub struct LastRequest(Arc<Mutex<Option<String>>>);

impl LastRequest {
    /// `METHOD URL` of the last request, if any was sent.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, request: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(request);
    }
}

impl LoggingTransport<UreqTransport> {
    /// ureq with this time limit per exchange and body cap.
    pub fn ureq(timeout: Duration, max_body_size: usize) -> Self {
        LoggingTransport {
            inner: UreqTransport::new(timeout).max_body_size(max_body_size),
            last: LastRequest::default(),
        }
    }
}

impl<T> LoggingTransport<T> {
    /// A handle on the last request sent (it follows the transport into a client).
    pub fn last_request(&self) -> LastRequest {
        self.last.clone()
    }
}

impl<T: Transport> Transport for LoggingTransport<T> {
    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
        let method = request.method().clone();
        let url = loggable(request.uri());
        self.last.set(format!("{method} {url}"));
        let started = Instant::now();
        let result = self.inner.send(request);
        let elapsed = started.elapsed();
        match &result {
            Ok(response) => {
                tracing::debug!(target: LOG_TARGET, "{method} {url} -> {} in {elapsed:.1?}", response.status())
            }
            Err(error) => tracing::debug!(target: LOG_TARGET, "{method} {url} -> failed after {elapsed:.1?}: {error}"),
        }
        result
    }
}

/// The target of the CLI's own log lines. Named explicitly: the binary's crate is
/// called `client_credentials`, like the core, so its module paths would not tell them apart.
const LOG_TARGET: &str = "client_credentials_cli";

/// `scheme://host:port/path`, with `?…` standing for a query.
fn loggable(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("");
    let host = uri.host().unwrap_or("");
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if uri.query().is_some() { "?…" } else { "" };
    format!("{scheme}://{host}{port}{}{query}", uri.path())
}

/// Logs to stderr: warnings from our crates always (e.g. a cache file that could
/// not be written), the requests made with `-v`, everything our crates log with `-vv`.
pub fn init_logging(verbose: u8) {
    let targets = match verbose {
        0 => Targets::new().with_target("client_credentials", LevelFilter::WARN),
        1 => Targets::new()
            .with_target("client_credentials", LevelFilter::WARN)
            .with_target(LOG_TARGET, LevelFilter::DEBUG),
        _ => Targets::new().with_target("client_credentials", LevelFilter::TRACE),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false);
    // Fails only if a subscriber is already set, which nothing else here does.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_urls_lose_user_info_and_query() {
        let uri: http::Uri = "https://user:pw@auth.example.com:8443/token?key=secret"
            .parse()
            .unwrap();
        assert_eq!(super::loggable(&uri), "https://auth.example.com:8443/token?…");
    }
}
