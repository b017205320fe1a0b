//! The jobs the core driver hands a caller, as an adapter performs them:
//! the guard that hands an unfinished job back, the tasks the shell performs
//! itself (reports), and the outcomes of the adapter's I/O.

use std::sync::Arc;
use std::time::Duration;

use client_credentials::driver::{self as machine, Outcome, Signing, Task, Ticket};
use client_credentials::{AccessToken, Error, Outgoing, RequestId, RequestKind, SignError, TransportError};
use tracing::Span;

use crate::driver::{Driver, Io};
use crate::observe::{Exchange, Sent};

/// What a caller does next, from [`Driver::step`].
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per call
pub enum Step<W: Io, T = AccessToken> {
    /// Return this: a call's token; for a [`Settle`](client_credentials::driver::Settle), its writes landed.
    Ready(T),
    /// Return this error.
    Failed(Error),
    /// Wait until woken ([`Wake::wake`](crate::Wake::wake)) or for this long (`None`: until
    /// woken), then step again.
    Wait(Option<Duration>),
    /// This caller performs a job: its tasks, then step again.
    Work(Job<W>),
}

/// A job for the caller performing it: [`Job::next_task`] hands out the
/// adapter's tasks (the reports are performed here),
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
    /// The span of the caller that started the job: the parent of its
    /// requests' spans, wherever the job runs.
    pub(crate) parent: Span,
    /// Set when the job is over: wakes the waiting callers when the job is
    /// dropped. Declared last, so it runs after `driver` is released: a
    /// woken caller never finds its key still held by a finished job (a key
    /// held looks busy and is never the one dropped beyond `max_keys`).
    pub(crate) wake_when_dropped: Option<WakeOnDrop<W>>,
}

/// Wakes every waiting caller when dropped.
pub(crate) struct WakeOnDrop<W: Io>(Arc<W>);

impl<W: Io> Drop for WakeOnDrop<W> {
    fn drop(&mut self) {
        self.0.wake();
    }
}

impl<W: Io> Job<W> {
    /// The next task for the adapter to perform (its result goes to
    /// [`Job::hand_back`]), or `None` when the job is over: drop the job
    /// (which wakes the waiting callers), then step again.
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
                Task::Send(outgoing, attempt) => {
                    crate::log_event!(W::LOG_TARGET, debug, request = %outgoing.id, kind = ?outgoing.kind, method = %outgoing.request.method(), uri = %crate::loggable_uri(outgoing.request.uri()), "client-credentials: sending");
                    return Some(Task::Send(outgoing, attempt));
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
            self.work = self.driver.handle(ticket, outcome);
            if self.work.is_none() {
                self.wake_when_dropped = Some(WakeOnDrop(Arc::clone(&self.driver.io)));
            }
        }
    }

    /// Begins observing the exchange of `outgoing` (its span, a child of
    /// the span that started the job, and its metrics): send inside
    /// [`Exchange::span`], then hand the result to [`Job::exchanged`].
    pub fn exchange(&self, outgoing: &Outgoing, attempt: u32) -> Exchange {
        let sent = Sent {
            kind: outgoing.kind,
            id: outgoing.id,
            attempt,
        };
        Exchange::begin(
            self.driver.config(),
            self.driver.key(),
            &self.parent,
            sent,
            &outgoing.request,
        )
    }

    /// Ends the exchange with `result`: the outcome to hand back.
    pub fn exchanged(&self, exchange: Exchange, result: Result<http::Response<Vec<u8>>, TransportError>) -> Outcome {
        exchange.end(&self.driver.labels, &result);
        match result {
            Ok(response) => Outcome::Response(response),
            Err(error) => Outcome::TransportError(error),
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
/// [`Revocation::finish`]. When its client assertion needs an external
/// signer, sign [`Revocation::take_signing`]'s message first (outside the
/// lock) and hand it to [`Revocation::signed`]. Dropped unfinished, it is
/// forgotten.
pub struct Revocation<W: Io> {
    pub(crate) driver: Arc<Driver<W>>,
    pub(crate) id: Option<RequestId>,
    pub(crate) kind: RequestKind,
    pub(crate) request: Option<http::Request<Vec<u8>>>,
    /// The external signature it needs first, not yet handed out.
    pub(crate) signing: Option<Signing>,
    /// The request whose signature was handed out and not yet handed back.
    pub(crate) unsigned: Option<RequestId>,
    /// The span of the caller that signed out.
    pub(crate) parent: Span,
}

impl<W: Io> Revocation<W> {
    /// The external signature the revocation needs before it can be sent,
    /// if any: sign it outside the lock ([`Signing::sign`]) and hand the
    /// result to [`Revocation::signed`].
    pub fn take_signing(&mut self) -> Option<Signing> {
        let signing = self.signing.take()?;
        self.unsigned = Some(signing.id());
        Some(signing)
    }

    /// Hands back the signature of [`Revocation::take_signing`]: the
    /// revocation can then be sent ([`Revocation::take_request`]), unless
    /// the signer failed (revocation is best effort: it is not sent).
    pub fn signed(&mut self, signing: Signing, signature: Result<Vec<u8>, SignError>) {
        self.unsigned = None;
        let outgoing = self
            .driver
            .with(|machine, now| machine.revocation_signed(now, signing, signature));
        // Callers that waited for the revocation's signing step again.
        self.driver.io.wake();
        if let Some(outgoing) = outgoing {
            self.id = Some(outgoing.id);
            self.kind = outgoing.kind;
            self.request = Some(outgoing.request);
        }
    }

    /// The request to send (once; it carries a credential), and the
    /// exchange that observes it: send inside [`Exchange::span`].
    pub fn take_request(&mut self) -> Option<(http::Request<Vec<u8>>, Exchange)> {
        let request = self.request.take()?;
        let id = self.id?;
        let sent = Sent {
            kind: self.kind,
            id,
            attempt: 1,
        };
        let exchange = Exchange::begin(self.driver.config(), self.driver.key(), &self.parent, sent, &request);
        Some((request, exchange))
    }

    /// The revocation's outcome: `Ok` when revoked, or when nothing was left
    /// to revoke.
    pub fn finish(
        mut self,
        exchange: Exchange,
        result: Result<http::Response<Vec<u8>>, TransportError>,
    ) -> Result<(), Error> {
        exchange.end(&self.driver.labels, &result);
        let Some(id) = self.id.take() else { return Ok(()) };
        self.driver
            .with(|machine, now| machine.handle_revocation(now, id, result))
    }
}

impl<W: Io> Drop for Revocation<W> {
    fn drop(&mut self) {
        let unsigned = self.unsigned.take().or_else(|| self.signing.take().map(|s| s.id()));
        if let Some(id) = self.id.take().or(unsigned) {
            self.driver.with(|machine, _| machine.abandon_revocation(id));
        }
    }
}

/// Signs with an external signer on tokio's blocking pool, outside the
/// client's lock: the [`Signer`](client_credentials::Signer) trait is
/// synchronous, and an HSM or a KMS may take a while. A signer that panics
/// fails like one that returns an error. The tokio adapter signs its
/// requests' assertions and proofs, and its resource requests' DPoP proofs,
/// with it.
#[cfg(feature = "tokio")]
pub async fn sign_on_blocking_pool(signing: &Signing) -> Result<Vec<u8>, SignError> {
    let (key, message) = (signing.key().clone(), signing.message().to_vec());
    let signed = tokio::task::spawn_blocking(move || key.sign(&message));
    signed
        .await
        .unwrap_or_else(|_| Err(SignError::new("the signer panicked")))
}
