//! [`AuthMiddleware`]: a `reqwest-middleware` middleware (feature `reqwest-middleware`).

use client_credentials_common::authorize::{AllowedOrigins, Exchange, Origin};
use reqwest_middleware::{Middleware, Next};

use crate::Client;

/// A [`reqwest_middleware::Middleware`] that sets `Authorization` on every
/// request to an allowed origin and, on a `401` that rejects the token,
/// invalidates it and sends the request once more with a new one — only if
/// the body can be cloned (a streamed body is never re-sent). Concurrent
/// requests rejected with the same token cause one refresh. A
/// `use_dpop_nonce` challenge is answered once with the server's nonce.
///
/// The allowed origins default to the config's resource server and
/// resources; [`allow_origin`](Self::allow_origin) replaces them, and
/// requests elsewhere go out untouched. Redirects followed by reqwest lose
/// the header on the way to another host (reqwest's own rule).
///
/// ```no_run
/// use client_credentials_tokio::{AuthMiddleware, Client};
/// # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AuthMiddleware::new(client).allow_origin("https://api.example.com"))
///     .build();
/// let things = http.get("https://api.example.com/things").send().await?.text().await?;
/// # let _ = things; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    client: Client,
    origins: AllowedOrigins,
}

impl AuthMiddleware {
    /// Authorises requests with `client`'s tokens.
    pub fn new(client: Client) -> Self {
        let origins = AllowedOrigins::for_config(client.config());
        AuthMiddleware { client, origins }
    }

    client_credentials_common::origin_methods!();
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = request.url();
        let origin = url
            .host_str()
            .and_then(|host| Origin::from_parts(url.scheme(), host, url.port()));
        let mut exchange = Exchange::for_origin(&self.origins, origin.as_ref());
        loop {
            let spare = if exchange.authorizes() {
                request.try_clone()
            } else {
                None
            };
            if exchange.authorizes() {
                let (method, uri) = (request.method().clone(), request.url().to_string());
                let token = self
                    .client
                    .authorize_headers(&method, &uri, request.headers_mut(), exchange.nonce())
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?;
                exchange.sending(token);
            }
            let response = next.clone().run(request, extensions).await?;
            let url = response.url();
            exchange.answered_by(
                url.host_str()
                    .and_then(|h| Origin::from_parts(url.scheme(), h, url.port()))
                    .as_ref(),
            );
            let verdict = exchange.received(response.status(), response.headers(), spare.is_some());
            self.client.rejected(&verdict);
            match spare {
                Some(spare) if verdict.retry => request = spare,
                _ => return Ok(response),
            }
        }
    }
}
