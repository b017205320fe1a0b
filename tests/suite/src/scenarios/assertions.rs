//! Client authentication beyond secrets (RFC 7523) against the test issuer,
//! which verifies every assertion and rejects a reused `jti`.

use std::path::Path;

use client_credentials::{
    Action, AssertionSource, ClientAuth, ClientAuthError, Config, Error, JwsAlgorithm, JwtKey, Timestamp, TokenSource,
};
use client_credentials_testkit::{AuthMethod, TestIssuer};

use crate::{Adapter, Options};

/// The test keys of `core/tests/keys` (test only).
pub const EC_PEM: &str = include_str!("../../../../core/tests/keys/ec.pem");
/// An Ed25519 test key.
pub const ED_PEM: &str = include_str!("../../../../core/tests/keys/ed25519.pem");
/// An RSA 2048 test key.
pub const RSA_PEM: &str = include_str!("../../../../core/tests/keys/rsa.pem");

fn verifying_issuer(key: &JwtKey) -> TestIssuer {
    TestIssuer::builder()
        .client("jwt-client", "a-client-secret-of-32-bytes-or-more")
        .client_jwk("jwt-client", key.public_jwk())
        .auth_methods(["private_key_jwt", "client_secret_jwt"])
        .start()
}

/// `private_key_jwt` negotiated from discovery with no secret configured:
/// every refresh carries a new assertion the issuer accepts (a repeated
/// `jti` would be rejected as a replay).
pub fn private_key_jwt_negotiated_and_every_refresh_has_a_fresh_assertion<A: Adapter>() {
    let key = JwtKey::from_pem(EC_PEM, JwsAlgorithm::Es256)
        .unwrap()
        .with_key_id("ec-1");
    let issuer = verifying_issuer(&key);
    let config = Config::builder("jwt-client", "")
        .issuer(issuer.issuer_url())
        .client_assertion_key(key)
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let first = A::token(&client).unwrap();
    let second = A::refresh(&client).unwrap();
    let third = A::refresh(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_ne!(second.secret(), third.secret());
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 3, "{}", A::NAME);
    for request in &requests {
        assert_eq!(request.auth_method, Some(AuthMethod::PrivateKeyJwt));
        assert_eq!(request.client_secret, None);
        assert_eq!(request.header("authorization"), None);
    }
}

/// `client_secret_jwt`: HS256 over the secret, which never leaves the client.
pub fn client_secret_jwt_is_accepted<A: Adapter>() {
    let key = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let issuer = verifying_issuer(&key);
    let config = Config::builder("jwt-client", "a-client-secret-of-32-bytes-or-more")
        .issuer(issuer.issuer_url())
        .auth(ClientAuth::ClientSecretJwt)
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    A::token(&client).unwrap();
    let requests = issuer.token_requests();
    assert_eq!(requests[0].auth_method, Some(AuthMethod::ClientSecretJwt));
    assert!(!String::from_utf8_lossy(&requests[0].body).contains("a-client-secret"));
}

/// A signed assertion as a workload identity system would write it: made by
/// the core for `issuer`, valid for `lifetime` seconds.
fn external_assertion(issuer: &TestIssuer, key: &JwtKey, lifetime: u64) -> String {
    let config = Config::builder("jwt-client", "")
        .token_endpoint(issuer.token_endpoint())
        .assertion_audience(issuer.issuer_url())
        .assertion_lifetime(std::time::Duration::from_secs(lifetime))
        .auth(ClientAuth::PrivateKeyJwt(key.clone()))
        .build()
        .unwrap();
    let mut source = TokenSource::new(config, rand_seed(lifetime));
    let Action::Send(outgoing) = source.poll(Timestamp::from(std::time::SystemTime::now())) else {
        panic!("a request")
    };
    form_urlencoded::parse(outgoing.request.body())
        .find(|(name, _)| name == "client_assertion")
        .map(|(_, value)| value.into_owned())
        .unwrap()
}

fn rand_seed(salt: u64) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&salt.to_le_bytes());
    seed[8..16].copy_from_slice(
        &Timestamp::from(std::time::SystemTime::now())
            .as_unix_millis()
            .to_le_bytes(),
    );
    seed
}

