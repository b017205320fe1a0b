//! A [`TokenSource`] at rest: what an idle, healthy source must keep, in as
//! little room as it takes, for the driver's [`Resting`](crate::driver::Resting).
//!
//! Every field of [`TokenSource`] is either required at its `new()` value
//! for the source to rest (nothing under way, no failure to remember), or
//! kept: inline when every source has one (the cached token, the counters,
//! the `jti` and jitter state), else in one boxed [`Rare`] that a plain
//! healthy source does without.

use std::num::NonZeroU64;

use crate::assertion::{AssertionRole, JtiSource};
use crate::config::{Config, Issuer};
use crate::discovery::ProviderMetadata;
use crate::dpop::DpopNonces;
use crate::policy::Jitter;
use crate::redact::Credentials;
use crate::resource::ResourceMetadata;
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::token::AccessToken;

use super::{Cached, Discovered, Phase, ResourceHint, Round, TokenSource};

/// An idle [`TokenSource`], shrunk: see the [module docs](self).
pub(crate) struct RestingSource {
    config: Config,
    cached: Option<Cached>,
    /// Set after every token (to the time it came): a clock that steps back
    /// before it still holds the next request back, as in the live source.
    not_before: Option<Timestamp>,
    /// When the last request answered was sent: a failure without a request
    /// (an assertion that expired) counts its streak from there.
    answered_sent_at: Option<Timestamp>,
    rounds: Rounds,
    /// The round was left open by a token that came from a custom provider
    /// or the fleet instead of its request (nothing failed in it): the next
    /// request goes on with it, as in the live source.
    round_open: bool,
    next_id: u64,
    jitter: Jitter,
    /// With its counter: a fixed seed never repeats a `jti` across rests.
    jti: JtiSource,
    /// With discovery: the metadata in use (inline, not in [`Rare`]: every
    /// key of a discovering client has it, shared with its siblings).
    discovered: Option<std::sync::Arc<Discovered>>,
    /// `None` for a plain healthy source.
    rare: Option<Box<Rare>>,
}

/// The round numbers a held [`RefreshTicket`](super::RefreshTicket) is
/// judged against. Rounds are numbered from 1, so the last failed and good
/// ones fit a `NonZeroU64` (8 bytes, where an `Option<u64>` takes 16).
#[derive(Clone, Copy)]
struct Rounds {
    started: u64,
    last_failed: Option<NonZeroU64>,
    last_good: Option<NonZeroU64>,
}

/// What a source rarely has, kept when it rests: a refresh token, the
/// discovery and RFC 9728 state, the assertions read, the DPoP nonces.
struct Rare {
    refresh_token: Option<Secret>,
    metadata_stale: bool,
    location: usize,
    rediscovered: bool,
    resource_metadata: Option<std::sync::Arc<ResourceMetadata>>,
    authorization_server: Option<Box<Issuer>>,
    resource_hint: Option<Box<ResourceHint>>,
    resource_read: bool,
    trusted_authorization_server: Option<String>,
    assertions: Vec<(AssertionRole, Result<zeroize::Zeroizing<String>, String>)>,
    dpop_nonces: DpopNonces,
    nonce_retried: bool,
}

impl Rare {
    /// Whether it holds nothing a new source would not have.
    fn is_empty(&self) -> bool {
        self.refresh_token.is_none()
            && !self.metadata_stale
            && self.location == 0
            && !self.rediscovered
            && self.resource_metadata.is_none()
            && self.authorization_server.is_none()
            && self.resource_hint.is_none()
            && !self.resource_read
            && self.trusted_authorization_server.is_none()
            && self.assertions.is_empty()
            && self.dpop_nonces.is_empty()
            && !self.nonce_retried
    }
}

/// A round number of the live source (`Some(0)` never occurs: rounds are
/// numbered from 1), or `Err` for one that does not fit.
fn round_number(round: Option<u64>) -> Result<Option<NonZeroU64>, ()> {
    match round {
        None => Ok(None),
        Some(number) => NonZeroU64::new(number).map(Some).ok_or(()),
    }
}

impl TokenSource {
    /// Whether the source is idle and remembers no failure: what
    /// [`TokenSource::rest`] requires, field by field.
    pub(crate) fn can_rest(&self) -> bool {
        // Nothing under way: no request in flight or being signed, no
        // round with attempts or an error running, none failed whose error
        // callers are still handed.
        matches!(self.phase, Phase::Idle)
            && matches!(
                self.round,
                Round::Done
                    | Round::Running {
                        attempts: 0,
                        latest_error: None
                    }
            )
            // No failing streak, no probation, no capped `Retry-After`.
            && self.failures == 0
            && self.failing_since.is_none()
            && self.rejections.is_none()
            && self.retry_after_capped.is_none()
            && round_number(self.last_failed_round).is_ok()
            && round_number(self.last_good_round).is_ok()
    }

