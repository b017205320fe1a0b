//! `driver::Driver` scenarios: several callers, a simulated clock, and the
//! steps the driver hands out, as plain function calls.

mod common;

use client_credentials::driver::{
    AssertionRole, Background, Call, Driver, Invalidated, Outcome, Report, Step, Task, Work,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use client_credentials::{
    AccessToken, AssertionSource, ClientAuth, ClientAuthError, DpopProof, Error, JwsAlgorithm, JwtKey, RequestKind,
    SharedBackoff, SignError, Signer, Timestamp, TokenSource, TransportError, TransportErrorKind,
};
use common::*;

fn driver() -> Driver {
    Driver::new(TokenSource::new(config(), [7; 32]))
}

fn token(secret: &str, lifetime: u64) -> AccessToken {
    AccessToken::builder(secret)
        .expires_at(at(lifetime))
        .build()
        .expect("valid token")
}

fn work<T: std::fmt::Debug>(step: Step<T>) -> Work {
    match step {
        Step::Work(work) => work,
        other => panic!("expected work, got {other:?}"),
    }
}

fn task_name(task: &Task) -> String {
    format!("{task:?}").split('(').next().unwrap_or_default().to_owned()
}

/// Hands `outcome` back, then answers every following task with `Done`;
/// returns the names of those tasks, in order (the job ends after them:
/// the adapter then wakes the waiting callers).
fn finish(driver: &mut Driver, now: client_credentials::Timestamp, work: Work, outcome: Outcome) -> Vec<String> {
    let mut names = Vec::new();
    let mut next = driver.handle(now, work.ticket, outcome);
    while let Some(work) = next {
        names.push(task_name(&work.task));
        next = driver.handle(now, work.ticket, Outcome::Done);
    }
    names
}

fn ready(step: Step) -> String {
    match step {
        Step::Ready(token) => token.secret().to_owned(),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn one_caller_sends_while_the_others_wait_then_all_get_its_token() {
    let mut driver = driver();
    let (mut first, mut second) = (Call::token(), Call::token());
    let sending = work(driver.step(at(0), &mut first));
    assert!(matches!(&sending.task, Task::Send(outgoing, 1) if outgoing.kind == RequestKind::Token));
    assert!(matches!(driver.step(at(0), &mut second), Step::Wait { until: None }));
    let after = finish(&mut driver, at(1), sending, Outcome::Response(token_ok("t1", 3600)));
    // The new token is reported before the job ends and the waiters are woken.
    assert_eq!(after, ["Report"]);
    assert_eq!(ready(driver.step(at(1), &mut second)), "t1");
    assert_eq!(ready(driver.step(at(2), &mut first)), "t1");
    assert_eq!(
        driver.published().map(|(t, at)| (t.secret().to_owned(), at)),
        Some(("t1".into(), at(3300)))
    );
}

#[test]
fn a_store_is_loaded_first_by_one_caller_and_its_token_served() {
    let mut driver = driver().with_store();
    let (mut first, mut second) = (Call::token(), Call::token());
    let load = work(driver.step(at(0), &mut first));
    assert!(matches!(load.task, Task::Load));
    assert!(matches!(driver.step(at(0), &mut second), Step::Wait { until: None }));
    assert!(driver
        .handle(at(0), load.ticket, Outcome::Loaded(Some(token("stored", 3600))))
        .is_none());
    assert_eq!(ready(driver.step(at(0), &mut second)), "stored");
}

#[test]
fn a_new_token_is_saved_then_the_fleet_turn_ends_then_it_is_reported() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    assert!(driver.handle(at(0), load.ticket, Outcome::Loaded(None)).is_none());
    let turn = work(driver.step(at(0), &mut call));
    assert!(matches!(turn.task, Task::TakeFleetTurn(now) if now == at(0)));
    let sending = driver
        .handle(at(0), turn.ticket, Outcome::FleetTurn(None))
        .expect("the request");
    assert!(matches!(sending.task, Task::Send(..)));
    let after = finish(&mut driver, at(1), sending, Outcome::Response(token_ok("t1", 3600)));
    assert_eq!(after, ["Save", "EndFetch", "Report"]);
}

#[test]
fn a_token_from_the_fleet_is_used_without_a_request_and_not_saved_again() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let turn = work(driver.step(at(0), &mut call));
    let after = finish(&mut driver, at(0), turn, Outcome::FleetTurn(Some(token("fleet", 3600))));
    assert_eq!(after, ["EndFetch", "Report"]);
    assert_eq!(ready(driver.step(at(0), &mut call)), "fleet");
}

#[test]
fn the_provider_is_asked_once_per_round_before_the_fleet_and_the_request() {
    let mut driver = driver().with_store().with_provider();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let ask = work(driver.step(at(0), &mut call));
    assert!(matches!(ask.task, Task::Provide(None)));
    let turn = driver
        .handle(at(0), ask.ticket, Outcome::Provided(None))
        .expect("the fleet turn");
    assert!(matches!(turn.task, Task::TakeFleetTurn(_)));
    let sending = driver
        .handle(at(0), turn.ticket, Outcome::FleetTurn(None))
        .expect("the request");
    // A failed attempt ends the flight, not the round: the retry asks no hook again.
    let after = finish(&mut driver, at(1), sending, Outcome::Response(response(503, "")));
    assert_eq!(after, ["Report"], "the back-off is reported");
    let Step::Wait { until: Some(retry) } = driver.step(at(1), &mut call) else {
        panic!("a back-off")
    };
    let sending = work(driver.step(retry, &mut call));
    assert!(matches!(sending.task, Task::Send(_, 2)), "the round's second attempt");
    let after = finish(&mut driver, retry, sending, Outcome::Response(token_ok("t", 3600)));
    assert_eq!(after, ["Save", "EndFetch", "Report"]);
    // The next round (at the refresh time) asks the provider again, passing the cached token.
    let ask = work(driver.step(at(3400), &mut call));
    assert!(matches!(&ask.task, Task::Provide(Some(cached)) if cached.secret() == "t"));
}

#[test]
fn a_provided_token_is_saved_and_reported_and_nothing_is_sent() {
    let mut driver = driver().with_store().with_provider();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let ask = work(driver.step(at(0), &mut call));
    let after = finish(
        &mut driver,
        at(0),
        ask,
        Outcome::Provided(Some(token("provided", 3600))),
    );
    assert_eq!(after, ["Save", "Report"]);
    assert_eq!(ready(driver.step(at(0), &mut call)), "provided");
}

#[test]
fn an_expired_provided_token_is_refused_and_the_round_fetches() {
    let mut driver = driver().with_provider();
    let mut call = Call::token();
    let ask = work(driver.step(at(100), &mut call));
    let next = driver.handle(at(100), ask.ticket, Outcome::Provided(Some(token("old", 50))));
    assert!(matches!(next.map(|w| w.task), Some(Task::Send(..))));
}

#[test]
fn a_sender_that_is_cancelled_counts_as_a_failed_attempt_and_wakes_the_others() {
    let mut driver = driver();
    let (mut first, mut second) = (Call::token(), Call::token());
    let sending = work(driver.step(at(0), &mut first));
    assert!(matches!(driver.step(at(0), &mut second), Step::Wait { until: None }));
    driver.abandon(at(1), sending.ticket);
    // Backed off like a failed exchange; the next caller sends after it.
    let Step::Wait { until: Some(retry) } = driver.step(at(1), &mut second) else {
        panic!("a back-off")
    };
    assert!(retry > at(1));
    assert!(matches!(work(driver.step(retry, &mut second)).task, Task::Send(..)));
}

#[test]
fn a_store_load_that_is_cancelled_starts_without_the_store() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.abandon(at(0), load.ticket);
    assert!(matches!(
        work(driver.step(at(0), &mut call)).task,
        Task::TakeFleetTurn(_)
    ));
}

