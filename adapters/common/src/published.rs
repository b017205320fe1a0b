use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use client_credentials::{AccessToken, Timestamp};

use crate::clock::coarse_now;

struct Snapshot {
    token: AccessToken,
    refresh_at: u64,
    /// For [`Published::fresh_shared`] of a striped `Published`: detached
    /// copies of `token` (each its own reference count), one per stripe of
    /// threads but the first (which clones `token`), each made when a
    /// thread of its stripe first reads this token. The slots themselves
    /// are allocated on the first read from a stripe but the first, sized
    /// for the stripes there are: a key read from one stripe only (or not
    /// read since it was fetched, or on a one-CPU machine) keeps neither
    /// slots nor copies.
    copies: OnceLock<Box<[OnceLock<AccessToken>]>>,
}

/// Most stripes of threads a [`Published::striped`] keeps copies for.
const MAX_STRIPES: usize = 4;

/// How many stripes: one per CPU, at most [`MAX_STRIPES`].
fn stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_STRIPES)))
}

/// This thread's stripe: threads take stripes in turn as they first read.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    STRIPE
        .try_with(|stripe| match stripe.get() {
            Some(n) => n,
            None => {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                stripe.set(Some(n));
                n
            }
        })
        .unwrap_or(0)
}

/// The token an adapter publishes after each state change, read without a lock.
///
/// [`Published::fresh`] is the cached-read fast path: one coarse clock read,
/// one atomic load of a generation counter, and a clone of this thread's own
/// copy of the token. No lock, no syscall, no allocation once a thread has its
/// copy. Each thread keeps a detached copy (its own reference count) checked
/// against the generation, because every thread cloning one shared `Arc` makes
/// its count bounce between cores.
pub struct Published {
    /// Keep a copy of the token per stripe of threads (see
    /// [`Published::striped`]).
    striped: bool,
    id: u64,
    generation: AtomicU64,
    current: ArcSwapOption<Snapshot>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Entry {
    id: u64,
    generation: u64,
    refresh_at: u64,
    token: AccessToken,
}

thread_local! {
    static COPIES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Per-thread copies kept at most; the oldest is dropped beyond this.
const MAX_COPIES: usize = 16;

impl Default for Published {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Published {
    /// Nothing published.
    pub fn new() -> Self {
        Published {
            striped: false,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            current: ArcSwapOption::empty(),
        }
    }

    /// Nothing published; each token published will be copied once per
    /// stripe of threads that reads it (one stripe per CPU, at most four;
    /// the copy is made on the stripe's first read), so that threads on
    /// different CPUs reading it through [`Published::fresh_shared`] bump
    /// different reference counts. For a key among many, whose reads the
    /// per-thread copies of [`Published::fresh`] would mostly miss: the
    /// copies cost memory per key (a token each), but no cache line is
    /// written by two CPUs on a read.
    pub fn striped() -> Self {
        let mut published = Published::new();
        published.striped = true;
        published
    }

    /// Publishes the core's cached token and its `refresh_at` (both from
    /// the core driver's `published()`), or withdraws it with `None`.
    pub fn publish(&self, token: Option<(&AccessToken, Timestamp)>) {
        let snapshot = token.map(|(token, refresh_at)| {
            Arc::new(Snapshot {
                token: token.clone(),
                refresh_at: refresh_at.as_unix_millis(),
                copies: Default::default(),
            })
        });
        self.current.store(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The published token if it is fresh now (coarse clock), else `None`
    /// (the caller takes the slow path through the core).
    #[inline]
    pub fn fresh(&self) -> Option<AccessToken> {
        let now = coarse_now().as_unix_millis();
        let generation = self.generation.load(Ordering::Acquire);
        // `try_with`: in another thread-local's destructor this thread's
        // copies may be gone already; the slow path then serves the read.
        let hit = COPIES
            .try_with(|copies| {
                let copies = copies.try_borrow().ok()?;
                copies
                    .iter()
                    .find(|e| e.id == self.id)
                    .filter(|e| e.generation == generation && now < e.refresh_at)
                    .map(|e| e.token.clone())
            })
            .ok()
            .flatten();
        match hit {
            Some(token) => Some(token),
            None => self.refill(now, generation),
        }
    }

    /// The published token if it is fresh now, cloned from the shared
    /// snapshot (one reference count bump, no allocation): the read of a
    /// client with many keys, whose per-thread copies would mostly miss.
    /// Striped ([`Published::striped`]): the copy of this thread's stripe.
    #[inline]
    pub fn fresh_shared(&self) -> Option<AccessToken> {
        let now = coarse_now().as_unix_millis();
        let guard = self.current.load();
        let snapshot = guard.as_ref()?;
        if now >= snapshot.refresh_at {
            return None;
        }
        let copy = match self.striped {
            true => (stripe() % stripes()).checked_sub(1).and_then(|n| {
                // Made on the first read from a stripe but the first (allocates once).
                let copies = snapshot
                    .copies
                    .get_or_init(|| (1..stripes()).map(|_| OnceLock::new()).collect());
                copies.get(n)
            }),
            false => None,
        };
        let token = match copy {
            // Made on this stripe's first read of this token (allocates once).
            Some(copy) => copy.get_or_init(|| detached(&snapshot.token)),
            None => &snapshot.token,
        };
        Some(token.clone())
    }

    #[cold]
    fn refill(&self, now: u64, generation: u64) -> Option<AccessToken> {
        let guard = self.current.load();
        let snapshot = guard.as_ref()?;
        if now >= snapshot.refresh_at {
            return None;
        }
        let copy = detached(&snapshot.token);
        // Without this thread's copies (destroyed, or busy), serve uncached.
        let _ = COPIES.try_with(|copies| {
            let Ok(mut copies) = copies.try_borrow_mut() else {
                return;
            };
            copies.retain(|e| e.id != self.id);
            if copies.len() >= MAX_COPIES {
                copies.remove(0);
            }
            copies.push(Entry {
                id: self.id,
                generation,
                refresh_at: snapshot.refresh_at,
                token: copy.clone(),
            });
        });
        Some(copy)
    }
}

/// A copy of `token` with its own allocation and reference count: cloning an
/// `AccessToken` bumps one shared count, which bounces between cores when
/// many threads clone the same token at once. Rebuilt through the public
/// builder (this runs once per thread and token, off the hot path).
fn detached(token: &AccessToken) -> AccessToken {
    let mut builder = AccessToken::builder(token.secret())
        .token_type(token.token_type())
        .received_at(token.received_at());
    if let Some(at) = token.expires_at() {
        builder = builder.expires_at(at);
    }
    if let Some(scope) = token.scope() {
        builder = builder.scope(scope);
    }
    if let Some(refresh) = token.refresh_token() {
        builder = builder.refresh_token(refresh);
    }
    // It was built once already, so it builds again; a shared clone otherwise.
    builder.build().unwrap_or_else(|_| token.clone())
}

impl Drop for Published {
    fn drop(&mut self) {
        // Free this thread's copy now; other threads' copies go with their
        // thread or when evicted (they are only small tokens).
        let _ = COPIES.try_with(|copies| {
            if let Ok(mut copies) = copies.try_borrow_mut() {
                copies.retain(|e| e.id != self.id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(value: &str, refresh_at: Timestamp) -> (AccessToken, Timestamp) {
        (AccessToken::builder(value).build().unwrap(), refresh_at)
    }

    #[test]
    fn serves_until_refresh_at_and_follows_republish() {
        let p = Published::new();
        assert!(p.fresh().is_none());
        let far = crate::now().saturating_add(std::time::Duration::from_secs(3600));
        let (a, at) = token("a", far);
        p.publish(Some((&a, at)));
        assert_eq!(p.fresh().unwrap().secret(), "a");
        assert_eq!(p.fresh().unwrap().secret(), "a");
        let (b, at) = token("b", far);
        p.publish(Some((&b, at)));
        assert_eq!(p.fresh().unwrap().secret(), "b");
        p.publish(None);
        assert!(p.fresh().is_none());
        let (c, at) = token("c", Timestamp::from_unix_secs(1));
        p.publish(Some((&c, at)));
        assert!(p.fresh().is_none(), "past refresh_at");
    }

    /// `fresh()` called from another thread-local's destructor, after this
    /// thread's copies were destroyed, serves the token rather than
    /// panicking (a panic in a TLS destructor aborts the process).
    #[test]
    fn fresh_works_in_another_thread_locals_destructor() {
        use std::sync::atomic::AtomicBool;

        struct ReadsOnDrop(Arc<Published>, Arc<AtomicBool>);
        impl Drop for ReadsOnDrop {
            fn drop(&mut self) {
                let served = self.0.fresh().is_some_and(|t| t.secret() == "a");
                self.1.store(served, Ordering::SeqCst);
            }
        }
        thread_local! {
            static GUARD: RefCell<Option<ReadsOnDrop>> = const { RefCell::new(None) };
        }

        let far = crate::now().saturating_add(std::time::Duration::from_secs(3600));
        let published = Arc::new(Published::new());
        let (a, at) = token("a", far);
        published.publish(Some((&a, at)));
        let served = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&published), Arc::clone(&served));
        std::thread::spawn(move || {
            // Registered before COPIES, so destroyed after it (destructors
            // run in reverse order of registration).
            GUARD.with(|guard| *guard.borrow_mut() = Some(ReadsOnDrop(Arc::clone(&p), s)));
            assert!(p.fresh().is_some());
        })
        .join()
        .unwrap();
        assert!(served.load(Ordering::SeqCst), "the destructor's read was not served");
    }

    /// Every thread reads the token published last from a striped
    /// `Published`, whichever stripe's copy it gets, until its refresh time.
    #[test]
    fn striped_reads_serve_the_published_token_on_every_thread() {
        let far = crate::now().saturating_add(std::time::Duration::from_secs(3600));
        let p = Arc::new(Published::striped());
        assert!(p.fresh_shared().is_none());
        for value in ["a", "b"] {
            let (t, at) = token(value, far);
            p.publish(Some((&t, at)));
            let threads: Vec<_> = (0..2 * MAX_STRIPES)
                .map(|_| {
                    let p = Arc::clone(&p);
                    std::thread::spawn(move || p.fresh_shared().map(|t| t.secret().to_owned()))
                })
                .collect();
            for thread in threads {
                assert_eq!(thread.join().unwrap().as_deref(), Some(value));
            }
            assert_eq!(p.fresh().unwrap().secret(), value);
        }
        let (c, at) = token("c", Timestamp::from_unix_secs(1));
        p.publish(Some((&c, at)));
        assert!(p.fresh_shared().is_none(), "past refresh_at");
        p.publish(None);
        assert!(p.fresh_shared().is_none());
    }

    #[test]
    fn two_clients_on_one_thread_stay_apart() {
        let far = crate::now().saturating_add(std::time::Duration::from_secs(3600));
        let (p, q) = (Published::new(), Published::new());
        let (a, _) = token("a", far);
        let (b, _) = token("b", far);
        p.publish(Some((&a, far)));
        q.publish(Some((&b, far)));
        for _ in 0..3 {
            assert_eq!(p.fresh().unwrap().secret(), "a");
            assert_eq!(q.fresh().unwrap().secret(), "b");
        }
    }
}
