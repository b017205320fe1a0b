//! One client, many tokens: a [`Driver`] per [`TokenParams`] key, sharing
//! the client's settings and I/O, found without a lock on the cached read
//! and bounded by an LRU of idle keys.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use client_credentials::{AccessToken, Error, TokenParams};

use crate::driver::{Driver, Io};

/// The keys of one client: its default [`Driver`] and one more per
/// [`TokenParams`] asked for, each with its own token, single flight,
/// failure state and refresh time, all sharing the client's transport,
/// credentials, clock, store, callbacks and background refresher.
///
/// The cached read ([`Keys::fresh`]) takes no lock, allocates nothing and
/// writes nothing but the reference count of the token copy kept for its
/// thread's stripe (see [`Published::striped`](crate::Published::striped)):
/// one atomic load of the current table (immutable, replaced
/// whole when a key is added or dropped), one probe comparing the stored
/// hash before the key, then the key's published token from the front of
/// its driver. Adding or dropping a key builds the table again under a
/// mutex, off the read path.
///
/// At most `max_keys` keys besides the default are kept: adding one more
/// drops the least recently used **idle** key (no caller waiting, no
/// request under way, no bound handle alive); when every key is busy the
/// table grows past the bound until they settle.
pub struct Keys<W: Io> {
    default: Arc<Driver<W>>,
    table: ArcSwap<Table<W>>,
    /// Serialises adding and dropping keys (readers never take it).
    writer: Mutex<()>,
    /// The LRU clock: bumped each time a key is looked up through the lock
    /// or added, read (never written) by cached reads, so it bounces
    /// between cores only when keys change. Keys read between two bumps
    /// share a stamp: the order is least recently used as of the last
    /// change, which is what choosing a key to drop needs.
    tick: AtomicU64,
    max_keys: usize,
}

/// The keys' drivers in a flat open-addressing table (linear probing, at
/// most half full): one 16-byte entry per bucket, holding the key's mixed
/// hash beside its driver, so a probe reads one line of the table and
/// compares params only when the hashes match. Built whole, never changed.
struct Table<W: Io> {
    entries: Box<[Entry<W>]>,
    /// `entries.len() - 1` (a power of two minus one).
    mask: usize,
    len: usize,
    mix: Mix,
}

struct Entry<W: Io> {
    hash: u64,
    driver: Option<Arc<Driver<W>>>,
}

impl<W: Io> Table<W> {
    fn new(mix: Mix, drivers: Vec<Arc<Driver<W>>>) -> Self {
        let buckets = drivers.len().saturating_mul(2).max(8).next_power_of_two();
        let mut entries: Box<[Entry<W>]> = (0..buckets).map(|_| Entry { hash: 0, driver: None }).collect();
        let mask = buckets - 1;
        let len = drivers.len();
        for driver in drivers {
            let hash = mix.hash_one(driver.params());
            // Truncation intended: the low bits pick the bucket.
            let mut at = (hash as usize) & mask;
            while entries[at].driver.is_some() {
                at = (at + 1) & mask;
            }
            entries[at] = Entry {
                hash,
                driver: Some(driver),
            };
        }
        Table {
            entries,
            mask,
            len,
            mix,
        }
    }

    #[inline]
    fn get(&self, params: &TokenParams) -> Option<&Arc<Driver<W>>> {
        let hash = self.mix.hash_one(params);
        let mut at = (hash as usize) & self.mask;
        // At most half full: an empty bucket ends every probe.
        loop {
            let entry = self.entries.get(at)?;
            let driver = entry.driver.as_ref()?;
            if entry.hash == hash && driver.params() == params {
                return Some(driver);
            }
            at = (at + 1) & self.mask;
        }
    }

    fn drivers(&self) -> impl Iterator<Item = &Arc<Driver<W>>> {
        self.entries.iter().filter_map(|entry| entry.driver.as_ref())
    }
}

/// The map's hasher: [`TokenParams`] hash themselves once, when built
/// (their [`Hash`](std::hash::Hash) writes one `u64`); this mixes that hash
/// with a per-client random secret, so which bucket a key lands in cannot be
/// predicted from its values (keys may come from untrusted input, a tenant
/// name), at the cost of a multiply on each lookup.
#[derive(Clone, Copy)]
struct Mix {
    secret: u64,
}

impl Mix {
    fn random() -> Mix {
        let bytes = crate::random_bytes();
        let mut secret = [0u8; 8];
        secret.copy_from_slice(&bytes[..8]);
        Mix {
            secret: u64::from_le_bytes(secret),
        }
    }
}

impl BuildHasher for Mix {
    type Hasher = MixHasher;

    fn build_hasher(&self) -> MixHasher {
        MixHasher { state: self.secret }
    }
}

