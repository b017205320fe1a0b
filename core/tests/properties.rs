//! Properties over whole simulated schedules: times, statuses, bodies,
//! transport failures and cancellations, generated together.

mod common;

use std::time::Duration;

use client_credentials::{
    discovery_request_at, parse_discovery, parse_token_response, AccessToken, Action, Config, DiscoveryError,
    DiscoveryLocation, Event, RequestId, Timestamp, TokenSource, TransportErrorKind,
};
use proptest::prelude::*;

// ------------------------------------------------------------ schedules

/// How a `Retry-After` is written.
#[derive(Debug, Clone)]
enum RetryAfter {
    Seconds(u64),
    Date(u64),
    Garbage,
}

/// The answer to the request in flight.
#[derive(Debug, Clone)]
enum Answer {
    Token {
        expires_in: i64,
        refresh_token: bool,
    },
    /// A retryable status, optionally with `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    OAuth {
        status: u16,
        code: &'static str,
    },
    Body {
        status: u16,
        body: Vec<u8>,
    },
    Transport(TransportErrorKind),
    Abandon,
}

#[derive(Debug, Clone)]
struct Step {
    /// Simulated time that passes before this step's poll.
    advance_ms: u64,
    /// Whether the request in flight (if any) is answered in this step.
    deliver: bool,
    answer: Answer,
}

#[derive(Debug, Clone)]
struct Schedule {
    margin_secs: u64,
    max_attempts: u32,
    initial_backoff_ms: u64,
    max_backoff_ms: u64,
    seed: u64,
    steps: Vec<Step>,
}

fn answer() -> impl Strategy<Value = Answer> {
    let retry_after = prop_oneof![
        (0u64..120).prop_map(RetryAfter::Seconds),
        (0u64..120).prop_map(RetryAfter::Date),
        Just(RetryAfter::Garbage),
    ];
    prop_oneof![
        4 => (-10i64..7200, any::<bool>()).prop_map(|(expires_in, refresh_token)| Answer::Token { expires_in, refresh_token }),
        3 => (prop::sample::select(vec![500u16, 502, 503, 504, 429, 408]), prop::option::of(retry_after))
            .prop_map(|(status, retry_after)| Answer::Status { status, retry_after }),
        1 => (prop::sample::select(vec![400u16, 401, 403]),
              prop::sample::select(vec!["invalid_client", "invalid_scope", "invalid_grant", "invalid_request"]))
            .prop_map(|(status, code)| Answer::OAuth { status, code }),
        1 => (prop::sample::select(vec![200u16, 302, 404, 500]), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(status, body)| Answer::Body { status, body }),
        1 => prop::sample::select(vec![TransportErrorKind::Connect, TransportErrorKind::Timeout, TransportErrorKind::Io, TransportErrorKind::Other])
            .prop_map(Answer::Transport),
        1 => Just(Answer::Abandon),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let advance = prop_oneof![
        3 => 0u64..2_000,
        2 => 0u64..120_000,
        1 => 0u64..8_000_000,
    ];
    (advance, prop::bool::weighted(0.7), answer()).prop_map(|(advance_ms, deliver, answer)| Step {
        advance_ms,
        deliver,
        answer,
    })
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        0u64..5_000,
        1u32..5,
        0u64..3_000,
        0u64..60_000,
        any::<u64>(),
        prop::collection::vec(step(), 1..60),
    )
        .prop_map(|(margin_secs, max_attempts, initial, extra, seed, steps)| Schedule {
            margin_secs,
            max_attempts,
            initial_backoff_ms: initial,
            max_backoff_ms: initial + extra,
            seed,
            steps,
        })
}

impl Schedule {
    fn config(&self) -> Config {
        common::builder()
            .refresh_margin(Duration::from_secs(self.margin_secs))
            .max_attempts(self.max_attempts)
            .backoff(
                Duration::from_millis(self.initial_backoff_ms),
                Duration::from_millis(self.max_backoff_ms),
            )
            .jitter_seed(self.seed)
            .build()
            .expect("valid config")
    }
}

