//! The store's writes, in the order of the state changes that caused them.

use std::collections::VecDeque;

use crate::policy::SharedBackoff;
use crate::token::AccessToken;

use super::Task;

/// A change to the stored token, recorded under the driver's lock and
/// applied later, outside it, by one caller at a time.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Save(AccessToken),
    Delete,
    Evict(AccessToken, Option<SharedBackoff>),
}

impl Change {
    fn into_task(self) -> Task {
        match self {
            Change::Save(token) => Task::Save(token),
            Change::Delete => Task::Delete,
            Change::Evict(token, backoff) => Task::Evict(token, backoff),
        }
    }
}

/// The writes not yet applied, each numbered in the order recorded, and
/// whether a caller holds the turn to apply them.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: VecDeque<(u64, Change)>,
    busy: bool,
    /// How many changes were recorded.
    recorded: u64,
    /// Every change numbered up to this one was applied (or replaced by a
    /// later one that was).
    done: u64,
}

impl Queue {
    /// Records `change` and returns its number. A deletion (or eviction)
    /// replaces every change not yet applied; a save replaces a pending save
    /// but never a pending deletion, which still lands first: otherwise a
    /// save applying now (of the token the deletion dropped) would stay in
    /// the store if the later save failed or never ran.
    pub(super) fn record(&mut self, change: Change) -> u64 {
        self.recorded += 1;
        match change {
            Change::Delete | Change::Evict(..) => self.pending.clear(),
            Change::Save(_) => {
                if matches!(self.pending.back(), Some((_, Change::Save(_)))) {
                    self.pending.pop_back();
                }
            }
        }
        self.pending.push_back((self.recorded, change));
        self.recorded
    }

    /// The first pending change, for a caller that takes the turn to apply
    /// the writes; `None` when another caller holds it or nothing is pending.
    pub(super) fn take_turn(&mut self) -> Option<(u64, Task)> {
        if self.busy {
            return None;
        }
        self.next_change()
    }

    /// Change `finished` was applied (or failed: a store is a cache); the
    /// next one for the caller holding the turn, or `None` (the turn is
    /// given back).
    pub(super) fn next(&mut self, finished: u64) -> Option<(u64, Task)> {
        self.done = self.done.max(finished);
        self.next_change()
    }

    /// The caller holding the turn stopped while applying `applying`
    /// (its store panicked, its task was cancelled): the turn is given back,
    /// and that change counts as done so no one waits for it forever.
    pub(super) fn give_back(&mut self, applying: u64) {
        self.done = self.done.max(applying);
        self.busy = false;
    }

    /// Whether change `seq` has landed (`None`: whether nothing is pending
    /// or being applied).
    pub(super) fn settled(&self, seq: Option<u64>) -> bool {
        match seq {
            Some(seq) => self.done >= seq,
            None => !self.busy && self.pending.is_empty(),
        }
    }

    /// Whether a caller holds the turn.
    pub(super) fn busy(&self) -> bool {
        self.busy
    }

    /// Whether every change recorded has landed: none pending, no caller
    /// holding the turn (what a resting driver requires).
    pub(super) fn is_settled(&self) -> bool {
        self.pending.is_empty() && !self.busy && self.done == self.recorded
    }

    /// How many changes were recorded.
    pub(super) fn recorded(&self) -> u64 {
        self.recorded
    }

    /// A settled queue after `recorded` changes, all landed (a driver waking).
    pub(super) fn settled_at(recorded: u64) -> Queue {
        Queue {
            pending: VecDeque::new(),
            busy: false,
            recorded,
            done: recorded,
        }
    }

    fn next_change(&mut self) -> Option<(u64, Task)> {
        let next = self.pending.pop_front();
        self.busy = next.is_some();
        next.map(|(seq, change)| (seq, change.into_task()))
    }
}
