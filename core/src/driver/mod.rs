//! The client around a [`TokenSource`], as a state machine an adapter (or
//! an embedder) loops around: single flight, which caller performs the I/O
//! and which waits, the store's load and ordered writes, the custom
//! provider's round, the fleet turn, re-reading the assertion file,
//! sign-out, background-refresh timing.
//!
//! Like the core, the driver does no I/O, takes no lock, reads no clock and
//! runs no user code: it says what to do next and takes the result back.
//! Each caller holds a [`Call`] (or a [`Settle`], to apply the store's
//! writes) and asks [`Driver::step`] what to do: return a token, return an
//! error, wait (until a time, or until woken),
//! or perform a [`Work`]. A `Work` is one [`Task`] — send a request, load or
//! write the store, ask the provider, take the fleet turn, read the
//! assertion file, run a callback — whose result goes back through
//! [`Driver::handle`], which hands out the next task of the same job or
//! `None` once it is over: then wake every waiting caller. A `Work` dropped
//! unfinished (the task panicked, it was cancelled) goes back through
//! [`Driver::abandon`], so the others never wait for a result that will
//! not come.
//!
//! ```
//! use client_credentials::driver::{Call, Driver, Outcome, Step, Task};
//! use client_credentials::{Config, Timestamp, TokenSource};
//!
//! # fn send(_: http::Request<Vec<u8>>) -> http::Response<Vec<u8>> {
//! #     http::Response::builder().status(200)
//! #         .body(br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#.to_vec()).unwrap()
//! # }
//! let config = Config::builder("my-client", "my-secret")
//!     .token_endpoint("https://auth.example.com/oauth2/token")
//!     .build()?;
//! let now = Timestamp::from_unix_secs(1_700_000_000);
//! let mut driver = Driver::new(TokenSource::new(config, [7; 32]));
//! let mut call = Call::token();
//! let token = loop {
//!     match driver.step(now, &mut call) {
//!         Step::Ready(token) => break token,
//!         Step::Failed(error) => return Err(error.into()),
//!         Step::Wait { .. } => { /* park until woken or the time; then step again */ }
//!         Step::Work(mut work) => loop {
//!             // Outside the lock, if the driver is shared.
//!             let outcome = match work.task {
//!                 Task::Send(outgoing) => Outcome::Response(send(outgoing.request)),
//!                 _ => Outcome::Done,
//!             };
//!             match driver.handle(now, work.ticket, outcome) {
//!                 Some(next) => work = next,
//!                 None => break, // wake the waiting callers
//!             }
//!         },
//!     }
//! };
//! assert_eq!(token.secret(), "abc");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod flight;
mod store;

use std::fmt;

use crate::error::{Error, TransportError};
use crate::machine::{Action, Outgoing, RefreshTicket, TokenSource};
use crate::time::Timestamp;
use crate::token::AccessToken;

use flight::{Job, Tail};
use store::{Change, Queue};

/// The client's shared state: the core and the bookkeeping around it. One
/// per client, behind the adapter's lock; see the [module docs](self).
pub struct Driver {
    source: TokenSource,
    /// The store's writes; `None`: no store.
    store: Option<Queue>,
    /// Whether a custom provider is asked once per round.
    provider: bool,
    load: Load,
    /// The flight running (its number), if any: a result from an older one
    /// (cut short by a sign-out) changes nothing.
    flight: Option<u64>,
    flights: u64,
    /// Which hooks the current round has asked.
    hooks: Hooks,
    /// A caller reads the assertion file now.
    reading_assertion: bool,
}

/// Where reading the store stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Not read yet: the first call that needs the core reads it.
    Due,
    /// A caller reads it now.
    Running,
    /// Read (or there is no store, or a sign-out made it moot).
    Done,
}

/// The hooks a round asks before its first token request, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Hooks {
    /// Neither the provider nor the fleet yet.
    NoneAsked,
    /// The provider had nothing usable.
    ProviderAsked,
    /// The fleet turn began (its end is due when the round ends).
    FleetTurnTaken,
}

