//! The client around a [`TokenSource`], as a state machine an adapter (or
//! an embedder) loops around: single flight, which caller performs the I/O
//! and which waits, the store's load and ordered writes, the custom
//! provider's round, the fleet turn, re-reading the assertions made
//! elsewhere (files, callbacks), external signatures, sign-out,
//! background-refresh timing.
//!
//! Like the core, the driver does no I/O, reads no clock and runs no user
//! code, and it waits on nothing: it says what to do next and takes the
//! result back. (The one lock it touches is the configuration's record of
//! whom a grant's subject token speaks for, part of the cache key: held only
//! to copy two hashes, never across a call.)
//! Neither calls out: an assertion callback, an assertion file and a
//! [`Signer`](crate::Signer) of the user's (an HSM, a KMS) are tasks the
//! adapter performs outside its lock ([`Task::ReadAssertion`],
//! [`Task::Sign`]); only built-in keys and `client_secret_jwt` sign inside
//! the core.
//! Each caller holds a [`Call`] (or a [`Settle`], to apply the store's
//! writes) and asks [`Driver::step`] what to do: return a token, return an
//! error, wait (until a time, or until woken),
//! or perform a [`Work`]. A `Work` is one [`Task`] — send a request, load or
//! write the store, ask the provider, take the fleet turn, read an
//! assertion, sign with an external key, run a callback — whose result goes back through
//! [`Driver::handle`], which hands out the next task of the same job or
//! `None` once it is over: then wake every waiting caller. A `Work` dropped
//! unfinished (the task panicked, it was cancelled) goes back through
//! [`Driver::abandon`], so the others never wait for a result that will
//! not come.
//!
//! A driver with nothing under way and no failure to remember can
//! [rest](Driver::rest) between jobs: a [`Resting`] driver, kept by a
//! client with many idle keys, holds only what it must and
//! [wakes](Resting::wake) into the same driver.
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
//!                 Task::Send(outgoing, _attempt) => Outcome::Response(send(outgoing.request)),
//!                 // A callback's assertion, a key of your own: performed here too.
//!                 Task::ReadAssertion { source, .. } => Outcome::Assertion(source.call()),
//!                 Task::Sign(signing) => Outcome::Signed(signing.sign()),
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

mod call;
mod flight;
mod rest;
mod signout;
mod step;
mod store;

use std::fmt;

use crate::discovery::ProviderMetadata;
use crate::error::Error;
use crate::machine::{Action, Next, TokenSource};
use crate::time::Timestamp;
use crate::token::AccessToken;

pub use crate::assertion::AssertionRole;
pub use crate::machine::Discovery;
pub use call::{Call, Caller, Settle};
pub use rest::Resting;
pub use step::{Background, Invalidated, Outcome, Report, SignOut, Signing, Step, Task, Ticket, Work};

