//! [`AuthLayer`] and [`AuthService`]: a `tower` layer (feature `tower`).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{Empty, Full};
use tower_service::Service;

use super::policy::{copy_request, AllowedOrigins, Exchange, KeyedOrigins, Origin};
use super::{AsyncAuthorizer, Authorizer};
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

/// The origin that answered, when the inner service says it followed
/// redirects (tower-http's `FollowRedirect` names the last URI requested):
/// a `401` from another origin says nothing about the token.
fn answered_by<R>(response: &http::Response<R>) -> Option<Origin> {
    let uri = &response
        .extensions()
        .get::<tower_http::follow_redirect::RequestUri>()?
        .0;
    Origin::of(uri)
}

/// A `tower` layer whose [`AuthService`] authorises requests.
#[derive(Clone, Debug)]
pub struct AuthLayer<C> {
    client: C,
    origins: AllowedOrigins,
    keyed: KeyedOrigins<C>,
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
        AuthLayer {
            client,
            origins,
            keyed: KeyedOrigins::default(),
        }
    }

    super::policy::origin_methods!();
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
        let mut exchange = Exchange::new(&self.layer.origins, request.uri());
        let client = self.layer.client_for(exchange.origin()).clone();
        let checked = self.layer.keyed.check(&self.layer.origins);
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
                exchange.answered_by(answered_by(&response).as_ref());
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use client_credentials::{AccessToken, Config, Error};
    use http::header::WWW_AUTHENTICATE;
    use http::{HeaderMap, Method, StatusCode};
    use tower_http::follow_redirect::RequestUri;
    use tower_layer::Layer;

    use super::*;
    use crate::authorized::DriverAccess;

    /// A client that counts what the service asks of it.
    #[derive(Clone)]
    struct Counting {
        config: Config,
        followed: Arc<AtomicUsize>,
        invalidated: Arc<AtomicUsize>,
    }

    impl DriverAccess for Counting {
        fn config(&self) -> &Config {
            &self.config
        }
        fn dpop_proof(
            &self,
            _: &Method,
            _: &str,
            _: &AccessToken,
            _: Option<&str>,
        ) -> Result<Option<client_credentials::DpopProof>, Error> {
            Ok(None)
        }
        fn follow_resource_metadata(&self, _: &str, _: &str) -> bool {
            self.followed.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn remember_dpop_nonce(&self, _: &str, _: &str) {}
    }

    impl Authorizer for Counting {
        fn driver(&self) -> &dyn DriverAccess {
            self
        }
        fn invalidate(&self, _: &AccessToken) {
            self.invalidated.fetch_add(1, Ordering::SeqCst);
        }
        fn with_params(&self, _: client_credentials::TokenParams) -> Self {
            self.clone()
        }
    }

    impl AsyncAuthorizer for Counting {
        fn token(&self) -> impl Future<Output = Result<AccessToken, Error>> + Send + '_ {
            std::future::ready(AccessToken::builder("t").build())
        }
        fn sign<'a>(
            &'a self,
            signing: &'a client_credentials::driver::Signing,
        ) -> impl Future<Output = Result<Vec<u8>, client_credentials::SignError>> + Send + 'a {
            std::future::ready(signing.sign())
        }
    }

    /// Answers every request `401` with a challenge naming a metadata URL,
    /// as if it had followed redirects to `answered_by` when that is set.
    #[derive(Clone)]
    struct Rejecting {
        answered_by: Option<&'static str>,
        calls: Arc<AtomicUsize>,
    }

    impl Service<http::Request<Vec<u8>>> for Rejecting {
        type Response = http::Response<()>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<http::Response<()>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Vec<u8>>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut response = http::Response::new(());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            let challenge = r#"Bearer error="invalid_token", resource_metadata="https://evil.example/m""#;
            let mut headers = HeaderMap::new();
            headers.insert(WWW_AUTHENTICATE, http::HeaderValue::from_static(challenge));
            *response.headers_mut() = headers;
            if let Some(uri) = self.answered_by {
                response.extensions_mut().insert(RequestUri(uri.parse().unwrap()));
            }
            std::future::ready(Ok(response))
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    /// `(inner calls, metadata hints followed, tokens invalidated)` for one
    /// request whose `401` came from `answered_by`.
    fn one_rejected_request(answered_by: Option<&'static str>) -> (usize, usize, usize) {
        let client = Counting {
            config: Config::builder("id", "secret")
                .token_endpoint("https://id.example/token")
                .build()
                .unwrap(),
            followed: Arc::default(),
            invalidated: Arc::default(),
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = Rejecting {
            answered_by,
            calls: Arc::clone(&calls),
        };
        let mut service = AuthLayer::new(client.clone())
            .allow_origin("https://api.example")
            .layer(inner);
        let request = http::Request::builder()
            .uri("https://api.example/things")
            .body(Vec::new())
            .unwrap();
        let response = block_on(service.call(request)).unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        (
            calls.load(Ordering::SeqCst),
            client.followed.load(Ordering::SeqCst),
            client.invalidated.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn a_401_from_another_origin_after_redirects_is_not_acted_on() {
        // From the origin requested: the challenge is handed to the client
        // (whose core decides on the hint), the token evicted, one retry.
        assert_eq!(one_rejected_request(None), (2, 2, 2));
        assert_eq!(one_rejected_request(Some("https://api.example/moved")), (2, 2, 2));
        // From another origin: nothing is followed, evicted or retried.
        assert_eq!(one_rejected_request(Some("https://evil.example/landing")), (1, 0, 0));
    }
}
