//! `client-credentials demo`: the blocking client against an in-process test
//! issuer, every figure measured in the run that prints it.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use client_credentials::{AccessToken, Config, OAuthErrorCode};
use client_credentials_blocking::{discover, Client};
use client_credentials_testkit::{Fault, TestIssuer};

use crate::failure::{Failure, TRANSPORT};

/// How many cached reads (and clock reads) are timed.
const READS: u32 = 1_000_000;
/// How many threads ask for a token at once.
const THREADS: usize = 64;

/// Runs the tour; returns a failure if the client misbehaves.
pub fn run() -> Result<(), Failure> {
    let started = Instant::now();
    let issuer = TestIssuer::start();
    let requests = || issuer.token_requests().len();
    say(format!(
        "client-credentials demo: blocking Client against a test issuer at {}",
        issuer.issuer_url()
    ));
    say("(in-process, loopback only; tokens shown as their first 6 characters)".into());
    let counters = Counters::default();

    // 1. The first call fetches.
    let client = counters.client(config(&issuer, &issuer.client_secret())?);
    let (token, took) = timed(|| client.token());
    let token = token?;
    say(format!(
        "1. first token    {} fetched in {}, {} token request",
        short(&token),
        millis(took),
        requests()
    ));

    // 2. Cached reads: lock-free, no syscall, no allocation. Compared with the
    // cheapest clock read, measured the same way in the same process.
    for _ in 0..10_000 {
        black_box(client.token()?);
    }
    let before = requests();
    let read_start = Instant::now();
    for _ in 0..READS {
        black_box(client.token()?);
    }
    let per_read = nanos_per(read_start.elapsed(), READS);
    let clock_start = Instant::now();
    for _ in 0..READS {
        black_box(SystemTime::now());
    }
    let per_clock = nanos_per(clock_start.elapsed(), READS);
    say(format!(
        "2. cached reads   client.token() {per_read:.1} ns per call, SystemTime::now() {per_clock:.1} ns ({:.2}×)",
        per_read / per_clock
    ));
    say(format!(
        "                  mean of {} calls each, same process; {} token requests",
        thousands(READS),
        requests() - before
    ));
    if cfg!(debug_assertions) {
        // The workspace optimises the crates on this path in dev builds too.
        say("                  (dev build; the cached-read crates are optimised even here)".into());
    }

    // 3. A 2 s token is refreshed at half-life (min(300 s margin, lifetime / 2)).
    issuer.set_lifetime(2);
    let client = counters.client(config(&issuer, &issuer.client_secret())?);
    let before = requests();
    let asked = Instant::now();
    let old = client.token()?;
    let (new, after) = loop {
        std::thread::sleep(Duration::from_millis(10));
        let current = client.token()?;
        if !current.same_token(&old) {
            break (current, asked.elapsed());
        }
        if asked.elapsed() > Duration::from_secs(5) {
            return Err(demo_failure("the 2 s token was not refreshed within 5 s"));
        }
    };
    issuer.set_lifetime(3600);
    let replaced = client.token()?.same_token(&new) && !client.token()?.same_token(&old);
    say(format!(
        "3. refresh        lifetime 2 s: {} replaced by {} {} after the first request; {} token requests",
        short(&old),
        short(&new),
        seconds(after),
        requests() - before
    ));
    say(format!(
        "                  client.token() now returns {}: {}",
        short(&new),
        if replaced { "yes" } else { "NO" }
    ));

    // 4. Single flight: 64 threads, no token yet, one request between them.
    // The issuer answers after 100 ms so that every thread is waiting on it.
    issuer.push_fault(Fault::Delay(Duration::from_millis(100)));
    let client = counters.client(config(&issuer, &issuer.client_secret())?);
    let before = requests();
    let barrier = Arc::new(Barrier::new(THREADS));
    let (results, took) = timed(|| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (client, barrier) = (client.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    client.token()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut tokens = HashSet::new();
    for result in results {
        let token = result.map_err(|_| demo_failure("a thread panicked"))??;
        tokens.insert(token.secret().to_owned());
    }
    say(format!(
        "4. single flight  {THREADS} threads at once: {} token request, {} distinct token, all back in {} \
         (issuer delayed 100 ms)",
        requests() - before,
        tokens.len(),
        millis(took)
    ));

    // 5. A 503 with Retry-After: 1 is retried after (at least) 1 s.
    issuer.push_fault(Fault::retry_after(503, "1"));
    let client = counters.client(config(&issuer, &issuer.client_secret())?);
    let before = requests();
    let (token, took) = timed(|| client.token());
    let token = token?;
    say(format!(
        "5. retry          503 with Retry-After: 1, then {} after {}; {} token requests",
        short(&token),
        seconds(took),
        requests() - before
    ));

    // 6. A wrong secret is a typed OAuth error, not retried.
    let client = counters.client(config(&issuer, "not-the-secret")?);
    let before = requests();
    match client.token() {
        Ok(_) => return Err(demo_failure("a wrong secret was accepted")),
        Err(error) => {
            let typed = error.oauth_code() == Some(&OAuthErrorCode::InvalidClient);
            say(format!(
                "6. wrong secret   {}Error::OAuth, retryable: {}, {} token request:",
                if typed { "" } else { "NOT " },
                error.is_retryable(),
                requests() - before
            ));
            say(format!("                  \"{error}\""));
        }
    }

    // 7. Discovery: the free function, and a client configured with .issuer(..).
    let metadata = discover(&issuer.issuer_url())?;
    say(format!(
        "7. discovery      discover(): token_endpoint {}",
        metadata.token_endpoint
    ));
    let discovered_before = issuer.discovery_requests().len();
    let before = requests();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()?;
    let (token, took) = timed(|| counters.client(config).token());
    let token = token?;
    say(format!(
        "                  .issuer(..): {} in {}, {} discovery + {} token request",
        short(&token),
        millis(took),
        issuer.discovery_requests().len() - discovered_before,
        requests() - before
    ));

    // 8. What the clients' hooks counted (metrics: the feature `metrics`).
    say(format!(
        "8. counters       on_token_update: {} new tokens, on_refresh_failed: {} failed round; \
         the issuer saw {} token requests",
        counters.tokens.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
        requests()
    ));

    say(format!(
        "done in {}; {} token requests in all, every figure measured in this run",
        seconds(started.elapsed()),
        requests()
    ));
    Ok(())
}

/// What the demo's clients report through their hooks, added up.
#[derive(Debug, Default, Clone)]
struct Counters {
    tokens: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl Counters {
    /// A client for `config` whose `on_token_update` and `on_refresh_failed` count here.
    fn client(&self, config: Config) -> Client {
        let (tokens, failed) = (Arc::clone(&self.tokens), Arc::clone(&self.failed));
        Client::builder(config)
            .on_token_update(move |_| {
                tokens.fetch_add(1, Ordering::Relaxed);
            })
            .on_refresh_failed(move |_| {
                failed.fetch_add(1, Ordering::Relaxed);
            })
            .build()
    }
}

fn config(issuer: &TestIssuer, secret: &str) -> Result<Config, Failure> {
    Ok(Config::builder(issuer.client_id(), secret)
        .token_endpoint(issuer.token_endpoint())
        .build()?)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn demo_failure(message: &str) -> Failure {
    Failure {
        code: TRANSPORT,
        message: format!("demo: {message}"),
    }
}

/// The first 6 characters and an ellipsis: enough to tell tokens apart, never a usable token.
fn short(token: &AccessToken) -> String {
    let start: String = token.secret().chars().take(6).collect();
    format!("{start}…")
}

fn nanos_per(total: Duration, calls: u32) -> f64 {
    total.as_nanos() as f64 / f64::from(calls)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a line; a closed stdout only loses the rest of the tour.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::thousands(1_000_000), "1,000,000");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_000), "1,000");
    }
}