/// One caller that wants a token, held by the adapter between steps: a
/// usable token (`token()`), or the outcome of a forced refresh.
#[derive(Debug)]
pub struct Call {
    /// `Some`: the forced refresh whose outcome this caller waits for.
    refresh: Option<RefreshTicket>,
    /// This caller read the assertion file since it last waited.
    assertion_read: bool,
}

impl Call {
    /// A caller that wants a usable token (`token()`).
    pub fn token() -> Call {
        Call {
            refresh: None,
            assertion_read: false,
        }
    }
}

/// A caller that applies the store's pending writes (after an invalidation,
/// or a sign-out's deletion): [`Step::Ready`] once they have landed.
#[derive(Debug)]
pub struct Settle {
    /// `Some(seq)`: wait until write `seq` has landed, even if another caller
    /// applies it; `None`: apply what is pending unless another caller is.
    seq: Option<u64>,
}

/// What a caller holds between steps: a [`Call`] or a [`Settle`].
pub trait Caller: sealed::Sealed {
    /// What the caller ends with (a token, or nothing).
    type Output;
    /// Its next step; see [`Driver::step`].
    fn step(&mut self, driver: &mut Driver, now: Timestamp) -> Step<Self::Output>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Call {}
    impl Sealed for super::Settle {}
}

impl Caller for Call {
    type Output = AccessToken;
    fn step(&mut self, driver: &mut Driver, now: Timestamp) -> Step<AccessToken> {
        driver.step_call(now, self)
    }
}

impl Caller for Settle {
    type Output = ();
    fn step(&mut self, driver: &mut Driver, _now: Timestamp) -> Step<()> {
        driver.settle(self.seq)
    }
}

/// What a caller does next, from [`Driver::step`].
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per round
pub enum Step<T = AccessToken> {
    /// Return this: the token of a [`Call`]; for a [`Settle`], its writes landed.
    Ready(T),
    /// Return this error.
    Failed(Error),
    /// Wait until woken, or until `until` at the latest, then step again.
    Wait {
        /// When to step again at the latest (`None`: when woken).
        until: Option<Timestamp>,
    },
    /// This caller performs the work; when its tasks are over, it wakes the
    /// waiting callers and steps again.
    Work(Work),
}

/// A task for the caller holding a job, with the ticket to hand its result
/// back with ([`Driver::handle`]) or to give the job up with ([`Driver::abandon`]).
#[derive(Debug)]
pub struct Work {
    /// What to do, outside the lock.
    pub task: Task,
    /// Hand this back with the result.
    pub ticket: Ticket,
}

/// Names the job a [`Work`] belongs to; not `Clone`, so a result is handed
/// back once.
#[derive(Debug)]
pub struct Ticket(Job);

/// The I/O (or user code) the driver asks an adapter to perform.
#[allow(clippy::large_enum_variant)] // one per task
pub enum Task {
    /// Read the store: [`Outcome::Loaded`].
    Load,
    /// Read the client assertion file (`Config::assertion_file`) if it
    /// changed since the last read: [`Outcome::AssertionFile`].
    ReadAssertionFile,
    /// Ask the custom provider, passing the cached token:
    /// [`Outcome::Provided`]. Once per round, before its first request.
    Provide(Option<AccessToken>),
    /// Call the store's fleet hook (`begin_fetch(config, now)`) right before
    /// the round's token request: [`Outcome::FleetTurn`].
    TakeFleetTurn(Timestamp),
    /// Perform this HTTP exchange (no redirects, body capped):
    /// [`Outcome::Response`] or [`Outcome::TransportError`].
    Send(Outgoing),
    /// Save this token in the store: [`Outcome::Done`] (a failure is logged,
    /// never fatal: a store is a cache).
    Save(AccessToken),
    /// Delete the stored token: [`Outcome::Done`].
    Delete,
    /// Delete the stored token if it is still this one: [`Outcome::Done`].
    Evict(AccessToken),
    /// The round the fleet turn began is over: call the store's
    /// `end_fetch`, then [`Outcome::Done`].
    EndFetch,
    /// Tell the user (callbacks, logs): [`Outcome::Done`].
    Report(Report),
}

