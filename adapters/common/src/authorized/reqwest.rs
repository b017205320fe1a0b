//! The [`AuthMiddleware`] as a `reqwest-middleware` middleware (feature
//! `reqwest-middleware`): the header, and one retry after a `401`.

use reqwest_middleware::reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};

use super::policy::{Exchange, Origin};
use super::{AsyncAuthorizer, AuthMiddleware};

fn origin(url: &Url) -> Option<Origin> {
    Origin::from_parts(url.scheme(), url.host_str()?, url.port())
}

/// Sends the request once more with a new token after a `401` that rejects
/// it, only if the body can be cloned (a streamed body is never re-sent).
#[async_trait::async_trait]
impl<C: AsyncAuthorizer> Middleware for AuthMiddleware<C> {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        self.keyed
            .check(&self.origins)
            .map_err(|error| reqwest_middleware::Error::middleware(client_credentials::Error::Config(error)))?;
        let url = request.url();
        let mut exchange = Exchange::for_origin(&self.origins, origin(url).as_ref(), url.as_str());
        let client = self.client_for(exchange.origin());
        loop {
            let spare = if exchange.authorizes() {
                request.try_clone()
            } else {
                None
            };
            if exchange.authorizes() {
                let (method, uri) = (request.method().clone(), request.url().to_string());
                let token = client
                    .authorize_headers(&method, &uri, request.headers_mut(), exchange.nonce())
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?;
                exchange.sending(token);
            }
            let response = next.clone().run(request, extensions).await?;
            exchange.answered_by(origin(response.url()).as_ref());
            let verdict = exchange.received(response.status(), response.headers(), spare.is_some());
            client.rejected(&verdict);
            match spare {
                Some(spare) if verdict.retry => request = spare,
                _ => return Ok(response),
            }
        }
    }
}
