//! Token exchange (RFC 8693) and the JWT bearer grant (RFC 7523 §2.1)
//! against the test issuer: workload identity from a file, identity
//! chaining across two issuers, the answers refused, and the store key.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use client_credentials::{
    token_type, AssertionSource, ClientAuth, Config, Error, Grant, GrantError, TokenExchange, JWT_BEARER_GRANT_TYPE,
    TOKEN_EXCHANGE_GRANT_TYPE,
};
use client_credentials_testkit::{TestIssuer, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};

use crate::{Adapter, Options, StoreChoice};

/// An unsigned JWT (the test issuer reads it without verifying) issued by
/// `iss` for `sub`, expiring in `secs` seconds.
pub fn subject_jwt(iss: &str, sub: &str, secs: u64) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = format!(r#"{{"iss":"{iss}","sub":"{sub}","exp":{}}}"#, now + secs);
    format!("{}.{}.c2ln", b64(r#"{"alg":"RS256","kid":"k8s"}"#), b64(&claims))
}

fn write(path: &Path, content: &str) {
    // Replaced by a rename, as the kubelet does.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn sts() -> TestIssuer {
    TestIssuer::builder().public_client("workload").start()
}

fn exchange_config(issuer: &TestIssuer, subject: &Path) -> Config {
    Config::builder("workload", "")
        .token_endpoint(issuer.token_endpoint())
        .auth(ClientAuth::None)
        .grant(Grant::token_exchange(
            TokenExchange::new(AssertionSource::file(subject), token_type::JWT).audience("https://api.example"),
        ))
        .build()
        .unwrap()
}

/// A Kubernetes-style projected token is exchanged at a public STS with
/// only `client_id`, and the file is read again when the kubelet rotates it.
pub fn a_token_exchange_reads_its_subject_file_and_again_when_rotated<A: Adapter>() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = subject_jwt("https://k8s.example", "system:serviceaccount:ns:app", 600);
    write(&path, &format!("{first}\n"));
    let client = A::build(exchange_config(&issuer, &path), Options::default());
    A::token(&client).unwrap();

    let rotated = subject_jwt("https://k8s.example", "system:serviceaccount:ns:app", 900);
    write(&path, &rotated);
    A::refresh(&client).unwrap();
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 2, "{}", A::NAME);
    for (request, subject) in requests.iter().zip([&first, &rotated]) {
        assert_eq!(request.grant_type.as_deref(), Some(TOKEN_EXCHANGE_GRANT_TYPE));
        assert_eq!(request.param("subject_token"), Some(subject.as_str()), "{}", A::NAME);
        assert_eq!(request.param("subject_token_type"), Some(token_type::JWT));
        assert_eq!(request.param("audience"), Some("https://api.example"));
        assert_eq!(request.param("client_id"), Some("workload"));
        assert_eq!(request.param("client_secret"), None);
        assert_eq!(request.header("authorization"), None);
    }
}

/// A subject file that is missing is an error naming the file; nothing is sent.
pub fn a_missing_subject_file_is_an_error_naming_it<A: Adapter>() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let client = A::build(exchange_config(&issuer, &path), Options::default());
    match A::token(&client) {
        Err(error @ Error::Grant(GrantError::Unavailable { .. })) => {
            assert!(error.to_string().contains("absent"), "{}: {error}", A::NAME);
        }
        other => panic!("{}: expected the subject's error, got {other:?}", A::NAME),
    }
    assert!(issuer.token_requests().is_empty(), "nothing was sent");
}

