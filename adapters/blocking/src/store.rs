//! Where tokens outlive the client: the [`TokenStore`] trait, [`MemoryStore`], [`FileStore`].

use std::io;
use std::path::{Path, PathBuf};

use client_credentials::{AccessToken, Config, Timestamp};
use client_credentials_common::{file, FleetTurn, MemoryStore};

/// Keeps the current token somewhere (memory shared between clients, a file,
/// a database), so a restarted program reuses it instead of fetching a new one.
///
/// Each call gets the [`Config`] the client serves (a store shared by
/// several configurations keys its entries by it). The client loads the
/// store lazily, inside the single flight of the first call that needs a
/// token; saves every new token before waking the callers waiting for it;
/// and deletes it at sign-out and when the cached token is invalidated.
/// Writes apply in the order of the changes that caused them: a save never
/// lands after the sign-out or invalidation that dropped its token.
/// Failures are logged with `tracing::warn!` and never fail a `token()`
/// call: a store is a cache. A loaded token that has expired is fine: the
/// client refreshes it (with its refresh token, if it has one).
///
/// A store shared by a fleet of processes can make one of them fetch and the
/// others wait for its token: see [`TokenStore::begin_fetch`].
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, if any.
    fn load(&self, config: &Config) -> io::Result<Option<AccessToken>>;
    /// Replaces the stored token.
    fn save(&self, config: &Config, token: &AccessToken) -> io::Result<()>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete(&self, config: &Config) -> io::Result<()>;

    /// Called inside the single flight right before this process sends a
    /// token request: [`FleetTurn::Fetch`] lets it send (the default);
    /// [`FleetTurn::Use`] hands it a token another process stored meanwhile
    /// (used if it is usable now and expires later than the cached one), and
    /// nothing is sent. Bound any waiting here yourself; an error is logged
    /// and the client fetches.
    fn begin_fetch(&self, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
        let _ = (config, now);
        Ok(FleetTurn::Fetch)
    }

    /// Called when the round that [`TokenStore::begin_fetch`] began ends:
    /// after the new token is saved, or after the round failed.
    fn end_fetch(&self, config: &Config) {
        let _ = config;
    }
}

impl TokenStore for MemoryStore {
    fn load(&self, _: &Config) -> io::Result<Option<AccessToken>> {
        Ok(self.get())
    }

    fn save(&self, _: &Config, token: &AccessToken) -> io::Result<()> {
        self.set(Some(token.clone()));
        Ok(())
    }

    fn delete(&self, _: &Config) -> io::Result<()> {
        self.set(None);
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
    fn load(&self, _: &Config) -> io::Result<Option<AccessToken>> {
        file::load(&self.path)
    }

    fn save(&self, _: &Config, token: &AccessToken) -> io::Result<()> {
        file::save(&self.path, token)
    }

    fn delete(&self, _: &Config) -> io::Result<()> {
        file::delete(&self.path)
    }
}
