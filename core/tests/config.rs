//! `ConfigBuilder::build`: every `ConfigError` variant, its message, and the
//! normalisation of scopes, resources and endpoints.

mod common;

use std::time::Duration;

use client_credentials::{ClientAuth, Config, ConfigError, RetryPolicy};
use common::{builder, SECRET, TOKEN_URL};

fn error(builder: client_credentials::ConfigBuilder) -> ConfigError {
    match builder.build() {
        Ok(config) => panic!("expected a ConfigError, got {config:?}"),
        Err(error) => error,
    }
}

#[test]
fn a_minimal_config_has_the_documented_defaults() {
    let config = Config::builder("id", "secret")
        .token_endpoint(TOKEN_URL)
        .build()
        .unwrap();
    assert_eq!(config.client_id(), "id");
    assert_eq!(config.client_secret().expose_secret(), "secret");
    assert_eq!(config.token_endpoint().map(|u| u.as_str()), Some(TOKEN_URL));
    assert_eq!(config.issuer(), None);
    assert_eq!(config.auth(), None);
    assert_eq!(config.scope(), None);
    assert!(config.resources().is_empty());
    assert_eq!(config.refresh_margin(), Duration::from_secs(300));
    assert_eq!(config.default_lifetime(), Duration::from_secs(3600));
    assert_eq!(config.clock_skew(), Duration::ZERO);
    assert_eq!(config.max_body_size(), 64 * 1024);
    assert_eq!(config.discovery_ttl(), Duration::from_secs(24 * 3600));
    assert_eq!(*config.retry(), RetryPolicy::default());
    assert_eq!(config.retry().max_attempts, 3);
    assert_eq!(config.retry().initial_backoff, Duration::from_millis(500));
    assert_eq!(config.retry().max_backoff, Duration::from_secs(30));
    assert!(!config.allows_insecure_http());
    assert!(config.uses_refresh_tokens());
    assert_eq!(config.jitter_seed(), None);
}

#[test]
fn empty_client_id() {
    let e = error(Config::builder("", "s").token_endpoint(TOKEN_URL));
    assert_eq!(e, ConfigError::EmptyClientId);
    assert_eq!(e.to_string(), "the client id is empty");
}

#[test]
fn control_characters_in_credentials() {
    let e = error(Config::builder("id\n", "s").token_endpoint(TOKEN_URL));
    assert_eq!(e, ConfigError::ControlCharacter { field: "client_id" });
    assert!(e.to_string().contains("client_id contains a control character"), "{e}");

    let e = error(Config::builder("id", "secret\n").token_endpoint(TOKEN_URL));
    assert_eq!(e, ConfigError::ControlCharacter { field: "client_secret" });
    assert!(e.to_string().contains("client_secret"), "{e}");
    assert!(!e.to_string().contains("secret\n"));
}

#[test]
fn colon_in_client_id_only_matters_for_unencoded_basic() {
    let e = error(
        Config::builder("urn:client", "s")
            .token_endpoint(TOKEN_URL)
            .auth(ClientAuth::BasicUnencoded),
    );
    assert_eq!(e, ConfigError::ColonInClientId);
    assert!(e.to_string().contains("ClientAuth::Basic"), "{e}");
    for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Json] {
        Config::builder("urn:client", "s")
            .token_endpoint(TOKEN_URL)
            .auth(auth)
            .build()
            .unwrap();
    }
}

#[test]
fn endpoint_missing_or_both() {
    let e = error(Config::builder("id", "s"));
    assert_eq!(e, ConfigError::MissingEndpoint);
    assert!(e.to_string().contains(".token_endpoint(url) or .issuer(url)"), "{e}");

    let e = error(builder().issuer("https://id.example"));
    assert_eq!(e, ConfigError::ConflictingEndpoints);
    assert!(e.to_string().contains("choose one"), "{e}");
}

