//! Where tokens outlive the client: a store loaded at build time and saved on each new token.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use client_credentials::AccessToken;
use client_credentials_common::file;

/// Keeps the current token somewhere (memory shared between clients, a file,
/// a database), so a restarted program reuses it instead of fetching a new one.
///
/// The client loads it once when built, saves every new token, and deletes it
/// at sign-out or when the token is invalidated. Failures are logged with
/// `tracing::warn!` and never fail a `token()` call: a store is a cache. A
/// loaded token that has expired is fine: the client refreshes it (with its
/// refresh token, if it has one). Calls happen outside the client's lock, on
/// the thread that caused them.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, if any.
    fn load(&self) -> io::Result<Option<AccessToken>>;
    /// Replaces the stored token.
    fn save(&self, token: &AccessToken) -> io::Result<()>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete(&self) -> io::Result<()>;
}

/// A token kept in memory; clones share it, so two clients built with clones
/// of one `MemoryStore` share a token across their lifetimes.
///
/// ```
/// use client_credentials_blocking::{MemoryStore, TokenStore};
///
/// let store = MemoryStore::new();
/// let token = client_credentials::AccessToken::builder("abc").build()?;
/// store.clone().save(&token)?;
/// assert_eq!(store.load()?.map(|t| t.secret().to_owned()).as_deref(), Some("abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Option<AccessToken>>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Option<AccessToken>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("token", &self.with(|t| t.clone()))
            .finish()
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> io::Result<Option<AccessToken>> {
        Ok(self.with(|t| t.clone()))
    }

    fn save(&self, token: &AccessToken) -> io::Result<()> {
        self.with(|t| *t = Some(token.clone()));
        Ok(())
    }

    fn delete(&self) -> io::Result<()> {
        self.with(|t| *t = None);
        Ok(())
    }
}

/// A token file: JSON, written atomically (temporary file and rename) with
/// mode `0600` on Unix, so separate runs of a program share one token and a
/// reader never sees half a token. A file that is not a token reads as empty
/// (with a warning).
///
/// ```no_run
/// use client_credentials_blocking::{Client, FileStore};
///
/// let config = client_credentials::Config::builder("id", "secret")
///     .token_endpoint("https://auth.example.com/token")
///     .build()?;
/// let client = Client::builder(config)
///     .store(FileStore::new("/var/lib/myapp/token.json"))
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (its directory is created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// Where the token is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> io::Result<Option<AccessToken>> {
        file::load(&self.path)
    }

    fn save(&self, token: &AccessToken) -> io::Result<()> {
        file::save(&self.path, token)
    }

    fn delete(&self) -> io::Result<()> {
        file::delete(&self.path)
    }
}
