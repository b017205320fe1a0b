//! Behaviours both adapters must share exactly (the driver in
//! `client-credentials-common`): refresh outcomes, cool-downs, the store's
//! order, the custom provider, and the failure policy on simulated time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use client_credentials::{AccessToken, Config, Error, Timestamp};
use client_credentials_blocking::ManualClock;
use client_credentials_testkit::{Fault, TestIssuer};

use super::config;
use crate::{Adapter, Options, RecordingStore, StoreChoice};

fn expiring_in(value: &str, now: Timestamp, secs: u64) -> AccessToken {
    AccessToken::builder(value)
        .expires_at(now.saturating_add(Duration::from_secs(secs)))
        .build()
        .unwrap()
}

/// `refresh()` whose round fails returns that round's error (a refresh that
/// did not happen is not reported as one); `token()` keeps serving the
/// unexpired token.
pub fn refresh_after_a_failed_round_returns_its_error<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).max_attempts(1).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    issuer.push_fault(Fault::status(503, "down"));
    match A::refresh(&client) {
        Err(Error::UnexpectedStatus { status, .. }) => assert_eq!(status.as_u16(), 503),
        other => panic!("{}: {other:?}", A::NAME),
    }
    assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// During the cool-down after a failed round, `refresh()` returns that
/// round's error at once and sends nothing; `token()` still serves the
/// unexpired token; once the cool-down is over, `refresh()` sends at once.
pub fn refresh_during_and_after_a_cool_down<A: Adapter>() {
    let issuer = TestIssuer::start();
    let config = config(&issuer)
        .max_attempts(1)
        .backoff(Duration::from_secs(2), Duration::from_secs(30))
        .build()
        .unwrap();
    let (client, clock) = on_manual_clock::<A>(config);
    let first = A::token(&client).unwrap();
    issuer.push_fault(Fault::status(503, "down"));
    A::refresh(&client).unwrap_err();
    assert_eq!(issuer.token_requests().len(), 2);
    let again = A::refresh(&client).unwrap_err();
    assert!(again.is_retryable(), "{again}");
    assert_eq!(
        issuer.token_requests().len(),
        2,
        "{}: sent during the cool-down",
        A::NAME
    );
    assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    clock.advance(Duration::from_secs(60));
    let second = A::refresh(&client).unwrap();
    assert_ne!(second.secret(), first.secret());
    assert_eq!(A::token(&client).unwrap().secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 3);
}

/// `invalidate()` deletes the stored token, so a restart does not reload the
/// token the resource server rejected; the next token is stored again.
pub fn invalidate_deletes_the_stored_token<A: Adapter>() {
    let issuer = TestIssuer::start();
    let store = Arc::new(RecordingStore::new());
    let options = Options {
        store: StoreChoice::Recording(store.clone()),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options.clone());
    let first = A::token(&client).unwrap();
    assert_eq!(store.token().unwrap().secret(), first.secret());
    A::invalidate(&client, &first);
    assert!(store.wait_until(|t| t.is_none()), "{}: {:?}", A::NAME, store.calls());
    let restarted = A::build(config(&issuer).build().unwrap(), options);
    let second = A::token(&restarted).unwrap();
    assert_ne!(second.secret(), first.secret());
    assert_eq!(store.token().unwrap().secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A slow provider is asked once for all the callers waiting at that moment
/// (inside the single flight), and its token is served to all of them.
pub fn a_slow_provider_is_asked_once_per_flight<A: Adapter>() {
    let issuer = TestIssuer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let provided = expiring_in("provided", Timestamp::from(std::time::SystemTime::now()), 3600);
    let options = Options {
        provider: Some(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(300));
            Some(provided.clone())
        })),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            thread::spawn(move || A::token(&client).map(|t| t.secret().to_owned()))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), "provided");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{}", A::NAME);
    assert!(issuer.token_requests().is_empty());
}

