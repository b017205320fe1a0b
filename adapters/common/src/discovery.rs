//! Standalone discovery as a loop without I/O: OpenID Connect discovery
//! first, RFC 8414 when that is not found. Each adapter's `discover_with`
//! sends [`Discovery::request`] and hands the answer to [`Discovery::handle`]
//! until it yields the metadata or an error.

use std::future::Future;

use client_credentials::{
    discovery_request_at, parse_discovery, DiscoveryError, DiscoveryLocation, Error, ProviderMetadata, TransportError,
};

const LOCATIONS: [DiscoveryLocation; 2] = [DiscoveryLocation::OpenId, DiscoveryLocation::Rfc8414];

/// One discovery of `issuer`'s metadata (no credentials involved).
#[derive(Debug, Clone)]
pub struct Discovery {
    issuer: String,
    next: usize,
}

impl Discovery {
    /// Discovery of `issuer`'s metadata.
    pub fn new(issuer: &str) -> Self {
        Discovery {
            issuer: issuer.to_owned(),
            next: 0,
        }
    }

    /// The request to send now, or why the issuer cannot be used.
    pub fn request(&self) -> Result<http::Request<Vec<u8>>, Error> {
        discovery_request_at(&self.issuer, LOCATIONS[self.next])
    }

    /// Hands back the answer to [`Discovery::request`]: `Some` when discovery
    /// is over, `None` when the next location is to be tried.
    pub fn handle(&mut self, response: http::Response<Vec<u8>>) -> Option<Result<ProviderMetadata, Error>> {
        match parse_discovery(&self.issuer, response) {
            Err(Error::Discovery(DiscoveryError::NotFound { .. })) if self.next + 1 < LOCATIONS.len() => {
                self.next += 1;
                None
            }
            result => Some(result),
        }
    }

    /// Runs the whole discovery of `issuer`, each request sent with `send`
    /// (an adapter's transport: a ready future in the blocking adapter).
    pub async fn run<F>(
        issuer: &str,
        mut send: impl FnMut(http::Request<Vec<u8>>) -> F,
    ) -> Result<ProviderMetadata, Error>
    where
        F: Future<Output = Result<http::Response<Vec<u8>>, TransportError>>,
    {
        let mut discovery = Discovery::new(issuer);
        loop {
            let response = send(discovery.request()?).await?;
            if let Some(result) = discovery.handle(response) {
                return result;
            }
        }
    }
}