#[test]
fn relative_and_unparsable_urls() {
    let e = error(Config::builder("id", "s").token_endpoint("/oauth2/token"));
    assert_eq!(
        e,
        ConfigError::RelativeUrl {
            field: "token_endpoint",
            url: "/oauth2/token".into()
        }
    );
    assert!(e.to_string().contains("is relative"), "{e}");

    let e = error(Config::builder("id", "s").token_endpoint("https://exa mple.com/token"));
    assert!(
        matches!(
            e,
            ConfigError::InvalidUrl {
                field: "token_endpoint",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("token_endpoint \"https://exa mple.com/token\" is not a usable URL"),
        "{e}"
    );

    let e = error(Config::builder("id", "s").token_endpoint(""));
    assert!(matches!(e, ConfigError::RelativeUrl { .. }), "{e:?}");
}

#[test]
fn unusual_schemes_and_hostless_urls() {
    let e = error(Config::builder("id", "s").token_endpoint("ftp://auth.example/token"));
    match &e {
        ConfigError::InvalidUrl { reason, .. } => assert!(reason.contains("\"ftp\""), "{reason}"),
        other => panic!("{other:?}"),
    }
    let e = error(Config::builder("id", "s").token_endpoint("mailto:ops@auth.example"));
    assert!(matches!(e, ConfigError::InvalidUrl { .. }), "{e:?}");
    let e = error(Config::builder("id", "s").token_endpoint("unix:/run/token.sock"));
    assert!(matches!(e, ConfigError::InvalidUrl { .. }), "{e:?}");
}

#[test]
fn credentials_in_urls_are_refused_and_not_echoed() {
    let e = error(Config::builder("id", "s").token_endpoint("https://user:hunter22@auth.example/token"));
    match &e {
        ConfigError::InvalidUrl { url, reason, .. } => {
            assert!(!url.contains("hunter22"), "{url}");
            assert!(reason.contains("credentials"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.to_string().contains("hunter22"), "{e}");
}

#[test]
fn fragments_are_refused() {
    let e = error(Config::builder("id", "s").token_endpoint("https://auth.example/token#x"));
    assert_eq!(
        e,
        ConfigError::UrlWithFragment {
            field: "token_endpoint",
            url: "https://auth.example/token#x".into()
        }
    );
    assert!(e.to_string().contains("RFC 6749 §3.2"), "{e}");
    let e = error(Config::builder("id", "s").issuer("https://id.example#"));
    assert!(
        matches!(e, ConfigError::UrlWithFragment { field: "issuer", .. }),
        "{e:?}"
    );
}

#[test]
fn issuer_with_query_is_refused() {
    for issuer in ["https://id.example?tenant=a", "https://id.example/?"] {
        let e = error(Config::builder("id", "s").issuer(issuer));
        match &e {
            ConfigError::InvalidUrl { field, reason, .. } => {
                assert_eq!(*field, "issuer");
                assert!(reason.contains("RFC 8414"), "{reason}");
            }
            other => panic!("{issuer}: {other:?}"),
        }
    }
    // A token endpoint may have a query.
    Config::builder("id", "s")
        .token_endpoint("https://auth.example/token?tenant=a")
        .build()
        .unwrap();
}

#[test]
fn plain_http_is_allowed_to_loopback_only() {
    for url in [
        "http://localhost:8080/token",
        "http://LOCALHOST/token",
        "http://localhost./token",
        "http://127.0.0.1/token",
        "http://127.9.8.7:1234/token",
        "http://[::1]:8080/token",
    ] {
        let config = Config::builder("id", "s").token_endpoint(url).build();
        assert!(config.is_ok(), "{url}: {config:?}");
        let config = Config::builder("id", "s").issuer(url).build();
        assert!(config.is_ok(), "{url}: {config:?}");
        let config = builder().revocation_endpoint(url).build();
        assert!(config.is_ok(), "{url}: {config:?}");
    }
    for url in [
        "http://auth.example/token",
        "http://10.0.0.1/token",
        "http://[::2]/token",
        "http://localhost.evil.example/token",
        "http://0.0.0.0/token",
    ] {
        let e = error(Config::builder("id", "s").token_endpoint(url));
        assert_eq!(
            e,
            ConfigError::InsecureUrl {
                field: "token_endpoint",
                url: url.into()
            },
            "{url}"
        );
        assert!(e.to_string().contains("clear text"), "{e}");
        let e = error(Config::builder("id", "s").issuer(url));
        assert!(
            matches!(e, ConfigError::InsecureUrl { field: "issuer", .. }),
            "{url}: {e:?}"
        );
        let e = error(builder().revocation_endpoint(url));
        assert!(
            matches!(
                e,
                ConfigError::InsecureUrl {
                    field: "revocation_endpoint",
                    ..
                }
            ),
            "{url}: {e:?}"
        );

        let config = Config::builder("id", "s")
            .token_endpoint(url)
            .allow_insecure_http()
            .build()
            .unwrap();
        assert!(config.allows_insecure_http());
    }
}

#[test]
fn scopes_are_split_deduplicated_and_joined_in_order() {
    let config = builder()
        .scope("b a")
        .scope("a")
        .scope("  c   b ")
        .scope("urn:example:api:read")
        .build()
        .unwrap();
    assert_eq!(config.scopes(), ["b", "a", "c", "urn:example:api:read"]);
    assert_eq!(config.scope().as_deref(), Some("b a c urn:example:api:read"));
    // The full RFC 6749 §3.3 alphabet is accepted.
    let all: String = ('\x21'..='\x7e').filter(|c| *c != '"' && *c != '\\').collect();
    let config = builder().scope(all.clone()).build().unwrap();
    assert_eq!(config.scope(), Some(all));
}

#[test]
fn invalid_scopes() {
    for scope in ["", "   "] {
        let e = error(builder().scope(scope));
        assert_eq!(
            e,
            ConfigError::InvalidScope {
                scope: scope.into(),
                reason: "a scope may not be empty".into()
            }
        );
    }
    for (scope, bad) in [
        ("read \"write\"", '"'),
        ("a\\b", '\\'),
        ("read\twrite", '\t'),
        ("lecture:écrire", 'é'),
        ("a\u{7f}", '\u{7f}'),
    ] {
        let e = error(builder().scope("ok").scope(scope));
        match &e {
            ConfigError::InvalidScope { scope: given, reason } => {
                assert_eq!(given, scope);
                assert!(reason.contains(&format!("{bad:?}")), "{reason}");
                assert!(reason.contains("RFC 6749 §3.3"), "{reason}");
            }
            other => panic!("{scope:?}: {other:?}"),
        }
        assert!(e.to_string().starts_with("invalid scope"), "{e}");
    }
}

#[test]
fn resources_are_absolute_uris_without_fragment() {
    let config = builder()
        .resource("https://api.example/v1")
        .resource("urn:example:api")
        .resource("https://api.example/v1")
        .build()
        .unwrap();
    assert_eq!(config.resources(), ["https://api.example/v1", "urn:example:api"]);

    let e = error(builder().resource("/v1/things"));
    assert_eq!(
        e,
        ConfigError::InvalidResource {
            resource: "/v1/things".into(),
            reason: "it is not an absolute URI".into()
        }
    );
    assert!(e.to_string().starts_with("invalid resource \"/v1/things\""), "{e}");

    let e = error(builder().resource("https://api.example/v1#section"));
    match &e {
        ConfigError::InvalidResource { reason, .. } => assert!(reason.contains("RFC 8707"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let e = error(builder().resource("https://api.example/#"));
    assert!(matches!(e, ConfigError::InvalidResource { .. }), "{e:?}");
    let e = error(builder().resource("https://[::1"));
    assert!(matches!(e, ConfigError::InvalidResource { .. }), "{e:?}");
}

#[test]
fn reserved_and_empty_parameter_names() {
    let reserved = [
        "grant_type",
        "scope",
        "resource",
        "audience",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "refresh_token",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "assertion",
    ];
    for name in reserved {
        let e = error(builder().param(name, "x"));
        assert_eq!(e, ConfigError::ReservedParameter { name: name.into() });
        assert!(e.to_string().contains("cannot be overridden"), "{e}");
        // A server that folds case or trims names would read these as the
        // reserved one too.
        for variant in [
            name.to_ascii_uppercase(),
            format!(" {name}"),
            format!("{name}\t"),
            format!("\n{name} "),
        ] {
            let e = error(builder().param(variant.clone(), "x"));
            assert_eq!(e, ConfigError::ReservedParameter { name: variant });
        }
    }
    // Among other parameters, after valid ones: still refused.
    let e = error(builder().param("organization", "acme").param("Scope", "admin"));
    assert_eq!(e, ConfigError::ReservedParameter { name: "Scope".into() });
    // Names that only contain a reserved one are the provider's own.
    for name in ["scope_hint", "my_audience", "resource_owner", "assertions", "subject"] {
        assert!(builder().param(name, "x").build().is_ok(), "{name}");
    }
    let e = error(builder().param("", "x"));
    assert_eq!(e, ConfigError::EmptyParameterName);
    assert_eq!(e.to_string(), "an extra parameter has an empty name");
    let config = builder().param("organization", "acme").param("x", "").build().unwrap();
    assert_eq!(
        config.params(),
        [
            ("organization".to_owned(), "acme".to_owned()),
            ("x".to_owned(), String::new())
        ]
    );
}

#[test]
fn durations_retry_and_body_limits() {
    let e = error(builder().default_lifetime(Duration::ZERO));
    assert_eq!(
        e,
        ConfigError::InvalidDuration {
            field: "default_lifetime",
            reason: "must be positive"
        }
    );
    assert_eq!(e.to_string(), "default_lifetime must be positive");

    let e = error(builder().max_attempts(0));
    assert!(matches!(e, ConfigError::InvalidRetry { .. }), "{e:?}");
    assert!(e.to_string().contains("max_attempts must be at least 1"), "{e}");

    let e = error(builder().backoff(Duration::from_secs(10), Duration::from_secs(1)));
    assert!(matches!(e, ConfigError::InvalidRetry { .. }), "{e:?}");
    assert!(e.to_string().starts_with("invalid retry settings"), "{e}");

    let e = error(builder().retry(RetryPolicy::new(0, Duration::ZERO, Duration::ZERO)));
    assert!(matches!(e, ConfigError::InvalidRetry { .. }), "{e:?}");

    let e = error(builder().max_body_size(1023));
    assert_eq!(e, ConfigError::BodyLimitTooSmall { bytes: 1023 });
    assert!(e.to_string().contains("1023"), "{e}");
    builder().max_body_size(1024).build().unwrap();

    let config = builder()
        .max_attempts(1)
        .backoff(Duration::ZERO, Duration::ZERO)
        .refresh_margin(Duration::ZERO)
        .clock_skew(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(config.retry().max_attempts, 1);
    assert_eq!(config.clock_skew(), Duration::from_secs(5));
}

#[test]
fn every_error_converts_into_the_core_error() {
    let e: client_credentials::Error = ConfigError::MissingEndpoint.into();
    assert!(matches!(
        e,
        client_credentials::Error::Config(ConfigError::MissingEndpoint)
    ));
    assert!(!e.is_retryable());
    assert_eq!(e.to_string(), ConfigError::MissingEndpoint.to_string());
}

#[test]
fn debug_never_prints_the_secret_or_parameter_values() {
    let config = builder()
        .param("api_key", "param-value-9f8e")
        .scope("read")
        .build()
        .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("p@ss"), "{debug}");
    assert!(!debug.contains("param-value-9f8e"), "{debug}");
    assert!(debug.contains("api_key"), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(debug.contains("client-1"), "{debug}");

    let builder_debug = format!("{:?}", builder());
    assert!(!builder_debug.contains(SECRET), "{builder_debug}");
    assert!(!builder_debug.contains("p@ss"), "{builder_debug}");
}

#[test]
fn accepted_token_types_are_lowercased() {
    let config = builder()
        .accept_token_type("DPoP")
        .accept_token_type("N_A")
        .build()
        .unwrap();
    assert_eq!(config.accepted_token_types(), ["dpop", "n_a"]);
}

#[test]
fn fingerprint_is_stable_and_changes_with_each_field_but_not_with_the_secret() {
    let base = || {
        Config::builder("id", "secret")
            .token_endpoint(TOKEN_URL)
            .scope("b")
            .scope("a")
            .resource("https://api.example.com/one")
            .resource("https://api.example.com/two")
            .audience("aud")
            .auth(ClientAuth::Post)
    };
    let fingerprint = base().build().unwrap().fingerprint();
    assert_eq!(fingerprint.len(), 64);
    assert!(fingerprint.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    // Stable: across builds, clones, and (pinned, computed independently)
    // across releases, so files written by one version are read by the next.
    assert_eq!(base().build().unwrap().fingerprint(), fingerprint);
    assert_eq!(base().build().unwrap().clone().fingerprint(), fingerprint);
    assert_eq!(
        fingerprint, "e179865301c5344dc19296d4dee601d40c4127a232eca3f2cd78439c25ae66b1",
        "the fingerprint encoding changed: cached tokens of every user would be refetched"
    );

    // Not the secret, nor settings that do not change what a token is good for.
    let same = [
        Config::builder("id", "another secret")
            .token_endpoint(TOKEN_URL)
            .scope("b")
            .scope("a")
            .resource("https://api.example.com/one")
            .resource("https://api.example.com/two")
            .audience("aud")
            .auth(ClientAuth::Post),
        base().scope("a b").scope("a"), // scopes are a set
        base().refresh_margin(Duration::from_secs(10)).max_attempts(1),
        base().jitter_seed(99).default_lifetime(Duration::from_secs(60)),
        base()
            .assertion_lifetime(Duration::from_secs(30))
            .assertion_audience("https://other.example"),
    ];
    for builder in same {
        assert_eq!(builder.build().unwrap().fingerprint(), fingerprint);
    }

    let differ = [
        ("client id", Config::builder("id2", "secret")),
        (
            "token endpoint",
            base().token_endpoint("https://auth.example.com/other"),
        ),
        ("scopes", base().scope("c")),
        ("resources", base().resource("https://api.example.com/three")),
        ("audience", base().audience("other")),
        ("auth method", base().auth(ClientAuth::Json)),
        ("auth method", base().auth(ClientAuth::Basic)),
        ("extra parameter", base().param("organization", "org-a")),
        ("extra parameter's value", base().param("organization", "org-b")),
        ("extra parameter's name", base().param("tenant", "org-a")),
        (
            "extra parameters' order",
            base().param("tenant", "org-a").param("organization", "org-a"),
        ),
        (
            "extra parameters' order",
            base().param("organization", "org-a").param("tenant", "org-a"),
        ),
        ("extra parameter's boundary", base().param("organizationo", "rg-a")),
        ("mutual TLS", base().mutual_tls()),
    ];
    let mut seen = vec![fingerprint.clone()];
    for (what, builder) in differ {
        let builder = if what == "client id" {
            builder
                .token_endpoint(TOKEN_URL)
                .scope("b")
                .scope("a")
                .resource("https://api.example.com/one")
                .resource("https://api.example.com/two")
                .audience("aud")
                .auth(ClientAuth::Post)
        } else {
            builder
        };
        let other = builder.build().unwrap().fingerprint();
        assert!(
            !seen.contains(&other),
            "changing the {what} must change the fingerprint"
        );
        seen.push(other);
    }

    // Resource order matters (it is the order sent); an issuer differs from
    // the same URL as a token endpoint; no audience differs from an empty one.
    let reordered = Config::builder("id", "secret")
        .token_endpoint(TOKEN_URL)
        .scope("a b")
        .resource("https://api.example.com/two")
        .resource("https://api.example.com/one")
        .audience("aud")
        .auth(ClientAuth::Post)
        .build()
        .unwrap();
    assert_ne!(reordered.fingerprint(), fingerprint);
    let issuer = Config::builder("id", "secret")
        .issuer("https://auth.example.com")
        .build()
        .unwrap();
    let endpoint = Config::builder("id", "secret")
        .token_endpoint("https://auth.example.com/")
        .build()
        .unwrap();
    assert_ne!(issuer.fingerprint(), endpoint.fingerprint());
    let no_audience = Config::builder("id", "secret")
        .token_endpoint(TOKEN_URL)
        .build()
        .unwrap();
    let empty_audience = Config::builder("id", "secret")
        .token_endpoint(TOKEN_URL)
        .audience("")
        .build()
        .unwrap();
    assert_ne!(no_audience.fingerprint(), empty_audience.fingerprint());
    // Length prefixes: moving a boundary between fields changes the hash.
    let ab = Config::builder("id", "s")
        .token_endpoint(TOKEN_URL)
        .scope("ab")
        .build()
        .unwrap();
    let a_b = Config::builder("id", "s")
        .token_endpoint(TOKEN_URL)
        .scope("a")
        .scope("b")
        .build()
        .unwrap();
    assert_ne!(ab.fingerprint(), a_b.fingerprint());
}

/// Whichever check fails first, and whether or not the
/// URL parses, no configuration error quotes the password in a URL's userinfo.
#[test]
fn config_errors_never_quote_url_userinfo() {
    let urls = [
        "https://id:pw-5ec2e7@auth.example/token#x",
        "https://id:pw-5ec2e7@auth.example/token?x#",
        "http://id:pw-5ec2e7@auth.example/token",
        "https://id:pw-5ec2e7@auth example/token",
        "https://id:pw-5ec2e7@[::1/token",
        "https://id:pw-5ec2e7@auth.example:99999/token",
        "https://id:p/w-5ec2e7@auth.example/token",
        "https://id:p#w-5ec2e7@auth.example/token",
        "ftp://id:pw-5ec2e7@auth.example/token",
        "id:pw-5ec2e7@auth.example/token",
        "//id:pw-5ec2e7@auth.example/token",
        "http:id:pw-5ec2e7@auth.example/token",
    ];
    for url in urls {
        for builder in [
            Config::builder("id", "s").token_endpoint(url),
            Config::builder("id", "s").issuer(url),
            Config::builder("id", "s")
                .token_endpoint(TOKEN_URL)
                .revocation_endpoint(url),
        ] {
            let builder_debug = format!("{builder:?}");
            assert!(!builder_debug.contains("5ec2e7"), "{url}: {builder_debug}");
            let e = error(builder);
            assert!(!e.to_string().contains("5ec2e7"), "{url}: {e}");
            assert!(!format!("{e:?}").contains("5ec2e7"), "{url}: {e:?}");
        }
    }
    // The credentials check runs before the fragment check, so the error says
    // what to fix first.
    let e = error(Config::builder("id", "s").token_endpoint("https://id:pw-5ec2e7@auth.example/token#x"));
    assert!(e.to_string().contains("credentials in the URL"), "{e}");
}

/// `ConfigBuilder`'s `Debug` hides `.param()` values as
/// `Config`'s does (they are often API keys).
#[test]
fn config_builder_debug_hides_param_values() {
    let builder = builder().param("api_key", "param-value-9f8e").scope("read");
    let debug = format!("{builder:?}");
    assert!(!debug.contains("param-value-9f8e"), "{debug}");
    assert!(debug.contains("api_key"), "{debug}");
    assert!(debug.contains("read"), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");
}

/// `*.localhost` names resolve through whatever resolver
/// (or proxy) the HTTP client uses, which need not map them to loopback, so
/// they do not count as loopback: plain http to them needs
/// `.allow_insecure_http()` like any other host.
#[test]
fn subdomains_of_localhost_are_not_loopback() {
    for url in ["http://auth.localhost/token", "http://a.b.LOCALHOST./token"] {
        let e = error(Config::builder("id", "s").token_endpoint(url));
        assert!(matches!(e, ConfigError::InsecureUrl { .. }), "{url}: {e:?}");
        let e = error(Config::builder("id", "s").issuer(url));
        assert!(matches!(e, ConfigError::InsecureUrl { .. }), "{url}: {e:?}");
        let config = Config::builder("id", "s")
            .token_endpoint(url)
            .allow_insecure_http()
            .build();
        assert!(config.is_ok(), "{url}: {config:?}");
    }
}