/// A provided token that has expired, or that expires sooner than the cached
/// one, never replaces it: the client fetches instead (the provider is asked
/// once per round).
pub fn a_provider_never_downgrades_the_cache<A: Adapter>() {
    let issuer = TestIssuer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let answer: Arc<Mutex<Option<AccessToken>>> = Arc::default();
    let provide = answer.clone();
    let options = Options {
        provider: Some(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            provide.lock().unwrap().clone()
        })),
        ..Options::default()
    };
    let now = Timestamp::from(std::time::SystemTime::now());
    *answer.lock().unwrap() = Some(expiring_in("expired", Timestamp::from_unix_secs(1_000), 1));
    let client = A::build(config(&issuer).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    assert!(first.secret().starts_with("tk-"), "{}", first.secret());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The issuer's tokens live an hour: one for ten minutes is a downgrade.
    *answer.lock().unwrap() = Some(expiring_in("shorter", now, 600));
    let second = A::refresh(&client).unwrap();
    assert!(second.secret().starts_with("tk-"), "{}: {}", A::NAME, second.secret());
    assert_ne!(second.secret(), first.secret());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A sign-out while a save is still running: the save lands first and the
/// deletion after it, never the other way round, so a restart does not load
/// the signed-out token.
pub fn signout_racing_a_save<A: Adapter>() {
    let issuer = TestIssuer::start();
    let store = Arc::new(RecordingStore::new());
    store.hold_saves(true);
    let options = Options {
        store: StoreChoice::Recording(store.clone()),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    let fetching = {
        let client = client.clone();
        thread::spawn(move || A::token(&client))
    };
    store.wait_for_held_save();
    let signing_out = {
        let client = client.clone();
        thread::spawn(move || A::signout(&client))
    };
    // `signout()` returns once its deletion has landed: not while the save
    // it must follow is still being written.
    thread::sleep(Duration::from_millis(200));
    assert!(
        !signing_out.is_finished(),
        "{}: signout returned before its deletion landed: {:?}",
        A::NAME,
        store.calls()
    );
    store.hold_saves(false);
    signing_out.join().unwrap().unwrap();
    assert!(
        store.calls().iter().any(|c| c == "delete"),
        "{}: signout returned before its deletion landed: {:?}",
        A::NAME,
        store.calls()
    );
    let token = fetching.join().unwrap().unwrap();
    let signed_out = issuer.issued_tokens()[0].clone();
    // The caller applying the store's writes may still be at it (the tokio
    // adapter's flights run in their own tasks): wait for the last one.
    let last = (token.secret() != signed_out).then(|| token.secret().to_owned());
    assert!(
        store.wait_until(|stored| stored.map(|t| t.secret().to_owned()) == last),
        "{}: {:?}",
        A::NAME,
        store.calls()
    );
    let calls = store.calls();
    let saved = format!("save {signed_out}");
    let delete = calls.iter().position(|c| c == "delete");
    assert_eq!(
        calls.iter().position(|c| *c == saved),
        Some(1),
        "{}: {calls:?}",
        A::NAME
    );
    assert_eq!(
        delete,
        Some(2),
        "{}: the deletion comes after the save: {calls:?}",
        A::NAME
    );
    // The caller that was waiting when the token was signed out fetched a
    // new one; that one is stored after the deletion.
    if token.secret() != signed_out {
        assert_eq!(calls[3..], [format!("save {}", token.secret())], "{}", A::NAME);
    } else {
        assert_eq!(calls.len(), 3, "{}: {calls:?}", A::NAME);
    }
}

/// `Retry-After: 315360000` (ten years) is capped: the client tries again
/// after the cap (5 minutes by default), not in ten years.
pub fn a_huge_retry_after_is_capped<A: Adapter>() {
    let issuer = TestIssuer::start();
    let (client, clock) = on_manual_clock::<A>(config(&issuer).max_attempts(1).build().unwrap());
    issuer.push_fault(Fault::retry_after(503, "315360000"));
    A::token(&client).unwrap_err();
    A::token(&client).unwrap_err();
    assert_eq!(issuer.token_requests().len(), 1);
    clock.advance(Duration::from_secs(5 * 60 + 31));
    A::token(&client).unwrap();
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

/// A provider that fails everything for a simulated minute, with callers
/// asking all the time: at most 10 requests in that minute.
pub fn a_dead_provider_for_a_simulated_minute<A: Adapter>() {
    let issuer = TestIssuer::start();
    for _ in 0..100 {
        issuer.push_fault(Fault::status(503, "down"));
    }
    let (client, clock) = on_manual_clock::<A>(config(&issuer).build().unwrap());
    let start = clock_now(&clock);
    let ticker = Ticker::start(&clock);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (client, clock) = (client.clone(), clock.clone());
            thread::spawn(move || {
                while clock_now(&clock) < start.saturating_add(Duration::from_secs(60)) {
                    assert!(A::token(&client).is_err());
                    thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    drop(ticker);
    let sent = issuer.token_requests().len();
    assert!(sent <= 10, "{}: {sent} requests in a simulated minute", A::NAME);
}

/// A client of adapter `A` for `config`, on a clock that moves only by hand.
pub(crate) fn on_manual_clock<A: Adapter>(config: Config) -> (A::Client, ManualClock) {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    (A::build(config, options), clock)
}

/// Runs a clock 100 times faster than real time (100 ms every millisecond)
/// until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(clock: &ManualClock) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (clock, stopped) = (clock.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1));
                clock.advance(Duration::from_millis(100));
            }
        });
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(crate) fn clock_now(clock: &ManualClock) -> Timestamp {
    client_credentials_blocking::Clock::now(clock)
}

/// A provider that never answers in time, and a sign-out every simulated
/// second: each sign-out drops the request in flight, and a dropped request
/// counts as a failed attempt, so sign-outs cannot make the client send
/// without pause. At most 10 requests in the simulated minute, and the
/// callers waiting get an error instead of waiting for as long as the
/// sign-outs go on.
pub fn sign_outs_do_not_lift_the_back_off<A: Adapter>() {
    let issuer = TestIssuer::start();
    for _ in 0..100 {
        issuer.push_fault(Fault::Delay(Duration::from_millis(1500)));
    }
    let (client, clock) = on_manual_clock::<A>(config(&issuer).build().unwrap());
    let end = clock_now(&clock).saturating_add(Duration::from_secs(60));
    let errors = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (client, clock, errors) = (client.clone(), clock.clone(), errors.clone());
            thread::spawn(move || {
                while clock_now(&clock) < end {
                    if A::token(&client).is_err() {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                    thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    // Ten real milliseconds per simulated second: each request in flight is
    // dropped long before its (delayed) answer comes.
    while clock_now(&clock) < end {
        thread::sleep(Duration::from_millis(10));
        A::signout(&client).unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let sent = issuer.token_requests().len();
    for caller in callers {
        caller.join().unwrap();
    }
    assert!(sent <= 10, "{}: {sent} requests in a simulated minute", A::NAME);
    assert!(
        errors.load(Ordering::SeqCst) > 0,
        "{}: no caller was given an error while sign-outs dropped every request",
        A::NAME
    );
}

/// After a failed round, the retries of later rounds wait escalated steps (up
/// to 30 s each): callers get the error at once instead of waiting through
/// them. Time stands still here after the first round, so a caller held
/// through a retry would never return.
pub fn callers_are_not_held_through_escalated_retries<A: Adapter>() {
    let issuer = TestIssuer::start();
    for _ in 0..20 {
        issuer.push_fault(Fault::status(503, "down"));
    }
    let (client, clock) = on_manual_clock::<A>(config(&issuer).build().unwrap());
    // The first failing round: its caller waits through two short retries.
    let ticker = Ticker::start(&clock);
    A::token(&client).unwrap_err();
    drop(ticker);
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    // Past the cool-down, a later round: one request, then the error at once.
    clock.advance(Duration::from_secs(60));
    let (done, returned) = std::sync::mpsc::channel();
    let caller = client.clone();
    thread::spawn(move || {
        let _ = done.send(A::token(&caller).is_err());
    });
    let failed = returned
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{}: token() waited through an escalated retry", A::NAME));
    assert!(failed, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 4, "{}", A::NAME);
}

/// The same refused connection reads the same in both adapters, word for
/// word: the kind, the token endpoint without its query, and the operating
/// system's own words; never the client secret or the query.
pub fn a_refused_connection_reads_the_same<A: Adapter>() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let refused = std::net::TcpStream::connect(addr).expect_err("nothing listens there");
    let config = Config::builder("my-client", "s3cr3t-not-in-messages")
        .token_endpoint(format!("http://{addr}/oauth/token?tenant=query-not-in-messages"))
        .max_attempts(1)
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let error = A::token(&client).expect_err("nothing listens there");
    let Error::Transport(transport) = &error else {
        panic!("{}: a transport error, not {error:?}", A::NAME)
    };
    assert_eq!(transport.kind(), client_credentials::TransportErrorKind::Connect);
    assert_eq!(
        error.to_string(),
        format!("could not connect: http://{addr}/oauth/token?…: {refused}"),
        "{}",
        A::NAME
    );
}