#[test]
fn a_failed_round_without_a_token_is_reported_and_its_error_returned() {
    let mut driver = Driver::new(TokenSource::new(builder().max_attempts(1).build().unwrap(), [7; 32]));
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    let after = finish(
        &mut driver,
        at(1),
        sending,
        Outcome::TransportError(TransportError::new(TransportErrorKind::Connect, "refused")),
    );
    assert_eq!(after, ["Report"]);
    assert!(matches!(driver.step(at(1), &mut call), Step::Failed(_)));
}

#[test]
fn a_failed_refresh_is_reported_while_the_token_is_still_served() {
    let mut driver = Driver::new(TokenSource::new(builder().max_attempts(1).build().unwrap(), [7; 32]));
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    finish(&mut driver, at(0), sending, Outcome::Response(token_ok("t", 3600)));
    let refresh = work(driver.step(at(3300), &mut call));
    let mut next = driver.handle(at(3300), refresh.ticket, Outcome::Response(response(500, "")));
    let report = next.take().expect("a report");
    assert!(matches!(report.task, Task::Report(Report::RefreshFailed(_))));
    assert_eq!(ready(driver.step(at(3300), &mut call)), "t");
}

#[test]
fn sign_out_cuts_the_flight_short_and_its_late_answer_changes_nothing() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let turn = work(driver.step(at(0), &mut call));
    let sending = driver
        .handle(at(0), turn.ticket, Outcome::FleetTurn(None))
        .expect("the request");
    let mut signout = driver.signout(at(1));
    assert!(signout.revocation.is_none());
    let delete = work(driver.step(at(1), &mut signout.deletion));
    assert!(matches!(delete.task, Task::Delete));
    // The late answer saves nothing: its token was never cached.
    let after = finish(&mut driver, at(2), sending, Outcome::Response(token_ok("late", 3600)));
    assert!(after.is_empty(), "{after:?}");
    assert!(driver.handle(at(2), delete.ticket, Outcome::Done).is_none());
    assert!(matches!(driver.step(at(2), &mut signout.deletion), Step::Ready(())));
    assert!(driver.token().is_none());
}

