//! A Redis token store for `client-credentials`: one token request per token
//! lifetime for a whole fleet of processes.
//!
//! ```no_run
//! # #[cfg(feature = "blocking")] {
//! use client_credentials::Config;
//! use client_credentials_redis::RedisStore;
//!
//! let config = Config::builder("my-service", "secret")
//!     .token_endpoint("https://auth.example.com/oauth/token")
//!     .build()?;
//! let store = RedisStore::builder("rediss://my-service:acl-password@redis.internal:6380")
//!     .key_prefix("my-service:")
//!     .build()?; // connects on first use
//! let client = client_credentials_blocking::Client::builder(config).store(store).build();
//! let token = client.token()?; // one process of the fleet fetches; the others reuse it
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A client without a secret (`private_key_jwt`, assertions, mutual TLS)
//! needs [`RedisStoreBuilder::encryption_key`] (at least 32 bytes): its
//! client id alone is public, so without a key the store reads and writes
//! nothing for it ([`RedisStoreError::EncryptionKeyRequired`];
//! [`RedisStore::check_config`] refuses at start).
//!
//! See [`RedisStore`] for what is stored where, how the fleet shares one
//! request and how writes and evictions are fenced, and the README's
//! fleet-store section for ACLs, TLS and key prefixes on shared instances.
//!
//! # Features
//! - `blocking`: implements `client_credentials_blocking::TokenStore` on a
//!   synchronous connection.
//! - `tokio`: implements `client_credentials_tokio::TokenStore` on an async
//!   multiplexed connection (use the store inside a tokio runtime).
//! - `tls` (default): `rediss://` URLs, with rustls and the system's roots.
//! - `cluster` (default): Redis Cluster, [`RedisStoreBuilder::cluster`].
//!
//! Both traits are `client-credentials-common`'s (`TokenStore`,
//! `AsyncTokenStore`), which the adapters re-export. What every store call
//! sends and what Redis's answer means is written once (sans-IO operations
//! in `fleet.rs`); each kind of connection only sends and sleeps.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
// Without `blocking` or `tokio` no store is built, and the fleet logic they
// share has no user: the crate still compiles, quietly.
#![cfg_attr(not(any(feature = "blocking", feature = "tokio")), allow(dead_code, unused_imports))]

#[cfg(feature = "blocking")]
mod blocking;
#[cfg(test)]
mod fixtures;
mod fleet;
mod keys;
mod seal;
mod store;
#[cfg(feature = "tokio")]
mod tokio_store;

pub use store::{
    RedisStore, RedisStoreBuilder, RedisStoreError, DEFAULT_KEY_PREFIX, DEFAULT_LOCK_TTL, DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT, MAX_VALUE_SIZE,
};
