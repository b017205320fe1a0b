//! What a client reports and how a caller bounds a call: the failed-round
//! hook, per-call deadlines, request spans under the caller's span, and the
//! metrics (feature `metrics`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use client_credentials::{Config, ConfigBuilder, Error, TransportErrorKind};
use client_credentials_blocking::ManualClock;
use client_credentials_testkit::{Fault, TestIssuer};

use super::{config, discovering};
use crate::observe::{metrics, spans, CapturedSpan};
use crate::{Adapter, Options};

/// An issuer whose only client is `id`, so records carrying the client id
/// are this scenario's alone (the capture is shared by the whole binary).
fn issuer_for(id: &str) -> TestIssuer {
    TestIssuer::builder().client(id, "a-secret-of-this-scenario").start()
}

fn config_for(issuer: &TestIssuer) -> ConfigBuilder {
    config(issuer).backoff(Duration::from_millis(20), Duration::from_millis(50))
}

fn is_timeout(result: &Result<client_credentials::AccessToken, Error>) -> bool {
    matches!(result, Err(Error::Transport(e)) if e.kind() == TransportErrorKind::Timeout)
}

/// `on_refresh_failed` is called once per failed round: a round whose
/// retries all failed (no token to serve), and a refresh that failed while
/// the cached token is still served; never for a round that got a token.
pub fn on_refresh_failed_is_called_once_per_failed_round<A: Adapter>() {
    let issuer = TestIssuer::builder().lifetime(4).start();
    let counting = |count: &Arc<AtomicUsize>| {
        let count = Arc::clone(count);
        move || {
            count.fetch_add(1, Ordering::SeqCst);
        }
    };
    let options = |failed: &Arc<AtomicUsize>, updated: &Arc<AtomicUsize>, clock: Option<ManualClock>| {
        let (failed, updated) = (counting(failed), counting(updated));
        Options {
            clock,
            on_failed: Some(Arc::new(move |_: &Error| failed())),
            on_update: Some(Arc::new(move |_| updated())),
            ..Options::default()
        }
    };

    // A round of two 503s: one failed round, however many attempts.
    let (failed, updated) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = A::build(
        config_for(&issuer).max_attempts(2).build().unwrap(),
        options(&failed, &updated, None),
    );
    issuer.push_fault(Fault::status(503, "{}"));
    issuer.push_fault(Fault::status(503, "{}"));
    assert!(A::token(&client).is_err());
    assert_eq!(issuer.token_requests().len(), 2);
    assert_eq!((failed.load(Ordering::SeqCst), updated.load(Ordering::SeqCst)), (1, 0));

    // A token, then a refresh that fails while the token is still served.
    let (failed, updated) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clock = ManualClock::starting_now();
    let client = A::build(
        config_for(&issuer).max_attempts(1).build().unwrap(),
        options(&failed, &updated, Some(clock.clone())),
    );
    let first = A::token(&client).unwrap();
    assert_eq!((failed.load(Ordering::SeqCst), updated.load(Ordering::SeqCst)), (0, 1));
    clock.advance(Duration::from_millis(2100)); // past half-life: refresh due, token still valid
    issuer.push_fault(Fault::oauth_error(400, "invalid_scope", "no"));
    assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    // The refresh may still be running in its task when the served token returns.
    let started = Instant::now();
    while failed.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(issuer.token_requests().len(), 4);
    assert_eq!((failed.load(Ordering::SeqCst), updated.load(Ordering::SeqCst)), (1, 1));
}