#[test]
fn a_deletion_lands_after_the_save_under_way_and_replaces_a_pending_one() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let turn = work(driver.step(at(0), &mut call));
    let sending = driver
        .handle(at(0), turn.ticket, Outcome::FleetTurn(None))
        .expect("the request");
    let saving = driver
        .handle(at(1), sending.ticket, Outcome::Response(token_ok("t", 3600)))
        .expect("the save");
    assert!(matches!(saving.task, Task::Save(_)));
    // Sign-out while the save is applied: its deletion waits for that caller, who applies it next.
    let mut signout = driver.signout(at(2));
    assert!(matches!(
        driver.step(at(2), &mut signout.deletion),
        Step::Wait { until: None }
    ));
    let delete = driver
        .handle(at(2), saving.ticket, Outcome::Done)
        .expect("the deletion");
    assert!(matches!(delete.task, Task::Delete));
    assert!(matches!(
        driver.step(at(2), &mut signout.deletion),
        Step::Wait { until: None }
    ));
    let after = finish(&mut driver, at(2), delete, Outcome::Done);
    assert_eq!(after, ["EndFetch", "Report"]);
    assert!(matches!(driver.step(at(2), &mut signout.deletion), Step::Ready(())));
}

#[test]
fn an_invalidated_token_is_evicted_from_the_store_and_an_older_one_evicts_nothing() {
    let mut driver = driver();
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    finish(&mut driver, at(0), sending, Outcome::Response(token_ok("t", 3600)));
    assert!(matches!(
        driver.invalidate(at(1), &token("other", 3600)),
        Invalidated::NotCurrent
    ));
    let current = driver.token().cloned().expect("cached");
    assert!(matches!(driver.invalidate(at(1), &current), Invalidated::Evicted(None)));

    let mut driver = Driver::new(TokenSource::with_token(config(), current.clone(), [7; 32])).with_store();
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(1), &current) else {
        panic!("evicted from the store")
    };
    let eviction = work(driver.step(at(1), &mut evict));
    assert!(matches!(&eviction.task, Task::Evict(token, None) if token.secret() == "t"));
    assert!(driver.handle(at(1), eviction.ticket, Outcome::Done).is_none());
    assert!(matches!(driver.step(at(1), &mut evict), Step::Ready(())));
}

