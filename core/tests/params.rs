//! `TokenParams` and `Config::with_params`: the rules a per-call token's
//! configuration is built by, and a property over many keys' drivers in
//! simulated time.

mod common;

use std::collections::HashMap;

use client_credentials::driver::{Call, Driver, Outcome, Step, Task, Work};
use client_credentials::{Config, ConfigError, TokenParams, TokenSource};
use common::*;
use proptest::prelude::*;

fn base() -> Config {
    builder()
        .scope("default.read")
        .resource("https://default.example/")
        .audience("default-audience")
        .param("tenant", "t-0")
        .param("region", "eu")
        .build()
        .expect("valid config")
}

#[test]
fn empty_params_are_the_config_itself() {
    let config = base();
    let same = config.with_params(&TokenParams::new()).unwrap();
    assert_eq!(same.fingerprint(), config.fingerprint());
    assert!(TokenParams::new().is_empty());
}

#[test]
fn scopes_given_replace_the_configured_scopes() {
    let config = base()
        .with_params(&TokenParams::new().scope("b.read b.write").scope("b.read"))
        .unwrap();
    assert_eq!(config.scopes(), ["b.read", "b.write"]);
    // The rest is the configured one.
    assert_eq!(config.resources(), ["https://default.example/"]);
    assert_eq!(config.audience(), Some("default-audience"));
}

#[test]
fn resources_and_audience_given_replace_the_configured_ones() {
    let params = TokenParams::new()
        .resource("https://b.example/api")
        .resource("https://c.example/")
        .audience("b-audience");
    let config = base().with_params(&params).unwrap();
    assert_eq!(config.resources(), ["https://b.example/api", "https://c.example/"]);
    assert_eq!(config.audience(), Some("b-audience"));
    assert_eq!(config.scopes(), ["default.read"]);
}

#[test]
fn params_replace_those_of_the_same_name_and_add_the_others() {
    let params = TokenParams::new().param("Tenant", "t-9").param("organization", "org-1");
    let config = base().with_params(&params).unwrap();
    assert_eq!(
        config.params(),
        [
            ("region".to_owned(), "eu".to_owned()),
            ("Tenant".to_owned(), "t-9".to_owned()),
            ("organization".to_owned(), "org-1".to_owned()),
        ]
    );
}

#[test]
fn each_key_has_its_own_fingerprint_and_the_rest_of_the_config_is_shared() {
    let config = base();
    let keys = [
        TokenParams::new().scope("a"),
        TokenParams::new().scope("b"),
        TokenParams::new().resource("https://b.example/"),
        TokenParams::new().audience("b"),
        TokenParams::new().param("tenant", "t-1"),
        TokenParams::new().param("tenant", "t-2"),
    ];
    let mut seen = std::collections::HashSet::new();
    assert!(seen.insert(config.fingerprint()));
    for params in &keys {
        let keyed = config.with_params(params).unwrap();
        assert!(seen.insert(keyed.fingerprint()), "{params:?} shares a cache key");
        assert_eq!(keyed.client_id(), config.client_id());
        assert_eq!(keyed.token_endpoint(), config.token_endpoint());
        assert_eq!(keyed.refresh_margin(), config.refresh_margin());
        assert_eq!(keyed.retry(), config.retry());
    }
}

#[test]
fn the_config_builders_rules_apply_with_the_same_errors() {
    let config = base();
    let refused = |params: TokenParams| config.with_params(&params).unwrap_err();
    for reserved in [
        "scope",
        "Grant_Type",
        " client_id",
        "resource",
        "audience",
        "client_assertion",
    ] {
        assert!(
            matches!(refused(TokenParams::new().param(reserved, "x")), ConfigError::ReservedParameter { ref name } if name == reserved),
            "{reserved}"
        );
    }
    assert_eq!(
        refused(TokenParams::new().param("", "x")),
        ConfigError::EmptyParameterName
    );
    assert!(matches!(
        refused(TokenParams::new().scope("a\"b")),
        ConfigError::InvalidScope { .. }
    ));
    assert!(matches!(
        refused(TokenParams::new().scope("  ")),
        ConfigError::InvalidScope { .. }
    ));
    assert!(matches!(
        refused(TokenParams::new().resource("/relative")),
        ConfigError::InvalidResource { .. }
    ));
    assert!(matches!(
        refused(TokenParams::new().resource("https://a.example/#frag")),
        ConfigError::InvalidResource { .. }
    ));
    // The builder refuses the same values with the same errors.
    let built = builder().param("Grant_Type", "x").build().unwrap_err();
    assert_eq!(
        built,
        ConfigError::ReservedParameter {
            name: "Grant_Type".into()
        }
    );
}