/// What happened, for callbacks and logs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Report {
    /// A new token: fetched, provided, or from the fleet (not one loaded
    /// from the store). Saved before this report.
    TokenUpdated(AccessToken),
    /// A refresh failed while the cached token is still served.
    RefreshFailed(Error),
    /// A round failed without a usable token (the waiting callers get the error).
    RoundFailed(Error),
    /// The provider's `Retry-After` was longer than `max_retry_after`: the
    /// client waits the maximum.
    RetryAfterCapped(std::time::Duration),
}

/// The result of a [`Task`].
#[allow(clippy::large_enum_variant)] // one per task
pub enum Outcome {
    /// What the store's `load` returned (a failure, logged, is `None`).
    Loaded(Option<AccessToken>),
    /// The assertion file's content (or why it cannot be used) when it
    /// changed; `None` when it did not.
    AssertionFile(Option<Result<String, String>>),
    /// What the provider returned.
    Provided(Option<AccessToken>),
    /// What the fleet hook returned: a token another process stored, or
    /// `None` (fetch; also when the hook failed).
    FleetTurn(Option<AccessToken>),
    /// The exchange's response.
    Response(http::Response<Vec<u8>>),
    /// The exchange failed.
    TransportError(TransportError),
    /// A store write, `end_fetch` or report was performed.
    Done,
}

/// What sign-out leaves to do, from [`Driver::signout`].
#[derive(Debug)]
pub struct SignOut {
    /// Step this until [`Step::Ready`]: the store's deletion has landed.
    pub deletion: Settle,
    /// Then send this revocation (RFC 7009) and hand its result to
    /// [`Driver::handle_revocation`].
    pub revocation: Option<Outgoing>,
}

/// What invalidating a token did, from [`Driver::invalidate`].
#[derive(Debug)]
pub enum Invalidated {
    /// It was not the cached token: nothing changed.
    NotCurrent,
    /// It was evicted (wake the waiting callers); step the [`Settle`], if
    /// any, to its end to evict it from the store.
    Evicted(Option<Settle>),
}

/// What a background refresh task does next, from [`Driver::background`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Refresh now: step a [`Call::token`] to its end.
    Refresh,
    /// Sleep until woken, or until this time (`None`: until woken).
    Sleep(Option<Timestamp>),
}

impl Driver {
    /// A driver around `source`, with no store and no provider.
    pub fn new(source: TokenSource) -> Driver {
        Driver {
            source,
            store: None,
            provider: false,
            load: Load::Done,
            flight: None,
            flights: 0,
            hooks: Hooks::NoneAsked,
            reading_assertion: false,
        }
    }

    /// With a store: loaded by the first call that needs a token, asked for
    /// the fleet turn before each round's token request, written in order.
    pub fn with_store(mut self) -> Driver {
        self.store = Some(Queue::default());
        self.load = Load::Due;
        self
    }

    /// With a custom provider, asked once per round before its first request.
    pub fn with_provider(mut self) -> Driver {
        self.provider = true;
        self
    }

    /// The core, for queries.
    pub fn source(&self) -> &TokenSource {
        &self.source
    }

    /// A resource server's 401 to a request for `requested` named where its
    /// RFC 9728 metadata is: read it there at the next discovery (see
    /// [`TokenSource::follow_resource_metadata`]).
    pub fn follow_resource_metadata(&mut self, requested: &str, url: &str) -> bool {
        self.source.follow_resource_metadata(requested, url)
    }

