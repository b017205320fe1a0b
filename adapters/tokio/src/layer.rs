//! [`AuthLayer`]: a `tower` layer (feature `tower`).

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use client_credentials_common::authorize::{copy_request, AllowedOrigins, Exchange};
use http_body_util::{Empty, Full};
use tower_service::Service;

use crate::{BoxFuture, Client};

/// The error of an [`AuthService`]: the inner service's, or the client's
/// [`Error`](client_credentials::Error) when no token could be had.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that can be copied before it is sent, so a request
/// rejected with a stale token can be sent again. Bodies that are streamed
/// return `None`: such a request is never re-sent.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be had without consuming it.
    fn replay(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($body:ty),*) => {$(
        impl ReplayBody for $body {
            fn replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
replay_by_clone!((), String, Vec<u8>, Bytes, Full<Bytes>, Empty<Bytes>);

impl ReplayBody for reqwest::Body {
    fn replay(&self) -> Option<Self> {
        self.as_bytes()
            .map(|bytes| reqwest::Body::from(Bytes::copy_from_slice(bytes)))
    }
}

impl ReplayBody for http_body_util::combinators::BoxBody<Bytes, BoxError> {
    fn replay(&self) -> Option<Self> {
        None // streamed
    }
}

/// A [`tower_layer::Layer`] that authorises requests: [`AuthService`] sets
/// `Authorization` on every request to an allowed origin and, on a `401`
/// that rejects the token, invalidates it and sends the request once more
/// with a new one (when its body is a [`ReplayBody`] that can be copied).
/// The same rules as [`AuthMiddleware`](crate::AuthMiddleware) where that
/// feature is on. Put it inside (closer to the connection than) any layer
/// that follows redirects, so each hop is checked against the allowed origins.
///
/// ```no_run
/// use client_credentials_tokio::{AuthLayer, Client};
/// use tower_layer::Layer;
/// # fn run<S>(client: Client, http_client: S) {
/// let service = AuthLayer::new(client).allow_origin("https://api.example.com").layer(http_client);
/// # let _ = service; }
/// ```
#[derive(Clone, Debug)]
pub struct AuthLayer {
    client: Client,
    origins: AllowedOrigins,
}

/// The service of an [`AuthLayer`] around `S`.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl AuthLayer {
    /// Authorises requests with `client`'s tokens.
    pub fn new(client: Client) -> Self {
        let origins = AllowedOrigins::for_config(client.config());
        AuthLayer { client, origins }
    }

    client_credentials_common::origin_methods!();
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

impl<S, B, R> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<R>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service made ready is the one called (tower's contract).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let client = self.layer.client.clone();
        let mut exchange = Exchange::new(&self.layer.origins, request.uri());
        Box::pin(async move {
            let mut ready = true;
            loop {
                let spare = exchange.authorizes().then(|| request.body().replay()).flatten();
                let spare = spare.map(|body| copy_request(&request, body));
                if exchange.authorizes() {
                    let (method, uri) = (request.method().clone(), request.uri().to_string());
                    let nonce = exchange.nonce().map(str::to_owned);
                    let headers = request.headers_mut();
                    exchange.sending(
                        client
                            .authorize_headers(&method, &uri, headers, nonce.as_deref())
                            .await?,
                    );
                }
                if !ready {
                    poll_fn(|cx| inner.poll_ready(cx)).await.map_err(Into::into)?;
                }
                let response = inner.call(request).await.map_err(Into::into)?;
                let verdict = exchange.received(response.status(), response.headers(), spare.is_some());
                client.rejected(&verdict);
                match spare {
                    Some(spare) if verdict.retry => (request, ready) = (spare, false),
                    _ => return Ok(response),
                }
            }
        })
    }
}
