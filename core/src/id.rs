//! Request ids: how a result is matched to the request the core emitted.
//!
//! A leaf: the error type names an id, and the state machine makes them.

use std::fmt;

/// Identifies a request the core emitted; results are handed back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The id numbered `n` (the state machine counts them up from 1).
    pub(crate) fn new(n: u64) -> Self {
        RequestId(n)
    }

    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
