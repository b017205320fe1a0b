//! The jobs the core driver hands a caller, as an adapter performs them:
//! the guard that hands an unfinished job back, the tasks the shell performs
//! itself (reports, the assertion file), and the outcomes of the adapter's I/O.

use std::io;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use client_credentials::driver::{self as machine, Outcome, Report, Task, Ticket};
use client_credentials::{AccessToken, Error, TransportError};

use crate::driver::{Driver, Io};
use crate::store::{store_failed, FleetTurn};

/// What a caller does next, from [`Driver::step`].
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per call
pub enum Step<W: Io, T = AccessToken> {
    /// Return this: a call's token; for a [`Settle`], its writes landed.
    Ready(T),
    /// Return this error.
    Failed(Error),
    /// Wait until woken ([`Wake::wake`]) or for this long (`None`: until
    /// woken), then step again.
    Wait(Option<Duration>),
    /// This caller performs a job: its tasks, then step again.
    Work(Job<W>),
}

/// A job for the caller performing it: [`Job::next_task`] hands out the
/// adapter's tasks (the reports and the assertion file are performed here),
/// [`Job::hand_back`] takes each result. Dropped unfinished (a panic, a
/// cancelled future), it hands the job back to the core driver and wakes
/// every waiter, so one caller's failure never leaves the others waiting for
/// a result that will not come.
pub struct Job<W: Io> {
    pub(crate) driver: Arc<Driver<W>>,
    /// The task not yet handed out.
    pub(crate) work: Option<machine::Work>,
    /// The ticket of the task handed out, until its result is handed back.
    pub(crate) ticket: Option<Ticket>,
}

impl<W: Io> Driver<W> {
    /// Tells the user what happened: callbacks (outside the lock) and logs.
    fn report(&self, report: Report) {
        match report {
            Report::TokenUpdated(token) => {
                if let Some(callback) = &self.settings.on_token_update {
                    callback(&token);
                }
            }
            Report::RefreshFailed(error) => {
                tracing::warn!(%error, "client-credentials: refresh failed; the cached token is served until it expires");
                if let Some(callback) = &self.settings.on_error {
                    callback(&error);
                }
            }
            Report::RoundFailed(error) => tracing::debug!(%error, "client-credentials: round failed"),
            Report::RetryAfterCapped(asked) => tracing::warn!(
                retry_after_secs = asked.as_secs(),
                waiting_secs = self.config().retry().max_retry_after.as_secs(),
                "client-credentials: the provider's Retry-After is longer than max_retry_after; waiting the maximum"
            ),
            _ => {}
        }
    }

    /// Reads the assertion file if it changed, outside the state lock: callers
    /// served from cache never wait for a file system.
    fn read_assertion_file(&self) -> Outcome {
        let content = self.assertion_file.as_ref().and_then(|file| {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.read_if_changed()
        });
        Outcome::AssertionFile(content)
    }
}

impl<W: Io> Job<W> {
    /// The next task for the adapter to perform (its result goes to
    /// [`Job::hand_back`]), or `None` when the job is over: the waiting
    /// callers have been woken; step again.
    pub fn next_task(&mut self) -> Option<Task> {
        while let Some(machine::Work { task, ticket }) = self.work.take() {
            // Held while a report's callback runs: a panicking callback
            // hands the job back on drop.
            self.ticket = Some(ticket);
            let outcome = match task {
                Task::Report(report) => {
                    self.driver.report(report);
                    Outcome::Done
                }
                Task::ReadAssertionFile => self.driver.read_assertion_file(),
                Task::Send(outgoing) => {
                    tracing::debug!(
                        request = %outgoing.id,
                        kind = ?outgoing.kind,
                        method = %outgoing.request.method(),
                        uri = %crate::loggable_uri(outgoing.request.uri()),
                        "client-credentials: sending"
                    );
                    return Some(Task::Send(outgoing));
                }
                task => return Some(task),
            };
            self.hand_back(outcome);
        }
        None
    }

    /// Hands back the result of the task [`Job::next_task`] gave out.
    pub fn hand_back(&mut self, outcome: Outcome) {
        if let Some(ticket) = self.ticket.take() {
            self.work = self.driver.with(|machine, now| machine.handle(now, ticket, outcome));
            if self.work.is_none() {
                self.driver.io.wake();
            }
        }
    }

    /// The client this job belongs to.
    pub fn driver(&self) -> &Arc<Driver<W>> {
        &self.driver
    }
}

impl<W: Io> Drop for Job<W> {
    fn drop(&mut self) {
        let unfinished = self.ticket.take().or_else(|| self.work.take().map(|work| work.ticket));
        if let Some(ticket) = unfinished {
            // Unfinished: the caller panicked or its future was dropped.
            self.driver.with(|machine, now| machine.abandon(now, ticket));
            self.driver.io.wake();
        }
    }
}

/// The sign-out's revocation, sent by the adapter: hand its result to
/// [`Revocation::finish`]. Dropped unfinished, it is forgotten.
pub struct Revocation<W: Io> {
    pub(crate) driver: Arc<Driver<W>>,
    pub(crate) id: Option<client_credentials::RequestId>,
    pub(crate) request: Option<http::Request<Vec<u8>>>,
}

impl<W: Io> Revocation<W> {
    /// The request to send (once; it carries a credential).
    pub fn take_request(&mut self) -> Option<http::Request<Vec<u8>>> {
        self.request.take()
    }

    /// The revocation's outcome: `Ok` when revoked, or when nothing was left
    /// to revoke.
    pub fn finish(mut self, result: Result<http::Response<Vec<u8>>, TransportError>) -> Result<(), Error> {
        let Some(id) = self.id.take() else { return Ok(()) };
        self.driver
            .with(|machine, now| machine.handle_revocation(now, id, result))
    }
}

impl<W: Io> Drop for Revocation<W> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.driver.with(|machine, _| machine.abandon_revocation(id));
        }
    }
}

/// The outcome of a store's `load`: a failure is logged, and the client
/// starts without the stored token.
pub fn loaded(result: io::Result<Option<AccessToken>>) -> Outcome {
    Outcome::Loaded(result.unwrap_or_else(|error| {
        store_failed("load", &error);
        None
    }))
}

/// The outcome of a store's fleet hook: a failure is logged, and the client fetches.
pub fn fleet_turn(result: io::Result<FleetTurn>) -> Outcome {
    Outcome::FleetTurn(match result {
        Ok(FleetTurn::Use(token)) => Some(token),
        Ok(FleetTurn::Fetch) => None,
        Err(error) => {
            tracing::warn!(%error, "client-credentials: the store's fleet hook failed; fetching");
            None
        }
    })
}

/// The outcome of a store write (`verb`: save, delete, evict): a failure
/// is logged, never fatal (a store is a cache).
pub fn written(verb: &str, result: io::Result<()>) -> Outcome {
    if let Err(error) = result {
        store_failed(verb, &error);
    }
    Outcome::Done
}

/// The outcome of an HTTP exchange.
pub fn exchanged(result: Result<http::Response<Vec<u8>>, TransportError>) -> Outcome {
    match result {
        Ok(response) => Outcome::Response(response),
        Err(error) => Outcome::TransportError(error),
    }
}
