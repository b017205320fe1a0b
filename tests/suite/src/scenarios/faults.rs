//! Scripted server faults: what is retried, what is final, what is refused.

use std::time::{Duration, Instant};

use client_credentials::{Error, OAuthErrorCode, TransportErrorKind};
use client_credentials_testkit::{Fault, TestIssuer};

use super::config;
use crate::{Adapter, Options};

/// A 503 with `Retry-After: 1` is retried no sooner than a second later.
pub fn retry_after_is_honoured<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::retry_after(503, "1"));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let started = Instant::now();
    A::token(&client).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// 500, then a broken connection, then success: three requests, one token.
pub fn server_errors_and_broken_connections_are_retried<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::status(500, "{}"));
    issuer.push_fault(Fault::CloseMidResponse);
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    A::token(&client).unwrap();
    assert_eq!(issuer.token_requests().len(), 3);
}

/// Retries are bounded: three 503s end the round with the last error.
pub fn retries_give_up_after_the_configured_attempts<A: Adapter>() {
    let issuer = TestIssuer::start();
    for _ in 0..3 {
        issuer.push_fault(Fault::status(503, "<html>down</html>"));
    }
    let config = config(&issuer)
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    match A::token(&client) {
        Err(e @ Error::UnexpectedStatus { .. }) => assert!(e.is_retryable()),
        other => panic!("{other:?}"),
    }
    assert_eq!(issuer.token_requests().len(), 3);
}

/// OAuth 4xx errors are final: one request, a typed error.
pub fn oauth_errors_are_final<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(400, "invalid_scope", "no such scope"));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let error = A::token(&client).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidScope));
    assert!(!error.is_retryable());
    assert!(error.to_string().starts_with("invalid_scope"), "{error}");
    assert_eq!(issuer.token_requests().len(), 1);
}

/// A server that never answers: a timeout error, quickly.
pub fn a_silent_server_times_out<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let config = config(&issuer).max_attempts(1).build().unwrap();
    let options = Options {
        timeout: Some(Duration::from_millis(300)),
        ..Options::default()
    };
    let client = A::build(config, options);
    let started = Instant::now();
    match A::token(&client) {
        Err(Error::Transport(e)) => {
            assert_eq!(e.kind(), TransportErrorKind::Timeout, "{e}");
            // One wording in both adapters, whatever the HTTP client says.
            assert_eq!(
                e.to_string(),
                format!("timed out: {}", issuer.token_endpoint()),
                "{}",
                A::NAME
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(issuer.token_requests().len(), 1);
}

/// A 64 MiB body is refused without reading it all.
pub fn oversized_bodies_are_refused<A: Adapter>() {
    for fault in [Fault::Oversized(64 << 20), Fault::OversizedChunked(64 << 20)] {
        let issuer = TestIssuer::start();
        issuer.push_fault(fault);
        let client = A::build(config(&issuer).max_attempts(1).build().unwrap(), Options::default());
        let started = Instant::now();
        match A::token(&client) {
            Err(e @ Error::InvalidResponse { .. }) => assert!(e.to_string().contains("limit"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(issuer.token_requests().len(), 1);
    }
}

/// A redirect from the token endpoint is not followed.
pub fn redirects_are_not_followed<A: Adapter>() {
    let target = TestIssuer::start();
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Redirect(target.token_endpoint()));
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    match A::token(&client) {
        Err(Error::UnexpectedStatus { status, .. }) => assert_eq!(status.as_u16(), 307),
        other => panic!("{other:?}"),
    }
    assert_eq!(issuer.token_requests().len(), 1);
    assert!(
        target.requests().is_empty(),
        "credentials were sent to the redirect target"
    );
}

/// A malformed refresh never evicts a token that has not expired.
pub fn a_bad_refresh_keeps_the_usable_token<A: Adapter>() {
    let issuer = TestIssuer::builder().lifetime(4).start();
    let clock = client_credentials_blocking::ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let client = A::build(config(&issuer).max_attempts(1).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    clock.advance(Duration::from_millis(2100)); // past half-life: refresh due, token still valid
    issuer.push_fault(Fault::Malformed("{\"access_token\": ".into()));
    assert_eq!(A::token(&client).unwrap().secret(), first.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A body dribbled slowly but within the timeout is read whole.
pub fn a_slow_body_within_the_timeout_is_fine<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Dribble {
        interval: Duration::from_millis(1),
    });
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    A::token(&client).unwrap();
    assert_eq!(issuer.token_requests().len(), 1);
}