/// A round a rejected token fails (the resource rejected the token fetched
/// after a first rejection) reaches `on_refresh_failed` and the
/// failed-rounds metric like any failed round, typed `token_rejected`; the
/// first rejection, whose replacement is fetched at once, does not.
pub fn a_round_failed_by_a_rejected_token_is_reported<A: Adapter>() {
    let metrics = metrics();
    let id = format!("rejected-{}", A::NAME);
    let labels = [("oauth.client.id", id.as_str()), ("error.type", "token_rejected")];
    let issuer = issuer_for(&id);
    let failures: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&failures);
    let options = Options {
        // Standing still: the back-off never ends during the scenario.
        clock: Some(ManualClock::starting_now()),
        on_failed: Some(Arc::new(move |error: &Error| {
            seen.lock().unwrap().push(format!("{error:?}"))
        })),
        ..Options::default()
    };
    let client = A::build(config_for(&issuer).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    A::invalidate(&client, &first);
    let second = A::token(&client).unwrap();
    assert_ne!(second.secret(), first.secret());
    assert!(failures.lock().unwrap().is_empty(), "{failures:?}");
    A::invalidate(&client, &second);
    // The tokio client reports from the eviction's task.
    let started = Instant::now();
    while failures.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(A::token(&client), Err(Error::TokenRejected)));
    assert_eq!(*failures.lock().unwrap(), ["TokenRejected"], "{}", A::NAME);
    assert_eq!(metrics.counter("oauth.client.rounds.failed", &labels), 1, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A caller with a short deadline gets a timeout while the token endpoint
/// is slow; a caller without one gets the token; one token request between
/// them. Whichever of the two starts the request.
pub fn a_call_deadline_passes_while_the_shared_refresh_carries_on<A: Adapter>() {
    for deadline_first in [true, false] {
        let issuer = TestIssuer::start();
        issuer.push_fault(Fault::Delay(Duration::from_millis(600)));
        let client = A::build(config(&issuer).build().unwrap(), Options::default());
        let (short, patient) = (client.clone(), client.clone());
        let bounded = move || {
            let started = Instant::now();
            (A::token_timeout(&short, Duration::from_millis(150)), started.elapsed())
        };
        let unbounded = move || A::token(&patient);
        let (bounded, unbounded) = if deadline_first {
            let bounded = std::thread::spawn(bounded);
            std::thread::sleep(Duration::from_millis(50));
            (bounded, std::thread::spawn(unbounded))
        } else {
            let unbounded = std::thread::spawn(unbounded);
            std::thread::sleep(Duration::from_millis(50));
            (std::thread::spawn(bounded), unbounded)
        };
        let (result, took) = bounded.join().unwrap();
        assert!(is_timeout(&result), "deadline first: {deadline_first}: {result:?}");
        assert!(
            took < Duration::from_millis(450),
            "the deadline held the caller {took:?}"
        );
        let token = unbounded.join().unwrap().unwrap();
        assert_eq!(issuer.token_requests().len(), 1, "deadline first: {deadline_first}");
        // The refresh's token is cached: a bounded call now returns it at once.
        let again = A::token_timeout(&client, Duration::from_millis(150)).unwrap();
        assert_eq!(again.secret(), token.secret());
        assert_eq!(issuer.token_requests().len(), 1);
    }
}

/// A caller alone whose deadline passes leaves the request running: the
/// next call gets its token without another request.
pub fn a_lone_caller_past_its_deadline_leaves_the_request_running<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(400)));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    assert!(is_timeout(&A::token_timeout(&client, Duration::from_millis(100))));
    std::thread::sleep(Duration::from_millis(600));
    A::token(&client).unwrap();
    assert_eq!(issuer.token_requests().len(), 1);
}

fn requests_of<'a>(spans: &'a [CapturedSpan], client_id: &str) -> Vec<(usize, &'a CapturedSpan)> {
    spans
        .iter()
        .enumerate()
        .filter(|(_, span)| {
            span.name == client_credentials_common::observe::REQUEST_SPAN
                && span.field("oauth.client.id") == Some(client_id)
        })
        .collect()
}

