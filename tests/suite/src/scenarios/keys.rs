//! Many tokens from one client: `token_for(&params)`, `with_params(params)`
//! and `max_keys`, each key with its own cache, single flight and failures.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use client_credentials::{ConfigError, Error, OAuthErrorCode, TokenParams};
use client_credentials_testkit::TestIssuer;

use client_credentials_blocking::ManualClock;

use super::{config, discovering};
use crate::{Adapter, Options};

fn tenant(n: usize) -> TokenParams {
    TokenParams::new().param("tenant", format!("t-{n}"))
}

/// 1,000 keys, none cached, 16 callers asking for every key at once (each
/// walking the keys from its own starting point): exactly one request per
/// key, and every caller gets its key's token.
pub fn a_thousand_cold_keys_with_sixteen_callers_each_make_a_thousand_requests<A: Adapter>() {
    const KEYS: usize = 1_000;
    const CALLERS: usize = 16;
    let issuer = TestIssuer::start();
    let options = Options {
        max_keys: Some(KEYS),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..KEYS)
                    .map(|i| {
                        let key = (i + caller * KEYS / CALLERS) % KEYS;
                        let token = A::token_for(&client, &tenant(key)).expect("a token");
                        (key, token.secret().to_owned())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = vec![None::<String>; KEYS];
    for caller in callers {
        for (key, secret) in caller.join().unwrap() {
            match &seen[key] {
                Some(first) => assert_eq!(first, &secret, "{}: key {key} served two tokens", A::NAME),
                None => seen[key] = Some(secret),
            }
        }
    }
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), KEYS, "{}", A::NAME);
    let mut tenants: Vec<&str> = requests.iter().filter_map(|r| r.param("tenant")).collect();
    tenants.sort_unstable();
    tenants.dedup();
    assert_eq!(tenants.len(), KEYS, "{}: a key was fetched twice", A::NAME);
}

/// One key's provider error (a scope the issuer refuses) is that key's
/// alone: the other keys and the default token are fetched and served, and
/// the failing key's error is its own.
pub fn one_keys_provider_error_leaves_the_other_keys_alone<A: Adapter>() {
    let issuer = TestIssuer::builder().scopes(["read", "write"]).start();
    let client = A::build(config(&issuer).scope("read").build().unwrap(), Options::default());
    let refused = TokenParams::new().scope("admin");
    let write = TokenParams::new().scope("write");
    match A::token_for(&client, &refused) {
        Err(Error::OAuth {
            code: OAuthErrorCode::InvalidScope,
            ..
        }) => {}
        other => panic!("{}: {other:?}", A::NAME),
    }
    let for_write = A::token_for(&client, &write).expect("the write key is unaffected");
    let default = A::token(&client).expect("the default key is unaffected");
    assert_ne!(for_write.secret(), default.secret());
    // The failed key is in its cool-down: asked again, it answers with its
    // error at once and sends nothing; the others are served from cache.
    assert!(A::token_for(&client, &refused).is_err());
    assert_eq!(A::token_for(&client, &write).unwrap().secret(), for_write.secret());
    let requests = issuer.token_requests();
    let scopes: Vec<Option<&str>> = requests.iter().map(|r| r.param("scope")).collect();
    assert_eq!(scopes, [Some("admin"), Some("write"), Some("read")], "{}", A::NAME);
}

/// With `.max_keys(2)`, adding a third key drops the least recently used
/// idle one, whose token is fetched again when next asked for; a key held
/// by a bound handle is never dropped.
pub fn beyond_max_keys_the_least_recently_used_idle_key_is_dropped<A: Adapter>() {
    let issuer = TestIssuer::start();
    let options = Options {
        max_keys: Some(2),
        ..Options::default()
    };
    let client = A::build(config(&issuer).build().unwrap(), options);
    let (a, b, c) = (tenant(1), tenant(2), tenant(3));
    let first_a = A::token_for(&client, &a).unwrap();
    A::token_for(&client, &b).unwrap();
    // `a` is now more recently used than `b`.
    assert_eq!(A::token_for(&client, &a).unwrap().secret(), first_a.secret());
    A::token_for(&client, &c).unwrap();
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    // `b` was dropped, `a` was kept.
    assert_eq!(A::token_for(&client, &a).unwrap().secret(), first_a.secret());
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    A::token_for(&client, &b).unwrap();
    assert_eq!(issuer.token_requests().len(), 4, "{}: b was not dropped", A::NAME);

    // A bound handle's key stays, however many keys come after it.
    let held = A::with_params(&client, tenant(10));
    let held_token = A::token(&held).unwrap();
    for n in 11..15 {
        A::token_for(&client, &tenant(n)).unwrap();
    }
    let before = issuer.token_requests().len();
    assert_eq!(A::token(&held).unwrap().secret(), held_token.secret());
    assert_eq!(
        A::token_for(&client, &tenant(10)).unwrap().secret(),
        held_token.secret()
    );
    assert_eq!(
        issuer.token_requests().len(),
        before,
        "{}: the held key was dropped",
        A::NAME
    );
}

