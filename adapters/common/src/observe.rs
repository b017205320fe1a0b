//! What a client reports while it works, written once for both adapters:
//!
//! - a `tracing` span per HTTP request (`oauth.client.request`, level INFO)
//!   with OpenTelemetry HTTP-client field names (`http.request.method`,
//!   `url.full` without query, `http.response.status_code`, `error.type`,
//!   `otel.kind`, `otel.name`, `otel.status_code`) and `oauth.token.key`
//!   (the first 8 hex digits of the token's cache key: which of a client's
//!   keys asked), so a
//!   `tracing-opentelemetry` layer exports it as it is. Its parent is the
//!   span of the caller that started the flight (single flight: the first
//!   caller's), even when the request runs in a task of its own;
//! - with the feature `metrics`, counters, histograms and gauges through the
//!   [`metrics`](https://docs.rs/metrics) facade (names and labels in the
//!   README's "Observability" table). Without the feature every function
//!   here that records a metric compiles to nothing; with it and no recorder
//!   installed, each is a load of the facade's no-op recorder.
//!
//! Nothing here runs on the cached-read path: only the driver's slow path
//! (a request, a round's end, a state change, a caller that waits) calls in.
//! Labels are bounded: the client id, the request kind, the outcome, and an
//! `error.type` drawn from a fixed set (the RFC 6749 error codes or `other`,
//! an HTTP status code, a transport error kind). Never a token or a secret.

use std::time::Instant;

use client_credentials::{Config, Error, OAuthErrorCode, RequestId, RequestKind, TransportError};
use tracing::field::Empty;
use tracing::Span;

use crate::store::FleetTurn;

/// The name of every request span.
pub const REQUEST_SPAN: &str = "oauth.client.request";

/// Metric names, OpenTelemetry style (a Prometheus exporter writes the dots
/// as underscores and adds `_total` / `_seconds` suffixes as it does).
pub mod names {
    /// Counter: HTTP requests sent, by client, kind and outcome.
    pub const REQUESTS: &str = "oauth.client.requests";
    /// Histogram (seconds): how long each HTTP request took, by client, kind and outcome.
    pub const REQUEST_DURATION: &str = "oauth.client.request.duration";
    /// Counter: rounds that ended without a new token, by client and `error.type`.
    pub const ROUNDS_FAILED: &str = "oauth.client.rounds.failed";
    /// Counter: retries scheduled inside a round (each a back-off wait), by client.
    pub const BACKOFF_WAITS: &str = "oauth.client.backoff.waits";
    /// Histogram (seconds): the length of those back-off waits, by client.
    pub const BACKOFF_DURATION: &str = "oauth.client.backoff.duration";
    /// Gauge (seconds): until the cached token expires, as of the client's last state change.
    pub const TOKEN_EXPIRES_IN: &str = "oauth.client.token.expires_in";
    /// Gauge (seconds): until the cached token is due for refresh, as of the last state change.
    pub const TOKEN_REFRESH_IN: &str = "oauth.client.token.refresh_in";
    /// Gauge (Unix seconds): when the cached token expires (never stale; 0: none cached).
    pub const TOKEN_EXPIRES_AT: &str = "oauth.client.token.expires_at";
    /// Gauge: callers waiting for a flight (a request, the store, the provider).
    pub const CALLERS_WAITING: &str = "oauth.client.callers.waiting";
    /// Counter: fleet turns, by client and `turn` (`won`: this process fetched; `followed`: it used the fleet's token; `held_back`: the fleet's rejection back-off failed the round without a request).
    pub const FLEET_TURNS: &str = "oauth.client.fleet.turns";
    /// Counter: failed store calls, by `operation` (`load`, `save`, `delete`, `evict`, `begin_fetch`).
    pub const STORE_ERRORS: &str = "oauth.client.store.errors";
}

/// Label names.
pub mod labels {
    /// The configured client id.
    pub const CLIENT_ID: &str = "oauth.client.id";
    /// The first 12 hex digits of the client's cache key
    /// ([`Config::fingerprint`](client_credentials::Config::fingerprint)): two
    /// clients with one id and different scopes, resources or parameters
    /// are told apart. It reveals nothing of the secret.
    pub const KEY: &str = "oauth.client.key";
    /// `token`, `discovery` or `revocation`.
    pub const REQUEST_KIND: &str = "oauth.request.kind";
    /// `ok`, `oauth_error`, `http_status` or `transport`.
    pub const OUTCOME: &str = "outcome";
    /// What went wrong, from a bounded set (see [`error_type`](super::error_type)).
    pub const ERROR_TYPE: &str = "error.type";
    /// `won`, `followed` or `held_back`.
    pub const TURN: &str = "turn";
    /// The store call that failed.
    pub const OPERATION: &str = "operation";
}

