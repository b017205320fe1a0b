//! The requests both authorised-client benches send: one loopback `GET` to
//! the testkit's resource server (keep-alive, the token accepted), with the
//! header set by hand (the baselines) and through each authorised client.

use std::future::poll_fn;
use std::io::Read;

use client_credentials_suite::authorized::ReqwestService;
use client_credentials_testkit::{TestIssuer, TestResourceServer};
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

type TowerLayered = client_credentials_tokio::AuthService<ReqwestService>;

/// The servers, both adapters' clients and their authorised HTTP clients.
pub struct Requests {
    _issuer: TestIssuer,
    _api: TestResourceServer,
    url: String,
    header: http::HeaderValue,
    agent: ureq::Agent,
    authorized_agent: client_credentials_blocking::AuthorizedAgent,
    runtime: tokio::runtime::Runtime,
    reqwest: reqwest::Client,
    with_middleware: reqwest_middleware::ClientWithMiddleware,
    tower: ReqwestService,
    layered: TowerLayered,
}

impl Requests {
    /// Starts the issuer and the resource server, fetches a token for each client.
    pub fn start() -> Requests {
        let issuer = TestIssuer::start();
        let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();
        let config = client_credentials::Config::builder(issuer.client_id(), issuer.client_secret())
            .token_endpoint(issuer.token_endpoint())
            .build()
            .unwrap();
        let origin = api.base_url();
        let blocking = client_credentials_blocking::Client::new(config.clone());
        let header = blocking.authorization_header().unwrap();
        let agent = ureq::Agent::new_with_defaults();
        let authorized_agent =
            client_credentials_blocking::AuthorizedAgent::new(agent.clone(), blocking).allow_origin(&origin);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = {
            let _guard = runtime.enter();
            client_credentials_tokio::Client::new(config)
        };
        runtime.block_on(client.token()).unwrap();
        let reqwest = reqwest::Client::new();
        let with_middleware = reqwest_middleware::ClientBuilder::new(reqwest.clone())
            .with(client_credentials_tokio::AuthMiddleware::new(client.clone()).allow_origin(&origin))
            .build();
        let tower = ReqwestService(reqwest.clone());
        let layered = client_credentials_tokio::AuthLayer::new(client)
            .allow_origin(&origin)
            .layer(tower.clone());
        Requests {
            url: format!("{}/things", api.resource()),
            _issuer: issuer,
            _api: api,
            header,
            agent,
            authorized_agent,
            runtime,
            reqwest,
            with_middleware,
            tower,
            layered,
        }
    }

    /// The bare `ureq::Agent`, header set by hand.
    pub fn ureq_by_hand(&self) {
        let mut response = self
            .agent
            .get(&self.url)
            .header("authorization", self.header.clone())
            .call()
            .unwrap();
        response.body_mut().as_reader().read_to_end(&mut Vec::new()).unwrap();
    }

    /// `AuthorizedAgent::run` around the same agent.
    pub fn authorized_agent(&self) {
        let request = http::Request::get(&self.url).body(Vec::new()).unwrap();
        let mut response = self.authorized_agent.run(request).unwrap();
        assert_eq!(response.status(), 200);
        response.body_mut().as_reader().read_to_end(&mut Vec::new()).unwrap();
    }

    /// The bare `reqwest::Client`, header set by hand.
    pub fn reqwest_by_hand(&self) {
        self.runtime.block_on(async {
            let request = self.reqwest.get(&self.url).header("authorization", self.header.clone());
            request.send().await.unwrap().bytes().await.unwrap();
        })
    }

    /// The same client with reqwest-middleware and the `AuthMiddleware`.
    pub fn auth_middleware(&self) {
        self.runtime.block_on(async {
            let response = self.with_middleware.get(&self.url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        })
    }

    /// The `reqwest::Client` as a tower service, header set by hand.
    pub fn tower_by_hand(&self) {
        let request = http::Request::get(&self.url).header("authorization", self.header.clone());
        self.call(self.tower.clone(), request);
    }

    /// The same service inside the `AuthLayer`.
    pub fn auth_layer(&self) {
        self.call(self.layered.clone(), http::Request::get(&self.url));
    }

    fn call<S>(&self, mut service: S, request: http::request::Builder)
    where
        S: Service<http::Request<reqwest::Body>, Response = http::Response<reqwest::Body>>,
        S::Error: std::fmt::Debug,
    {
        let request = request.body(reqwest::Body::from(Vec::new())).unwrap();
        self.runtime.block_on(async {
            poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
            let response = service.call(request).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.unwrap();
        })
    }
}
