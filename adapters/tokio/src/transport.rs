//! How requests reach the network: the [`Transport`] trait and its default, [`ReqwestTransport`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use client_credentials::{TransportError, TransportErrorKind};
use client_credentials_common::proxy::bypasses_proxy;

/// A boxed, `Send` future: what [`Transport`] and [`TokenStore`](crate::TokenStore)
/// methods return, so both traits stay object-safe.
pub use client_credentials_common::BoxFuture;

/// Why a response from a client of the user's that follows redirects is refused.
const FOLLOWED_REDIRECT: &str = "the HTTP client followed a redirect; disable redirects on it";

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

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
        (**self).send(request)
    }
}

/// The default [`Transport`]: a [`reqwest::Client`] over rustls, redirects off,
/// a connect and an overall timeout, and the body read chunk by chunk up to
/// the cap (plus one byte, so the core can tell an oversized body).
///
/// Proxies: the client [`ReqwestTransport::new`] builds uses the proxies of
/// the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`),
/// except for plain `http` to a loopback host (`localhost`, `127.0.0.0/8`,
/// `::1`), which always goes direct: a proxy would see the client secret in
/// clear text. A client of your own ([`ReqwestTransport::with_client`]) is
/// used as it is configured, proxies included (reqwest has no per-request
/// proxy switch): build it with `.no_proxy()`, or set
/// `NO_PROXY=localhost,127.0.0.1,::1`, if it may send to plain-http loopback
/// endpoints.
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    /// `Err` when the TLS backend could not be set up: every request then
    /// fails with that message instead of the constructor panicking.
    client: Result<reqwest::Client, String>,
    /// For plain http to loopback, built on first use: like `client`, without
    /// proxies. `None` for a client of the user's.
    direct: Option<Arc<OnceLock<Result<reqwest::Client, String>>>>,
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
        ReqwestTransport {
            client: Self::build(timeout, true),
            direct: Some(Arc::default()),
            timeout,
            max_body,
        }
    }

    fn build(timeout: Duration, proxies: bool) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Self::DEFAULT_CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout);
        let builder = if proxies { builder } else { builder.no_proxy() };
        builder
            .build()
            .map_err(|e| format!("could not set up the HTTP client: {e}"))
    }

    /// A transport on your own `reqwest::Client` (proxies, an mTLS identity,
    /// extra root certificates). `timeout` is applied to every request and
    /// bodies are still capped; build the client with
    /// `redirect(reqwest::redirect::Policy::none())`.
    ///
    /// If it follows redirects anyway, a `307`/`308` answer (which would
    /// re-send the request body: the client secret with
    /// `ClientAuth::Post`/`Json`, a refresh token, a token to revoke) is not
    /// followed: the body is sent in a form reqwest cannot replay, so the
    /// redirect comes back as a response and the core rejects it. Other
    /// redirects turn the `POST` into a body-less `GET` (reqwest keeps the
    /// `Authorization` header only on the same host) and are reported as a
    /// transport error rather than trusted. Its proxy settings apply to every
    /// request, loopback included (see [`ReqwestTransport`]).
    pub fn with_client(client: reqwest::Client, timeout: Duration, max_body: usize) -> Self {
        ReqwestTransport {
            client: Ok(client),
            direct: None,
            timeout,
            max_body,
        }
    }

    /// The client for `uri`: the direct one for plain http to loopback.
    fn client_for(&self, uri: &http::Uri) -> Result<&reqwest::Client, TransportError> {
        let client = match &self.direct {
            Some(direct) if bypasses_proxy(uri) => direct.get_or_init(|| Self::build(self.timeout, false)),
            _ => &self.client,
        };
        client
            .as_ref()
            .map_err(|message| TransportError::new(TransportErrorKind::Other, message.clone()))
    }

    async fn exchange(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
        let client = self.client_for(request.uri())?;
        let user_client = self.direct.is_none();
        let uri = request.uri().clone();
        let mut request = reqwest::Request::try_from(request).map_err(|e| transport_error(&uri, e))?;
        if user_client {
            // A body reqwest cannot clone is one it cannot re-send on a
            // 307/308: the redirect comes back to us instead of carrying the
            // credentials elsewhere. The core's bodies are UTF-8 (a form or
            // JSON); anything else keeps the plain body and the check below.
            let bytes = request.body().and_then(reqwest::Body::as_bytes).map(<[u8]>::to_vec);
            if let Some(Ok(text)) = bytes.filter(|b| !b.is_empty()).map(String::from_utf8) {
                *request.body_mut() = Some(reqwest::Body::wrap(text));
            }
        }
        *request.timeout_mut() = Some(self.timeout);
        let url = request.url().clone();
        let mut response = client.execute(request).await.map_err(|e| transport_error(&uri, e))?;
        if response.url() != &url {
            return Err(TransportError::new(TransportErrorKind::Other, FOLLOWED_REDIRECT));
        }
        let mut reply = http::Response::new(Vec::new());
        *reply.status_mut() = response.status();
        *reply.version_mut() = response.version();
        *reply.headers_mut() = std::mem::take(response.headers_mut());
        let limit = self.max_body.saturating_add(1);
        let body = reply.body_mut();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&uri, e))? {
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break; // oversized: the core reports it; stop reading
            }
        }
        Ok(reply)
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, request: http::Request<Vec<u8>>) -> BoxFuture<'_, Result<http::Response<Vec<u8>>, TransportError>> {
        Box::pin(self.exchange(request))
    }
}

/// Maps a reqwest error in an exchange with `url` to the core's kinds, worded
/// like the blocking adapter's ([`transport_failure`](client_credentials_common::transport_failure)):
/// reqwest's own text quotes the URL with its query, so it is left out.
fn transport_error(url: &http::Uri, error: reqwest::Error) -> TransportError {
    let kind = if error.is_timeout() {
        TransportErrorKind::Timeout
    } else if error.is_connect() {
        TransportErrorKind::Connect
    } else if error.is_body() || error.is_decode() || error.is_request() {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    };
    client_credentials_common::transport_failure(kind, url, &error.without_url())
}
