//! Integration suite of the `client-credentials` workspace.
//!
//! Every scenario in [`scenarios`](mod@scenarios) is written once, generic over [`Adapter`],
//! and run against both adapters ([`Blocking`], [`Tokio`]) by the test files
//! in `tests/` (one per concern) through the [`scenarios!`] macro. They run
//! against the in-process test issuer (`client-credentials-testkit`) with
//! scripted faults, and against a real OpenID Connect provider:
//! [`oidc::OidcPeer`] starts `tests/oidc-provider` (the npm package
//! `oidc-provider`) on loopback. [`oidc::raw`] is a tiny HTTP/1.1 client used
//! to check that peer without any HTTP crate.

pub mod adapter;
pub mod authorized;
pub mod fleet;
pub mod observe;
pub mod oidc;
pub mod scenarios;
pub mod store;
pub mod tls;

pub use adapter::{Adapter, Blocking, ClientTls, Options, StoreChoice, Tokio};
pub use oidc::OidcPeer;
pub use store::RecordingStore;

/// The README's code blocks, compiled and run as doctests so they stay true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
