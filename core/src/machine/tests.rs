//! `TokenSource` scenarios that need the crate-private views the driver
//! uses (tokens offered by a provider or a fleet, the capped `Retry-After`,
//! resource servers' DPoP nonces), with the scaffolding of the public
//! scenario tests in `core/tests`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use crate::{AccessToken, Event, TokenSource};
use common::*;

fn source_fresh() -> TokenSource {
    source()
}

fn dpop_source() -> TokenSource {
    let key = crate::JwtKey::from_pem(include_str!("../../tests/keys/ec.pem"), crate::JwsAlgorithm::Es256).unwrap();
    TokenSource::new(builder().dpop(key).build().unwrap(), [7; 32])
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

// ------------------------------------------------------- offered tokens

fn token_expiring(value: &str, received: u64, expires: u64) -> AccessToken {
    AccessToken::builder(value)
        .received_at(at(received))
        .expires_at(at(expires))
        .build()
        .unwrap()
}

#[test]
fn with_dpop_an_offered_bearer_token_is_not_taken() {
    let mut source = dpop_source();
    let offered = |token_type: &str| {
        AccessToken::builder("provided")
            .token_type(token_type)
            .received_at(at(0))
            .expires_at(at(3600))
            .build()
            .unwrap()
    };
    // From a custom provider or a fleet store: an unbound token is refused.
    assert!(!source.offer_token(at(0), offered("Bearer")));
    assert!(source.token().is_none());
    assert!(source.offer_token(at(0), offered("DPoP")));
}

#[test]
fn the_token_endpoint_keeps_its_own_nonce() {
    let mut source = dpop_source();
    let out = send(&mut source, at(0));
    let answer = with_header(
        response(200, r#"{"access_token":"t1","token_type":"DPoP","expires_in":60}"#),
        "dpop-nonce",
        "as-1",
    );
    source.handle_response(at(0), out.id, answer).unwrap();
    source.remember_dpop_nonce("https://api.example/", "rs-1");
    let out = send(&mut source, at(50));
    let proof = out.request.headers().get("dpop").unwrap();
    assert_eq!(proof_nonce(proof).as_deref(), Some("as-1"));
}

#[test]
fn a_huge_retry_after_is_capped_and_reported() {
    for value in ["315360000", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let mut source = source();
        let out = send(&mut source, at(0));
        let answer = with_header(response(503, ""), "retry-after", value);
        let error = source.handle_response(at(0), out.id, answer).unwrap_err();
        // Without a usable token the round's end is that `Err`; the view
        // says what was asked for.
        let asked = source.retry_after_capped().expect("the cap is reported");
        assert!(asked > Duration::from_secs(300 * 1000), "{value}: {asked:?}");
        // Five minutes (plus at most 10 %), not ten years.
        let until = source.retry_at().unwrap();
        assert!(until >= at(300) && until <= at(330), "{value}: {until:?}");
        assert_eq!(failed(&mut source, at(299)), error);
        send(&mut source, until);
        // With a usable token the event says the wait was capped.
        let mut source = source_fresh();
        fetch(&mut source, at(0), "t", 3600);
        let out = send(&mut source, at(3300));
        let answer = with_header(response(429, ""), "retry-after", value);
        match source.handle_response(at(3300), out.id, answer) {
            Ok(Event::RefreshFailed {
                retry_after_capped: Some(asked),
                retry_at,
                ..
            }) => {
                assert!(asked > Duration::from_secs(300 * 1000), "{asked:?}");
                assert!(retry_at <= at(3300 + 330));
            }
            other => panic!("{value}: {other:?}"),
        }
    }
    // The cap is configurable.
    let config = builder().max_retry_after(Duration::from_secs(60)).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let answer = with_header(response(503, ""), "retry-after", "3600");
    source.handle_response(at(0), out.id, answer).unwrap_err();
    assert!(source.retry_at().unwrap() <= at(66));
    assert_eq!(source.retry_after_capped(), Some(Duration::from_secs(3600)));
    // A later failure within the cap clears it, and so does a token.
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    let answer = with_header(response(503, ""), "retry-after", "5");
    let event = source.handle_response(until, out.id, answer);
    assert!(
        matches!(
            event,
            Ok(Event::RetryScheduled {
                retry_after_capped: None,
                ..
            })
        ),
        "{event:?}"
    );
    assert_eq!(source.retry_after_capped(), None);
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    let answer = with_header(response(503, ""), "retry-after", "3600");
    let _ = source.handle_response(until, out.id, answer);
    assert_eq!(source.retry_after_capped(), Some(Duration::from_secs(3600)));
    let until = source.retry_at().unwrap();
    let out = send(&mut source, until);
    source.handle_response(until, out.id, token_ok("t", 3600)).unwrap();
    assert_eq!(source.retry_after_capped(), None);
}

/// A request a provider or a fleet answered instead was never sent: the
/// copies of the credentials it carried (kept to redact its answer) are
/// dropped with it, so an idle key keeps no copy of a secret.
#[test]
fn a_request_answered_by_a_provider_keeps_no_copy_of_its_credentials() {
    let mut source = source();
    let out = send(&mut source, at(0));
    assert_ne!(source.sent_credentials, crate::redact::Credentials::default());
    assert!(source.offer_token(at(0), token_expiring("provided", 0, 3600)));
    assert!(source.abandon(out.id));
    assert_eq!(source.sent_credentials, crate::redact::Credentials::default());
}

#[test]
fn an_offered_token_replaces_the_cached_one_only_if_usable_and_later() {
    let mut source = source();
    // Nothing cached: any usable token is taken, an expired one is not.
    assert!(!source.offer_token(at(100), token_expiring("expired", 0, 50)));
    assert!(source.token().is_none());
    assert!(source.offer_token(at(100), token_expiring("a", 0, 1000)));
    assert_eq!(ready(&mut source, at(100)).secret(), "a");
    // Older or equally old: refused, the cached one stays.
    assert!(!source.offer_token(at(100), token_expiring("older", 0, 900)));
    assert!(!source.offer_token(at(100), token_expiring("same", 0, 1000)));
    assert_eq!(ready(&mut source, at(100)).secret(), "a");
    // Later: taken.
    assert!(source.offer_token(at(100), token_expiring("b", 100, 2000)));
    assert_eq!(ready(&mut source, at(100)).secret(), "b");
    // A token without expiry beats any expiring one; nothing beats it.
    let forever = AccessToken::builder("forever").build().unwrap();
    assert!(source.offer_token(at(100), forever.clone()));
    assert!(!source.offer_token(at(100), token_expiring("c", 100, 9000)));
    assert!(!source.offer_token(at(100), forever));
    // After an invalidation anything usable is welcome again.
    let current = ready(&mut source, at(100));
    assert!(source.invalidate(at(100), &current));
    assert!(source.offer_token(at(100), token_expiring("d", 100, 200)));
}
