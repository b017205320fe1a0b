//! Minimal, defensive HTTP/1.1 request reading and response writing over a
//! blocking [`TcpStream`], and the threads of a test server ([`Running`]).
//! Every I/O loop polls the server's shutdown flag so that dropping the
//! server never waits on a stuck peer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::lock;

/// Poll interval of blocking socket operations.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Give up on a peer that does not finish sending its request in this time.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Largest accepted request head (request line + headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted request body.
const MAX_BODY: usize = 1024 * 1024;

/// A parsed (or partially parsed) request.
#[derive(Debug, Default)]
pub(crate) struct RawRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `Some(status, message)` when the request is malformed and must be
    /// answered with that status (the other fields hold what could be parsed).
    pub error: Option<(u16, &'static str)>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The first of `headers` named `name` (case-insensitive).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Outcome of reading from a connection.
pub(crate) enum ReadOutcome {
    /// The peer closed (or the issuer shut down) before sending anything.
    Nothing,
    /// A request, possibly flagged malformed.
    Request(RawRequest),
}

/// Buffered reader that polls the shutdown flag on read timeouts.
struct Conn<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
    shutdown: &'a AtomicBool,
    deadline: Instant,
}

impl Conn<'_> {
    /// Reads more bytes into `buf`; `Ok(false)` on EOF, error on shutdown,
    /// deadline or I/O failure.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        loop {
            if self.shutdown.load(Ordering::SeqCst) || Instant::now() > self.deadline {
                return Err(stopped());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if is_poll_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes exactly `n` bytes (reading as needed); `None` on premature EOF.
    fn take(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Ok(None);
            }
        }
        let rest = self.buf.split_off(n);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }

    /// Takes one CRLF- (or LF-) terminated line without its terminator.
    fn line(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.take(pos + 1)?.unwrap_or_default();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > limit || !self.fill()? {
                return Ok(None);
            }
        }
    }
}

/// Reads one request. I/O errors (including shutdown) are returned as `Err`.
pub(crate) fn read_request(stream: &mut TcpStream, shutdown: &AtomicBool) -> io::Result<ReadOutcome> {
    stream.set_read_timeout(Some(POLL))?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        shutdown,
        deadline: Instant::now() + REQUEST_DEADLINE,
    };
    // Head: everything up to the empty line.
    let head_end = loop {
        if let Some(pos) = find(&conn.buf, b"\r\n\r\n") {
            break Some((pos, 4));
        }
        if let Some(pos) = find(&conn.buf, b"\n\n") {
            break Some((pos, 2));
        }
        if conn.buf.len() > MAX_HEAD {
            break None;
        }
        if !conn.fill()? {
            if conn.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(ReadOutcome::Nothing);
            }
            break None;
        }
    };
    let mut req = RawRequest::default();
    let Some((pos, sep)) = head_end else {
        let head = String::from_utf8_lossy(&conn.buf[..conn.buf.len().min(MAX_HEAD)]).into_owned();
        parse_head(&head, &mut req);
        req.error.get_or_insert((400, "incomplete or oversized request head"));
        return Ok(ReadOutcome::Request(req));
    };
    let head_bytes = conn.take(pos + sep)?.unwrap_or_default();
    let head = String::from_utf8_lossy(&head_bytes[..pos]).into_owned();
    parse_head(&head, &mut req);
    if req.error.is_some() {
        return Ok(ReadOutcome::Request(req));
    }

    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    let chunked = req
        .header("transfer-encoding")
        .map(|v| v.split(',').map(str::trim).any(|t| t.eq_ignore_ascii_case("chunked")));
    let content_length = req.header("content-length").map(str::to_owned);
    match (chunked, content_length) {
        (Some(_), Some(_)) => {
            req.error = Some((400, "both Transfer-Encoding and Content-Length"));
        }
        (Some(false), None) => {
            req.error = Some((400, "unsupported Transfer-Encoding"));
        }
        (Some(true), None) => match read_chunked(&mut conn)? {
            Ok(body) => req.body = body,
            Err(e) => req.error = Some(e),
        },
        (None, Some(cl)) => match cl.trim().parse::<usize>() {
            Ok(n) if n > MAX_BODY => req.error = Some((413, "request body too large")),
            Ok(n) => match conn.take(n)? {
                Some(body) => req.body = body,
                None => {
                    req.body = std::mem::take(&mut conn.buf);
                    req.error = Some((400, "request body shorter than Content-Length"));
                }
            },
            Err(_) => req.error = Some((400, "invalid Content-Length")),
        },
        (None, None) => {}
    }
    Ok(ReadOutcome::Request(req))
}

