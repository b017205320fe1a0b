//! Wall-clock instants passed into the core by the caller.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock instant: milliseconds since the Unix epoch.
///
/// The core never reads a clock. Every method that decides something takes a
/// `now: Timestamp` supplied by the caller, which is what makes the state
/// machine deterministic and testable with simulated time.
///
/// ```
/// use client_credentials::Timestamp;
/// use std::time::Duration;
///
/// let t = Timestamp::from_unix_secs(1_700_000_000);
/// assert_eq!(t.as_unix_millis(), 1_700_000_000_000);
/// assert_eq!(t.saturating_add(Duration::from_millis(5)).as_unix_millis(), 1_700_000_000_005);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);
    /// The largest representable instant; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// An instant `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// An instant `secs` seconds after the Unix epoch (saturating).
    pub const fn from_unix_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn as_unix_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(duration)))
    }

    /// `self - duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(duration)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Whole milliseconds of a duration, saturating at `u64::MAX`.
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl From<SystemTime> for Timestamp {
    /// Converts a wall-clock reading; instants before the epoch become the epoch.
    fn from(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp(duration_millis(since)),
            Err(_) => Timestamp(0),
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(time: Timestamp) -> Self {
        UNIX_EPOCH
            .checked_add(Duration::from_millis(time.0))
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(i32::MAX as u64))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}.{:03})", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for Timestamp {
    /// Seconds since the epoch with millisecond precision, e.g. `1700000000.250`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}
