//! The authorised HTTP clients of both adapters behind one blocking view:
//! blocking `AuthorizedAgent` and ureq `AuthMiddleware`; tokio
//! `AuthMiddleware` (reqwest-middleware) and `AuthLayer` (tower).

use std::future::poll_fn;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use client_credentials::TokenParams;

use crate::adapter::runtime;

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// None.
    Empty,
    /// Bytes the client holds, so it can send them again.
    Buffered(Vec<u8>),
    /// Bytes read from a stream, which cannot be sent twice.
    Streamed(Vec<u8>),
}

/// Which origins an authorised client sends the token to.
#[derive(Debug, Clone, Default)]
pub enum Origins {
    /// The config's resource server and resources.
    #[default]
    Default,
    /// `.allow_origin(url)` for each.
    Only(Vec<String>),
    /// `.allow_any_origin()`.
    Any,
    /// These origins, then `.params_for(origin, params)` for each pair.
    Keyed(Box<Origins>, Vec<(String, TokenParams)>),
}

impl Origins {
    /// `origins`, each origin of `keyed` with its own token key.
    pub fn keyed(origins: Origins, keyed: Vec<(String, TokenParams)>) -> Origins {
        Origins::Keyed(Box::new(origins), keyed)
    }
}

/// The origin builder methods every authorised client has.
trait Route: Sized {
    fn allow_origin(self, url: &str) -> Self;
    fn allow_any_origin(self) -> Self;
    fn params_for(self, origin: &str, params: TokenParams) -> Self;
}

macro_rules! route {
    ($($client:ty),*) => {$(
        impl Route for $client {
            fn allow_origin(self, url: &str) -> Self {
                <$client>::allow_origin(self, url)
            }
            fn allow_any_origin(self) -> Self {
                <$client>::allow_any_origin(self)
            }
            fn params_for(self, origin: &str, params: TokenParams) -> Self {
                <$client>::params_for(self, origin, params)
            }
        }
    )*};
}

route!(
    client_credentials_blocking::AuthMiddleware,
    client_credentials_blocking::AuthorizedAgent,
    client_credentials_tokio::AuthMiddleware,
    client_credentials_tokio::AuthLayer
);

/// `builder` configured with `origins`.
fn allow<B: Route>(builder: B, origins: &Origins) -> B {
    match origins {
        Origins::Default => builder,
        Origins::Only(urls) => urls.iter().fold(builder, |b, url| b.allow_origin(url)),
        Origins::Any => builder.allow_any_origin(),
        Origins::Keyed(origins, keyed) => keyed.iter().fold(allow(builder, origins), |b, (origin, params)| {
            b.params_for(origin, params.clone())
        }),
    }
}

/// One authorised HTTP client, driven through blocking calls.
pub trait Authorized: Send + Sync {
    /// For messages.
    fn name(&self) -> &'static str;
    /// Whether it sends again after a `401` (ureq's middleware cannot).
    fn retries(&self) -> bool {
        true
    }
    /// Whether it can send a streamed body.
    fn streams(&self) -> bool {
        true
    }
    /// Sends and returns the final status.
    fn send(&self, method: &str, url: &str, body: Body) -> Result<u16, String>;
}

/// Each authorised client of adapter `A`, around a client of its own from
/// `build`: a client remembers the tokens a resource rejected and the DPoP
/// nonces it was given, so counts per flavour need a client per flavour.
pub fn each<A: crate::Adapter>(
    build: impl Fn() -> A::Client,
    origins: &Origins,
) -> Vec<(A::Client, Box<dyn Authorized>)> {
    let count = A::authorized(&build(), origins).len();
    (0..count)
        .map(|index| {
            let client = build();
            let flavour = A::authorized(&client, origins).swap_remove(index);
            (client, flavour)
        })
        .collect()
}