/// What happened in a run, for the properties to check.
#[derive(Debug)]
enum Record {
    Send {
        now: Timestamp,
    },
    /// A `Retry-After` floor: no request before `not_before`.
    Floor {
        not_before: Timestamp,
    },
    Token {
        token: AccessToken,
    },
    /// A request in flight ended (answered, failed or abandoned).
    Ended,
}

/// Formats an IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(at: Timestamp) -> String {
    let secs = at.as_unix_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn respond(source: &mut TokenSource, now: Timestamp, id: RequestId, answer: &Answer, records: &mut Vec<Record>) {
    let result = match answer {
        Answer::Abandon => {
            assert!(source.abandon(id));
            records.push(Record::Ended);
            return;
        }
        Answer::Transport(kind) => source.handle_transport_error(now, id, *kind),
        Answer::Token {
            expires_in,
            refresh_token,
        } => {
            let refresh = if *refresh_token { r#","refresh_token":"rt""# } else { "" };
            let body = format!(
                r#"{{"access_token":"tok-{}","expires_in":{expires_in}{refresh}}}"#,
                now.as_unix_millis()
            );
            source.handle_response(now, id, common::response(200, body))
        }
        Answer::Status { status, retry_after } => {
            let mut response = common::response(*status, "");
            if let Some(retry_after) = retry_after {
                let (value, wait) = match retry_after {
                    RetryAfter::Seconds(s) => (s.to_string(), Some(Duration::from_secs(*s))),
                    RetryAfter::Date(s) => {
                        let date = now.saturating_add(Duration::from_secs(*s));
                        // Dates have whole seconds: the floor is the date itself.
                        let floor = Timestamp::from_unix_secs(date.as_unix_secs());
                        (http_date(date), Some(floor.saturating_duration_since(now)))
                    }
                    RetryAfter::Garbage => ("in a while".to_owned(), None),
                };
                response = common::with_header(response, "retry-after", &value);
                if let Some(wait) = wait {
                    records.push(Record::Floor {
                        not_before: now.saturating_add(wait),
                    });
                }
            }
            source.handle_response(now, id, response)
        }
        Answer::OAuth { status, code } => source.handle_response(now, id, common::oauth_error(*status, code)),
        Answer::Body { status, body } => source.handle_response(now, id, common::response(*status, body.clone())),
    };
    records.push(Record::Ended);
    match result {
        Ok(Event::TokenUpdated(token)) => records.push(Record::Token { token }),
        Ok(Event::RefreshFailed { error, .. }) => {
            assert!(
                source.usable(now).is_some(),
                "RefreshFailed without a usable token: {error}"
            );
        }
        Ok(_) => {}
        Err(error) => {
            assert!(source.usable(now).is_none(), "Err({error}) while a usable token exists");
            if source.retry_at().is_some_and(|at| now < at) {
                assert!(matches!(source.poll(now), Action::Failed(e) if *e == error));
            }
        }
    }
}

/// Runs the first `steps` steps of a schedule; returns the source, the time
/// reached and what happened.
fn run(schedule: &Schedule, steps: usize) -> (TokenSource, Timestamp, Vec<Record>) {
    let mut source = TokenSource::new(schedule.config(), [7; 32]);
    let mut now = common::at(0);
    let mut records = Vec::new();
    let mut in_flight: Option<RequestId> = None;
    for step in &schedule.steps[..steps] {
        now = now.saturating_add(Duration::from_millis(step.advance_ms));
        if let (Some(id), true) = (in_flight, step.deliver) {
            respond(&mut source, now, id, &step.answer, &mut records);
            in_flight = None;
        }
        match source.poll(now) {
            Action::Ready(_) => {}
            Action::Send(outgoing) => {
                assert!(in_flight.is_none(), "a second Send while {in_flight:?} is in flight");
                records.push(Record::Send { now });
                in_flight = Some(outgoing.id);
            }
            Action::Wait { .. } | Action::Failed(_) => {}
        }
    }
    (source, now, records)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `poll` never hands out a second request before the first one ended
    /// (checked inside `run`), and never panics on any schedule.
    #[test]
    fn at_most_one_request_in_flight(schedule in schedule()) {
        let (_, _, records) = run(&schedule, schedule.steps.len());
        let mut outstanding = false;
        for record in &records {
            match record {
                Record::Send { .. } => {
                    prop_assert!(!outstanding, "two Sends without a result between them");
                    outstanding = true;
                }
                Record::Ended => outstanding = false,
                _ => {}
            }
        }
    }

    /// No request goes out before a `Retry-After` the server gave has passed.
    #[test]
    fn retry_after_is_never_undercut(schedule in schedule()) {
        let (_, _, records) = run(&schedule, schedule.steps.len());
        let mut floor = Timestamp::UNIX_EPOCH;
        for record in &records {
            match record {
                Record::Floor { not_before } => floor = floor.max(*not_before),
                Record::Send { now } => prop_assert!(*now >= floor, "sent at {now:?} before {floor:?}"),
                _ => {}
            }
        }
    }

    /// A token with lifetime L is not refetched before half of L has passed
    /// since its request was sent, whatever the margin.
    #[test]
    fn a_token_is_refetched_at_most_once_per_half_lifetime(schedule in schedule()) {
        let (_, _, records) = run(&schedule, schedule.steps.len());
        let mut earliest: Option<u64> = None;
        for record in &records {
            match record {
                Record::Token { token } => {
                    let sent = token.received_at().as_unix_millis();
                    let lifetime = token.expires_at().expect("parsed tokens expire").as_unix_millis() - sent;
                    prop_assert!(lifetime >= 1000, "lifetime {lifetime} ms under the minimum");
                    // In doubled milliseconds, to keep L/2 exact.
                    earliest = Some(2 * sent + lifetime);
                }
                Record::Send { now } => {
                    if let Some(earliest) = earliest {
                        prop_assert!(2 * now.as_unix_millis() >= earliest,
                            "refetched at {now:?}, before half the lifetime");
                    }
                }
                _ => {}
            }
        }
    }

    /// Freshness is monotone in `now`: if `poll` is `Ready` at t, it is
    /// `Ready` at every t' in [received_at, t] in the same state.
    #[test]
    fn freshness_is_monotone_in_now(schedule in schedule(), probes in prop::collection::vec(0.0f64..=1.0, 1..6)) {
        for steps in 1..=schedule.steps.len() {
            let (mut source, now, _) = run(&schedule, steps);
            let received = match source.poll(now) {
                Action::Ready(token) => token.received_at(),
                _ => continue,
            };
            prop_assert!(received <= now);
            let span = now.as_unix_millis() - received.as_unix_millis();
            let mut times: Vec<u64> = probes.iter().map(|p| (span as f64 * p) as u64).collect();
            times.extend([0, span]);
            for offset in times {
                // Replay the same state (the run is deterministic), then probe.
                let (mut replay, _, _) = run(&schedule, steps);
                let t = Timestamp::from_unix_millis(received.as_unix_millis() + offset);
                prop_assert!(matches!(replay.poll(t), Action::Ready(_)), "not Ready at {t:?} but Ready at {now:?}");
            }
        }
    }

    /// The refresh time is within the token's life and at least half of it.
    #[test]
    fn refresh_time_rule(received in 0u64..1 << 50, lifetime in 0u64..1 << 40, margin in 0u64..1 << 40) {
        let received = Timestamp::from_unix_millis(received);
        let expires = received.saturating_add(Duration::from_millis(lifetime));
        let at = client_credentials::refresh_time(received, expires, Duration::from_millis(margin));
        prop_assert!(at <= expires);
        prop_assert!(2 * at.as_unix_millis() >= 2 * received.as_unix_millis() + lifetime);
        if margin * 2 <= lifetime {
            prop_assert_eq!(at.as_unix_millis(), expires.as_unix_millis() - margin);
        }
    }
}

// ---------------------------------------------------------- parsers

/// JSON-shaped bodies with the members parsers look at, holding any value type.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("3600")),
        Just(serde_json::Value::from("1e300")),
        Just(serde_json::Value::from("Bearer")),
        Just(serde_json::Value::from("https://id.example")),
        Just(serde_json::Value::from("https://id.example/token")),
        Just(serde_json::Value::from(common::jwt(r#"{"exp":1e308,"iat":-1e308}"#))),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let names = prop::sample::select(vec![
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "refresh_token",
        "error",
        "error_description",
        "error_uri",
        "issuer",
        "token_endpoint",
        "revocation_endpoint",
        "token_endpoint_auth_methods_supported",
        "expires_at",
        "received_at",
        "other",
    ]);
    prop::collection::vec((names, value), 0..8).prop_map(|members| {
        let object: serde_json::Map<String, serde_json::Value> =
            members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(object).to_string().into_bytes()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_body(),
        // Truncations of JSON bodies.
        (json_body(), any::<prop::sample::Index>()).prop_map(|(b, i)| b[..i.index(b.len() + 1)].to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// No bytes, with any status, make a parser panic; what they accept is usable.
    #[test]
    fn parsers_never_panic(status in 100u16..600, body in body(), sent in any::<u64>()) {
        let config = common::config();
        let response = http::Response::builder().status(status).body(body.clone()).expect("valid");
        if let Ok(token) = parse_token_response(&config, Timestamp::from_unix_millis(sent), &response) {
            prop_assert!((200..300).contains(&status));
            prop_assert!(!token.secret().is_empty());
            prop_assert!(token.expires_at().is_some());
        }
        if let Ok(metadata) = parse_discovery("https://id.example", &response) {
            prop_assert_eq!(metadata.issuer.as_str(), "https://id.example");
        }
        let _ = serde_json::from_slice::<AccessToken>(&body);
        let _ = serde_json::from_slice::<client_credentials::ProviderMetadata>(&body);
    }

    /// A parsed error never carries the client secret.
    #[test]
    fn errors_never_carry_the_client_secret(status in 200u16..600, prefix in ".{0,300}", suffix in ".{0,50}") {
        let config = common::config();
        let body = format!("{prefix}{}{suffix}", common::SECRET);
        let json = format!(r#"{{"error":"x","error_description":"{prefix}{}"}}"#, common::SECRET.replace('"', ""));
        for body in [body, json] {
            let response = http::Response::builder().status(status).body(body.into_bytes()).expect("valid");
            if let Err(error) = parse_token_response(&config, common::at(0), &response) {
                prop_assert!(!error.to_string().contains(common::SECRET), "{}", error);
                let debug = format!("{error:?}");
                prop_assert!(!debug.contains(common::SECRET), "{}", debug);
            }
        }
    }

    /// Any issuer string builds a well-formed metadata URL or a clear error.
    #[test]
    fn any_issuer_builds_a_discovery_url_or_a_clear_error(
        issuer in prop_oneof![
            ".{0,60}",
            ("(https|http|ftp|HTTPS)", "(id\\.example|localhost|127\\.0\\.0\\.1|\\[::1\\]|[a-z.]{0,12})",
             "(:[0-9]{1,5})?", "(/[a-zA-Z0-9%._~ -]{0,8}){0,3}/?", "(\\?[a-z=]{0,4})?", "(#[a-z]{0,3})?")
                .prop_map(|(s, h, p, path, q, f)| format!("{s}://{h}{p}{path}{q}{f}")),
        ]
    ) {
        for location in [DiscoveryLocation::OpenId, DiscoveryLocation::Rfc8414] {
            match discovery_request_at(&issuer, location) {
                Ok(request) => {
                    let url = url::Url::parse(&request.uri().to_string()).expect("a URL");
                    prop_assert!(url.scheme() == "https" || url.scheme() == "http");
                    prop_assert!(url.host().is_some());
                    prop_assert!(url.query().is_none() && url.fragment().is_none());
                    let path = url.path();
                    // The issuer's own path, without its trailing slash, is kept whole.
                    let parsed = url::Url::parse(&issuer).expect("it built a URL");
                    let own = parsed.path().trim_end_matches('/');
                    prop_assert_eq!(url.host_str(), parsed.host_str());
                    prop_assert_eq!(url.port_or_known_default(), parsed.port_or_known_default());
                    match location {
                        DiscoveryLocation::OpenId => prop_assert_eq!(path, format!("{own}/.well-known/openid-configuration")),
                        DiscoveryLocation::Rfc8414 => prop_assert_eq!(path, format!("/.well-known/oauth-authorization-server{own}")),
                    }
                }
                Err(client_credentials::Error::Discovery(DiscoveryError::InvalidIssuer { reason, .. })) => prop_assert!(!reason.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}

// ------------------------------------------------- a provider failing everything

/// How the provider fails a request.
#[derive(Debug, Clone)]
enum Failing {
    Status { status: u16, retry_after: Option<String> },
    OAuth { status: u16, code: &'static str },
    Body { status: u16, body: Vec<u8> },
    Transport(TransportErrorKind),
}

impl Failing {
    fn deliver(
        &self,
        source: &mut TokenSource,
        now: Timestamp,
        id: RequestId,
    ) -> Result<Event, client_credentials::Error> {
        match self {
            Failing::Status { status, retry_after } => {
                let mut response = common::response(*status, "");
                if let Some(value) = retry_after {
                    response = common::with_header(response, "retry-after", value);
                }
                source.handle_response(now, id, response)
            }
            Failing::OAuth { status, code } => source.handle_response(now, id, common::oauth_error(*status, code)),
            Failing::Body { status, body } => source.handle_response(now, id, common::response(*status, body.clone())),
            Failing::Transport(kind) => source.handle_transport_error(now, id, *kind),
        }
    }
}

fn failing() -> impl Strategy<Value = Failing> {
    let retry_after = prop_oneof![
        (0u64..120).prop_map(|s| s.to_string()),
        (120u64..100_000_000_000).prop_map(|s| s.to_string()),
        Just("99999999999999999999".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("Tue, 14 Nov 2023 22:13:50 GMT".to_owned()),
        Just("soon".to_owned()),
    ];
    prop_oneof![
        3 => (prop::sample::select(vec![500u16, 502, 503, 504, 429, 408]), prop::option::of(retry_after))
            .prop_map(|(status, retry_after)| Failing::Status { status, retry_after }),
        2 => (prop::sample::select(vec![400u16, 401, 403]),
              prop::sample::select(vec!["invalid_client", "invalid_scope", "invalid_grant", "unauthorized_client", "temporarily_unavailable"]))
            .prop_map(|(status, code)| Failing::OAuth { status, code }),
        1 => (prop::sample::select(vec![200u16, 302, 404, 410, 500]), prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(status, body)| Failing::Body { status, body }),
        1 => prop::sample::select(vec![TransportErrorKind::Connect, TransportErrorKind::Timeout, TransportErrorKind::Io, TransportErrorKind::Other])
            .prop_map(Failing::Transport),
    ]
}

/// Something a caller does besides asking for a token.
#[derive(Debug, Clone, Copy)]
enum Call {
    Token,
    Refresh,
    Invalidate,
    /// Drops the request in flight (its answer is rejected) and the token.
    Signout,
}

#[derive(Debug, Clone)]
struct Crowd {
    issuer: bool,
    /// A stored token to start from: (lifetime left in seconds, with a refresh token).
    seeded: Option<(u64, bool)>,
    /// A background refresher also polls whenever the core says a request may go out.
    refresher: bool,
    seed: u64,
    /// Milliseconds between polls, cycled (several callers a second).
    gaps: Vec<u64>,
    /// How long each request takes, cycled.
    latencies: Vec<u64>,
    answers: Vec<Failing>,
    calls: Vec<Call>,
}

fn crowd() -> impl Strategy<Value = Crowd> {
    (
        any::<bool>(),
        prop::option::of((0u64..900, any::<bool>())),
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec(prop_oneof![4 => 1u64..400, 1 => 400u64..20_000], 1..16),
        prop::collection::vec(prop_oneof![4 => 0u64..2_000, 1 => 2_000u64..30_000], 1..8),
        prop::collection::vec(failing(), 1..24),
        prop::collection::vec(
            prop_oneof![
                8 => Just(Call::Token),
                1 => Just(Call::Refresh),
                1 => Just(Call::Invalidate),
                1 => Just(Call::Signout),
            ],
            1..16,
        ),
    )
        .prop_map(
            |(issuer, seeded, refresher, seed, gaps, latencies, answers, calls)| Crowd {
                issuer,
                seeded,
                refresher,
                seed,
                gaps,
                latencies,
                answers,
                calls,
            },
        )
}

/// Ten simulated minutes of callers against a provider that fails every
/// request; returns the send times in milliseconds since the start.
fn besiege(crowd: &Crowd) -> Result<Vec<u64>, TestCaseError> {
    let builder = Config::builder(common::CLIENT_ID, common::SECRET).jitter_seed(crowd.seed);
    let builder = if crowd.issuer {
        builder.issuer(common::ISSUER)
    } else {
        builder.token_endpoint(common::TOKEN_URL)
    };
    let config = builder.build().expect("valid config");
    let start = common::at(0);
    let mut source = match crowd.seeded {
        Some((left, refresh)) => {
            let mut token = AccessToken::builder("stored")
                .received_at(start.saturating_sub(Duration::from_secs(3600)))
                .expires_at(start.saturating_add(Duration::from_secs(left)));
            if refresh {
                token = token.refresh_token("stored-refresh");
            }
            TokenSource::with_token(config, token.build().expect("valid token"), [7; 32])
        }
        None => TokenSource::new(config, [7; 32]),
    };
    let ms = |t: Timestamp| t.as_unix_millis() - start.as_unix_millis();
    let end = start.saturating_add(Duration::from_secs(600));
    let (mut now, mut step) = (start, 0usize);
    let mut in_flight: Option<(RequestId, Timestamp)> = None;
    let mut sent = Vec::new();
    while now < end {
        if let Some((id, due)) = in_flight {
            if now >= due {
                let answer = &crowd.answers[sent.len() % crowd.answers.len()];
                let result = answer.deliver(&mut source, now, id);
                prop_assert!(
                    !matches!(result, Ok(Event::TokenUpdated(_))),
                    "a failing provider issued a token"
                );
                in_flight = None;
            }
        }
        match crowd.calls[step % crowd.calls.len()] {
            Call::Token => {}
            Call::Refresh => {
                let _ = source.force_refresh(now);
            }
            Call::Invalidate => {
                if let Some(token) = common::cached(&source) {
                    source.invalidate(now, &token);
                }
            }
            Call::Signout => {
                // The revocation, if any, is not sent in this test.
                if let Some(revocation) = source.signout(now) {
                    source.abandon(revocation.id);
                }
                in_flight = None;
            }
        }
        let unforced_usable = source.usable(now).is_some() && source.refresh_at().is_some();
        match source.poll(now) {
            Action::Send(outgoing) => {
                prop_assert!(in_flight.is_none(), "a second request while one is in flight");
                let latency = crowd.latencies[sent.len() % crowd.latencies.len()];
                in_flight = Some((outgoing.id, now.saturating_add(Duration::from_millis(latency))));
                sent.push(ms(now));
            }
            Action::Ready(token) => prop_assert!(!token.is_expired(now)),
            Action::Wait { .. } | Action::Failed(_) => {
                prop_assert!(!unforced_usable, "a usable token was not served at {}", ms(now));
            }
        }
        let mut next = now.saturating_add(Duration::from_millis(crowd.gaps[step % crowd.gaps.len()]));
        if let Some((_, due)) = in_flight {
            next = next.min(due);
        }
        if crowd.refresher {
            // It wakes exactly when a request may go out again, or at the refresh time.
            let wake = source
                .retry_at()
                .into_iter()
                .chain(source.refresh_at())
                .filter(|at| *at > now)
                .min();
            if let Some(wake) = wake {
                next = next.min(wake);
            }
        }
        now = next.max(now.saturating_add(Duration::from_millis(1)));
        step += 1;
    }
    Ok(sent)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// A provider that fails everything gets at most 10 requests in the
    /// minute after the first and at most 2 in any later minute, however many
    /// callers poll, refresh, invalidate or sign out (which drops the request
    /// in flight), with or without a background
    /// refresher; never two at once; and a usable token is always served
    /// (checked inside `besiege`).
    #[test]
    fn a_failing_provider_is_backed_off(crowd in crowd()) {
        let sent = besiege(&crowd)?;
        let Some(&first) = sent.first() else { return Ok(()) };
        let early = sent.iter().filter(|t| **t < first + 60_000).count();
        prop_assert!(early <= 10, "{} requests in the first minute: {:?}", early, sent);
        for window in sent.windows(3) {
            if window[0] >= first + 60_000 {
                prop_assert!(window[2] - window[0] >= 60_000, "three requests within a minute: {:?} in {:?}", window, sent);
            }
        }
    }
}

// ------------------------------------------- a resource rejecting the tokens

/// What the provider answers: a token (valid an hour or more, so none is
/// refreshed in the ten minutes) or a failure.
#[derive(Debug, Clone)]
enum Issued {
    Token { expires_in: u64 },
    Failing(Failing),
}

/// What a caller does with the token, between polls.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Nothing: the resource accepted it, or no request was made.
    Accepted,
    /// The resource rejected the current token.
    Rejected,
    /// A caller reports a token older than the current one as rejected.
    RejectedStale,
}

#[derive(Debug, Clone)]
struct Rejecting {
    seed: u64,
    gaps: Vec<u64>,
    latencies: Vec<u64>,
    answers: Vec<Issued>,
    uses: Vec<Use>,
}

fn rejecting() -> impl Strategy<Value = Rejecting> {
    (
        any::<u64>(),
        prop::collection::vec(prop_oneof![4 => 1u64..400, 1 => 400u64..40_000], 1..16),
        prop::collection::vec(prop_oneof![4 => 0u64..2_000, 1 => 2_000u64..30_000], 1..8),
        prop::collection::vec(
            prop_oneof![
                3 => (3_600u64..100_000).prop_map(|expires_in| Issued::Token { expires_in }),
                1 => failing().prop_map(Issued::Failing),
            ],
            1..24,
        ),
        prop::collection::vec(
            prop_oneof![
                3 => Just(Use::Accepted),
                4 => Just(Use::Rejected),
                1 => Just(Use::RejectedStale),
            ],
            1..16,
        ),
    )
        .prop_map(|(seed, gaps, latencies, answers, uses)| Rejecting {
            seed,
            gaps,
            latencies,
            answers,
            uses,
        })
}

/// Ten simulated minutes of callers whose tokens a resource rejects at any
/// moment, against a provider that issues tokens (or fails); returns the
/// send times and the time of the first rejection or failure (when the
/// streak began), in milliseconds since the start.
fn reject_tokens(plan: &Rejecting) -> Result<(Vec<u64>, Option<u64>), TestCaseError> {
    let config = Config::builder(common::CLIENT_ID, common::SECRET)
        .token_endpoint(common::TOKEN_URL)
        .jitter_seed(plan.seed)
        .build()
        .expect("valid config");
    let mut source = TokenSource::new(config, [7; 32]);
    let start = common::at(0);
    let ms = |t: Timestamp| t.as_unix_millis() - start.as_unix_millis();
    let end = start.saturating_add(Duration::from_secs(600));
    let (mut now, mut step) = (start, 0usize);
    let mut in_flight: Option<(RequestId, Timestamp)> = None;
    let mut sent = Vec::new();
    let mut stale: Option<AccessToken> = None;
    let mut streak: Option<u64> = None;
    while now < end {
        if let Some((id, due)) = in_flight {
            if now >= due {
                match &plan.answers[sent.len() % plan.answers.len()] {
                    Issued::Token { expires_in } => {
                        let body = format!(
                            r#"{{"access_token":"t{}","token_type":"Bearer","expires_in":{expires_in}}}"#,
                            sent.len()
                        );
                        let previous = common::cached(&source);
                        let result = source.handle_response(now, id, common::response(200, body));
                        prop_assert!(matches!(result, Ok(Event::TokenUpdated(_))), "{:?}", result);
                        stale = previous.or(stale);
                    }
                    Issued::Failing(failing) => {
                        let _ = failing.deliver(&mut source, now, id);
                        streak.get_or_insert(ms(now));
                    }
                }
                in_flight = None;
            }
        }
        match plan.uses[step % plan.uses.len()] {
            Use::Accepted => {}
            Use::Rejected => {
                if let Some(token) = common::cached(&source) {
                    prop_assert!(source.invalidate(now, &token));
                    stale = Some(token);
                    streak.get_or_insert(ms(now));
                }
            }
            Use::RejectedStale => {
                if let Some(old) = &stale {
                    let current = common::cached(&source);
                    prop_assert!(!source.invalidate(now, old), "an older token evicted the current one");
                    prop_assert_eq!(
                        common::cached(&source).map(|t| t.secret().to_owned()),
                        current.map(|t| t.secret().to_owned())
                    );
                }
            }
        }
        let usable = source.usable(now).is_some();
        match source.poll(now) {
            Action::Send(outgoing) => {
                prop_assert!(in_flight.is_none(), "a second request while one is in flight");
                let latency = plan.latencies[sent.len() % plan.latencies.len()];
                in_flight = Some((outgoing.id, now.saturating_add(Duration::from_millis(latency))));
                sent.push(ms(now));
            }
            Action::Ready(token) => prop_assert!(!token.is_expired(now)),
            Action::Wait { .. } | Action::Failed(_) => {
                prop_assert!(!usable, "a token never rejected was not served at {}", ms(now));
            }
        }
        let mut next = now.saturating_add(Duration::from_millis(plan.gaps[step % plan.gaps.len()]));
        if let Some((_, due)) = in_flight {
            next = next.min(due);
        }
        now = next.max(now.saturating_add(Duration::from_millis(1)));
        step += 1;
    }
    Ok((sent, streak))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Whatever the interleaving of token fetches, failures and rejections
    /// (of the current token or of older ones), once the first token was
    /// rejected (or a request failed) the token endpoint gets at most 10
    /// requests in the minute after and at most 2 in any later minute: a
    /// resource that rejects every token is backed off like a provider that
    /// fails. Before that only the first token is fetched. A token never
    /// rejected is always served.
    #[test]
    fn rejections_keep_the_request_bounds(plan in rejecting()) {
        let (sent, streak) = reject_tokens(&plan)?;
        let Some(first) = streak else {
            prop_assert!(sent.len() <= 1, "{:?} without a rejection", sent);
            return Ok(());
        };
        prop_assert!(sent.iter().filter(|t| **t < first).count() <= 1, "{:?} before {}", sent, first);
        let sent: Vec<u64> = sent.into_iter().filter(|t| *t >= first).collect();
        let early = sent.iter().filter(|t| **t < first + 60_000).count();
        prop_assert!(early <= 10, "{} requests in the first minute: {:?}", early, sent);
        for window in sent.windows(3) {
            if window[0] >= first + 60_000 {
                prop_assert!(window[2] - window[0] >= 60_000, "three requests within a minute: {:?} in {:?}", window, sent);
            }
        }
    }
}

/// A shrunk counterexample of `a_failing_provider_is_backed_off`: slow
/// answers (25 s) before the first counted failure made the streak's first
/// minute start when the answer came, not when the provider was first asked,
/// so three requests went out within a minute after the first minute.
#[test]
fn slow_failures_count_from_when_the_request_was_sent() {
    let status_500 = || Failing::Status {
        status: 500,
        retry_after: None,
    };
    let crowd = Crowd {
        issuer: false,
        seeded: Some((0, true)),
        refresher: false,
        seed: 0,
        gaps: vec![1],
        latencies: vec![25_156, 24_795, 951, 853, 0, 0],
        answers: vec![
            status_500(),
            Failing::OAuth {
                status: 400,
                code: "invalid_grant",
            },
            status_500(),
            status_500(),
            status_500(),
            status_500(),
            status_500(),
        ],
        calls: vec![Call::Token],
    };
    let sent = besiege(&crowd).unwrap();
    let first = sent[0];
    for window in sent.windows(3) {
        if window[0] >= first + 60_000 {
            assert!(window[2] - window[0] >= 60_000, "{window:?} in {sent:?}");
        }
    }
}
