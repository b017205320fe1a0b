//! A client built with `.agent(..)` bounds every exchange.

use std::time::{Duration, Instant};

use client_credentials::{ConfigBuilder, Error, TransportErrorKind};
use client_credentials_blocking::{Client, DEFAULT_TIMEOUT};
use client_credentials_testkit::{Fault, TestIssuer};

mod common;

/// One attempt per round, so a timeout is the call's outcome.
fn config(issuer: &TestIssuer) -> ConfigBuilder {
    common::config(issuer).max_attempts(1)
}

fn assert_timeout(result: Result<client_credentials::AccessToken, Error>) {
    match result {
        Err(Error::Transport(e)) => assert_eq!(e.kind(), TransportErrorKind::Timeout, "{e}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// ureq's defaults are no timeouts at all: a user agent built with them gets
/// the documented 30 s default instead of waiting forever on a silent server.
#[test]
fn an_agent_without_timeouts_gets_the_default_timeout() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let client = Client::builder(config(&issuer).build().unwrap())
        .agent(ureq::Agent::new_with_defaults())
        .build();
    let started = Instant::now();
    assert_timeout(client.token());
    let elapsed = started.elapsed();
    assert!(elapsed >= DEFAULT_TIMEOUT - Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < DEFAULT_TIMEOUT + Duration::from_secs(10), "{elapsed:?}");
}

/// `.timeout(..)` applies to a user agent too.
#[test]
fn an_agent_with_a_configured_timeout_uses_it() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let client = Client::builder(config(&issuer).build().unwrap())
        .agent(ureq::Agent::new_with_defaults())
        .timeout(Duration::from_millis(300))
        .build();
    let started = Instant::now();
    assert_timeout(client.token());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// An agent's own timeout is kept.
#[test]
fn an_agent_with_its_own_timeout_keeps_it() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(300)))
        .build()
        .new_agent();
    let client = Client::builder(config(&issuer).build().unwrap()).agent(agent).build();
    let started = Instant::now();
    assert_timeout(client.token());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
