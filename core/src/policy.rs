//! Timing decisions: when to refresh, how long to back off, what `Retry-After` means.

use std::time::Duration;

use crate::http_date::parse_http_date;
use crate::time::{duration_millis, Timestamp};

/// How a failing provider is retried and backed off.
///
/// A round starts when a token is needed. Transport errors, HTTP 5xx, 429 and
/// 408 are retried within the round, up to `max_attempts` requests; OAuth
/// errors such as `invalid_client` end the round at once. Callers wait through
/// the retries of the first failing round only: once a round has failed, the
/// retries of later rounds wait escalated steps, and callers asking meanwhile
/// get the latest error at once (as in a cool-down) instead of waiting up to
/// a minute. Every request
/// answered without a token counts, across rounds, until a token arrives.
/// Once one of them has failed, the wait before the next request (a retry, a
/// fallback such as the RFC 8414 location, or a new round after the
/// cool-down) is the back-off step for that count — `initial_backoff`
/// doubling up to `max_backoff` — and at least as long as the failures have
/// lasted so far (up to `max_backoff`), plus up to 10 % jitter on top (never
/// less, so the step is a floor and clients started together spread out). A
/// `Retry-After` header is a floor too, capped at `max_retry_after`.
///
/// A resource that rejects the tokens is backed off the same way: a token
/// rejected on probation (see [`TokenSource::invalidate`](crate::TokenSource::invalidate))
/// fails the round, and the count goes on across the tokens fetched.
///
/// Nothing happens because time passes: a request only goes out when a
/// caller (or a background refresher) polls after the wait. With the defaults
/// a provider that fails everything gets at most 10 requests in the minute
/// after the first (7 with continuous callers: 0, 0.5, 1.5, 3.5, 7.5, 15.5,
/// 31.5 s) and at most 2 in any later minute, however many callers poll and
/// however late they come; the property tests in `core/tests/properties.rs`
/// check both bounds over arbitrary failure sequences and poll schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Requests per round, the first included. Default 3.
    pub max_attempts: u32,
    /// The first back-off step. Default 0.5 s.
    pub initial_backoff: Duration,
    /// The largest back-off step. Default 30 s. A `Retry-After` longer than
    /// this ends the round at once (callers get the error instead of waiting)
    /// and the next round starts after the time the server asked for.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured. Default 5 minutes: one response
    /// cannot lock the client out for longer, whatever it says; longer values
    /// are capped and reported in the event (`retry_after_capped`) and by
    /// the driver ([`Report::RetryAfterCapped`](crate::driver::Report::RetryAfterCapped)).
    pub max_retry_after: Duration,
}

/// The default cap on `Retry-After`.
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// A policy with these settings (and the default `Retry-After` cap).
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            initial_backoff,
            max_backoff,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// The same policy with another cap on `Retry-After`.
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// The un-jittered back-off step after `failures` failed attempts (1-based).
    pub fn step(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(63);
        let millis = duration_millis(self.initial_backoff).saturating_mul(1u64 << exponent);
        Duration::from_millis(millis).min(self.max_backoff)
    }
}

/// A small deterministic generator (SplitMix64) for jitter. The seed is given
/// at construction, so a test replays the same delays.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter { state: seed }
    }

    /// A value uniform in `[0, 1)`.
    pub(crate) fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The back-off after `failures` failed attempts: the step, or
    /// `retry_after` when the server asked for longer, plus up to 10 % on top.
    /// Jitter only ever adds, so the step is a floor and the rate bounds of
    /// [`RetryPolicy`] hold for every seed.
    pub(crate) fn backoff(&mut self, policy: &RetryPolicy, failures: u32, retry_after: Option<Duration>) -> Duration {
        let base = policy.step(failures).max(retry_after.unwrap_or(Duration::ZERO));
        let extra = duration_millis(base) as f64 * 0.1 * self.next_unit();
        base.saturating_add(Duration::from_millis(extra as u64))
    }
}

