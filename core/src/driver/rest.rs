//! An idle driver at rest: [`Driver::rest`] keeps only what an idle,
//! healthy key must, [`Resting::wake`] gives the same driver back.

use std::fmt;

use crate::discovery::ProviderMetadata;
use crate::machine::RestingSource;
use crate::time::Timestamp;
use crate::token::AccessToken;

use super::store::Queue;
use super::{Background, Call, Caller, Driver, Hooks, Load, Step};

/// A [`Driver`] at rest: what an idle, healthy driver must keep, in a
/// fraction of its room (a client with many keys keeps one per idle key).
///
/// It keeps the configuration, the cached token with its refresh and
/// expiry times, the counters a held [`Call`] or a late result relies on
/// (round, request and flight numbers), the jitter and `jti` state (a fixed
/// seed never repeats a `jti`), whether there is a store and a provider,
/// and, boxed apart, what a key rarely has (a refresh token, the discovery
/// and RFC 9728 state, the assertions read, DPoP nonces). Everything else
/// is at its `new()` value whenever a driver may rest.
///
/// It answers the questions of an idle key without waking: its
/// [token](Resting::token), [what to publish](Resting::published),
/// [metadata](Resting::metadata), [when to refresh](Resting::background),
/// and a [`Call`] while its token is fresh ([`Resting::step`]). Anything
/// else needs the driver back: [`Resting::wake`], which behaves from then on
/// exactly as the driver that rested would have (the same steps, tasks and
/// requests, byte for byte).
///
/// ```
/// use client_credentials::driver::{Call, Driver, Step};
/// use client_credentials::{AccessToken, Config, Timestamp, TokenSource};
///
/// let config = Config::builder("my-client", "my-secret")
///     .token_endpoint("https://auth.example.com/oauth2/token")
///     .build()?;
/// let now = Timestamp::from_unix_secs(1_700_000_000);
/// let token = AccessToken::builder("abc")
///     .expires_at(now.saturating_add(std::time::Duration::from_secs(3600)))
///     .received_at(now)
///     .build()?;
/// let driver = Driver::new(TokenSource::with_token(config, token, [7; 32]));
/// let Ok(resting) = Box::new(driver).rest() else { unreachable!("an idle driver rests") };
/// // A call while the token is fresh is answered at rest.
/// match resting.step(now, &mut Call::token()) {
///     Some(Step::Ready(token)) => assert_eq!(token.secret(), "abc"),
///     _ => unreachable!("a fresh token is served at rest"),
/// }
/// // Anything else: wake it, and step the driver.
/// let mut driver = resting.wake();
/// assert!(matches!(driver.step(now, &mut Call::token()), Step::Ready(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Resting {
    source: RestingSource,
    /// The flight numbers handed out: a result of a flight cut short (by a
    /// sign-out) must never match a later one.
    flights: u64,
    /// With a store: how many writes were recorded (all of them landed).
    store: Option<u64>,
    provider: bool,
}

impl Driver {
    /// Whether nothing is under way and nothing but what [`Resting`] keeps
    /// matters: what [`Driver::rest`] requires.
    ///
    /// The driver: no flight, the store loaded and its writes all landed
    /// (none pending, no caller applying them), no round's hooks asked, no
    /// assertion being read, no request's attempts counted. The core: no
    /// request in flight or being signed, no round with failed attempts
    /// running and none failed (no error to hand out), no failing streak or
    /// back-off, no probation after a rejected token, no capped
    /// `Retry-After`.
    pub fn can_rest(&self) -> bool {
        self.flight.is_none()
            && self.load == Load::Done
            && self.store.as_ref().is_none_or(Queue::is_settled)
            && self.hooks == Hooks::NoneAsked
            && !self.reading_assertion
            && self.attempts.is_none()
            && self.source.can_rest()
    }