/// Each request is a span with OpenTelemetry HTTP-client fields, a child of
/// the span of the caller that asked for the token; a retry is attempt 2.
pub fn each_request_is_a_span_under_the_callers_span<A: Adapter>() {
    let spans = spans();
    let id = format!("spans-{}", A::NAME);
    let issuer = issuer_for(&id);
    issuer.push_fault(Fault::status(503, "{}"));
    let config = discovering(&issuer)
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let caller = tracing::info_span!("caller", adapter = A::NAME, scenario = "spans");
    caller.in_scope(|| A::token(&client)).unwrap();

    let all = spans.all();
    let requests = requests_of(&all, &id);
    let caller = all
        .iter()
        .rposition(|span| span.field("scenario") == Some("spans") && span.field("adapter") == Some(A::NAME))
        .unwrap();
    let kinds: Vec<_> = requests
        .iter()
        .map(|(_, s)| s.field("oauth.request.kind").unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"discovery"), "{kinds:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["token", "token"], "{kinds:?}");
    for (_, span) in &requests {
        assert_eq!(span.parent, Some(caller), "{span:?}");
        assert_eq!(span.field("otel.kind"), Some("client"));
        assert!(span.field("oauth.request.id").is_some_and(|id| id.starts_with('#')));
        let url = span.field("url.full").unwrap();
        assert!(url.starts_with(&issuer.base_url()) && !url.contains('?'), "{url}");
    }
    let (failed, ok) = (&requests[requests.len() - 2].1, &requests[requests.len() - 1].1);
    assert_eq!(failed.field("http.request.method"), Some("POST"));
    assert_eq!(failed.field("url.full"), Some(issuer.token_endpoint().as_str()));
    assert_eq!(failed.field("http.response.status_code"), Some("503"));
    assert_eq!(failed.field("error.type"), Some("503"));
    assert_eq!(failed.field("otel.status_code"), Some("ERROR"));
    assert_eq!(failed.field("oauth.request.attempt"), Some("1"));
    assert_eq!(ok.field("http.response.status_code"), Some("200"));
    assert_eq!(ok.field("oauth.request.attempt"), Some("2"));
    assert_eq!(ok.field("http.request.resend_count"), Some("1"));
    assert_eq!(ok.field("error.type"), None);
    for (_, span) in &requests {
        for value in span.fields.values() {
            assert!(!value.contains("a-secret-of-this-scenario"), "{span:?}");
        }
    }
}

/// Single flight: the request's span is a child of the first caller's
/// span, not of the callers that joined it.
pub fn a_shared_request_is_a_child_of_the_first_callers_span<A: Adapter>() {
    let spans = spans();
    let id = format!("flight-{}", A::NAME);
    let issuer = issuer_for(&id);
    issuer.push_fault(Fault::Delay(Duration::from_millis(300)));
    let client = A::build(config_for(&issuer).build().unwrap(), Options::default());
    let callers: Vec<_> = (0..3)
        .map(|n| {
            let client = client.clone();
            let thread = std::thread::spawn(move || {
                tracing::info_span!("caller", adapter = A::NAME, n).in_scope(|| A::token(&client))
            });
            std::thread::sleep(Duration::from_millis(60));
            thread
        })
        .collect();
    for caller in callers {
        caller.join().unwrap().unwrap();
    }
    assert_eq!(issuer.token_requests().len(), 1);
    let all = spans.all();
    let requests = requests_of(&all, &id);
    assert_eq!(requests.len(), 1, "{requests:?}");
    let parent = &all[requests[0].1.parent.expect("a parent")];
    assert_eq!(
        (parent.name, parent.field("adapter"), parent.field("n")),
        ("caller", Some(A::NAME), Some("0"))
    );
}

