//! `Config::fingerprint`, the cache key of every token store: generated
//! configurations get the same fingerprint exactly when they ask for the same
//! token. Two configurations that differ in any one input that changes the
//! token (client id, endpoint, authentication method and its key or
//! assertion type, mutual TLS, scopes, resources, audience, any extra
//! parameter, the DPoP key) get different fingerprints; the secret, timing and
//! retry settings, and the order and repetition of scopes, change nothing.

use std::time::Duration;

use client_credentials::{AssertionSource, ClientAuth, Config, ConfigBuilder, JwsAlgorithm, JwtKey, SignError, Signer};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// A key that only has to be told apart: its public JWK is made up, and it
/// never signs (a fingerprint never signs anything).
#[derive(Debug, Clone, PartialEq)]
struct KeyChoice {
    /// Which public key; every third one has a JWK without the members an
    /// RFC 7638 thumbprint covers (an HSM signer's own format).
    public: u8,
    kid: Option<u8>,
    alg: u8,
}

struct FakeSigner(KeyChoice);

impl Signer for FakeSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        [JwsAlgorithm::Rs256, JwsAlgorithm::Es256, JwsAlgorithm::Ed25519][usize::from(self.0.alg % 3)]
    }
    fn public_jwk(&self) -> Map<String, Value> {
        let mut jwk = Map::new();
        if self.0.public % 3 == 0 {
            jwk.insert("kty".into(), "hsm-vendor".into());
            jwk.insert("handle".into(), format!("key-{}", self.0.public).into());
        } else {
            jwk.insert("kty".into(), "OKP".into());
            jwk.insert("crv".into(), "Ed25519".into());
            jwk.insert("x".into(), format!("public-key-{}", self.0.public).into());
        }
        jwk
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(Vec::new())
    }
}