    /// The cached token and its refresh time, for a lock-free snapshot.
    pub fn published(&self) -> Option<(&AccessToken, Timestamp)> {
        self.source.token().zip(self.source.refresh_at())
    }

    /// What the caller holding `call` does next.
    pub fn step<C: Caller>(&mut self, now: Timestamp, call: &mut C) -> Step<C::Output> {
        call.step(self, now)
    }

    fn step_call(&mut self, now: Timestamp, call: &mut Call) -> Step {
        let ticket = call.refresh;
        match self.load {
            Load::Done => {}
            Load::Running => return Step::Wait { until: None },
            Load::Due => {
                self.load = Load::Running;
                let flight = self.begin_flight();
                return Step::Work(Work::new(Task::Load, Job::Load { flight }));
            }
        }
        // Only when a request may be built: a fresh token needs no assertion.
        let due = self.source.refresh_at().is_none_or(|at| now >= at);
        if self.source.config().assertion_file().is_some() && due && !call.assertion_read {
            if self.reading_assertion {
                return Step::Wait { until: None };
            }
            self.reading_assertion = true;
            call.assertion_read = true;
            return Step::Work(Work::new(Task::ReadAssertionFile, Job::ReadAssertionFile));
        }
        let action = match ticket {
            None => self.source.poll(now),
            Some(ticket) => self.source.poll_refresh(now, ticket),
        };
        match action {
            Action::Ready(token) => Step::Ready(token.clone()),
            Action::Failed(error) => Step::Failed(error.clone()),
            Action::Wait { until } => {
                call.assertion_read = false;
                Step::Wait { until }
            }
            Action::Send(outgoing) => {
                let flight = self.begin_flight();
                Step::Work(self.start(now, flight, outgoing))
            }
        }
    }

    /// Hands back the result of `ticket`'s task: the job's next task, or
    /// `None` when the job is over (wake the waiting callers).
    pub fn handle(&mut self, now: Timestamp, ticket: Ticket, outcome: Outcome) -> Option<Work> {
        self.resume(now, ticket.0, outcome)
    }

    /// The work of `ticket` ended without its result (the task panicked or
    /// was cancelled): a request that was sent counts as a failed attempt,
    /// anything else is given back. Wake the waiting callers after this.
    pub fn abandon(&mut self, now: Timestamp, ticket: Ticket) {
        self.give_up(now, ticket.0);
    }

    /// Forces a refresh: the call to step for its outcome, or the error of
    /// the failed round whose cool-down still runs (nothing is sent then).
    pub fn refresh(&mut self, now: Timestamp) -> Result<Call, Error> {
        let ticket = self.source.force_refresh_at(now)?;
        Ok(Call {
            refresh: Some(ticket),
            assertion_read: false,
        })
    }

    /// The resource server rejected `token`: stop serving it, and evict it
    /// from the store (only if it is still the cached one).
    pub fn invalidate(&mut self, now: Timestamp, token: &AccessToken) -> Invalidated {
        let _ = now;
        if !self.source.invalidate(token) {
            return Invalidated::NotCurrent;
        }
        let store = self.store.as_mut().map(|store| {
            store.record(Change::Evict(token.clone()));
            Settle { seq: None }
        });
        Invalidated::Evicted(store)
    }

    /// Forgets the token (in memory, then in the store) and any flight under
    /// way: wake the waiting callers, then do what [`SignOut`] says.
    pub fn signout(&mut self, now: Timestamp) -> SignOut {
        let _ = now;
        let revocation = self.source.signout();
        self.flight = None;
        self.load = Load::Done;
        self.hooks = Hooks::NoneAsked;
        let deletion = self.store.as_mut().map(|store| store.record(Change::Delete));
        SignOut {
            deletion: Settle { seq: deletion },
            revocation,
        }
    }