/// The labels every metric of one client carries: its client id and its
/// cache key's prefix. Made once per key, and small: a client with many
/// keys keeps one per key, so the client id is not copied (it is read from
/// the key's config, which shares it with every key of the client, when a
/// metric is recorded) and the key's prefix is kept inline. Empty without
/// the feature `metrics`.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// `None` only for [`Labels::default`]: no labels.
    #[cfg(feature = "metrics")]
    client: Option<LabelSource>,
}

/// What a key's labels are made from when a metric is recorded.
#[cfg(feature = "metrics")]
#[derive(Debug, Clone)]
struct LabelSource {
    config: Config,
    /// The first 12 hex digits of the config's fingerprint (ASCII).
    key: [u8; 12],
}

impl Labels {
    /// The labels of the client with `config`.
    #[allow(unused_variables)]
    pub fn new(config: &Config) -> Labels {
        #[cfg(feature = "metrics")]
        {
            let mut key = [b'0'; 12];
            for (to, from) in key.iter_mut().zip(config.fingerprint().bytes()) {
                *to = from;
            }
            Labels {
                client: Some(LabelSource {
                    config: config.clone(),
                    key,
                }),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Labels {}
    }

    /// These labels and `more`, for one metric.
    #[cfg(feature = "metrics")]
    fn with(&self, more: &[(&'static str, &'static str)]) -> Vec<metrics::Label> {
        let own = self.client.iter().flat_map(|client| {
            // The fingerprint is hex digits: ASCII, so valid UTF-8.
            let key = std::str::from_utf8(&client.key).unwrap_or_default();
            [
                metrics::Label::new(labels::CLIENT_ID, client.config.client_id().to_owned()),
                metrics::Label::new(labels::KEY, key.to_owned()),
            ]
        });
        own.chain(more.iter().map(|(k, v)| metrics::Label::new(*k, *v)))
            .collect()
    }
}

/// One request about to be sent: what it is for, its id, and its attempt
/// number in the round (1: the first request of its kind).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) kind: RequestKind,
    pub(crate) id: RequestId,
    pub(crate) attempt: u32,
}

fn kind_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Token => "token",
        RequestKind::Discovery => "discovery",
        RequestKind::Revocation => "revocation",
    }
}

/// `scheme://host[:port]/path`: the URL without its query (which may carry
/// parameters a provider wants kept out of logs) and without user info.
pub fn url_without_query(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("");
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

/// One HTTP exchange being observed: its span (a child of the span of the
/// caller that started the round) and when it started. Begun before the
/// request is sent, ended with its result, which records the span's status
/// fields and the request metrics. The adapter sends inside [`Exchange::span`].
#[derive(Debug)]
pub struct Exchange {
    span: Span,
    kind: RequestKind,
    started: Instant,
}

impl Exchange {
    /// The span for `request`, described by `sent`.
    pub(crate) fn begin(
        config: &Config,
        key: &str,
        parent: &Span,
        sent: Sent,
        request: &http::Request<Vec<u8>>,
    ) -> Exchange {
        let method = request.method();
        let uri = request.uri();
        let span = tracing::info_span!(
            parent: parent,
            "oauth.client.request",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %method,
            url.full = %url_without_query(uri),
            server.address = uri.host().unwrap_or(""),
            server.port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 }),
            http.request.resend_count = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
            oauth.client.id = config.client_id(),
            oauth.token.key = key,
            oauth.request.kind = kind_name(sent.kind),
            oauth.request.id = %sent.id,
            oauth.request.attempt = sent.attempt,
        );
        if sent.attempt > 1 {
            span.record("http.request.resend_count", sent.attempt - 1);
        }
        Exchange {
            span,
            kind: sent.kind,
            started: Instant::now(),
        }
    }

    /// The span to send the request in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The exchange ended with `result`.
    pub(crate) fn end(self, labels: &Labels, result: &Result<http::Response<Vec<u8>>, TransportError>) {
        let took = self.started.elapsed();
        let (outcome, error_type) = classify(result);
        if let Ok(response) = result {
            self.span
                .record("http.response.status_code", response.status().as_u16());
        }
        if outcome != "ok" {
            self.span.record("error.type", error_type);
            self.span.record("otel.status_code", "ERROR");
        }
        record_request(labels, self.kind, outcome, error_type, took);
    }
}

