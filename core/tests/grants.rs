//! The grants beside client credentials: token exchange (RFC 8693) and the
//! JWT bearer grant (RFC 7523 §2.1), as scenarios on a simulated clock:
//! what each request carries with every client authentication, what the
//! answers may be, how long their tokens live, and when the subject is read.

mod common;

use client_credentials::driver::{Call, Driver, Outcome, Step, Task, Work};
use client_credentials::{
    token_type, AssertionRole, AssertionSource, ClientAuth, Config, ConfigBuilder, ConfigError, Error, Event, Grant,
    GrantError, TokenExchange, TokenSource, JWT_BEARER_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE,
};
use common::*;

const HMAC_SECRET: &str = "hmac-secret-of-32-bytes-or-more/+";

/// A JWT issued by `iss` for `sub`, expiring `exp` seconds after START.
fn subject_jwt(iss: &str, sub: &str, exp: u64) -> String {
    jwt(&format!(r#"{{"iss":"{iss}","sub":"{sub}","exp":{}}}"#, START + exp))
}

fn fixed(token: &str) -> AssertionSource {
    let token = token.to_owned();
    AssertionSource::callback(move || Ok::<_, String>(token.clone()))
}

fn exchange_config(exchange: TokenExchange) -> ConfigBuilder {
    builder().auth(ClientAuth::Post).grant(Grant::token_exchange(exchange))
}

fn work<T: std::fmt::Debug>(step: Step<T>) -> Work {
    match step {
        Step::Work(work) => work,
        other => panic!("expected work, got {other:?}"),
    }
}

fn values(request: &http::Request<Vec<u8>>, name: &str) -> Vec<String> {
    form(request)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn a_token_exchange_sends_the_rfc_8693_members() {
    let subject = subject_jwt("https://k8s.example", "system:serviceaccount:ns:app", 600);
    let exchange = TokenExchange::new(fixed(&subject), token_type::JWT)
        .actor(fixed("actor-token"), token_type::ACCESS_TOKEN)
        .requested_token_type(token_type::ACCESS_TOKEN)
        .audience("https://api.example")
        .resource("https://api.example/v1")
        .scope("read");
    let config = exchange_config(exchange)
        .scope("base")
        .audience("gateway")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    let request = &out.request;
    assert_eq!(
        form_value(request, "grant_type").as_deref(),
        Some(TOKEN_EXCHANGE_GRANT_TYPE)
    );
    assert_eq!(form_value(request, "subject_token").as_deref(), Some(subject.as_str()));
    assert_eq!(
        form_value(request, "subject_token_type").as_deref(),
        Some(token_type::JWT)
    );
    assert_eq!(form_value(request, "actor_token").as_deref(), Some("actor-token"));
    assert_eq!(
        form_value(request, "actor_token_type").as_deref(),
        Some(token_type::ACCESS_TOKEN)
    );
    assert_eq!(
        form_value(request, "requested_token_type").as_deref(),
        Some(token_type::ACCESS_TOKEN)
    );
    assert_eq!(form_value(request, "scope").as_deref(), Some("base read"));
    assert_eq!(values(request, "audience"), ["gateway", "https://api.example"]);
    assert_eq!(values(request, "resource"), ["https://api.example/v1"]);
    assert_eq!(form_value(request, "client_id").as_deref(), Some(CLIENT_ID));
}

#[test]
fn every_client_authentication_combines_with_every_grant() {
    let subject = subject_jwt("https://idp-a.example", "workload", 600);
    let grants = [
        Grant::token_exchange(TokenExchange::new(fixed(&subject), token_type::JWT)),
        Grant::jwt_bearer(fixed(&subject)),
    ];
    let client_assertion = jwt(&format!(r#"{{"iss":"{CLIENT_ID}","exp":{}}}"#, START + 600));
    let mut methods = vec![
        ClientAuth::Basic,
        ClientAuth::Post,
        ClientAuth::Json,
        ClientAuth::ClientSecretJwt,
        ClientAuth::Assertion(fixed(&client_assertion)),
        ClientAuth::TlsClientAuth,
        ClientAuth::None,
    ];
    #[cfg(feature = "signing")]
    methods.push(ClientAuth::PrivateKeyJwt(
        client_credentials::JwtKey::from_pem(include_str!("keys/ec.pem"), client_credentials::JwsAlgorithm::Es256)
            .unwrap(),
    ));
    for grant in &grants {
        for auth in &methods {
            let config = Config::builder(CLIENT_ID, HMAC_SECRET)
                .token_endpoint(TOKEN_URL)
                .auth(auth.clone())
                .grant(grant.clone())
                .build()
                .unwrap_or_else(|e| panic!("{auth:?} with {}: {e}", grant.grant_type()));
            let mut source = TokenSource::new(config, [7; 32]);
            let out = send(&mut source, at(0));
            let members: serde_json::Map<String, serde_json::Value> = if *auth == ClientAuth::Json {
                serde_json::from_slice(out.request.body()).unwrap()
            } else {
                form(&out.request).into_iter().map(|(k, v)| (k, v.into())).collect()
            };
            let member = |name: &str| members.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            assert_eq!(member("grant_type").as_deref(), Some(grant.grant_type()), "{auth:?}");
            let carried = if grant.as_jwt_bearer().is_some() {
                member("assertion")
            } else {
                member("subject_token")
            };
            assert_eq!(carried.as_deref(), Some(subject.as_str()), "{auth:?}");
            let has_secret =
                members.contains_key("client_secret") || out.request.headers().contains_key("authorization");
            assert_eq!(
                has_secret,
                matches!(auth, ClientAuth::Basic | ClientAuth::Post | ClientAuth::Json),
                "{auth:?}"
            );
            if *auth == ClientAuth::None {
                assert_eq!(member("client_id").as_deref(), Some(CLIENT_ID));
                assert!(!members.contains_key("client_assertion"));
            }
            let token = source.handle_response(at(1), out.id, token_ok("issued", 3600));
            assert!(matches!(token, Ok(Event::TokenUpdated(_))), "{auth:?}: {token:?}");
        }
    }
}

#[test]
fn the_jwt_bearer_grant_sends_a_jwt_as_its_assertion_and_refuses_anything_else() {
    let assertion = subject_jwt("https://idp-a.example", "alice", 300);
    let config = builder()
        .grant(Grant::jwt_bearer(fixed(&assertion)))
        .scope("api")
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let out = send(&mut source, at(0));
    assert_eq!(
        form_value(&out.request, "grant_type").as_deref(),
        Some(JWT_BEARER_GRANT_TYPE)
    );
    assert_eq!(
        form_value(&out.request, "assertion").as_deref(),
        Some(assertion.as_str())
    );
    assert_eq!(form_value(&out.request, "scope").as_deref(), Some("api"));

    let config = builder().grant(Grant::jwt_bearer(fixed("opaque"))).build().unwrap();
    let mut source = TokenSource::new(config, [7; 32]);
    let error = failed(&mut source, at(0));
    assert!(
        matches!(&error, Error::Grant(GrantError::Invalid { role: AssertionRole::Subject, source_name, .. }) if source_name == "callback"),
        "{error:?}"
    );
}

#[test]
fn a_subject_that_cannot_be_read_is_an_error_naming_its_source_and_nothing_is_sent() {
    // A file nobody has read yet.
    let exchange = TokenExchange::new(AssertionSource::file("/run/tokens/sts"), token_type::JWT);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let error = failed(&mut source, at(0));
    assert!(error.to_string().contains("file /run/tokens/sts"), "{error}");
    assert!(matches!(
        error,
        Error::Grant(GrantError::Unavailable {
            role: AssertionRole::Subject,
            ..
        })
    ));

    // A callback that fails, and one that returns nothing.
    let failing = AssertionSource::callback(|| Err::<String, _>("the upstream client is down"));
    let exchange = TokenExchange::new(failing, token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let error = failed(&mut source, at(0));
    assert!(error.to_string().contains("callback"), "{error}");
    assert!(error.to_string().contains("the upstream client is down"), "{error}");

    let exchange = TokenExchange::new(fixed("  "), token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    assert!(matches!(
        failed(&mut source, at(0)),
        Error::Grant(GrantError::Invalid { .. })
    ));
}

#[test]
fn an_expired_subject_is_not_sent() {
    let subject = subject_jwt("https://k8s.example", "app", 60);
    let exchange = TokenExchange::new(fixed(&subject), token_type::JWT);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let error = failed(&mut source, at(60));
    assert!(
        matches!(error, Error::Grant(GrantError::Expired { expired_at, .. }) if expired_at == at(60)),
        "{error:?}"
    );
}

#[test]
fn an_opaque_actor_token_is_sent_as_it_is() {
    let exchange = TokenExchange::new(fixed("opaque-subject"), token_type::ACCESS_TOKEN)
        .actor(fixed("opaque-actor"), token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let out = send(&mut source, at(0));
    assert_eq!(
        form_value(&out.request, "subject_token").as_deref(),
        Some("opaque-subject")
    );
    assert_eq!(form_value(&out.request, "actor_token").as_deref(), Some("opaque-actor"));
}

fn answer(source: &mut TokenSource, body: &str) -> Result<Event, Error> {
    let out = send(source, at(0));
    source.handle_response(at(0), out.id, response(200, body.to_owned()))
}

#[test]
fn an_issued_token_type_other_than_the_one_asked_for_is_refused_and_nothing_cached() {
    let exchange = TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN).requested_token_type(token_type::JWT);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let error = answer(
        &mut source,
        &format!(
            r#"{{"access_token":"t","token_type":"N_A","issued_token_type":"{}"}}"#,
            token_type::ID_TOKEN
        ),
    )
    .unwrap_err();
    assert!(
        matches!(&error, Error::Grant(GrantError::IssuedTokenType { expected, issued })
            if expected == token_type::JWT && issued == token_type::ID_TOKEN),
        "{error:?}"
    );
    assert!(source.usable(at(1)).is_none());

    // Nothing asked for: an access token (or a JWT) is what may come back.
    let exchange = TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let refresh = format!(
        r#"{{"access_token":"t","token_type":"Bearer","issued_token_type":"{}"}}"#,
        token_type::REFRESH_TOKEN
    );
    assert!(matches!(
        answer(&mut source, &refresh),
        Err(Error::Grant(GrantError::IssuedTokenType { .. }))
    ));
    let mut source = TokenSource::new(
        exchange_config(TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN))
            .build()
            .unwrap(),
        [7; 32],
    );
    let access = format!(
        r#"{{"access_token":"t","token_type":"Bearer","issued_token_type":"{}","expires_in":60}}"#,
        token_type::ACCESS_TOKEN
    );
    assert!(matches!(answer(&mut source, &access), Ok(Event::TokenUpdated(_))));
}

#[test]
fn n_a_is_accepted_only_when_another_token_type_was_asked_for() {
    let body = format!(
        r#"{{"access_token":"grant-jwt","token_type":"N_A","issued_token_type":"{}","expires_in":60}}"#,
        token_type::JWT
    );
    let asked = TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN).requested_token_type(token_type::JWT);
    let mut source = TokenSource::new(exchange_config(asked).build().unwrap(), [7; 32]);
    match answer(&mut source, &body) {
        Ok(Event::TokenUpdated(token)) => {
            assert_eq!(token.secret(), "grant-jwt");
            assert_eq!(token.token_type(), "N_A");
        }
        other => panic!("N_A accepted when a JWT was asked for: {other:?}"),
    }

    let not_asked = TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN);
    let body = r#"{"access_token":"grant-jwt","token_type":"N_A","expires_in":60}"#;
    let mut source = TokenSource::new(exchange_config(not_asked).build().unwrap(), [7; 32]);
    assert!(matches!(answer(&mut source, body), Err(Error::InvalidResponse { .. })));
    // Nor for the client credentials grant.
    let mut source = TokenSource::new(config(), [7; 32]);
    assert!(matches!(answer(&mut source, body), Err(Error::InvalidResponse { .. })));
}

#[test]
fn an_opaque_token_issued_without_expires_in_lives_no_longer_than_its_subject() {
    let subject = subject_jwt("https://k8s.example", "app", 600);
    let exchange = TokenExchange::new(fixed(&subject), token_type::JWT);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let Ok(Event::TokenUpdated(token)) = answer(&mut source, r#"{"access_token":"opaque","token_type":"Bearer"}"#)
    else {
        panic!("a token")
    };
    assert_eq!(token.expires_at(), Some(at(600)));

    // An opaque subject says nothing: the default lifetime applies.
    let exchange = TokenExchange::new(fixed("opaque-subject"), token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let Ok(Event::TokenUpdated(token)) = answer(&mut source, r#"{"access_token":"opaque","token_type":"Bearer"}"#)
    else {
        panic!("a token")
    };
    assert_eq!(token.expires_at(), Some(at(3600)));
}

#[test]
fn a_refresh_token_from_an_exchange_is_not_used_every_refresh_is_a_new_exchange() {
    let exchange = TokenExchange::new(fixed("subject"), token_type::ACCESS_TOKEN);
    let mut source = TokenSource::new(exchange_config(exchange).build().unwrap(), [7; 32]);
    let out = send(&mut source, at(0));
    let body = r#"{"access_token":"t1","token_type":"Bearer","expires_in":600,"refresh_token":"r1"}"#;
    source.handle_response(at(0), out.id, response(200, body)).unwrap();
    let out = send(&mut source, at(600));
    assert_eq!(
        form_value(&out.request, "grant_type").as_deref(),
        Some(TOKEN_EXCHANGE_GRANT_TYPE)
    );
    assert_eq!(form_value(&out.request, "refresh_token"), None);
}

/// Steps a driver caller through the subject file read (answering with
/// `content`) to the token request it sends.
fn read_then_send(
    driver: &mut Driver,
    now: client_credentials::Timestamp,
    call: &mut Call,
    content: Option<&str>,
) -> Work {
    let read = work(driver.step(now, call));
    assert!(
        matches!(
            read.task,
            Task::ReadAssertion {
                role: AssertionRole::Subject,
                ..
            }
        ),
        "{:?}",
        read.task
    );
    let outcome = Outcome::Assertion(content.map(|c| Ok(c.to_owned())));
    assert!(driver.handle(now, read.ticket, outcome).is_none());
    work(driver.step(now, call))
}

fn sent_subject(work: &Work) -> Option<String> {
    let Task::Send(outgoing, _) = &work.task else {
        panic!("a request, got {:?}", work.task)
    };
    form_value(&outgoing.request, "subject_token")
}

fn answer_work(driver: &mut Driver, now: client_credentials::Timestamp, work: Work, token: &str, expires_in: u64) {
    let mut next = driver.handle(now, work.ticket, Outcome::Response(token_ok(token, expires_in)));
    while let Some(work) = next {
        next = driver.handle(now, work.ticket, Outcome::Done);
    }
}

#[test]
fn a_subject_that_expires_before_the_refresh_is_read_again_before_the_refresh() {
    let exchange = TokenExchange::new(AssertionSource::file("/run/tokens/sts"), token_type::JWT);
    let config = exchange_config(exchange).build().unwrap();
    let mut driver = Driver::new(TokenSource::new(config, [7; 32]));
    let mut call = Call::token();
    // The subject lives 10 minutes; the issued token an hour.
    let first = subject_jwt("https://k8s.example", "app", 600);
    let sending = read_then_send(&mut driver, at(0), &mut call, Some(&first));
    assert_eq!(sent_subject(&sending).as_deref(), Some(first.as_str()));
    answer_work(&mut driver, at(0), sending, "t1", 3600);
    assert!(matches!(driver.step(at(1), &mut call), Step::Ready(_)));

    // At the refresh (55 min) the first subject has expired: the file is
    // read again first, and the rotated subject is what goes out.
    let rotated = subject_jwt("https://k8s.example", "app", 4000);
    let mut call = Call::token();
    let sending = read_then_send(&mut driver, at(3300), &mut call, Some(&rotated));
    assert_eq!(sent_subject(&sending).as_deref(), Some(rotated.as_str()));
    answer_work(&mut driver, at(3300), sending, "t2", 3600);

    // Not rotated: the expired subject is not sent, and the error names the file.
    let mut call = Call::token();
    let read = work(driver.step(at(7000), &mut call));
    assert!(driver.handle(at(7000), read.ticket, Outcome::Assertion(None)).is_none());
    match driver.step(at(7000), &mut call) {
        Step::Failed(Error::Grant(GrantError::Expired { source_name, .. })) => {
            assert_eq!(source_name, "file /run/tokens/sts");
        }
        other => panic!("expected the expired subject's error, got {other:?}"),
    }
}

#[test]
fn the_subject_file_is_read_before_the_store_is_loaded() {
    let exchange = TokenExchange::new(AssertionSource::file("/run/tokens/sts"), token_type::JWT);
    let config = exchange_config(exchange).build().unwrap();
    let unread = config.fingerprint();
    let mut driver = Driver::new(TokenSource::new(config.clone(), [7; 32])).with_store();
    let mut call = Call::token();
    let read = work(driver.step(at(0), &mut call));
    assert!(matches!(
        read.task,
        Task::ReadAssertion {
            role: AssertionRole::Subject,
            ..
        }
    ));
    let subject = subject_jwt("https://k8s.example", "app", 600);
    driver.handle(at(0), read.ticket, Outcome::Assertion(Some(Ok(subject))));
    let load = work(driver.step(at(0), &mut call));
    assert!(matches!(load.task, Task::Load), "{:?}", load.task);
    // The store is keyed by whom the subject speaks for.
    assert_ne!(config.fingerprint(), unread);
}

#[test]
fn the_cache_key_follows_whom_the_subject_speaks_for_not_the_token_itself() {
    let key_after = |subject: &str| {
        let exchange = TokenExchange::new(fixed(subject), token_type::JWT);
        let config = exchange_config(exchange).build().unwrap();
        let mut source = TokenSource::new(config.clone(), [7; 32]);
        send(&mut source, at(0));
        config.fingerprint()
    };
    let app = key_after(&subject_jwt("https://k8s.example", "app", 600));
    // A rotated token for the same service account: the same key.
    assert_eq!(app, key_after(&subject_jwt("https://k8s.example", "app", 900)));
    // Another service account, another issuer, an opaque token: other keys.
    let other = key_after(&subject_jwt("https://k8s.example", "other", 600));
    let elsewhere = key_after(&subject_jwt("https://k8s-b.example", "app", 600));
    let opaque = key_after("opaque-a");
    assert_ne!(app, other);
    assert_ne!(app, elsewhere);
    assert_ne!(opaque, key_after("opaque-b"));
    assert_ne!(opaque, app);
}

#[test]
fn token_exchange_settings_are_checked_when_built() {
    let refused = |exchange: TokenExchange| exchange_config(exchange).build().unwrap_err();
    assert!(matches!(
        refused(TokenExchange::new(fixed("s"), "jwt")),
        ConfigError::InvalidTokenType {
            field: "subject_token_type",
            ..
        }
    ));
    assert!(matches!(
        refused(TokenExchange::new(fixed("s"), token_type::JWT).actor(fixed("a"), "")),
        ConfigError::InvalidTokenType {
            field: "actor_token_type",
            ..
        }
    ));
    assert!(matches!(
        refused(TokenExchange::new(fixed("s"), token_type::JWT).requested_token_type("access token")),
        ConfigError::InvalidTokenType {
            field: "requested_token_type",
            ..
        }
    ));
    assert!(matches!(
        refused(TokenExchange::new(fixed("s"), token_type::JWT).resource("https://api.example/#x")),
        ConfigError::InvalidResource { .. }
    ));
    assert!(matches!(
        refused(TokenExchange::new(fixed("s"), token_type::JWT).scope("a\"b")),
        ConfigError::InvalidScope { .. }
    ));
    // A public client may exchange, but not use the client credentials grant.
    assert!(exchange_config(TokenExchange::new(fixed("s"), token_type::SAML2))
        .auth(ClientAuth::None)
        .build()
        .is_ok());
    assert_eq!(
        builder().auth(ClientAuth::None).build().unwrap_err(),
        ConfigError::UnauthenticatedClientCredentials
    );
    for name in [
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "assertion",
    ] {
        assert!(matches!(
            builder().param(name, "x").build(),
            Err(ConfigError::ReservedParameter { .. })
        ));
    }
}

#[test]
fn subject_and_actor_tokens_never_show_in_debug_output_or_errors() {
    let subject = subject_jwt("https://k8s.example", "app", 600);
    let exchange = TokenExchange::new(fixed(&subject), token_type::JWT).actor(fixed("actor-secret"), token_type::JWT);
    let config = exchange_config(exchange).build().unwrap();
    let mut source = TokenSource::new(config.clone(), [7; 32]);
    let out = send(&mut source, at(0));
    let echoed = format!(r#"{{"error":"invalid_grant","error_description":"bad {subject} actor-secret"}}"#);
    let error = source
        .handle_response(at(0), out.id, response(400, echoed))
        .unwrap_err();
    for shown in [
        format!("{error}"),
        format!("{error:?}"),
        format!("{config:?}"),
        format!("{source:?}"),
    ] {
        assert!(!shown.contains(&subject), "{shown}");
        assert!(!shown.contains("actor-secret"), "{shown}");
    }
}
