//! A user's `reqwest::Client` that follows redirects
//! does not carry the credentials to the redirect target.

use client_credentials::{ClientAuth, Error};
use client_credentials_testkit::{Fault, TestIssuer};
use client_credentials_tokio::Client;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_client_that_follows_redirects_does_not_resend_credentials() {
    let issuer = TestIssuer::start();
    let elsewhere = TestIssuer::start();
    for auth in [ClientAuth::Post, ClientAuth::Json, ClientAuth::Basic] {
        issuer.push_fault(Fault::Redirect(elsewhere.token_endpoint()));
        let config = common::config(&issuer)
            .auth(auth.clone())
            .max_attempts(1)
            .build()
            .unwrap();
        // reqwest's default policy follows up to 10 redirects.
        let client = Client::builder(config.clone())
            .reqwest_client(reqwest::Client::new())
            .build();
        let error = client.token().await.unwrap_err();
        assert!(
            matches!(&error, Error::UnexpectedStatus { status, .. } if status.as_u16() == 307),
            "{auth:?}: {error:?}"
        );
        assert!(
            elsewhere.requests().is_empty(),
            "{auth:?}: the request was re-sent to the redirect target"
        );

        // Without a redirect such a client works, the body sized as before.
        let client = Client::builder(config).reqwest_client(reqwest::Client::new()).build();
        let token = client.token().await.unwrap();
        assert!(!token.secret().is_empty());
        let sent = issuer.token_requests().pop().unwrap();
        let length: usize = sent.header("content-length").expect("Content-Length").parse().unwrap();
        assert!(length > 0);
    }
}
