//! Many tokens from one client: `token_for(&params)`, `with_params(params)`
//! and `max_keys`, each key with its own cache, single flight and failures.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use client_credentials::{Config, ConfigError, DiscoveryError, Error, OAuthErrorCode, TokenParams};
use client_credentials_blocking::ManualClock;
use client_credentials_testkit::{Fault, TestIssuer, TestResourceServer};
use serde_json::json;

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

/// The keys of a discovering client on a simulated clock, whose discovered
/// metadata lives `DISCOVERY_TTL` and whose tokens `TOKEN_LIFETIME`.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);
const TOKEN_LIFETIME: i64 = 3600;

fn on_manual_clock(max_keys: usize) -> (Options, ManualClock) {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        max_keys: Some(max_keys),
        ..Options::default()
    };
    (options, clock)
}

/// A client with `.issuer(..)` and 100 keys besides its default discovers
/// once: every key takes the client's metadata. Past the discovery TTL, the
/// refreshes of all keys read the metadata again once.
pub fn the_keys_of_a_discovering_client_discover_once<A: Adapter>() {
    const KEYS: usize = 100;
    let issuer = TestIssuer::builder().lifetime(TOKEN_LIFETIME).start();
    let (options, clock) = on_manual_clock(KEYS);
    let config = discovering(&issuer).discovery_ttl(DISCOVERY_TTL).build().unwrap();
    let client = A::build(config, options);
    A::token(&client).unwrap();
    for key in 0..KEYS {
        A::token_for(&client, &tenant(key)).unwrap();
    }
    assert_eq!(issuer.discovery_requests().len(), 1, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), KEYS + 1, "{}", A::NAME);
    // A key that never discovered reads the client's metadata too.
    let bound = A::with_params(&client, tenant(0));
    assert_eq!(A::metadata(&bound).map(|m| m.issuer), Some(issuer.issuer_url()));

    // Past the TTL and the tokens' refresh time: one rediscovery for all.
    clock.advance(Duration::from_secs(TOKEN_LIFETIME as u64));
    A::token(&client).unwrap();
    for key in 0..KEYS {
        A::token_for(&client, &tenant(key)).unwrap();
    }
    assert_eq!(issuer.discovery_requests().len(), 2, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2 * (KEYS + 1), "{}", A::NAME);
}

/// A client with `.resource_server(..)` and 20 keys reads the resource's
/// metadata once and discovers the server it names once.
pub fn the_keys_of_a_resource_server_client_read_its_metadata_once<A: Adapter>() {
    const KEYS: usize = 20;
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .resource_server(api.resource())
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    for key in 0..KEYS {
        A::token_for(&client, &tenant(key)).unwrap();
    }
    A::token(&client).unwrap();
    assert_eq!(api.requests().len(), 1, "{}", A::NAME);
    assert_eq!(issuer.discovery_requests().len(), 1, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), KEYS + 1, "{}", A::NAME);
}

/// The resource's metadata names another authorization server after the
/// client's first key pinned one: a new key keeps to the client's pin, as
/// the first key does. Within the discovery TTL it uses the client's
/// metadata; past it, it reads the document and refuses it; nothing ever
/// reaches the other server.
pub fn a_new_key_keeps_the_clients_pinned_authorization_server<A: Adapter>() {
    let issuer = TestIssuer::builder().lifetime(TOKEN_LIFETIME).start();
    let other = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let (options, clock) = on_manual_clock(10);
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .resource_server(api.resource())
        .discovery_ttl(DISCOVERY_TTL)
        .build()
        .unwrap();
    let client = A::build(config, options);
    A::token(&client).unwrap();
    api.serve_document(
        "/.well-known/oauth-protected-resource/api",
        json!({"resource": api.resource(), "authorization_servers": [other.issuer_url()]}),
    );
    A::token_for(&client, &tenant(1)).unwrap();
    assert_eq!(api.requests().len(), 1, "{}: the client's metadata was used", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);

    clock.advance(DISCOVERY_TTL + Duration::from_secs(1));
    match A::token_for(&client, &tenant(2)) {
        Err(Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { named })) => {
            assert_eq!(named, [other.issuer_url()], "{}", A::NAME);
        }
        other => panic!("{}: {other:?}", A::NAME),
    }
    assert_eq!(api.requests().len(), 2, "{}: the new key read the document", A::NAME);
    // The first key, refreshing, refuses it too and keeps its server.
    A::refresh(&client).unwrap();
    assert_eq!(issuer.token_requests().len(), 3, "{}", A::NAME);
    assert!(other.requests().is_empty(), "{}: {:?}", A::NAME, other.requests());
}

