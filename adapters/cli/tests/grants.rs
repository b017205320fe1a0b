//! `client-credentials token --grant token-exchange | jwt-bearer`, run as a
//! user would, against the in-process test issuer: what reaches the
//! provider, the subject and assertion files, the flag checks, the cache.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use client_credentials::token_type;
use client_credentials_testkit::{AuthMethod, TestIssuer};

/// The public client of the test security token service.
const WORKLOAD: &str = "workload";

/// The binary, with no client secret or store key in its environment.
fn cli() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client-credentials"));
    command
        .env_remove("CLIENT_SECRET")
        .env_remove("CLIENT_CREDENTIALS_STORE_KEY_FILE")
        .env_remove("RUST_LOG");
    command
}

/// A test STS that takes token exchanges from `workload` without authentication.
fn sts() -> TestIssuer {
    TestIssuer::builder().public_client(WORKLOAD).start()
}

/// `token --grant token-exchange` as the public client, exchanging `subject` (a JWT).
fn exchange(issuer: &TestIssuer, subject: &Path) -> Command {
    let mut command = cli();
    command
        .args(["token", "--token-url", &issuer.token_endpoint()])
        .args(["--client-id", WORKLOAD, "--no-client-auth"])
        .args(["--grant", "token-exchange", "--subject-token-type", "jwt"])
        .arg("--subject-token-file")
        .arg(subject);
    command
}

/// An unsigned JWT for `sub`, valid for an hour (the test STS reads it
/// without verifying, as a real one would after checking its signature).
fn jwt(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"https://kubernetes.default.svc","sub":"{sub}","exp":{exp}}}"#
        ))
    )
}

/// Writes `content` to `name` in `dir`, mode 0600 as a mounted token is.
fn token_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn stdout(command: &mut Command) -> String {
    let output = command.assert().success().get_output().stdout.clone();
    String::from_utf8(output).expect("UTF-8 output")
}

/// The error output of a run that fails with `code` and prints nothing on stdout.
fn stderr_of(command: &mut Command, code: i32) -> String {
    let output = command.assert().code(code).stdout("").get_output().stderr.clone();
    let stderr = String::from_utf8(output).expect("UTF-8 error output");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    stderr
}

#[test]
fn a_token_exchange_sends_the_subject_and_actor_files_without_client_authentication() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let subject = token_file(dir.path(), "sts-token", &jwt("system:serviceaccount:payments:api"));
    let actor = token_file(dir.path(), "actor-token", "opaque-actor-token");
    let out = stdout(
        exchange(&issuer, &subject)
            .arg("--actor-token-file")
            .arg(&actor)
            .args(["--actor-token-type", "access_token"])
            .args(["--requested-token-type", token_type::ACCESS_TOKEN])
            .args(["--audience", "https://ledger.example.com", "--scope", "ledger:read"]),
    );
    assert_eq!(out, format!("{}\n", issuer.issued_tokens()[0]));

    let requests = issuer.token_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.param("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert_eq!(
        request.param("subject_token"),
        Some(std::fs::read_to_string(&subject).unwrap().as_str())
    );
    assert_eq!(request.param("subject_token_type"), Some(token_type::JWT));
    assert_eq!(request.param("actor_token"), Some("opaque-actor-token"));
    assert_eq!(request.param("actor_token_type"), Some(token_type::ACCESS_TOKEN));
    assert_eq!(request.param("requested_token_type"), Some(token_type::ACCESS_TOKEN));
    assert_eq!(request.param("audience"), Some("https://ledger.example.com"));
    assert_eq!(request.param("scope"), Some("ledger:read"));
    assert_eq!(request.client_id.as_deref(), Some(WORKLOAD));
    // `client_id` in the body, and no secret, header or assertion.
    assert_eq!(request.client_secret, None);
    assert_eq!(request.param("client_assertion"), None);
    assert_eq!(request.header("authorization"), None);
}

#[test]
fn a_jwt_authorization_grant_is_printed_bare_or_as_json_but_not_as_a_header() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let subject = token_file(dir.path(), "sts-token", &jwt("orders"));
    let out = stdout(
        exchange(&issuer, &subject)
            .args(["--requested-token-type", "jwt", "--json"])
            .args(["--audience", "https://b.example.com"]),
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["token_type"], "N_A");
    assert_eq!(json["access_token"], issuer.issued_tokens()[0].as_str());

    let stderr = stderr_of(
        exchange(&issuer, &subject).args(["--requested-token-type", "jwt", "--header"]),
        2,
    );
    assert!(stderr.contains("N_A") && stderr.contains("--json"), "{stderr}");
    assert!(!stderr.contains(&issuer.issued_tokens()[1]), "{stderr}");
}

#[test]
fn a_jwt_bearer_grant_sends_the_grant_assertion_file_with_client_authentication() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let assertion = token_file(dir.path(), "grant.jwt", &jwt("orders@domain-a"));
    let out = stdout(
        cli()
            .args(["token", "--token-url", &issuer.token_endpoint()])
            .args(["--client-id", &issuer.client_id()])
            .env("CLIENT_SECRET", issuer.client_secret())
            .args(["--grant", "jwt-bearer", "--grant-assertion-file"])
            .arg(&assertion),
    );
    assert_eq!(out, format!("{}\n", issuer.issued_tokens()[0]));
    let request = &issuer.token_requests()[0];
    assert_eq!(
        request.param("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    assert_eq!(
        request.param("assertion"),
        Some(std::fs::read_to_string(&assertion).unwrap().as_str())
    );
    assert_eq!(request.auth_method, Some(AuthMethod::Basic));
}