impl KeyChoice {
    fn key(&self) -> JwtKey {
        let key = JwtKey::from_signer(FakeSigner(self.clone()));
        match self.kid {
            Some(kid) => key.with_key_id(format!("kid-{kid}")),
            None => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum EndpointChoice {
    Token(u8),
    Issuer(u8),
    ResourceServer(u8),
}

#[derive(Debug, Clone, PartialEq)]
enum AuthChoice {
    Basic,
    BasicUnencoded,
    Post,
    Json,
    PrivateKeyJwt(KeyChoice),
    ClientSecretJwt,
    /// An assertion made elsewhere: its type, and whether it comes from a
    /// file (the origin is not part of the key, the type is).
    Assertion {
        assertion_type: u8,
        from_file: bool,
    },
    TlsClientAuth,
    SelfSignedTlsClientAuth,
}

/// Everything that decides the fingerprint, plus settings that must not.
#[derive(Debug, Clone)]
struct Inputs {
    client_id: String,
    endpoint: EndpointChoice,
    auth: Option<AuthChoice>,
    /// Offered for a negotiated `private_key_jwt`.
    assertion_key: Option<KeyChoice>,
    mutual_tls: bool,
    /// Each `.scope(..)` call.
    scopes: Vec<String>,
    resources: Vec<u8>,
    audience: Option<String>,
    params: Vec<(String, String)>,
    dpop: Option<KeyChoice>,
    // Not part of the fingerprint.
    secret: u8,
    refresh_margin_secs: u64,
    max_attempts: u32,
    jitter_seed: Option<u64>,
}

impl Inputs {
    fn builder(&self) -> ConfigBuilder {
        let secret = format!("a-secret-of-at-least-thirty-two-bytes-{}", self.secret);
        let mut builder = Config::builder(self.client_id.clone(), secret);
        builder = match self.endpoint {
            EndpointChoice::Token(n) => builder.token_endpoint(format!("https://auth{n}.example/token")),
            EndpointChoice::Issuer(n) => builder.issuer(format!("https://id{n}.example")),
            EndpointChoice::ResourceServer(n) => builder.resource_server(format!("https://api{n}.example/mcp")),
        };
        if let Some(auth) = &self.auth {
            builder = builder.auth(match auth {
                AuthChoice::Basic => ClientAuth::Basic,
                AuthChoice::BasicUnencoded => ClientAuth::BasicUnencoded,
                AuthChoice::Post => ClientAuth::Post,
                AuthChoice::Json => ClientAuth::Json,
                AuthChoice::PrivateKeyJwt(key) => ClientAuth::PrivateKeyJwt(key.key()),
                AuthChoice::ClientSecretJwt => ClientAuth::ClientSecretJwt,
                AuthChoice::Assertion {
                    assertion_type,
                    from_file,
                } => {
                    let source = if *from_file {
                        AssertionSource::file("/run/secrets/assertion")
                    } else {
                        AssertionSource::callback(|| Ok::<_, String>("assertion".into()))
                    };
                    ClientAuth::Assertion(source.with_assertion_type(format!("urn:example:type-{assertion_type}")))
                }
                AuthChoice::TlsClientAuth => ClientAuth::TlsClientAuth,
                AuthChoice::SelfSignedTlsClientAuth => ClientAuth::SelfSignedTlsClientAuth,
            });
        }
        if let Some(key) = &self.assertion_key {
            builder = builder.client_assertion_key(key.key());
        }
        if self.mutual_tls {
            builder = builder.mutual_tls();
        }
        for scope in &self.scopes {
            builder = builder.scope(scope.clone());
        }
        for resource in &self.resources {
            builder = builder.resource(format!("https://api{resource}.example/mcp"));
        }
        if let Some(audience) = &self.audience {
            builder = builder.audience(audience.clone());
        }
        for (name, value) in &self.params {
            builder = builder.param(name.clone(), value.clone());
        }
        if let Some(key) = &self.dpop {
            builder = builder.dpop(key.key());
        }
        builder = builder
            .refresh_margin(Duration::from_secs(self.refresh_margin_secs))
            .max_attempts(self.max_attempts);
        if let Some(seed) = self.jitter_seed {
            builder = builder.jitter_seed(seed);
        }
        builder
    }

    fn fingerprint(&self) -> String {
        match self.builder().build() {
            Ok(config) => config.fingerprint(),
            Err(error) => panic!("generated configurations are valid: {error} for {self:?}"),
        }
    }

    /// What the documentation says the fingerprint covers, written out: two
    /// inputs ask for the same token exactly when these are equal.
    fn token_identity(&self) -> impl PartialEq + std::fmt::Debug {
        let mut scopes: Vec<&str> = self.scopes.iter().flat_map(|s| s.split(' ')).collect();
        scopes.sort_unstable();
        scopes.dedup();
        // A resource server is asked for as the first resource; repeats are sent once.
        let mut resources: Vec<u8> = Vec::new();
        let first = match self.endpoint {
            EndpointChoice::ResourceServer(n) => Some(n),
            _ => None,
        };
        for resource in first.iter().chain(&self.resources) {
            if !resources.contains(resource) {
                resources.push(*resource);
            }
        }
        let auth = self.auth.clone().map(|auth| match auth {
            AuthChoice::Assertion { assertion_type, .. } => AuthChoice::Assertion {
                assertion_type,
                from_file: false,
            },
            other => other,
        });
        // The offered key matters only when the method is negotiated.
        let offered = if self.auth.is_none() {
            self.assertion_key.clone()
        } else {
            None
        };
        let mutual_tls = self.mutual_tls
            || matches!(
                self.auth,
                Some(AuthChoice::TlsClientAuth | AuthChoice::SelfSignedTlsClientAuth)
            );
        let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
        (
            (self.client_id.clone(), self.endpoint.clone(), auth, offered, mutual_tls),
            (
                scopes,
                resources,
                self.audience.clone(),
                self.params.clone(),
                self.dpop.clone(),
            ),
        )
    }
}

fn key_choice() -> impl Strategy<Value = KeyChoice> {
    (0u8..6, prop::option::of(0u8..3), 0u8..3).prop_map(|(public, kid, alg)| KeyChoice { public, kid, alg })
}

fn endpoint() -> impl Strategy<Value = EndpointChoice> {
    prop_oneof![
        (0u8..3).prop_map(EndpointChoice::Token),
        (0u8..3).prop_map(EndpointChoice::Issuer),
        (0u8..3).prop_map(EndpointChoice::ResourceServer),
    ]
}

fn auth() -> impl Strategy<Value = Option<AuthChoice>> {
    prop::option::of(prop_oneof![
        Just(AuthChoice::Basic),
        Just(AuthChoice::BasicUnencoded),
        Just(AuthChoice::Post),
        Just(AuthChoice::Json),
        key_choice().prop_map(AuthChoice::PrivateKeyJwt),
        Just(AuthChoice::ClientSecretJwt),
        (0u8..3, any::<bool>()).prop_map(|(assertion_type, from_file)| AuthChoice::Assertion {
            assertion_type,
            from_file
        }),
        Just(AuthChoice::TlsClientAuth),
        Just(AuthChoice::SelfSignedTlsClientAuth),
    ])
}

fn scopes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["read", "write", "admin", "a", "ab", "read write"]).prop_map(str::to_owned),
        0..4,
    )
}

fn resources() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..3, 0..4)
}

fn audience() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec!["", "api", "https://api.example"]).prop_map(str::to_owned))
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec!["organization", "tenant", "acr_values", "x"]);
    let value = prop::sample::select(vec!["", "org-a", "org-b", "a b", "=&"]);
    prop::collection::vec((name, value).prop_map(|(n, v)| (n.to_owned(), v.to_owned())), 0..4)
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        (
            prop::sample::select(vec!["client", "client-2", "svc/worker"]).prop_map(str::to_owned),
            endpoint(),
            auth(),
            prop::option::of(key_choice()),
            any::<bool>(),
        ),
        (
            scopes(),
            resources(),
            audience(),
            params(),
            prop::option::of(key_choice()),
        ),
        (0u8..3, 0u64..600, 1u32..5, prop::option::of(any::<u64>())),
    )
        .prop_map(
            |(
                (client_id, endpoint, auth, assertion_key, mutual_tls),
                (scopes, resources, audience, params, dpop),
                (secret, refresh_margin_secs, max_attempts, jitter_seed),
            )| Inputs {
                client_id,
                endpoint,
                auth,
                assertion_key,
                mutual_tls,
                scopes,
                resources,
                audience,
                params,
                dpop,
                secret,
                refresh_margin_secs,
                max_attempts,
                jitter_seed,
            },
        )
}

