//! The authorised HTTP clients of both adapters, written once: each
//! adapter's `Client` implements [`Authorizer`] and [`BlockingAuthorizer`] or
//! [`AsyncAuthorizer`] (with [`authorizer!`](crate::authorizer)), and names
//! these types with its `Client` filled in. The decisions are
//! [`policy`]'s ([`Exchange`](policy::Exchange)); these types only move
//! requests.
//!
//! Each request's DPoP proof (with `.dpop(key)`) is built under the client's
//! lock ([`Driver::dpop_proof`]: the origin's nonce, a fresh `jti`) and, when
//! the key is a `Signer` of the user's, signed after the lock is released
//! (blocking: on the caller's thread; tokio: on its blocking pool), so a slow
//! HSM or KMS holds up no other caller.
//!
//! - [`AuthMiddleware`]: a `ureq` middleware (feature `ureq-middleware`: the
//!   header, and invalidation on a `401`) and a `reqwest-middleware` one
//!   (feature `reqwest-middleware`: the header and one retry);
//! - [`AuthorizedAgent`] (feature `ureq-middleware`): a `ureq::Agent` whose
//!   requests carry the token, retried once;
//! - [`AuthLayer`], [`AuthService`], [`ReplayBody`] (feature `tower`).
//!
//! # Which origins get the token
//!
//! Every one of them is built with `new(client)`, then `.allow_origin(url)`
//! (repeatable) or `.allow_any_origin()`. The allowed origins default to the
//! config's resource server and resources; `.allow_origin(url)` replaces
//! them, and requests elsewhere go out untouched. A client that allows no
//! origin, or was given a value that is not an origin (`"127.0.0.1:8080"`, a
//! URL with a path), fails every request with `Error::Config` rather than
//! send it without the token.
//!
//! # Which token each origin gets
//!
//! `.params_for(origin, params)` (repeatable) gives an allowed origin its
//! own token key ([`TokenParams`]: an audience, a resource, scopes), through
//! a handle of the client bound to that key (`Client::with_params`): requests
//! there carry that key's token, a `401` there evicts only that key's token,
//! and the retry uses that key. Other allowed origins get the client's
//! default token. `params_for` never allows an origin by itself (the
//! allow-list stays the one place that says where tokens go): a keyed origin
//! that is not allowed fails every request with
//! `ConfigError::OriginNotAllowed` ([`policy::KeyedOrigins`]).

use std::future::Future;

use client_credentials::driver::Signing;
use client_credentials::{AccessToken, Config, DpopProof, Error, SignError, TokenParams};
use http::{HeaderMap, Method};

use crate::authorized::policy::{set_authorization, Verdict};
#[cfg(any(feature = "ureq-middleware", feature = "reqwest-middleware"))]
use crate::authorized::policy::{AllowedOrigins, KeyedOrigins};
use crate::{Driver, Io};

pub mod policy;
#[cfg(feature = "reqwest-middleware")]
mod reqwest;
#[cfg(feature = "tower")]
mod tower;
#[cfg(feature = "ureq-middleware")]
mod ureq;

#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[cfg(feature = "tower")]
pub use self::tower::{AuthLayer, AuthService, BoxError, ReplayBody};
#[cfg_attr(docsrs, doc(cfg(feature = "ureq-middleware")))]
#[cfg(feature = "ureq-middleware")]
pub use self::ureq::AuthorizedAgent;

/// What the authorised HTTP clients use of a client's [`Driver`], whatever
/// the adapter's I/O type.
pub trait DriverAccess: Send + Sync {
    /// The configuration.
    fn config(&self) -> &Config;
    /// [`Driver::dpop_proof`].
    fn dpop_proof(
        &self,
        method: &Method,
        uri: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<Option<DpopProof>, Error>;
    /// [`Driver::follow_resource_metadata`].
    fn follow_resource_metadata(&self, requested: &str, url: &str) -> bool;
    /// [`Driver::remember_dpop_nonce`].
    fn remember_dpop_nonce(&self, url: &str, nonce: &str);
}

impl<W: Io> DriverAccess for Driver<W> {
    fn config(&self) -> &Config {
        Driver::config(self)
    }

