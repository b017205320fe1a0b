//! Where tokens outlive the process: the async [`TokenStore`] trait, [`MemoryStore`], [`FileStore`].

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use client_credentials::{AccessToken, Config, Timestamp};
use client_credentials_common::{file, FleetTurn, MemoryStore};

use crate::transport::BoxFuture;

/// Keeps the current token somewhere (a file, a database, a secret manager)
/// so that other processes and later runs reuse it instead of fetching.
///
/// Each call gets the [`Config`] the client serves (a store shared by
/// several configurations keys its entries by it). The client loads the
/// store lazily, inside the single flight of the first call that needs a
/// token; saves every new token before waking the callers waiting for it;
/// and deletes it at [`signout`](crate::Client::signout) and when the cached
/// token is [invalidated](crate::Client::invalidate). Writes apply in the
/// order of the changes that caused them: a save never lands after the
/// sign-out or invalidation that dropped its token. A failing store never
/// fails a token request: the error is logged (`tracing::warn!`) and the
/// client carries on without it.
///
/// Methods return [`BoxFuture`]s so `Arc<dyn TokenStore>` works; write the
/// body as `Box::pin(async move { .. })`.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, `Ok(None)` when there is none.
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>>;
    /// Replaces the stored token.
    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>>;

    /// Called inside the single flight right before this process sends a
    /// token request: [`FleetTurn::Fetch`] lets it send (the default);
    /// [`FleetTurn::Use`] hands it a token another process stored meanwhile
    /// (used if it is usable now and expires later than the cached one), and
    /// nothing is sent. Bound any waiting here yourself; an error is logged
    /// and the client fetches.
    fn begin_fetch<'a>(&'a self, config: &'a Config, now: Timestamp) -> BoxFuture<'a, io::Result<FleetTurn>> {
        let _ = (config, now);
        Box::pin(async { Ok(FleetTurn::Fetch) })
    }

    /// Called when the round that [`TokenStore::begin_fetch`] began ends:
    /// after the new token is saved, or after the round failed.
    fn end_fetch<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, ()> {
        let _ = config;
        Box::pin(async {})
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        (**self).load(config)
    }

    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        (**self).save(config, token)
    }

    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        (**self).delete(config)
    }

    fn begin_fetch<'a>(&'a self, config: &'a Config, now: Timestamp) -> BoxFuture<'a, io::Result<FleetTurn>> {
        (**self).begin_fetch(config, now)
    }

    fn end_fetch<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, ()> {
        (**self).end_fetch(config)
    }
}

impl TokenStore for MemoryStore {
    fn load<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        Box::pin(async move { Ok(self.get()) })
    }

    fn save<'a>(&'a self, _: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.set(Some(token.clone()));
            Ok(())
        })
    }

    fn delete<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<()>> {
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
    fn load<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        let path = self.path.clone();
        Box::pin(blocking(move || file::load(&path)))
    }

    fn save<'a>(&'a self, _: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        let (path, token) = (self.path.clone(), token.clone());
        Box::pin(blocking(move || file::save(&path, &token)))
    }

    fn delete<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        let path = self.path.clone();
        Box::pin(blocking(move || file::delete(&path)))
    }
}