#[test]
fn background_refresh_waits_for_the_refresh_time_and_the_back_off() {
    let mut driver = Driver::new(TokenSource::new(builder().max_attempts(1).build().unwrap(), [7; 32]));
    assert_eq!(driver.background(at(0)), Background::Sleep(None));
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    assert_eq!(
        driver.background(at(0)),
        Background::Sleep(None),
        "not while a flight runs"
    );
    finish(&mut driver, at(0), sending, Outcome::Response(token_ok("t", 3600)));
    assert_eq!(driver.background(at(10)), Background::Sleep(Some(at(3300))));
    assert_eq!(driver.background(at(3300)), Background::Refresh);
    let refresh = work(driver.step(at(3300), &mut call));
    finish(&mut driver, at(3300), refresh, Outcome::Response(response(500, "")));
    // The cool-down after the failed round applies with no caller at all.
    match driver.background(at(3300)) {
        Background::Sleep(Some(until)) => assert!(until > at(3300)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forced_refresh_sends_though_the_token_is_fresh_and_returns_the_new_one() {
    let mut driver = driver();
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    finish(&mut driver, at(0), sending, Outcome::Response(token_ok("t1", 3600)));
    let mut refresh = driver.refresh(at(5)).expect("no cool-down");
    let sending = work(driver.step(at(5), &mut refresh));
    // Other callers share the forced round.
    assert!(matches!(driver.step(at(5), &mut call), Step::Wait { until: None }));
    finish(&mut driver, at(6), sending, Outcome::Response(token_ok("t2", 3600)));
    assert_eq!(ready(driver.step(at(6), &mut refresh)), "t2");
}

#[test]
fn the_assertion_file_is_read_by_one_caller_at_a_time_and_only_when_a_request_is_due() {
    let config = builder()
        .auth(client_credentials::ClientAuth::Assertion(
            client_credentials::AssertionSource::file("/run/token"),
        ))
        .build()
        .unwrap();
    let mut driver = Driver::new(TokenSource::new(config, [7; 32]));
    let (mut first, mut second) = (Call::token(), Call::token());
    let read = work(driver.step(at(0), &mut first));
    assert!(matches!(
        &read.task,
        Task::ReadAssertion { role: AssertionRole::ClientAssertion, source } if source.path().is_some()
    ));
    assert!(matches!(driver.step(at(0), &mut second), Step::Wait { until: None }));
    let jwt = jwt(&format!(r#"{{"exp":{}}}"#, START + 600));
    assert!(driver
        .handle(at(0), read.ticket, Outcome::Assertion(Some(Ok(jwt.clone()))))
        .is_none());
    let sending = work(driver.step(at(0), &mut first));
    let Task::Send(outgoing, _) = &sending.task else {
        panic!("a request")
    };
    assert_eq!(
        form_value(&outgoing.request, "client_assertion").as_deref(),
        Some(jwt.as_str())
    );
    finish(&mut driver, at(1), sending, Outcome::Response(token_ok("t", 3600)));
    // A fresh token needs no assertion: no read.
    assert_eq!(ready(driver.step(at(2), &mut second)), "t");
}

#[test]
fn a_round_starts_only_after_the_stores_pending_writes_have_landed() {
    let mut driver = Driver::new(TokenSource::with_token(config(), token("t", 3600), [7; 32])).with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    driver.handle(at(0), load.ticket, Outcome::Loaded(None));
    let current = driver.token().cloned().expect("cached");
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(1), &current) else {
        panic!("evicted from the store")
    };
    // The token call applies the eviction before the fleet turn could read the evicted token back.
    let eviction = work(driver.step(at(1), &mut call));
    assert!(matches!(eviction.task, Task::Evict(..)));
    assert!(matches!(driver.step(at(1), &mut evict), Step::Ready(())));
    let mut other = Call::token();
    assert!(matches!(driver.step(at(1), &mut other), Step::Wait { until: None }));
    assert!(driver.handle(at(1), eviction.ticket, Outcome::Done).is_none());
    assert!(matches!(
        work(driver.step(at(1), &mut other)).task,
        Task::TakeFleetTurn(_)
    ));
}

/// Steps `call` through a fleet turn answered `Fetch` and a request
/// answered with `secret`; returns the token cached after it.
fn fetch_through_the_fleet(driver: &mut Driver, now: Timestamp, call: &mut Call, secret: &str) -> AccessToken {
    let turn = work(driver.step(now, call));
    assert!(matches!(turn.task, Task::TakeFleetTurn(_)), "{:?}", turn.task);
    let sending = driver
        .handle(now, turn.ticket, Outcome::FleetTurn(None))
        .expect("the request");
    finish(driver, now, sending, Outcome::Response(token_ok(secret, 3600)));
    driver.token().cloned().expect("cached")
}

fn failed_with_rejection<T: std::fmt::Debug>(step: Step<T>) -> bool {
    matches!(step, Step::Failed(Error::TokenRejected))
}

#[test]
fn a_rejection_on_probation_is_reported_and_its_back_off_goes_to_the_store_with_the_eviction() {
    let mut driver = driver().with_store();
    let mut call = Call::token();
    let load = work(driver.step(at(0), &mut call));
    assert!(driver.handle(at(0), load.ticket, Outcome::Loaded(None)).is_none());
    let first = fetch_through_the_fleet(&mut driver, at(0), &mut call, "t1");
    // A first rejection: evicted with no back-off, nothing reported.
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(1), &first) else {
        panic!("evicted from the store")
    };
    let eviction = work(driver.step(at(1), &mut evict));
    assert!(matches!(&eviction.task, Task::Evict(token, None) if token.secret() == "t1"));
    assert!(finish(&mut driver, at(1), eviction, Outcome::Done).is_empty());
    assert!(matches!(driver.step(at(1), &mut evict), Step::Ready(())));

    // The next token is on probation: its rejection fails the round.
    let second = fetch_through_the_fleet(&mut driver, at(1), &mut call, "t2");
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(2), &second) else {
        panic!("evicted from the store")
    };
    let eviction = work(driver.step(at(2), &mut evict));
    let Task::Evict(token, Some(backoff)) = &eviction.task else {
        panic!("the back-off goes with the eviction: {:?}", eviction.task)
    };
    assert_eq!(token.secret(), "t2");
    assert_eq!(backoff.failures, 1);
    assert_eq!(Some(backoff.until), driver.source().retry_at());
    assert!(backoff.holds(at(2)));
    let mut next = driver.handle(at(2), eviction.ticket, Outcome::Done);
    let report = next.take().expect("the failed round is reported");
    assert!(matches!(
        report.task,
        Task::Report(Report::RoundFailed(Error::TokenRejected))
    ));
    assert!(driver.handle(at(2), report.ticket, Outcome::Done).is_none());
    assert!(matches!(driver.step(at(2), &mut evict), Step::Ready(())));
    assert!(failed_with_rejection(driver.step(at(2), &mut call)));
}

#[test]
fn without_a_store_a_round_failed_by_a_rejection_is_reported_too() {
    let mut driver = driver();
    let mut call = Call::token();
    let sending = work(driver.step(at(0), &mut call));
    finish(&mut driver, at(0), sending, Outcome::Response(token_ok("t1", 3600)));
    let first = driver.token().cloned().expect("cached");
    assert!(matches!(driver.invalidate(at(1), &first), Invalidated::Evicted(None)));
    let sending = work(driver.step(at(1), &mut call));
    finish(&mut driver, at(1), sending, Outcome::Response(token_ok("t2", 3600)));
    let second = driver.token().cloned().expect("cached");
    let Invalidated::Evicted(Some(mut report)) = driver.invalidate(at(2), &second) else {
        panic!("a report is due")
    };
    let reporting = work(driver.step(at(2), &mut report));
    assert!(matches!(
        reporting.task,
        Task::Report(Report::RoundFailed(Error::TokenRejected))
    ));
    assert!(driver.handle(at(2), reporting.ticket, Outcome::Done).is_none());
    assert!(matches!(driver.step(at(2), &mut report), Step::Ready(())));
    assert!(failed_with_rejection(driver.step(at(2), &mut call)));
}

#[test]
fn the_fleets_rejection_back_off_fails_the_round_at_once_without_a_request() {
    let mut driver = driver().with_store();
    let (mut call, mut other) = (Call::token(), Call::token());
    let load = work(driver.step(at(0), &mut call));
    assert!(driver.handle(at(0), load.ticket, Outcome::Loaded(None)).is_none());
    let turn = work(driver.step(at(0), &mut call));
    assert!(matches!(driver.step(at(0), &mut other), Step::Wait { until: None }));
    let held = Outcome::FleetHeldBack(SharedBackoff::new(at(20), 3));
    let mut next = driver.handle(at(0), turn.ticket, held);
    let mut names = Vec::new();
    while let Some(work) = next {
        if let Task::Report(report) = &work.task {
            assert!(
                matches!(report, Report::RoundFailed(Error::TokenRejected)),
                "{report:?}"
            );
        }
        names.push(task_name(&work.task));
        next = driver.handle(at(0), work.ticket, Outcome::Done);
    }
    assert_eq!(names, ["EndFetch", "Report"], "no request");
    // Every caller gets the error at once, until the fleet's time.
    assert!(failed_with_rejection(driver.step(at(0), &mut call)));
    assert!(failed_with_rejection(driver.step(at(19), &mut other)));
    assert_eq!(driver.source().retry_at(), Some(at(20)));
    assert!(matches!(
        work(driver.step(at(20), &mut call)).task,
        Task::TakeFleetTurn(_)
    ));
}

#[test]
fn what_the_fleet_imposes_is_capped_at_the_maximum_back_off() {
    let mut call = Call::token();
    // Ended while the answer came back: the round fails all the same (the
    // fleet's turn was not this process's), with this client's own step
    // for the fleet's count (2: 1 s, and up to 10 % jitter).
    let mut driver = self::driver().with_store();
    let load = work(driver.step(at(0), &mut call));
    assert!(driver.handle(at(0), load.ticket, Outcome::Loaded(None)).is_none());
    let turn = work(driver.step(at(10), &mut call));
    let ended = SharedBackoff::new(at(10), 2);
    assert_eq!(
        finish(&mut driver, at(10), turn, Outcome::FleetHeldBack(ended)),
        ["EndFetch", "Report"]
    );
    let retry_at = driver.source().retry_at().expect("held back");
    assert!(retry_at >= at(11) && retry_at <= at_ms(11_100), "{retry_at:?}");
    assert!(failed_with_rejection(driver.step(at(10), &mut call)));
    // Forged or from a clock far ahead: a year and a huge count.
    let mut driver = self::driver().with_store();
    let load = work(driver.step(at(0), &mut call));
    assert!(driver.handle(at(0), load.ticket, Outcome::Loaded(None)).is_none());
    let turn = work(driver.step(at(0), &mut call));
    let forged = SharedBackoff::new(at(365 * 24 * 3600), u32::MAX);
    finish(&mut driver, at(0), turn, Outcome::FleetHeldBack(forged));
    let retry_at = driver.source().retry_at().expect("held back");
    let max = config().retry().max_backoff;
    // The maximum step, and at most its 10 % jitter on top.
    assert!(retry_at <= at(0).saturating_add(max * 11 / 10), "{retry_at:?}");
    assert!(failed_with_rejection(driver.step(at(0), &mut call)));
    assert!(matches!(
        work(driver.step(retry_at, &mut call)).task,
        Task::TakeFleetTurn(_)
    ));
}

// ------------------------------------------------ calling out, outside the lock

/// An HSM stand-in: signs with the Ed25519 test key, counts its calls, and
/// panics if it is called while `inside` says a driver call runs (the
/// adapter's lock would be held).
struct Hsm {
    inner: JwtKey,
    inside: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    fail: bool,
}

impl Signer for Hsm {
    fn algorithm(&self) -> JwsAlgorithm {
        self.inner.algorithm()
    }
    fn public_jwk(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut jwk = self.inner.public_jwk().as_object().cloned().unwrap_or_default();
        jwk.remove("alg");
        jwk
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        assert!(
            !self.inside.load(Ordering::SeqCst),
            "the signer was called under the lock"
        );
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(SignError::new("the HSM is offline"));
        }
        self.inner.sign(message)
    }
}

/// A driver whose calls set `inside` while they run.
struct Locked {
    driver: Driver,
    inside: Arc<AtomicBool>,
}

impl Locked {
    fn step(&mut self, now: Timestamp, call: &mut Call) -> Step {
        self.inside.store(true, Ordering::SeqCst);
        let step = self.driver.step(now, call);
        self.inside.store(false, Ordering::SeqCst);
        step
    }
    fn handle(&mut self, now: Timestamp, work: Work, outcome: Outcome) -> Option<Work> {
        self.inside.store(true, Ordering::SeqCst);
        let next = self.driver.handle(now, work.ticket, outcome);
        self.inside.store(false, Ordering::SeqCst);
        next
    }
    fn dpop_proof(&mut self, now: Timestamp, uri: &str, token: &AccessToken) -> DpopProof {
        self.inside.store(true, Ordering::SeqCst);
        let proof = self.driver.dpop_proof(now, &http::Method::GET, uri, token, None);
        self.inside.store(false, Ordering::SeqCst);
        proof.expect("a proof").expect("DPoP is configured")
    }
}

/// A client authenticating with `private_key_jwt` and binding its tokens
/// with DPoP, both with the external key; the signer's call counter.
fn hsm_client(fail: bool, revocation: bool) -> (Locked, Arc<AtomicUsize>) {
    let inside = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let hsm = Hsm {
        inner: JwtKey::from_pem(include_str!("keys/ed25519.pem"), JwsAlgorithm::Ed25519).unwrap(),
        inside: inside.clone(),
        calls: calls.clone(),
        fail,
    };
    let key = JwtKey::from_signer(hsm).with_key_id("hsm-1");
    let mut builder = builder().auth(ClientAuth::PrivateKeyJwt(key.clone())).dpop(key);
    if revocation {
        builder = builder.revocation_endpoint("https://auth.example/oauth2/revoke");
    }
    let driver = Driver::new(TokenSource::new(builder.build().unwrap(), [7; 32]));
    (Locked { driver, inside }, calls)
}

fn dpop_token_ok(token: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"access_token":"{token}","token_type":"DPoP","expires_in":3600}}"#),
    )
}

