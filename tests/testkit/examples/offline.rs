//! Testing a service offline: the test issuer and a protected API on
//! loopback, the service's own `Client` and authorised HTTP client pointed at
//! them, and faults scripted one request at a time. The README's "Testing
//! your service offline" walks through it; CI runs it.
//!
//! ```sh
//! cargo run -p client-credentials-testkit --example offline
//! ```

use client_credentials_blocking::{http, ureq, AuthorizedAgent, Client, Config, Error, OAuthErrorCode};
use client_credentials_testkit::{Fault, TestIssuer, TestResourceServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // An issuer and an API that accepts its tokens, each on a free loopback port.
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();

    // The service's client, configured as in production but for the URLs.
    let config = Config::builder(issuer.client_id(), issuer.client_secret())
        .token_endpoint(issuer.token_endpoint())
        .build()?;
    let client = Client::new(config);
    let orders = AuthorizedAgent::new(ureq::Agent::new_with_defaults(), client.clone()).allow_origin(api.base_url());
    let get = || http::Request::get(format!("{}/orders", api.resource())).body(Vec::new());

    // The happy path: one token request, and the API accepts the token.
    assert_eq!(orders.run(get()?)?.status(), 200);
    assert_eq!(issuer.token_requests().len(), 1);
    println!("first call: 200, 1 token request");

    // The API revokes the token: the agent gets a new one and retries once.
    api.reject_token(client.token()?.secret());
    assert_eq!(orders.run(get()?)?.status(), 200);
    assert_eq!((api.rejected(), issuer.token_requests().len()), (1, 2));
    println!("revoked token: refreshed and retried, 200");

    // The provider fails once (503, Retry-After: 1 s): the client waits, retries, succeeds.
    issuer.push_fault(Fault::retry_after(503, "1"));
    client.refresh()?;
    assert_eq!(issuer.token_requests().len(), 4);
    println!("503 with Retry-After: retried after 1 s");

    // The provider rejects the credentials: a typed error, not retried.
    issuer.push_fault(Fault::oauth_error(401, "invalid_client", "client disabled"));
    match client.refresh() {
        Err(Error::OAuth {
            code: OAuthErrorCode::InvalidClient,
            ..
        }) => println!("invalid_client: a typed error"),
        other => return Err(format!("expected invalid_client, got {other:?}").into()),
    }
    assert_eq!(issuer.token_requests().len(), 5);
    Ok(())
}
