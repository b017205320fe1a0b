//! The `client-credentials` binary, run as a user would, against the
//! in-process test issuer: outputs, exit codes, the cache, secret handling.

use assert_cmd::Command;
use client_credentials_testkit::{AuthMethod, DiscoveryMode, TestIssuer};
use predicates::prelude::*;
use predicates::str::contains;

/// The binary, with no client secret in its environment.
fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client-credentials"));
    command.env_remove("CLIENT_SECRET").env_remove("RUST_LOG");
    command
}

/// `token --token-url … --client-id …` with the right secret in `CLIENT_SECRET`.
fn token(issuer: &TestIssuer) -> Command {
    let mut command = cli();
    command
        .args(["token", "--token-url", &issuer.token_endpoint()])
        .args(["--client-id", &issuer.client_id()])
        .env("CLIENT_SECRET", issuer.client_secret());
    command
}

fn stdout(command: &mut Command) -> String {
    let output = command.assert().success().get_output().stdout.clone();
    String::from_utf8(output).expect("UTF-8 output")
}

fn stderr_of(command: &mut Command, code: i32) -> String {
    let output = command.assert().code(code).stdout("").get_output().stderr.clone();
    String::from_utf8(output).expect("UTF-8 error output")
}

/// One line, `error: …`, and neither the secret nor any issued token.
fn assert_one_clean_line(stderr: &str, issuer: &TestIssuer) {
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!stderr.contains(&issuer.client_secret()), "{stderr:?}");
    for token in issuer.issued_tokens() {
        assert!(!stderr.contains(&token), "{stderr:?}");
    }
}

