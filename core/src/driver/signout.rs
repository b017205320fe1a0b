//! Dropping tokens: invalidation, sign-out and its revocation, and the
//! store writes they leave to apply.

use std::collections::VecDeque;

use crate::error::{Error, TransportError};
use crate::id::RequestId;
use crate::jws::SignError;
use crate::machine::{Outgoing, Rejection, Signed, Started};
use crate::time::Timestamp;
use crate::token::AccessToken;

use super::flight::{Job, Tail};
use super::store::Change;
use super::{Driver, Hooks, Invalidated, Load, Report, Settle, SignOut, Signing, Step, Work};

impl Driver {
    /// The resource server rejected `token`: stop serving it, and evict it
    /// from the store (only if it is still the cached one). A token rejected
    /// soon after it was fetched fails the round (see
    /// [`TokenSource::invalidate`](crate::TokenSource::invalidate)): the
    /// round is reported like any failed one, and its back-off goes to the
    /// store with the eviction, for the rest of the fleet.
    pub fn invalidate(&mut self, now: Timestamp, token: &AccessToken) -> Invalidated {
        let (backoff, report) = match self.source.reject(now, token) {
            Rejection::NotCurrent => return Invalidated::NotCurrent,
            Rejection::Evicted => (None, None),
            Rejection::Failed(backoff) => (Some(backoff), Some(Report::RoundFailed(Error::TokenRejected))),
        };
        let seq = self
            .store
            .as_mut()
            .map(|store| store.record(Change::Evict(token.clone(), backoff)));
        if seq.is_none() && report.is_none() {
            return Invalidated::Evicted(None);
        }
        Invalidated::Evicted(Some(Settle { seq: None, report }))
    }

    /// Forgets the token (in memory, then in the store) and any flight under
    /// way: wake the waiting callers, then do what [`SignOut`] says.
    pub fn signout(&mut self, now: Timestamp) -> SignOut {
        let (revocation, signing) = match self.source.sign_out(now, false) {
            Some(Started::Send(outgoing)) => (Some(outgoing), None),
            Some(Started::Sign(signing)) => (None, Some(signing)),
            None => (None, None),
        };
        self.flight = None;
        self.load = Load::Done;
        self.hooks = Hooks::NoneAsked;
        self.attempts = None;
        let deletion = self.store.as_mut().map(|store| store.record(Change::Delete));
        SignOut {
            deletion: Settle {
                seq: deletion,
                report: None,
            },
            revocation,
            signing,
        }
    }

    /// Hands back the signature of the sign-out's [`SignOut::signing`]: the
    /// revocation to send, as [`SignOut::revocation`]. `None` when the
    /// signer failed or another sign-out came first (revocation is best
    /// effort: without a fresh assertion it is not sent).
    pub fn revocation_signed(
        &mut self,
        now: Timestamp,
        signing: Signing,
        signature: Result<Vec<u8>, SignError>,
    ) -> Option<Outgoing> {
        match self.source.signed(now, signing.id, signature) {
            Signed::Started(Started::Send(outgoing)) => Some(outgoing),
            // A revocation carries one signature at most (no DPoP proof).
            Signed::Started(Started::Sign(signing)) => {
                self.source.abandon(signing.id);
                None
            }
            Signed::Failed(_) => None,
        }
    }

    /// Hands back the result of the sign-out's revocation: `Ok` when
    /// revoked, or when nothing was left to revoke.
    pub fn handle_revocation(
        &mut self,
        now: Timestamp,
        revocation: RequestId,
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
    pub fn abandon_revocation(&mut self, revocation: RequestId) {
        self.source.abandon(revocation);
    }

    /// The store's writes for a settling call, then its report (after the
    /// writes it applies itself; at once when another caller applies them).
    pub(super) fn settle(&mut self, settle: &mut Settle) -> Step<()> {
        let tail = Tail {
            end_fetch: false,
            reports: VecDeque::from_iter(settle.report.take()),
        };
        let seq = settle.seq;
        let Some(store) = &mut self.store else {
            return self.tail(tail).map_or(Step::Ready(()), Step::Work);
        };
        if seq.is_some() && store.settled(seq) {
            return self.tail(tail).map_or(Step::Ready(()), Step::Work);
        }
        match store.take_turn() {
            Some((seq, task)) => Step::Work(Work::new(task, Job::Store { seq, tail })),
            None => {
                // Another caller applies them, ours included; wait for ours.
                let busy = seq.is_some() && store.busy();
                match self.tail(tail) {
                    Some(work) => Step::Work(work),
                    None if busy => Step::Wait { until: None },
                    None => Step::Ready(()),
                }
            }
        }
    }
}
