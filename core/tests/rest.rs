//! A driver that rests whenever it can behaves exactly as one that never
//! rests: random schedules of calls, answers, failures, cancellations,
//! invalidations, forced refreshes, sign-outs, DPoP proofs and time, run on
//! both side by side, with every output compared (steps, tasks, the bytes
//! of each request, tokens, errors, background timing).

mod common;

use std::fmt::Write as _;

use client_credentials::driver::{Background, Call, Caller, Driver, Outcome, Resting, Settle, Step, Task, Work};
use client_credentials::{
    AccessToken, ClientAuth, Config, JwsAlgorithm, JwtKey, RequestKind, SharedBackoff, Timestamp, TokenSource,
    TransportError, TransportErrorKind,
};
use proptest::prelude::*;

use common::*;

const ED_PEM: &str = include_str!("keys/ed25519.pem");
const HS_SECRET: &str = "a-client-secret-long-enough-for-hs256-0123456789";
const DISCOVERED_TOKEN_URL: &str = "https://id.example/tenant/token";
const API: &str = "https://api.example/data?q=1";

/// Which client the schedule runs.
#[derive(Debug, Clone, Copy)]
struct Setup {
    store: bool,
    provider: bool,
    /// `client_secret_jwt`: every token request carries a fresh `jti`.
    jwt: bool,
    /// DPoP with a built-in (deterministic) Ed25519 key.
    dpop: bool,
    /// The token endpoint is discovered from the issuer.
    discovery: bool,
}

impl Setup {
    fn config(&self) -> Config {
        let mut builder = match self.jwt {
            true => Config::builder(CLIENT_ID, HS_SECRET).auth(ClientAuth::ClientSecretJwt),
            false => Config::builder(CLIENT_ID, SECRET),
        };
        builder = match self.discovery {
            true => builder.issuer(ISSUER),
            false => builder.token_endpoint(TOKEN_URL),
        };
        if self.dpop {
            builder = builder.dpop(JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).expect("test key"));
        }
        builder.jitter_seed(7).build().expect("valid config")
    }

    fn driver(&self) -> Driver {
        let mut driver = Driver::new(TokenSource::new(self.config(), [9; 32]));
        if self.store {
            driver = driver.with_store();
        }
        if self.provider {
            driver = driver.with_provider();
        }
        driver
    }
}

/// An answer to whatever task it is handed to.
#[derive(Debug, Clone)]
enum Answer {
    /// A token (from the server, the provider, the fleet or the store) of this lifetime.
    Token(u64),
    /// Nothing: the provider or fleet has none, the store is empty.
    Nothing,
    /// A retryable failure (HTTP 503, with this `Retry-After`).
    Unavailable(Option<u64>),
    /// A refusal (`invalid_client`).
    Refused,
    /// `use_dpop_nonce` with a nonce (a token endpoint with DPoP).
    DpopNonce,
    /// A transport error.
    Transport,
    /// A 404 (discovery's next location, or a token endpoint gone).
    NotFound,
    /// The fleet's rejection back-off holds for this long.
    HeldBack(u64),
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => (1u64..4000).prop_map(Answer::Token),
        2 => Just(Answer::Nothing),
        2 => prop::option::of(0u64..200).prop_map(Answer::Unavailable),
        1 => Just(Answer::Refused),
        1 => Just(Answer::DpopNonce),
        1 => Just(Answer::Transport),
        1 => Just(Answer::NotFound),
        1 => (0u64..100).prop_map(Answer::HeldBack),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// The caller in this slot steps (a new `Call::token()` if the slot is empty).
    Step(usize),
    /// The job of this index gets this answer.
    Answer(usize, Answer),
    /// The job of this index is dropped unfinished.
    Abandon(usize),
    /// A resource server rejected the cached token.
    Invalidate,
    /// A forced refresh, into this caller slot.
    Refresh(usize),
    SignOut,
    /// A resource server's `DPoP-Nonce`.
    Nonce(u8),
    /// A DPoP proof for a resource request with the cached token.
    Proof,
    /// The clock moves by this many seconds (backwards for negative ones).
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3).prop_map(Op::Step),
        6 => (0usize..4, answer()).prop_map(|(job, answer)| Op::Answer(job, answer)),
        1 => (0usize..4).prop_map(Op::Abandon),
        1 => Just(Op::Invalidate),
        1 => (0usize..3).prop_map(Op::Refresh),
        1 => Just(Op::SignOut),
        1 => any::<u8>().prop_map(Op::Nonce),
        1 => Just(Op::Proof),
        4 => prop_oneof![8 => 0i64..5000, 1 => -600i64..0].prop_map(Op::Advance),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(store, provider, jwt, dpop, discovery)| Setup {
            store,
            provider,
            jwt,
            dpop,
            discovery,
        })
}

