//! The scenarios, each generic over the [`Adapter`](crate::Adapter) so one
//! list runs against both adapters. Every scenario asserts the outcome *and*
//! what reached the server (request count, credentials, parameters).

pub mod assertions;
pub mod authorized;
pub mod caching;
pub mod discovery;
pub mod faults;
pub mod fleet;
pub mod grants;
pub mod hardening;
pub mod interop;
pub mod keys;
pub mod local_files;
pub mod logging;
pub mod observability;
pub mod parity;
pub mod quirks;
pub mod rejections;
pub mod resource_server;
pub mod single_flight;
pub mod stores;

use client_credentials::{Config, ConfigBuilder};
use client_credentials_testkit::TestIssuer;

/// A builder for the issuer's default client and token endpoint, with a fixed
/// jitter seed so retries are repeatable.
pub fn config(issuer: &TestIssuer) -> ConfigBuilder {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .jitter_seed(7)
}

/// The same, discovering the endpoint from the issuer.
pub fn discovering(issuer: &TestIssuer) -> ConfigBuilder {
    Config::builder(issuer.client_id(), issuer.client_secret())
        .issuer(issuer.issuer_url())
        .jitter_seed(7)
}