use flight::{Job, Tail};
use store::Queue;

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
    /// A caller reads an assertion (a file, a callback) now.
    reading_assertion: bool,
    /// The kind of the round's last request and how many of that kind it sent.
    attempts: Option<(crate::machine::RequestKind, u32)>,
    /// Another key of the client is reading the metadata: see
    /// [`Driver::hold_discovery`].
    discovery_held: bool,
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
            attempts: None,
            discovery_held: false,
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

    /// The cached token, fresh or not (`None`: none is cached).
    pub fn token(&self) -> Option<&AccessToken> {
        self.source.token()
    }

    /// The provider metadata in use, once discovered.
    pub fn metadata(&self) -> Option<&ProviderMetadata> {
        self.source.metadata()
    }

    /// What this key learnt by discovery, for the client's other keys (see
    /// [`Discovery`] and [`TokenSource::discovery`]).
    pub fn discovery(&self) -> Option<Discovery> {
        self.source.discovery()
    }

    /// Takes another key's discovery result when it is usable here (see
    /// [`TokenSource::adopt_discovery`]); returns whether anything changed.
    /// An adapter serving several keys of one client adopts the client's
    /// latest before a key steps and keeps what the key exports after
    /// ([`Discovery::replaces`]).
    pub fn adopt_discovery(&mut self, discovery: &Discovery, now: Timestamp) -> bool {
        self.source.adopt_discovery(discovery, now)
    }

    /// Whether this key discovers, and so shares a [`Discovery`] with its
    /// siblings (see [`TokenSource::discovers`]).
    pub fn discovers(&self) -> bool {
        self.source.discovers()
    }

    /// Whether this key would pin the client's authorization server with
    /// its next resource document (see [`TokenSource::pins_next`]).
    pub fn pins_next(&self) -> bool {
        self.source.pins_next()
    }

    /// Whether a call stepped at `now` would send a metadata request (see
    /// [`TokenSource::discovery_due`]).
    pub fn discovery_due(&self, now: Timestamp) -> bool {
        self.source.discovery_due(now)
    }

    /// Whether this key has a metadata request in flight (see
    /// [`TokenSource::is_discovering`]).
    pub fn is_discovering(&self) -> bool {
        self.source.is_discovering()
    }

    /// Another key of the same client is reading the metadata (`true`), or
    /// none is (`false`): while held, a call whose next request
    /// would be a metadata request is served the unexpired token (unless it
    /// forces a refresh) or waits until woken (the other key's job ends, and
    /// its result is adopted), instead of sending one of its own, and the
    /// background refresh of this key sleeps until woken. An adapter serving
    /// several keys sets this before each step.
    pub fn hold_discovery(&mut self, held: bool) {
        self.discovery_held = held;
    }

    /// A resource server's 401 to a request for `requested` named where its
    /// RFC 9728 metadata is: read it there at the next discovery (see
    /// [`TokenSource::follow_resource_metadata`]).
    pub fn follow_resource_metadata(&mut self, requested: &str, url: &str) -> bool {
        self.source.follow_resource_metadata(requested, url)
    }

    /// A DPoP proof for a resource request with `token` (see
    /// [`TokenSource::dpop_proof`]): built here, under the lock that guards
    /// the driver, with the nonce kept for `uri`'s origin and a fresh `jti`.
    /// A built-in key signs it at once; an external signer's proof comes
    /// back [`DpopProof::Unsigned`](crate::DpopProof::Unsigned): sign it
    /// after releasing the lock, then [`Signing::finish`] it (no lock
    /// needed). `Ok(None)` without DPoP.
    pub fn dpop_proof(
        &mut self,
        now: Timestamp,
        method: &http::Method,
        uri: &str,
        token: &AccessToken,
        nonce: Option<&str>,
    ) -> Result<Option<crate::DpopProof>, Error> {
        self.source.dpop_proof(now, method, uri, Some(token), nonce)
    }

    /// A resource server sent `nonce` as its `DPoP-Nonce` (RFC 9449 §9):
    /// the next proof for `url`'s origin from [`Driver::dpop_proof`]
    /// carries it, so a server that demands nonces is not asked twice per
    /// request. The latest nonce of each of the last 64 origins is kept.
    pub fn remember_dpop_nonce(&mut self, url: &str, nonce: &str) {
        self.source.remember_dpop_nonce(url, nonce);
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
        // Only when a request may be built: a fresh token needs no assertion.
        // Each caller re-reads each assertion once before it polls (again
        // after it waited), one reader at a time: the core then uses the
        // latest value read, and never calls out itself. They are read before
        // the store is loaded: whom a grant's subject speaks for is part of
        // the store's key (`Config::fingerprint`).
        let due = self.source.refresh_at().is_none_or(|at| now >= at);
        if due {
            let unread = self.source.config().assertion_sources().nth(call.assertions_read);
            if let Some((role, source)) = unread {
                if self.reading_assertion {
                    return Step::Wait { until: None };
                }
                self.reading_assertion = true;
                call.assertions_read += 1;
                let task = Task::ReadAssertion {
                    role,
                    source: source.clone(),
                };
                return Step::Work(Work::new(task, Job::ReadAssertion(role)));
            }
        }
        match self.load {
            Load::Done => {}
            Load::Running => return Step::Wait { until: None },
            Load::Due => {
                self.load = Load::Running;
                let flight = self.begin_flight();
                return Step::Work(Work::new(Task::Load, Job::Load { flight }));
            }
        }
        // A round starts only after the store's pending writes have landed:
        // its fleet turn must not read back a token this client just evicted
        // or deleted.
        if due && self.flight.is_none() {
            if let Some(store) = &mut self.store {
                if let Some((seq, task)) = store.take_turn() {
                    return Step::Work(Work::new(
                        task,
                        Job::Store {
                            seq,
                            tail: Tail::default(),
                        },
                    ));
                }
                if store.busy() {
                    return Step::Wait { until: None };
                }
            }
        }
        if let Some(ticket) = ticket {
            // The forced refresh's round failed: its caller gets the error,
            // while others are served the unexpired token.
            if let Some(error) = self.source.refresh_failed(now, ticket) {
                return Step::Failed(error.clone());
            }
        }
        if self.discovery_held && self.source.discovery_due(now) {
            // Another key of the client reads the same metadata: this one
            // adopts its result once woken, instead of reading it again.
            // Meanwhile an unexpired token is served, unless a forced
            // refresh withholds it (then `refresh_at` is `None`).
            if let (Some(token), Some(_)) = (self.source.usable(now), self.source.refresh_at()) {
                return Step::Ready(token.clone());
            }
            return Step::Wait { until: None };
        }
        match self.source.next(now) {
            Next::Act(Action::Ready(token)) => Step::Ready(token.clone()),
            Next::Act(Action::Failed(error)) => Step::Failed(error.clone()),
            Next::Act(Action::Wait { until }) => {
                call.assertions_read = 0;
                Step::Wait { until }
            }
            Next::Act(Action::Send(outgoing)) => {
                let flight = self.begin_flight();
                Step::Work(self.start(now, flight, outgoing))
            }
            Next::Sign(signing) => {
                let flight = self.begin_flight();
                Step::Work(self.sign(flight, signing))
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
        let ticket = self.source.force_refresh(now)?;
        Ok(Call {
            refresh: Some(ticket),
            assertions_read: 0,
        })
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