/// The blocking adapter's authorised clients.
pub fn blocking(client: &client_credentials_blocking::Client, origins: &Origins) -> Vec<Box<dyn Authorized>> {
    let middleware = allow(
        client_credentials_blocking::AuthMiddleware::new(client.clone()),
        origins,
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .middleware(middleware)
        .http_status_as_error(false)
        .build()
        .into();
    let authorized = allow(
        client_credentials_blocking::AuthorizedAgent::new(ureq::Agent::new_with_defaults(), client.clone()),
        origins,
    );
    // An agent that already returns statuses as responses (and keeps the
    // header off redirects, ureq's default): its requests go out unconfigured.
    let as_is: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let as_is = allow(
        client_credentials_blocking::AuthorizedAgent::new(as_is, client.clone()),
        origins,
    );
    vec![
        Box::new(UreqMiddleware(agent)),
        Box::new(authorized_agent(authorized)),
        Box::new(authorized_agent(as_is)),
    ]
}

struct UreqMiddleware(ureq::Agent);

impl Authorized for UreqMiddleware {
    fn name(&self) -> &'static str {
        "ureq AuthMiddleware"
    }
    fn retries(&self) -> bool {
        false
    }
    fn send(&self, method: &str, url: &str, body: Body) -> Result<u16, String> {
        let builder = http::Request::builder().method(method).uri(url);
        let result = match body {
            Body::Empty => self.0.run(builder.body(()).map_err(|e| e.to_string())?),
            Body::Buffered(bytes) => self.0.run(builder.body(bytes).map_err(|e| e.to_string())?),
            Body::Streamed(bytes) => {
                let reader = ureq::SendBody::from_owned_reader(std::io::Cursor::new(bytes));
                self.0.run(builder.body(reader).map_err(|e| e.to_string())?)
            }
        };
        result.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
    }
}

fn authorized_agent(agent: client_credentials_blocking::AuthorizedAgent) -> impl Authorized {
    struct Agent(client_credentials_blocking::AuthorizedAgent);
    impl Authorized for Agent {
        fn name(&self) -> &'static str {
            "AuthorizedAgent"
        }
        fn streams(&self) -> bool {
            false
        }
        fn send(&self, method: &str, url: &str, body: Body) -> Result<u16, String> {
            let bytes = match body {
                Body::Empty => Vec::new(),
                Body::Buffered(bytes) | Body::Streamed(bytes) => bytes,
            };
            let request = http::Request::builder()
                .method(method)
                .uri(url)
                .body(bytes)
                .map_err(|e| e.to_string())?;
            self.0
                .run(request)
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }
    }
    Agent(agent)
}

/// The tokio adapter's authorised clients.
pub fn tokio(client: &client_credentials_tokio::Client, origins: &Origins) -> Vec<Box<dyn Authorized>> {
    let middleware = allow(client_credentials_tokio::AuthMiddleware::new(client.clone()), origins);
    let with_middleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let layer = allow(client_credentials_tokio::AuthLayer::new(client.clone()), origins);
    let inner = ReqwestService(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client"),
    );
    vec![
        Box::new(ReqwestMiddleware(with_middleware)),
        Box::new(TowerLayer(layer.layer(inner))),
    ]
}

fn reqwest_body(body: Body) -> reqwest::Body {
    match body {
        Body::Empty => reqwest::Body::from(Vec::new()),
        Body::Buffered(bytes) => reqwest::Body::from(bytes),
        // An http-body the client can only read once.
        Body::Streamed(bytes) => reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from(bytes))),
    }
}

struct ReqwestMiddleware(reqwest_middleware::ClientWithMiddleware);

impl Authorized for ReqwestMiddleware {
    fn name(&self) -> &'static str {
        "reqwest AuthMiddleware"
    }
    fn send(&self, method: &str, url: &str, body: Body) -> Result<u16, String> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let request = self.0.request(method, url).body(reqwest_body(body));
        runtime()
            .block_on(request.send())
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }
}

/// `reqwest::Client` as a tower service of `http` types (no redirects).
#[derive(Clone)]
pub struct ReqwestService(pub reqwest::Client);

impl Service<http::Request<reqwest::Body>> for ReqwestService {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = client_credentials_tokio::BoxFuture<'static, Result<Self::Response, reqwest::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), reqwest::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<reqwest::Body>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            Ok(http::Response::from(client.execute(request).await?))
        })
    }
}

struct TowerLayer(client_credentials_tokio::AuthService<ReqwestService>);

impl Authorized for TowerLayer {
    fn name(&self) -> &'static str {
        "tower AuthLayer"
    }
    fn send(&self, method: &str, url: &str, body: Body) -> Result<u16, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(reqwest_body(body))
            .map_err(|e| e.to_string())?;
        let mut service = self.0.clone();
        runtime().block_on(async move {
            poll_fn(|cx| service.poll_ready(cx)).await.map_err(|e| e.to_string())?;
            let response = service.call(request).await.map_err(|e| e.to_string())?;
            Ok(response.status().as_u16())
        })
    }
}
