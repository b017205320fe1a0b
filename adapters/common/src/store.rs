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

/// A change to the stored token, applied by [`Driver::save_changes`](crate::Driver::save_changes).
#[derive(Debug, Clone)]
pub enum StoreChange {
    /// `save(token)`.
    Save(AccessToken),
    /// `delete()`.
    Delete,
}

impl StoreChange {
    /// The store call, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            StoreChange::Save(_) => "save",
            StoreChange::Delete => "delete",
        }
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

/// Where a `FileStore` keeps its token (the adapters implement their
/// `TokenStore` traits for it with [`crate::file`]).
///
/// The file holds the token's JSON, written atomically (a temporary file
/// renamed over the target) with mode `0600` on Unix, so separate runs of a
/// program share one token and a reader never sees half a token. A file that
/// is not a token reads as empty (with a warning).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: Arc<std::path::Path>,
}

impl FileStore {
    /// A store at `path` (its directory is created on the first save).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        FileStore {
            path: path.into().into(),
        }
    }

    /// Where the token is kept.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
