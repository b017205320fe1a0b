//! [`AuthLayer`] and [`AuthService`]: a `tower` layer (feature `tower`).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Empty, Full};
use tower_service::Service;

use super::{AsyncAuthorizer, Authorizer};
use crate::authorize::{copy_request, AllowedOrigins, Exchange};
use crate::BoxFuture;

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

/// A `tower` layer whose [`AuthService`] authorises requests.
#[derive(Clone, Debug)]
pub struct AuthLayer<C> {
    client: C,
    origins: AllowedOrigins,
}

/// The service of an [`AuthLayer`] around `S`: sets `Authorization` on
/// every request to an allowed origin and, on a `401` that rejects the
/// token, invalidates it and sends the request once more with a new one
/// (when its body is a [`ReplayBody`] that can be copied).
#[derive(Clone, Debug)]
pub struct AuthService<S, C> {
    inner: S,
    /// Shared: a service is cloned for each request (tower's way), the
    /// allowed origins need not be.
    layer: Arc<AuthLayer<C>>,
}

impl<C: Authorizer> AuthLayer<C> {
    /// Authorises requests with `client`'s tokens.
    pub fn new(client: C) -> Self {
        let origins = AllowedOrigins::for_config(client.driver().config());
        AuthLayer { client, origins }
    }

    crate::authorize::origin_methods!();
}

impl<S, C: Clone> tower_layer::Layer<S> for AuthLayer<C> {
    type Service = AuthService<S, C>;

    fn layer(&self, inner: S) -> AuthService<S, C> {
        AuthService {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}

impl<S, C, B, R> Service<http::Request<B>> for AuthService<S, C>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    C: AsyncAuthorizer,
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
        let checked = self.layer.origins.check();
        Box::pin(async move {
            checked.map_err(client_credentials::Error::Config)?;
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
