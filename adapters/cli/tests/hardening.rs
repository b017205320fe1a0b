//! Hardening through the binary: the cache file is tied to its configuration
//! and owner, the help suggests no shared directory, and `-v` never shows a
//! credential the server echoes.

use assert_cmd::Command;
use base64::Engine as _;
use client_credentials_testkit::{Fault, TestIssuer};

fn token(issuer: &TestIssuer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client-credentials"));
    command
        .env_remove("RUST_LOG")
        .args(["token", "--token-url", &issuer.token_endpoint()])
        .args(["--client-id", &issuer.client_id()])
        .env("CLIENT_SECRET", issuer.client_secret());
    command
}

fn output(command: &mut Command) -> (String, String) {
    let output = command.assert().success().get_output().clone();
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The help no longer suggests `/tmp`, where another user can
/// plant the file.
#[test]
fn the_help_never_suggests_tmp_for_the_cache() {
    for args in [&["--help"][..], &["token", "--help"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_client-credentials"))
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("/tmp"), "{out}");
    }
}

/// A cache file group or others can read is refused with a
/// warning on stderr, and a new token is fetched and cached privately.
#[cfg(unix)]
#[test]
fn a_cache_file_readable_by_others_is_refused_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let cache = cache.to_str().unwrap();
    let (first, _) = output(token(&issuer).args(["--cache", cache]));
    std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (second, stderr) = output(token(&issuer).args(["--cache", cache]));
    assert_ne!(first, second, "the world-readable cache was served");
    assert!(
        stderr.contains("not trusted") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_eq!(issuer.token_requests().len(), 2);
    let mode = std::fs::metadata(cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A cache written for other scopes is not served.
#[test]
fn a_cache_file_for_other_scopes_is_not_served() {
    let issuer = TestIssuer::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("token.json");
    let cache = cache.to_str().unwrap();
    let (first, _) = output(token(&issuer).args(["--cache", cache]));
    let (again, _) = output(token(&issuer).args(["--cache", cache]));
    assert_eq!(first, again);
    let (other, _) = output(token(&issuer).args(["--cache", cache, "--scope", "other"]));
    assert_ne!(first, other);
    assert_eq!(issuer.token_requests().len(), 2);
}

/// With `-v`, an error page echoing the Authorization header
/// shows neither it nor the secret.
#[test]
fn verbose_output_never_shows_a_credential_the_server_echoes() {
    let issuer = TestIssuer::start();
    let pair = format!("{}:{}", issuer.client_id(), issuer.client_secret());
    let basic = base64::engine::general_purpose::STANDARD.encode(pair);
    issuer.push_fault(Fault::status(401, format!("<pre>Authorization: Basic {basic}</pre>")));
    let output = token(&issuer).args(["-vv"]).assert().failure().get_output().clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("[redacted]"), "{stderr}");
    assert!(!stderr.contains(&basic), "{stderr}");
    assert!(!stderr.contains(&issuer.client_secret()), "{stderr}");
}
