//! `Client::authorize`, and what the authorised HTTP clients (feature
//! `middleware`) do with a response: the decisions are `client-credentials-common`'s.

use client_credentials::{AccessToken, Error};
use client_credentials_common::authorize::Verdict;
use http::{HeaderMap, Method};

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
        let (method, uri) = (request.method().clone(), request.uri().to_string());
        self.authorize_headers(&method, &uri, request.headers_mut(), None)
    }

    /// [`Client::authorize`] on a request's parts, with the resource server's DPoP nonce.
    pub(crate) fn authorize_headers(
        &self,
        method: &Method,
        uri: &str,
        headers: &mut HeaderMap,
        nonce: Option<&str>,
    ) -> Result<AccessToken, Error> {
        let token = self.token()?;
        self.driver.authorize_headers(method, uri, headers, &token, nonce)?;
        Ok(token)
    }

    /// Acts on what a response said about the token it carried.
    #[cfg_attr(not(feature = "middleware"), allow(dead_code))]
    pub(crate) fn rejected(&self, verdict: &Verdict) {
        if let Some(url) = &verdict.resource_metadata {
            self.driver.follow_resource_metadata(url);
        }
        if let Some(token) = &verdict.invalidate {
            self.invalidate(token);
        }
    }
}