    /// The source at rest, or itself when it cannot rest (see
    /// [`TokenSource::can_rest`]).
    ///
    /// The credentials of the last request sent are dropped (zeroized):
    /// they only redact the answer to a request in flight, and the next
    /// request sent carries its own.
    // The source comes back whole when it cannot rest: moved once, only
    // when the caller did not ask `can_rest` first (the driver does).
    #[allow(clippy::result_large_err)]
    pub(crate) fn rest(self) -> Result<RestingSource, TokenSource> {
        let (Ok(last_failed), Ok(last_good)) =
            (round_number(self.last_failed_round), round_number(self.last_good_round))
        else {
            return Err(self);
        };
        if !self.can_rest() {
            return Err(self);
        }
        let rare = Rare {
            refresh_token: self.refresh_token,
            metadata_stale: self.metadata_stale,
            location: self.location,
            rediscovered: self.rediscovered,
            resource_metadata: self.resource_metadata,
            authorization_server: self.authorization_server,
            resource_hint: self.resource_hint,
            resource_read: self.resource_read,
            trusted_authorization_server: self.trusted_authorization_server,
            assertions: self.assertions,
            dpop_nonces: self.dpop_nonces,
            nonce_retried: self.nonce_retried,
        };
        Ok(RestingSource {
            config: self.config,
            cached: self.cached,
            not_before: self.not_before,
            answered_sent_at: self.answered_sent_at,
            rounds: Rounds {
                started: self.rounds_started,
                last_failed,
                last_good,
            },
            round_open: matches!(self.round, Round::Running { .. }),
            next_id: self.next_id,
            jitter: self.jitter,
            jti: self.jti,
            discovered: self.discovered,
            rare: (!rare.is_empty()).then(|| Box::new(rare)),
        })
    }
}

impl RestingSource {
    /// The source that rested, as it was.
    pub(crate) fn wake(self) -> TokenSource {
        let rare = self.rare.map(|rare| *rare);
        let mut source = TokenSource {
            config: self.config,
            cached: self.cached,
            refresh_token: None,
            discovered: self.discovered,
            metadata_stale: false,
            location: 0,
            rediscovered: false,
            resource_metadata: None,
            authorization_server: None,
            resource_hint: None,
            resource_read: false,
            trusted_authorization_server: None,
            phase: Phase::Idle,
            round: match self.round_open {
                true => Round::Running {
                    attempts: 0,
                    latest_error: None,
                },
                false => Round::Done,
            },
            not_before: self.not_before,
            failures: 0,
            failing_since: None,
            answered_sent_at: self.answered_sent_at,
            retry_after_capped: None,
            rounds_started: self.rounds.started,
            last_failed_round: self.rounds.last_failed.map(NonZeroU64::get),
            last_good_round: self.rounds.last_good.map(NonZeroU64::get),
            next_id: self.next_id,
            jitter: self.jitter,
            jti: self.jti,
            assertions: Vec::new(),
            dpop_nonces: DpopNonces::default(),
            rejections: None,
            nonce_retried: false,
            sent_credentials: Credentials::default(),
        };
        if let Some(rare) = rare {
            source.refresh_token = rare.refresh_token;
            source.metadata_stale = rare.metadata_stale;
            source.location = rare.location;
            source.rediscovered = rare.rediscovered;
            source.resource_metadata = rare.resource_metadata;
            source.authorization_server = rare.authorization_server;
            source.resource_hint = rare.resource_hint;
            source.resource_read = rare.resource_read;
            source.trusted_authorization_server = rare.trusted_authorization_server;
            source.assertions = rare.assertions;
            source.dpop_nonces = rare.dpop_nonces;
            source.nonce_retried = rare.nonce_retried;
        }
        source
    }

    /// As [`TokenSource::token`].
    pub(crate) fn token(&self) -> Option<&AccessToken> {
        self.cached.as_ref().map(|c| &c.token)
    }

    /// As [`TokenSource::metadata`].
    pub(crate) fn metadata(&self) -> Option<&ProviderMetadata> {
        let discovered = self.discovered.as_ref()?;
        Some(&discovered.metadata)
    }