    /// The driver at rest, if it [can rest](Driver::can_rest); else the
    /// driver back, unchanged.
    ///
    /// Boxed both ways: a live driver is kept boxed where many are kept
    /// (one per key), so a driver that cannot rest goes back where it was
    /// without moving.
    pub fn rest(self: Box<Self>) -> Result<Resting, Box<Driver>> {
        if !self.can_rest() {
            return Err(self);
        }
        let Driver {
            source,
            store,
            provider,
            flights,
            ..
        } = *self;
        let store = store.map(|queue| queue.recorded());
        match source.rest() {
            Ok(source) => Ok(Resting {
                source,
                flights,
                store,
                provider,
            }),
            // Not reached: `can_rest` asked the source first. Rebuilt as it was.
            Err(source) => Err(Box::new(Resting::live(source, flights, store, provider))),
        }
    }
}

impl Resting {
    /// The driver that rested, as it was: from here on it behaves exactly as
    /// if it had never rested.
    pub fn wake(self) -> Driver {
        Resting::live(self.source.wake(), self.flights, self.store, self.provider)
    }

    fn live(source: crate::TokenSource, flights: u64, store: Option<u64>, provider: bool) -> Driver {
        let mut driver = Driver::new(source);
        driver.flights = flights;
        driver.provider = provider;
        driver.store = store.map(Queue::settled_at);
        driver
    }

    /// The cached token, fresh or not (as [`Driver::token`]).
    pub fn token(&self) -> Option<&AccessToken> {
        self.source.token()
    }

    /// The provider metadata in use, once discovered (as [`Driver::metadata`]).
    pub fn metadata(&self) -> Option<&ProviderMetadata> {
        self.source.metadata()
    }

    /// The cached token and its refresh time (as [`Driver::published`]).
    pub fn published(&self) -> Option<(&AccessToken, Timestamp)> {
        self.source.token().zip(self.source.refresh_at())
    }

    /// For a background refresh task: refresh now, or sleep (as
    /// [`Driver::background`]: at rest no flight runs and no back-off holds).
    pub fn background(&self, now: Timestamp) -> Background {
        match self.source.refresh_at() {
            Some(at) if at != Timestamp::MAX => match at > now {
                true => Background::Sleep(Some(at)),
                false => Background::Refresh,
            },
            _ => Background::Sleep(None),
        }
    }

    /// [`Driver::step`] without waking, when the answer needs nothing the
    /// rest dropped: a [`Call`] for a usable token while the cached one is
    /// fresh gets it, exactly as the live driver's `Step::Ready`. `None`:
    /// [wake](Resting::wake) the driver and step it.
    pub fn step<C: Caller>(&self, now: Timestamp, call: &mut C) -> Option<Step<C::Output>> {
        call.step_resting(self, now)
    }

    /// A plain call's answer at rest: the fresh token (a forced refresh's
    /// call, or a token that is not fresh, needs the driver).
    pub(super) fn step_call(&self, now: Timestamp, call: &Call) -> Option<Step> {
        if call.refresh.is_some() {
            return None;
        }
        self.source.fresh(now).map(|token| Step::Ready(token.clone()))
    }
}

