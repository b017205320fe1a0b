//! Issuer-only configuration: give the client the issuer URL, and it finds the
//! token endpoint and the client authentication method itself.
//!
//! What it shows, against the workspace's test issuer on loopback (offline,
//! well under a second):
//! - `Config::builder(..).issuer(url)`: the first `token()` fetches the
//!   OpenID Connect discovery document (`{issuer}/.well-known/openid-configuration`),
//!   checks its `issuer` is exactly the configured one, then requests a token
//!   from the `token_endpoint` it lists; the metadata is reused afterwards.
//! - An issuer with a path that serves only RFC 8414 metadata: after the 404
//!   the client asks `/.well-known/oauth-authorization-server/{path}`.
//! - The auth method the provider lists (here only `client_secret_post`) is
//!   picked when none is configured.
//! - `discover(issuer)`: the metadata alone, e.g. to check a configuration.
//! - A document naming another issuer is refused, and its endpoints never used.
//!
//! ```sh
//! cargo run -p client-credentials-tokio --example discovery
//! ```

use client_credentials::{Config, DiscoveryError, Error};
use client_credentials_testkit::{AuthMethod, DiscoveryMode, TestIssuer};
use client_credentials_tokio::{discover, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. OpenID Connect discovery, then tokens.
    let issuer = TestIssuer::start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url()) // no token endpoint: it is discovered
        .build()?;
    let client = Client::new(config);
    client.token().await?;
    client.refresh().await?;
    let metadata = client.metadata().ok_or("no metadata after the first token")?;
    println!("issuer {}", metadata.issuer);
    println!("  token endpoint      {}", metadata.token_endpoint);
    println!("  revocation endpoint {:?}", metadata.revocation_endpoint);
    println!(
        "  auth methods        {:?}",
        metadata.token_endpoint_auth_methods_supported
    );
    let paths: Vec<_> = issuer.discovery_requests().into_iter().map(|r| r.path).collect();
    println!(
        "  discovery requests  {paths:?} for {} tokens",
        issuer.token_requests().len()
    );
    assert_eq!(paths, ["/.well-known/openid-configuration"], "fetched once, reused");
    assert_eq!(issuer.token_requests().len(), 2);

    // 2. An issuer with a path, RFC 8414 metadata only, client_secret_post only.
    let issuer = TestIssuer::builder()
        .issuer_path("/tenants/acme")
        .discovery(DiscoveryMode::Rfc8414)
        .auth_methods(["client_secret_post"])
        .start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()?;
    Client::new(config).token().await?;
    let paths: Vec<_> = issuer.discovery_requests().into_iter().map(|r| r.path).collect();
    println!("issuer {}", issuer.issuer_url());
    println!("  discovery requests  {paths:?}");
    assert_eq!(
        paths,
        [
            "/tenants/acme/.well-known/openid-configuration", // 404
            "/.well-known/oauth-authorization-server/tenants/acme",
        ]
    );
    let sent_with = issuer.token_requests()[0].auth_method;
    println!("  credentials sent as {sent_with:?} (the only method listed)");
    assert_eq!(sent_with, Some(AuthMethod::Post));

    // 3. The metadata alone.
    let metadata = discover(&issuer.issuer_url()).await?;
    println!(
        "discover({}) -> token endpoint {}",
        metadata.issuer, metadata.token_endpoint
    );

    // 4. A document that names another issuer: refused before any token request.
    let issuer = TestIssuer::builder().advertise_issuer("https://evil.example").start();
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .build()?;
    match Client::new(config).token().await {
        Err(error @ Error::Discovery(DiscoveryError::IssuerMismatch { .. })) => println!("refused: {error}"),
        other => panic!("expected an issuer mismatch, got {other:?}"),
    }
    assert!(issuer.token_requests().is_empty());
    Ok(())
}
