//! What goes out of the driver and what comes back in.

use std::fmt;

use crate::assertion::{AssertionRole, AssertionSource};
use crate::dpop::proof_header;
use crate::error::{ClientAuthError, Error, TransportError};
use crate::id::RequestId;
use crate::jws::SignError;
use crate::jwt_key::{finish_jws, JwtKey};
use crate::machine::Outgoing;
use crate::policy::SharedBackoff;
use crate::time::Timestamp;
use crate::token::AccessToken;

use super::flight::Job;
use super::Settle;

/// What a caller does next, from [`Driver::step`](super::Driver::step).
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate per round
pub enum Step<T = AccessToken> {
    /// Return this: the token of a [`Call`](super::Call); for a [`Settle`], its writes landed.
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
/// back with ([`Driver::handle`](super::Driver::handle)) or to give the job up with ([`Driver::abandon`](super::Driver::abandon)).
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
pub struct Ticket(pub(super) Job);

/// The I/O (or user code) the driver asks an adapter to perform.
#[allow(clippy::large_enum_variant)] // one per task
pub enum Task {
    /// Read the store: [`Outcome::Loaded`].
    Load,
    /// Read the assertion `source` holds for `role`, outside the lock:
    /// call its callback ([`AssertionSource::call`]), or read its file if it
    /// changed since the last read for this role: [`Outcome::Assertion`].
    /// Handed out before a request is due, so the core never calls out.
    ReadAssertion {
        /// Which assertion it is (the core keeps the latest of each).
        role: AssertionRole,
        /// Where it comes from.
        source: AssertionSource,
    },
    /// Sign with an external [`Signer`](crate::Signer) (a key made with
    /// [`JwtKey::from_signer`]), outside the lock:
    /// [`Outcome::Signed`]`(signing.sign())`. The core built the JWS and
    /// finishes it with the signature (a client assertion, a DPoP proof);
    /// the request goes out once every signature is in. Built-in keys sign
    /// inside the core and never make this task.
    Sign(Signing),
    /// Ask the custom provider, passing the cached token:
    /// [`Outcome::Provided`]. Once per round, before its first request.
    Provide(Option<AccessToken>),
    /// Call the store's fleet hook (`begin_fetch(config, now)`) right before
    /// the round's token request: [`Outcome::FleetTurn`].
    TakeFleetTurn(Timestamp),
    /// Perform this HTTP exchange (no redirects, body capped):
    /// [`Outcome::Response`] or [`Outcome::TransportError`]. The number is
    /// its attempt in the round (1: the round's first request of its kind),
    /// for logs and spans.
    Send(Outgoing, u32),
    /// Save this token in the store: [`Outcome::Done`] (a failure is logged,
    /// never fatal: a store is a cache).
    Save(AccessToken),
    /// Delete the stored token: [`Outcome::Done`].
    Delete,
    /// A resource server rejected this token: delete the stored token if it
    /// is still this one, and, when the rejection failed the round, share
    /// its back-off with the fleet (a fleet store's `evict_rejected`):
    /// [`Outcome::Done`].
    Evict(AccessToken, Option<SharedBackoff>),
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
    /// An attempt failed and the next one waits this long (the back-off).
    RetryScheduled(std::time::Duration),
}

/// The result of a [`Task`].
#[allow(clippy::large_enum_variant)] // one per task
pub enum Outcome {
    /// What the store's `load` returned (a failure, logged, is `None`).
    Loaded(Option<AccessToken>),
    /// The assertion read (or why it cannot be used): a callback's value,
    /// or a file's content when it changed; `None` for a file that did not.
    Assertion(Option<Result<String, String>>),
    /// The external signer's signature, or why it could not sign (the
    /// attempt fails with [`ClientAuthError::Signing`]
    /// and is retried by the failure policy).
    Signed(Result<Vec<u8>, SignError>),
    /// What the provider returned.
    Provided(Option<AccessToken>),
    /// What the fleet hook returned: a token another process stored, or
    /// `None` (fetch; also when the hook failed).
    FleetTurn(Option<AccessToken>),
    /// The fleet hook says another process's rejection back-off holds: the
    /// round fails at once with [`Error::TokenRejected`] instead of fetching
    /// (see `TokenSource::hold_back`, crate-private; what
    /// it imposes is capped at the policy's maximum back-off). The hook
    /// judges whether it holds, at the time it was given; the driver does
    /// not judge again (a back-off that ended meanwhile would otherwise let
    /// this process fetch without the fleet's turn).
    FleetHeldBack(SharedBackoff),
    /// The exchange's response.
    Response(http::Response<Vec<u8>>),
    /// The exchange failed.
    TransportError(TransportError),
    /// A store write, `end_fetch` or report was performed.
    Done,
}

/// A signature the core needs from an external [`Signer`](crate::Signer)
/// (a key made with [`JwtKey::from_signer`]): call [`Signing::sign`]
/// outside the lock, then hand the result back — for a token or revocation
/// request, to the driver ([`Outcome::Signed`]); for a resource request's
/// DPoP proof ([`DpopProof::Unsigned`](crate::DpopProof::Unsigned)), to
/// [`Signing::finish`], which needs no lock.
pub struct Signing {
    /// The request the signature is for.
    pub(crate) id: RequestId,
    key: JwtKey,
    /// The JWS signing input, `base64url(header).base64url(claims)`.
    input: String,
}

impl Signing {
    pub(crate) fn new(id: RequestId, key: JwtKey, input: String) -> Signing {
        Signing { id, key, input }
    }

