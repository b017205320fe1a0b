//! The sans-IO core driven by hand, as an embedder with a runtime of their own
//! would: no adapter, no async runtime, no HTTP crate.
//!
//! What it shows, against the workspace's test issuer on loopback (offline,
//! about 2.5 s, most of it the back-off waits):
//! - **The loop**: `poll(now)` says what to do (`Ready`, `Send`, `Wait`,
//!   `Failed`); the program does it and hands the result back. Discovery and
//!   token requests go through the same `Send` arm.
//! - **Your own HTTP client**: `TinyHttp` below, a plain `std::net::TcpStream`
//!   HTTP/1.1 client (plain `http://` only; put your TLS stack there).
//! - **Your own clock**: `ManualClock` maps a monotonic clock onto wall time
//!   and can be fast-forwarded, the way a game server or a simulation keeps
//!   time. The core reads no clock: every call takes `now`.
//! - **Back-off waits**: a `503` with `Retry-After: 1`, then a dropped
//!   connection; the loop sleeps until the `until` the core gives.
//! - **Refresh** when the (fast-forwarded) clock reaches the refresh time, and
//!   a wrong secret answered at once with `Action::Failed`.
//!
//! ```sh
//! cargo run -p client-credentials --example custom_runtime
//! ```

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use client_credentials::{AccessToken, Action, Config, Error, Event, Timestamp, TokenSource, TransportErrorKind};
use client_credentials_testkit::{Fault, TestIssuer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url()) // discovered through the same loop
        .scope("orders:read")
        .build()?;
    let http = TinyHttp {
        timeout: Duration::from_secs(10),
        max_body: config.max_body_size(),
    };
    let mut clock = ManualClock::start();
    let mut source = TokenSource::new(config, [7; 32]);

    // 1. First token: discovery, then a 503 with Retry-After and a dropped
    //    connection, each retried after the wait the core asks for.
    issuer.push_fault(Fault::retry_after(503, "1"));
    issuer.push_fault(Fault::CloseImmediately);
    println!("1. first token (the issuer answers 503 with Retry-After: 1, then drops the connection)");
    let first = token(&mut source, &clock, &http)?;
    println!("first token after {} token requests", issuer.token_requests().len());
    assert_eq!(issuer.token_requests().len(), 3);

    // 2. Cached: no request until the refresh time.
    println!("2. again");
    let again = token(&mut source, &clock, &http)?;
    assert!(again.same_token(&first));
    println!("cached read: same token, no request");

    // 3. Fast-forward the clock to ten seconds past the refresh time.
    let refresh_at = source.refresh_at().ok_or("a token with an expiry")?;
    clock.advance(refresh_at.saturating_duration_since(clock.now()) + Duration::from_secs(10));
    println!("3. the clock is fast-forwarded past the refresh time");
    let refreshed = token(&mut source, &clock, &http)?;
    assert!(!refreshed.same_token(&first));
    println!("refreshed");
    assert_eq!(issuer.token_requests().len(), 4);

    // 4. A wrong secret: the OAuth error comes back at once, without retries.
    let config = Config::builder(issuer.client_id(), "not-the-secret")
        .token_endpoint(issuer.token_endpoint())
        .build()?;
    let mut wrong = TokenSource::new(config, [7; 32]);
    println!("4. a wrong secret");
    match token(&mut wrong, &clock, &http) {
        Err(error) => println!("wrong secret: {error}"),
        Ok(_) => return Err("a wrong secret was accepted".into()),
    }
    assert_eq!(issuer.token_requests().len(), 5);
    Ok(())
}

/// A fresh token: the whole adapter loop. `poll` decides; this function only
/// performs the I/O and the waits it is told to.
fn token(source: &mut TokenSource, clock: &ManualClock, http: &TinyHttp) -> Result<AccessToken, Error> {
    loop {
        let outgoing = match source.poll(clock.now()) {
            Action::Ready(token) => return Ok(token.clone()),
            Action::Send(outgoing) => outgoing,
            // No usable token and the last round failed: report, do not wait.
            Action::Failed(error) => return Err(error.clone()),
            Action::Wait { until } => {
                // A retry backs off until `until`. (`None`: a request of
                // another caller is in flight; this program has only one.)
                let pause = until.map_or(Duration::from_millis(10), |until| {
                    until.saturating_duration_since(clock.now())
                });
                println!("  waiting {} ms before the next attempt", pause.as_millis());
                std::thread::sleep(pause);
                continue;
            }
        };
        println!(
            "  {:?} {} {}",
            outgoing.kind,
            outgoing.request.method(),
            outgoing.request.uri()
        );
        let result = match http.send(&outgoing.request) {
            Ok(response) => {
                println!("    -> {}", response.status());
                source.handle_response(clock.now(), outgoing.id, response)
            }
            Err(kind) => {
                println!("    -> transport error: {kind:?}");
                source.handle_transport_error(clock.now(), outgoing.id, kind)
            }
        };
        match result {
            Ok(Event::TokenUpdated(_)) => println!("    new token (persist it here)"),
            Ok(Event::DiscoveryUpdated(metadata)) => println!("    token endpoint {}", metadata.token_endpoint),
            Ok(Event::RetryScheduled { error, .. }) => println!("    will retry: {error}"),
            Ok(Event::RefreshFailed { error, .. }) => {
                println!("    refresh failed, still serving the cached token: {error}")
            }
            Ok(other) => println!("    {other:?}"),
            // The round failed: the next poll returns `Failed` with this error.
            Err(error) => println!("    round failed: {error}"),
        }
    }
}