    fn dpop_proof(
        &self,
        method: &Method,
        uri: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<Option<DpopProof>, Error> {
        Driver::dpop_proof(self, method, uri, token, nonce)
    }

    fn follow_resource_metadata(&self, requested: &str, url: &str) -> bool {
        Driver::follow_resource_metadata(self, requested, url)
    }

    fn remember_dpop_nonce(&self, url: &str, nonce: &str) {
        Driver::remember_dpop_nonce(self, url, nonce)
    }
}

/// An adapter's `Client` as the authorised HTTP clients use it, blocking or async.
pub trait Authorizer: Clone + Send + Sync + 'static {
    /// The `tracing` target of the authorised clients' log lines.
    const LOG_TARGET: crate::LogTarget = crate::LogTarget::Common;

    /// The client's driver.
    fn driver(&self) -> &dyn DriverAccess;

    /// `Client::invalidate`: the resource server rejected `token`.
    fn invalidate(&self, token: &AccessToken);

    /// `Client::with_params`: a handle of this client bound to `params`'
    /// key (for `.params_for(origin, params)`).
    fn with_params(&self, params: TokenParams) -> Self;

    /// Acts on what a response said about the token it carried: remembers
    /// the server's DPoP nonce and the RFC 9728 metadata URL of the
    /// challenge (the core follows it only on the resource's own origin),
    /// evicts a rejected token.
    fn rejected(&self, verdict: &Verdict) {
        if let Some((origin, nonce)) = &verdict.dpop_nonce {
            if let Ok(nonce) = nonce.to_str() {
                self.driver().remember_dpop_nonce(&origin.to_string(), nonce);
            }
        }
        if let Some(hint) = &verdict.resource_metadata {
            self.driver()
                .follow_resource_metadata(&hint.requested, &hint.metadata_url);
        }
        if let Some(token) = &verdict.invalidate {
            self.invalidate(token);
        }
    }
}

/// The blocking adapter's `Client`: its token, on the calling thread.
pub trait BlockingAuthorizer: Authorizer {
    /// `Client::token`.
    fn token(&self) -> Result<AccessToken, Error>;

    /// Sets `Authorization` (and `DPoP`) on a request's headers and returns
    /// the token they carry; `nonce`: the resource server's DPoP nonce. An
    /// external signer signs the proof on this thread, after the client's
    /// lock was released.
    fn authorize_headers(
        &self,
        method: &Method,
        uri: &str,
        headers: &mut HeaderMap,
        nonce: Option<&str>,
    ) -> Result<AccessToken, Error> {
        let token = self.token()?;
        let proof = match self.driver().dpop_proof(method, uri, &token, nonce)? {
            Some(DpopProof::Unsigned(signing)) => {
                let signature = signing.sign();
                Some(signing.finish(signature)?)
            }
            Some(DpopProof::Signed(proof)) => Some(proof),
            None => None,
        };
        set_authorization(headers, &token, proof);
        Ok(token)
    }
}

/// The tokio adapter's `Client`: its token, as a future.
pub trait AsyncAuthorizer: Authorizer {
    /// `Client::token`.
    fn token(&self) -> impl Future<Output = Result<AccessToken, Error>> + Send + '_;

    /// Signs a resource request's DPoP proof with an external signer, off
    /// the runtime's worker threads and outside the client's lock (the
    /// tokio adapter: [`sign_on_blocking_pool`](crate::sign_on_blocking_pool)).
    fn sign<'a>(&'a self, signing: &'a Signing) -> impl Future<Output = Result<Vec<u8>, SignError>> + Send + 'a;

