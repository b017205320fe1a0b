//! `driver::Driver` scenarios: several callers, a simulated clock, and the
//! steps the driver hands out, as plain function calls.

mod common;

use client_credentials::driver::{Background, Call, Driver, Invalidated, Outcome, Report, Step, Task, Work};
use client_credentials::{AccessToken, RequestKind, TokenSource, TransportError, TransportErrorKind};
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
    assert!(driver.source().token().is_none());
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
    let current = driver.source().token().cloned().expect("cached");
    assert!(matches!(driver.invalidate(at(1), &current), Invalidated::Evicted(None)));

    let mut driver = Driver::new(TokenSource::with_token(config(), current.clone(), [7; 32])).with_store();
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(1), &current) else {
        panic!("evicted from the store")
    };
    let eviction = work(driver.step(at(1), &mut evict));
    assert!(matches!(&eviction.task, Task::Evict(token) if token.secret() == "t"));
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
    assert!(matches!(read.task, Task::ReadAssertionFile(_)));
    assert!(matches!(driver.step(at(0), &mut second), Step::Wait { until: None }));
    let jwt = jwt(&format!(r#"{{"exp":{}}}"#, START + 600));
    assert!(driver
        .handle(at(0), read.ticket, Outcome::AssertionFile(Some(Ok(jwt.clone()))))
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
    let current = driver.source().token().cloned().expect("cached");
    let Invalidated::Evicted(Some(mut evict)) = driver.invalidate(at(1), &current) else {
        panic!("evicted from the store")
    };
    // The token call applies the eviction before the fleet turn could read the evicted token back.
    let eviction = work(driver.step(at(1), &mut call));
    assert!(matches!(eviction.task, Task::Evict(_)));
    assert!(matches!(driver.step(at(1), &mut evict), Step::Ready(())));
    let mut other = Call::token();
    assert!(matches!(driver.step(at(1), &mut other), Step::Wait { until: None }));
    assert!(driver.handle(at(1), eviction.ticket, Outcome::Done).is_none());
    assert!(matches!(
        work(driver.step(at(1), &mut other)).task,
        Task::TakeFleetTurn(_)
    ));
}