#[test]
fn bare_output_is_the_token_alone() {
    let issuer = TestIssuer::start();
    let out = stdout(&mut token(&issuer));
    assert_eq!(out, format!("{}\n", issuer.issued_tokens()[0]));
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn header_output_is_an_authorization_header_value() {
    let issuer = TestIssuer::start();
    let out = stdout(token(&issuer).arg("--header"));
    assert_eq!(out, format!("Bearer {}\n", issuer.issued_tokens()[0]));
}

#[test]
fn json_output_has_token_type_expiry_and_scope() {
    let issuer = TestIssuer::start();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = stdout(token(&issuer).args(["--json", "--scope", "orders:read", "--scope", "orders:write"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["access_token"], issuer.issued_tokens()[0].as_str());
    assert_eq!(json["token_type"], "Bearer");
    let expires_at = json["expires_at"].as_u64().unwrap();
    assert!(
        (before + 3590..=before + 3610).contains(&expires_at),
        "{expires_at} vs {before}"
    );
    assert!(json.get("scope").is_some(), "{json}");
    assert_eq!(
        issuer.token_requests()[0].param("scope"),
        Some("orders:read orders:write")
    );
}

#[test]
fn header_and_json_exclude_each_other() {
    let issuer = TestIssuer::start();
    let stderr = stderr_of(token(&issuer).args(["--header", "--json"]), 2);
    assert!(stderr.contains("--json"), "{stderr}");
    assert!(issuer.requests().is_empty());
}

#[test]
fn auth_resource_and_audience_reach_the_provider() {
    let issuer = TestIssuer::start();
    let mut command = token(&issuer);
    command.args([
        "--auth",
        "post",
        "--resource",
        "https://api.example.com/",
        "--audience",
        "orders",
    ]);
    stdout(&mut command);
    let request = &issuer.token_requests()[0];
    assert_eq!(request.auth_method, Some(AuthMethod::Post));
    assert_eq!(request.params("resource"), ["https://api.example.com/"]);
    assert_eq!(request.param("audience"), Some("orders"));
}

#[test]
fn wrong_secret_exits_3_naming_invalid_client_without_the_secret() {
    let issuer = TestIssuer::start();
    let stderr = stderr_of(token(&issuer).env("CLIENT_SECRET", "s3cr3t-that-is-wrong"), 3);
    assert!(stderr.contains("invalid_client"), "{stderr}");
    assert!(!stderr.contains("s3cr3t-that-is-wrong"), "{stderr}");
    assert_one_clean_line(&stderr, &issuer);
    assert_eq!(issuer.token_requests().len(), 1, "OAuth errors are not retried");
}

#[test]
fn unreachable_token_endpoint_exits_4() {
    // A port that was just free: connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = TestIssuer::start();
    let mut command = cli();
    command
        .args(["token", "--token-url", &format!("http://127.0.0.1:{port}/token")])
        .args(["--client-id", "me", "--timeout", "2"])
        .env("CLIENT_SECRET", issuer.client_secret());
    let stderr = stderr_of(&mut command, 4);
    assert_one_clean_line(&stderr, &issuer);
}

#[test]
fn server_error_exits_4() {
    let issuer = TestIssuer::start();
    for _ in 0..3 {
        issuer.push_fault(client_credentials_testkit::Fault::status(500, "{}"));
    }
    let stderr = stderr_of(&mut token(&issuer), 4);
    assert!(stderr.contains("500"), "{stderr}");
    assert_one_clean_line(&stderr, &issuer);
}

#[test]
fn issuer_mismatch_exits_5_for_token_and_discover() {
    let issuer = TestIssuer::builder().advertise_issuer("https://evil.example").start();
    let mut command = cli();
    command
        .args([
            "token",
            "--issuer",
            &issuer.issuer_url(),
            "--client-id",
            &issuer.client_id(),
        ])
        .env("CLIENT_SECRET", issuer.client_secret());
    let stderr = stderr_of(&mut command, 5);
    assert!(stderr.contains("does not match"), "{stderr}");
    assert_one_clean_line(&stderr, &issuer);
    assert!(issuer.token_requests().is_empty());

    let stderr = stderr_of(cli().args(["discover", &issuer.issuer_url()]), 5);
    assert!(stderr.contains("evil.example"), "{stderr}");
}

#[test]
fn missing_discovery_document_exits_5() {
    let issuer = TestIssuer::builder().discovery(DiscoveryMode::None).start();
    let stderr = stderr_of(cli().args(["discover", &issuer.issuer_url()]), 5);
    assert!(stderr.contains("404"), "{stderr}");
    assert_eq!(issuer.discovery_requests().len(), 2, "OpenID Connect, then RFC 8414");
}

#[test]
fn usage_errors_exit_2() {
    let issuer = TestIssuer::start();
    // No client id.
    let mut command = cli();
    command
        .args(["token", "--token-url", &issuer.token_endpoint()])
        .env("CLIENT_SECRET", "x");
    let stderr = stderr_of(&mut command, 2);
    assert!(stderr.contains("--client-id"), "{stderr}");
    // Both endpoints.
    let stderr = stderr_of(token(&issuer).args(["--issuer", &issuer.issuer_url()]), 2);
    assert!(
        stderr.contains("--issuer") && stderr.contains("--token-url"),
        "{stderr}"
    );
    // Neither.
    stderr_of(cli().args(["token", "--client-id", "me"]).env("CLIENT_SECRET", "x"), 2);
    // No secret.
    let stderr = stderr_of(token(&issuer).env_remove("CLIENT_SECRET"), 2);
    assert!(
        stderr.contains("CLIENT_SECRET") && stderr.contains("--client-secret-file"),
        "{stderr}"
    );
    // Plain http to a non-loopback host.
    let mut command = cli();
    command
        .args([
            "token",
            "--token-url",
            "http://auth.example.com/token",
            "--client-id",
            "me",
        ])
        .env("CLIENT_SECRET", "x");
    let stderr = stderr_of(&mut command, 2);
    assert!(stderr.contains("https"), "{stderr}");
    assert!(issuer.requests().is_empty());
}

#[test]
fn a_secret_on_the_command_line_is_refused() {
    let issuer = TestIssuer::start();
    for args in [
        vec!["--client-secret", "hunter2-secret"],
        vec!["--client-secret=hunter2-secret"],
    ] {
        let stderr = stderr_of(token(&issuer).args(&args), 2);
        assert!(stderr.contains("ps") && stderr.contains("history"), "{stderr}");
        assert!(
            stderr.contains("--client-secret-env") && stderr.contains("--client-secret-file"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2-secret"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1);
    }
    assert!(issuer.requests().is_empty());
}

#[test]
fn the_secret_can_come_from_a_file_or_another_variable() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{}\n", issuer.client_secret())).unwrap();
    let out = stdout(
        token(&issuer)
            .env_remove("CLIENT_SECRET")
            .arg("--client-secret-file")
            .arg(&path),
    );
    assert_eq!(out.trim_end(), issuer.issued_tokens()[0]);

    let out = stdout(
        token(&issuer)
            .env_remove("CLIENT_SECRET")
            .env("MY_SECRET", issuer.client_secret())
            .args(["--client-secret-env", "MY_SECRET"]),
    );
    assert_eq!(out.trim_end(), issuer.issued_tokens()[1]);

    let missing = dir.path().join("missing");
    let stderr = stderr_of(token(&issuer).arg("--client-secret-file").arg(&missing), 2);
    assert!(stderr.contains("missing"), "{stderr}");
}

#[test]
fn the_cache_makes_the_second_run_network_free() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let first = stdout(token(&issuer).arg("--cache").arg(&cache));
    let second = stdout(token(&issuer).arg("--cache").arg(&cache).arg("--header"));
    assert_eq!(issuer.token_requests().len(), 1);
    assert_eq!(second, format!("Bearer {first}"));
}

/// The cache keeps one token per configuration: runs with other scopes,
/// audiences or resources do not overwrite each other's token.
#[test]
fn the_cache_keeps_a_token_per_scope_audience_and_resource() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let run = |extra: &[&str]| stdout(token(&issuer).args(extra).arg("--cache").arg(&cache));
    let read = run(&["--scope", "orders:read"]);
    let write = run(&["--scope", "orders:write"]);
    assert_ne!(read, write);
    assert_eq!(run(&["--scope", "orders:read"]), read);
    assert_eq!(run(&["--scope", "orders:write"]), write);
    assert_eq!(
        issuer.token_requests().len(),
        2,
        "one request per scope, not one per run"
    );

    let billing = [
        "--audience",
        "https://billing.example",
        "--resource",
        "https://billing.example/api",
    ];
    let for_billing = run(&billing);
    assert_eq!(run(&billing), for_billing);
    assert_eq!(run(&["--scope", "orders:read"]), read);
    assert_eq!(issuer.token_requests().len(), 3);
    let last = issuer.token_requests().pop().unwrap();
    assert_eq!(last.param("audience"), Some("https://billing.example"));
    assert_eq!(last.param("resource"), Some("https://billing.example/api"));
}

#[test]
fn the_cache_works_with_discovery_too() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let run = || {
        let mut command = cli();
        command
            .args([
                "token",
                "--issuer",
                &issuer.issuer_url(),
                "--client-id",
                &issuer.client_id(),
            ])
            .arg("--cache")
            .arg(&cache)
            .env("CLIENT_SECRET", issuer.client_secret());
        stdout(&mut command)
    };
    assert_eq!(run(), run());
    assert_eq!(issuer.token_requests().len(), 1);
}

#[test]
fn discover_prints_the_metadata_as_json() {
    let issuer = TestIssuer::start();
    let out = stdout(cli().args(["discover", &issuer.issuer_url()]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["issuer"], issuer.issuer_url().as_str());
    assert_eq!(json["token_endpoint"], issuer.token_endpoint().as_str());
    assert!(out.lines().count() > 3, "pretty-printed: {out}");
    assert!(issuer.token_requests().is_empty());
}

#[test]
fn verbose_shows_each_request_without_credentials() {
    let issuer = TestIssuer::start();
    let assert = token(&issuer).arg("-v").assert().success();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(&format!("POST {} -> 200", issuer.token_endpoint())),
        "{stderr}"
    );
    assert!(!stderr.contains(&issuer.client_secret()), "{stderr}");
    assert!(!stderr.contains(&issuer.issued_tokens()[0]), "{stderr}");
    // Without -v, nothing on stderr.
    token(&issuer).assert().success().stderr("");
}

#[test]
fn help_documents_exit_codes_and_a_curl_example() {
    cli().arg("--help").assert().success().stdout(
        contains("Exit codes")
            .and(contains("curl"))
            .and(contains("5  discovery")),
    );
    cli()
        .args(["token", "--help"])
        .assert()
        .success()
        .stdout(contains("--client-secret-file").and(contains("ps")));
}

#[test]
fn demo_runs_every_section_and_exits_0() {
    let out = stdout(cli().arg("demo"));
    for section in [
        "1. first token",
        "2. cached reads",
        "3. refresh",
        "4. single flight",
        "5. retry",
        "6. wrong secret",
        "7. discovery",
        "8. counters",
    ] {
        assert!(out.contains(section), "{section} missing from:\n{out}");
    }
    assert!(out.contains("invalid_client"), "{out}");
    assert!(out.contains("64 threads at once: 1 token request"), "{out}");
    assert!(out.contains("2 token requests"), "{out}");
    assert!(out.contains("on_refresh_failed: 1 failed round"), "{out}");
    assert!(
        !out.contains(client_credentials_testkit::DEFAULT_CLIENT_SECRET),
        "{out}"
    );
    let lines = out.lines().count();
    assert!((10..=25).contains(&lines), "{lines} lines:\n{out}");
}

/// `redis-server` on loopback with only an ACL user `fleet` (password `s3cret`)
/// limited to the default key prefix and the four commands the store sends.
fn acl_redis() -> client_credentials_testkit::redis::RedisServer {
    client_credentials_testkit::redis::RedisServer::start_with(&[
        "--user",
        "default",
        "off",
        "--user",
        "fleet",
        "on",
        ">s3cret",
        "~client-credentials:*",
        "+get",
        "+set",
        "+del",
        "+eval",
    ])
}

#[test]
fn the_redis_store_makes_the_second_run_network_free_with_an_acl_user() {
    let issuer = TestIssuer::start();
    let redis = acl_redis();
    let url = format!("redis://fleet@127.0.0.1:{}", redis.port());
    let run = |extra: &[&str]| {
        stdout(
            token(&issuer)
                .args(["--store", &url])
                .args(extra)
                .env("REDIS_PASSWORD", "s3cret"),
        )
    };
    let first = run(&[]);
    let second = run(&["--header"]);
    assert_eq!(issuer.token_requests().len(), 1);
    assert_eq!(second, format!("Bearer {first}"));
}

#[test]
fn a_redis_password_in_the_store_url_is_refused() {
    let issuer = TestIssuer::start();
    let stderr = stderr_of(token(&issuer).args(["--store", "redis://fleet:s3cret@127.0.0.1:1"]), 2);
    assert_one_clean_line(&stderr, &issuer);
    assert!(
        stderr.contains("REDIS_PASSWORD") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    assert!(issuer.token_requests().is_empty());
}

#[test]
fn an_unreachable_redis_store_still_prints_a_token() {
    let issuer = TestIssuer::start();
    // A port nothing listens on: connections are refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let out = stdout(token(&issuer).args(["--store", &format!("redis://127.0.0.1:{port}")]));
    assert_eq!(out, format!("{}\n", issuer.issued_tokens()[0]));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

#[test]
fn the_redis_store_works_over_tls_with_a_private_ca() {
    let issuer = TestIssuer::start();
    let redis = client_credentials_testkit::redis::RedisServer::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, redis.ca_certificate()).unwrap();
    let run = || {
        stdout(
            token(&issuer)
                .args(["--store", &redis.url()])
                .arg("--store-ca-file")
                .arg(&ca),
        )
    };
    assert_eq!(run(), run());
    assert_eq!(issuer.token_requests().len(), 1);
}

const EC_PEM_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../core/tests/keys/ec.pem");

#[test]
fn a_private_key_replaces_the_secret() {
    let pem = std::fs::read_to_string(EC_PEM_PATH).unwrap();
    let key = client_credentials::JwtKey::from_pem(&pem, client_credentials::JwsAlgorithm::Es256).unwrap();
    let issuer = TestIssuer::builder()
        .client("jwt-client", "unused")
        .client_jwk("jwt-client", key.public_jwk())
        .auth_methods(["private_key_jwt"])
        .start();
    let mut command = cli();
    command
        .args(["token", "--issuer", &issuer.issuer_url(), "--client-id", "jwt-client"])
        .args(["--private-key", EC_PEM_PATH, "--key-alg", "es256", "--key-id", "k1"]);
    let out = stdout(&mut command);
    assert_eq!(out, format!("{}\n", issuer.issued_tokens()[0]));
    let request = &issuer.token_requests()[0];
    assert_eq!(request.auth_method, Some(AuthMethod::PrivateKeyJwt));
    assert_eq!(request.client_secret, None);
}

#[test]
fn an_expired_assertion_file_is_an_error_and_nothing_is_sent() {
    use base64::Engine as _;
    let issuer = TestIssuer::builder().auth_methods(["private_key_jwt"]).start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svid");
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    std::fs::write(
        &path,
        format!("{}.{}.c2ln", b64(r#"{"alg":"ES256"}"#), b64(r#"{"exp":1000}"#)),
    )
    .unwrap();
    let mut command = cli();
    command
        .args(["token", "--token-url", &issuer.token_endpoint(), "--client-id", "w"])
        .args(["--assertion-file", path.to_str().unwrap(), "--spiffe"]);
    let stderr = stderr_of(&mut command, 2);
    assert!(stderr.starts_with("error: ") && stderr.contains("expired"), "{stderr}");
    assert!(issuer.token_requests().is_empty());
}

/// `token` as the private-key client `jwt-client` of `issuer`.
fn private_key_token(issuer: &TestIssuer) -> Command {
    let mut command = cli();
    command
        .env_remove("CLIENT_CREDENTIALS_STORE_KEY_FILE")
        .args(["token", "--issuer", &issuer.issuer_url(), "--client-id", "jwt-client"])
        .args(["--private-key", EC_PEM_PATH, "--key-alg", "es256", "--key-id", "k1"]);
    command
}

fn private_key_issuer() -> TestIssuer {
    let pem = std::fs::read_to_string(EC_PEM_PATH).unwrap();
    let key = client_credentials::JwtKey::from_pem(&pem, client_credentials::JwsAlgorithm::Es256).unwrap();
    TestIssuer::builder()
        .client("jwt-client", "unused")
        .client_jwk("jwt-client", key.public_jwk())
        .auth_methods(["private_key_jwt"])
        .start()
}

#[test]
fn a_redis_store_without_a_key_is_refused_for_a_client_without_a_secret() {
    let issuer = private_key_issuer();
    let stderr = stderr_of(private_key_token(&issuer).args(["--store", "redis://127.0.0.1:1"]), 2);
    assert!(stderr.contains("--store-key-file"), "{stderr}");
    assert!(issuer.token_requests().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too short\n").unwrap();
    let stderr = stderr_of(
        private_key_token(&issuer)
            .args(["--store", "redis://127.0.0.1:1", "--store-key-file"])
            .arg(&short),
        2,
    );
    assert!(stderr.contains("32 bytes"), "{stderr}");
    assert!(issuer.token_requests().is_empty());
}

#[test]
fn a_store_key_file_seals_a_private_key_clients_tokens_in_redis() {
    let issuer = private_key_issuer();
    let redis = client_credentials_testkit::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("store.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let first = stdout(
        private_key_token(&issuer)
            .args(["--store", &redis.url(), "--store-key-file"])
            .arg(&key),
    );
    // The same key from the environment: the second run reuses the token.
    let second = stdout(
        private_key_token(&issuer)
            .args(["--store", &redis.url()])
            .env("CLIENT_CREDENTIALS_STORE_KEY_FILE", &key),
    );
    assert_eq!(first, second);
    assert_eq!(issuer.token_requests().len(), 1);
    let keys = redis.cli(&["keys", "client-credentials:*"]);
    let stored = redis.cli(&["get", keys.trim()]);
    assert!(!stored.contains(first.trim()), "sealed");
}

/// The key file is checked on its open handle like an assertion file: one
/// that others may write is refused before anything is sent.
#[cfg(unix)]
#[test]
fn a_store_key_file_others_may_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let issuer = private_key_issuer();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("store.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stderr = stderr_of(
        private_key_token(&issuer)
            .args(["--store", "redis://127.0.0.1:1", "--store-key-file"])
            .arg(&key),
        2,
    );
    assert!(stderr.contains("--store-key-file"), "{stderr}");
    assert!(issuer.token_requests().is_empty());
}
