//! The tasks of a job the shell performs itself (reports: callbacks, logs
//! and metrics), reading the assertions and the outcomes of the adapters'
//! store calls, logged and counted the same way by both.

use std::io;
use std::sync::PoisonError;

use client_credentials::driver::{AssertionRole, Outcome, Report};
use client_credentials::{AccessToken, AssertionSource};

use crate::assertion_file::AssertionFile;
use crate::driver::{Driver, Io};
use crate::observe;
use crate::store::{store_failed, FleetTurn};

impl<W: Io> Driver<W> {
    /// Tells the user what happened: callbacks (outside the lock), logs, metrics.
    pub(crate) fn report(&self, report: Report) {
        // The callbacks run inside a span naming the key (the first 8 hex
        // digits of its fingerprint), so a client with many keys tells
        // them apart in logs without passing anything secret.
        let _key = tracing::debug_span!("client-credentials.key", oauth.token.key = %self.key()).entered();
        let failed = match report {
            Report::TokenUpdated(token) => {
                if let Some(callback) = &self.settings.on_token_update {
                    callback(&token);
                }
                None
            }
            Report::RefreshFailed(error) => {
                crate::log_event!(W::LOG_TARGET, warn, %error, "client-credentials: refresh failed; the cached token is served until it expires");
                if let Some(callback) = &self.settings.on_error {
                    callback(&error);
                }
                Some(error)
            }
            Report::RoundFailed(error) => {
                crate::log_event!(W::LOG_TARGET, debug, %error, "client-credentials: round failed");
                Some(error)
            }
            Report::RetryAfterCapped(asked) => {
                crate::log_event!(W::LOG_TARGET, warn,
                    retry_after_secs = asked.as_secs(),
                    waiting_secs = self.config().retry().max_retry_after.as_secs(),
                    "client-credentials: the provider's Retry-After is longer than max_retry_after; waiting the maximum"
                );
                None
            }
            Report::RetryScheduled(wait) => {
                observe::backoff(&self.labels, wait);
                None
            }
            _ => None,
        };
        if let Some(error) = failed {
            observe::round_failed(&self.labels, &error);
            if let Some(callback) = &self.settings.on_refresh_failed {
                callback(&error);
            }
        }
    }

    /// Reads the assertion `source` holds for `role`, for a
    /// `Task::ReadAssertion`: calls its callback, or reads its file if it
    /// changed since this role's last read. Outside the state lock, so
    /// callers served from cache never wait for a file system or a callback;
    /// it may block (the tokio adapter runs it on its blocking pool).
    pub fn read_assertion(&self, role: AssertionRole, source: &AssertionSource) -> Outcome {
        let Some(path) = source.path() else {
            return Outcome::Assertion(source.call());
        };
        let mut files = self.assertion_files.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match files.iter().position(|(read, _)| *read == role) {
            Some(index) => index,
            None => {
                files.push((role, AssertionFile::new(path)));
                files.len() - 1
            }
        };
        Outcome::Assertion(files[index].1.read_if_changed())
    }

    /// The outcome of the store's `load`: a failure is logged, and the client
    /// starts without the stored token.
    pub fn loaded(&self, result: io::Result<Option<AccessToken>>) -> Outcome {
        Outcome::Loaded(result.unwrap_or_else(|error| {
            store_failed(W::LOG_TARGET, "load", &error);
            None
        }))
    }

    /// The outcome of the store's fleet hook: counted; a failure is logged,
    /// and the client fetches.
    pub fn fleet_turn(&self, result: io::Result<FleetTurn>) -> Outcome {
        observe::fleet_turn(&self.labels, &result);
        Outcome::FleetTurn(match result {
            Ok(FleetTurn::HoldBack(backoff)) => return Outcome::FleetHeldBack(backoff),
            Ok(FleetTurn::Use(token)) => Some(token),
            Ok(FleetTurn::Fetch) => None,
            Err(error) => {
                crate::log_event!(W::LOG_TARGET, warn, %error, "client-credentials: the store's fleet hook failed; fetching");
                None
            }
        })
    }

    /// The outcome of a store write (`verb`: save, delete, evict): a failure
    /// is logged, never fatal (a store is a cache).
    pub fn written(&self, verb: &str, result: io::Result<()>) -> Outcome {
        if let Err(error) = result {
            store_failed(W::LOG_TARGET, verb, &error);
        }
        Outcome::Done
    }
}
