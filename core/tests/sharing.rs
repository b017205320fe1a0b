//! One discovery per client: a key's `Discovery` adopted by its siblings,
//! under the core's rules (same issuer and resource, within the TTL, newer
//! than the key's own, never stale, never another pinned server).

mod common;

use std::time::Duration;

use client_credentials::driver::Discovery;
use client_credentials::{Config, DiscoveryError, Error, Event, RequestKind, Timestamp, TokenParams, TokenSource};
use common::{at, response, send, CLIENT_ID, ISSUER, SECRET};

const TTL: u64 = 600;

fn issuer_config(issuer: &str) -> Config {
    Config::builder(CLIENT_ID, SECRET)
        .issuer(issuer)
        .discovery_ttl(Duration::from_secs(TTL))
        .jitter_seed(7)
        .build()
        .expect("valid config")
}

/// Another key of the client configured by `config`: an audience of its own.
fn key(config: &Config, n: u32) -> TokenSource {
    let params = TokenParams::new().audience(format!("https://api{n}.example"));
    TokenSource::new(config.with_params(&params).expect("valid params"), [n as u8; 32])
}

fn metadata(issuer: &str, token_endpoint: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"issuer":"{issuer}","token_endpoint":"{token_endpoint}"}}"#),
    )
}

/// Discovers `issuer` at `now`, its metadata naming `token_endpoint`.
fn discover(source: &mut TokenSource, now: Timestamp, issuer: &str, token_endpoint: &str) {
    let out = send(source, now);
    assert_eq!(out.kind, RequestKind::Discovery);
    let event = source.handle_response(now, out.id, metadata(issuer, token_endpoint));
    assert!(matches!(event, Ok(Event::DiscoveryUpdated(_))), "{event:?}");
}

fn discovered_at(now: Timestamp) -> (Config, TokenSource, Discovery) {
    let config = issuer_config(ISSUER);
    let mut first = TokenSource::new(config.clone(), [1; 32]);
    discover(&mut first, now, ISSUER, "https://id.example/tenant/token");
    let discovery = first.discovery().expect("a discovery to share");
    (config, first, discovery)
}

#[test]
fn a_key_that_adopts_its_siblings_discovery_sends_its_token_request_at_once() {
    let (config, _, discovery) = discovered_at(at(0));
    assert_eq!(discovery.fetched_at(), Some(at(0)));
    assert_eq!(discovery.metadata().map(|m| m.issuer.as_str()), Some(ISSUER));
    for n in 2..5 {
        let mut sibling = key(&config, n);
        assert!(sibling.adopt_discovery(&discovery, at(10)));
        let out = send(&mut sibling, at(10));
        assert_eq!(out.kind, RequestKind::Token);
        assert_eq!(out.request.uri(), "https://id.example/tenant/token");
        // Adopting the same result again changes nothing.
        assert!(!sibling.adopt_discovery(&discovery, at(10)));
    }
}

#[test]
fn a_discovery_of_another_issuer_is_refused() {
    let (_, _, discovery) = discovered_at(at(0));
    let mut other = TokenSource::new(issuer_config("https://other.example"), [2; 32]);
    assert!(!other.adopt_discovery(&discovery, at(0)));
    assert_eq!(send(&mut other, at(0)).kind, RequestKind::Discovery);
}

#[test]
fn a_discovery_past_its_ttl_is_refused() {
    let (config, _, discovery) = discovered_at(at(0));
    let mut sibling = key(&config, 2);
    assert!(!sibling.adopt_discovery(&discovery, at(TTL)));
    assert_eq!(send(&mut sibling, at(TTL)).kind, RequestKind::Discovery);
}

#[test]
fn an_older_discovery_is_refused_and_a_newer_one_adopted() {
    let (config, _, older) = discovered_at(at(0));
    let mut sibling = key(&config, 2);
    discover(&mut sibling, at(100), ISSUER, "https://id.example/tenant/v2/token");
    assert!(!sibling.adopt_discovery(&older, at(100)));
    assert_eq!(
        send(&mut sibling, at(100)).request.uri(),
        "https://id.example/tenant/v2/token"
    );

    let newer = sibling.discovery().unwrap();
    assert!(newer.replaces(Some(&older)));
    assert!(!older.replaces(Some(&newer)));
    assert!(!newer.replaces(Some(&newer)));
    let mut third = key(&config, 3);
    assert!(third.adopt_discovery(&older, at(100)));
    assert!(third.adopt_discovery(&newer, at(100)));
    assert_eq!(
        send(&mut third, at(100)).request.uri(),
        "https://id.example/tenant/v2/token"
    );
}