    /// The request the signature is for: a token or revocation request, or
    /// the resource request a DPoP proof is for (numbered like the others,
    /// for logs; the core never sends it).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The key to sign with.
    pub fn key(&self) -> &JwtKey {
        &self.key
    }

    /// The JWS signing input to sign.
    pub fn message(&self) -> &[u8] {
        self.input.as_bytes()
    }

    /// Signs [`Signing::message`] with [`Signing::key`]'s signer (see
    /// [`JwtKey::sign`]); it may wait for an HSM or a KMS, so never call it
    /// under a lock other callers need.
    pub fn sign(&self) -> Result<Vec<u8>, SignError> {
        self.key.sign(self.message())
    }

    /// Finishes a resource request's DPoP proof
    /// ([`DpopProof::Unsigned`](crate::DpopProof::Unsigned)) with the
    /// result of [`Signing::sign`]: the `DPoP` header's value, the JWS
    /// `input.base64url(signature)` as the core finishes the proofs of its
    /// own requests. A signer's error is
    /// [`ClientAuthError::Signing`]: send
    /// nothing then. (A token request's signature goes back to the driver
    /// instead, which finishes that request.)
    pub fn finish(self, signature: Result<Vec<u8>, SignError>) -> Result<http::HeaderValue, Error> {
        let signing = |e: SignError| Error::ClientAuth(ClientAuthError::Signing(e));
        let signature = signature.map_err(signing)?;
        let proof = zeroize::Zeroizing::new(finish_jws(&self.input, &signature));
        proof_header(&proof).map_err(signing)
    }
}

impl fmt::Debug for Signing {
    /// The key (algorithm and key id) and the message's length: the message
    /// holds a client assertion's claims.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing")
            .field("key", &self.key)
            .field("message_len", &self.input.len())
            .finish()
    }
}

/// What sign-out leaves to do, from [`Driver::signout`](super::Driver::signout).
#[derive(Debug)]
pub struct SignOut {
    /// Step this until [`Step::Ready`]: the store's deletion has landed.
    pub deletion: Settle,
    /// Then send this revocation (RFC 7009) and hand its result to
    /// [`Driver::handle_revocation`](super::Driver::handle_revocation).
    pub revocation: Option<Outgoing>,
    /// Or, when the revocation's client assertion needs an external
    /// signer, sign this first (outside the lock) and hand it to
    /// [`Driver::revocation_signed`](super::Driver::revocation_signed) for
    /// the revocation to send.
    pub signing: Option<Signing>,
}

/// What invalidating a token did, from [`Driver::invalidate`](super::Driver::invalidate).
#[derive(Debug)]
pub enum Invalidated {
    /// It was not the cached token: nothing changed.
    NotCurrent,
    /// It was evicted (wake the waiting callers); step the [`Settle`], if
    /// any, to its end: it evicts the token from the store and reports the
    /// round the rejection failed.
    Evicted(Option<Settle>),
}

/// What a background refresh task does next, from [`Driver::background`](super::Driver::background).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Refresh now: step a [`Call::token`](super::Call::token) to its end.
    Refresh,
    /// Sleep until woken, or until this time (`None`: until woken).
    Sleep(Option<Timestamp>),
}

impl Work {
    pub(super) fn new(task: Task, job: Job) -> Work {
        Work {
            task,
            ticket: Ticket(job),
        }
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
            Task::ReadAssertion { role, .. } => f
                .debug_struct("ReadAssertion")
                .field("role", role)
                .finish_non_exhaustive(),
            Task::Sign(signing) => f.debug_tuple("Sign").field(signing).finish(),
            Task::Provide(_) => f.write_str("Provide"),
            Task::TakeFleetTurn(now) => f.debug_tuple("TakeFleetTurn").field(now).finish(),
            Task::Send(outgoing, attempt) => f.debug_tuple("Send").field(outgoing).field(attempt).finish(),
            Task::Save(_) => f.write_str("Save"),
            Task::Delete => f.write_str("Delete"),
            Task::Evict(..) => f.write_str("Evict"),
            Task::EndFetch => f.write_str("EndFetch"),
            Task::Report(report) => f.debug_tuple("Report").field(report).finish(),
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Loaded(_) => "Loaded",
            Outcome::Assertion(_) => "Assertion",
            Outcome::Signed(_) => "Signed",
            Outcome::Provided(_) => "Provided",
            Outcome::FleetTurn(_) => "FleetTurn",
            Outcome::FleetHeldBack(_) => "FleetHeldBack",
            Outcome::Response(_) => "Response",
            Outcome::TransportError(_) => "TransportError",
            Outcome::Done => "Done",
        })
    }
}
