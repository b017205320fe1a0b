//! `TokenSource` scenarios: a simulated clock, canned responses, and the
//! actions the machine asks for.

mod common;

use std::time::Duration;

use client_credentials::{
    AccessToken, Action, ClientAuth, Config, DiscoveryError, DiscoveryOrder, DpopError, Error, Event, RefreshTicket,
    RequestKind, Timestamp, TokenSource, TransportError, TransportErrorKind,
};
use common::*;

fn one_attempt() -> Config {
    builder().max_attempts(1).build().unwrap()
}

/// What the caller of a forced refresh gets, as an adapter's `refresh()`
/// loop asks: its round's error once that round has failed, else what
/// `poll` says.
fn poll_refresh(source: &mut TokenSource, now: Timestamp, ticket: RefreshTicket) -> Action<'_> {
    if source.refresh_failed(now, ticket).is_none() {
        return source.poll(now);
    }
    let source = &*source;
    Action::Failed(source.refresh_failed(now, ticket).expect("checked above"))
}

// ---------------------------------------------------------------- caching

#[test]
fn a_fresh_token_is_served_from_cache_without_requests() {
    let mut source = source();
    assert!(source.usable(at(0)).is_none());
    assert_eq!(source.refresh_at(), None);
    let out = send(&mut source, at(0));
    assert_eq!(out.kind, RequestKind::Token);
    // A second caller waits for the one request in flight.
    assert_eq!(wait(&mut source, at(0)), None);
    let event = source.handle_response(at(1), out.id, token_ok("t1", 3600)).unwrap();
    let Event::TokenUpdated(token) = event else {
        panic!("{event:?}")
    };
    assert_eq!(token.secret(), "t1");
    // Expiry is anchored at the poll that sent the request.
    assert_eq!(token.expires_at(), Some(at(3600)));
    for secs in [1, 2, 60, 1800, 3299] {
        assert_eq!(ready(&mut source, at(secs)).secret(), "t1");
    }
    assert_eq!(source.refresh_at(), Some(at(3300)));
    assert_eq!(source.usable(at(0)).map(AccessToken::secret), Some("t1"));
    assert_eq!(source.usable(at(3599)).map(AccessToken::secret), Some("t1"));
    assert!(source.usable(at(3600)).is_none());
}

#[test]
fn refresh_happens_at_expiry_minus_the_margin_or_half_the_lifetime() {
    // (lifetime, margin, refresh after)
    let cases = [
        (3600, 300, 3300),
        (60, 300, 30),
        (600, 300, 300),
        (601, 300, 301),
        (2, 300, 1),
        (3600, 0, 3600),
        (100, 10, 90),
    ];
    for (lifetime, margin, due) in cases {
        let config = builder().refresh_margin(Duration::from_secs(margin)).build().unwrap();
        let mut source = TokenSource::new(config, [7; 32]);
        fetch(&mut source, at(0), "t", lifetime);
        if due > 0 {
            ready(&mut source, at_ms(due * 1000 - 1));
        }
        let out = send(&mut source, at(due));
        assert_eq!(out.kind, RequestKind::Token, "lifetime {lifetime}, margin {margin}");
    }
}

#[test]
fn a_due_token_is_served_while_its_refresh_is_in_flight_then_replaced() {
    let mut source = source();
    fetch(&mut source, at(0), "old", 3600);
    let out = send(&mut source, at(3300));
    // Other callers keep getting the old token, without a second request.
    for secs in [3300, 3400, 3599] {
        assert_eq!(ready(&mut source, at(secs)).secret(), "old");
    }
    // Past its expiry it is no longer served: wait for the request.
    assert_eq!(wait(&mut source, at(3600)), None);
    source.handle_response(at(3601), out.id, token_ok("new", 3600)).unwrap();
    assert_eq!(ready(&mut source, at(3601)).secret(), "new");
    assert_eq!(source.refresh_at(), Some(at(3300 + 3300)));
}

#[test]
fn a_token_without_expiry_is_served_until_invalidated() {
    let token = AccessToken::builder("forever").build().unwrap();
    let mut source = TokenSource::with_token(config(), token.clone(), [7; 32]);
    assert_eq!(source.refresh_at(), Some(Timestamp::MAX));
    assert_eq!(
        ready(&mut source, Timestamp::from_unix_secs(u64::MAX / 1000)).secret(),
        "forever"
    );
    assert!(source.invalidate(at(0), &token));
    send(&mut source, at(0));
}

#[test]
fn a_seeded_token_is_used_until_due_and_an_expired_one_refreshed_at_once() {
    let token = AccessToken::builder("stored")
        .received_at(at(0))
        .expires_at(at(3600))
        .build()
        .unwrap();
    let mut source = TokenSource::with_token(config(), token.clone(), [7; 32]);
    assert_eq!(ready(&mut source, at(10)).secret(), "stored");
    send(&mut source, at(3300));

    let mut source = TokenSource::with_token(config(), token, [7; 32]);
    send(&mut source, at(4000));
}

#[test]
fn clock_skew_moves_expiry_earlier() {
    let config = builder().clock_skew(Duration::from_secs(60)).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    fetch(&mut source, at(0), "t", 3600);
    assert!(source.usable(at(3539)).is_some());
    assert!(source.usable(at(3540)).is_none());
    ready(&mut source, at(3239));
    send(&mut source, at(3240));
}

// ------------------------------------------------------------ request ids

#[test]
fn results_for_unknown_or_stale_ids_are_rejected_and_change_nothing() {
    let mut source = source();
    let first = send(&mut source, at(0));
    let bogus = {
        // An id from another source is not this source's request.
        let mut other = source_with_ids_ahead();
        send(&mut other, at(0)).id
    };
    assert_ne!(bogus, first.id);
    let e = source
        .handle_response(at(1), bogus, token_ok("forged", 3600))
        .unwrap_err();
    assert_eq!(e, Error::UnknownRequest { id: bogus });
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("not the request in flight"), "{e}");
    let e = source
        .handle_transport_error(at(1), bogus, TransportErrorKind::Io)
        .unwrap_err();
    assert_eq!(e, Error::UnknownRequest { id: bogus });
    assert!(!source.abandon(bogus));
    // Still in flight, nothing cached.
    assert!(source.usable(at(0)).is_none());
    assert_eq!(wait(&mut source, at(1)), None);

    source.handle_response(at(1), first.id, token_ok("real", 3600)).unwrap();
    // A duplicate delivery of the same result is rejected too.
    let e = source
        .handle_response(at(2), first.id, token_ok("again", 3600))
        .unwrap_err();
    assert_eq!(e, Error::UnknownRequest { id: first.id });
    assert_eq!(ready(&mut source, at(2)).secret(), "real");
}

fn source_with_ids_ahead() -> TokenSource {
    let mut other = source();
    let out = send(&mut other, at(0));
    other.abandon(out.id);
    other
}

#[test]
fn abandon_frees_the_slot_without_counting_an_attempt() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let first = send(&mut source, at(0));
    assert!(source.abandon(first.id));
    assert!(!source.abandon(first.id));
    // Not counted: with one attempt per round, the next request still goes out.
    let second = send(&mut source, at(0));
    assert_ne!(second.id, first.id);
    let e = source
        .handle_response(at(1), first.id, token_ok("late", 3600))
        .unwrap_err();
    assert_eq!(e, Error::UnknownRequest { id: first.id });
    source.handle_response(at(1), second.id, token_ok("t", 3600)).unwrap();
    assert_eq!(ready(&mut source, at(1)).secret(), "t");
}

// ------------------------------------------------------ failures and retry