#[test]
fn debug_shows_parameter_names_but_never_their_values() {
    let params = TokenParams::new().scope("s").param("tenant", "very-private-value");
    let shown = format!("{params:?}");
    assert!(shown.contains("tenant"));
    assert!(!shown.contains("very-private-value"));
}

#[test]
fn equal_params_are_one_key() {
    let a = TokenParams::new().scope("x").param("k", "v");
    let b = TokenParams::new().scope("x").param("k", "v");
    let mut map = HashMap::new();
    map.insert(a, 1);
    assert_eq!(map.get(&b), Some(&1));
    assert_eq!(map.get(&TokenParams::new().scope("x")), None);
}

/// A key's params are one small value (its canonical encoding, inline when
/// short): a client keeps one per key.
#[test]
fn short_params_fit_in_64_bytes() {
    assert!(std::mem::size_of::<TokenParams>() <= 64);
}

#[test]
fn the_values_given_read_back_as_written_short_or_long() {
    let long = format!("https://api.example/{}", "é".repeat(200));
    let params = TokenParams::new()
        .resource("https://a.example/")
        .scope("x y")
        .audience("first")
        .resource(long.as_str())
        .audience("ünï")
        .param("tenant", "t-1");
    assert_eq!(params.scopes(), ["x y"]);
    assert_eq!(params.resources(), ["https://a.example/", long.as_str()]);
    assert_eq!(params.audience_value(), Some("ünï"));
    assert_eq!(params.params(), [("tenant", "t-1")]);
    assert!(!params.is_empty());
    let empty = TokenParams::new();
    assert!(empty.is_empty() && empty.scopes().is_empty() && empty.params().is_empty());
    assert_eq!(empty.audience_value(), None);
}