fn read_chunked(conn: &mut Conn<'_>) -> io::Result<Result<Vec<u8>, (u16, &'static str)>> {
    let mut body = Vec::new();
    loop {
        let Some(line) = conn.line(1024)? else {
            return Ok(Err((400, "truncated chunked body")));
        };
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return Ok(Err((400, "invalid chunk size")));
        };
        if size == 0 {
            // Trailers until the empty line.
            loop {
                match conn.line(MAX_HEAD)? {
                    Some(l) if l.is_empty() => return Ok(Ok(body)),
                    Some(_) => {}
                    None => return Ok(Err((400, "truncated chunked trailer"))),
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Ok(Err((413, "request body too large")));
        }
        let Some(data) = conn.take(size)? else {
            return Ok(Err((400, "truncated chunk")));
        };
        body.extend_from_slice(&data);
        match conn.line(2)? {
            Some(l) if l.is_empty() => {}
            _ => return Ok(Err((400, "missing CRLF after chunk"))),
        }
    }
}

fn parse_head(head: &str, req: &mut RawRequest) {
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    req.method = parts.next().unwrap_or("").to_owned();
    req.target = parts.next().unwrap_or("").to_owned();
    let version = parts.next().unwrap_or("");
    let valid_method = !req.method.is_empty() && req.method.bytes().all(|b| b.is_ascii_uppercase());
    if !valid_method
        || !req.target.starts_with('/')
        || !(version == "HTTP/1.1" || version == "HTTP/1.0")
        || parts.next().is_some()
    {
        req.error = Some((400, "malformed request line"));
    }
    for line in lines {
        let line = line.trim_end_matches('\r');
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.bytes().any(|b| b.is_ascii_whitespace()) => {
                req.headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            _ => {
                req.error.get_or_insert((400, "malformed header line"));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes all of `data`, polling the shutdown flag while the peer is not
/// reading.
pub(crate) fn write_all(stream: &mut TcpStream, mut data: &[u8], shutdown: &AtomicBool) -> io::Result<()> {
    stream.set_write_timeout(Some(POLL))?;
    while !data.is_empty() {
        if shutdown.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_poll_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error of an I/O loop that gave up: the server stops or the peer
/// took too long.
fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "stopped")
}

/// Whether `error` only says a [`POLL`]-long wait passed (time to look at
/// the shutdown flag, then wait again).
fn is_poll_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Sleeps for `duration`, returning early (with `false`) on shutdown.
pub(crate) fn sleep(duration: Duration, shutdown: &AtomicBool) -> bool {
    let end = Instant::now() + duration;
    loop {
        if shutdown.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(POLL));
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut r = Response::new(status);
        r.headers.push(("Content-Type".into(), "application/json".into()));
        r.body = value.to_string().into_bytes();
        r
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Status line and headers, adding `Content-Length` (unless `chunked`
    /// or already present) and `Connection: close`.
    pub fn head(&self, chunked: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if chunked {
            if !self.has_header("transfer-encoding") {
                out.push_str("Transfer-Encoding: chunked\r\n");
            }
        } else if !self.has_header("content-length") {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if !self.has_header("connection") {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A test server's stop flag and the threads serving its connections.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    /// Set when the server stops; every I/O loop polls it.
    pub(crate) shutdown: AtomicBool,
    /// Joined when the server stops.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running test server: a thread accepting connections and one thread
/// per connection. Dropping it stops the server and joins them all (closing
/// the connections still open, even ones held by a fault). Dereferences to
/// the server's shared state `S`, which holds its [`Connections`].
pub(crate) struct Running<S: AsRef<Connections>> {
    shared: Arc<S>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl<S: AsRef<Connections> + Send + Sync + 'static> Running<S> {
    /// Serves `shared` on `listener`, each connection on its own thread with
    /// `serve` (until the peer closes it or the server stops). `name` names
    /// the threads: `{name}-{port}` accepts, `{name}-conn` serves.
    ///
    /// # Panics
    ///
    /// Panics if the listener has no local address or the accepting thread
    /// cannot be spawned.
    pub(crate) fn start(listener: TcpListener, shared: S, name: &str, serve: fn(TcpStream, &S)) -> Running<S> {
        let addr = listener.local_addr().expect("local address of listener");
        let shared = Arc::new(shared);
        let accept_shared = Arc::clone(&shared);
        let connection_name = format!("{name}-conn");
        let accept_thread = std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || accept_loop(listener, &accept_shared, &connection_name, serve))
            .unwrap_or_else(|error| panic!("spawn the {name} thread: {error}"));
        Running {
            shared,
            addr,
            accept_thread: Some(accept_thread),
        }
    }
}

impl<S: AsRef<Connections>> Deref for Running<S> {
    type Target = Arc<S>;

    fn deref(&self) -> &Arc<S> {
        &self.shared
    }
}

impl<S: AsRef<Connections>> Drop for Running<S> {
    fn drop(&mut self) {
        let connections = (*self.shared).as_ref();
        connections.shutdown.store(true, Ordering::SeqCst);
        // Unblock `accept`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
        let handles = std::mem::take(&mut *lock(&connections.threads));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

fn accept_loop<S: AsRef<Connections> + Send + Sync + 'static>(
    listener: TcpListener,
    shared: &Arc<S>,
    connection_name: &str,
    serve: fn(TcpStream, &S),
) {
    for stream in listener.incoming() {
        let connections = (**shared).as_ref();
        if connections.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(connection_name.to_owned())
            .spawn(move || serve(stream, &conn_shared));
        let mut threads = lock(&connections.threads);
        threads.retain(|h| !h.is_finished());
        if let Ok(handle) = spawned {
            threads.push(handle);
        }
    }
}