#[test]
fn stale_metadata_is_not_shared_and_a_stale_key_takes_only_metadata_read_since() {
    let (config, mut first, before) = discovered_at(at(0));
    // The token endpoint is gone: the metadata is stale, and not shared.
    let out = send(&mut first, at(50));
    let event = first.handle_response(at(50), out.id, response(404, "")).unwrap();
    assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
    assert!(first.discovery().is_none());
    // Metadata read before the request that found it gone is not taken.
    let mut sibling = key(&config, 2);
    discover(&mut sibling, at(40), ISSUER, "https://id.example/tenant/token");
    assert!(!first.adopt_discovery(&sibling.discovery().unwrap(), at(50)));
    assert!(!first.adopt_discovery(&before, at(50)));
    // Read since, it is: the stale key sends its token request there.
    let mut third = key(&config, 3);
    discover(&mut third, at(60), ISSUER, "https://id.example/tenant/moved");
    assert!(first.adopt_discovery(&third.discovery().unwrap(), at(60)));
    let out = send(&mut first, at(60));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), "https://id.example/tenant/moved");
}

#[test]
fn a_failed_rediscovery_shares_the_kept_metadata_for_another_ttl() {
    let (config, mut first, discovery) = discovered_at(at(0));
    let out = send(&mut first, at(TTL + 1));
    assert_eq!(out.kind, RequestKind::Discovery);
    let event = first.handle_response(at(TTL + 1), out.id, response(503, "")).unwrap();
    assert!(matches!(event, Event::Fallback { .. }), "{event:?}");
    let kept = first.discovery().unwrap();
    assert_eq!(kept.fetched_at(), Some(at(TTL + 1)));
    assert!(kept.replaces(Some(&discovery)));
    let mut sibling = key(&config, 2);
    assert!(sibling.adopt_discovery(&kept, at(TTL + 2)));
    assert_eq!(send(&mut sibling, at(TTL + 2)).kind, RequestKind::Token);
}

#[test]
fn a_token_endpoint_config_has_nothing_to_share() {
    let mut source = common::source();
    assert!(!source.discovers());
    assert!(source.discovery().is_none());
    let (_, _, discovery) = discovered_at(at(0));
    assert!(!source.adopt_discovery(&discovery, at(0)));
}

// ------------------------------------------------------------ RFC 9728

const RESOURCE: &str = "https://api.example/mcp";
const AS: &str = "https://id.example/tenant";
const OTHER_AS: &str = "https://other.example";

fn resource_config() -> Config {
    Config::builder(CLIENT_ID, SECRET)
        .resource_server(RESOURCE)
        .discovery_ttl(Duration::from_secs(TTL))
        .jitter_seed(7)
        .build()
        .expect("valid config")
}