/// Builds params from raw parts: scopes, then parameters.
fn params_of(scopes: &[String], pairs: &[(String, String)]) -> TokenParams {
    let with_scopes = scopes.iter().fold(TokenParams::new(), |p, s| p.scope(s.as_str()));
    pairs
        .iter()
        .fold(with_scopes, |p, (k, v)| p.param(k.as_str(), v.as_str()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Params are equal exactly when their values are: however the values
    /// split into fields (the encoding is length-prefixed), short ones
    /// (encoded inline) and long ones (on the heap) alike.
    #[test]
    fn params_are_equal_exactly_when_their_values_are(
        scopes_a in proptest::collection::vec("[ab]{0,3}", 0..3),
        pairs_a in proptest::collection::vec(("[ab]{0,2}", "[ab]{0,40}"), 0..3),
        scopes_b in proptest::collection::vec("[ab]{0,3}", 0..3),
        pairs_b in proptest::collection::vec(("[ab]{0,2}", "[ab]{0,40}"), 0..3),
    ) {
        let (a, b) = (params_of(&scopes_a, &pairs_a), params_of(&scopes_b, &pairs_b));
        let same = scopes_a == scopes_b && pairs_a == pairs_b;
        prop_assert_eq!(a == b, same);
        prop_assert_eq!(a == a.clone(), true);
        // The values read back as written (decoded from the encoding).
        let scopes: Vec<&str> = scopes_a.iter().map(String::as_str).collect();
        prop_assert_eq!(a.scopes(), scopes);
        let pairs: Vec<(&str, &str)> = pairs_a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        prop_assert_eq!(a.params(), pairs);
        if same {
            prop_assert_eq!(a.key_hash(), b.key_hash());
        }
    }
}

/// One caller of one key in the simulation: its call and the work it
/// holds, if any.
struct Caller {
    key: usize,
    call: Call,
    holds: Option<Work>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any interleaving of calls over random keys, each key's provider
    /// failing at random, keeps per key: at most one request in flight
    /// (single flight), and no more requests than the failure policy
    /// allows (3 attempts per round; a dead key sees at most 10 requests in
    /// its first minute). One key's failures never touch another key: a
    /// key whose provider answers gets its own token.
    #[test]
    fn per_key_single_flight_and_request_bounds_hold_under_any_interleaving(
        keys in 1usize..6,
        dead in proptest::collection::vec(any::<bool>(), 6),
        schedule in proptest::collection::vec((0usize..24, 0u64..2_000, any::<bool>()), 1..400),
    ) {
        let config = base();
        let mut drivers: Vec<Driver> = (0..keys)
            .map(|k| {
                let keyed = config.with_params(&TokenParams::new().param("tenant", format!("t-{k}"))).unwrap();
                Driver::new(TokenSource::new(keyed, [k as u8; 32]))
            })
            .collect();
        let mut callers: Vec<Caller> = (0..24).map(|i| Caller { key: i % keys, call: Call::token(), holds: None }).collect();
        let mut sent = vec![Vec::<u64>::new(); keys];
        let mut in_flight = vec![0u32; keys];
        let mut clock = 0u64;
        for (who, advance, answer_now) in schedule {
            clock += advance;
            let now = at_ms(clock);
            let caller = &mut callers[who];
            let key = caller.key;
            let driver = &mut drivers[key];
            match caller.holds.take() {
                // Hand back the held work, or keep holding it (another
                // caller's step comes first: the interleaving).
                Some(work) if answer_now => {
                    let mut next = Some(work);
                    while let Some(work) = next {
                        let outcome = match &work.task {
                            Task::Send(outgoing, _) => {
                                in_flight[key] -= 1;
                                // Each request is for this key's own config.
                                let body = String::from_utf8_lossy(outgoing.request.body()).into_owned();
                                prop_assert!(body.contains(&format!("tenant=t-{key}")), "{body}");
                                if dead[key] {
                                    Outcome::Response(response(503, "{}"))
                                } else {
                                    Outcome::Response(token_ok(&format!("token-{key}"), 3600))
                                }
                            }
                            _ => Outcome::Done,
                        };
                        next = driver.handle(now, work.ticket, outcome);
                        if let Some(work) = &next {
                            if matches!(work.task, Task::Send(..)) {
                                in_flight[key] += 1;
                                prop_assert!(in_flight[key] <= 1, "two requests in flight for key {key}");
                                sent[key].push(clock);
                            }
                        }
                    }
                }
                Some(work) => caller.holds = Some(work),
                None => match driver.step(now, &mut caller.call) {
                    Step::Work(work) => {
                        if matches!(work.task, Task::Send(..)) {
                            in_flight[key] += 1;
                            prop_assert!(in_flight[key] <= 1, "two requests in flight for key {key}");
                            sent[key].push(clock);
                        }
                        caller.holds = Some(work);
                    }
                    Step::Ready(token) => {
                        prop_assert!(!dead[key], "a dead key served a token");
                        prop_assert_eq!(token.secret(), format!("token-{key}"));
                        caller.call = Call::token();
                    }
                    Step::Failed(_) => {
                        prop_assert!(dead[key], "a live key failed: another key's failure leaked");
                        caller.call = Call::token();
                    }
                    Step::Wait { .. } => {}
                },
            }
        }
        for key in 0..keys {
            let requests = &sent[key];
            if dead[key] {
                // The failure policy's bound, for this key alone.
                let first_minute = requests.iter().filter(|&&t| t < requests[0] + 60_000).count();
                prop_assert!(first_minute <= 10, "key {key}: {first_minute} requests in its first minute");
            } else {
                // A live key fetches once (the token lasts an hour, longer
                // than the schedule).
                prop_assert!(requests.len() <= 1, "key {key}: {} requests", requests.len());
            }
        }
    }
}
