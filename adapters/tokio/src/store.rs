//! Where tokens outlive the process: the async [`TokenStore`] trait, [`MemoryStore`], [`FileStore`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use client_credentials::AccessToken;

use crate::transport::BoxFuture;

/// Keeps the current token somewhere (a file, a database, a secret manager)
/// so that other processes and later runs reuse it instead of fetching.
///
/// The client loads it once, lazily, on the first call that misses the cache,
/// saves every new token before handing it to the callers waiting for it, and
/// deletes it at [`signout`](crate::Client::signout). A failing store never
/// fails a token request: the error is logged (`tracing::warn!`) and the
/// client carries on without it.
///
/// Methods return [`BoxFuture`]s so `Arc<dyn TokenStore>` works; write the
/// body as `Box::pin(async move { .. })`.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, `Ok(None)` when there is none.
    fn load(&self) -> BoxFuture<'_, io::Result<Option<AccessToken>>>;
    /// Replaces the stored token.
    fn save<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete(&self) -> BoxFuture<'_, io::Result<()>>;
}

/// A store in memory: share one between clients (it is cheap to clone and
/// clones share the token), or inspect what a client saved.
#[derive(Clone, Default)]
pub struct MemoryStore {
    token: Arc<Mutex<Option<AccessToken>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("has_token", &self.get().is_some())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token stored now.
    pub fn get(&self) -> Option<AccessToken> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, token: Option<AccessToken>) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> BoxFuture<'_, io::Result<Option<AccessToken>>> {
        Box::pin(async move { Ok(self.get()) })
    }

    fn save<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.set(Some(token.clone()));
            Ok(())
        })
    }

    fn delete(&self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            self.set(None);
            Ok(())
        })
    }
}

/// A token file, shared by every client and process pointing at it.
///
/// Writes are atomic (a temporary file renamed over the target) and the file
/// is created with mode `0600` on Unix; it holds the token's JSON, secret
/// included, so keep it somewhere private. File I/O runs on tokio's blocking
/// pool (`spawn_blocking`). A file that is not a token reads as empty.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: Arc<Path>,
}

impl FileStore {
    /// A store at `path` (created on the first save, directories included).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore {
            path: path.into().into(),
        }
    }

    /// Where the token is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

async fn blocking<T: Send + 'static>(job: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(job).await.map_err(io::Error::other)?
}

impl TokenStore for FileStore {
    fn load(&self) -> BoxFuture<'_, io::Result<Option<AccessToken>>> {
        let path = self.path.clone();
        Box::pin(blocking(move || client_credentials_common::file::load(&path)))
    }

    fn save<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        let (path, token) = (self.path.clone(), token.clone());
        Box::pin(blocking(move || client_credentials_common::file::save(&path, &token)))
    }

    fn delete(&self) -> BoxFuture<'_, io::Result<()>> {
        let path = self.path.clone();
        Box::pin(blocking(move || client_credentials_common::file::delete(&path)))
    }
}
