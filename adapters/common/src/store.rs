//! The token stores both adapters use: the store traits (the blocking
//! adapter's `TokenStore` is [`TokenStore`], the tokio adapter's is
//! [`AsyncTokenStore`]), the fleet hook's answer, [`MemoryStore`] and
//! [`FileStore`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use client_credentials::{AccessToken, Config, SharedBackoff, Timestamp};

use crate::settings::BoxFuture;
use crate::token_file;

/// Keeps the current token somewhere (memory shared between clients, a file,
/// a database), so a restarted program reuses it instead of fetching a new
/// one. The blocking adapter's store (`client_credentials_blocking::TokenStore`);
/// the tokio adapter's, [`AsyncTokenStore`], is the same with futures.
///
/// Each call gets the [`Config`] the client serves (a store shared by
/// several configurations keys its entries by it, e.g. by
/// `Config::fingerprint`). The client loads the store lazily, inside the
/// single flight of the first call that needs a token; saves every new token
/// before waking the callers waiting for it; deletes it at sign-out; and
/// evicts it ([`TokenStore::evict`]) when the cached token is invalidated. Writes apply in the order of the
/// changes that caused them: a save never lands after the sign-out or
/// invalidation that dropped its token, and of two quick saves the later one
/// lands last. Failures are logged with `tracing::warn!` and never fail a
/// token request: a store is a cache. A loaded token that has expired is
/// fine: the client refreshes it (with its refresh token, if it has one).
///
/// A store shared by a fleet of processes can make one of them fetch and the
/// others use its token: see [`TokenStore::begin_fetch`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store of the blocking adapter (`client_credentials_blocking::TokenStore`)",
    label = "not a blocking `TokenStore`",
    note = "`RedisStore` is one with the feature `blocking` of `client-credentials-redis`: `client-credentials-redis = {{ version = \"0.1\", features = [\"blocking\"] }}`",
    note = "the tokio adapter's stores implement `client_credentials_tokio::TokenStore` instead"
)]
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, if any.
    fn load(&self, config: &Config) -> io::Result<Option<AccessToken>>;
    /// Replaces the stored token.
    fn save(&self, config: &Config, token: &AccessToken) -> io::Result<()>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete(&self, config: &Config) -> io::Result<()>;

    /// A resource server rejected `token`: remove it from the store, but
    /// only if it is still the stored one. A store shared by several
    /// processes overrides this with a compare-and-delete, so a process
    /// holding a token the others have already replaced never deletes the
    /// newer one. The default calls [`TokenStore::delete`].
    fn evict(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        let _ = token;
        self.delete(config)
    }

    /// What the client calls for a rejected token: [`TokenStore::evict`],
    /// and with `backoff` (the rejection failed the round: the tokens of this
    /// streak are all rejected) a store shared by a fleet also records the
    /// back-off, in the same atomic step, so that [`TokenStore::begin_fetch`]
    /// answers [`FleetTurn::HoldBack`] to the other processes while it holds
    /// and the fleet backs off as one client. The default evicts only (each
    /// process backs off alone).
    fn evict_rejected(&self, config: &Config, token: &AccessToken, backoff: Option<&SharedBackoff>) -> io::Result<()> {
        let _ = backoff;
        self.evict(config, token)
    }

    /// Called inside the single flight right before this process sends a
    /// token request: [`FleetTurn::Fetch`] lets it send (the default);
    /// [`FleetTurn::Use`] hands it a token another process stored meanwhile
    /// (used if it is usable now and expires later than the cached one), and
    /// nothing is sent; [`FleetTurn::HoldBack`] fails the round at once with
    /// another process's rejection back-off. Bound any waiting here
    /// yourself; an error is logged and the client fetches.
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

