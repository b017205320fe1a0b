//! `Client::authorize`; with it, the client is what the authorised HTTP
//! clients of `client-credentials-common` (features `reqwest-middleware`,
//! `tower`) authorise with.

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
    /// # async fn run(client: client_credentials_tokio::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut request = http::Request::get("https://api.example.com/things").body(())?;
    /// let token = client.authorize(&mut request).await?;
    /// # let _ = token; Ok(()) }
    /// ```
    pub async fn authorize<B>(&self, request: &mut http::Request<B>) -> Result<AccessToken, Error> {
        authorized::authorize_async(self, request).await
    }
}

client_credentials_common::authorizer!(async);

/// A [`reqwest_middleware::Middleware`] (feature `reqwest-middleware`) that
/// sets `Authorization` on every request to an allowed origin and, on a `401`
/// that rejects the token, invalidates it and sends the request once more
/// with a new one — only if the body can be cloned (a streamed body is never
/// re-sent). Concurrent requests rejected with the same token cause one
/// refresh. A `use_dpop_nonce` challenge is answered once with the server's
/// nonce.
///
/// The origin rules (which origins get the token, and what a missing or
/// malformed one does) are [`client_credentials_common::authorized`]'s.
/// Redirects followed by reqwest lose
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
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
#[cfg(feature = "reqwest-middleware")]
pub type AuthMiddleware = authorized::AuthMiddleware<Client>;

/// A [`tower_layer::Layer`] (feature `tower`) that authorises requests:
/// [`AuthService`] sets `Authorization` on every request to an allowed
/// origin and, on a `401` that rejects the token, invalidates it and sends
/// the request once more with a new one (when its body is a [`ReplayBody`]
/// that can be copied). The same rules as `AuthMiddleware` (feature
/// `reqwest-middleware`): `AuthLayer::new(client)`, then `.allow_origin(url)`
/// (repeatable) or `.allow_any_origin()`. Put it inside (closer to the
/// connection than) any layer that follows redirects, so each hop is checked
/// against the allowed origins.
///
/// ```no_run
/// use client_credentials_tokio::{AuthLayer, Client};
/// use tower_layer::Layer;
/// # fn run<S>(client: Client, http_client: S) {
/// let service = AuthLayer::new(client).allow_origin("https://api.example.com").layer(http_client);
/// # let _ = service; }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[cfg(feature = "tower")]
pub type AuthLayer = authorized::AuthLayer<Client>;

/// The service of an [`AuthLayer`] around `S` (feature `tower`); its error
/// is a [`BoxError`]: the inner service's, or the client's [`Error`] when no
/// token could be had.
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[cfg(feature = "tower")]
pub type AuthService<S> = authorized::AuthService<S, Client>;

#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[cfg(feature = "tower")]
pub use authorized::{BoxError, ReplayBody};
