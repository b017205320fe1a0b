//! Integration suite of the `client-credentials` workspace.
//!
//! The library part holds what the integration tests share: [`oidc::OidcPeer`]
//! starts a real OpenID Connect provider (`tests/oidc-provider`, the npm
//! package `oidc-provider`) to talk to, and [`oidc::raw`] is a tiny HTTP/1.1
//! client over [`std::net::TcpStream`] used to check that peer without any
//! HTTP crate.

pub mod oidc;

pub use oidc::OidcPeer;
