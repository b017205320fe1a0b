//! What both adapters' token stores share: the fleet hook's answer, the
//! in-memory store, and the sequencing that applies store writes in order.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use client_credentials::AccessToken;

/// What a store's `begin_fetch` hook tells a client about to request a token.
///
/// A store shared by a fleet of processes (Redis, a database) uses it so that
/// one process fetches and the others pick the token up: it answers `Fetch`
/// to the process that won the turn and, to the others, `Use(token)` once the
/// winner has saved a fresh token (bounding any waiting itself). Stores with
/// no fleet keep the default, `Fetch`.
#[derive(Debug, Clone)]
pub enum FleetTurn {
    /// Send the token request.
    Fetch,
    /// Another process has just stored this token: use it and send nothing.
    /// It replaces the cached token only if it is usable now and expires
    /// later (as a provided token does); otherwise the client fetches.
    Use(AccessToken),
}

/// A change to the stored token, numbered in the order of the state changes
/// that caused it. Handed out by the driver under its lock; an adapter applies
/// it under its store lock only if it is newer than the last one applied
/// ([`StoreOrder::admit`]), so a save never lands after the sign-out or
/// invalidation that dropped its token, and two quick saves land in order.
#[derive(Debug, Clone)]
pub struct StoreOp {
    pub(crate) seq: u64,
    /// What to do.
    pub change: StoreChange,
}

/// The store call a [`StoreOp`] stands for.
#[derive(Debug, Clone)]
pub enum StoreChange {
    /// `save(token)`.
    Save(AccessToken),
    /// `delete()`.
    Delete,
}

/// The number of the last [`StoreOp`] applied; keep it inside the lock that
/// serialises store calls.
#[derive(Debug, Default)]
pub struct StoreOrder(u64);

impl StoreOrder {
    /// Whether `op` is to be applied: it is newer than every operation
    /// applied so far (it is then recorded as applied). An older one was
    /// overtaken by a later state change and is dropped.
    pub fn admit(&mut self, op: &StoreOp) -> bool {
        let newer = op.seq > self.0;
        if newer {
            self.0 = op.seq;
        }
        newer
    }
}

/// A token kept in memory; clones share it, so two clients built with clones
/// of one `MemoryStore` share a token across their lifetimes. It keeps one
/// token whatever the configuration (share it only between clients of one
/// configuration).
///
/// ```
/// let store = client_credentials_common::MemoryStore::new();
/// let token = client_credentials::AccessToken::builder("abc").build()?;
/// store.clone().set(Some(token));
/// assert_eq!(store.get().map(|t| t.secret().to_owned()).as_deref(), Some("abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Option<AccessToken>>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token stored now.
    pub fn get(&self) -> Option<AccessToken> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces (or with `None`, removes) the stored token.
    pub fn set(&self, token: Option<AccessToken>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl fmt::Debug for MemoryStore {
    /// Whether a token is stored; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("has_token", &self.get().is_some())
            .finish()
    }
}

/// Logs a failed store call: a store is a cache, so its failure never fails
/// a token request.
pub fn store_failed(what: &str, error: &std::io::Error) {
    tracing::warn!(%error, "client-credentials: could not {what} the stored token");
}