/// One change to a configuration: a new value for one input (which may
/// happen to equal the old one), or a change that must not matter.
#[derive(Debug, Clone)]
enum Change {
    ClientId(String),
    Endpoint(EndpointChoice),
    Auth(Option<AuthChoice>),
    AssertionKey(Option<KeyChoice>),
    MutualTls(bool),
    Scopes(Vec<String>),
    Resources(Vec<u8>),
    Audience(Option<String>),
    Params(Vec<(String, String)>),
    /// One more parameter (another organization, a second value).
    AddParam(String, String),
    Dpop(Option<KeyChoice>),
    /// The scopes in another order, some repeated.
    ReorderScopes(prop::sample::Index),
    /// Secret, timing, retry and jitter settings.
    Unrelated {
        secret: u8,
        refresh_margin_secs: u64,
        max_attempts: u32,
        jitter_seed: Option<u64>,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        prop::sample::select(vec!["client", "client-2", "Client"]).prop_map(|c| Change::ClientId(c.to_owned())),
        endpoint().prop_map(Change::Endpoint),
        auth().prop_map(Change::Auth),
        prop::option::of(key_choice()).prop_map(Change::AssertionKey),
        any::<bool>().prop_map(Change::MutualTls),
        scopes().prop_map(Change::Scopes),
        resources().prop_map(Change::Resources),
        audience().prop_map(Change::Audience),
        params().prop_map(Change::Params),
        ("[a-z_]{1,12}", ".{0,8}").prop_map(|(n, v)| Change::AddParam(n, v)),
        prop::option::of(key_choice()).prop_map(Change::Dpop),
        any::<prop::sample::Index>().prop_map(Change::ReorderScopes),
        (0u8..3, 0u64..600, 1u32..5, prop::option::of(any::<u64>())).prop_map(
            |(secret, refresh_margin_secs, max_attempts, jitter_seed)| Change::Unrelated {
                secret,
                refresh_margin_secs,
                max_attempts,
                jitter_seed
            }
        ),
    ]
}

impl Change {
    fn apply(&self, inputs: &Inputs) -> Inputs {
        let mut changed = inputs.clone();
        match self.clone() {
            Change::ClientId(id) => changed.client_id = id,
            Change::Endpoint(endpoint) => changed.endpoint = endpoint,
            Change::Auth(auth) => changed.auth = auth,
            Change::AssertionKey(key) => changed.assertion_key = key,
            Change::MutualTls(on) => changed.mutual_tls = on,
            Change::Scopes(scopes) => changed.scopes = scopes,
            Change::Resources(resources) => changed.resources = resources,
            Change::Audience(audience) => changed.audience = audience,
            Change::Params(params) => changed.params = params,
            Change::AddParam(name, value) => changed.params.push((name, value)),
            Change::Dpop(key) => changed.dpop = key,
            Change::ReorderScopes(index) => {
                if !changed.scopes.is_empty() {
                    let at = index.index(changed.scopes.len());
                    changed.scopes.rotate_left(at);
                    let again = changed.scopes[0].clone();
                    changed.scopes.push(again);
                }
            }
            Change::Unrelated {
                secret,
                refresh_margin_secs,
                max_attempts,
                jitter_seed,
            } => {
                changed.secret = secret;
                changed.refresh_margin_secs = refresh_margin_secs;
                changed.max_attempts = max_attempts;
                changed.jitter_seed = jitter_seed;
            }
        }
        changed
    }
}

/// Names the client refuses in `.param()`: a generated extra parameter may
/// not be one of them (that is a `ConfigError`, tested in `config.rs`).
fn is_reserved(name: &str) -> bool {
    Config::builder("id", "secret")
        .token_endpoint("https://auth.example/token")
        .param(name, "x")
        .build()
        .is_err()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Equal fingerprints exactly when the configurations ask for the same
    /// token, whichever single input changed.
    #[test]
    fn one_changed_input_changes_the_fingerprint(base in inputs(), change in change()) {
        if let Change::AddParam(name, _) = &change {
            prop_assume!(!is_reserved(name));
        }
        let changed = change.apply(&base);
        let same_token = base.token_identity() == changed.token_identity();
        let same_key = base.fingerprint() == changed.fingerprint();
        prop_assert_eq!(
            same_key,
            same_token,
            "{:?} made the fingerprint {}",
            change,
            if same_key { "stay the same" } else { "change" }
        );
    }

    /// Building the same inputs twice gives the same fingerprint, and it is
    /// 64 lowercase hex digits.
    #[test]
    fn identical_inputs_give_identical_fingerprints(inputs in inputs()) {
        let fingerprint = inputs.fingerprint();
        prop_assert_eq!(&inputs.fingerprint(), &fingerprint);
        prop_assert_eq!(fingerprint.len(), 64);
        prop_assert!(fingerprint.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
}