    /// As [`TokenSource::refresh_at`].
    pub(crate) fn refresh_at(&self) -> Option<Timestamp> {
        let cached = self.cached.as_ref().filter(|c| !c.forced)?;
        Some(cached.expiry.map_or(Timestamp::MAX, |e| e.refresh_at))
    }

    /// The token [`TokenSource::next`] returns as `Ready` at `now` without
    /// changing anything: the cached one while it is fresh (and usable);
    /// `None` when the live source has more to decide.
    pub(crate) fn fresh(&self, now: Timestamp) -> Option<&AccessToken> {
        // A resting source runs no round and has no failure: a fresh token
        // is all `next` looks at (no request is begun while it is fresh,
        // and `held` serves it while it is usable).
        self.cached
            .as_ref()
            .filter(|c| c.is_fresh(now) && c.is_usable(now))
            .map(|c| &c.token)
    }

    /// Whether a boxed rarely-set part is kept (for tests and sizes).
    #[cfg(test)]
    pub(crate) fn has_rare(&self) -> bool {
        self.rare.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::machine::Streak;

    fn source() -> TokenSource {
        let config = Config::builder("client", "secret")
            .token_endpoint("https://auth.example/token")
            .build()
            .expect("valid config");
        TokenSource::new(config, [3; 32])
    }

    fn refused(change: impl FnOnce(&mut TokenSource)) {
        let mut source = source();
        assert!(source.can_rest(), "a new source rests");
        change(&mut source);
        assert!(!source.can_rest());
        assert!(source.rest().is_err());
    }

    #[test]
    fn a_new_source_rests_without_a_boxed_part_and_wakes_as_it_was() {
        let Ok(resting) = source().rest() else {
            panic!("a new source rests")
        };
        assert!(!resting.has_rare());
        let source = resting.wake();
        assert_eq!(source.next_id, 1);
        assert!(source.can_rest());
        println!("RestingSource: {} bytes", std::mem::size_of::<RestingSource>());
    }

    #[test]
    fn a_source_with_something_rare_keeps_it_boxed() {
        let mut source = source();
        source.remember_dpop_nonce("https://api.example/x", "n-1");
        source.location = 1;
        let Ok(resting) = source.rest() else { panic!("rests") };
        assert!(resting.has_rare());
        let source = resting.wake();
        assert_eq!(source.dpop_nonces.get("https://api.example/y"), Some("n-1"));
        assert_eq!(source.location, 1);
    }

    #[test]
    fn a_request_in_flight_or_being_signed_refuses_to_rest() {
        refused(|source| {
            source.phase = Phase::InFlight {
                id: crate::id::RequestId::new(1),
                sent: Box::new(super::super::Sent::Revocation),
                sent_at: Timestamp::UNIX_EPOCH,
            }
        });
    }

    #[test]
    fn a_round_running_or_failed_refuses_to_rest() {
        refused(|source| {
            source.round = Round::Running {
                attempts: 1,
                latest_error: None,
            }
        });
        refused(|source| {
            source.round = Round::Running {
                attempts: 0,
                latest_error: Some(Box::new(Error::TokenRejected)),
            }
        });
        refused(|source| {
            source.round = Round::Failed {
                error: Box::new(Error::TokenRejected),
            }
        });
    }

    #[test]
    fn a_failing_streak_refuses_to_rest() {
        refused(|source| source.failures = 1);
        refused(|source| source.failing_since = Some(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn probation_refuses_to_rest() {
        refused(|source| {
            source.rejections = Some(Streak {
                failures: 1,
                since: Timestamp::UNIX_EPOCH,
            })
        });
    }

    #[test]
    fn a_capped_retry_after_refuses_to_rest() {
        refused(|source| source.retry_after_capped = Some(std::time::Duration::from_secs(1)));
    }

    #[test]
    fn a_round_left_open_by_a_provided_token_rests_and_stays_open() {
        let mut source = source();
        source.round = Round::Running {
            attempts: 0,
            latest_error: None,
        };
        source.rounds_started = 1;
        source.sent_credentials.add("a-credential-long-enough");
        let Ok(resting) = source.rest() else { panic!("rests") };
        let source = resting.wake();
        assert!(matches!(
            source.round,
            Round::Running {
                attempts: 0,
                latest_error: None
            }
        ));
        assert_eq!(source.rounds_started, 1);
        assert!(source.sent_credentials == *Credentials::NONE, "dropped at rest");
    }
}
