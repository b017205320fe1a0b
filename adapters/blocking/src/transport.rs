//! Performing the HTTP exchanges the core asks for.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use client_credentials::{ConfigBuilder, TransportError};
use client_credentials_common::proxy::bypasses_proxy;
use client_credentials_common::ureq_transport::map_error;
use http::{Request, Response};

/// Performs one HTTP exchange for the client.
///
/// Implement it to use your own HTTP client. The contract the core relies on:
/// do **not** follow redirects (return the 3xx response as it is), return
/// non-2xx responses as responses (not errors), and stop reading the body
/// after the client's `Config::max_body_size` + 1 bytes (hand over what was
/// read: the core rejects an oversized body with a typed error). Report a
/// failed exchange as a [`TransportError`]; never put the request's headers or
/// body in its message (they carry credentials).
///
/// ```
/// use client_credentials::{TransportError, TransportErrorKind};
/// use client_credentials_blocking::Transport;
///
/// /// A transport for tests: every token request gets the same answer.
/// struct Canned;
///
/// impl Transport for Canned {
///     fn send(&self, _: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> {
///         http::Response::builder()
///             .status(200)
///             .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec())
///             .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
///     }
/// }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the response, or why the exchange failed.
    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>;
}

/// The default overall time limit of one exchange (connect, send, receive the body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time limit for establishing a connection (part of the overall limit).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`Transport`]: a [`ureq::Agent`] that follows no redirects,
/// returns every status as a response, and reads at most `max_body_size + 1`
/// body bytes.
///
/// [`UreqTransport::new`] builds its own agent: overall timeout 30 s
/// ([`DEFAULT_TIMEOUT`]), connect timeout 10 s ([`DEFAULT_CONNECT_TIMEOUT`]),
/// proxy from the environment (`HTTPS_PROXY`, `ALL_PROXY`, … as ureq reads them).
/// [`UreqTransport::with_agent`] uses yours: its settings are kept, except that
/// redirects and status errors are switched off on each request, the body
/// cap applies, and an agent with neither a global nor a per-call timeout
/// gets the 30 s and 10 s defaults (ureq's own defaults are no timeouts at
/// all, which would let a silent server hold every caller forever).
///
/// Plain `http` requests to a loopback host (`localhost`, `127.0.0.0/8`,
/// `::1`) never use a proxy, whichever agent sends them: the proxy would see
/// the client secret in clear text.
#[derive(Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    /// Whether each request carries its own settings (needed for an agent
    /// configured elsewhere, or a timeout changed after the agent was built).
    per_request: bool,
    timeout: Option<Duration>,
    max_body_size: usize,
}

impl fmt::Debug for UreqTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UreqTransport")
            .field("timeout", &self.timeout)
            .field("max_body_size", &self.max_body_size)
            .finish_non_exhaustive()
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

impl UreqTransport {
    /// An agent of its own with this overall timeout (the connect timeout is
    /// 10 s or `timeout`, whichever is shorter).
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(DEFAULT_CONNECT_TIMEOUT)))
            .build()
            .new_agent();
        UreqTransport {
            agent,
            per_request: false,
            timeout: Some(timeout),
            max_body_size: ConfigBuilder::DEFAULT_MAX_BODY_SIZE,
        }
    }

    /// Uses your agent (its proxy, TLS, timeouts, connection pool). If it
    /// has neither a global nor a per-call timeout, each exchange gets
    /// [`DEFAULT_TIMEOUT`] (and [`DEFAULT_CONNECT_TIMEOUT`] to connect, unless
    /// it sets one); [`UreqTransport::timeout`] overrides either.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        let timeouts = agent.config().timeouts();
        let unbounded = timeouts.global.is_none() && timeouts.per_call.is_none();
        UreqTransport {
            agent,
            per_request: true,
            timeout: unbounded.then_some(DEFAULT_TIMEOUT),
            max_body_size: ConfigBuilder::DEFAULT_MAX_BODY_SIZE,
        }
    }

    /// Sets the overall timeout of each exchange (for an agent of your own,
    /// this overrides its global timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self.per_request = true;
        self
    }

    /// Reads at most `bytes + 1` body bytes (the client sets this from its config).
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    fn run<S: ureq::AsSendBody>(&self, request: Request<S>) -> Result<Response<ureq::Body>, ureq::Error> {
        let direct = bypasses_proxy(request.uri());
        if !self.per_request && !direct {
            return self.agent.run(request);
        }
        let mut config = self
            .agent
            .configure_request(request)
            .max_redirects(0)
            .http_status_as_error(false);
        if let Some(timeout) = self.timeout {
            config = config.timeout_global(Some(timeout));
            if self.agent.config().timeouts().connect.is_none() {
                config = config.timeout_connect(Some(timeout.min(DEFAULT_CONNECT_TIMEOUT)));
            }
        }
        if direct {
            config = config.proxy(None);
        }
        self.agent.run(config.build())
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
        let url = request.uri().clone();
        // An empty body goes out without one (a GET must not carry `Content-Length`).
        let response = if request.body().is_empty() {
            self.run(request.map(|_| ()))
        } else {
            self.run(request)
        }
        .map_err(|e| map_error(&url, e))?;
        let (parts, body) = response.into_parts();
        let limit = self.max_body_size.saturating_add(1);
        // The buffer grows as bytes arrive: sized from `Content-Length`, a
        // hostile value under a large cap would allocate before a byte came.
        let mut bytes = Vec::new();
        // Never buffer more than the cap, whatever the server announces or sends.
        body.into_reader()
            .take(limit as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| map_error(&url, ureq::Error::from(e)))?;
        Ok(Response::from_parts(parts, bytes))
    }
}
