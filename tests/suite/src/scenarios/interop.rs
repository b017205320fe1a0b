//! Against a real OpenID Connect provider: `oidc-provider` on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use client_credentials::{
    ClientAuth, Config, ConfigBuilder, Error, JwsAlgorithm, JwtKey, OAuthErrorCode, Timestamp, TokenParams,
};

use crate::{Adapter, OidcPeer, Options};

fn peer() -> &'static OidcPeer {
    let peer = OidcPeer::shared();
    println!("reached oidc-provider@{} at {}", peer.version(), peer.issuer());
    peer
}

fn basic_client(peer: &OidcPeer) -> ConfigBuilder {
    Config::builder(OidcPeer::BASIC_CLIENT_ID, OidcPeer::BASIC_CLIENT_SECRET).issuer(peer.issuer())
}

fn counting() -> (Options, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let options = Options {
        on_update: Some(Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        ..Options::default()
    };
    (options, count)
}

/// Discovery of the provider, whose issuer has a path component.
pub fn discovery<A: Adapter>() {
    let peer = peer();
    let metadata = A::discover(peer.issuer()).unwrap();
    assert_eq!(metadata.issuer, peer.issuer());
    assert!(metadata.token_endpoint.starts_with(peer.issuer()));
    assert!(metadata.revocation_endpoint.is_some());
    let methods = metadata.token_endpoint_auth_methods_supported.unwrap_or_default();
    assert!(methods.iter().any(|m| m == "client_secret_basic"), "{methods:?}");
}

/// `client_secret_basic` with a secret full of reserved characters (RFC 6749 §2.3.1).
pub fn basic_auth_with_reserved_characters<A: Adapter>() {
    let peer = peer();
    let (options, updates) = counting();
    let client = A::build(basic_client(peer).scope("api:read").build().unwrap(), options);
    let token = A::token(&client).unwrap();
    assert_eq!(token.token_type(), "Bearer");
    assert_eq!(token.scope(), Some("api:read"));
    let lifetime = token
        .expires_at()
        .unwrap()
        .saturating_duration_since(token.received_at());
    assert!(
        lifetime <= Duration::from_secs(OidcPeer::DEFAULT_TTL_SECS + 1),
        "{lifetime:?}"
    );
    assert_eq!(A::token(&client).unwrap().secret(), token.secret(), "cached");
    assert_eq!(updates.load(Ordering::SeqCst), 1, "one token request");
}

/// `client_secret_post`.
pub fn post_auth<A: Adapter>() {
    let peer = peer();
    let config = Config::builder(OidcPeer::POST_CLIENT_ID, OidcPeer::POST_CLIENT_SECRET)
        .issuer(peer.issuer())
        .auth(ClientAuth::Post)
        .scope("api:write")
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    assert_eq!(A::token(&client).unwrap().scope(), Some("api:write"));
}

/// A resource indicator (RFC 8707) yields a JWT access token whose `exp` the client can read.
pub fn resource_indicator_gives_a_jwt<A: Adapter>() {
    let peer = peer();
    let config = basic_client(peer)
        .resource(OidcPeer::RESOURCE)
        .scope("api:read")
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let token = A::token(&client).unwrap();
    assert_eq!(token.secret().split('.').count(), 3, "a JWT");
    // Its lifetime came from the JWT's claims (the peer sends expires_in too; they agree).
    let now = Timestamp::from(std::time::SystemTime::now());
    let lifetime = token.expires_at().unwrap().saturating_duration_since(now).as_secs_f64();
    assert!(
        lifetime > 0.0 && lifetime <= OidcPeer::DEFAULT_TTL_SECS as f64 + 1.0,
        "{lifetime}"
    );
}

/// Short-lived tokens are refreshed at half-life; the provider issues a new one.
pub fn refresh_after_expiry<A: Adapter>() {
    let peer = peer();
    let (options, updates) = counting();
    let client = A::build(basic_client(peer).build().unwrap(), options);
    let first = A::token(&client).unwrap();
    sleep(Duration::from_millis(OidcPeer::DEFAULT_TTL_SECS * 1000 / 2 + 300));
    let second = A::token(&client).unwrap();
    assert_ne!(first.secret(), second.secret());
    assert_eq!(updates.load(Ordering::SeqCst), 2);
}

/// A wrong secret is a typed, final `invalid_client`.
pub fn wrong_secret_is_invalid_client<A: Adapter>() {
    let peer = peer();
    let config = Config::builder(OidcPeer::BASIC_CLIENT_ID, "not-the-secret")
        .issuer(peer.issuer())
        .build()
        .unwrap();
    let error = A::token(&A::build(config, Options::default())).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::OAuth {
                code: OAuthErrorCode::InvalidClient,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(!error.to_string().contains("not-the-secret"));
}

/// An unknown scope is a typed `invalid_scope`.
pub fn unknown_scope_is_invalid_scope<A: Adapter>() {
    let peer = peer();
    let config = basic_client(peer).scope("api:delete").build().unwrap();
    let error = A::token(&A::build(config, Options::default())).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidScope), "{error:?}");
    assert!(error.to_string().starts_with("invalid_scope"), "{error}");
}