#[test]
fn a_missing_subject_file_is_named_exits_2_and_nothing_is_sent() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-sts-token");
    let stderr = stderr_of(&mut exchange(&issuer, &missing), 2);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("subject token"), "{stderr}");
    assert!(issuer.requests().is_empty(), "no discovery, no token request");

    // The same for the JWT bearer grant's assertion.
    let stderr = stderr_of(
        cli()
            .args(["token", "--token-url", &issuer.token_endpoint()])
            .args(["--client-id", WORKLOAD, "--no-client-auth"])
            .args(["--grant", "jwt-bearer", "--grant-assertion-file"])
            .arg(&missing),
        2,
    );
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(issuer.requests().is_empty());
}

/// The subject file is read under the same checks as an assertion file:
/// one that others may write is refused, and its content is not printed.
#[cfg(unix)]
#[test]
fn a_subject_file_others_may_write_is_refused_without_printing_it() {
    use std::os::unix::fs::PermissionsExt;
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let token = jwt("system:serviceaccount:payments:api");
    let subject = token_file(dir.path(), "sts-token", &token);
    std::fs::set_permissions(&subject, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stderr = stderr_of(&mut exchange(&issuer, &subject), 2);
    assert!(stderr.contains(&subject.display().to_string()), "{stderr}");
    assert!(!stderr.contains(&token), "{stderr}");
    assert!(issuer.requests().is_empty());
}

#[test]
fn the_cache_keeps_one_subjects_token_from_another() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let alice = token_file(dir.path(), "alice", &jwt("alice"));
    let bob = token_file(dir.path(), "bob", &jwt("bob"));

    let first = stdout(exchange(&issuer, &alice).arg("--cache").arg(&cache));
    let second = stdout(exchange(&issuer, &bob).arg("--cache").arg(&cache));
    assert_ne!(first, second, "bob got alice's token");
    assert_eq!(issuer.token_requests().len(), 2);
    assert_eq!(
        issuer.token_requests()[1].param("subject_token"),
        Some(jwt_of(&bob).as_str())
    );

    // Bob again, then alice again: each gets back their own token, kept side
    // by side in the one cache file.
    let third = stdout(exchange(&issuer, &bob).arg("--cache").arg(&cache));
    assert_eq!(third, second);
    let again = stdout(exchange(&issuer, &alice).arg("--cache").arg(&cache));
    assert_eq!(again, first);
    assert_eq!(issuer.token_requests().len(), 2);

    // Another subject written over bob's file: a new exchange, not bob's token.
    std::fs::write(&bob, jwt("carol")).unwrap();
    let fourth = stdout(exchange(&issuer, &bob).arg("--cache").arg(&cache));
    assert_ne!(fourth, second, "carol got bob's token");
    assert_eq!(issuer.token_requests().len(), 3);
}

fn jwt_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn grant_flags_are_checked_before_anything_is_sent() {
    let issuer = sts();
    let dir = tempfile::tempdir().unwrap();
    let subject = token_file(dir.path(), "sts-token", &jwt("alice"));
    let endpoint = [
        "token",
        "--token-url",
        &issuer.token_endpoint(),
        "--client-id",
        WORKLOAD,
    ];

    // No client authentication with the client credentials grant: loud.
    let stderr = stderr_of(cli().args(endpoint).arg("--no-client-auth"), 2);
    assert!(
        stderr.contains("--no-client-auth") && stderr.contains("--grant token-exchange"),
        "{stderr}"
    );
    // An exchange flag without the exchange.
    let stderr = stderr_of(
        cli()
            .args(endpoint)
            .env("CLIENT_SECRET", "x")
            .arg("--subject-token-file")
            .arg(&subject)
            .args(["--subject-token-type", "jwt"]),
        2,
    );
    assert!(stderr.contains("--grant token-exchange"), "{stderr}");
    // The grant assertion without the JWT bearer grant.
    let stderr = stderr_of(
        cli()
            .args(endpoint)
            .env("CLIENT_SECRET", "x")
            .arg("--grant-assertion-file")
            .arg(&subject),
        2,
    );
    assert!(stderr.contains("--grant jwt-bearer"), "{stderr}");
    // The exchange without its subject (clap's own usage error).
    let output = cli()
        .args(endpoint)
        .args(["--no-client-auth", "--grant", "token-exchange"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&output).contains("--subject-token-file"));
    // An unknown short token type.
    let output = exchange(&issuer, &subject)
        .args(["--requested-token-type", "saml3"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&output).contains("saml2"));
    // No secret and no --no-client-auth: the error says how to be a public client.
    let stderr = stderr_of(
        cli()
            .args(endpoint)
            .args(["--grant", "token-exchange", "--subject-token-type", "jwt"])
            .arg("--subject-token-file")
            .arg(&subject),
        2,
    );
    assert!(
        stderr.contains("CLIENT_SECRET") && stderr.contains("--no-client-auth"),
        "{stderr}"
    );
    assert!(issuer.requests().is_empty());
}