/// The JWT bearer grant with client authentication: the assertion is sent
/// as `assertion`, the client authenticates with its secret.
pub fn a_jwt_bearer_grant_sends_its_assertion<A: Adapter>() {
    let issuer = TestIssuer::start();
    let assertion = subject_jwt("https://idp.example", "alice", 300);
    let sent = assertion.clone();
    let config = Config::builder(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .token_endpoint(issuer.token_endpoint())
        .grant(Grant::jwt_bearer(AssertionSource::callback(move || {
            Ok::<_, String>(sent.clone())
        })))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    A::token(&client).unwrap();
    let requests = issuer.token_requests();
    assert_eq!(requests[0].grant_type.as_deref(), Some(JWT_BEARER_GRANT_TYPE));
    assert_eq!(requests[0].param("assertion"), Some(assertion.as_str()));
    assert_eq!(requests[0].client_id.as_deref(), Some(DEFAULT_CLIENT_ID));
}

/// Identity chaining across trust domains: a token exchange at issuer A
/// asks for a JWT authorization grant for B (`token_type` `N_A` accepted
/// because it was asked for); B's client presents it with the JWT bearer
/// grant, reading A's latest token through a callback that never blocks.
pub fn an_identity_chain_exchanges_at_one_issuer_and_presents_the_grant_at_another<A: Adapter>() {
    let domain_a = TestIssuer::builder().client("client-a", "secret-a").start();
    let domain_b = TestIssuer::builder().client("client-b", "secret-b").start();
    let user = subject_jwt(&domain_a.issuer_url(), "alice", 600);
    let config_a = Config::builder("client-a", "secret-a")
        .token_endpoint(domain_a.token_endpoint())
        .grant(Grant::token_exchange(
            TokenExchange::new(
                AssertionSource::callback(move || Ok::<_, String>(user.clone())),
                token_type::JWT,
            )
            .requested_token_type(token_type::JWT)
            .audience(domain_b.issuer_url()),
        ))
        .build()
        .unwrap();
    // A's latest grant, kept up to date by its update callback.
    let latest: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = Arc::clone(&latest);
    let options = Options {
        on_update: Some(Arc::new(move |token| {
            *keep.lock().unwrap() = Some(token.secret().to_owned());
        })),
        ..Options::default()
    };
    let client_a = A::build(config_a, options);
    let grant = A::token(&client_a).unwrap();
    assert_eq!(grant.token_type(), "N_A", "{}", A::NAME);

    let read = Arc::clone(&latest);
    let chained = AssertionSource::callback(move || read.lock().unwrap().clone().ok_or("domain A has no grant yet"));
    let config_b = Config::builder("client-b", "secret-b")
        .token_endpoint(domain_b.token_endpoint())
        .grant(Grant::jwt_bearer(chained))
        .build()
        .unwrap();
    let client_b = A::build(config_b, Options::default());
    let token_b = A::token(&client_b).unwrap();
    assert_eq!(token_b.token_type(), "Bearer");

    let at_a = domain_a.token_requests();
    assert_eq!(at_a[0].param("requested_token_type"), Some(token_type::JWT));
    assert_eq!(at_a[0].param("audience"), Some(domain_b.issuer_url().as_str()));
    let at_b = domain_b.token_requests();
    assert_eq!(at_b[0].grant_type.as_deref(), Some(JWT_BEARER_GRANT_TYPE));
    assert_eq!(at_b[0].param("assertion"), Some(grant.secret()));
}

/// An `issued_token_type` other than the one asked for is a typed error
/// and no token is cached: the next call asks again.
pub fn an_issued_token_type_other_than_the_one_asked_for_is_refused<A: Adapter>() {
    let issuer = TestIssuer::start();
    issuer.set_issued_token_type(Some(token_type::ID_TOKEN));
    let subject = subject_jwt("https://idp.example", "alice", 600);
    let config = Config::builder(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        .token_endpoint(issuer.token_endpoint())
        .max_attempts(1)
        .grant(Grant::token_exchange(
            TokenExchange::new(
                AssertionSource::callback(move || Ok::<_, String>(subject.clone())),
                token_type::JWT,
            )
            .requested_token_type(token_type::ACCESS_TOKEN),
        ))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    match A::token(&client) {
        Err(Error::Grant(GrantError::IssuedTokenType { expected, issued })) => {
            assert_eq!(expected, token_type::ACCESS_TOKEN);
            assert_eq!(issued, token_type::ID_TOKEN);
        }
        other => panic!("{}: expected the issued_token_type error, got {other:?}", A::NAME),
    }
}

/// The store key covers whom the subject speaks for: a pod reading the
/// same path with another service account's token is not served the first
/// one's token; a rotated token for the same account is.
pub fn the_store_key_differs_per_subject<A: Adapter>() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tokens.json");
    let path = dir.path().join("token");
    let run = |subject: &str| {
        write(&path, subject);
        let options = Options {
            store: StoreChoice::File(store.clone()),
            ..Options::default()
        };
        let client = A::build(exchange_config(&issuer, &path), options);
        A::token(&client).unwrap().secret().to_owned()
    };
    let first = run(&subject_jwt("https://k8s.example", "system:serviceaccount:ns:a", 600));
    let other = run(&subject_jwt("https://k8s.example", "system:serviceaccount:ns:b", 600));
    assert_ne!(first, other, "{}: another subject gets its own token", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2);
    let rotated = run(&subject_jwt("https://k8s.example", "system:serviceaccount:ns:b", 900));
    assert_eq!(
        rotated,
        other,
        "{}: a rotated token for the same subject keeps the key",
        A::NAME
    );
    assert_eq!(issuer.token_requests().len(), 2);
}
