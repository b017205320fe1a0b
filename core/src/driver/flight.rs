//! The single flight: a round's hooks (provider, fleet turn), its requests,
//! and what follows it (store writes, `end_fetch`, reports).

use std::collections::VecDeque;

use crate::assertion::AssertionRole;
use crate::error::{Error, TransportError, TransportErrorKind};
use crate::id::RequestId;
use crate::jws::SignError;
use crate::machine::{Action, Event, Next, Outgoing, RequestKind, Signed, Started};
use crate::time::Timestamp;

use super::store::Change;
use super::{Background, Driver, Hooks, Load, Outcome, Report, Signing, Task, Work};

/// What a [`Work`] is part of.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per task; boxing would allocate per request
pub(super) enum Job {
    /// The flight reads the store.
    Load { flight: u64 },
    /// A caller reads the assertion of this role (one at a time).
    ReadAssertion(AssertionRole),
    /// The flight's request `id` waits for an external signature.
    Sign { flight: u64, id: RequestId },
    /// The flight's request, held (still in flight for the core, so others
    /// wait or are served) while the provider or the fleet hook is asked.
    Ask { flight: u64, outgoing: Outgoing },
    /// The flight's request was sent.
    Sent { flight: u64, id: RequestId },
    /// This caller holds the turn to apply the store's writes, applying `seq`.
    Store { seq: u64, tail: Tail },
    /// A flight is over: its `end_fetch` and reports.
    Tail(Tail),
}

/// What is left after a flight's store writes.
#[derive(Debug, Default)]
pub(super) struct Tail {
    /// The store's `end_fetch` is due (the round began a fleet turn).
    pub(super) end_fetch: bool,
    pub(super) reports: VecDeque<Report>,
}

