//! Property-testing your own expiry logic: proptest drives a `TokenSource`
//! through generated schedules of provider answers and clock jumps, and checks
//! properties stated about *your* code, not about the library.
//!
//! The code under test is `handle_job` below: a service that, for each job,
//! gets a token from the core and calls its API with it, but never with a
//! token that expires within 5 s (the API might see it expired after a slow
//! hop). The properties, over every generated schedule:
//! 1. every API call carries a token the provider issued that is still valid
//!    for at least 5 s;
//! 2. the provider never sees two token requests less than 250 ms apart (no
//!    retry storm, whatever it answers);
//! 3. once the provider is healthy again, the service is calling its API
//!    within 40 s (the back-off is capped at 30 s).
//!
//! Schedules mix tokens of 1 min to 2 h with runs (outages) of 503s, 429s and
//! `Retry-After`, `invalid_client`, an error inside a 200, garbage bodies and
//! timeouts, with jobs up to 5 s apart and clock jumps of up to 2 h (a
//! suspended VM), then an hour of a healthy provider. There is no network and
//! no real clock: 512 schedules of hours each run in well under a second.
//!
//! `main` runs the properties with proptest's `TestRunner` and exits non-zero
//! with the smallest failing schedule if one fails. To see that happen,
//! uncomment the line marked `BREAKS PROPERTY 1` in `handle_job`: the core
//! keeps serving a token while its refresh fails, up to its expiry, so a
//! service that trusts any unexpired token sends ones about to expire.
//!
//! ```sh
//! cargo run -p client-credentials --example property_test
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use client_credentials::{Action, Config, Timestamp, TokenSource, TransportErrorKind};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestError, TestRunner};

/// The service's rule: never call the API with less than this much validity left.
const MIN_REMAINING: Duration = Duration::from_secs(5);

/// The code under test: one job of the service at `now`. Returns the token
/// the job called the API with, or `None` if it had none to use (the job is
/// retried later).
fn handle_job(source: &mut TokenSource, now: Timestamp, provider: &mut Provider) -> Option<String> {
    let min_remaining = MIN_REMAINING;
    // let min_remaining = Duration::ZERO; // BREAKS PROPERTY 1: trust any unexpired token
    // A few steps at most: a send and its answer, then the token or a wait.
    for _ in 0..4 {
        match source.poll(now) {
            Action::Ready(token) => {
                let remaining = token
                    .expires_at()
                    .map_or(Duration::MAX, |at| at.saturating_duration_since(now));
                // A refresh is due but failing: the core still serves this
                // token until it expires. Closer than that to expiry, skip the job.
                if remaining < min_remaining {
                    return None;
                }
                return Some(token.secret().to_owned());
            }
            Action::Send(outgoing) => {
                // Errors are the core's business (retries, back-off); a job
                // only cares whether a token comes out.
                let _ = match provider.answer(now, &outgoing.request) {
                    Ok(response) => source.handle_response(now, outgoing.id, response),
                    Err(kind) => source.handle_transport_error(now, outgoing.id, kind),
                };
            }
            // Backing off before a retry, or the last round failed and no
            // usable token is left: no token for this job.
            Action::Wait { .. } | Action::Failed(_) => return None,
        }
    }
    None
}

/// How the provider answers one token request.
#[derive(Debug, Clone)]
enum Answer {
    Token { lifetime_secs: u64 },
    ServiceUnavailable,
    RetryAfter { status: u16, secs: u64 },
    InvalidClient,
    ErrorInside200,
    Garbage,
    Timeout,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => (60u64..7_200).prop_map(|lifetime_secs| Answer::Token { lifetime_secs }),
        2 => Just(Answer::ServiceUnavailable),
        2 => (prop_oneof![Just(429u16), Just(503u16)], 0u64..=20)
            .prop_map(|(status, secs)| Answer::RetryAfter { status, secs }),
        1 => Just(Answer::InvalidClient),
        1 => Just(Answer::ErrorInside200),
        1 => Just(Answer::Garbage),
        2 => Just(Answer::Timeout),
    ]
}

/// One generated run: the provider's answers in order, each repeated for
/// that many requests (outages come in runs; healthy once they run out), the
/// time between jobs, and the seed of the core's jitter.
#[derive(Debug, Clone)]
struct Schedule {
    answers: Vec<(Answer, usize)>,
    steps: Vec<Duration>,
    jitter_seed: u64,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let step = prop_oneof![
        20 => (0u64..=5_000).prop_map(Duration::from_millis),
        1 => (60u64..=7_200).prop_map(Duration::from_secs), // clock jump: suspend and resume
    ];
    (vec((answer(), 1usize..=12), 0..8), vec(step, 1..120), any::<u64>()).prop_map(|(answers, steps, jitter_seed)| {
        Schedule {
            answers,
            steps,
            jitter_seed,
        }
    })
}