/// The signature part of a compact JWS.
fn signature_of(jws: &str) -> String {
    jws.rsplit('.').next().unwrap_or_default().to_owned()
}

#[test]
fn an_external_signer_is_asked_through_tasks_and_never_from_inside_the_driver() {
    let (mut client, calls) = hsm_client(false, false);
    let (mut first, mut second) = (Call::token(), Call::token());
    // The client assertion first: the core built it, the adapter signs it.
    let signing = work(client.step(at(0), &mut first));
    let Task::Sign(assertion) = &signing.task else {
        panic!("a signature first, got {:?}", signing.task)
    };
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing signed inside the step");
    assert_eq!(assertion.key().key_id(), Some("hsm-1"));
    let assertion_signature = assertion.sign().unwrap();
    // Another caller waits for the flight meanwhile.
    assert!(matches!(client.step(at(0), &mut second), Step::Wait { until: None }));
    // Then the DPoP proof of the token request, then the request itself.
    let signing = client
        .handle(at(0), signing, Outcome::Signed(Ok(assertion_signature.clone())))
        .expect("the DPoP proof's signature");
    let Task::Sign(proof) = &signing.task else {
        panic!("the proof's signature, got {:?}", signing.task)
    };
    let proof_signature = proof.sign().unwrap();
    let sending = client
        .handle(at(0), signing, Outcome::Signed(Ok(proof_signature.clone())))
        .expect("the request");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let Task::Send(outgoing, 1) = &sending.task else {
        panic!("the token request, got {:?}", sending.task)
    };
    let sent_assertion = form_value(&outgoing.request, "client_assertion").unwrap();
    assert_eq!(signature_of(&sent_assertion), b64url_bytes(&assertion_signature));
    let sent_proof = outgoing.request.headers()["dpop"].to_str().unwrap().to_owned();
    assert_eq!(signature_of(&sent_proof), b64url_bytes(&proof_signature));
    let mut next = client.handle(at(1), sending, Outcome::Response(dpop_token_ok("t1")));
    while let Some(work) = next {
        next = client.handle(at(1), work, Outcome::Done);
    }
    assert_eq!(ready(client.step(at(1), &mut second)), "t1");
    assert_eq!(ready(client.step(at(1), &mut first)), "t1");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a cached token needs no signature");
}