/// The driver that rests whenever it can.
// As the adapters keep a key: the resting form inline (it is what an idle
// key costs), the live one boxed.
#[allow(clippy::large_enum_variant)]
enum Rester {
    Live(Box<Driver>),
    Resting(Resting),
}

impl Rester {
    fn live(&mut self) -> &mut Driver {
        if let Rester::Resting(_) = self {
            let Rester::Resting(resting) = std::mem::replace(self, Rester::Live(Box::new(Setup::placeholder()))) else {
                unreachable!("matched above")
            };
            *self = Rester::Live(Box::new(resting.wake()));
        }
        match self {
            Rester::Live(driver) => driver,
            Rester::Resting(_) => unreachable!("woken above"),
        }
    }

    /// Rests if it can; returns whether it is resting.
    fn try_rest(&mut self) -> bool {
        let current = std::mem::replace(self, Rester::Live(Box::new(Setup::placeholder())));
        *self = match current {
            Rester::Live(driver) => match driver.rest() {
                Ok(resting) => Rester::Resting(resting),
                Err(driver) => Rester::Live(driver),
            },
            resting => resting,
        };
        matches!(self, Rester::Resting(_))
    }

    fn step<C: Caller>(&mut self, now: Timestamp, call: &mut C) -> Step<C::Output> {
        if let Rester::Resting(resting) = self {
            if let Some(step) = resting.step(now, call) {
                return step;
            }
        }
        self.live().step(now, call)
    }

    fn background(&self, now: Timestamp) -> Background {
        match self {
            Rester::Live(driver) => driver.background(now),
            Rester::Resting(resting) => resting.background(now),
        }
    }

    fn published(&self) -> Option<(AccessToken, Timestamp)> {
        match self {
            Rester::Live(driver) => driver.published(),
            Rester::Resting(resting) => resting.published(),
        }
        .map(|(token, at)| (token.clone(), at))
    }

    fn token(&self) -> Option<AccessToken> {
        match self {
            Rester::Live(driver) => driver.token(),
            Rester::Resting(resting) => resting.token(),
        }
        .cloned()
    }

    fn metadata(&self) -> Option<String> {
        match self {
            Rester::Live(driver) => driver.metadata(),
            Rester::Resting(resting) => resting.metadata(),
        }
        .map(|m| format!("{m:?}"))
    }
}

impl Setup {
    /// A driver only ever replaced at once (see [`Rester::live`]).
    fn placeholder() -> Driver {
        Driver::new(TokenSource::new(config(), [0; 32]))
    }
}

/// What a caller holds, one for each driver.
enum Held {
    Call(Call, Call),
    Settle(Settle, Settle),
}

fn token_text(token: &AccessToken) -> String {
    format!(
        "{}/{}/{:?}/{:?}/{:?}",
        token.secret(),
        token.token_type(),
        token.expires_at(),
        token.received_at(),
        token.refresh_token()
    )
}