    /// [`BlockingAuthorizer::authorize_headers`], as a future; an external
    /// signer signs through [`AsyncAuthorizer::sign`].
    fn authorize_headers<'a>(
        &'a self,
        method: &'a Method,
        uri: &'a str,
        headers: &'a mut HeaderMap,
        nonce: Option<&'a str>,
    ) -> impl Future<Output = Result<AccessToken, Error>> + Send + 'a {
        async move {
            let token = self.token().await?;
            let proof = match self.driver().dpop_proof(method, uri, &token, nonce)? {
                Some(DpopProof::Unsigned(signing)) => {
                    let signature = self.sign(&signing).await;
                    Some(signing.finish(signature)?)
                }
                Some(DpopProof::Signed(proof)) => Some(proof),
                None => None,
            };
            set_authorization(headers, &token, proof);
            Ok(token)
        }
    }
}

/// The blocking `Client::authorize`: sets `Authorization` on `request` and
/// returns the token it carries.
pub fn authorize<C: BlockingAuthorizer, B>(client: &C, request: &mut http::Request<B>) -> Result<AccessToken, Error> {
    let (method, uri) = (request.method().clone(), request.uri().to_string());
    client.authorize_headers(&method, &uri, request.headers_mut(), None)
}

/// The async `Client::authorize`.
pub async fn authorize_async<C: AsyncAuthorizer, B>(
    client: &C,
    request: &mut http::Request<B>,
) -> Result<AccessToken, Error> {
    let (method, uri) = (request.method().clone(), request.uri().to_string());
    client
        .authorize_headers(&method, &uri, request.headers_mut(), None)
        .await
}

/// Implements [`Authorizer`] and [`BlockingAuthorizer`] (`blocking`) or
/// [`AsyncAuthorizer`] (`async`) for the adapter's `Client` (in scope, with
/// a `driver: Arc<Driver<_>>` field and inherent `token` and `invalidate`).
#[macro_export]
macro_rules! authorizer {
    (blocking) => {
        $crate::authorizer!(@shared Blocking);

        #[doc(hidden)]
        impl $crate::authorized::BlockingAuthorizer for Client {
            fn token(&self) -> ::core::result::Result<::client_credentials::AccessToken, ::client_credentials::Error> {
                Client::token(self)
            }
        }
    };
    (async) => {
        $crate::authorizer!(@shared Tokio);

        #[doc(hidden)]
        impl $crate::authorized::AsyncAuthorizer for Client {
            fn token(
                &self,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::client_credentials::AccessToken, ::client_credentials::Error>,
            > + Send
                   + '_ {
                Client::token(self)
            }

            fn sign<'a>(
                &'a self,
                signing: &'a ::client_credentials::driver::Signing,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::vec::Vec<u8>, ::client_credentials::SignError>,
            > + Send
                   + 'a {
                $crate::sign_on_blocking_pool(signing)
            }
        }
    };
    (@shared $target:ident) => {
        // What the authorised clients use of `Client`: not part of its API.
        #[doc(hidden)]
        impl $crate::authorized::Authorizer for Client {
            const LOG_TARGET: $crate::LogTarget = $crate::LogTarget::$target;

            fn driver(&self) -> &dyn $crate::authorized::DriverAccess {
                &*self.driver
            }

            fn invalidate(&self, token: &::client_credentials::AccessToken) {
                Client::invalidate(self, token)
            }

            fn with_params(&self, params: ::client_credentials::TokenParams) -> Self {
                Client::with_params(self, params)
            }
        }
    };
}

/// A `ureq` middleware or a `reqwest-middleware` one (by the features on)
/// that authorises every request to an allowed origin; what each does on a
/// `401` is said where the adapter names it.
#[cfg(any(feature = "ureq-middleware", feature = "reqwest-middleware"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "ureq-middleware", feature = "reqwest-middleware"))))]
#[derive(Clone, Debug)]
pub struct AuthMiddleware<C> {
    client: C,
    origins: AllowedOrigins,
    keyed: KeyedOrigins<C>,
}

#[cfg(any(feature = "ureq-middleware", feature = "reqwest-middleware"))]
impl<C: Authorizer> AuthMiddleware<C> {
    /// Authorises requests with `client`'s tokens.
    pub fn new(client: C) -> Self {
        let origins = AllowedOrigins::for_config(client.driver().config());
        AuthMiddleware {
            client,
            origins,
            keyed: KeyedOrigins::default(),
        }
    }

    self::policy::origin_methods!();
}
