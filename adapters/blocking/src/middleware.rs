//! Authorised HTTP clients on `ureq` (feature `middleware`): [`AuthMiddleware`]
//! and [`AuthorizedAgent`].

use client_credentials::Error;
use client_credentials_common::authorize::{copy_request, AllowedOrigins, Exchange, Origin};
use http::{HeaderMap, StatusCode};
use ureq::config::RedirectAuthHeaders;
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Body, ResponseExt, SendBody};

use crate::transport::map_error;
use crate::Client;

/// A `ureq` middleware that authorises every request to an allowed origin
/// and, on a `401` that rejects the token, invalidates it: the next request
/// gets a new one. ureq 3 hands a middleware a `next` it can call only once,
/// so this one cannot re-send; [`AuthorizedAgent`] can.
///
/// The allowed origins default to the config's resource server and
/// resources; [`allow_origin`](Self::allow_origin) replaces them. Requests
/// elsewhere go out untouched. Keep ureq's `redirect_auth_headers` at its
/// default (`Never`) so a redirect never carries the header onwards. With
/// `http_status_as_error(false)` the `401`'s challenge is read (an
/// `insufficient_scope` keeps the token); with ureq's default a `401` always
/// invalidates.
///
/// ```no_run
/// use client_credentials_blocking::{AuthMiddleware, Client};
/// # let client: Client = unimplemented!();
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .middleware(AuthMiddleware::new(client).allow_origin("https://api.example.com"))
///     .build()
///     .into();
/// let body = agent.get("https://api.example.com/things").call()?.body_mut().read_to_string()?;
/// # let _ = body; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    client: Client,
    origins: AllowedOrigins,
}

/// An `ureq::Agent` whose requests carry the token, retried once with a new
/// token after a `401` that rejects it (or with the server's DPoP nonce).
///
/// Every status comes back as a response (as with `http_status_as_error(false)`);
/// errors are the core's [`Error`] (I/O failures as `Error::Transport`).
/// Redirects, if the agent follows them, never carry the header. The same
/// origin rules as [`AuthMiddleware`]. The body is a `Vec<u8>`, so a
/// request can always be re-sent as it was.
///
/// ```no_run
/// use client_credentials_blocking::{AuthorizedAgent, Client};
/// # let client: Client = unimplemented!();
/// let api = AuthorizedAgent::new(ureq::Agent::new_with_defaults(), client)
///     .allow_origin("https://api.example.com");
/// let request = http::Request::post("https://api.example.com/orders").body(br#"{"n":1}"#.to_vec())?;
/// let response = api.run(request)?;
/// # let _ = response; Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizedAgent {
    agent: ureq::Agent,
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

impl Middleware for AuthMiddleware {
    fn handle(
        &self,
        mut request: http::Request<SendBody>,
        next: MiddlewareNext,
    ) -> Result<http::Response<Body>, ureq::Error> {
        let mut exchange = Exchange::new(&self.origins, request.uri());
        if exchange.authorizes() {
            let (method, uri) = (request.method().clone(), request.uri().to_string());
            let token = self
                .client
                .authorize_headers(&method, &uri, request.headers_mut(), None)
                .map_err(|e| ureq::Error::Other(Box::new(e)))?;
            exchange.sending(token);
        }
        let result = next.handle(request);
        let (status, headers) = match &result {
            Ok(response) => {
                exchange.answered_by(Origin::of(response.get_uri()).as_ref());
                (response.status(), response.headers())
            }
            Err(ureq::Error::StatusCode(401)) => (StatusCode::UNAUTHORIZED, &HeaderMap::new()),
            Err(_) => return result,
        };
        self.client.rejected(&exchange.received(status, headers, false));
        result
    }
}

impl AuthorizedAgent {
    /// Authorises `agent`'s requests with `client`'s tokens.
    pub fn new(agent: ureq::Agent, client: Client) -> Self {
        let origins = AllowedOrigins::for_config(client.config());
        AuthorizedAgent { agent, client, origins }
    }

    client_credentials_common::origin_methods!();

    /// Sends `request` with the token; after a `401` that rejects it, once
    /// more with a new one.
    pub fn run(&self, mut request: http::Request<Vec<u8>>) -> Result<http::Response<Body>, Error> {
        let client = &self.client;
        let mut exchange = Exchange::new(&self.origins, request.uri());
        loop {
            let spare = exchange
                .authorizes()
                .then(|| copy_request(&request, request.body().clone()));
            if exchange.authorizes() {
                let (method, uri) = (request.method().clone(), request.uri().to_string());
                exchange.sending(client.authorize_headers(&method, &uri, request.headers_mut(), exchange.nonce())?);
            }
            let response = self.send(request)?;
            exchange.answered_by(Origin::of(response.get_uri()).as_ref());
            let verdict = exchange.received(response.status(), response.headers(), spare.is_some());
            client.rejected(&verdict);
            match spare {
                Some(spare) if verdict.retry => request = spare,
                _ => return Ok(response),
            }
        }
    }

    fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Body>, Error> {
        // An empty body goes out without one (a GET must not carry `Content-Length`).
        let result = if request.body().is_empty() {
            self.send_as_is(request.map(|_| ()))
        } else {
            self.send_as_is(request)
        };
        result.map_err(|e| Error::Transport(map_error(e)))
    }

    fn send_as_is<B: ureq::AsSendBody>(&self, request: http::Request<B>) -> Result<http::Response<Body>, ureq::Error> {
        let request = self
            .agent
            .configure_request(request)
            .http_status_as_error(false)
            .redirect_auth_headers(RedirectAuthHeaders::Never)
            .build();
        self.agent.run(request)
    }
}