/// `private_key_jwt` with each key the peer has registered (ES256, Ed25519
/// under its RFC 9864 name, which the peer lists, PS256): the peer verifies
/// the signature, `aud` = its issuer identifier, and the `jti`; refreshes
/// carry fresh assertions.
pub fn private_key_jwt<A: Adapter>() {
    use crate::scenarios::assertions::{EC_PEM, ED_PEM, RSA_PEM};
    let peer = peer();
    for (pem, alg, kid) in [
        (EC_PEM, JwsAlgorithm::Es256, "suite-es256"),
        (ED_PEM, JwsAlgorithm::Ed25519, "suite-ed25519"),
        (RSA_PEM, JwsAlgorithm::Ps256, "suite-ps256"),
    ] {
        let key = JwtKey::from_pem(pem, alg).unwrap().with_key_id(kid);
        let config = Config::builder(OidcPeer::PRIVATE_KEY_JWT_CLIENT_ID, "")
            .issuer(peer.issuer())
            .auth(ClientAuth::PrivateKeyJwt(key))
            .scope("api:read")
            .build()
            .unwrap();
        let client = A::build(config, Options::default());
        let first = A::token(&client).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(first.scope(), Some("api:read"));
        let second = A::refresh(&client).unwrap_or_else(|e| panic!("{alg} refresh: {e}"));
        assert_ne!(first.secret(), second.secret());
    }
}

/// `private_key_jwt` negotiated from discovery: the key is offered, the
/// peer lists the method, no secret is configured.
pub fn private_key_jwt_negotiated<A: Adapter>() {
    let peer = peer();
    let key = JwtKey::from_pem(crate::scenarios::assertions::EC_PEM, JwsAlgorithm::Es256)
        .unwrap()
        .with_key_id("suite-es256");
    let config = Config::builder(OidcPeer::PRIVATE_KEY_JWT_CLIENT_ID, "")
        .issuer(peer.issuer())
        .client_assertion_key(key)
        .build()
        .unwrap();
    A::token(&A::build(config, Options::default())).unwrap();
}

/// `client_secret_jwt`: HS256 over the secret.
pub fn client_secret_jwt<A: Adapter>() {
    let peer = peer();
    let config = Config::builder(
        OidcPeer::CLIENT_SECRET_JWT_CLIENT_ID,
        OidcPeer::CLIENT_SECRET_JWT_SECRET,
    )
    .issuer(peer.issuer())
    .auth(ClientAuth::ClientSecretJwt)
    .build()
    .unwrap();
    let client = A::build(config, Options::default());
    A::token(&client).unwrap();
    A::refresh(&client).unwrap();
}

/// A key the peer has not registered for the client is `invalid_client`.
pub fn private_key_jwt_with_an_unregistered_key_is_invalid_client<A: Adapter>() {
    let peer = peer();
    let key = JwtKey::from_pem(crate::scenarios::assertions::EC_PEM, JwsAlgorithm::Es256).unwrap();
    let config = Config::builder(OidcPeer::CLIENT_SECRET_JWT_CLIENT_ID, "")
        .issuer(peer.issuer())
        .auth(ClientAuth::PrivateKeyJwt(key))
        .build()
        .unwrap();
    let error = A::token(&A::build(config, Options::default())).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidClient), "{error:?}");
}

/// DPoP (RFC 9449) with nonces required: the first token request is
/// answered `use_dpop_nonce`, retried once with the nonce, and the token is
/// DPoP-bound to the key (its `cnf.jkt`, read by introspection, is the key's
/// thumbprint). The refresh uses the kept nonce.
pub fn dpop_bound_token_with_nonce<A: Adapter>() {
    let peer = peer();
    for (pem, alg) in [
        (crate::scenarios::assertions::EC_PEM, JwsAlgorithm::Es256),
        (crate::scenarios::assertions::ED_PEM, JwsAlgorithm::Ed25519),
    ] {
        let key = JwtKey::from_pem(pem, alg).unwrap();
        let config = Config::builder(OidcPeer::DPOP_CLIENT_ID, OidcPeer::DPOP_CLIENT_SECRET)
            .issuer(peer.issuer())
            .dpop(key.clone())
            .build()
            .unwrap();
        let client = A::build(config, Options::default());
        let token = A::token(&client).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(token.token_type(), "DPoP");
        assert!(A::authorization_header(&client)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("DPoP "));

        let introspection = format!("{}/token/introspection", peer.issuer());
        let basic = {
            use base64::Engine as _;
            let pair = format!("{}:{}", OidcPeer::DPOP_CLIENT_ID, OidcPeer::DPOP_CLIENT_SECRET);
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        };
        let answer = crate::oidc::raw::post_form(
            &introspection,
            &[("authorization", &basic)],
            &[("token", token.secret())],
        )
        .unwrap()
        .json();
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["cnf"]["jkt"], key.thumbprint(), "{answer}");

        let again = A::refresh(&client).unwrap_or_else(|e| panic!("{alg} refresh: {e}"));
        assert_ne!(again.secret(), token.secret());
    }
}

