//! Workload identity federation, offline: a Kubernetes projected
//! service-account token (a file the kubelet rotates) exchanged at a
//! security token service (RFC 8693) that takes no client authentication.
//! The test issuer plays the STS; the token file lives in a temporary
//! directory. CI runs it.
//!
//! ```sh
//! cargo run -p client-credentials-testkit --example workload_identity
//! ```

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use client_credentials_blocking::{token_type, AssertionSource, Client, ClientAuth, Config, Grant, TokenExchange};
use client_credentials_testkit::TestIssuer;

/// What the kubelet writes: a JWT for the pod's service account (unsigned
/// here; the test STS reads it without verifying).
fn projected_token(service_account: &str, lifetime_secs: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = format!(
        r#"{{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:{service_account}","aud":["sts.example.com"],"exp":{}}}"#,
        now + lifetime_secs
    );
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// Writes the token as the kubelet does: a new file renamed over the old.
fn rotate(path: &Path, token: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, token)?;
    std::fs::rename(&tmp, path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sts = TestIssuer::builder().public_client("payments").start();
    let dir = std::env::temp_dir().join(format!("workload-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("sts-token");
    rotate(&token_file, &projected_token("payments:api", 3600))?;

    // In a pod: the projected volume's path, and the STS's token endpoint.
    let config = Config::builder("payments", "")
        .token_endpoint(sts.token_endpoint())
        .auth(ClientAuth::None)
        .grant(Grant::token_exchange(
            TokenExchange::new(AssertionSource::file(&token_file), token_type::JWT)
                .audience("https://ledger.example.com"),
        ))
        .build()?;
    let client = Client::new(config);

    let token = client.token()?;
    let sent = sts.token_requests();
    assert_eq!(sent[0].param("subject_token_type"), Some(token_type::JWT));
    println!("exchanged the projected token for a {} token", token.token_type());

    // Cached: no second exchange.
    client.token()?;
    assert_eq!(sts.token_requests().len(), 1);

    // The kubelet rotates the token; the next exchange sends the new one.
    let rotated = projected_token("payments:api", 3600);
    rotate(&token_file, &rotated)?;
    client.refresh()?;
    let sent = sts.token_requests();
    assert_eq!(sent[1].param("subject_token"), Some(rotated.as_str()));
    println!("after rotation: exchanged the new projected token");

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