/// The outcome of one HTTP exchange and its `error.type` (`""` when `ok`):
/// `transport` with the error kind; `oauth_error` with the RFC 6749 code
/// (unknown codes as `other`) for a 4xx whose JSON body names one;
/// `http_status` with the status code for any other non-2xx answer.
fn classify(result: &Result<http::Response<Vec<u8>>, TransportError>) -> (&'static str, &'static str) {
    let response = match result {
        Ok(response) => response,
        Err(error) => return ("transport", transport_kind(error)),
    };
    let status = response.status();
    if status.is_success() {
        return ("ok", "");
    }
    if status.is_client_error() {
        let code = serde_json::from_slice::<serde_json::Value>(response.body())
            .ok()
            .and_then(|body| body.get("error")?.as_str().map(OAuthErrorCode::from_wire));
        if let Some(code) = code {
            return ("oauth_error", oauth_code(&code));
        }
    }
    ("http_status", status_code(status))
}

fn transport_kind(error: &TransportError) -> &'static str {
    match error.kind() {
        client_credentials::TransportErrorKind::Connect => "connect",
        client_credentials::TransportErrorKind::Timeout => "timeout",
        client_credentials::TransportErrorKind::Io => "io",
        _ => "other",
    }
}

/// An OAuth error code as a bounded label: the RFC 6749 / RFC 8707 codes,
/// anything else `other` (a server could send any string).
fn oauth_code(code: &OAuthErrorCode) -> &'static str {
    match code {
        OAuthErrorCode::InvalidRequest => "invalid_request",
        OAuthErrorCode::InvalidClient => "invalid_client",
        OAuthErrorCode::InvalidGrant => "invalid_grant",
        OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
        OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
        OAuthErrorCode::InvalidScope => "invalid_scope",
        OAuthErrorCode::InvalidTarget => "invalid_target",
        _ => "other",
    }
}

/// A status code as a `'static` label (one of at most 500 values).
fn status_code(status: http::StatusCode) -> &'static str {
    const CODES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    // `StatusCode::as_str` borrows the status; the well-known codes are
    // spelled out, the rest grouped by class so the label stays bounded.
    match status.as_u16() {
        301 => "301",
        302 => "302",
        303 => "303",
        307 => "307",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        408 => "408",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        code => CODES
            .get(usize::from(code / 100).saturating_sub(1))
            .copied()
            .unwrap_or("other"),
    }
}

/// What a failed round's error was, as a bounded `error.type`.
pub fn error_type(error: &Error) -> &'static str {
    match error {
        Error::OAuth { code, .. } => oauth_code(code),
        Error::UnexpectedStatus { .. } => "http_status",
        Error::InvalidResponse { .. } => "invalid_response",
        Error::Transport(error) => transport_kind(error),
        Error::Discovery(_) => "discovery",
        Error::Config(_) => "config",
        Error::ClientAuth(_) => "client_auth",
        Error::TokenRejected => "token_rejected",
        _ => "other",
    }
}

/// Records one HTTP request's outcome and duration.
#[allow(unused_variables)]
fn record_request(
    client: &Labels,
    kind: RequestKind,
    outcome: &'static str,
    error_type: &'static str,
    took: std::time::Duration,
) {
    #[cfg(feature = "metrics")]
    {
        let timed = client.with(&[(labels::REQUEST_KIND, kind_name(kind)), (labels::OUTCOME, outcome)]);
        let mut counted = timed.clone();
        counted.push(metrics::Label::new(labels::ERROR_TYPE, error_type));
        metrics::counter!(names::REQUESTS, counted).increment(1);
        metrics::histogram!(names::REQUEST_DURATION, timed).record(took.as_secs_f64());
    }
}

/// The core scheduled a back-off wait of `wait` after a failed attempt.
#[allow(unused_variables)]
pub(crate) fn backoff(client: &Labels, wait: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!(names::BACKOFF_WAITS, client.with(&[])).increment(1);
        metrics::histogram!(names::BACKOFF_DURATION, client.with(&[])).record(wait.as_secs_f64());
    }
}

/// A round ended without a new token.
#[allow(unused_variables)]
pub(crate) fn round_failed(client: &Labels, error: &Error) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        names::ROUNDS_FAILED,
        client.with(&[(labels::ERROR_TYPE, error_type(error))])
    )
    .increment(1);
}