impl Driver {
    /// For a background refresh task: refresh now, or sleep. Not due while
    /// a flight runs, nor before the core lets the next request go
    /// ([`TokenSource::retry_at`](crate::TokenSource::retry_at): the back-off and cool-down after failures
    /// apply with no caller at all).
    pub fn background(&self, now: Timestamp) -> Background {
        // Another key of the client reads the metadata: its result is
        // adopted when it ends (and the refresher is woken then).
        if self.flight.is_some() || (self.discovery_held && self.source.discovery_due(now)) {
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

    /// The next task of a round for `outgoing`: ask the provider (once per
    /// round), then the fleet (before a token request), then send.
    pub(super) fn start(&mut self, now: Timestamp, flight: u64, outgoing: Outgoing) -> Work {
        if self.provider && self.hooks < Hooks::ProviderAsked {
            self.hooks = Hooks::ProviderAsked;
            let cached = self.source.token().cloned();
            Work::new(Task::Provide(cached), Job::Ask { flight, outgoing })
        } else if self.store.is_some() && self.hooks < Hooks::FleetTurnTaken && outgoing.kind == RequestKind::Token {
            self.hooks = Hooks::FleetTurnTaken;
            Work::new(Task::TakeFleetTurn(now), Job::Ask { flight, outgoing })
        } else {
            let id = outgoing.id;
            let attempt = match self.attempts {
                Some((kind, n)) if kind == outgoing.kind => n.saturating_add(1),
                _ => 1,
            };
            self.attempts = Some((outgoing.kind, attempt));
            Work::new(Task::Send(outgoing, attempt), Job::Sent { flight, id })
        }
    }

    pub(super) fn resume(&mut self, now: Timestamp, job: Job, outcome: Outcome) -> Option<Work> {
        match (job, outcome) {
            (Job::Load { flight }, Outcome::Loaded(token)) => {
                if self.is_current(flight) {
                    self.load = Load::Done;
                    self.flight = None;
                    if let Some(token) = token.filter(|_| self.source.token().is_none()) {
                        self.source.insert_token(token);
                    }
                }
                None
            }
            (Job::ReadAssertion(role), Outcome::Assertion(content)) => {
                self.reading_assertion = false;
                if let Some(content) = content {
                    self.source.provide_assertion(role, content);
                }
                None
            }
            // Another process's rejection back-off held when the store was
            // asked: the round fails, as if the token it would fetch had been
            // rejected. Not judged again here: it may have ended since, and
            // fetching then would skip the fleet's turn.
            (Job::Ask { flight, outgoing }, Outcome::FleetHeldBack(backoff)) => {
                if !self.is_current(flight) {
                    return self.after_flight(Tail::default());
                }
                let handled = self.source.hold_back(now, outgoing.id, backoff);
                self.sent(now, flight, handled)
            }
            (Job::Sign { flight, id }, Outcome::Signed(signature)) => self.signed(now, flight, id, signature),
            (Job::Ask { flight, outgoing }, outcome @ (Outcome::Provided(_) | Outcome::FleetTurn(_))) => {
                let (token, provided) = match outcome {
                    Outcome::Provided(token) => (token, true),
                    Outcome::FleetTurn(token) => (token, false),
                    _ => (None, false),
                };
                if !self.is_current(flight) {
                    return self.after_flight(Tail::default());
                }
                // Taken only if usable now and expiring later than the
                // cached one: a provided token never downgrades the cache.
                match token.filter(|token| self.source.offer_token(now, token.clone())) {
                    Some(token) => {
                        self.source.abandon(outgoing.id);
                        let mut tail = self.end_round();
                        // The fleet's token is in the store already: not saved again.
                        if provided {
                            self.record(Change::Save(token.clone()));
                        }
                        tail.reports.push_back(Report::TokenUpdated(token));
                        self.flight = None;
                        self.after_flight(tail)
                    }
                    None => Some(self.start(now, flight, outgoing)),
                }
            }
            (Job::Sent { flight, id }, outcome @ (Outcome::Response(_) | Outcome::TransportError(_))) => {
                let handled = match outcome {
                    Outcome::Response(response) => self.source.handle_response(now, id, response),
                    Outcome::TransportError(error) => self.source.handle_transport_error(now, id, error),
                    _ => Err(Error::UnknownRequest { id }),
                };
                self.sent(now, flight, handled)
            }
            (Job::Store { seq, tail }, Outcome::Done) => {
                let next = self.store.as_mut().and_then(|store| store.next(seq));
                match next {
                    Some((seq, task)) => Some(Work::new(task, Job::Store { seq, tail })),
                    None => self.tail(tail),
                }
            }
            (Job::Tail(tail), Outcome::Done) => self.tail(tail),
            // An outcome that does not answer the task: as if it never came.
            (job, _) => {
                self.give_up(now, job);
                None
            }
        }
    }

    /// The result of the flight's request.
    fn sent(&mut self, now: Timestamp, flight: u64, handled: Result<Event, Error>) -> Option<Work> {
        let mut tail = Tail::default();
        let capped = match &handled {
            Ok(Event::RetryScheduled { retry_after_capped, .. } | Event::RefreshFailed { retry_after_capped, .. }) => {
                *retry_after_capped
            }
            Ok(_) | Err(Error::UnknownRequest { .. }) => None,
            // The round failed without a usable token.
            Err(_) => self.source.retry_after_capped(),
        };
        tail.reports.extend(capped.map(Report::RetryAfterCapped));
        if let Ok(Event::RetryScheduled { at, .. }) = &handled {
            tail.reports
                .push_back(Report::RetryScheduled(at.saturating_duration_since(now)));
        }
        match handled {
            Ok(Event::TokenUpdated(token)) => {
                tail.end_fetch = self.end_round().end_fetch;
                self.record(Change::Save(token.clone()));
                tail.reports.push_back(Report::TokenUpdated(token));
            }
            Ok(Event::RefreshFailed { error, .. }) => {
                tail.end_fetch = self.end_round().end_fetch;
                tail.reports.push_back(Report::RefreshFailed(error));
            }
            Ok(Event::DiscoveryUpdated(_) | Event::Fallback { .. }) if self.is_current(flight) => {
                // The round goes on at once (the token request after
                // discovery, the next location, the other grant).
                match self.source.next(now) {
                    Next::Act(Action::Send(outgoing)) => return Some(self.start(now, flight, outgoing)),
                    Next::Sign(signing) => return Some(self.sign(flight, signing)),
                    Next::Act(_) => {}
                }
            }
            Ok(_) | Err(Error::UnknownRequest { .. }) => {}
            Err(error) => {
                tail.end_fetch = self.end_round().end_fetch;
                tail.reports.push_back(Report::RoundFailed(error));
            }
        }
        if self.is_current(flight) {
            self.flight = None;
        }
        self.after_flight(tail)
    }

    /// The flight's request needs an external signature first.
    pub(super) fn sign(&mut self, flight: u64, signing: Signing) -> Work {
        let id = signing.id;
        Work::new(Task::Sign(signing), Job::Sign { flight, id })
    }

    /// The external signature for the flight's request `id`: its next
    /// signature, or the request (asking the provider and the fleet first,
    /// as for any request); a failed signature is a failed attempt.
    fn signed(
        &mut self,
        now: Timestamp,
        flight: u64,
        id: RequestId,
        signature: Result<Vec<u8>, SignError>,
    ) -> Option<Work> {
        match self.source.signed(now, id, signature) {
            Signed::Started(Started::Send(outgoing)) => Some(self.start(now, flight, outgoing)),
            Signed::Started(Started::Sign(signing)) => Some(self.sign(flight, signing)),
            Signed::Failed(handled) => self.sent(now, flight, handled),
        }
    }

    /// A flight is over: apply the store's writes (unless another caller
    /// is applying them: it then applies these too, after its own), then
    /// `end_fetch`, then the reports.
    fn after_flight(&mut self, tail: Tail) -> Option<Work> {
        match self.store.as_mut().and_then(|store| store.take_turn()) {
            Some((seq, task)) => Some(Work::new(task, Job::Store { seq, tail })),
            None => self.tail(tail),
        }
    }

    pub(super) fn tail(&mut self, mut tail: Tail) -> Option<Work> {
        if std::mem::take(&mut tail.end_fetch) {
            return Some(Work::new(Task::EndFetch, Job::Tail(tail)));
        }
        let report = tail.reports.pop_front()?;
        Some(Work::new(Task::Report(report), Job::Tail(tail)))
    }

    /// A round ended: the next one asks the provider and the fleet again.
    /// The tail says whether the fleet's `end_fetch` is due.
    fn end_round(&mut self) -> Tail {
        let hooks = std::mem::replace(&mut self.hooks, Hooks::NoneAsked);
        self.attempts = None;
        Tail {
            end_fetch: hooks == Hooks::FleetTurnTaken,
            reports: VecDeque::new(),
        }
    }

    fn record(&mut self, change: Change) {
        if let Some(store) = &mut self.store {
            store.record(change);
        }
    }

    /// A job ended without its result.
    pub(super) fn give_up(&mut self, now: Timestamp, job: Job) {
        let flight = match job {
            // Start without the store rather than fail again.
            Job::Load { flight } => {
                if self.is_current(flight) {
                    self.load = Load::Done;
                }
                Some(flight)
            }
            Job::ReadAssertion(_) => {
                self.reading_assertion = false;
                None
            }
            // The signer panicked or its task was cancelled: a failed
            // attempt, so a signer that does so again and again is backed
            // off like one that fails.
            Job::Sign { flight, id } => {
                let lost = SignError::new("the signing task ended before its signature (it panicked or was cancelled)");
                let _ = self.source.signed(now, id, Err(lost));
                Some(flight)
            }
            Job::Ask { flight, outgoing } => {
                if self.is_current(flight) {
                    self.source.abandon(outgoing.id);
                }
                Some(flight)
            }
            // Sent, and its answer will never come: a failed attempt, so a
            // transport that panics or a task that is cancelled again and
            // again is backed off like a provider that fails.
            Job::Sent { flight, id } => {
                let lost = TransportError::new(
                    TransportErrorKind::Other,
                    "the request's task ended before its answer (it panicked or was cancelled)",
                );
                let _ = self.source.handle_transport_error(now, id, lost);
                Some(flight)
            }
            Job::Store { seq, .. } => {
                if let Some(store) = &mut self.store {
                    store.give_back(seq);
                }
                None
            }
            Job::Tail(_) => None,
        };
        if flight.is_some_and(|flight| self.is_current(flight)) {
            self.flight = None;
        }
    }
}
