//! `Config::fingerprint`, the cache key of every token store: generated
//! configurations get the same fingerprint exactly when they ask for the same
//! token. Two configurations that differ in any one input that changes the
//! token (client id, endpoint, authentication method and its key or
//! assertion type, mutual TLS, scopes, resources, audience, any extra
//! parameter, the DPoP key, the grant with its subject, actor, requested
//! type, audiences, resources and scopes, and whom a subject or actor token
//! read speaks for) get different fingerprints; the secret, timing and retry
//! settings, the order and repetition of scopes, and a rotated subject token
//! for the same subject change nothing.

use std::time::Duration;

use client_credentials::driver::{Call, Driver, Outcome, Step, Task};
use client_credentials::{
    token_type, AssertionRole, AssertionSource, ClientAuth, Config, ConfigBuilder, Grant, JwsAlgorithm, JwtKey,
    SignError, Signer, Timestamp, TokenExchange, TokenSource,
};
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

/// Where a subject or actor token comes from, and (for a file) the token
/// the driver read from it, if it was read: the JWT of `sub-{sub}`,
/// expiring `exp` hours from now (a rotation: the same subject).
#[derive(Debug, Clone, PartialEq)]
enum SourceChoice {
    File { path: u8, read: Option<(u8, u8)> },
    Callback,
}

impl SourceChoice {
    fn source(&self) -> AssertionSource {
        match self {
            SourceChoice::File { path, .. } => AssertionSource::file(format!("/run/tokens/{path}")),
            SourceChoice::Callback => AssertionSource::callback(|| Ok::<_, String>("never called".into())),
        }
    }

    /// What the cache key covers: the path, and whom the token read speaks for.
    fn identity(&self) -> Option<(u8, Option<u8>)> {
        match self {
            SourceChoice::File { path, read } => Some((*path, read.map(|(sub, _)| sub))),
            SourceChoice::Callback => None,
        }
    }
}

fn subject_token(sub: u8, exp: u8) -> String {
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let claims = format!(
        r#"{{"iss":"https://k8s.example","sub":"sub-{sub}","exp":{}}}"#,
        2_000_000_000 + u64::from(exp) * 3600
    );
    format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64(&claims))
}

#[derive(Debug, Clone, PartialEq)]
enum GrantChoice {
    ClientCredentials,
    Exchange {
        subject: SourceChoice,
        subject_type: u8,
        actor: Option<(SourceChoice, u8)>,
        requested: Option<u8>,
        audiences: Vec<u8>,
        resources: Vec<u8>,
        scopes: Vec<String>,
    },
    JwtBearer(SourceChoice),
}

const TOKEN_TYPES: [&str; 5] = [
    token_type::ACCESS_TOKEN,
    token_type::JWT,
    token_type::ID_TOKEN,
    token_type::REFRESH_TOKEN,
    token_type::SAML2,
];

impl GrantChoice {
    fn grant(&self) -> Grant {
        match self {
            GrantChoice::ClientCredentials => Grant::client_credentials(),
            GrantChoice::JwtBearer(source) => Grant::jwt_bearer(source.source()),
            GrantChoice::Exchange {
                subject,
                subject_type,
                actor,
                requested,
                audiences,
                resources,
                scopes,
            } => {
                let mut exchange = TokenExchange::new(subject.source(), TOKEN_TYPES[usize::from(*subject_type)]);
                if let Some((actor, actor_type)) = actor {
                    exchange = exchange.actor(actor.source(), TOKEN_TYPES[usize::from(*actor_type)]);
                }
                if let Some(requested) = requested {
                    exchange = exchange.requested_token_type(TOKEN_TYPES[usize::from(*requested)]);
                }
                for audience in audiences {
                    exchange = exchange.audience(format!("aud-{audience}"));
                }
                for resource in resources {
                    exchange = exchange.resource(format!("https://rs{resource}.example/"));
                }
                for scope in scopes {
                    exchange = exchange.scope(scope.clone());
                }
                Grant::token_exchange(exchange)
            }
        }
    }

    /// The token each file role hands the driver when it is read.
    fn read(&self, role: AssertionRole) -> Option<(u8, u8)> {
        let file = |source: &SourceChoice| match source {
            SourceChoice::File { read, .. } => *read,
            SourceChoice::Callback => None,
        };
        match (self, role) {
            (GrantChoice::Exchange { subject, .. }, AssertionRole::Subject) => file(subject),
            (GrantChoice::JwtBearer(subject), AssertionRole::Subject) => file(subject),
            (
                GrantChoice::Exchange {
                    actor: Some((actor, _)),
                    ..
                },
                AssertionRole::Actor,
            ) => file(actor),
            _ => None,
        }
    }