/// Cold keys of a discovering client asked for by 8 callers at once: the
/// client reads the metadata once (the keys asked for while it is read
/// wait for that result and take it), and every key is fetched once.
pub fn cold_keys_asked_for_at_once_discover_once<A: Adapter>() {
    const KEYS: usize = 200;
    const CALLERS: usize = 8;
    let issuer = TestIssuer::start();
    let client = A::build(discovering(&issuer).build().unwrap(), Options::default());
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..KEYS {
                    let key = (i + caller * KEYS / CALLERS) % KEYS;
                    A::token_for(&client, &tenant(key)).expect("a token");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    assert_eq!(issuer.discovery_requests().len(), 1, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), KEYS, "{}", A::NAME);
}

/// The client's first metadata read fails while 8 cold keys are asked for
/// at once, each by its own caller: the keys held for that read are not
/// held for another; each reads for itself (as it would alone), so every
/// caller gets its answer after about one failed round, not one per
/// sibling before it. No token request goes out without metadata.
pub fn a_failed_first_discovery_leaves_cold_keys_to_read_for_themselves<A: Adapter>() {
    const CALLERS: usize = 8;
    let issuer = TestIssuer::start();
    // Every metadata request fails for a while (both well-known locations).
    for _ in 0..200 {
        issuer.push_discovery_fault(Fault::status(503, "down"));
    }
    // One failed round, alone: the measure of the bound below.
    let alone = A::build(discovering(&issuer).build().unwrap(), Options::default());
    let started = std::time::Instant::now();
    A::token_for(&alone, &tenant(0)).expect_err("no metadata");
    let round = started.elapsed();
    let reads_alone = issuer.discovery_requests().len();
    let client = A::build(discovering(&issuer).build().unwrap(), Options::default());
    let barrier = Arc::new(Barrier::new(CALLERS));
    let started = std::time::Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let first = A::token_for(&client, &tenant(caller));
                (first.is_ok(), started.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = callers.into_iter().map(|caller| caller.join().unwrap()).collect();
    let slowest = answers.iter().map(|(_, at)| *at).max().unwrap_or_default();
    // A held key waits for the first key's failed round, then fails or
    // fetches in its own: well under one round per sibling.
    let reads = issuer.discovery_requests().len() - reads_alone;
    println!(
        "{}: one failed round alone {round:?} ({reads_alone} reads); 8 cold keys: {reads} reads, the slowest answered after {slowest:?}",
        A::NAME
    );
    assert!(
        reads > reads_alone,
        "{}: the held keys read for themselves: {reads}",
        A::NAME
    );
    // About one round: the held keys go on by themselves, side by side,
    // once the first key's read has failed; holding each key for the one
    // before would take about eight.
    assert!(
        slowest < round * 4 + Duration::from_secs(1),
        "{}: {slowest:?}, a round {round:?}",
        A::NAME
    );
    assert!(answers.iter().all(|(ok, _)| !ok), "{}: nothing to fetch with", A::NAME);
    assert!(issuer.token_requests().is_empty(), "{}", A::NAME);
}

/// Past the discovery TTL and the tokens' lifetime, 8 callers refresh the
/// 50 keys of a discovering client at once: the client reads the metadata
/// again once (the other keys wait for that read and take its result), and
/// every key fetches one new token.
pub fn keys_refreshing_at_once_past_the_ttl_rediscover_once<A: Adapter>() {
    const KEYS: usize = 50;
    const CALLERS: usize = 8;
    let issuer = TestIssuer::builder().lifetime(TOKEN_LIFETIME).start();
    let (options, clock) = on_manual_clock(KEYS);
    let config = discovering(&issuer).discovery_ttl(DISCOVERY_TTL).build().unwrap();
    let client = A::build(config, options);
    for key in 0..KEYS {
        A::token_for(&client, &tenant(key)).unwrap();
    }
    assert_eq!(issuer.discovery_requests().len(), 1, "{}", A::NAME);
    clock.advance(Duration::from_secs(2 * TOKEN_LIFETIME as u64));
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..KEYS {
                    let key = (i + caller * KEYS / CALLERS) % KEYS;
                    A::token_for(&client, &tenant(key)).expect("a token");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    assert_eq!(issuer.discovery_requests().len(), 2, "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2 * KEYS, "{}", A::NAME);
}