fn request_text(request: &http::Request<Vec<u8>>) -> String {
    let mut text = format!("{} {}\n", request.method(), request.uri());
    for (name, value) in request.headers() {
        let _ = writeln!(text, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    text.push_str(&String::from_utf8_lossy(request.body()));
    text
}

fn task_text(task: &Task) -> String {
    match task {
        Task::Send(outgoing, attempt) => format!(
            "Send({:?} {:?} #{attempt})\n{}",
            outgoing.id,
            outgoing.kind,
            request_text(&outgoing.request)
        ),
        Task::Provide(token) => format!("Provide({:?})", token.as_ref().map(token_text)),
        Task::Save(token) => format!("Save({})", token_text(token)),
        Task::Evict(token, backoff) => format!("Evict({}, {backoff:?})", token_text(token)),
        Task::Report(report) => format!("Report({report:?})"),
        other => format!("{other:?}"),
    }
}

fn step_text<T>(step: &Step<T>, show: impl Fn(&T) -> String) -> String {
    match step {
        Step::Ready(value) => format!("Ready({})", show(value)),
        Step::Failed(error) => format!("Failed({error:?})"),
        Step::Wait { until } => format!("Wait({until:?})"),
        Step::Work(work) => format!("Work({})", task_text(&work.task)),
    }
}

/// Whether the caller's call is over (its token or its error).
fn is_over<T>(step: &Step<T>) -> bool {
    matches!(step, Step::Ready(_) | Step::Failed(_))
}

/// The work a step handed out, if any.
trait IntoWork {
    fn into_work(self) -> Option<Work>;
}

impl<T> IntoWork for Step<T> {
    fn into_work(self) -> Option<Work> {
        match self {
            Step::Work(work) => Some(work),
            _ => None,
        }
    }
}

/// The outcome `answer` gives to `task`, at `now`, for this setup.
fn outcome(setup: &Setup, task: &Task, answer: &Answer, now: Timestamp, serial: u64) -> Outcome {
    let token = |lifetime: u64| {
        AccessToken::builder(format!("t-{serial}"))
            .token_type(if setup.dpop { "DPoP" } else { "Bearer" })
            .expires_at(now.saturating_add(std::time::Duration::from_secs(lifetime)))
            .received_at(now)
            .build()
            .expect("valid token")
    };
    match (task, answer) {
        (Task::Load, Answer::Token(lifetime)) => Outcome::Loaded(Some(token(*lifetime))),
        (Task::Load, _) => Outcome::Loaded(None),
        (Task::Provide(_), Answer::Token(lifetime)) => Outcome::Provided(Some(token(*lifetime))),
        (Task::Provide(_), _) => Outcome::Provided(None),
        (Task::TakeFleetTurn(_), Answer::Token(lifetime)) => Outcome::FleetTurn(Some(token(*lifetime))),
        (Task::TakeFleetTurn(_), Answer::HeldBack(secs)) => Outcome::FleetHeldBack(SharedBackoff::new(
            now.saturating_add(std::time::Duration::from_secs(*secs)),
            2,
        )),
        (Task::TakeFleetTurn(_), _) => Outcome::FleetTurn(None),
        (Task::Send(outgoing, _), answer) => send_outcome(setup, outgoing.kind, answer, serial),
        _ => Outcome::Done,
    }
}

fn send_outcome(setup: &Setup, kind: RequestKind, answer: &Answer, serial: u64) -> Outcome {
    let token_type = if setup.dpop { "DPoP" } else { "Bearer" };
    let response = match (kind, answer) {
        (_, Answer::Transport) => {
            return Outcome::TransportError(TransportError::new(TransportErrorKind::Timeout, "timed out"))
        }
        (RequestKind::Discovery, Answer::Token(_) | Answer::Nothing) => response(
            200,
            format!(
                r#"{{"issuer":"{ISSUER}","token_endpoint":"{DISCOVERED_TOKEN_URL}","revocation_endpoint":"{ISSUER}/revoke"}}"#
            ),
        ),
        (RequestKind::Token, Answer::Token(lifetime)) => response(
            200,
            format!(
                r#"{{"access_token":"t-{serial}","token_type":"{token_type}","expires_in":{lifetime},"refresh_token":"r-{serial}"}}"#
            ),
        ),
        (RequestKind::Token, Answer::Nothing) => response(
            200,
            format!(r#"{{"access_token":"t-{serial}","token_type":"{token_type}","expires_in":600}}"#),
        ),
        (_, Answer::Unavailable(retry_after)) => {
            let mut response = response(503, "busy");
            if let Some(secs) = retry_after {
                response = with_header(response, "retry-after", &secs.to_string());
            }
            response
        }
        (_, Answer::Refused) => oauth_error(401, "invalid_client"),
        (_, Answer::DpopNonce) => with_header(oauth_error(400, "use_dpop_nonce"), "dpop-nonce", &format!("n-{serial}")),
        (_, Answer::NotFound) => response(404, "not found"),
        (_, _) => response(200, "{}"),
    };
    Outcome::Response(response)
}

/// Runs `ops` on a driver that rests whenever it can and one that never
/// rests; fails at the first output that differs. Returns how often the
/// first one rested and how many steps it answered at rest.
fn run(setup: &Setup, ops: &[Op]) -> Result<(usize, usize), TestCaseError> {
    let mut rester = Rester::Live(Box::new(setup.driver()));
    let mut plain = setup.driver();
    let mut now = at(0);
    let mut held: [Option<Held>; 3] = [None, None, None];
    let mut jobs: Vec<(Work, Work)> = Vec::new();
    let (mut rests, mut at_rest) = (0, 0);
    for (serial, op) in ops.iter().enumerate() {
        let serial = serial as u64;
        match op {
            Op::Step(slot) => {
                let held = &mut held[*slot];
                let (over, works) = match held.get_or_insert_with(|| Held::Call(Call::token(), Call::token())) {
                    Held::Call(a, b) => {
                        let resting = matches!(rester, Rester::Resting(_));
                        let step_a = rester.step(now, a);
                        at_rest += usize::from(resting && matches!(rester, Rester::Resting(_)));
                        let step_b = plain.step(now, b);
                        prop_assert_eq!(step_text(&step_a, token_text), step_text(&step_b, token_text));
                        (is_over(&step_a), step_a.into_work().zip(step_b.into_work()))
                    }
                    Held::Settle(a, b) => {
                        let step_a = rester.step(now, a);
                        let step_b = plain.step(now, b);
                        prop_assert_eq!(
                            step_text(&step_a, |_| String::new()),
                            step_text(&step_b, |_| String::new())
                        );
                        (is_over(&step_a), step_a.into_work().zip(step_b.into_work()))
                    }
                };
                jobs.extend(works);
                if over {
                    *held = None;
                }
            }
            Op::Answer(index, answer) if !jobs.is_empty() => {
                let (work_a, work_b) = jobs.remove(index % jobs.len());
                let outcome_a = outcome(setup, &work_a.task, answer, now, serial);
                let outcome_b = outcome(setup, &work_b.task, answer, now, serial);
                let next_a = rester.live().handle(now, work_a.ticket, outcome_a);
                let next_b = plain.handle(now, work_b.ticket, outcome_b);
                prop_assert_eq!(
                    next_a.as_ref().map(|w| task_text(&w.task)),
                    next_b.as_ref().map(|w| task_text(&w.task))
                );
                if let (Some(a), Some(b)) = (next_a, next_b) {
                    jobs.push((a, b));
                }
            }
            Op::Abandon(index) if !jobs.is_empty() => {
                let (work_a, work_b) = jobs.remove(index % jobs.len());
                rester.live().abandon(now, work_a.ticket);
                plain.abandon(now, work_b.ticket);
            }
            Op::Answer(..) | Op::Abandon(_) => {}
            Op::Invalidate => {
                if let Some(token) = plain.token().cloned() {
                    let a = rester.live().invalidate(now, &token);
                    let b = plain.invalidate(now, &token);
                    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                    if let (
                        client_credentials::driver::Invalidated::Evicted(Some(a)),
                        client_credentials::driver::Invalidated::Evicted(Some(b)),
                    ) = (a, b)
                    {
                        if let Some(slot) = held.iter_mut().find(|h| h.is_none()) {
                            *slot = Some(Held::Settle(a, b));
                        }
                    }
                }
            }
            Op::Refresh(slot) => {
                let a = rester.live().refresh(now);
                let b = plain.refresh(now);
                prop_assert_eq!(format!("{:?}", a.as_ref().err()), format!("{:?}", b.as_ref().err()));
                if let (Ok(a), Ok(b)) = (a, b) {
                    held[*slot] = Some(Held::Call(a, b));
                }
            }
            Op::SignOut => {
                let a = rester.live().signout(now);
                let b = plain.signout(now);
                prop_assert_eq!(
                    a.revocation.as_ref().map(|o| request_text(&o.request)),
                    b.revocation.as_ref().map(|o| request_text(&o.request))
                );
                if let Some(slot) = held.iter_mut().find(|h| h.is_none()) {
                    *slot = Some(Held::Settle(a.deletion, b.deletion));
                }
            }
            Op::Nonce(n) => {
                rester.live().remember_dpop_nonce(API, &format!("rs-{n}"));
                plain.remember_dpop_nonce(API, &format!("rs-{n}"));
            }
            Op::Proof => {
                if let Some(token) = plain.token().cloned() {
                    let a = rester.live().dpop_proof(now, &http::Method::GET, API, &token, None);
                    let b = plain.dpop_proof(now, &http::Method::GET, API, &token, None);
                    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                }
            }
            Op::Advance(secs) => {
                now = match *secs >= 0 {
                    true => now.saturating_add(std::time::Duration::from_secs(secs.unsigned_abs())),
                    false => now.saturating_sub(std::time::Duration::from_secs(secs.unsigned_abs())),
                };
            }
        }
        // What an idle key answers without waking.
        prop_assert_eq!(
            format!("{:?}", rester.background(now)),
            format!("{:?}", plain.background(now))
        );
        prop_assert_eq!(
            rester.published().map(|(t, at)| (token_text(&t), at)),
            plain.published().map(|(t, at)| (token_text(t), at))
        );
        prop_assert_eq!(rester.token().map(|t| token_text(&t)), plain.token().map(token_text));
        prop_assert_eq!(rester.metadata(), plain.metadata().map(|m| format!("{m:?}")));
        rests += usize::from(rester.try_rest());
    }
    Ok((rests, at_rest))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Resting changes nothing but the room an idle driver takes.
    #[test]
    fn a_driver_that_rests_behaves_as_one_that_never_does(
        setup in setup(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(&setup, &ops)?;
    }
}

/// Enough schedules rest (and answer at rest) for the property to say
/// something: a healthy plain client rests after each token.
#[test]
fn a_healthy_driver_rests_after_each_token_and_answers_at_rest() {
    let setup = Setup {
        store: false,
        provider: false,
        jwt: true,
        dpop: false,
        discovery: false,
    };
    let ops = [
        Op::Step(0),
        Op::Answer(0, Answer::Token(3600)),
        Op::Step(0),
        Op::Step(1),
        Op::Advance(100),
        Op::Step(2),
        Op::Advance(3500),
        Op::Step(0),
        Op::Answer(0, Answer::Token(3600)),
        Op::Step(0),
    ];
    let (rests, at_rest) = run(&setup, &ops).expect("identical");
    assert!(rests >= 6, "{rests}");
    assert!(at_rest >= 3, "{at_rest}");
}