/// See [`Mix`].
struct MixHasher {
    state: u64,
}

impl Hasher for MixHasher {
    #[inline]
    fn write_u64(&mut self, hash: u64) {
        // A round of a 64-bit mixer (splitmix64's finaliser) over the
        // secret-keyed hash.
        let mut x = self.state ^ hash;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.state = x ^ (x >> 31);
    }

    /// Not used by `TokenParams`; anything else hashed here is folded in
    /// eight bytes at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

impl<W: Io> Keys<W> {
    /// The keys of a client whose default key is `default`, keeping at most
    /// `max_keys` more.
    pub fn new(default: Arc<Driver<W>>, max_keys: usize) -> Self {
        Keys {
            default,
            table: ArcSwap::from_pointee(Table::new(Mix::random(), Vec::new())),
            writer: Mutex::new(()),
            tick: AtomicU64::new(0),
            max_keys,
        }
    }

    /// The default key's driver (the client's own config).
    pub fn default_driver(&self) -> &Arc<Driver<W>> {
        &self.default
    }

    /// The cached token of `params`' key if it is fresh: no lock, no
    /// allocation. `None`: take the slow path ([`Keys::driver`]).
    #[inline]
    pub fn fresh(&self, params: &TokenParams) -> Option<AccessToken> {
        if params.is_empty() {
            return self.default.fresh();
        }
        let table = self.table.load();
        let driver = table.get(params)?;
        driver.touch(self.tick.load(Ordering::Relaxed));
        driver.fresh_shared()
    }

    /// The driver of `params`' key, added if new (dropping the least
    /// recently used idle key beyond `max_keys`). The caller holds the
    /// returned `Arc` while it steps, which keeps the key from being dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `params` break the config builder's rules
    /// (see [`client_credentials::Config::with_params`]); no key is added.
    pub fn driver(&self, params: &TokenParams) -> Result<Arc<Driver<W>>, Error> {
        if params.is_empty() {
            return Ok(Arc::clone(&self.default));
        }
        // Cloning the driver's `Arc` under the writer lock, where eviction
        // also runs, means an idle-looking key is never dropped while a
        // caller is about to use it.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamped with the tick before the bump: a cached read after this
        // sees a later tick, so a key read since is more recent than this one.
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        let table = self.table.load_full();
        if let Some(driver) = table.get(params) {
            driver.touch(tick);
            return Ok(Arc::clone(driver));
        }
        let config = self.default.config().with_params(params)?;
        let driver = Arc::new(self.default.for_key(config, params.clone()));
        driver.touch(tick);
        // The keys to drop: the least recently used idle ones beyond the
        // bound. Idle is judged on the current table, whose entry is then
        // each driver's only holder.
        let excess = (table.len + 1).saturating_sub(self.max_keys);
        let mut dropped: Vec<&Arc<Driver<W>>> = Vec::new();
        if excess > 0 {
            let mut idle: Vec<&Arc<Driver<W>>> = table.drivers().filter(|d| d.is_idle(1)).collect();
            if idle.len() > excess {
                idle.select_nth_unstable_by_key(excess - 1, |d| d.last_used());
                idle.truncate(excess);
            }
            dropped = idle;
        }
        let mut kept: Vec<Arc<Driver<W>>> = Vec::with_capacity(table.len + 1 - dropped.len());
        kept.extend(
            table
                .drivers()
                .filter(|d| !dropped.iter().any(|gone| Arc::ptr_eq(gone, d)))
                .cloned(),
        );
        kept.push(Arc::clone(&driver));
        let next = Table::new(table.mix, kept);
        drop(dropped);
        drop(table);
        self.table.store(Arc::new(next));
        Ok(driver)
    }

    /// The driver a handle bound to `params` uses: [`Keys::driver`], or, for
    /// refused params, a driver that returns the [`Error::Config`] to every
    /// call and sends nothing.
    pub fn bound(&self, params: &TokenParams) -> Arc<Driver<W>> {
        match self.driver(params) {
            Ok(driver) => driver,
            Err(error) => Arc::new(self.default.refusing(error)),
        }
    }

    /// Every key's driver, the default first: for the background refresher.
    pub fn drivers(&self) -> Vec<Arc<Driver<W>>> {
        let table = self.table.load();
        let mut drivers = Vec::with_capacity(table.len + 1);
        drivers.push(Arc::clone(&self.default));
        drivers.extend(table.drivers().cloned());
        drivers
    }

    /// How many keys are kept besides the default one.
    pub fn len(&self) -> usize {
        self.table.load().len
    }

    /// Whether no key besides the default one is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<W: Io> fmt::Debug for Keys<W> {
    /// How many keys; never their params' values or tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("keys", &self.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}