fn mtls_options(pki: &crate::tls::TestPki, identity: Option<&crate::tls::Identity>) -> Options {
    Options {
        tls: Some(crate::ClientTls {
            ca_pem: pki.ca_pem.clone(),
            identity: identity.cloned(),
        }),
        ..Options::default()
    }
}

/// `tls_client_auth` (RFC 8705 §2.1) through each adapter's own HTTP client
/// (a `ureq::Agent` / `reqwest::Client` with the test CA and a client
/// certificate): only `client_id` is sent, the token endpoint is the
/// discovered `mtls_endpoint_aliases` one on TLS, and the token is
/// certificate-bound. The method is negotiated: the config only says the
/// HTTP client presents a certificate. Without the certificate the same
/// client is `invalid_client`.
pub fn mtls_tls_client_auth_negotiated<A: Adapter>() {
    let (peer, pki) = OidcPeer::shared_mtls();
    let config = || {
        Config::builder(OidcPeer::MTLS_CLIENT_ID, "")
            .issuer(peer.issuer())
            .mutual_tls()
            .scope("api:read")
            .build()
            .unwrap()
    };
    let client = A::build(config(), mtls_options(pki, Some(&pki.client)));
    let token = A::token(&client).unwrap_or_else(|e| panic!("{}: {e}", A::NAME));
    assert_eq!(token.scope(), Some("api:read"));
    let again = A::refresh(&client).unwrap();
    assert_ne!(again.secret(), token.secret());

    let without = A::build(config(), mtls_options(pki, None));
    let error = A::token(&without).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidClient), "{error:?}");
}

/// `self_signed_tls_client_auth` (RFC 8705 §2.2): the registered
/// self-signed certificate authenticates; the CA-issued one does not.
pub fn mtls_self_signed<A: Adapter>() {
    let (peer, pki) = OidcPeer::shared_mtls();
    let config = Config::builder(OidcPeer::SELF_SIGNED_MTLS_CLIENT_ID, "")
        .issuer(peer.issuer())
        .auth(ClientAuth::SelfSignedTlsClientAuth)
        .build()
        .unwrap();
    let client = A::build(config, mtls_options(pki, Some(&pki.self_signed)));
    A::token(&client).unwrap_or_else(|e| panic!("{}: {e}", A::NAME));

    // The CA-issued certificate is not the one registered for this client.
    let config = Config::builder(OidcPeer::SELF_SIGNED_MTLS_CLIENT_ID, "")
        .issuer(peer.issuer())
        .auth(ClientAuth::SelfSignedTlsClientAuth)
        .build()
        .unwrap();
    let error = A::token(&A::build(config, mtls_options(pki, Some(&pki.client)))).unwrap_err();
    assert_eq!(error.oauth_code(), Some(&OAuthErrorCode::InvalidClient), "{error:?}");
}

/// Four keys of one discovering client (the default, two scopes, a
/// resource indicator) against the real provider: each gets its own token,
/// and the client reads the discovery document once, counted by the
/// requests metric of each key (a parameter naming the adapter keeps the
/// keys apart from the other scenarios').
pub fn the_keys_of_a_client_discover_once<A: Adapter>() {
    let metrics = crate::observe::metrics();
    let peer = peer();
    let config = basic_client(peer)
        .scope("api:read")
        .scope("api:write")
        .param("x-suite-adapter", A::NAME)
        .build()
        .unwrap();
    let keys = [
        TokenParams::new().scope("api:read"),
        TokenParams::new().scope("api:write"),
        TokenParams::new().scope("api:read").resource(OidcPeer::RESOURCE),
    ];
    let client = A::build(config.clone(), Options::default());
    let mut secrets = vec![A::token(&client).unwrap().secret().to_owned()];
    for params in &keys {
        secrets.push(A::token_for(&client, params).unwrap().secret().to_owned());
    }
    secrets.sort_unstable();
    secrets.dedup();
    assert_eq!(secrets.len(), 1 + keys.len(), "{}: a token per key", A::NAME);
    let fingerprints = std::iter::once(config.fingerprint()).chain(
        keys.iter()
            .map(|params| config.with_params(params).unwrap().fingerprint()),
    );
    let discoveries: u64 = fingerprints
        .map(|fingerprint| {
            let labels = [
                ("oauth.client.id", OidcPeer::BASIC_CLIENT_ID),
                ("oauth.client.key", &fingerprint[..12]),
                ("oauth.request.kind", "discovery"),
            ];
            metrics.counter("oauth.client.requests", &labels)
        })
        .sum();
    assert_eq!(discoveries, 1, "{}", A::NAME);
}
