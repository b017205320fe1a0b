//! `Client::authorize`; with it, the client is what the authorised HTTP
//! clients of `client-credentials-common` (feature `middleware`) authorise with.

use client_credentials::{AccessToken, Error};
use client_credentials_common::authorized;

use crate::Client;

impl Client {
    /// Sets `Authorization` on `request` (marked sensitive) and returns the
    /// token it carries, to [`invalidate`](Client::invalidate) should the
    /// resource server answer `401`. `Bearer …`, or with DPoP configured
    /// `DPoP …` plus a fresh `DPoP` proof for this method and URL.
    ///
    /// ```no_run
    /// # let client: client_credentials_blocking::Client = unimplemented!();
    /// let mut request = http::Request::get("https://api.example.com/things").body(())?;
    /// let token = client.authorize(&mut request)?;
    /// # let _ = token; Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorize<B>(&self, request: &mut http::Request<B>) -> Result<AccessToken, Error> {
        authorized::authorize(self, request)
    }
}

client_credentials_common::authorizer!(blocking);

/// A `ureq` middleware (feature `middleware`) that authorises every request
/// to an allowed origin and, on a `401` that rejects the token, invalidates
/// it: the next request gets a new one. ureq 3 hands a middleware a `next`
/// it can call only once, so this one cannot re-send; [`AuthorizedAgent`] can.
///
/// The origin rules (which origins get the token, and what a missing or
/// malformed one does) are [`client_credentials_common::authorized`]'s.
/// Keep ureq's `redirect_auth_headers`
/// at its default (`Never`) so a redirect never carries the header onwards.
/// With `http_status_as_error(false)` the `401`'s challenge is read (an
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
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
#[cfg(feature = "middleware")]
pub type AuthMiddleware = authorized::AuthMiddleware<Client>;

/// An `ureq::Agent` (feature `middleware`) whose requests carry the token,
/// retried once with a new token after a `401` that rejects it (or with the
/// server's DPoP nonce).
///
/// `AuthorizedAgent::new(agent, client)`, then `.allow_origin(url)`
/// (repeatable) or `.allow_any_origin()`, the same origin rules as
/// [`AuthMiddleware`]; `.run(request)` sends. Every status comes back as a
/// response (as with `http_status_as_error(false)`); errors are the core's
/// [`Error`] (I/O failures as `Error::Transport`). Redirects,
/// if the agent follows them, never carry the header. The body is a
/// `Vec<u8>`, so a request can always be re-sent as it was. An agent built
/// with `http_status_as_error(false)` (and ureq's default
/// `redirect_auth_headers`, `Never`) sends each request as it is; any other
/// gets those two settings on each request (a copy of its configuration,
/// about 0.1 µs).
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
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
#[cfg(feature = "middleware")]
pub type AuthorizedAgent = authorized::AuthorizedAgent<Client>;