impl fmt::Debug for Resting {
    /// Whether a token is cached and for how long it is fresh; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resting")
            .field("token", &self.source.token())
            .field("refresh_at", &self.source.refresh_at())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Outcome, Task};
    use crate::{Config, TokenSource};

    const NOW: u64 = 1_700_000_000;

    fn driver() -> Driver {
        let config = Config::builder("client", "secret")
            .token_endpoint("https://auth.example/token")
            .build()
            .expect("valid config");
        Driver::new(TokenSource::new(config, [5; 32]))
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_secs(NOW)
    }

    fn refused(change: impl FnOnce(&mut Driver)) {
        let mut driver = driver();
        assert!(driver.can_rest(), "a new driver rests");
        change(&mut driver);
        assert!(!driver.can_rest());
        assert!(Box::new(driver).rest().is_err());
    }

    #[test]
    fn a_resting_driver_is_small() {
        let size = std::mem::size_of::<Resting>();
        println!("Resting: {size} bytes; Driver: {} bytes", std::mem::size_of::<Driver>());
        assert!(size <= 216, "{size} bytes");
    }

    #[test]
    fn a_driver_that_fetched_a_token_rests_without_a_boxed_part_and_serves_it() {
        let mut driver = driver();
        let mut call = Call::token();
        let Step::Work(work) = driver.step(now(), &mut call) else {
            panic!("a request is due");
        };
        let response = http::Response::builder()
            .status(200)
            .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec())
            .expect("a response");
        let mut next = driver.handle(now(), work.ticket, Outcome::Response(response));
        while let Some(work) = next {
            next = driver.handle(now(), work.ticket, Outcome::Done);
        }
        let resting = Box::new(driver).rest().expect("a healthy driver rests");
        assert!(!resting.source.has_rare(), "nothing rare to keep");
        let Some(Step::Ready(token)) = resting.step(now(), &mut call) else {
            panic!("served at rest");
        };
        assert_eq!(token.secret(), "abc");
    }

    #[test]
    fn a_flight_refuses_to_rest() {
        refused(|driver| driver.flight = Some(1));
    }

    #[test]
    fn a_store_not_loaded_or_being_loaded_refuses_to_rest() {
        refused(|driver| driver.load = Load::Due);
        refused(|driver| driver.load = Load::Running);
    }

    #[test]
    fn a_store_write_pending_or_being_applied_refuses_to_rest() {
        refused(|driver| {
            let mut queue = Queue::default();
            queue.record(super::super::store::Change::Delete);
            driver.store = Some(queue);
        });
        refused(|driver| {
            let mut queue = Queue::default();
            queue.record(super::super::store::Change::Delete);
            let _ = queue.take_turn();
            driver.store = Some(queue);
        });
    }

    #[test]
    fn a_rounds_hooks_refuse_to_rest() {
        refused(|driver| driver.hooks = Hooks::ProviderAsked);
        refused(|driver| driver.hooks = Hooks::FleetTurnTaken);
    }

    #[test]
    fn an_assertion_being_read_refuses_to_rest() {
        refused(|driver| driver.reading_assertion = true);
    }

    #[test]
    fn a_rounds_attempts_refuse_to_rest() {
        refused(|driver| driver.attempts = Some((crate::RequestKind::Token, 1)));
    }

    #[test]
    fn the_cores_state_refuses_to_rest() {
        // A request in flight (the core's phase): see the core's own tests
        // for each of its reasons.
        refused(|driver| {
            let mut call = Call::token();
            let Step::Work(work) = driver.step(now(), &mut call) else {
                panic!("a request is due");
            };
            assert!(matches!(work.task, Task::Send(..)));
            // The flight is over for the driver, not for the core.
            driver.flight = None;
            driver.attempts = None;
        });
    }

    #[test]
    fn a_store_whose_writes_landed_rests_and_wakes_with_its_count() {
        let mut driver = driver().with_store();
        let mut call = Call::token();
        let Step::Work(load) = driver.step(now(), &mut call) else {
            panic!("the store is loaded first");
        };
        assert!(!driver.can_rest(), "loading");
        assert!(driver.handle(now(), load.ticket, Outcome::Loaded(None)).is_none());
        assert!(driver.can_rest());
        let resting = Box::new(driver).rest().expect("rests");
        assert_eq!(resting.store, Some(0));
        assert!(resting.step(now(), &mut Call::token()).is_none(), "no token: wake");
        assert!(matches!(resting.background(now()), Background::Sleep(None)));
        let mut driver = resting.wake();
        assert!(driver.store.is_some() && driver.load == Load::Done);
        // Woken, it goes on: the round asks the fleet first.
        let Step::Work(work) = driver.step(now(), &mut call) else {
            panic!("a request is due");
        };
        assert!(matches!(work.task, Task::TakeFleetTurn(_)));
    }
}