    /// Hands back the result of the sign-out's revocation: `Ok` when
    /// revoked, or when nothing was left to revoke.
    pub fn handle_revocation(
        &mut self,
        now: Timestamp,
        revocation: crate::RequestId,
        result: Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Result<(), Error> {
        let handled = match result {
            Ok(response) => self.source.handle_response(now, revocation, response),
            Err(error) => self.source.handle_transport_error(now, revocation, error),
        };
        match handled {
            Ok(_) | Err(Error::UnknownRequest { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The revocation was not performed (cancelled): it is forgotten.
    pub fn abandon_revocation(&mut self, revocation: crate::RequestId) {
        self.source.abandon(revocation);
    }

    /// For a background refresh task: refresh now, or sleep. Not due while
    /// a flight runs, nor before the core lets the next request go
    /// ([`TokenSource::retry_at`]: the back-off and cool-down after failures
    /// apply with no caller at all).
    pub fn background(&self, now: Timestamp) -> Background {
        if self.flight.is_some() {
            return Background::Sleep(None);
        }
        match self.source.refresh_at() {
            Some(at) if at != Timestamp::MAX => {
                let at = at.max(self.source.retry_at().unwrap_or(at));
                if at > now {
                    Background::Sleep(Some(at))
                } else {
                    Background::Refresh
                }
            }
            _ => Background::Sleep(None),
        }
    }

    /// The store's writes for a settling call.
    fn settle(&mut self, seq: Option<u64>) -> Step<()> {
        let Some(store) = &mut self.store else {
            return Step::Ready(());
        };
        if seq.is_some() && store.settled(seq) {
            return Step::Ready(());
        }
        match store.take_turn() {
            Some((seq, task)) => Step::Work(Work::new(
                task,
                Job::Store {
                    seq,
                    tail: Tail::default(),
                },
            )),
            // Another caller applies them, ours included; wait for ours.
            None if seq.is_some() && store.busy() => Step::Wait { until: None },
            None => Step::Ready(()),
        }
    }

    fn begin_flight(&mut self) -> u64 {
        self.flights += 1;
        self.flight = Some(self.flights);
        self.flights
    }

    fn is_current(&self, flight: u64) -> bool {
        self.flight == Some(flight)
    }
}

impl Work {
    fn new(task: Task, job: Job) -> Work {
        Work {
            task,
            ticket: Ticket(job),
        }
    }
}

impl fmt::Debug for Driver {
    /// Where the bookkeeping stands, and the core's own `Debug` (redacted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("source", &self.source)
            .field("load", &self.load)
            .field("flight", &self.flight)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl<T: fmt::Debug> fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Ready(value) => f.debug_tuple("Ready").field(value).finish(),
            Step::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
            Step::Wait { until } => f.debug_struct("Wait").field("until", until).finish(),
            Step::Work(work) => f.debug_tuple("Work").field(work).finish(),
        }
    }
}

impl fmt::Debug for Task {
    /// The task's kind; a request shows as the core's `Outgoing` does
    /// (no body, headers or query).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Load => f.write_str("Load"),
            Task::ReadAssertionFile => f.write_str("ReadAssertionFile"),
            Task::Provide(_) => f.write_str("Provide"),
            Task::TakeFleetTurn(now) => f.debug_tuple("TakeFleetTurn").field(now).finish(),
            Task::Send(outgoing) => f.debug_tuple("Send").field(outgoing).finish(),
            Task::Save(_) => f.write_str("Save"),
            Task::Delete => f.write_str("Delete"),
            Task::Evict(_) => f.write_str("Evict"),
            Task::EndFetch => f.write_str("EndFetch"),
            Task::Report(report) => f.debug_tuple("Report").field(report).finish(),
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Loaded(_) => "Loaded",
            Outcome::AssertionFile(_) => "AssertionFile",
            Outcome::Provided(_) => "Provided",
            Outcome::FleetTurn(_) => "FleetTurn",
            Outcome::Response(_) => "Response",
            Outcome::TransportError(_) => "TransportError",
            Outcome::Done => "Done",
        })
    }
}