    /// What the documentation says the key covers of the grant.
    fn identity(&self) -> impl PartialEq + std::fmt::Debug {
        match self {
            GrantChoice::ClientCredentials => (0, None, None, None, Vec::new(), Vec::new(), Vec::new()),
            GrantChoice::JwtBearer(source) => (
                1,
                Some(source.identity()),
                None,
                None,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            GrantChoice::Exchange {
                subject,
                subject_type,
                actor,
                requested,
                audiences,
                resources,
                scopes,
            } => {
                let mut scopes: Vec<&str> = scopes.iter().flat_map(|s| s.split(' ')).collect();
                scopes.sort_unstable();
                scopes.dedup();
                (
                    2,
                    Some(subject.identity()),
                    Some((*subject_type, actor.as_ref().map(|(a, t)| (a.identity(), *t)))),
                    Some(*requested),
                    audiences.clone(),
                    resources.clone(),
                    scopes.into_iter().map(str::to_owned).collect(),
                )
            }
        }
    }
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
    grant: GrantChoice,
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
        builder = builder.grant(self.grant.grant());
        builder = builder
            .refresh_margin(Duration::from_secs(self.refresh_margin_secs))
            .max_attempts(self.max_attempts);
        if let Some(seed) = self.jitter_seed {
            builder = builder.jitter_seed(seed);
        }
        builder
    }

    /// The fingerprint once the driver has read the files the choices say
    /// were read (and nothing else: no request is built, no callback runs).
    fn fingerprint(&self) -> String {
        let config = match self.builder().build() {
            Ok(config) => config,
            Err(error) => panic!("generated configurations are valid: {error} for {self:?}"),
        };
        let files = AssertionRole::ALL
            .into_iter()
            .filter(|role| config.assertion_source(*role).is_some())
            .count();
        let mut driver = Driver::new(TokenSource::new(config.clone(), [7; 32]));
        let mut call = Call::token();
        let now = Timestamp::from_unix_secs(1_700_000_000);
        for _ in 0..files {
            let Step::Work(work) = driver.step(now, &mut call) else {
                panic!("a file read")
            };
            let Task::ReadAssertion { role, .. } = work.task else {
                panic!("a file read, got {:?}", work.task)
            };
            let content = match role {
                AssertionRole::ClientAssertion => Some(Ok(subject_token(0, 0))),
                role => self.grant.read(role).map(|(sub, exp)| Ok(subject_token(sub, exp))),
            };
            driver.handle(now, work.ticket, Outcome::Assertion(content));
        }
        config.fingerprint()
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
            self.grant.identity(),
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

fn source_choice() -> impl Strategy<Value = SourceChoice> {
    prop_oneof![
        (0u8..2, prop::option::of((0u8..3, 0u8..3))).prop_map(|(path, read)| SourceChoice::File { path, read }),
        Just(SourceChoice::Callback),
    ]
}

fn grant_choice() -> impl Strategy<Value = GrantChoice> {
    let exchange = (
        source_choice(),
        0u8..5,
        prop::option::of((source_choice(), 0u8..5)),
        prop::option::of(0u8..5),
        prop::collection::vec(0u8..3, 0..3),
        prop::collection::vec(0u8..3, 0..3),
        scopes(),
    )
        .prop_map(
            |(subject, subject_type, actor, requested, audiences, resources, scopes)| GrantChoice::Exchange {
                subject,
                subject_type,
                actor,
                requested,
                audiences,
                resources,
                scopes,
            },
        );
    prop_oneof![
        Just(GrantChoice::ClientCredentials),
        exchange,
        source_choice().prop_map(GrantChoice::JwtBearer),
    ]
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
        grant_choice(),
    )
        .prop_map(
            |(
                (client_id, endpoint, auth, assertion_key, mutual_tls),
                (scopes, resources, audience, params, dpop),
                (secret, refresh_margin_secs, max_attempts, jitter_seed),
                grant,
            )| Inputs {
                grant,
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
    Grant(GrantChoice),
    /// The subject file holds a rotated token for the same subject.
    RotateSubject(u8),
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
        grant_choice().prop_map(Change::Grant),
        (0u8..3).prop_map(Change::RotateSubject),
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
            Change::Grant(grant) => changed.grant = grant,
            Change::RotateSubject(exp) => {
                let subject = match &mut changed.grant {
                    GrantChoice::Exchange { subject, .. } | GrantChoice::JwtBearer(subject) => Some(subject),
                    GrantChoice::ClientCredentials => None,
                };
                if let Some(SourceChoice::File {
                    read: Some((_, old)), ..
                }) = subject
                {
                    *old = exp;
                }
            }
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
