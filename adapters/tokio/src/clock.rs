//! The clock the client reads: the wall clock, or one that follows tokio's (pausable) time.

use std::time::Duration;

use client_credentials::Timestamp;
use tokio::time::Instant;

/// Where `now` comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clock {
    /// The wall clock (`client_credentials_common::now`); the cached read uses
    /// the lock-free published token and its coarse clock.
    System,
    /// The wall clock when the client was built plus tokio's elapsed time, so
    /// a paused runtime (`start_paused`, `tokio::time::advance`) drives expiry
    /// and background refresh. The published token's coarse wall clock would
    /// disagree with it, so cached reads take the (never awaited) lock instead.
    Tokio { base: Timestamp, start: Instant },
}

impl Clock {
    pub(crate) fn tokio() -> Clock {
        Clock::Tokio {
            base: client_credentials_common::now(),
            start: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        match *self {
            Clock::System => client_credentials_common::now(),
            Clock::Tokio { base, start } => base.saturating_add(start.elapsed()),
        }
    }

    /// The tokio deadline at which this clock reads `at`.
    pub(crate) fn deadline(&self, at: Timestamp) -> Instant {
        let wait = at.as_unix_millis().saturating_sub(self.now().as_unix_millis());
        // Far-future times (a token without expiry) are capped: tokio timers
        // cover about two years, and waking early only means checking again.
        Instant::now() + Duration::from_millis(wait.min(30 * 24 * 3600 * 1000))
    }
}
