//! How requests reach the network: the [`Transport`] trait and its default, [`ReqwestTransport`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use client_credentials::{TransportError, TransportErrorKind};

/// A boxed, `Send` future: what [`Transport`] and [`TokenStore`](crate::TokenStore)
/// methods return, so both traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Performs one HTTP exchange for the client: plug in your own HTTP stack.
///
/// Implementations must not follow redirects (the core rejects a `3xx`
/// answer, which is what a token endpoint redirect deserves), should apply a
/// timeout, and should stop reading a body past the configured
/// [`max_body_size`](client_credentials::Config::max_body_size) (hand over
/// what was read: the core rejects it with a typed error).
///
/// ```
/// use client_credentials_tokio::{BoxFuture, Transport};
/// use client_credentials::{TransportError, TransportErrorKind};
///
/// /// Answers every request with a fixed token (a test double).
/// struct Canned;
///
/// impl Transport for Canned {
///     fn send(&self, _request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
///         Box::pin(async {
///             http::Response::builder()
///                 .status(200)
///                 .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec())
///                 .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
///         })
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the response, its body read in full (up to the cap).
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>>;
}

/// The default [`Transport`]: a [`reqwest::Client`] over rustls, redirects off,
/// a connect and an overall timeout, and the body read chunk by chunk up to
/// the cap (plus one byte, so the core can tell an oversized body).
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl ReqwestTransport {
    /// Overall time for one exchange when none is set: 30 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Time to establish a connection (TCP and TLS): 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A transport on a fresh `reqwest::Client` (rustls, no redirects, 10 s to
    /// connect), `timeout` per exchange, bodies capped at `max_body` bytes.
    pub fn new(timeout: Duration, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Self::DEFAULT_CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            // Building fails only when the TLS backend cannot initialise; the
            // requests then fail with a transport error instead of panicking.
            .unwrap_or_else(|_| reqwest::Client::new());
        ReqwestTransport {
            client,
            timeout,
            max_body,
        }
    }

    /// A transport on your own `reqwest::Client` (proxies, an mTLS identity,
    /// extra root certificates). `timeout` is applied to every request and
    /// bodies are still capped; build the client with
    /// `redirect(reqwest::redirect::Policy::none())`. A redirect it follows
    /// anyway is reported as a transport error rather than trusted.
    pub fn with_client(client: reqwest::Client, timeout: Duration, max_body: usize) -> Self {
        ReqwestTransport {
            client,
            timeout,
            max_body,
        }
    }

    async fn exchange(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        let mut request = reqwest::Request::try_from(request).map_err(transport_error)?;
        *request.timeout_mut() = Some(self.timeout);
        let url = request.url().clone();
        let mut response = self.client.execute(request).await.map_err(transport_error)?;
        if response.url() != &url {
            return Err(TransportError::new(
                TransportErrorKind::Other,
                "the HTTP client followed a redirect; disable redirects on it",
            ));
        }
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let limit = self.max_body.saturating_add(1);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break; // oversized: the core reports it; stop reading
            }
        }
        builder
            .body(body)
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
        Box::pin(self.exchange(request))
    }
}

/// Maps a reqwest error to the core's kinds. reqwest's messages carry the URL
/// but never headers or bodies, so no credential reaches the text.
fn transport_error(error: reqwest::Error) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_body() || error.is_decode() || error.is_request() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::new(kind, message)
}
