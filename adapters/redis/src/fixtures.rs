//! What the fleet's and both stores' tests share: a client and its tokens.

use std::time::Duration;

use client_credentials::{AccessToken, Config};

use crate::fleet;

/// The client `fleet-client` with `secret`.
pub(crate) fn config_with_secret(secret: &str) -> Config {
    Config::builder("fleet-client", secret)
        .token_endpoint("https://auth.example.com/token")
        .build()
        .unwrap()
}

/// The client `fleet-client` with its usual secret.
pub(crate) fn config() -> Config {
    config_with_secret("fleet-secret")
}

/// A token named `name`, received now and valid for `lifetime`.
pub(crate) fn token(name: &str, lifetime: Duration) -> AccessToken {
    let now = fleet::wall_now();
    AccessToken::builder(name)
        .received_at(now)
        .expires_at(now.saturating_add(lifetime))
        .build()
        .unwrap()
}