/// The metrics: requests by kind and outcome (with a bounded `error.type`)
/// and their durations, back-off waits, failed rounds, the token's
/// expiry and refresh gauges, and the callers waiting.
pub fn requests_rounds_and_the_token_are_measured<A: Adapter>() {
    let metrics = metrics();
    let id = format!("metrics-{}", A::NAME);
    let client_label = ("oauth.client.id", id.as_str());
    let issuer = issuer_for(&id);
    issuer.push_fault(Fault::status(503, "{}"));
    let client = A::build(config_for(&issuer).build().unwrap(), Options::default());
    A::token(&client).unwrap();
    let token = [client_label, ("oauth.request.kind", "token")];
    let by = |outcome: &'static str, error: &'static str| {
        let mut labels = token.to_vec();
        labels.extend([("outcome", outcome), ("error.type", error)]);
        metrics.counter("oauth.client.requests", &labels)
    };
    assert_eq!(by("http_status", "503"), 1);
    assert_eq!(by("ok", ""), 1);
    let durations = metrics.samples("oauth.client.request.duration", &token);
    assert_eq!(durations.len(), 2, "{durations:?}");
    assert!(durations.iter().all(|d| (0.0..5.0).contains(d)), "{durations:?}");
    assert_eq!(metrics.counter("oauth.client.backoff.waits", &[client_label]), 1);
    let expires_in = metrics.gauge("oauth.client.token.expires_in", &[client_label]).unwrap();
    let refresh_in = metrics.gauge("oauth.client.token.refresh_in", &[client_label]).unwrap();
    assert!((3500.0..=3600.0).contains(&expires_in), "{expires_in}");
    assert!(refresh_in > 0.0 && refresh_in < expires_in, "{refresh_in}");
    let expires_at = metrics.gauge("oauth.client.token.expires_at", &[client_label]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expires_at > now + 3500.0, "{expires_at}");

    // A second client with the same id and another scope: its own gauges,
    // told apart by the cache key's prefix (never the token, never the secret).
    let scoped = A::build(
        config_for(&issuer).scope("other:read").build().unwrap(),
        Options::default(),
    );
    A::token(&scoped).unwrap();
    let keys = metrics.gauge_label_values("oauth.client.token.expires_in", &[client_label], "oauth.client.key");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0] != keys[1] && keys.iter().all(|key| key.len() == 12), "{keys:?}");

    // A final OAuth error: one request, one failed round, both typed.
    let wrong = A::build(
        Config::builder(&id, "not-the-secret")
            .token_endpoint(issuer.token_endpoint())
            .build()
            .unwrap(),
        Options::default(),
    );
    assert!(A::token(&wrong).is_err());
    assert_eq!(by("oauth_error", "invalid_client"), 1);
    assert_eq!(
        metrics.counter(
            "oauth.client.rounds.failed",
            &[client_label, ("error.type", "invalid_client")]
        ),
        1
    );

    // Callers waiting for a slow request are counted while they wait.
    issuer.push_fault(Fault::Delay(Duration::from_millis(500)));
    let slow_config = config_for(&issuer).build().unwrap();
    let key = slow_config.fingerprint()[..12].to_owned();
    let slow_labels = [client_label, ("oauth.client.key", key.as_str())];
    let slow = A::build(slow_config, Options::default());
    let barrier = Arc::new(Barrier::new(5));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (slow, barrier) = (slow.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                A::token(&slow)
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(250));
    let waiting = metrics.gauge("oauth.client.callers.waiting", &slow_labels).unwrap();
    assert!((3.0..=4.0).contains(&waiting), "{waiting}");
    for caller in callers {
        caller.join().unwrap().unwrap();
    }
    assert_eq!(metrics.gauge("oauth.client.callers.waiting", &slow_labels), Some(0.0));
    // Nothing labelled with a token or the secret.
    assert_eq!(metrics.counter("oauth.client.requests", &[client_label]), 5);
}

/// A store's fleet turn (the default hook: this process fetches) and a
/// store that cannot save are counted; the token is served all the same.
pub fn fleet_turns_and_store_failures_are_counted<A: Adapter>() {
    let metrics = metrics();
    let id = format!("store-{}", A::NAME);
    let client_label = ("oauth.client.id", id.as_str());
    let issuer = issuer_for(&id);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let options = Options {
        // Under a regular file: every load and save fails.
        store: crate::StoreChoice::File(dir.path().join("a-file").join("token.json")),
        ..Options::default()
    };
    let client = A::build(config_for(&issuer).build().unwrap(), options);
    A::token(&client).unwrap();
    assert_eq!(
        metrics.counter("oauth.client.fleet.turns", &[client_label, ("turn", "won")]),
        1
    );
    assert_eq!(
        metrics.counter("oauth.client.fleet.turns", &[client_label, ("turn", "followed")]),
        0
    );
    // Saves run after the callers are served (tokio: in the flight's task).
    let started = Instant::now();
    while metrics.counter("oauth.client.store.errors", &[("operation", "save")]) == 0
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(metrics.counter("oauth.client.store.errors", &[("operation", "save")]) >= 1);
}