fn write(path: &Path, content: &str) {
    // Replaced by a rename, as the kubelet and SPIFFE helpers do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An assertion file (workload identity) is read by the adapter, sent with
/// no secret, and re-read when it is rotated.
pub fn an_assertion_file_is_read_and_reread_when_rotated<A: Adapter>() {
    let key = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let issuer = verifying_issuer(&key);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    write(&path, &format!("{}\n", external_assertion(&issuer, &key, 300)));
    let config = Config::builder("jwt-client", "")
        .token_endpoint(issuer.token_endpoint())
        .auth(ClientAuth::Assertion(AssertionSource::file(&path)))
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    A::token(&client).unwrap();

    // The same assertion again would be a replay: rotate the file first.
    write(&path, &external_assertion(&issuer, &key, 301));
    A::refresh(&client).unwrap();
    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 2, "{}", A::NAME);
    assert!(requests
        .iter()
        .all(|r| r.auth_method == Some(AuthMethod::PrivateKeyJwt)));
    assert_ne!(
        requests[0].param("client_assertion"),
        requests[1].param("client_assertion")
    );
}

/// An expired or missing assertion file is a clear error, and nothing is sent.
pub fn an_expired_or_missing_assertion_file_sends_nothing<A: Adapter>() {
    let key = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let issuer = verifying_issuer(&key);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let expired = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"EdDSA"}"#),
        b64(r#"{"iss":"jwt-client","exp":1000}"#)
    );
    write(&path, &expired);
    let config = Config::builder("jwt-client", "")
        .token_endpoint(issuer.token_endpoint())
        .auth(ClientAuth::Assertion(AssertionSource::file(&path)))
        .build()
        .unwrap();
    let client = A::build(config.clone(), Options::default());
    match A::token(&client) {
        Err(Error::ClientAuth(ClientAuthError::AssertionExpired { .. })) => {}
        other => panic!("{}: expected AssertionExpired, got {other:?}", A::NAME),
    }

    std::fs::remove_file(&path).unwrap();
    let client = A::build(config, Options::default());
    match A::token(&client) {
        Err(error @ Error::ClientAuth(ClientAuthError::AssertionUnavailable { .. })) => {
            assert!(error.to_string().contains("token"), "{error}");
        }
        other => panic!("{}: expected AssertionUnavailable, got {other:?}", A::NAME),
    }
    assert!(issuer.token_requests().is_empty(), "nothing was sent");
}

