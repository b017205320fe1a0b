use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client_credentials::Timestamp;

/// The wall clock, precise: used wherever the core decides.
pub fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

/// The wall clock at tick granularity (a few milliseconds), for the cached-read
/// fast path: expiry decisions are made in seconds, and on Linux this read
/// (`CLOCK_REALTIME_COARSE`, through the vDSO) costs a fraction of a precise one.
/// Elsewhere it is the precise clock.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
pub fn coarse_now() -> Timestamp {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let millis = (t.tv_sec.max(0) as u64).saturating_mul(1000) + (t.tv_nsec.max(0) as u64) / 1_000_000;
    Timestamp::from_unix_millis(millis)
}

/// The wall clock (precise on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[inline]
pub fn coarse_now() -> Timestamp {
    now()
}

/// A source of `now` for a client: the wall clock by default; a
/// [`ManualClock`] (or any `Fn() -> Timestamp`) in tests that step time by
/// hand instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> Timestamp;
}

impl<F: Fn() -> Timestamp + Send + Sync + 'static> Clock for F {
    fn now(&self) -> Timestamp {
        self()
    }
}

/// A clock that moves only when told to: for tests of expiry, refresh and
/// back-off that should not sleep through them.
///
/// Clones share the time. A client on this clock serves cached reads through
/// its lock (the lock-free path reads the wall clock), and a caller waiting
/// for a back-off looks at the clock again every few milliseconds, so
/// [`ManualClock::advance`] takes effect at once.
///
/// ```
/// use client_credentials::Timestamp;
/// use client_credentials_common::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Timestamp::from_unix_secs(1_700_000_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), Timestamp::from_unix_secs(1_700_000_060));
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start.as_unix_millis())))
    }

    /// A clock reading the wall clock's time now (then moving only by hand).
    pub fn starting_now() -> Self {
        Self::new(now())
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(millis)));
    }

    /// Sets the time (it may go backwards, as a wall clock can).
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.as_unix_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&Clock::now(self)).finish()
    }
}

/// Which clock a driver reads, and how its waits map onto real time.
#[derive(Clone)]
pub enum TimeSource {
    /// The wall clock; cached reads take the lock-free path.
    System,
    /// A clock that moves with real (or the runtime's) time, e.g. tokio's
    /// pausable clock: waits last exactly until the time asked for.
    Follows(Arc<dyn Clock>),
    /// A clock moved by hand: waits are short and repeated, so a caller sees
    /// the clock move.
    Manual(Arc<dyn Clock>),
}

/// How long a caller waiting on a [`TimeSource::Manual`] clock sleeps before
/// it looks at the clock again.
const MANUAL_RECHECK: Duration = Duration::from_millis(2);

impl TimeSource {
    /// The time now.
    #[inline]
    pub fn now(&self) -> Timestamp {
        match self {
            TimeSource::System => now(),
            TimeSource::Follows(clock) | TimeSource::Manual(clock) => clock.now(),
        }
    }

    /// tokio's clock anchored at the wall clock now (so a paused runtime's
    /// `tokio::time::advance` moves it) when `enabled`, else the wall clock.
    #[cfg(feature = "tokio")]
    pub fn tokio(enabled: bool) -> TimeSource {
        if !enabled {
            return TimeSource::System;
        }
        let (base, start) = (now(), tokio::time::Instant::now());
        TimeSource::Follows(Arc::new(move || base.saturating_add(start.elapsed())))
    }

    /// How long to wait (in real or runtime time) for this clock to reach
    /// `until`; `None` means "until woken".
    pub fn wait_for(&self, until: Option<Timestamp>) -> Option<Duration> {
        let wait = until.map(|until| until.saturating_duration_since(self.now()));
        match self {
            TimeSource::Manual(_) => Some(wait.map_or(MANUAL_RECHECK, |w| w.min(MANUAL_RECHECK))),
            _ => wait,
        }
    }
}

impl fmt::Debug for TimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeSource::System => "System",
            TimeSource::Follows(_) => "Follows",
            TimeSource::Manual(_) => "Manual",
        })
    }
}
