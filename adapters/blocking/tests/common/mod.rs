//! What this crate's test files share.

use client_credentials::{Config, ConfigBuilder};
use client_credentials_testkit::TestIssuer;

/// The test issuer's client and token endpoint, every other setting at its
/// default: the plain configuration, to be adjusted before `build()`.
pub fn config(issuer: &TestIssuer) -> ConfigBuilder {
    Config::builder(issuer.client_id(), issuer.client_secret()).token_endpoint(issuer.token_endpoint())
}