/// The header and claims of a compact JWS, checked against the Ed25519 key
/// its header carries (`jwk`, as RFC 9449 §4.2 has it).
fn verified_proof(proof: &http::HeaderValue) -> (serde_json::Value, serde_json::Value) {
    use base64::Engine as _;
    use ed25519_dalek::Verifier as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = proof.to_str().unwrap().split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let x = b64.decode(header["jwk"]["x"].as_str().unwrap()).unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&b64.decode(parts[2]).unwrap()).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    public.verify(input.as_bytes(), &signature).expect("the proof verifies");
    (header, claims)
}

#[test]
fn an_external_dpop_signer_signs_resource_proofs_outside_the_driver_and_they_verify() {
    let (mut client, calls) = hsm_client(false, false);
    let token = AccessToken::builder("resource-token")
        .token_type("DPoP")
        .build()
        .unwrap();
    client.driver.remember_dpop_nonce("https://api.example/", "nonce-1");
    // Built under the lock (the nonce, the jti), signed after it.
    let DpopProof::Unsigned(signing) = client.dpop_proof(at(5), "https://api.example/items?page=2#top", &token) else {
        panic!("an external key's proof is left to sign")
    };
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing signed inside the driver");
    assert_eq!(signing.key().key_id(), Some("hsm-1"));
    let signature = signing.sign();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let proof = signing.finish(signature).expect("a DPoP header");
    let (header, claims) = verified_proof(&proof);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "Ed25519");
    assert_eq!(header["jwk"]["kty"], "OKP");
    assert_eq!(header["jwk"]["crv"], "Ed25519");
    assert_eq!(header.get("kid"), None, "the key itself, not its id");
    assert_eq!(header["jwk"].get("d"), None, "no private member");
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], "https://api.example/items");
    assert_eq!(claims["iat"], START + 5);
    assert_eq!(claims["ath"], client_credentials::dpop_ath("resource-token"));
    assert_eq!(claims["nonce"], "nonce-1", "the origin's remembered nonce");
    let jti = claims["jti"].as_str().expect("a jti").to_owned();
    assert!(!jti.is_empty());

    // Another origin has no nonce; every proof has a fresh jti.
    let DpopProof::Unsigned(signing) = client.dpop_proof(at(6), "https://other.example/", &token) else {
        panic!("an external key's proof is left to sign")
    };
    let signature = signing.sign();
    let (_, claims) = verified_proof(&signing.finish(signature).unwrap());
    assert_eq!(claims.get("nonce"), None);
    assert_ne!(claims["jti"].as_str(), Some(jti.as_str()));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failing_external_dpop_signer_fails_the_resource_proof_with_a_typed_error() {
    let (mut client, calls) = hsm_client(true, false);
    let token = AccessToken::builder("resource-token")
        .token_type("DPoP")
        .build()
        .unwrap();
    let DpopProof::Unsigned(signing) = client.dpop_proof(at(0), "https://api.example/", &token) else {
        panic!("an external key's proof is left to sign")
    };
    let signature = signing.sign();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(
        signing.finish(signature),
        Err(Error::ClientAuth(ClientAuthError::Signing(error))) if error.reason() == "the HSM is offline"
    ));
}