fn resource_document(server: &str) -> http::Response<Vec<u8>> {
    response(
        200,
        format!(r#"{{"resource":"{RESOURCE}","authorization_servers":["{server}"]}}"#),
    )
}

/// Reads the resource's document (naming `server`), then `server`'s metadata.
fn discover_resource(source: &mut TokenSource, now: Timestamp, server: &str) {
    let out = send(source, now);
    assert!(out
        .request
        .uri()
        .path()
        .starts_with("/.well-known/oauth-protected-resource"));
    let event = source.handle_response(now, out.id, resource_document(server));
    assert!(matches!(event, Ok(Event::ResourceMetadataUpdated(_))), "{event:?}");
    discover(source, now, server, &format!("{server}/token"));
}

#[test]
fn the_resource_discovery_and_its_pin_are_adopted_together() {
    let config = resource_config();
    let mut first = key(&config, 1);
    assert!(first.pins_next());
    discover_resource(&mut first, at(0), AS);
    assert!(!first.pins_next());
    let discovery = first.discovery().unwrap();
    assert_eq!(discovery.authorization_server(), Some(AS));

    let mut sibling = key(&config, 2);
    assert!(sibling.adopt_discovery(&discovery, at(1)));
    assert!(!sibling.pins_next());
    let out = send(&mut sibling, at(1));
    assert_eq!(out.kind, RequestKind::Token);
    assert_eq!(out.request.uri(), format!("{AS}/token").as_str());
}

/// The resource's document names another server after the first key pinned
/// one: a new key, past the TTL of the shared metadata, takes the pin and
/// refuses the document, as the first key itself does; nothing goes to the
/// other server.
#[test]
fn a_new_key_holds_to_the_pin_when_the_resource_names_another_server() {
    let config = resource_config();
    let mut first = key(&config, 1);
    discover_resource(&mut first, at(0), AS);
    let discovery = first.discovery().unwrap();
    for mut source in [key(&config, 2), first] {
        source.adopt_discovery(&discovery, at(TTL + 1));
        assert!(!source.pins_next(), "the pin is taken past the TTL too");
        let out = send(&mut source, at(TTL + 1));
        assert!(out
            .request
            .uri()
            .path()
            .starts_with("/.well-known/oauth-protected-resource"));
        let read = source.handle_response(at(TTL + 1), out.id, resource_document(OTHER_AS));
        let refused = match read {
            Err(error) => error,
            Ok(Event::Fallback { error }) => error,
            other => panic!("{other:?}"),
        };
        assert!(
            matches!(
                refused,
                Error::Discovery(DiscoveryError::AuthorizationServerNotAllowed { .. })
            ),
            "{refused:?}"
        );
        assert_eq!(
            source
                .discovery()
                .and_then(|d| d.authorization_server().map(str::to_owned))
                .as_deref(),
            Some(AS)
        );
    }
}

#[test]
fn a_discovery_pinning_another_server_is_refused_whole() {
    let config = resource_config();
    let mut first = key(&config, 1);
    discover_resource(&mut first, at(0), AS);
    let mut other = key(&config, 2);
    discover_resource(&mut other, at(10), OTHER_AS);
    let (pinned, elsewhere) = (first.discovery().unwrap(), other.discovery().unwrap());
    assert!(!elsewhere.replaces(Some(&pinned)), "a client keeps its first pin");
    assert!(!first.adopt_discovery(&elsewhere, at(20)));
    assert_eq!(send(&mut first, at(20)).request.uri(), format!("{AS}/token").as_str());
}

#[test]
fn a_key_following_a_hint_neither_shares_nor_adopts() {
    let config = resource_config();
    let mut first = key(&config, 1);
    discover_resource(&mut first, at(0), AS);
    let discovery = first.discovery().unwrap();
    let mut hinted = key(&config, 2);
    assert!(hinted.follow_resource_metadata(
        "https://api.example/mcp/tools",
        "https://api.example/.well-known/oauth-protected-resource/mcp/tools",
    ));
    assert!(!hinted.adopt_discovery(&discovery, at(1)));
    assert!(hinted.discovery().is_none());
}

// ------------------------------------------------------------ schedules

use client_credentials::Action;
use proptest::prelude::*;

/// One turn of a schedule: after `advance` seconds, key `key` is stepped
/// until it is served, fails or waits; its discovery requests get a 503
/// when `discovery_fails`, its token requests a 404 when `token_gone`.
#[derive(Debug, Clone)]
struct Turn {
    key: usize,
    advance: u64,
    discovery_fails: bool,
    token_gone: bool,
}

fn turns() -> impl Strategy<Value = Vec<Turn>> {
    let turn = (
        0..4usize,
        0..400u64,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(key, advance, discovery_fails, token_gone)| Turn {
            key,
            advance,
            discovery_fails,
            token_gone,
        });
    prop::collection::vec(turn, 1..40)
}

proptest! {
    /// Four keys of one client, stepped one at a time through the shared
    /// discovery as the adapters use it (adopt before a step, publish
    /// after): a key reads the metadata only when the client has no usable
    /// result (none, past its TTL), or when its token endpoint answered
    /// 404 to a request sent no earlier than the client's result was read.
    #[test]
    fn a_key_discovers_only_when_the_client_has_no_usable_result(schedule in turns()) {
        let config = issuer_config(ISSUER);
        let mut keys: Vec<TokenSource> = (0..4).map(|n| key(&config, n)).collect();
        let mut latest: Option<Discovery> = None;
        // When each key's token endpoint last answered 404 (sent then).
        let mut gone_at: Vec<Option<Timestamp>> = vec![None; 4];
        let mut now = at(0);
        for turn in schedule {
            now = now.saturating_add(Duration::from_secs(turn.advance));
            let source = &mut keys[turn.key];
            if let Some(discovery) = &latest {
                source.adopt_discovery(discovery, now);
            }
            for _ in 0..6 {
                let out = match source.poll(now) {
                    Action::Send(out) => out,
                    _ => break,
                };
                let answer = match out.kind {
                    RequestKind::Discovery => {
                        let usable = latest.as_ref().and_then(Discovery::fetched_at).filter(|fetched| {
                            now < fetched.saturating_add(Duration::from_secs(TTL))
                        });
                        if let Some(fetched) = usable {
                            let gone_since = gone_at[turn.key].is_some_and(|gone| fetched <= gone);
                            prop_assert!(gone_since, "{:?} discovered at {now:?} with the client's result of {fetched:?}", turn);
                        }
                        match turn.discovery_fails {
                            true => response(503, ""),
                            false => metadata(ISSUER, "https://id.example/tenant/token"),
                        }
                    }
                    _ => {
                        prop_assert_eq!(out.request.uri(), "https://id.example/tenant/token");
                        if turn.token_gone {
                            gone_at[turn.key] = Some(now);
                            response(404, "")
                        } else {
                            common::token_ok("t", 900)
                        }
                    }
                };
                let _ = source.handle_response(now, out.id, answer);
                if let Some(discovery) = source.discovery() {
                    if discovery.replaces(latest.as_ref()) {
                        latest = Some(discovery);
                    }
                }
            }
        }
    }
}

proptest! {
    /// Four keys of a resource-server client, stepped one at a time through
    /// the shared discovery, while the resource's document names one server
    /// or another from turn to turn: every token request of every key goes
    /// to the server the client's first document named.
    #[test]
    fn every_key_holds_to_the_server_the_client_pinned_first(
        schedule in turns(),
        names_other in prop::collection::vec(any::<bool>(), 40),
    ) {
        let config = resource_config();
        let mut keys: Vec<TokenSource> = (0..4).map(|n| key(&config, n)).collect();
        let mut latest: Option<Discovery> = None;
        let mut pinned: Option<&str> = None;
        let mut now = at(0);
        for (turn, other) in schedule.iter().zip(names_other) {
            now = now.saturating_add(Duration::from_secs(turn.advance));
            let source = &mut keys[turn.key];
            if let Some(discovery) = &latest {
                source.adopt_discovery(discovery, now);
            }
            for _ in 0..6 {
                let out = match source.poll(now) {
                    Action::Send(out) => out,
                    _ => break,
                };
                let uri = out.request.uri().to_string();
                let answer = if uri.contains("/.well-known/oauth-protected-resource") {
                    let named = if other { OTHER_AS } else { AS };
                    resource_document(named)
                } else if uri.contains("/.well-known/") {
                    let server = if uri.starts_with(OTHER_AS) { OTHER_AS } else { AS };
                    metadata(server, &format!("{server}/token"))
                } else {
                    let server = pinned.expect("a token request after a document was read");
                    prop_assert!(uri.starts_with(server), "{uri} while {server} is pinned");
                    common::token_ok("t", 900)
                };
                let event = source.handle_response(now, out.id, answer);
                if let Ok(Event::ResourceMetadataUpdated(metadata)) = &event {
                    let named = if metadata.authorization_server() == OTHER_AS { OTHER_AS } else { AS };
                    pinned.get_or_insert(named);
                }
                if let Some(discovery) = source.discovery() {
                    if discovery.replaces(latest.as_ref()) {
                        latest = Some(discovery);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------ the driver

use client_credentials::driver::{Background, Call, Driver, Outcome, Step};

/// A driver of a sibling key, discovered at 0 with a token fetched then
/// (lifetime 1200 s: refreshed from 900 s, usable until 1200 s).
fn discovered_driver(config: &Config) -> Driver {
    let mut driver = Driver::new(key(config, 5));
    let mut call = Call::token();
    loop {
        let mut next = match driver.step(at(0), &mut call) {
            Step::Ready(_) => return driver,
            Step::Work(work) => Some(work),
            other => panic!("{other:?}"),
        };
        while let Some(work) = next {
            let outcome = match work.task {
                client_credentials::driver::Task::Send(outgoing, _) => Outcome::Response(match outgoing.kind {
                    RequestKind::Discovery => metadata(ISSUER, "https://id.example/tenant/token"),
                    _ => common::token_ok("t", 1200),
                }),
                _ => Outcome::Done,
            };
            next = driver.handle(at(0), work.ticket, outcome);
        }
    }
}

#[test]
fn a_held_key_is_served_its_unexpired_token_and_its_refresher_sleeps() {
    let config = issuer_config(ISSUER);
    let mut driver = discovered_driver(&config);
    // Past the TTL and the refresh time, the token still usable.
    let now = at(TTL + 400);
    assert!(driver.discovery_due(now));
    assert_eq!(driver.background(now), Background::Refresh);
    driver.hold_discovery(true);
    assert_eq!(driver.background(now), Background::Sleep(None));
    assert!(matches!(driver.step(now, &mut Call::token()), Step::Ready(token) if token.secret() == "t"));
    // A forced refresh is not served the token: it waits for the other read.
    let mut forced = driver.refresh(now).unwrap();
    assert!(matches!(driver.step(now, &mut forced), Step::Wait { until: None }));
    // Released, the key reads the metadata itself.
    driver.hold_discovery(false);
    let Step::Work(work) = driver.step(now, &mut forced) else {
        panic!("work")
    };
    assert!(driver.is_discovering(), "{:?}", work.task);
}

#[test]
fn a_held_key_without_a_usable_token_waits_until_woken() {
    let config = issuer_config(ISSUER);
    let mut driver = discovered_driver(&config);
    let now = at(TTL + 1200);
    driver.hold_discovery(true);
    assert!(matches!(
        driver.step(now, &mut Call::token()),
        Step::Wait { until: None }
    ));
    // Within the TTL, or with a fresh token, the hold changes nothing.
    let mut fresh = discovered_driver(&config);
    fresh.hold_discovery(true);
    assert!(!fresh.discovery_due(at(10)));
    assert!(matches!(fresh.step(at(10), &mut Call::token()), Step::Ready(_)));
}
