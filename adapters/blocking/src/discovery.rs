//! Standalone discovery of a provider's metadata.

use client_credentials::{Error, ProviderMetadata};
use client_credentials_common::discovery::Discovery;

use crate::transport::{Transport, UreqTransport};

/// Fetches and validates `issuer`'s metadata: OpenID Connect discovery
/// (`{issuer}/.well-known/openid-configuration`), then RFC 8414
/// (`/.well-known/oauth-authorization-server{path}`) if that is not found.
/// Uses the default transport (30 s timeout, no redirects).
///
/// A client built with `Config::builder(..).issuer(..)` discovers by itself;
/// this is for looking at a provider's endpoints, e.g. to pick an
/// authentication method.
///
/// ```no_run
/// let metadata = client_credentials_blocking::discover("https://login.example.com")?;
/// println!("token endpoint: {}", metadata.token_endpoint);
/// # Ok::<(), client_credentials::Error>(())
/// ```
pub fn discover(issuer: &str) -> Result<ProviderMetadata, Error> {
    discover_with(&UreqTransport::default(), issuer)
}

/// [`discover`] over your own transport.
pub fn discover_with(transport: &impl Transport, issuer: &str) -> Result<ProviderMetadata, Error> {
    let mut discovery = Discovery::new(issuer);
    loop {
        let response = transport.send(discovery.request()?)?;
        if let Some(result) = discovery.handle(response) {
            return result;
        }
    }
}