/// The cached token changed (or its refresh time did): sets the gauges.
#[allow(unused_variables)]
pub(crate) fn token_times(
    client: &Labels,
    driver: &client_credentials::driver::Driver,
    now: impl FnOnce() -> client_credentials::Timestamp,
) {
    #[cfg(feature = "metrics")]
    {
        let now = now();
        let seconds_until = |at: client_credentials::Timestamp| at.saturating_duration_since(now).as_secs_f64();
        let expires_at = driver.token().and_then(|token| token.expires_at());
        let (expires_in, refresh_in) = match (expires_at, driver.source().refresh_at()) {
            (Some(expires), refresh) => (
                seconds_until(expires),
                refresh
                    .filter(|at| *at != client_credentials::Timestamp::MAX)
                    .map_or(0.0, seconds_until),
            ),
            // Nothing cached, or a token without expiry: nothing to wait for.
            (None, _) => (0.0, 0.0),
        };
        metrics::gauge!(names::TOKEN_EXPIRES_IN, client.with(&[])).set(expires_in);
        metrics::gauge!(names::TOKEN_REFRESH_IN, client.with(&[])).set(refresh_in);
        let at = expires_at.map_or(0.0, |at| at.as_unix_millis() as f64 / 1000.0);
        metrics::gauge!(names::TOKEN_EXPIRES_AT, client.with(&[])).set(at);
    }
}

/// The store's fleet hook answered.
#[allow(unused_variables)]
pub(crate) fn fleet_turn(client: &Labels, turn: &std::io::Result<FleetTurn>) {
    #[cfg(feature = "metrics")]
    {
        let turn = match turn {
            Ok(FleetTurn::Fetch) => "won",
            Ok(FleetTurn::Use(_)) => "followed",
            Ok(FleetTurn::HoldBack(_)) => "held_back",
            Err(_) => return store_error("begin_fetch"),
        };
        metrics::counter!(names::FLEET_TURNS, client.with(&[(labels::TURN, turn)])).increment(1);
    }
}

/// A store call failed.
#[allow(unused_variables)]
pub(crate) fn store_error(operation: &str) {
    #[cfg(feature = "metrics")]
    {
        let operation = match operation {
            "load" => "load",
            "save" => "save",
            "delete" => "delete",
            "evict" => "evict",
            "begin_fetch" => "begin_fetch",
            _ => "other",
        };
        metrics::counter!(names::STORE_ERRORS, labels::OPERATION => operation).increment(1);
    }
}

/// Counts a caller among the waiting from its first wait until it is
/// dropped (its call returned, or its future was dropped): an adapter's
/// loop holds one in an `Option`, filled at the first `Step::Wait`.
#[derive(Debug)]
pub struct Waiting {
    #[cfg(feature = "metrics")]
    gauge: metrics::Gauge,
}

impl Waiting {
    /// One more caller of the client with these labels is waiting.
    #[allow(unused_variables)]
    pub fn new(client: &Labels) -> Waiting {
        #[cfg(feature = "metrics")]
        {
            let gauge = metrics::gauge!(names::CALLERS_WAITING, client.with(&[]));
            gauge.increment(1.0);
            Waiting { gauge }
        }
        #[cfg(not(feature = "metrics"))]
        Waiting {}
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query_and_user_info() {
        let uri: http::Uri = "https://user:pw@id.example:8443/oauth2/token?secret=1#x"
            .parse()
            .unwrap();
        assert_eq!(url_without_query(&uri), "https://id.example:8443/oauth2/token");
    }

    #[test]
    fn outcomes_are_classified_with_bounded_error_types() {
        let answer = |status: u16, body: &str| {
            Ok(http::Response::builder()
                .status(status)
                .body(body.as_bytes().to_vec())
                .unwrap())
        };
        assert_eq!(classify(&answer(200, "{}")), ("ok", ""));
        assert_eq!(
            classify(&answer(400, r#"{"error":"invalid_scope"}"#)),
            ("oauth_error", "invalid_scope")
        );
        assert_eq!(
            classify(&answer(400, r#"{"error":"a-new-code-every-time-7"}"#)),
            ("oauth_error", "other")
        );
        assert_eq!(classify(&answer(503, "<html>")), ("http_status", "503"));
        assert_eq!(classify(&answer(599, "")), ("http_status", "5xx"));
        let timeout = TransportError::new(client_credentials::TransportErrorKind::Timeout, "slow");
        assert_eq!(classify(&Err(timeout)), ("transport", "timeout"));
    }
}