#[test]
fn a_failing_external_signer_fails_the_attempt_with_a_typed_error_and_sends_nothing() {
    let (mut client, calls) = hsm_client(true, false);
    let mut call = Call::token();
    let signing = work(client.step(at(0), &mut call));
    let Task::Sign(assertion) = &signing.task else {
        panic!("a signature first")
    };
    let signature = assertion.sign();
    assert!(signature.is_err());
    let reports = {
        let mut names = Vec::new();
        let mut next = client.handle(at(0), signing, Outcome::Signed(signature));
        while let Some(work) = next {
            names.push(task_name(&work.task));
            next = client.handle(at(0), work, Outcome::Done);
        }
        names
    };
    assert_eq!(reports, ["Report"], "the round's failure is reported; nothing is sent");
    match client.step(at(0), &mut call) {
        Step::Failed(client_credentials::Error::ClientAuth(ClientAuthError::Signing(error))) => {
            assert_eq!(error.reason(), "the HSM is offline")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A failed attempt like any other: the next one waits for the back-off.
    let retry_at = client.driver.source().retry_at().expect("a cool-down");
    assert!(retry_at > at(0));
    assert!(matches!(client.step(retry_at, &mut Call::token()), Step::Work(_)));
}

#[test]
fn a_signing_task_dropped_unfinished_is_a_failed_attempt_not_a_stuck_flight() {
    let (mut client, calls) = hsm_client(false, false);
    let mut call = Call::token();
    let signing = work(client.step(at(0), &mut call));
    assert!(matches!(signing.task, Task::Sign(_)));
    // The signer panicked, or the task was cancelled.
    client.driver.abandon(at(0), signing.ticket);
    assert!(matches!(
        client.step(at(0), &mut call),
        Step::Failed(client_credentials::Error::ClientAuth(ClientAuthError::Signing(_)))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_sign_outs_revocation_is_signed_outside_the_driver_too() {
    let (mut client, calls) = hsm_client(false, true);
    let mut call = Call::token();
    let mut next = Some(work(client.step(at(0), &mut call)));
    while let Some(work) = next.take() {
        let outcome = match &work.task {
            Task::Sign(signing) => Outcome::Signed(signing.sign()),
            Task::Send(..) => Outcome::Response(dpop_token_ok("t1")),
            _ => Outcome::Done,
        };
        next = client.handle(at(0), work, outcome);
    }
    assert_eq!(ready(client.step(at(0), &mut call)), "t1");
    let before = calls.load(Ordering::SeqCst);
    client.inside.store(true, Ordering::SeqCst);
    let signout = client.driver.signout(at(1));
    client.inside.store(false, Ordering::SeqCst);
    assert!(signout.revocation.is_none(), "not before its assertion is signed");
    let signing = signout.signing.expect("the revocation's assertion");
    assert_eq!(calls.load(Ordering::SeqCst), before);
    let signature = signing.sign();
    let revocation = client
        .driver
        .revocation_signed(at(1), signing, signature)
        .expect("the revocation");
    assert_eq!(revocation.kind, RequestKind::Revocation);
    assert_eq!(form_value(&revocation.request, "token").as_deref(), Some("t1"));
    assert!(form_value(&revocation.request, "client_assertion").is_some());
    let answer = Ok(response(200, ""));
    assert!(client.driver.handle_revocation(at(1), revocation.id, answer).is_ok());
}

#[test]
fn an_assertion_callback_runs_through_its_task_and_never_from_inside_the_driver() {
    let inside = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (watch, count) = (inside.clone(), calls.clone());
    let assertion = jwt(&format!(r#"{{"sub":"w","exp":{}}}"#, START + 600));
    let given = assertion.clone();
    let source = AssertionSource::callback(move || {
        assert!(!watch.load(Ordering::SeqCst), "the callback was called under the lock");
        count.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(given.clone())
    });
    let config = builder().auth(ClientAuth::Assertion(source)).build().unwrap();
    let mut client = Locked {
        driver: Driver::new(TokenSource::new(config, [7; 32])),
        inside,
    };
    let (mut first, mut second) = (Call::token(), Call::token());
    let read = work(client.step(at(0), &mut first));
    let Task::ReadAssertion {
        role: AssertionRole::ClientAssertion,
        source,
    } = &read.task
    else {
        panic!("the assertion is read first, got {:?}", read.task)
    };
    assert!(source.path().is_none(), "a callback source");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // One reader at a time.
    assert!(matches!(client.step(at(0), &mut second), Step::Wait { until: None }));
    let outcome = Outcome::Assertion(source.call());
    assert!(client.handle(at(0), read, outcome).is_none());
    let sending = work(client.step(at(0), &mut first));
    let Task::Send(outgoing, _) = &sending.task else {
        panic!("a request")
    };
    assert_eq!(
        form_value(&outgoing.request, "client_assertion").as_deref(),
        Some(assertion.as_str())
    );
    let mut next = client.handle(at(1), sending, Outcome::Response(token_ok("t", 3600)));
    while let Some(work) = next {
        next = client.handle(at(1), work, Outcome::Done);
    }
    assert_eq!(ready(client.step(at(2), &mut second)), "t");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a fresh token needs no assertion");
}