/// The token endpoint, simulated: answers from the schedule, then healthy.
struct Provider {
    answers: VecDeque<Answer>,
    /// Tokens issued: the secret and when it really expires.
    issued: Vec<(String, Timestamp)>,
    /// When each token request arrived.
    requests: Vec<Timestamp>,
    /// When the last scripted answer was given: healthy from then on.
    healthy_since: Option<Timestamp>,
}

impl Provider {
    fn new(answers: &[(Answer, usize)]) -> Provider {
        Provider {
            answers: answers
                .iter()
                .flat_map(|(answer, times)| std::iter::repeat_n(answer.clone(), *times))
                .collect(),
            issued: Vec::new(),
            requests: Vec::new(),
            healthy_since: None,
        }
    }

    fn answer(
        &mut self,
        now: Timestamp,
        _request: &http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportErrorKind> {
        self.requests.push(now);
        let answer = match self.answers.pop_front() {
            Some(answer) => {
                if self.answers.is_empty() {
                    self.healthy_since = Some(now); // the last scripted answer
                }
                answer
            }
            None => Answer::Token { lifetime_secs: 3600 },
        };
        let (status, retry_after, body) = match answer {
            Answer::Token { lifetime_secs } => {
                let secret = format!("token-{}", self.issued.len());
                let expires_at = now.saturating_add(Duration::from_secs(lifetime_secs));
                let body =
                    format!(r#"{{"access_token":"{secret}","token_type":"Bearer","expires_in":{lifetime_secs}}}"#);
                self.issued.push((secret, expires_at));
                (200, None, body)
            }
            Answer::ServiceUnavailable => (503, None, "<html>maintenance</html>".to_owned()),
            Answer::RetryAfter { status, secs } => (status, Some(secs), String::new()),
            Answer::InvalidClient => (401, None, r#"{"error":"invalid_client"}"#.to_owned()),
            Answer::ErrorInside200 => (200, None, r#"{"error":"temporarily_unavailable"}"#.to_owned()),
            Answer::Garbage => (200, None, "<html>login</html>".to_owned()),
            Answer::Timeout => return Err(TransportErrorKind::Timeout),
        };
        let mut response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(secs) = retry_after {
            response = response.header("retry-after", secs.to_string());
        }
        Ok(response.body(body.into_bytes()).expect("a valid response"))
    }

    fn expiry_of(&self, secret: &str) -> Option<Timestamp> {
        self.issued.iter().find(|(s, _)| s == secret).map(|(_, at)| *at)
    }
}

/// Runs the service through one schedule (then a job every 2 s for an hour,
/// long enough for any scripted outage to end) and checks the three properties.
fn check(schedule: &Schedule) -> Result<(), TestCaseError> {
    let config = Config::builder("my-service", "my-secret")
        .token_endpoint("https://auth.example/token")
        .jitter_seed(schedule.jitter_seed)
        .build()
        .expect("a valid configuration");
    let mut source = TokenSource::new(config, [7; 32]);
    let mut provider = Provider::new(&schedule.answers);
    let mut now = Timestamp::from_unix_secs(1_700_000_000);

    let tail = std::iter::repeat_n(Duration::from_secs(2), 1800);
    for step in schedule.steps.iter().copied().chain(tail) {
        now = now.saturating_add(step);
        let used = handle_job(&mut source, now, &mut provider);

        if let Some(secret) = &used {
            let Some(expires_at) = provider.expiry_of(secret) else {
                return Err(TestCaseError::fail(format!(
                    "property 1: called the API with a token never issued: {secret}"
                )));
            };
            let remaining = expires_at.saturating_duration_since(now);
            prop_assert!(
                remaining >= MIN_REMAINING,
                "property 1: called the API with {secret}, valid for only {remaining:?} more"
            );
        }
        if let Some(since) = provider.healthy_since {
            let waited = now.saturating_duration_since(since);
            prop_assert!(
                used.is_some() || waited < Duration::from_secs(40),
                "property 3: the provider has been healthy for {waited:?}, but the job had no token"
            );
        }
    }
    for pair in provider.requests.windows(2) {
        let gap = pair[1].saturating_duration_since(pair[0]);
        prop_assert!(
            gap >= Duration::from_millis(250),
            "property 2: two token requests {gap:?} apart"
        );
    }
    Ok(())
}

fn main() {
    let cases = 512;
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        // An example has no regressions directory; a failure prints its schedule.
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    match runner.run(&schedule(), |schedule| check(&schedule)) {
        Ok(()) => println!("all 3 properties held over {cases} generated schedules"),
        Err(TestError::Fail(reason, schedule)) => {
            eprintln!("a property failed: {reason}");
            eprintln!("smallest failing schedule: {schedule:#?}");
            std::process::exit(1);
        }
        Err(TestError::Abort(reason)) => {
            eprintln!("proptest gave up: {reason}");
            std::process::exit(2);
        }
    }
}