/// A rejection back-off one client shares with the others of its fleet
/// through a store: the resource servers rejected the tokens fetched since
/// the streak began, so no token request goes out before `until`.
///
/// A client whose resource rejected a token on probation (see
/// [`TokenSource::invalidate`](crate::TokenSource::invalidate)) hands it to
/// its store with the eviction; a fleet store answers it to the others'
/// fleet turns while it holds, and they fail the round at once with
/// [`Error::TokenRejected`](crate::Error::TokenRejected) instead of
/// fetching. What it can impose is capped by the receiver's own
/// [`RetryPolicy`]: at most `max_backoff` from when it is read, so a
/// forged or replayed value delays fetches by no more than that.
///
/// ```
/// use client_credentials::{SharedBackoff, Timestamp};
///
/// let backoff = SharedBackoff::new(Timestamp::from_unix_secs(1_030), 4);
/// assert!(backoff.holds(Timestamp::from_unix_secs(1_000)));
/// assert!(!backoff.holds(Timestamp::from_unix_secs(1_030)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedBackoff {
    /// No token request goes out before this.
    pub until: Timestamp,
    /// How many requests of the streak ended without a usable token: the
    /// receiver's back-off escalates from at least this count.
    pub failures: u32,
}

impl SharedBackoff {
    /// A back-off until `until`, after `failures` failures.
    pub fn new(until: Timestamp, failures: u32) -> Self {
        SharedBackoff { until, failures }
    }

    /// Whether it still holds requests back at `now`.
    pub fn holds(&self, now: Timestamp) -> bool {
        now < self.until
    }
}

/// When a token received with this lifetime should be refreshed:
/// `expires_at - min(margin, lifetime / 2)`.
///
/// The `lifetime / 2` bound keeps a token whose lifetime is shorter than the
/// margin from being refreshed on every call: it is used for at least half
/// its life.
///
/// ```
/// use client_credentials::{refresh_time, Timestamp};
/// use std::time::Duration;
///
/// let received = Timestamp::from_unix_secs(1000);
/// // A one-hour token with the default 300 s margin: refreshed at 55 minutes.
/// let expires = Timestamp::from_unix_secs(1000 + 3600);
/// assert_eq!(refresh_time(received, expires, Duration::from_secs(300)), Timestamp::from_unix_secs(1000 + 3300));
/// // A 60 s token: refreshed at half-life, not immediately.
/// let expires = Timestamp::from_unix_secs(1060);
/// assert_eq!(refresh_time(received, expires, Duration::from_secs(300)), Timestamp::from_unix_secs(1030));
/// ```
pub fn refresh_time(received_at: Timestamp, expires_at: Timestamp, margin: Duration) -> Timestamp {
    let lifetime = expires_at.saturating_duration_since(received_at);
    expires_at.saturating_sub(margin.min(lifetime / 2))
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an
/// HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms).
/// Returns how long to wait from `now` (zero for a date in the past), or
/// `None` when the value is neither.
pub(crate) fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    // Only HTTP's optional whitespace (SP, HTAB) surrounds a field value.
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly long delays rather than failing: the server meant "a long time".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some(Timestamp::from_unix_secs(at).saturating_duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = Timestamp::from_unix_secs(784_111_777);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("-5", now), None);
        // Only SP and HTAB are HTTP whitespace; a no-break space is not.
        assert_eq!(parse_retry_after("\t3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("\u{a0}\u{a0}1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_on_top() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.step(1), Duration::from_millis(500));
        assert_eq!(policy.step(2), Duration::from_secs(1));
        assert_eq!(policy.step(8), Duration::from_secs(30));
        assert_eq!(policy.step(1000), Duration::from_secs(30));
        let mut jitter = Jitter::new(7);
        for failures in 1..10 {
            let d = jitter.backoff(&policy, failures, None);
            assert!(
                d >= policy.step(failures) && d <= policy.step(failures) * 11 / 10,
                "{d:?}"
            );
        }
        let d = jitter.backoff(&policy, 1, Some(Duration::from_secs(10)));
        assert!(d >= Duration::from_secs(10) && d <= Duration::from_secs(11), "{d:?}");
    }
}