#[test]
fn a_failed_or_malformed_refresh_never_evicts_a_usable_token() {
    let bad_answers = [
        response(200, "<html>maintenance</html>"),
        response(200, r#"{"token_type":"Bearer"}"#),
        response(200, r#"{"access_token":"a b"}"#),
        response(400, r#"{"error":"invalid_scope"}"#),
        response(401, r#"{"error":"invalid_client"}"#),
        response(503, ""),
        response(200, r#"{"access_token":"x","#),
    ];
    for answer in bad_answers {
        let status = answer.status();
        let mut source = TokenSource::new(one_attempt(), [7; 32]);
        fetch(&mut source, at(0), "good", 3600);
        let out = send(&mut source, at(3300));
        let event = source.handle_response(at(3301), out.id, answer).unwrap();
        let Event::RefreshFailed { error, .. } = event else {
            panic!("{status}: {event:?}")
        };
        assert!(!error.to_string().is_empty());
        assert_eq!(ready(&mut source, at(3301)).secret(), "good", "{status}");
        assert!(source.usable(at(3599)).is_some(), "{status}");
        assert_eq!(source.usable(at(3301)).map(AccessToken::secret), Some("good"));
    }
    // A transport failure likewise.
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    fetch(&mut source, at(0), "good", 3600);
    let out = send(&mut source, at(3300));
    let event = source.handle_transport_error(at(3301), out.id, TransportErrorKind::Timeout);
    assert!(
        matches!(
            event,
            Ok(Event::RefreshFailed {
                error: Error::Transport(_),
                ..
            })
        ),
        "{event:?}"
    );
    // Served during the cool-down (at least the first back-off step).
    assert_eq!(ready(&mut source, at_ms(3_301_200)).secret(), "good");
}

#[test]
fn retryable_failures_back_off_exponentially_then_fail_the_round_and_cool_down() {
    for first_failure in [
        Failure::Status(500),
        Failure::Status(502),
        Failure::Status(503),
        Failure::Status(504),
        Failure::Status(429),
        Failure::Status(408),
        Failure::Transport(TransportErrorKind::Connect),
        Failure::Transport(TransportErrorKind::Timeout),
        Failure::Transport(TransportErrorKind::Io),
        Failure::Transport(TransportErrorKind::Other),
    ] {
        let mut source = source();
        let mut now = at(0);
        let mut previous_step = Duration::ZERO;
        for attempt in 1..=3u32 {
            let out = send(&mut source, now);
            let result = first_failure.deliver(&mut source, now, out.id);
            if attempt < 3 {
                let Ok(Event::RetryScheduled {
                    at: retry_at, error, ..
                }) = result
                else {
                    panic!("{first_failure:?} attempt {attempt}: {result:?}")
                };
                assert!(error.is_retryable());
                // 0.5 s, 1 s, ... with up to 10 % jitter on top: in [step, 1.1 step].
                let step = Duration::from_millis(500) * 2u32.pow(attempt - 1);
                let delay = retry_at.saturating_duration_since(now);
                assert!(delay >= step && delay <= step * 11 / 10, "attempt {attempt}: {delay:?}");
                assert_eq!(source.retry_at(), Some(retry_at));
                assert!(step > previous_step);
                previous_step = step;
                // Nothing to serve: wait until the retry time, then send.
                assert_eq!(wait(&mut source, now), Some(retry_at));
                assert_eq!(
                    wait(&mut source, retry_at.saturating_sub(Duration::from_millis(1))),
                    Some(retry_at)
                );
                now = retry_at;
            } else {
                let error = result.unwrap_err();
                assert!(error.is_retryable(), "{error:?}");
                // Cool-down: callers get the error at once, no request goes out.
                let until = source.retry_at().expect("a cool-down");
                // The failure count carried on: the third step, 2 s.
                assert!(until >= now.saturating_add(Duration::from_secs(2)), "{until:?}");
                for _ in 0..100 {
                    assert_eq!(failed(&mut source, now), error);
                }
                assert_eq!(
                    failed(&mut source, until.saturating_sub(Duration::from_millis(1))),
                    error
                );
                // After the cool-down the next poll starts a new round.
                let out = send(&mut source, until);
                assert_eq!(source.retry_at(), None);
                source.handle_response(until, out.id, token_ok("t", 3600)).unwrap();
                assert_eq!(ready(&mut source, until).secret(), "t");
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Status(u16),
    Transport(TransportErrorKind),
}

impl Failure {
    fn deliver(
        self,
        source: &mut TokenSource,
        now: Timestamp,
        id: client_credentials::RequestId,
    ) -> Result<Event, Error> {
        match self {
            Failure::Status(status) => source.handle_response(now, id, response(status, "")),
            Failure::Transport(kind) => {
                source.handle_transport_error(now, id, TransportError::new(kind, "simulated failure"))
            }
        }
    }
}

#[test]
fn oauth_client_errors_are_not_retried() {
    for (status, code) in [
        (401, "invalid_client"),
        (400, "invalid_scope"),
        (400, "invalid_request"),
        (400, "unauthorized_client"),
        (400, "invalid_target"),
        (400, "unsupported_grant_type"),
    ] {
        let mut source = source();
        let out = send(&mut source, at(0));
        let error = source
            .handle_response(at(0), out.id, oauth_error(status, code))
            .unwrap_err();
        assert_eq!(error.oauth_code().map(|c| c.as_str()), Some(code));
        assert!(error.to_string().starts_with(code), "{error}");
        assert_eq!(failed(&mut source, at(0)), error);
        assert!(source.retry_at().is_some());
    }
}

#[test]
fn retry_after_seconds_is_a_floor_with_at_most_ten_percent_on_top() {
    for (status, seconds) in [(503, 10u64), (429, 3), (503, 0), (429, 30)] {
        let mut source = source();
        // Answered at once: a slow answer would lengthen the step (the
        // failures have lasted since the request was sent).
        let out = send(&mut source, at(6));
        let answer = with_header(response(status, ""), "retry-after", &seconds.to_string());
        let Ok(Event::RetryScheduled { at: retry_at, .. }) = source.handle_response(at(6), out.id, answer) else {
            panic!("{status} {seconds}")
        };
        let floor = at(6).saturating_add(Duration::from_secs(seconds));
        // The first back-off step (0.5 s) is a floor too; jitter adds at most 10 %.
        let ceiling = at(6).saturating_add(Duration::from_millis((seconds * 1000).max(500) * 11 / 10));
        assert!(
            retry_at >= floor && retry_at <= ceiling,
            "{retry_at:?} not in [{floor:?}, {ceiling:?}]"
        );
        assert_eq!(
            wait(&mut source, floor.saturating_sub(Duration::from_millis(1))),
            Some(retry_at)
        );
        send(&mut source, retry_at);
    }
}

#[test]
fn retry_after_http_date_is_a_floor() {
    // START is Tue, 14 Nov 2023 22:13:20 GMT.
    let mut source = source();
    let out = send(&mut source, at(0));
    let answer = with_header(response(503, ""), "retry-after", "Tue, 14 Nov 2023 22:13:40 GMT");
    let Ok(Event::RetryScheduled { at: retry_at, .. }) = source.handle_response(at(0), out.id, answer) else {
        panic!()
    };
    assert!(retry_at >= at(20) && retry_at <= at(22), "{retry_at:?}");
    // A date in the past or garbage falls back to the back-off.
    for value in ["Tue, 14 Nov 2023 22:00:00 GMT", "soon", "-1"] {
        let mut source = source_fresh();
        let out = send(&mut source, at(0));
        let answer = with_header(response(503, ""), "retry-after", value);
        let Ok(Event::RetryScheduled { at: retry_at, .. }) = source.handle_response(at(0), out.id, answer) else {
            panic!()
        };
        assert!(
            retry_at >= at_ms(500) && retry_at <= at_ms(550),
            "{value}: {retry_at:?}"
        );
    }
}

fn source_fresh() -> TokenSource {
    source()
}

#[test]
fn a_retry_after_beyond_the_back_off_cap_ends_the_round_and_is_still_honoured() {
    let mut source = source();
    let out = send(&mut source, at(0));
    let answer = with_header(response(503, ""), "retry-after", "120");
    let error = source.handle_response(at(0), out.id, answer).unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let until = source.retry_at().unwrap();
    assert!(until >= at(120) && until <= at(132), "{until:?}");
    assert_eq!(failed(&mut source, at(119)), error);
    send(&mut source, until);
}

#[test]
fn a_usable_token_is_served_through_back_off_and_cool_down() {
    let mut source = source();
    fetch(&mut source, at(0), "good", 3600);
    let mut now = at(3300);
    for attempt in 1..=3 {
        let out = send(&mut source, now);
        let answer = with_header(response(503, ""), "retry-after", "5");
        match source.handle_response(now, out.id, answer) {
            Ok(Event::RetryScheduled { at: retry_at, .. }) if attempt < 3 => {
                assert_eq!(ready(&mut source, now).secret(), "good");
                assert!(retry_at >= now.saturating_add(Duration::from_secs(5)));
                now = retry_at;
            }
            Ok(Event::RefreshFailed { error, .. }) if attempt == 3 => {
                assert_eq!(error.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    // Served during the cool-down (at least Retry-After, and at least as
    // long as the failures have lasted); the next round starts after it.
    let until = source.retry_at().unwrap();
    assert!(until >= now.saturating_add(Duration::from_secs(10)), "{until:?}");
    assert_eq!(ready(&mut source, now).secret(), "good");
    assert_eq!(
        ready(&mut source, until.saturating_sub(Duration::from_millis(1))).secret(),
        "good"
    );
    send(&mut source, until);
}

#[test]
fn when_the_token_expires_during_a_failing_round_callers_get_the_error() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    fetch(&mut source, at(0), "good", 60);
    let out = send(&mut source, at(30));
    let error = source.handle_response(at(61), out.id, response(500, "")).unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(failed(&mut source, at(61)), error);
}

// ------------------------------------------- invalidate, force, sign-out

#[test]
fn invalidate_only_evicts_the_current_token() {
    let mut source = source();
    let old = fetch(&mut source, at(0), "old", 600);
    let out = send(&mut source, at(300));
    source.handle_response(at(300), out.id, token_ok("new", 600)).unwrap();
    // A caller still holding the old token does not evict the new one.
    assert!(!source.invalidate(at(300), &old));
    assert_eq!(ready(&mut source, at(301)).secret(), "new");
    let current = ready(&mut source, at(301));
    assert!(source.invalidate(at(301), &current));
    assert!(source.usable(at(301)).is_none());
    assert_eq!(source.refresh_at(), None);
    assert!(!source.invalidate(at(301), &current));
    let out = send(&mut source, at(301));
    assert_eq!(out.kind, RequestKind::Token);
}

#[test]
fn force_refresh_fetches_now_and_falls_back_to_the_old_token_on_failure() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    fetch(&mut source, at(0), "old", 3600);
    let ticket = source.force_refresh(at(10)).unwrap();
    assert_eq!(source.refresh_at(), None);
    let out = match poll_refresh(&mut source, at(10), ticket) {
        Action::Send(out) => out,
        other => panic!("{other:?}"),
    };
    // The forced-out token is not handed out while the new one is fetched.
    assert_eq!(wait(&mut source, at(10)), None);
    let event = source.handle_response(at(11), out.id, response(500, "")).unwrap();
    assert!(matches!(event, Event::RefreshFailed { .. }), "{event:?}");
    // Other callers get the old token again; the refresh learns its round failed.
    assert_eq!(ready(&mut source, at(11)).secret(), "old");
    match poll_refresh(&mut source, at(11), ticket) {
        Action::Failed(error) => assert_eq!(error.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR)),
        other => panic!("{other:?}"),
    }
    // Still so after the cool-down: that refresh is over.
    let until = source.retry_at().unwrap();
    assert!(matches!(poll_refresh(&mut source, until, ticket), Action::Failed(_)));

    // A new refresh after the cool-down sends at once and ends with the new token.
    let ticket = source.force_refresh(until).unwrap();
    let out = match poll_refresh(&mut source, until, ticket) {
        Action::Send(out) => out,
        other => panic!("{other:?}"),
    };
    source.handle_response(until, out.id, token_ok("new", 3600)).unwrap();
    match poll_refresh(&mut source, until, ticket) {
        Action::Ready(token) => assert_eq!(token.secret(), "new"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ready(&mut source, until).secret(), "new");
    // Without a token, force_refresh is harmless: the next poll fetches.
    let mut empty = source_fresh();
    let ticket = empty.force_refresh(at(0)).unwrap();
    assert!(matches!(poll_refresh(&mut empty, at(0), ticket), Action::Send(_)));
}

#[test]
fn force_refresh_judges_the_cool_down_at_the_time_it_is_given() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    fetch(&mut source, at(0), "old", 3600);
    // Outside a cool-down: the next poll sends at once.
    let ticket = source.force_refresh(at(10)).unwrap();
    let out = match poll_refresh(&mut source, at(10), ticket) {
        Action::Send(out) => out,
        other => panic!("{other:?}"),
    };
    let event = source.handle_response(at(11), out.id, response(500, "")).unwrap();
    let Event::RefreshFailed { error, retry_at, .. } = event else {
        panic!("{event:?}")
    };
    // During the cool-down: the round's error, and the old token still served.
    assert_eq!(ready(&mut source, at(11)).secret(), "old");
    assert_eq!(source.force_refresh(at(11)), Err(error.clone()));
    // Up to its last millisecond, whatever time the source saw last.
    assert_eq!(ready(&mut source, at(20)).secret(), "old");
    let last = Timestamp::from_unix_millis(retry_at.as_unix_millis() - 1);
    assert_eq!(source.force_refresh(last), Err(error));
    assert_eq!(ready(&mut source, at(11)).secret(), "old");
    // At its end (though no poll has seen that time yet): sends at once.
    let ticket = source.force_refresh(retry_at).unwrap();
    assert!(matches!(poll_refresh(&mut source, retry_at, ticket), Action::Send(_)));
}

#[test]
fn a_refresh_learns_the_outcome_of_a_round_another_caller_performed() {
    let mut source = source();
    fetch(&mut source, at(0), "old", 3600);
    // A caller's refresh starts; another caller performs the request.
    let ticket = source.force_refresh(at(10)).unwrap();
    let out = send(&mut source, at(10));
    assert!(matches!(
        poll_refresh(&mut source, at(10), ticket),
        Action::Wait { until: None }
    ));
    // A retry within the round: still waiting, old token withheld from both.
    let event = source.handle_response(at(10), out.id, response(503, "")).unwrap();
    let Event::RetryScheduled { at: retry_at, .. } = event else {
        panic!("{event:?}")
    };
    assert!(matches!(poll_refresh(&mut source, at(10), ticket), Action::Wait { until: Some(t) } if t == retry_at));
    let out = send(&mut source, retry_at);
    source
        .handle_response(retry_at, out.id, oauth_error(401, "invalid_client"))
        .unwrap();
    assert_eq!(ready(&mut source, retry_at).secret(), "old");
    match poll_refresh(&mut source, retry_at, ticket) {
        Action::Failed(error) => assert_eq!(error.oauth_code().map(|c| c.as_str()), Some("invalid_client")),
        other => panic!("{other:?}"),
    }
    // A refresh joining a round already running waits for that round.
    let mut source = source_fresh();
    fetch(&mut source, at(0), "old", 3600);
    let out = send(&mut source, at(3300));
    let ticket = source.force_refresh(at(3300)).unwrap();
    assert!(matches!(
        poll_refresh(&mut source, at(3300), ticket),
        Action::Wait { until: None }
    ));
    source.handle_response(at(3301), out.id, token_ok("new", 3600)).unwrap();
    assert!(matches!(poll_refresh(&mut source, at(3301), ticket), Action::Ready(t) if t.secret() == "new"));
}

#[test]
fn without_a_usable_token_a_failed_round_is_reported_at_once_until_the_cool_down_ends() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let out = send(&mut source, at(0));
    let error = source.handle_response(at(0), out.id, response(503, "")).unwrap_err();
    let until = source.retry_at().unwrap();
    // Every caller, however many, gets the error without a request.
    for ms in (0..until.as_unix_millis() - at(0).as_unix_millis()).step_by(7) {
        assert_eq!(failed(&mut source, at_ms(ms)), error);
    }
    // Time passing starts nothing; the first poll after the cool-down does.
    assert_eq!(source.retry_at(), Some(until));
    send(&mut source, until.saturating_add(Duration::from_secs(3600)));
    assert_eq!(source.retry_at(), None);
}

#[test]
fn invalidate_during_a_cool_down_does_not_lift_it() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let token = fetch(&mut source, at(0), "old", 3600);
    let out = send(&mut source, at(3300));
    source.handle_response(at(3300), out.id, response(500, "")).unwrap();
    assert!(source.invalidate(at(3300), &token));
    let error = failed(&mut source, at(3300));
    assert_eq!(error.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(source.force_refresh(at(3300)), Err(error));
    let until = source.retry_at().unwrap();
    send(&mut source, until);
}

#[test]
fn signout_revokes_the_token_and_rejects_results_in_flight() {
    let config = builder()
        .revocation_endpoint("https://auth.example/oauth2/revoke")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    fetch(&mut source, at(0), "tok-1", 3600);
    let in_flight = {
        source.force_refresh(at(10)).unwrap();
        send(&mut source, at(10))
    };
    let revoke = source.signout(at(10)).expect("a revocation request");
    assert_eq!(revoke.kind, RequestKind::Revocation);
    assert_eq!(revoke.request.method(), http::Method::POST);
    assert_eq!(revoke.request.uri(), "https://auth.example/oauth2/revoke");
    assert_eq!(
        form(&revoke.request),
        [("token", "tok-1"), ("token_type_hint", "access_token")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(
        basic_decoded(&revoke.request),
        (CLIENT_ID.to_owned(), SECRET.to_owned())
    );
    assert!(source.usable(at(10)).is_none());
    // The token request from before the sign-out is rejected.
    let e = source
        .handle_response(at(11), in_flight.id, token_ok("late", 3600))
        .unwrap_err();
    assert_eq!(e, Error::UnknownRequest { id: in_flight.id });
    assert!(source.usable(at(11)).is_none());
    let event = source.handle_response(at(11), revoke.id, response(200, ""));
    assert!(matches!(event, Ok(Event::Revoked)), "{event:?}");
    // A new token is fetched on demand.
    send(&mut source, at(12));
}

#[test]
fn signout_revokes_the_refresh_token_when_there_is_one() {
    let config = builder()
        .auth(ClientAuth::Post)
        .revocation_endpoint("https://auth.example/revoke")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let body = r#"{"access_token":"at","expires_in":60,"refresh_token":"rt"}"#;
    source.handle_response(at(0), out.id, response(200, body)).unwrap();
    let revoke = source.signout(at(1)).unwrap();
    let pairs = form(&revoke.request);
    assert!(pairs.contains(&("token".into(), "rt".into())), "{pairs:?}");
    assert!(
        pairs.contains(&("token_type_hint".into(), "refresh_token".into())),
        "{pairs:?}"
    );
    assert!(pairs.contains(&("client_secret".into(), SECRET.into())), "{pairs:?}");
    // A failed revocation is reported.
    let e = source
        .handle_response(at(1), revoke.id, oauth_error(400, "unsupported_token_type"))
        .unwrap_err();
    assert_eq!(e.oauth_code().map(|c| c.as_str()), Some("unsupported_token_type"));
}

#[test]
fn signout_without_a_revocation_endpoint_or_token_sends_nothing() {
    let mut source = source();
    fetch(&mut source, at(0), "t", 3600);
    assert!(source.signout(at(1)).is_none());
    assert!(source.usable(at(1)).is_none());
    send(&mut source, at(1));

    let config = builder()
        .revocation_endpoint("https://auth.example/revoke")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    assert!(source.signout(at(1)).is_none());
    send(&mut source, at(0));
}

/// A sign-out drops the token request in flight; the dropped request counts
/// as a failed attempt, so a caller asking again waits out a back-off step,
/// and once the round's attempts are spent callers get the error: sign-outs
/// cannot make the client send without pause to a provider that never answers.
#[test]
fn a_token_request_dropped_by_signout_counts_as_a_failed_attempt() {
    let mut source = source();
    let mut now = at(0);
    let mut gaps = Vec::new();
    let error = loop {
        let dropped = send(&mut source, now);
        assert!(source.signout(now).is_none());
        // Its late answer changes nothing.
        let late = source.handle_response(now, dropped.id, token_ok("late", 3600));
        assert_eq!(late.unwrap_err(), Error::UnknownRequest { id: dropped.id });
        match source.poll(now) {
            Action::Wait { until: Some(until) } => {
                gaps.push(until.as_unix_millis() - now.as_unix_millis());
                now = until;
            }
            Action::Failed(error) => break error.clone(),
            other => panic!("expected a back-off or the round's error, got {other:?}"),
        }
    };
    assert!(
        matches!(&error, Error::Transport(e) if e.message().contains("sign-out")),
        "{error}"
    );
    assert!(!gaps.is_empty() && gaps.iter().all(|gap| *gap >= 250), "{gaps:?}");
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "the waits escalate: {gaps:?}");
    let retry_at = source.retry_at().expect("a cool-down");
    assert!(retry_at > now);
    send(&mut source, retry_at);
}

#[test]
fn a_revocation_transport_error_is_returned() {
    let config = builder()
        .revocation_endpoint("https://auth.example/revoke")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    fetch(&mut source, at(0), "t", 3600);
    let revoke = source.signout(at(1)).unwrap();
    let e = source
        .handle_transport_error(at(1), revoke.id, TransportErrorKind::Connect)
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)));
    send(&mut source, at(2));
}

// ------------------------------------------------ rejections by a resource

/// Fetches a token at `now` for a source that is due to send (no token, or
/// one just rejected), returning it.
fn refetch(source: &mut TokenSource, now: Timestamp, token: &str) -> AccessToken {
    let out = send(source, now);
    match source.handle_response(now, out.id, token_ok(token, 3600)) {
        Ok(Event::TokenUpdated(token)) => token,
        other => panic!("expected TokenUpdated, got {other:?}"),
    }
}

#[test]
fn a_rejected_token_is_refetched_at_once_but_a_rejected_new_one_ends_the_round() {
    let mut source = source();
    let first = fetch(&mut source, at(0), "t1", 3600);
    ready(&mut source, at(600));
    // A token served for ten minutes, then rejected: fetched again at once.
    assert!(source.invalidate(at(600), &first));
    let second = refetch(&mut source, at(600), "t2");
    // The token just fetched is rejected too: that round failed.
    assert!(source.invalidate(at(600), &second));
    let error = failed(&mut source, at(600));
    assert_eq!(error, Error::TokenRejected);
    assert!(!error.is_retryable());
    let until = source.retry_at().expect("a back-off");
    assert!(until >= at_ms(600_500), "{until:?}");
    for ms in [600_000, 600_100, until.as_unix_millis() - START * 1000 - 1] {
        assert_eq!(failed(&mut source, at_ms(ms)), error, "no request during the back-off");
    }
    // The back-off escalates as for a provider that fails.
    let third = refetch(&mut source, until, "t3");
    assert!(source.invalidate(until, &third));
    let next = source.retry_at().expect("a back-off");
    assert!(
        next.saturating_duration_since(until) >= Duration::from_secs(1),
        "{until:?} then {next:?}"
    );
}

#[test]
fn a_burst_of_rejections_costs_at_most_two_token_requests() {
    let mut source = source();
    let mut sent = 0;
    // Twenty calls at one instant, each rejected by the resource and retried once.
    for _ in 0..20 {
        for _attempt in 0..2 {
            let token = match source.poll(at(0)) {
                Action::Ready(token) => token.clone(),
                Action::Send(out) => {
                    sent += 1;
                    match source.handle_response(at(0), out.id, token_ok(&format!("t{sent}"), 3600)) {
                        Ok(Event::TokenUpdated(token)) => token,
                        other => panic!("{other:?}"),
                    }
                }
                Action::Failed(_) => break,
                Action::Wait { until } => panic!("a caller was held until {until:?}"),
            };
            source.invalidate(at(0), &token);
        }
    }
    assert_eq!(sent, 2);
}

#[test]
fn a_token_never_rejected_keeps_being_served() {
    let mut source = source();
    let first = fetch(&mut source, at(0), "t1", 3600);
    assert!(source.invalidate(at(0), &first));
    let second = refetch(&mut source, at(1), "t2");
    // Callers still holding the first token report it again: nothing changes.
    for _ in 0..10 {
        assert!(!source.invalidate(at(1), &first));
    }
    assert_eq!(ready(&mut source, at(2)).secret(), second.secret());
    assert_eq!(source.retry_at(), None);
}

#[test]
fn a_new_token_rejected_after_the_longest_back_off_is_refetched_at_once() {
    let mut source = source();
    let first = fetch(&mut source, at(0), "t1", 3600);
    assert!(source.invalidate(at(0), &first));
    let second = refetch(&mut source, at(0), "t2");
    // Served for longer than the longest back-off step (30 s): proven.
    ready(&mut source, at(31));
    assert!(source.invalidate(at(31), &second));
    refetch(&mut source, at(31), "t3");
}

#[test]
fn a_token_that_lived_to_its_refresh_ends_the_rejection_streak() {
    let mut source = source();
    let first = fetch(&mut source, at(0), "t1", 3600);
    assert!(source.invalidate(at(0), &first));
    refetch(&mut source, at(0), "t2");
    // Refreshed as usual: its successor is rejected and fetched again at once.
    let third = refetch(&mut source, at(3300), "t3");
    assert!(source.invalidate(at(3300), &third));
    refetch(&mut source, at(3300), "t4");
}

#[test]
fn a_token_fetched_while_the_provider_failed_is_on_probation() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let out = send(&mut source, at(0));
    source.handle_response(at(0), out.id, response(503, "")).unwrap_err();
    let until = source.retry_at().unwrap();
    let token = refetch(&mut source, until, "t1");
    // Rejected at once: the failing streak goes on, with its back-off.
    assert!(source.invalidate(until, &token));
    assert_eq!(failed(&mut source, until), Error::TokenRejected);
    let next = source.retry_at().unwrap();
    assert!(
        next.saturating_duration_since(until) >= Duration::from_secs(1),
        "{next:?}"
    );
}

// ------------------------------------------------------------------ DPoP

fn dpop_source() -> TokenSource {
    let key =
        client_credentials::JwtKey::from_pem(include_str!("keys/ec.pem"), client_credentials::JwsAlgorithm::Es256)
            .unwrap();
    TokenSource::new(builder().dpop(key).build().unwrap(), [7; 32])
}

#[test]
fn with_dpop_a_bearer_token_is_a_typed_error_and_nothing_is_cached() {
    for token_type in [r#""Bearer""#, r#""bearer""#, "null", r#""N_A""#] {
        let mut source = dpop_source();
        let out = send(&mut source, at(0));
        let body = format!(r#"{{"access_token":"t1","token_type":{token_type},"expires_in":60}}"#);
        let error = source.handle_response(at(0), out.id, response(200, body)).unwrap_err();
        assert!(
            matches!(&error, Error::Dpop(DpopError::UnboundToken { .. })),
            "{token_type}: {error:?}"
        );
        assert!(!error.is_retryable());
        assert!(source.usable(at(0)).is_none(), "{token_type}: cached");
        assert_eq!(failed(&mut source, at(0)), error);
    }
}

#[test]
fn resource_metadata_requiring_dpop_without_a_key_is_a_typed_error() {
    let config = Config::builder(CLIENT_ID, SECRET)
        .resource_server("https://api.example/mcp")
        .jitter_seed(7)
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let document = r#"{"resource":"https://api.example/mcp","authorization_servers":["https://id.example"],
        "dpop_bound_access_tokens_required":true}"#;
    let error = source
        .handle_response(at(0), out.id, response(200, document))
        .unwrap_err();
    assert!(matches!(&error, Error::Dpop(DpopError::Required { .. })), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(failed(&mut source, at(0)), error);
}

fn proof_nonce(proof: &http::HeaderValue) -> Option<String> {
    use base64::Engine as _;
    let payload = proof.to_str().unwrap().split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    claims["nonce"].as_str().map(str::to_owned)
}

#[test]
fn the_latest_dpop_nonce_of_each_origin_is_used_there() {
    // Resource servers' nonces reach the core through the driver (the
    // adapters' authorised clients keep them there).
    let mut driver = client_credentials::driver::Driver::new(dpop_source());
    let token = AccessToken::builder("t").token_type("DPoP").build().unwrap();
    let proof = |driver: &mut client_credentials::driver::Driver, uri: &str| {
        let proof = driver.dpop_proof(at(0), &http::Method::GET, uri, &token, None);
        match proof.unwrap().unwrap() {
            client_credentials::DpopProof::Signed(proof) => proof_nonce(&proof),
            client_credentials::DpopProof::Unsigned(_) => panic!("a built-in key signs in place"),
        }
    };
    assert_eq!(proof(&mut driver, "https://api.example/a"), None);
    driver.remember_dpop_nonce("https://api.example/a?x=1", "n-1");
    driver.remember_dpop_nonce("https://other.example/", "o-1");
    assert_eq!(proof(&mut driver, "https://API.example:443/b").as_deref(), Some("n-1"));
    assert_eq!(proof(&mut driver, "https://other.example/c").as_deref(), Some("o-1"));
    assert_eq!(proof(&mut driver, "https://api.example:8443/b"), None, "another origin");
    driver.remember_dpop_nonce("https://api.example/", "n-2");
    assert_eq!(proof(&mut driver, "https://api.example/b").as_deref(), Some("n-2"));
    // A nonce the caller passes wins (the answer to a use_dpop_nonce challenge).
    let given = driver.dpop_proof(at(0), &http::Method::GET, "https://api.example/b", &token, Some("g"));
    let Some(client_credentials::DpopProof::Signed(given)) = given.unwrap() else {
        panic!("a signed proof")
    };
    assert_eq!(proof_nonce(&given).as_deref(), Some("g"));
    // Bounded: the origin heard from longest ago is dropped first.
    for i in 0..64 {
        driver.remember_dpop_nonce(&format!("https://r{i}.example/"), "x");
    }
    assert_eq!(proof(&mut driver, "https://api.example/b"), None, "dropped");
    assert_eq!(proof(&mut driver, "https://r63.example/").as_deref(), Some("x"));
    assert_eq!(proof(&mut driver, "https://r0.example/").as_deref(), Some("x"));
}

// -------------------------------------------------------------- discovery

fn metadata(issuer: &str, token_endpoint: &str, extra: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"issuer":"{issuer}","token_endpoint":"{token_endpoint}"{extra}}}"#),
    )
}

fn discovering(order: Option<DiscoveryOrder>) -> TokenSource {
    let mut b = Config::builder(CLIENT_ID, SECRET).issuer(ISSUER).jitter_seed(3);
    if let Some(order) = order {
        b = b.discovery_order(order);
    }
    TokenSource::new(b.build().unwrap(), [7; 32])
}

const DISCOVERED_TOKEN_URL: &str = "https://id.example/tenant/oauth/token";

/// Answers the discovery request `source` sends at `now` with metadata for
/// `ISSUER` naming `DISCOVERED_TOKEN_URL` (and the `extra` members).
fn discover(source: &mut TokenSource, now: Timestamp, extra: &str) -> Event {
    let out = send(source, now);
    assert_eq!(out.kind, RequestKind::Discovery);
    source
        .handle_response(now, out.id, metadata(ISSUER, DISCOVERED_TOKEN_URL, extra))
        .unwrap()
}

#[test]
fn discovery_tries_openid_then_rfc8414_then_requests_a_token() {
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(out.request.method(), http::Method::GET);
    assert_eq!(
        out.request.uri(),
        "https://id.example/tenant/.well-known/openid-configuration"
    );
    assert!(out.request.headers().get(http::header::AUTHORIZATION).is_none());
    let event = source
        .handle_response(at(0), out.id, response(404, "not found"))
        .unwrap();
    let Event::Fallback { error } = event else {
        panic!("{event:?}")
    };
    assert!(
        matches!(error, Error::Discovery(DiscoveryError::NotFound { .. })),
        "{error:?}"
    );

    let out = send(&mut source, at(0));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(
        out.request.uri(),
        "https://id.example/.well-known/oauth-authorization-server/tenant"
    );
    let event = source
        .handle_response(at(0), out.id, metadata(ISSUER, DISCOVERED_TOKEN_URL, ""))
        .unwrap();
    let Event::DiscoveryUpdated(meta) = event else {
        panic!("{event:?}")
    };
    assert_eq!(meta.token_endpoint, DISCOVERED_TOKEN_URL);
    assert_eq!(meta.issuer, ISSUER);

    let out = send(&mut source, at(0));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), DISCOVERED_TOKEN_URL);
    source.handle_response(at(1), out.id, token_ok("t", 600)).unwrap();
    assert_eq!(ready(&mut source, at(1)).secret(), "t");
}

#[test]
fn both_locations_missing_fails_the_round() {
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    source.handle_response(at(0), out.id, response(404, "")).unwrap();
    let out = send(&mut source, at(0));
    let e = source.handle_response(at(0), out.id, response(410, "")).unwrap_err();
    assert!(
        matches!(&e, Error::Discovery(DiscoveryError::NotFound { url }) if url.contains("oauth-authorization-server")),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(failed(&mut source, at(0)), e);
    // The next round starts over at the OpenID location.
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    assert!(out.request.uri().path().ends_with("openid-configuration"));
}

#[test]
fn discovery_order_settings() {
    let mut source = discovering(Some(DiscoveryOrder::Rfc8414First));
    let out = send(&mut source, at(0));
    assert!(out
        .request
        .uri()
        .path()
        .starts_with("/.well-known/oauth-authorization-server"));
    source.handle_response(at(0), out.id, response(404, "")).unwrap();
    let out = send(&mut source, at(0));
    assert!(out.request.uri().path().ends_with("/.well-known/openid-configuration"));

    let mut source = discovering(Some(DiscoveryOrder::OpenIdOnly));
    let out = send(&mut source, at(0));
    assert!(source.handle_response(at(0), out.id, response(404, "")).is_err());

    let mut source = discovering(Some(DiscoveryOrder::Rfc8414Only));
    let out = send(&mut source, at(0));
    assert!(out
        .request
        .uri()
        .path()
        .starts_with("/.well-known/oauth-authorization-server"));
    assert!(source.handle_response(at(0), out.id, response(404, "")).is_err());
}

#[test]
fn an_issuer_mismatch_is_refused_and_its_endpoint_never_used() {
    let mut source = discovering(None);
    let evil = "https://evil.example/token";
    let mut now = at(0);
    for _ in 0..5 {
        let out = send(&mut source, now);
        assert_eq!(out.kind, RequestKind::Discovery, "{out:?}");
        assert_ne!(out.request.uri(), evil);
        let e = source
            .handle_response(now, out.id, metadata("https://evil.example", evil, ""))
            .unwrap_err();
        match &e {
            Error::Discovery(DiscoveryError::IssuerMismatch { expected, found }) => {
                assert_eq!(expected, ISSUER);
                assert_eq!(found, "https://evil.example");
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.is_retryable());
        assert_eq!(failed(&mut source, now), e);
        now = source.retry_at().unwrap();
    }
    // A trailing-slash difference is a mismatch too (exact comparison).
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    let e = source
        .handle_response(at(0), out.id, metadata(&format!("{ISSUER}/"), DISCOVERED_TOKEN_URL, ""))
        .unwrap_err();
    assert!(
        matches!(e, Error::Discovery(DiscoveryError::IssuerMismatch { .. })),
        "{e:?}"
    );
}

#[test]
fn a_plain_http_token_endpoint_to_a_remote_host_is_refused() {
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    let e = source
        .handle_response(at(0), out.id, metadata(ISSUER, "http://id.example/token", ""))
        .unwrap_err();
    assert!(
        matches!(e, Error::Discovery(DiscoveryError::InvalidEndpoint(_))),
        "{e:?}"
    );
    assert!(e.to_string().contains("clear text"), "{e}");
    assert_eq!(failed(&mut source, at(0)), e);
    let until = source.retry_at().unwrap();
    assert_eq!(send(&mut source, until).kind, RequestKind::Discovery);
}

/// A source for `ISSUER` that reuses metadata for `ttl` seconds, after its
/// discovery and a first token `t1` of `lifetime` seconds at `at(0)`.
fn discovered_with_ttl(ttl: u64, lifetime: u64) -> TokenSource {
    let config = Config::builder(CLIENT_ID, SECRET)
        .issuer(ISSUER)
        .discovery_ttl(Duration::from_secs(ttl))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    discover(&mut source, at(0), "");
    fetch(&mut source, at(0), "t1", lifetime);
    source
}

#[test]
fn metadata_is_reused_across_refreshes_and_refetched_after_its_ttl() {
    let mut source = discovered_with_ttl(2000, 1200);
    // Refreshes within the TTL go straight to the token endpoint.
    let out = send(&mut source, at(900));
    assert_eq!(out.kind, RequestKind::Token);
    source.handle_response(at(900), out.id, token_ok("t2", 1200)).unwrap();
    let out = send(&mut source, at(1800));
    assert_eq!(out.kind, RequestKind::Token);
    source.handle_response(at(1800), out.id, token_ok("t3", 1200)).unwrap();
    // After the TTL, the metadata is fetched again first; the token is served meanwhile.
    let out = send(&mut source, at(2700));
    assert_eq!(out.kind, RequestKind::Discovery);
    assert_eq!(ready(&mut source, at(2700)).secret(), "t3");
    source
        .handle_response(
            at(2700),
            out.id,
            metadata(ISSUER, "https://id.example/tenant/v2/token", ""),
        )
        .unwrap();
    let out = send(&mut source, at(2700));
    assert_eq!(out.request.uri(), "https://id.example/tenant/v2/token");
}

#[test]
fn a_failed_rediscovery_keeps_the_previous_metadata() {
    let mut source = discovered_with_ttl(60, 600);
    let out = send(&mut source, at(300));
    assert_eq!(out.kind, RequestKind::Discovery);
    let event = source
        .handle_response(
            at(300),
            out.id,
            metadata("https://evil.example", "https://evil.example/t", ""),
        )
        .unwrap();
    assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
    let out = send(&mut source, at(300));
    assert_eq!(out.request.uri(), DISCOVERED_TOKEN_URL);
}

#[test]
fn a_404_from_the_token_endpoint_rediscovers_once_per_round() {
    let mut source = discovering(None);
    discover(&mut source, at(0), "");
    fetch(&mut source, at(0), "t1", 600);

    for gone in [404, 410] {
        let mut source = discovering(None);
        discover(&mut source, at(0), "");
        let out = send(&mut source, at(0));
        let event = source.handle_response(at(0), out.id, response(gone, "")).unwrap();
        assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
        let out = send(&mut source, at(0));
        assert_eq!(out.kind, RequestKind::Discovery);
        source
            .handle_response(at(0), out.id, metadata(ISSUER, "https://id.example/tenant/moved", ""))
            .unwrap();
        let out = send(&mut source, at(0));
        assert_eq!(out.request.uri(), "https://id.example/tenant/moved");
        // Gone again: no second rediscovery in this round.
        let e = source.handle_response(at(0), out.id, response(gone, "")).unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(gone));
        assert_eq!(failed(&mut source, at(0)), e);
    }
}

#[test]
fn client_authentication_is_negotiated_from_metadata() {
    let cases = [
        (
            r#","token_endpoint_auth_methods_supported":["client_secret_post"]"#,
            false,
        ),
        (
            r#","token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]"#,
            true,
        ),
        (r#","token_endpoint_auth_methods_supported":["private_key_jwt"]"#, true),
        ("", true),
    ];
    for (extra, basic) in cases {
        let mut source = discovering(None);
        discover(&mut source, at(0), extra);
        let out = send(&mut source, at(0));
        let has_basic = out.request.headers().contains_key(http::header::AUTHORIZATION);
        assert_eq!(has_basic, basic, "{extra}");
        assert_eq!(form_value(&out.request, "client_secret").is_some(), !basic, "{extra}");
    }
    // An explicit choice wins.
    let config = Config::builder(CLIENT_ID, SECRET)
        .issuer(ISSUER)
        .auth(ClientAuth::Basic)
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let extra = r#","token_endpoint_auth_methods_supported":["client_secret_post"]"#;
    discover(&mut source, at(0), extra);
    let out = send(&mut source, at(0));
    assert!(out.request.headers().contains_key(http::header::AUTHORIZATION));
}

#[test]
fn a_discovered_revocation_endpoint_is_used_at_signout() {
    let mut source = discovering(None);
    let extra = r#","revocation_endpoint":"https://id.example/tenant/revoke""#;
    discover(&mut source, at(0), extra);
    fetch(&mut source, at(0), "t", 600);
    let revoke = source.signout(at(1)).unwrap();
    assert_eq!(revoke.request.uri(), "https://id.example/tenant/revoke");

    // An http revocation endpoint to a remote host is dropped.
    let mut source = discovering(None);
    let extra = r#","revocation_endpoint":"http://id.example/revoke""#;
    discover(&mut source, at(0), extra);
    fetch(&mut source, at(0), "t", 600);
    assert!(source.signout(at(1)).is_none());
}

#[test]
fn discovery_failures_are_retried_like_token_failures() {
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    let event = source.handle_response(at(0), out.id, response(503, "down")).unwrap();
    let Event::RetryScheduled {
        at: retry_at, error, ..
    } = event
    else {
        panic!("{event:?}")
    };
    assert!(matches!(
        error,
        Error::Discovery(DiscoveryError::UnexpectedStatus { .. })
    ));
    let out = send(&mut source, retry_at);
    assert_eq!(out.kind, RequestKind::Discovery);
    let event = source
        .handle_transport_error(retry_at, out.id, TransportErrorKind::Timeout)
        .unwrap();
    assert!(matches!(event, Event::RetryScheduled { .. }), "{event:?}");
}

#[test]
fn loopback_issuers_work_over_plain_http() {
    let issuer = "http://127.0.0.1:8080";
    let config = Config::builder(CLIENT_ID, SECRET).issuer(issuer).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    assert_eq!(
        out.request.uri(),
        "http://127.0.0.1:8080/.well-known/openid-configuration"
    );
    source
        .handle_response(at(0), out.id, metadata(issuer, "http://127.0.0.1:8080/token", ""))
        .unwrap();
    let out = send(&mut source, at(0));
    assert_eq!(out.request.uri(), "http://127.0.0.1:8080/token");
}

#[test]
fn oversized_discovery_documents_are_refused() {
    let config = Config::builder(CLIENT_ID, SECRET)
        .issuer(ISSUER)
        .max_body_size(1024)
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let extra = format!(r#","padding":"{}""#, "x".repeat(2000));
    let e = source
        .handle_response(at(0), out.id, metadata(ISSUER, DISCOVERED_TOKEN_URL, &extra))
        .unwrap_err();
    assert!(
        matches!(e, Error::Discovery(DiscoveryError::InvalidDocument { .. })),
        "{e:?}"
    );
}

#[test]
fn action_is_a_plain_enum() {
    let mut source = source();
    match source.poll(at(0)) {
        Action::Ready(_) | Action::Wait { .. } | Action::Failed(_) => panic!("nothing cached"),
        Action::Send(out) => assert!(format!("{out:?}").contains("Token")),
    }
}

// --------------------------------------------- clock skew and forced refreshes

#[test]
fn a_clock_skew_longer_than_the_lifetime_does_not_refetch_on_every_poll() {
    let config = builder().clock_skew(Duration::from_secs(600)).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let token = fetch(&mut source, at(0), "t1", 60);
    // Skew is capped at half the lifetime: usable until 30 s, refreshed at 15 s.
    assert_eq!(ready(&mut source, at(14)).secret(), token.secret());
    assert!(source.usable(at(29)).is_some());
    assert!(source.usable(at(30)).is_none());
    assert_eq!(send(&mut source, at(15)).kind, RequestKind::Token);
}

#[test]
fn an_explicit_refresh_does_not_lift_the_cool_down() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let out = send(&mut source, at(0));
    let error = source
        .handle_response(at(0), out.id, oauth_error(401, "invalid_client"))
        .unwrap_err();
    // The forced refresh reports the cool-down error and changes nothing.
    assert_eq!(source.force_refresh(at(0)), Err(error.clone()));
    let until = source.retry_at().expect("cool-down");
    assert_eq!(failed(&mut source, at(0)), error);
    assert_eq!(send(&mut source, until).kind, RequestKind::Token);
}

#[test]
fn a_forced_refresh_during_a_cool_down_keeps_serving_the_unexpired_token() {
    let mut source = TokenSource::new(one_attempt(), [7; 32]);
    let token = fetch(&mut source, at(0), "t1", 3600);
    source.force_refresh(at(10)).unwrap();
    let out = send(&mut source, at(10));
    assert!(matches!(
        source.handle_response(at(10), out.id, token_ok("x", 1).map(|_| b"oops".to_vec())),
        Ok(Event::RefreshFailed { .. })
    ));
    // Cooling down: the refresh reports the error, the unexpired token is
    // still served, and nothing is left forced for later.
    let error = source.force_refresh(at(10)).unwrap_err();
    assert!(matches!(error, Error::InvalidResponse { .. }), "{error:?}");
    assert_eq!(ready(&mut source, at(10)).secret(), token.secret());
    assert_eq!(source.refresh_at(), Some(at(3300)));
    let until = source.retry_at().unwrap();
    assert_eq!(
        ready(&mut source, until).secret(),
        token.secret(),
        "not forced any more"
    );
    // After the cool-down a forced refresh goes out at once.
    source.force_refresh(until).unwrap();
    assert_eq!(send(&mut source, until).kind, RequestKind::Token);
}

// ------------------------------------------------- a failing provider

/// Serves every request with `answer` for `seconds`, polling every `step_ms`
/// like a crowd of callers would; returns the send times in milliseconds.
fn hammer(
    source: &mut TokenSource,
    seconds: u64,
    step_ms: u64,
    answer: impl Fn() -> http::Response<Vec<u8>>,
) -> Vec<u64> {
    let mut sent = Vec::new();
    let mut ms = 0;
    while ms < seconds * 1000 {
        if let Action::Send(out) = source.poll(at_ms(ms)) {
            sent.push(ms);
            let _ = source.handle_response(at_ms(ms), out.id, answer());
        }
        ms += step_ms;
    }
    sent
}

#[test]
fn failed_rounds_escalate_until_a_success() {
    let mut source = source();
    let sent = hammer(&mut source, 600, 10, || response(503, ""));
    // 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (plus jitter): seven in the first minute.
    let first_minute = sent.iter().filter(|ms| **ms < 60_000).count();
    assert!(first_minute <= 7, "{sent:?}");
    // Then the step is capped at 30 s: at most two in any later minute.
    for window in sent.windows(3) {
        if window[0] >= 60_000 {
            assert!(window[2] - window[0] >= 60_000, "{sent:?}");
        }
    }
    for pair in sent.windows(2).skip(6) {
        assert!(pair[1] - pair[0] >= 30_000 && pair[1] - pair[0] <= 33_010, "{sent:?}");
    }
    // A success ends the escalation: the next failure waits the first step again.
    let now = at_ms(600_000 + 40_000);
    let out = send(&mut source, now);
    source.handle_response(now, out.id, token_ok("t", 60)).unwrap();
    let now = now.saturating_add(Duration::from_secs(30));
    let out = send(&mut source, now);
    let event = source.handle_response(now, out.id, response(503, "")).unwrap();
    let (Event::RefreshFailed { .. } | Event::RetryScheduled { .. }) = event else {
        panic!("{event:?}")
    };
    let wait = source.retry_at().unwrap().saturating_duration_since(now);
    assert!(wait <= Duration::from_millis(550), "{wait:?}");
}

#[test]
fn final_oauth_errors_escalate_like_any_failed_round() {
    let mut source = source();
    let sent = hammer(&mut source, 300, 10, || oauth_error(401, "invalid_client"));
    assert!(sent.iter().filter(|ms| **ms < 60_000).count() <= 7, "{sent:?}");
    assert!(
        sent.len() <= 7 + 2 * 4 + 1,
        "{} requests in 5 minutes: {sent:?}",
        sent.len()
    );
    // Each answer ended its round at once: callers got the error.
    assert!(failed(&mut source, at(300)).oauth_code().is_some());
}

/// With an unexpired token, a later round's back-off is served like a
/// cool-down: callers keep the token, a `refresh()` asked for during it gets
/// the latest error and changes nothing, and one asked for before the round's
/// attempt failed gets that error while the others keep the token.
#[test]
fn a_later_rounds_back_off_serves_the_unexpired_token_like_a_cool_down() {
    let mut source = source();
    let token = fetch(&mut source, at(0), "t", 3600);
    // The refresh at 3300 s fails: three attempts, then a cool-down.
    let mut now = at(3300);
    loop {
        let out = send(&mut source, now);
        match source.handle_response(now, out.id, response(503, "")).unwrap() {
            Event::RetryScheduled { at, .. } => now = at,
            Event::RefreshFailed { retry_at, .. } => {
                now = retry_at;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // A later round, forced at its start: its first attempt fails.
    let ticket = source.force_refresh(now).unwrap();
    let out = send(&mut source, now);
    let event = source.handle_response(now, out.id, response(500, "")).unwrap();
    assert!(matches!(event, Event::RetryScheduled { .. }), "{event:?}");
    // Callers keep the unexpired token; the refresh gets the latest error.
    assert_eq!(ready(&mut source, now).secret(), token.secret());
    match poll_refresh(&mut source, now, ticket) {
        Action::Failed(error) => assert_eq!(error.status().map(|s| s.as_u16()), Some(500)),
        other => panic!("expected the refresh's error, got {other:?}"),
    }
    // A refresh asked for during the back-off: the same error, nothing changes.
    let error = source.force_refresh(now).unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(ready(&mut source, now).secret(), token.secret());
    // After the step the round's next attempt goes out, and a token ends it.
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    source.handle_response(until, out.id, token_ok("t2", 3600)).unwrap();
    assert_eq!(ready(&mut source, until).secret(), "t2");
}

#[test]
fn fallbacks_wait_a_back_off_step_once_a_round_has_failed() {
    let mut source = discovering(None);
    let out = send(&mut source, at(0));
    // First round: the RFC 8414 fallback goes out at once.
    source.handle_response(at(0), out.id, response(404, "")).unwrap();
    let out = send(&mut source, at(0));
    source.handle_response(at(0), out.id, response(404, "")).unwrap_err();
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    assert!(out.request.uri().path().ends_with("openid-configuration"));
    // Now failures are counted: the fallback waits its own step.
    let event = source.handle_response(until, out.id, response(404, "")).unwrap();
    assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
    let next = source.retry_at().expect("paced");
    assert!(next > until);
    // Meanwhile callers get the failed round's error at once (a round has
    // failed since the last token), and the fallback goes out after the step.
    let error = failed(&mut source, until);
    assert!(matches!(error, Error::Discovery(_)), "{error}");
    send(&mut source, next);
}

/// Only the first failing round makes callers wait through its retries. In
/// later rounds (until a token arrives) the retries wait escalated steps, and
/// callers get the latest error at once instead of waiting up to a minute;
/// each round still makes its three attempts.
#[test]
fn callers_wait_through_retries_of_the_first_failing_round_only() {
    let mut source = source();
    let mut now = at(0);
    // First round: callers wait through the 0.5 s and 1 s steps.
    for _ in 0..2 {
        let out = send(&mut source, now);
        let event = source.handle_response(now, out.id, response(503, "")).unwrap();
        assert!(matches!(event, Event::RetryScheduled { .. }), "{event:?}");
        let until = wait(&mut source, now).expect("a retry");
        now = until;
    }
    let out = send(&mut source, now);
    source.handle_response(now, out.id, response(502, "")).unwrap_err();
    now = source.retry_at().unwrap();
    // A later round: three attempts still, but callers are not held.
    for status in [500, 504] {
        let out = send(&mut source, now);
        let event = source.handle_response(now, out.id, response(status, "")).unwrap();
        assert!(matches!(event, Event::RetryScheduled { .. }), "{event:?}");
        let error = failed(&mut source, now);
        assert_eq!(
            error.status().map(|s| s.as_u16()),
            Some(status),
            "the latest attempt's error"
        );
        now = source.retry_at().unwrap();
    }
    let out = send(&mut source, now);
    source.handle_response(now, out.id, token_ok("t", 3600)).unwrap();
    assert_eq!(ready(&mut source, now).secret(), "t");
    // After a token, the next failing round is a first one again (the token
    // was served past its probation, so its rejection is no failure).
    let now = now.saturating_add(Duration::from_secs(31));
    let token = ready(&mut source, now);
    assert!(source.invalidate(now, &token));
    let out = send(&mut source, now);
    source.handle_response(now, out.id, response(503, "")).unwrap();
    assert!(
        wait(&mut source, now).is_some(),
        "callers wait through a first round's retry"
    );
}
