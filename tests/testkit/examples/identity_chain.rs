//! Identity chaining across two trust domains, offline
//! (draft-ietf-oauth-identity-chaining): a token exchange at domain A's
//! authorization server asks for a JWT authorization grant for domain B
//! (`requested_token_type` = JWT, answered with `token_type` `N_A`); B's
//! client presents it with the JWT bearer grant (RFC 7523 §2.1). Two test
//! issuers play A and B. CI runs it.
//!
//! ```sh
//! cargo run -p client-credentials-testkit --example identity_chain
//! ```

use std::sync::{Arc, Mutex};

use client_credentials_blocking::{token_type, AssertionSource, Client, Config, Grant, TokenExchange};
use client_credentials_testkit::TestIssuer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let domain_a = TestIssuer::builder().client("orders", "orders-secret").start();
    let domain_b = TestIssuer::builder().client("orders-at-b", "b-secret").start();

    // The token the service holds in domain A (here: its own client
    // credentials token; in a real chain, often a user's access token).
    let own = Client::new(
        Config::builder("orders", "orders-secret")
            .token_endpoint(domain_a.token_endpoint())
            .build()?,
    );

    // Domain A: exchange it for a JWT authorization grant whose audience is B.
    // The callback returns the cached token (it must not block).
    let subject = own.clone();
    let grant_client = Client::builder(
        Config::builder("orders", "orders-secret")
            .token_endpoint(domain_a.token_endpoint())
            .grant(Grant::token_exchange(
                TokenExchange::new(
                    AssertionSource::callback(move || subject.token().map(|t| t.secret().to_owned())),
                    token_type::ACCESS_TOKEN,
                )
                .requested_token_type(token_type::JWT)
                .audience(domain_b.issuer_url()),
            ))
            .build()?,
    );
    // The latest grant, kept up to date for domain B's callback.
    let latest: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = Arc::clone(&latest);
    let grant_client = grant_client
        .on_token_update(move |token| *keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.secret().to_owned()))
        .build();
    own.token()?;
    let grant = grant_client.token()?;
    assert_eq!(grant.token_type(), "N_A");
    println!("domain A issued a JWT authorization grant for domain B");

    // Domain B: the JWT bearer grant with A's latest grant as the assertion.
    let read = Arc::clone(&latest);
    let at_b = Client::new(
        Config::builder("orders-at-b", "b-secret")
            .token_endpoint(domain_b.token_endpoint())
            .grant(Grant::jwt_bearer(AssertionSource::callback(move || {
                read.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .ok_or("no grant from domain A yet")
            })))
            .build()?,
    );
    let token = at_b.token()?;
    assert_eq!(domain_b.token_requests()[0].param("assertion"), Some(grant.secret()));
    println!(
        "domain B issued a {} access token for the chained identity",
        token.token_type()
    );
    Ok(())
}
