//! `driver::Driver` scenarios: several callers, a simulated clock, and the
//! steps the driver hands out, as plain function calls.

mod common;

use client_credentials::driver::{
    AssertionRole, Background, Call, Driver, Invalidated, Outcome, Report, Step, Task, Work,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use client_credentials::{
    AccessToken, AssertionSource, ClientAuth, ClientAuthError, JwsAlgorithm, JwtKey, RequestKind, SignError, Signer,
    Timestamp, TokenSource, TransportError, TransportErrorKind,
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