/// [`TokenStore`] with futures: the tokio adapter's store
/// (`client_credentials_tokio::TokenStore`), with the same contract.
///
/// Methods return [`BoxFuture`]s so `Box<dyn AsyncTokenStore>` works; write
/// the body as `Box::pin(async move { .. })`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store of the tokio adapter (`client_credentials_tokio::TokenStore`)",
    label = "not a tokio `TokenStore`",
    note = "`RedisStore` is one with the feature `tokio` of `client-credentials-redis`: `client-credentials-redis = {{ version = \"0.1\", features = [\"tokio\"] }}`",
    note = "the blocking adapter's stores implement `client_credentials_blocking::TokenStore` instead"
)]
pub trait AsyncTokenStore: Send + Sync + 'static {
    /// The stored token, `Ok(None)` when there is none.
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>>;
    /// Replaces the stored token.
    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>>;
    /// Removes the stored token (nothing stored is not an error).
    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>>;

    /// As [`TokenStore::evict`]: removes `token` only if it is still the
    /// stored one; the default calls [`AsyncTokenStore::delete`].
    fn evict<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        let _ = token;
        self.delete(config)
    }

    /// As [`TokenStore::evict_rejected`]: the default calls
    /// [`AsyncTokenStore::evict`].
    fn evict_rejected<'a>(
        &'a self,
        config: &'a Config,
        token: &'a AccessToken,
        backoff: Option<&'a SharedBackoff>,
    ) -> BoxFuture<'a, io::Result<()>> {
        let _ = backoff;
        self.evict(config, token)
    }

    /// As [`TokenStore::begin_fetch`]: `Fetch` (the default), `Use(token)`
    /// or `HoldBack(backoff)`.
    fn begin_fetch<'a>(&'a self, config: &'a Config, now: Timestamp) -> BoxFuture<'a, io::Result<FleetTurn>> {
        let _ = (config, now);
        Box::pin(async { Ok(FleetTurn::Fetch) })
    }

    /// As [`TokenStore::end_fetch`].
    fn end_fetch<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, ()> {
        let _ = config;
        Box::pin(async {})
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load(&self, config: &Config) -> io::Result<Option<AccessToken>> {
        (**self).load(config)
    }
    fn save(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        (**self).save(config, token)
    }
    fn delete(&self, config: &Config) -> io::Result<()> {
        (**self).delete(config)
    }
    fn evict(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        (**self).evict(config, token)
    }
    fn evict_rejected(&self, config: &Config, token: &AccessToken, backoff: Option<&SharedBackoff>) -> io::Result<()> {
        (**self).evict_rejected(config, token, backoff)
    }
    fn begin_fetch(&self, config: &Config, now: Timestamp) -> io::Result<FleetTurn> {
        (**self).begin_fetch(config, now)
    }
    fn end_fetch(&self, config: &Config) {
        (**self).end_fetch(config)
    }
}

impl<T: AsyncTokenStore + ?Sized> AsyncTokenStore for Arc<T> {
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        (**self).load(config)
    }
    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        (**self).save(config, token)
    }
    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        (**self).delete(config)
    }
    fn evict<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        (**self).evict(config, token)
    }
    fn evict_rejected<'a>(
        &'a self,
        config: &'a Config,
        token: &'a AccessToken,
        backoff: Option<&'a SharedBackoff>,
    ) -> BoxFuture<'a, io::Result<()>> {
        (**self).evict_rejected(config, token, backoff)
    }
    fn begin_fetch<'a>(&'a self, config: &'a Config, now: Timestamp) -> BoxFuture<'a, io::Result<FleetTurn>> {
        (**self).begin_fetch(config, now)
    }
    fn end_fetch<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, ()> {
        (**self).end_fetch(config)
    }
}

