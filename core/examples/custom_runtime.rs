//! The whole client run by hand, against the test issuer on loopback: the
//! core's [`Driver`] behind a `Mutex`, eight callers on threads parked on a
//! `Condvar`, a store, a clock that can be fast-forwarded, a `TcpStream` HTTP
//! client. The driver decides; this program locks, performs the I/O it is
//! handed outside the lock, hands the result back, waits and wakes (fast-
//! forwarding to the refresh time, then signing out). `cargo run --example custom_runtime`

use client_credentials::driver::{Call, Caller, Driver, Outcome, Step, Task, Work};
use client_credentials::{AccessToken, Config, Error, Timestamp, TokenSource, TransportErrorKind};
use client_credentials_testkit::{Fault, TestIssuer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

/// One client, shared by every caller; its clock: the wall clock plus `skipped`.
struct Client {
    driver: Mutex<Driver>,
    changed: Condvar,
    store: Mutex<Option<AccessToken>>,
    skipped: Mutex<Duration>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret());
    let source = TokenSource::new(config.issuer(issuer.issuer_url()).build()?, [7; 32]);
    let client = Arc::new(Client {
        driver: Mutex::new(Driver::new(source).with_store()),
        changed: Condvar::new(),
        store: Mutex::new(None),
        skipped: Mutex::new(Duration::ZERO),
    });
    issuer.push_fault(Fault::retry_after(503, "1"));
    let spawn = |c: Arc<Client>| std::thread::spawn(move || c.run(Call::token()));
    let threads: Vec<_> = (0..8).map(|_| spawn(Arc::clone(&client))).collect();
    let joined = threads.into_iter().map(|t| t.join().expect("a caller"));
    let tokens = joined.collect::<Result<Vec<_>, _>>()?;
    let first = tokens[0].clone();
    assert!(tokens.iter().all(|token| token.same_token(&first)), "one token for all");
    assert_eq!(issuer.token_requests().len(), 2, "one request and its retry for all");
    let saved = lock(&client.store).clone();
    assert!(saved.is_some_and(|s| s.same_token(&first)), "saved");
    let refresh_at = lock(&client.driver).source().refresh_at().ok_or("an expiry")?;
    let skip = refresh_at.saturating_duration_since(client.now()) + Duration::from_secs(1);
    *lock(&client.skipped) += skip;
    let refreshed = client.run(Call::token())?;
    assert!(!refreshed.same_token(&first) && issuer.token_requests().len() == 3);
    let signout = lock(&client.driver).signout(client.now());
    client.changed.notify_all();
    client.run(signout.deletion)?;
    let signed = signout.signing.map(|s| (s.sign(), s)); // an external key signs outside the lock
    let signed = signed.and_then(|(signature, s)| lock(&client.driver).revocation_signed(client.now(), s, signature));
    if let Some(outgoing) = signout.revocation.or(signed) {
        let result = send(&outgoing.request).map_err(Into::into);
        lock(&client.driver).handle_revocation(client.now(), outgoing.id, result)?;
    }
    assert!(lock(&client.store).is_none(), "signed out: the store is empty");
    Ok(())
}

impl Client {
    fn now(&self) -> Timestamp {
        Timestamp::from(SystemTime::now()).saturating_add(*lock(&self.skipped))
    }

    /// The loop every caller runs: step, and do what the step says.
    fn run<C: Caller>(&self, mut call: C) -> Result<C::Output, Error> {
        let mut driver = lock(&self.driver);
        loop {
            match driver.step(self.now(), &mut call) {
                Step::Ready(value) => return Ok(value),
                Step::Failed(error) => return Err(error),
                Step::Wait { until } => {
                    let pause = until.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(self.now()));
                    let waited = self.changed.wait_timeout(driver, pause.max(Duration::from_millis(1)));
                    driver = waited.unwrap_or_else(PoisonError::into_inner).0;
                }
                Step::Work(work) => {
                    drop(driver); // the I/O runs outside the lock
                    self.perform(work);
                    self.changed.notify_all(); // the job is over: wake the others
                    driver = lock(&self.driver);
                }
            }
        }
    }

    /// Performs a job's tasks (this client has no fleet, provider or assertion file).
    fn perform(&self, mut work: Work) {
        loop {
            let outcome = match work.task {
                Task::Send(outgoing, _attempt) => match send(&outgoing.request) {
                    Ok(response) => Outcome::Response(response),
                    Err(kind) => Outcome::TransportError(kind.into()),
                },
                Task::Load => Outcome::Loaded(lock(&self.store).clone()),
                Task::Save(token) => self.keep(Some(token)),
                Task::Delete | Task::Evict(..) => self.keep(None),
                Task::Report(_) | Task::EndFetch => Outcome::Done,
                Task::TakeFleetTurn(_) => Outcome::FleetTurn(None),
                Task::Provide(_) => Outcome::Provided(None),
                // A callback's assertion, a key of your own (HSM, KMS): outside the lock too.
                Task::ReadAssertion { source, .. } => Outcome::Assertion(source.call()),
                Task::Sign(signing) => Outcome::Signed(signing.sign()),
            };
            match lock(&self.driver).handle(self.now(), work.ticket, outcome) {
                Some(next) => work = next,
                None => return,
            }
        }
    }

    fn keep(&self, token: Option<AccessToken>) -> Outcome {
        *lock(&self.store) = token;
        Outcome::Done
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// HTTP/1.1 on a `TcpStream`: plain `http://`, one request per connection.
fn send(request: &http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportErrorKind> {
    use TransportErrorKind::{Connect, Io, Other};
    let io = |_: std::io::Error| Io;
    let uri = request.uri();
    let (host, port) = (uri.host().ok_or(Other)?, uri.port_u16().unwrap_or(80));
    let mut stream = TcpStream::connect((host, port)).map_err(|_| Connect)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method(), uri.path());
    head += &format!("Host: {host}:{port}\r\nConnection: close\r\n");
    for (name, value) in request.headers() {
        head += &format!("{name}: {}\r\n", value.to_str().map_err(|_| Other)?);
    }
    head += &format!("Content-Length: {}\r\n\r\n", request.body().len());
    let sent = [head.as_bytes(), request.body()].concat();
    stream.write_all(&sent).map_err(io)?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw).map_err(io)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(Io)?;
    let mut lines = std::str::from_utf8(&raw[..end]).map_err(|_| Other)?.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line.split(' ').nth(1).ok_or(Other)?.parse().map_err(|_| Other)?;
    let mut response = http::Response::builder().status(status);
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        response = response.header(name, value.trim());
    }
    response.body(raw[end + 4..].to_vec()).map_err(|_| Other)
}