/// DPoP on resource requests: every authorised HTTP client of the adapter
/// sends `Authorization: DPoP <token>` and a fresh proof whose `htm`, `htu`
/// (without the query) and `ath` match the request and the token.
pub fn authorised_requests_carry_a_dpop_proof_for_the_request<A: Adapter>() {
    use crate::authorized::{Body, Origins};
    use base64::Engine as _;
    use client_credentials_testkit::TestResourceServer;

    let key = JwtKey::from_pem(EC_PEM, JwsAlgorithm::Es256).unwrap();
    let issuer = TestIssuer::builder().token_type("DPoP").start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
    let config = crate::scenarios::config(&issuer).dpop(key.clone()).build().unwrap();
    let client = A::build(config, Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(token.token_type(), "DPoP");
    let origins = Origins::Only(vec![api.base_url()]);
    let mut jtis = Vec::new();
    for flavour in A::authorized(&client, &origins) {
        api.clear_requests();
        let url = format!("{}/things?page=2", api.resource());
        assert_eq!(flavour.send("GET", &url, Body::Empty), Ok(200), "{}", flavour.name());
        let request = api.requests().pop().unwrap();
        assert_eq!(
            request.header("authorization"),
            Some(format!("DPoP {}", token.secret()).as_str())
        );
        let proof = request
            .header("dpop")
            .unwrap_or_else(|| panic!("{}: no DPoP header", flavour.name()));
        let claims: serde_json::Value = {
            let part = proof.split('.').nth(1).unwrap();
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        assert_eq!(claims["htm"], "GET", "{}", flavour.name());
        assert_eq!(
            claims["htu"],
            format!("{}/things", api.resource()),
            "{}",
            flavour.name()
        );
        assert_eq!(
            claims["ath"],
            client_credentials::dpop_ath(token.secret()),
            "{}",
            flavour.name()
        );
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert!(!jtis.is_empty());
    let count = jtis.len();
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), count, "a fresh jti per proof");
}

/// A key in an HSM stand-in whose signing pauses until the scenario lets it
/// go (at most 2 s): signing runs outside the client's lock, so callers
/// served the cached token meanwhile never wait for it.
struct SlowSigner {
    inner: JwtKey,
    started: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl client_credentials::Signer for SlowSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.inner.algorithm()
    }
    fn public_jwk(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut jwk = self.inner.public_jwk().as_object().cloned().unwrap_or_default();
        jwk.remove("alg");
        jwk
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, client_credentials::SignError> {
        let _ = self.started.try_send(());
        let release = self.release.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = release.recv_timeout(std::time::Duration::from_secs(2));
        self.inner.sign(message)
    }
}

/// `private_key_jwt` with a `Signer` of the user's that takes its time (an
/// HSM, a KMS): while it signs a refresh's assertion, another caller gets
/// the cached, still usable token at once (a signer running under the
/// client's lock would hold it for as long as the signer takes).
pub fn a_slow_external_signer_does_not_hold_up_cached_reads<A: Adapter>() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let key = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let issuer = TestIssuer::builder()
        .client("jwt-client", "a-client-secret-of-32-bytes-or-more")
        .client_jwk("jwt-client", key.public_jwk())
        .auth_methods(["private_key_jwt"])
        .lifetime(600)
        .start();
    let (started, signing) = mpsc::sync_channel(8);
    let (release, released) = mpsc::channel();
    let signer = SlowSigner {
        inner: key,
        started,
        release: std::sync::Mutex::new(released),
    };
    let config = Config::builder("jwt-client", "")
        .issuer(issuer.issuer_url())
        .auth(ClientAuth::PrivateKeyJwt(JwtKey::from_signer(signer)))
        .build()
        .unwrap();
    // A manual clock: every call goes through the client's lock (the
    // lock-free read is for the wall clock only).
    let clock = client_credentials_blocking::ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let client = A::build(config, options);
    release.send(()).unwrap();
    let first = A::token(&client).unwrap();
    assert!(
        signing.try_recv().is_ok(),
        "{}: the first assertion was signed",
        A::NAME
    );
    // Due for refresh (the margin is 300 s), still usable.
    clock.advance(Duration::from_secs(400));
    let refreshing = {
        let client = client.clone();
        std::thread::spawn(move || A::token(&client))
    };
    signing
        .recv_timeout(Duration::from_secs(5))
        .expect("the refresh's assertion is being signed");
    let asked = Instant::now();
    let cached = A::token(&client).unwrap();
    let took = asked.elapsed();
    release.send(()).unwrap();
    assert_eq!(cached.secret(), first.secret(), "{}", A::NAME);
    assert!(
        took < Duration::from_secs(1),
        "{}: a cached read waited {took:?} for the signer",
        A::NAME
    );
    let refreshed = refreshing.join().unwrap().unwrap();
    assert_ne!(refreshed.secret(), first.secret(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 2, "{}", A::NAME);
}

/// DPoP with a `Signer` of the user's that takes its time: while it signs
/// the proof of a resource request being authorised (by each authorised
/// HTTP client of the adapter), another caller gets the cached token at
/// once — the proof is built under the client's lock and signed after it —
/// and the finished proof is one the resource server accepts.
pub fn a_slow_external_dpop_signer_does_not_hold_up_cached_reads<A: Adapter>() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use crate::authorized::{Body, Origins};
    use client_credentials_testkit::TestResourceServer;

    let key = JwtKey::from_pem(ED_PEM, JwsAlgorithm::Ed25519).unwrap();
    let issuer = TestIssuer::builder().token_type("DPoP").lifetime(3600).start();
    let api = TestResourceServer::builder()
        .accept_tokens_of(&issuer)
        .require_dpop(None)
        .start();
    let (started, signing) = mpsc::sync_channel(8);
    let (release, released) = mpsc::channel();
    let signer = SlowSigner {
        inner: key,
        started,
        release: std::sync::Mutex::new(released),
    };
    let config = crate::scenarios::config(&issuer)
        .dpop(JwtKey::from_signer(signer))
        .build()
        .unwrap();
    // A manual clock: every token() goes through the client's lock (the
    // lock-free read is for the wall clock only).
    let clock = client_credentials_blocking::ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        ..Options::default()
    };
    let client = A::build(config, options);
    // The token request's own proof.
    release.send(()).unwrap();
    let first = A::token(&client).unwrap();
    assert_eq!(first.token_type(), "DPoP");
    signing
        .recv_timeout(Duration::from_secs(5))
        .expect("the token request's proof was signed");
    let origins = Origins::Only(vec![api.base_url()]);
    let flavours = A::authorized(&client, &origins);
    assert!(!flavours.is_empty());
    for flavour in flavours {
        let name = flavour.name();
        let url = format!("{}/things", api.resource());
        let sending = std::thread::spawn(move || flavour.send("GET", &url, Body::Empty));
        signing
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{}/{name}: the resource proof is being signed", A::NAME));
        let asked = Instant::now();
        let cached = A::token(&client).unwrap();
        let took = asked.elapsed();
        release.send(()).unwrap();
        assert_eq!(cached.secret(), first.secret(), "{}/{name}", A::NAME);
        assert!(
            took < Duration::from_secs(1),
            "{}/{name}: a cached read waited {took:?} for the signer",
            A::NAME
        );
        assert_eq!(
            sending.join().unwrap(),
            Ok(200),
            "{}/{name}: the proof is accepted",
            A::NAME
        );
    }
    assert_eq!(api.accepted(), A::authorized(&client, &origins).len(), "{}", A::NAME);
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
}