/// What a store's `begin_fetch` hook tells a client about to request a token.
///
/// A store shared by a fleet of processes (Redis, a database) uses it so that
/// one process fetches and the others pick the token up: it answers `Fetch`
/// to the process that won the turn and, to the others, `Use(token)` once the
/// winner has saved a fresh token (bounding any waiting itself), or
/// `HoldBack` while a back-off recorded by [`TokenStore::evict_rejected`]
/// holds. Stores with no fleet keep the default, `Fetch`.
#[derive(Debug, Clone)]
pub enum FleetTurn {
    /// Send the token request.
    Fetch,
    /// Another process has just stored this token: use it and send nothing.
    /// It replaces the cached token only if it is usable now and expires
    /// later (as a provided token does); otherwise the client fetches.
    Use(AccessToken),
    /// Another process's resource rejected the tokens of its streak: fail
    /// the round at once with `Error::TokenRejected` and send nothing. The
    /// client waits until `backoff.until`, but never longer than its retry
    /// policy's `max_backoff` from now, whatever the store says; a back-off
    /// that no longer holds lets it fetch.
    HoldBack(SharedBackoff),
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
pub fn store_failed(target: crate::LogTarget, what: &str, error: &std::io::Error) {
    crate::observe::store_error(what);
    crate::log_event!(target, warn, %error, "client-credentials: could not {what} the stored token");
}

/// A token file: JSON, written atomically (a temporary file renamed over
/// the target, then the directory flushed) with mode `0600` on Unix, so
/// separate runs of a program share their tokens and a reader never sees
/// half a token. It holds the tokens' secrets: keep it somewhere private. The tokio
/// adapter does its file I/O on tokio's blocking pool.
///
/// Each token is saved with the [`Config::fingerprint`] of the configuration
/// it was fetched for, and served only to a client with the same one: a file
/// shared by mistake between a production and a staging client, or between
/// clients with different scopes or [`.param`](client_credentials::ConfigBuilder::param)
/// values, is never served to the wrong one. The file keeps one token per
/// fingerprint, so the keys of one client (`token_for`, `with_params`) and
/// runs of a program with different scopes or audiences each find their
/// own: `{"tokens": [{"fingerprint": …, "token": …}, …]}`, at most
/// [`MAX_TOKENS`](crate::token_file::MAX_TOKENS) of them within
/// [`MAX_FILE_BYTES`](crate::token_file::MAX_FILE_BYTES) (a save drops the
/// others that expire soonest). A client's sign-out or invalidation removes
/// only its own token. Saves from one process (the clones of one
/// `FileStore`) are serialised; two processes saving other fingerprints at
/// the same moment may drop one of the two, which costs one token request,
/// never a wrong token. On Unix
/// a file owned by another user, or open to group or others, is refused
/// with a warning and a token is fetched instead (another local user could
/// have planted it); a file that is not a token reads as empty, with a
/// warning too.
///
/// ```no_run
/// # let config = client_credentials::Config::builder("id", "secret").token_endpoint("https://auth.example.com/token").build()?;
/// let store = client_credentials_common::FileStore::new("/var/lib/myapp/token.json");
/// # let _ = (store, config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: Arc<Path>,
    /// Serialises this process's read-modify-write of the file, so two
    /// keys saving at once both land.
    writing: Arc<Mutex<()>>,
}

impl FileStore {
    /// A store at `path` (its directory is created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore {
            path: path.into().into(),
            writing: Arc::default(),
        }
    }

    /// Where the tokens are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileStore {
    fn load(&self, config: &Config) -> io::Result<Option<AccessToken>> {
        token_file::load(&self.path, &config.fingerprint())
    }
    fn save(&self, config: &Config, token: &AccessToken) -> io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        token_file::save(&self.path, &config.fingerprint(), token)
    }
    fn delete(&self, config: &Config) -> io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        token_file::delete(&self.path, &config.fingerprint())
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[cfg(feature = "tokio")]
impl AsyncTokenStore for FileStore {
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        let (store, config) = (self.clone(), config.clone());
        Box::pin(on_blocking_pool(move || TokenStore::load(&store, &config)))
    }
    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        let (store, config, token) = (self.clone(), config.clone(), token.clone());
        Box::pin(on_blocking_pool(move || TokenStore::save(&store, &config, &token)))
    }
    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        let (store, config) = (self.clone(), config.clone());
        Box::pin(on_blocking_pool(move || TokenStore::delete(&store, &config)))
    }
}

#[cfg(feature = "tokio")]
async fn on_blocking_pool<T: Send + 'static>(job: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(job).await.map_err(io::Error::other)?
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
    fn evict(&self, _: &Config, token: &AccessToken) -> io::Result<()> {
        let mut stored = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if stored.as_ref().is_some_and(|stored| stored.same_token(token)) {
            *stored = None;
        }
        Ok(())
    }
}

impl AsyncTokenStore for MemoryStore {
    fn load<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        Box::pin(std::future::ready(TokenStore::load(self, config)))
    }
    fn save<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(std::future::ready(TokenStore::save(self, config, token)))
    }
    fn delete<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(std::future::ready(TokenStore::delete(self, config)))
    }
    fn evict<'a>(&'a self, config: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(std::future::ready(TokenStore::evict(self, config, token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicting_a_memory_store_removes_only_the_rejected_token() {
        let config = Config::builder("id", "secret")
            .token_endpoint("https://auth.example.com/token")
            .build()
            .unwrap();
        let (stale, newer) = (
            AccessToken::builder("stale").build().unwrap(),
            AccessToken::builder("newer").build().unwrap(),
        );
        let store = MemoryStore::new();
        store.set(Some(newer.clone()));
        TokenStore::evict(&store, &config, &stale).unwrap();
        assert_eq!(store.get().map(|t| t.secret().to_owned()).as_deref(), Some("newer"));
        TokenStore::evict(&store, &config, &newer).unwrap();
        assert!(store.get().is_none());
    }
}
