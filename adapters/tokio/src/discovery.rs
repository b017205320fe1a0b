//! Standalone discovery: fetch and validate a provider's metadata document.

use client_credentials::{ConfigBuilder, Error, ProviderMetadata};
use client_credentials_common::discovery::Discovery;

use crate::transport::{ReqwestTransport, Transport};

/// Fetches `issuer`'s metadata: OpenID Connect discovery first, then RFC 8414
/// when that answers 404. The document's `issuer` must equal `issuer`
/// exactly and its endpoints must be HTTPS (loopback aside).
///
/// A [`Client`](crate::Client) built with `Config::builder(..).issuer(..)` discovers on its
/// own; this is for reading the metadata yourself.
///
/// ```no_run
/// # async fn run() -> Result<(), client_credentials::Error> {
/// let metadata = client_credentials_tokio::discover("https://id.example.com").await?;
/// println!("{}", metadata.token_endpoint);
/// # Ok(()) }
/// ```
pub async fn discover(issuer: &str) -> Result<ProviderMetadata, Error> {
    let transport = ReqwestTransport::new(ReqwestTransport::DEFAULT_TIMEOUT, ConfigBuilder::DEFAULT_MAX_BODY_SIZE);
    discover_with(&transport, issuer).await
}

/// [`discover`] through your own [`Transport`].
pub async fn discover_with(transport: &dyn Transport, issuer: &str) -> Result<ProviderMetadata, Error> {
    Discovery::run(issuer, |request| transport.send(request)).await
}