/// A handle from `with_params` serves its key's token (the one `token_for`
/// gets), asks with its params, and leaves the client's default token alone.
pub fn a_bound_handle_serves_its_keys_token<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).scope("default").build().unwrap(), Options::default());
    let params = TokenParams::new()
        .scope("orders")
        .audience("https://orders.example")
        .resource("https://orders.example/api");
    let orders = A::with_params(&client, params.clone());
    let token = A::token(&orders).unwrap();
    assert_eq!(A::token_for(&client, &params).unwrap().secret(), token.secret());
    assert_eq!(A::token(&orders).unwrap().secret(), token.secret());
    let default = A::token(&client).unwrap();
    assert_ne!(default.secret(), token.secret());
    // Empty params are the default key.
    assert_eq!(
        A::token_for(&client, &TokenParams::new()).unwrap().secret(),
        default.secret()
    );
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 2, "{}", A::NAME);
    assert_eq!(requests[0].param("scope"), Some("orders"));
    assert_eq!(requests[0].param("audience"), Some("https://orders.example"));
    assert_eq!(requests[0].param("resource"), Some("https://orders.example/api"));
    assert_eq!(requests[1].param("scope"), Some("default"));
    assert_eq!(requests[1].param("audience"), None);
}

/// Params the config builder would refuse are a typed config error, from
/// `token_for` and from a bound handle's calls; nothing is sent.
pub fn refused_params_are_a_config_error_and_send_nothing<A: Adapter>() {
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).build().unwrap(), Options::default());
    let reserved = TokenParams::new().param("client_id", "someone-else");
    let expected = Error::Config(ConfigError::ReservedParameter {
        name: "client_id".into(),
    });
    assert_eq!(A::token_for(&client, &reserved).unwrap_err(), expected, "{}", A::NAME);
    let handle = A::with_params(&client, reserved);
    assert_eq!(A::token(&handle).unwrap_err(), expected, "{}", A::NAME);
    assert_eq!(A::refresh(&handle).unwrap_err(), expected, "{}", A::NAME);
    assert!(matches!(
        A::token_for(&client, &TokenParams::new().resource("not a uri")),
        Err(Error::Config(ConfigError::InvalidResource { .. }))
    ));
    assert!(issuer.token_requests().is_empty(), "{}", A::NAME);
}

/// A key rests between its jobs, keeping only what it must, and behaves as
/// before: while fresh its token is served without a request (through the
/// lock, on a simulated clock), and once due it is refreshed with the
/// refresh token and the discovered token endpoint it had before resting;
/// invalidated through a bound handle, it is fetched afresh.
pub fn a_key_at_rest_keeps_its_refresh_token_and_discovered_endpoint<A: Adapter>() {
    let issuer = TestIssuer::builder().issue_refresh_tokens(true).lifetime(2).start();
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let client = A::build(discovering(&issuer).build().unwrap(), options);
    let key = tenant(1);
    let first = A::token_for(&client, &key).expect("a token");
    assert!(first.refresh_token().is_some(), "{}", A::NAME);
    for _ in 0..3 {
        let again = A::token_for(&client, &key).expect("the cached token");
        assert_eq!(again.secret(), first.secret(), "{}", A::NAME);
    }
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
    // Lifetime 2 s: due for refresh at 1 s.
    clock.advance(Duration::from_millis(1200));
    let second = A::token_for(&client, &key).expect("a refreshed token");
    assert_ne!(second.secret(), first.secret(), "{}", A::NAME);
    let grants: Vec<_> = issuer
        .token_requests()
        .iter()
        .map(|r| r.grant_type.clone().unwrap_or_default())
        .collect();
    assert_eq!(grants, ["client_credentials", "refresh_token"], "{}", A::NAME);
    assert_eq!(issuer.discovery_requests().len(), 1, "{}: discovered once", A::NAME);
    let bound = A::with_params(&client, key.clone());
    assert_eq!(A::token(&bound).expect("the cached token").secret(), second.secret());
    A::invalidate(&bound, &second);
    let third = A::token_for(&client, &key).expect("a new token");
    assert_ne!(third.secret(), second.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    // The default key is apart: fetched once, with its own grant.
    A::token(&client).expect("the default token");
    assert_eq!(issuer.token_requests().len(), 4, "{}", A::NAME);
}
