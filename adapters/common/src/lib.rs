//! Plumbing shared by the `client-credentials` adapters, written once:
//!
//! - [`Published`]: the token published for lock-free cached reads, with one
//!   detached copy per thread so concurrent readers do not contend;
//! - [`coarse_now`] / [`now`]: the clocks the adapters read (the core reads none);
//! - [`file`]: loading and atomically saving a token file with owner-only permissions;
//! - [`random_seed`]: a per-client jitter seed;
//! - [`authorize`]: the authorised HTTP clients' decisions (origin allow-list,
//!   `WWW-Authenticate` challenges, the one-retry rule, redirect stripping).
//!
//! This crate is an implementation detail of `client-credentials-blocking` and
//! `client-credentials-tokio`; its API may change between releases.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod authorize;
mod clock;
pub mod file;
mod published;

pub use clock::{coarse_now, now};
pub use published::Published;

/// A jitter seed that differs per client and per process, so clients started
/// together do not retry in lockstep.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now().as_unix_millis());
    hasher.finish()
}
