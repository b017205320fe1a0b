//! The callers: what each holds between steps.

use crate::machine::RefreshTicket;
use crate::time::Timestamp;
use crate::token::AccessToken;

use super::{Driver, Report, Resting, Step};

/// One caller that wants a token, held by the adapter between steps: a
/// usable token (`token()`), or the outcome of a forced refresh.
#[derive(Debug)]
pub struct Call {
    /// `Some`: the forced refresh whose outcome this caller waits for.
    pub(super) refresh: Option<RefreshTicket>,
    /// How many of the config's assertion sources this caller read since
    /// it last waited (see `Config::assertion_sources`).
    pub(super) assertions_read: usize,
}

impl Call {
    /// A caller that wants a usable token (`token()`).
    pub fn token() -> Call {
        Call {
            refresh: None,
            assertions_read: 0,
        }
    }
}

/// A caller that applies the store's pending writes (after an invalidation,
/// or a sign-out's deletion): [`Step::Ready`] once they have landed.
#[derive(Debug)]
pub struct Settle {
    /// `Some(seq)`: wait until write `seq` has landed, even if another caller
    /// applies it; `None`: apply what is pending unless another caller is.
    pub(super) seq: Option<u64>,
    /// What to report once its writes are applied (a round an invalidation
    /// failed), until it is handed out.
    pub(super) report: Option<Report>,
}

/// What a caller holds between steps: a [`Call`] or a [`Settle`].
pub trait Caller: sealed::Sealed {
    /// What the caller ends with (a token, or nothing).
    type Output;
    /// Its next step; see [`Driver::step`](super::Driver::step).
    fn step(&mut self, driver: &mut Driver, now: Timestamp) -> Step<Self::Output>;
    /// Its next step from a driver at rest, when that needs no waking; see
    /// [`Resting::step`](super::Resting::step).
    fn step_resting(&mut self, resting: &Resting, now: Timestamp) -> Option<Step<Self::Output>>;
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
    fn step_resting(&mut self, resting: &Resting, now: Timestamp) -> Option<Step<AccessToken>> {
        resting.step_call(now, self)
    }
}

impl Caller for Settle {
    type Output = ();
    fn step(&mut self, driver: &mut Driver, _now: Timestamp) -> Step<()> {
        driver.settle(self)
    }
    /// Settling is rare (after an invalidation, a sign-out): it wakes the driver.
    fn step_resting(&mut self, _resting: &Resting, _now: Timestamp) -> Option<Step<()>> {
        None
    }
}