/// Wall time as the embedder keeps it: anchored to the system clock once,
/// then advanced by a monotonic clock (so a wall-clock step does not move it)
/// and by hand.
struct ManualClock {
    anchor: Timestamp,
    started: Instant,
    skipped: Duration,
}

impl ManualClock {
    fn start() -> Self {
        ManualClock {
            anchor: Timestamp::from(SystemTime::now()),
            started: Instant::now(),
            skipped: Duration::ZERO,
        }
    }

    fn now(&self) -> Timestamp {
        self.anchor.saturating_add(self.started.elapsed() + self.skipped)
    }

    /// Moves time forward without waiting (a simulation step, a test).
    fn advance(&mut self, by: Duration) {
        self.skipped += by;
    }
}

/// A minimal HTTP/1.1 client on `std::net::TcpStream`: one request per
/// connection (`Connection: close`), plain `http://` only, bodies read up to
/// the core's cap. No redirects are followed: the core rejects a `3xx`.
struct TinyHttp {
    timeout: Duration,
    max_body: usize,
}

impl TinyHttp {
    fn send(&self, request: &http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportErrorKind> {
        let uri = request.uri();
        if uri.scheme_str() != Some("http") {
            return Err(TransportErrorKind::Other); // TLS is not this example's job
        }
        let host = uri.host().ok_or(TransportErrorKind::Other)?;
        let port = uri.port_u16().unwrap_or(80);
        let address = (host, port)
            .to_socket_addrs()
            .map_err(|_| TransportErrorKind::Connect)?
            .next()
            .ok_or(TransportErrorKind::Connect)?;
        let mut stream = TcpStream::connect_timeout(&address, self.timeout).map_err(|error| match error.kind() {
            std::io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
            _ => TransportErrorKind::Connect,
        })?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io_kind)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io_kind)?;

        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!("{} {target} HTTP/1.1\r\nHost: {host}:{port}\r\n", request.method());
        for (name, value) in request.headers() {
            // Header values the core builds are ASCII; the Authorization value
            // carries the credentials and is never printed.
            let value = value.to_str().map_err(|_| TransportErrorKind::Other)?;
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            request.body().len()
        ));
        stream.write_all(head.as_bytes()).map_err(io_kind)?;
        stream.write_all(request.body()).map_err(io_kind)?;

        // Read the whole answer (the server closes), capped: headers get 16 KiB.
        let cap = self.max_body + 16 * 1024;
        let mut raw = Vec::new();
        stream.take(cap as u64 + 1).read_to_end(&mut raw).map_err(io_kind)?;
        if raw.len() > cap {
            return Err(TransportErrorKind::Other); // over the body cap
        }
        parse_response(&raw)
    }
}

/// Splits `HTTP/1.1 200 OK\r\nName: value\r\n\r\nbody` into an `http::Response`.
fn parse_response(raw: &[u8]) -> Result<http::Response<Vec<u8>>, TransportErrorKind> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(TransportErrorKind::Io)?; // closed before the headers ended
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| TransportErrorKind::Other)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or(TransportErrorKind::Other)?;
    let mut response = http::Response::builder().status(status);
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(TransportErrorKind::Other)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(TransportErrorKind::Other); // chunked bodies: not in this tiny client
        }
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| TransportErrorKind::Other)?);
        }
        response = response.header(name, value);
    }
    let body = &raw[end + 4..];
    if content_length.is_some_and(|length| body.len() < length) {
        return Err(TransportErrorKind::Io); // the connection closed mid-body
    }
    let body = body[..content_length.unwrap_or(body.len())].to_vec();
    response.body(body).map_err(|_| TransportErrorKind::Other)
}

fn io_kind(error: std::io::Error) -> TransportErrorKind {
    match error.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => TransportErrorKind::Timeout,
        _ => TransportErrorKind::Io,
    }
}
