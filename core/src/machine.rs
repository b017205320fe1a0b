//! `TokenSource`: the token lifecycle as a state machine driven by the caller.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::Response;
use url::Url;
use zeroize::Zeroizing;

use crate::assertion::{
    build_assertion, check_external, expiry, unavailable, unverified_claims, AssertionClaims, AssertionKey,
    AssertionRole, JtiSource, CLIENT_ASSERTION_TYP, JWT_BEARER_ASSERTION_TYPE,
};
use crate::config::{AssertionAudience, ClientAuth, Config, DiscoveryOrder, Endpoint, Issuer, ResourceServer};
use crate::discovery::{parse_discovery_with, DiscoveryLocation, Fetched, ProviderMetadata};
use crate::dpop::{dpop_proof, proof_header, DpopClaims, DpopNonces, DpopProof, USE_DPOP_NONCE};
use crate::driver::Signing;
use crate::endpoint::check_endpoint;
use crate::error::{ClientAuthError, DiscoveryError, DpopError, Error, GrantError, OAuthErrorCode, TransportError};
use crate::id::RequestId;
use crate::jws::SignError;
use crate::jwt_key::{finish_jws, Jws, JwtKey};
use crate::policy::{parse_retry_after, refresh_time, Jitter, SharedBackoff};
use crate::redact::{clean, excerpt, Credentials};
use crate::request::{carried_credentials, get_json, revocation_request, token_request, Grant, Prepared};
use crate::resource::{check_resource, choose_authorization_server, parse_resource_metadata_with, ResourceMetadata};
use crate::response::{check_size, oauth_error, parse_json_object, parse_token_response_with, Expected};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::token::AccessToken;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Fetching the provider's metadata document, or the protected
    /// resource's (RFC 9728) that names the provider.
    Discovery,
    /// Fetching a token (client credentials or refresh-token grant).
    Token,
    /// Revoking a token at sign-out (RFC 7009).
    Revocation,
}

/// A request to perform now. It is in flight until its result is handed back
/// with [`TokenSource::handle_response`] or
/// [`TokenSource::handle_transport_error`], or it is [abandoned](TokenSource::abandon).
///
/// Do not follow redirects for it, and stop reading the body past
/// [`Config::max_body_size`] bytes (hand over what was read: the core reports it).
pub struct Outgoing {
    /// Hand this back with the result.
    pub id: RequestId,
    /// What the request is for.
    pub kind: RequestKind,
    /// The request. Its body and `Authorization` header carry credentials.
    pub request: http::Request<Vec<u8>>,
}

impl fmt::Debug for Outgoing {
    /// Method and URI only: the body and headers carry credentials, and the
    /// URI's query (shown as `?…`) may carry a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.request.uri();
        let scheme = uri.scheme_str().map(|s| format!("{s}://")).unwrap_or_default();
        let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
        let query = if uri.query().is_some() { "?…" } else { "" };
        let shown = format!("{scheme}{}{port}{}{query}", uri.host().unwrap_or(""), uri.path());
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("method", self.request.method())
            .field("uri", &format_args!("{shown}"))
            .finish_non_exhaustive()
    }
}

/// What the caller should do next, from [`TokenSource::poll`].
///
/// This is all an adapter needs to decide: it matches the four variants and
/// calls no other query.
///
/// `Send` is larger than the others; boxing it would cost an allocation per
/// request for no gain on the hot `Ready` path, which returns a reference.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Action<'a> {
    /// Use this token. It is fresh, or a refresh is under way (in flight,
    /// backing off, or cooling down after a failed round) and this one has not
    /// expired yet.
    Ready(&'a AccessToken),
    /// Perform this request and hand the result back. It is now in flight.
    Send(Outgoing),
    /// Nothing to use yet: a request is in flight (`until: None`; wait for its
    /// result), or a retry within the current round waits until `until` (poll
    /// again then).
    Wait {
        /// When to poll again, if waiting for a time rather than for a result.
        until: Option<Timestamp>,
    },
    /// No usable token, and the last round failed with this error: give it to
    /// callers now, do not wait. No request goes out before
    /// [`TokenSource::retry_at`] (the end of the cool-down); the first poll
    /// after that starts a new round.
    Failed(&'a Error),
}

/// Names the round a [`TokenSource::force_refresh`] waits for; hand it to
/// [`TokenSource::refresh_failed`] to learn whether that round failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefreshTicket(u64);

/// What a handled result changed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A new token is cached (persist it, notify listeners).
    TokenUpdated(AccessToken),
    /// Provider metadata was fetched and validated.
    DiscoveryUpdated(ProviderMetadata),
    /// The protected resource's metadata (RFC 9728) was fetched and
    /// validated; the provider it names is discovered next.
    ResourceMetadataUpdated(ResourceMetadata),
    /// The attempt failed and will be retried at `at` (poll then).
    RetryScheduled {
        /// When the next attempt may be sent.
        at: Timestamp,
        /// Why the attempt failed.
        error: Error,
        /// The server's `Retry-After`, when it asked for longer than
        /// [`RetryPolicy::max_retry_after`](crate::RetryPolicy::max_retry_after)
        /// and the wait was capped to that.
        retry_after_capped: Option<Duration>,
    },
    /// The answer calls for a different request: the RFC 8414 location after
    /// a 404, the client credentials grant after a refresh token was refused,
    /// discovery again after the token endpoint answered 404/410, or the
    /// previous metadata kept after a failed re-discovery. It goes out on the
    /// next poll, at once while no round has failed since the last success,
    /// else after a back-off step like any retry (see
    /// [`TokenSource::retry_at`]).
    Fallback {
        /// What prompted it.
        error: Error,
    },
    /// The round failed, but the cached token has not expired and is still
    /// served; the next round starts no sooner than `retry_at`. (Without a
    /// usable token the round's end is the `Err` of the call instead.)
    RefreshFailed {
        /// Why the round failed.
        error: Error,
        /// When the next round may start (the end of the cool-down).
        retry_at: Timestamp,
        /// The server's `Retry-After`, when it asked for longer than
        /// [`RetryPolicy::max_retry_after`](crate::RetryPolicy::max_retry_after)
        /// and the wait was capped to that.
        retry_after_capped: Option<Duration>,
    },
    /// The token was revoked at sign-out.
    Revoked,
}

/// A `resource_metadata` URL a 401 named (RFC 9728 §5.1), with the URL of
/// the request it answered: the document read there must name that URL as
/// its `resource` (RFC 9728 §3.3).
#[derive(Debug, Clone, PartialEq)]
struct ResourceHint {
    metadata_url: Url,
    requested: String,
}

/// What the request in flight asked for, with what its answer is checked against.
#[derive(Clone, PartialEq)]
enum Sent {
    /// The resource's metadata (RFC 9728), read at `url`; the document must
    /// name `resource` (RFC 9728 §3.3).
    ResourceMetadata { url: Url, resource: String },
    /// `issuer`'s metadata at `location` (boxed: an issuer with its URLs is
    /// large, and most requests are token requests).
    Discovery {
        issuer: Box<Issuer>,
        location: DiscoveryLocation,
    },
    /// A token, sent at `sent_at`: its `expires_in` counts from then
    /// (conservative by one round trip).
    /// `subject_expires_at`: the `exp` of the grant's subject token, which
    /// bounds the lifetime of an opaque token issued without `expires_in`.
    Token {
        refresh_grant: bool,
        sent_at: Timestamp,
        subject_expires_at: Option<Timestamp>,
    },
    /// A revocation at sign-out (RFC 7009).
    Revocation,
}

impl fmt::Debug for Sent {
    /// What was asked for, without the URLs: a hinted resource URL may carry
    /// a query the application treats as private.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sent::ResourceMetadata { .. } => f.write_str("ResourceMetadata"),
            Sent::Discovery { location, .. } => f.debug_tuple("Discovery").field(location).finish(),
            Sent::Token {
                refresh_grant,
                sent_at,
                subject_expires_at,
            } => f
                .debug_struct("Token")
                .field("refresh_grant", refresh_grant)
                .field("sent_at", sent_at)
                .field("subject_expires_at", subject_expires_at)
                .finish(),
            Sent::Revocation => f.write_str("Revocation"),
        }
    }
}

#[derive(Debug)]
enum Phase {
    Idle,
    /// The next request is built but for its external signatures (see
    /// [`Pending`]): it counts as in flight, so no other goes out.
    Signing {
        id: RequestId,
        pending: Box<Pending>,
    },
    /// `sent_at`: when it went out (a failing streak counts from then).
    InFlight {
        id: RequestId,
        /// (Boxed: an idle phase, every idle key's, stays small.)
        sent: Box<Sent>,
        sent_at: Timestamp,
    },
}

impl Phase {
    fn is_idle(&self) -> bool {
        matches!(self, Phase::Idle)
    }
}

/// A token or revocation request built but for the JWS parts an external
/// signer has to sign ([`Signing`]): everything needed to finish it once the
/// signatures are in, made when it was started (so its `jti`, `iat` and
/// DPoP nonce are those of the signing input).
struct Pending {
    sent: Sent,
    url: Url,
    auth: ClientAuth,
    /// The refresh token of a refresh-token grant.
    refresh_token: Option<Secret>,
    /// For a revocation: the token revoked and its `token_type_hint`.
    revoked: Option<(Zeroizing<String>, &'static str)>,
    parts: Parts,
}

impl fmt::Debug for Pending {
    /// What it is for, never what it carries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// A request's per-attempt credentials, each signed or awaiting a signature.
#[derive(Default)]
struct Parts {
    /// `client_assertion_type` and the assertion.
    assertion: Option<(String, Jws)>,
    /// The DPoP proof.
    dpop: Option<Jws>,
    /// The grant's subject token and its `exp`, and the actor token.
    subject: Option<Zeroizing<String>>,
    subject_expires_at: Option<Timestamp>,
    actor: Option<Zeroizing<String>>,
}

impl Parts {
    /// The first part that awaits an external signature: its key and signing input.
    fn unsigned(&self) -> Option<(&JwtKey, &str)> {
        let assertion = self.assertion.as_ref().map(|(_, jws)| jws);
        [assertion, self.dpop.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|jws| match jws {
                Jws::Unsigned { key, input } => Some((key, input.as_str())),
                Jws::Signed(_) => None,
            })
    }

    /// Finishes the first unsigned part with `signature`.
    fn sign(&mut self, signature: &[u8]) {
        let assertion = self.assertion.as_mut().map(|(_, jws)| jws);
        let first = [assertion, self.dpop.as_mut()]
            .into_iter()
            .flatten()
            .find(|jws| matches!(jws, Jws::Unsigned { .. }));
        if let Some(jws) = first {
            if let Jws::Unsigned { input, .. } = jws {
                *jws = Jws::Signed(Zeroizing::new(finish_jws(input, signature)));
            }
        }
    }

    /// The request's credentials, once every part is signed (`None` before).
    fn finished(self) -> Result<Option<Prepared>, Error> {
        let signed = |jws| match jws {
            Jws::Signed(jws) => Some(jws),
            Jws::Unsigned { .. } => None,
        };
        let assertion = match self.assertion {
            Some((kind, jws)) => match signed(jws) {
                Some(jws) => Some((kind, jws)),
                None => return Ok(None),
            },
            None => None,
        };
        let dpop = match self.dpop.map(signed) {
            Some(None) => return Ok(None),
            Some(Some(proof)) => Some(proof_header(&proof).map_err(|e| Error::ClientAuth(e.into()))?),
            None => None,
        };
        Ok(Some(Prepared {
            assertion,
            dpop,
            subject: self.subject,
            actor: self.actor,
        }))
    }
}

/// The next step of a request being started: send it, or first sign.
pub(crate) enum Started {
    Send(Outgoing),
    Sign(Signing),
}

/// What the driver does next, from [`TokenSource::next`]: what [`Action`]
/// says, or a signature for an external signer (which `poll` performs itself).
pub(crate) enum Next<'a> {
    Act(Action<'a>),
    Sign(Signing),
}

/// What a signature handed back with [`TokenSource::signed`] led to.
pub(crate) enum Signed {
    /// The request's next signature, or the request to send.
    Started(Started),
    /// The signer failed (the attempt failed: the result is as a failed
    /// exchange's), or the request is no longer pending
    /// ([`Error::UnknownRequest`]).
    Failed(Result<Event, Error>),
}

/// Where the rounds of attempts stand.
#[derive(Debug, Clone)]
enum Round {
    /// No round runs; the last one succeeded (or none ran yet).
    Done,
    /// A round runs; `attempts` of its requests have failed. `latest_error`
    /// is set when a round has failed since the last token: the latest
    /// error, which callers get during this round's back-off (see `held`).
    /// (The errors are boxed: a healthy key has none, and keeps its state
    /// small.)
    Running {
        attempts: u32,
        latest_error: Option<Box<Error>>,
    },
    /// The last round failed with `error`; it is the callers' until a new
    /// round starts.
    Failed { error: Box<Error> },
}

/// The cached token with everything that belongs to it: when it is due for
/// refresh, when it stops being usable, and whether a forced refresh
/// withholds it. One value, so there is no refresh time without a token and
/// no forced refresh of nothing.
#[derive(Debug)]
struct Cached {
    token: AccessToken,
    /// `None`: the token never expires.
    expiry: Option<Expiry>,
    /// A forced refresh is pending: the token is not served as fresh.
    forced: bool,
}

#[derive(Debug, Clone, Copy)]
struct Expiry {
    /// When the token stops being served from cache.
    refresh_at: Timestamp,
    /// When it stops being usable at all (expiry minus clock skew).
    usable_until: Timestamp,
}

impl Cached {
    fn new(config: &Config, token: AccessToken) -> Cached {
        let expiry = token.expires_at().map(|expires_at| {
            // The skew may shorten a token's use by at most half its
            // lifetime: a larger one would make every poll refetch.
            let lifetime = expires_at.saturating_duration_since(token.received_at());
            let usable_until = expires_at.saturating_sub(config.clock_skew().min(lifetime / 2));
            Expiry {
                refresh_at: refresh_time(token.received_at(), usable_until, config.refresh_margin()),
                usable_until,
            }
        });
        Cached {
            token,
            expiry,
            forced: false,
        }
    }

    fn is_usable(&self, now: Timestamp) -> bool {
        self.expiry.is_none_or(|e| now < e.usable_until)
    }

    fn is_fresh(&self, now: Timestamp) -> bool {
        !self.forced && self.expiry.is_none_or(|e| now < e.refresh_at)
    }
}

/// Provider metadata in use, with the endpoints it names, checked once when
/// it was read. Held in an `Arc`: the keys of one client share one copy
/// (see [`Discovery`]).
#[derive(Debug, Clone)]
struct Discovered {
    metadata: ProviderMetadata,
    token_url: Url,
    revocation_url: Option<Url>,
    fetched_at: Timestamp,
}

/// A failing streak that the arrival of a token did not end: the token came
/// while the provider was failing, or after a resource rejected the one
/// before. If a resource rejects a token on probation (fetched less than the
/// longest back-off step ago), the streak goes on from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    /// Requests answered without a usable token so far.
    failures: u32,
    /// When the first of them failed (or the first rejection).
    since: Timestamp,
}

/// What [`TokenSource::reject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The token was not the cached one: nothing changed.
    NotCurrent,
    /// It was evicted; the next token is fetched at once.
    Evicted,
    /// It was evicted and the round failed: this back-off holds.
    Failed(SharedBackoff),
}

/// The token lifecycle: what to fetch, when, and what to serve meanwhile.
///
/// A plain struct without I/O, threads or clock reads: the caller passes `now`,
/// performs the [`Outgoing`] requests it is given and hands back the results.
/// At most one request is in flight; a result for any other id is rejected and
/// changes nothing; a failed or malformed refresh never evicts a token that
/// has not expired.
///
/// See the crate documentation for the whole loop.
///
/// Its `Debug` shows where the lifecycle stands (the configuration, the
/// token, redacted as always, the phase and the failures), never a
/// credential: no provided assertion, refresh token, `jti` or jitter seed,
/// DPoP nonce, or what the request in flight carries.
pub struct TokenSource {
    config: Config,
    cached: Option<Cached>,
    /// The refresh token the next token request uses (RFC 6749 §6). Kept
    /// apart from the cached token because it outlives it: a token the
    /// resource server rejected is evicted, and its refresh token still gets
    /// the next one; one the provider refused is dropped while the token it
    /// came with is still served.
    refresh_token: Option<Secret>,
    /// With discovery: the metadata in use, once read.
    /// (Behind an `Arc`, shared with the client's other keys, see
    /// [`Discovery`]; the other discovery state below is boxed: most keys
    /// never use it, and an idle key's state is kept small.)
    discovered: Option<Arc<Discovered>>,
    metadata_stale: bool,
    location: usize,
    rediscovered: bool,
    /// RFC 9728: the resource's metadata, the issuer it names, where it is
    /// read (a 401 challenge may name another URL), and whether it was read
    /// in the discovery round under way (then the issuer is discovered next).
    resource_metadata: Option<Arc<ResourceMetadata>>,
    authorization_server: Option<Box<Issuer>>,
    resource_hint: Option<Box<ResourceHint>>,
    resource_read: bool,
    /// The authorization server the resource's metadata named when it was
    /// first read: with the configured allowed ones, the only servers the
    /// client's credentials may go to from then on.
    trusted_authorization_server: Option<String>,
    phase: Phase,
    round: Round,
    /// No token or discovery request goes out before this (back-off,
    /// cool-down); `None` while nothing holds one back.
    not_before: Option<Timestamp>,
    /// Requests answered without a token since the last token, across
    /// rounds: once one has failed, the back-off keeps doubling with this
    /// count until a token arrives.
    failures: u32,
    /// When the first of those requests failed.
    failing_since: Option<Timestamp>,
    /// When the request answered last was sent: a failing streak starts
    /// there, not when the (perhaps slow) answer came.
    answered_sent_at: Option<Timestamp>,
    /// The `Retry-After` of the last failed attempt, when it was capped.
    retry_after_capped: Option<Duration>,
    /// Numbers of the last round started, and of the last that failed /
    /// succeeded (`None`: none yet).
    rounds_started: u64,
    last_failed_round: Option<u64>,
    last_good_round: Option<u64>,
    next_id: u64,
    jitter: Jitter,
    jti: JtiSource,
    /// The latest assertion read for each role (by the driver's
    /// `Task::ReadAssertion`), or why it could not be. Zeroized when
    /// replaced or dropped.
    assertions: Vec<(AssertionRole, Result<Zeroizing<String>, String>)>,
    /// The latest `DPoP-Nonce` of each origin (token endpoint and resource
    /// servers, RFC 9449 §8 and §9), for the next request there.
    dpop_nonces: DpopNonces,
    /// Set while the tokens fetched are on probation (see [`Streak`]):
    /// cleared when a token lives to its refresh.
    rejections: Option<Streak>,
    /// The request in flight (or the last one) retried a `use_dpop_nonce` answer.
    nonce_retried: bool,
    /// Every credential the request in flight carries: cut out of any server
    /// text its result quotes (errors, events).
    sent_credentials: Credentials,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("config", &self.config)
            .field("token", &self.cached.as_ref().map(|c| &c.token))
            .field("phase", &self.phase)
            .field("round", &self.round)
            .field("failures", &self.failures)
            .field("not_before", &self.not_before)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source with nothing cached.
    ///
    /// `seed` drives the retry jitter and the `jti` of client assertions and
    /// DPoP proofs. Adapters pass fresh OS randomness, so processes sharing a
    /// client never repeat a `jti`; tests pass a fixed value to be repeatable.
    /// There is no default: a constant seed in production would make every
    /// process's `jti`s collide. [`Config::jitter_seed`], when set, overrides
    /// the jitter alone (repeatable back-off in an adapter's tests).
    pub fn new(config: Config, seed: [u8; 32]) -> Self {
        let jitter_seed = config.jitter_seed().unwrap_or_else(|| {
            let mut first = [0u8; 8];
            first.copy_from_slice(&seed[..8]);
            u64::from_le_bytes(first)
        });
        TokenSource {
            config,
            cached: None,
            refresh_token: None,
            discovered: None,
            metadata_stale: false,
            location: 0,
            rediscovered: false,
            resource_metadata: None,
            authorization_server: None,
            resource_hint: None,
            resource_read: false,
            trusted_authorization_server: None,
            phase: Phase::Idle,
            round: Round::Done,
            not_before: None,
            failures: 0,
            failing_since: None,
            answered_sent_at: None,
            retry_after_capped: None,
            rounds_started: 0,
            last_failed_round: None,
            last_good_round: None,
            next_id: 1,
            jitter: Jitter::new(jitter_seed),
            jti: JtiSource::new(seed),
            assertions: Vec::new(),
            dpop_nonces: DpopNonces::default(),
            rejections: None,
            nonce_retried: false,
            sent_credentials: Credentials::default(),
        }
    }

    /// A source seeded with a token (from a store, a database, by hand). An
    /// expired one is refreshed on the first poll, using its refresh token if it has one.
    /// `seed` is as for [`TokenSource::new`].
    pub fn with_token(config: Config, token: AccessToken, seed: [u8; 32]) -> Self {
        let mut source = TokenSource::new(config, seed);
        source.insert_token(token);
        source
    }

    /// Keeps the assertion read for `role` (or why it could not be read),
    /// for the next requests: the driver reads files and calls callbacks
    /// before a request is due, outside its lock. The assertion's `exp` is
    /// checked before each use.
    pub(crate) fn provide_assertion(&mut self, role: AssertionRole, assertion: Result<String, String>) {
        // The store key covers whom a subject speaks for from the moment it is read.
        if let Ok(token) = &assertion {
            self.config.observe_token(role, token);
        }
        let assertion = assertion.map(Zeroizing::new);
        match self.assertions.iter_mut().find(|(kept, _)| *kept == role) {
            Some((_, kept)) => *kept = assertion,
            None => self.assertions.push((role, assertion)),
        }
    }

    /// The latest assertion read for `role`.
    fn assertion(&self, role: AssertionRole) -> Option<&Result<Zeroizing<String>, String>> {
        self.assertions.iter().find(|(kept, _)| *kept == role).map(|(_, a)| a)
    }

    /// The token of `role` for the request being built, as last read by
    /// the driver, with the `exp` it carries: never an empty
    /// or expired one (a typed error naming the source instead).
    fn external_token(
        &self,
        role: AssertionRole,
        source: &crate::AssertionSource,
        now: Timestamp,
        must_be_jwt: bool,
        inline: bool,
    ) -> Result<(Zeroizing<String>, Option<Timestamp>), Error> {
        let source_name = || source.describe();
        let called = if inline { source.call() } else { None };
        let token = match (called, self.assertion(role)) {
            (Some(result), _) => Zeroizing::new(result.map_err(|reason| GrantError::Unavailable {
                role,
                source_name: source_name(),
                reason: clean(&reason, 200),
            })?),
            (None, Some(Ok(token))) => token.clone(),
            (None, Some(Err(reason))) => {
                return Err(GrantError::Unavailable {
                    role,
                    source_name: source_name(),
                    reason: clean(reason, 200),
                }
                .into())
            }
            (None, None) => {
                return Err(GrantError::Unavailable {
                    role,
                    source_name: source_name(),
                    reason: "it has not been read yet".into(),
                }
                .into())
            }
        };
        let token = Zeroizing::new(token.trim().to_owned());
        let invalid = |reason| GrantError::Invalid {
            role,
            source_name: source_name(),
            reason,
        };
        if token.is_empty() {
            return Err(invalid("it is empty").into());
        }
        let claims = unverified_claims(&token);
        if must_be_jwt && claims.is_none() {
            return Err(invalid("it is not a JWT with readable claims").into());
        }
        let expires_at = claims.as_ref().and_then(expiry);
        if let Some(expired_at) = expires_at.filter(|at| *at <= now) {
            return Err(GrantError::Expired {
                role,
                source_name: source_name(),
                expired_at,
            }
            .into());
        }
        self.config.observe_token(role, &token);
        Ok((token, expires_at))
    }

    /// Keeps `nonce`, a `DPoP-Nonce` header from a response of `url`'s
    /// origin (a resource server's, on a `401` or a success): the next proof
    /// for that origin from [`TokenSource::dpop_proof`] carries it, so a
    /// server that demands nonces is not asked twice per request (RFC 9449
    /// §9). The latest nonce of each of the last 64 origins is kept.
    pub(crate) fn remember_dpop_nonce(&mut self, url: &str, nonce: &str) {
        self.dpop_nonces.remember(url, nonce);
    }

    /// A DPoP proof (RFC 9449 §7) for a request to a resource: `htm` =
    /// `method`, `htu` = `uri` without query and fragment, `ath` = the hash of
    /// `access_token`, a fresh `jti`, `iat` = `now`. Send it as the `DPoP`
    /// header next to `Authorization: DPoP <token>`. `Ok(None)` when DPoP is
    /// not configured. `nonce` is the resource server's, if it asked for one;
    /// without it, the latest nonce kept for `uri`'s origin (the adapters'
    /// clients keep the resource servers' nonces) is used.
    ///
    /// A built-in key signs here ([`DpopProof::Signed`]); an external
    /// [`Signer`](crate::Signer) is never called: the proof comes back
    /// [`DpopProof::Unsigned`], to sign outside whatever lock guards this
    /// source and finish with [`Signing::finish`].
    pub fn dpop_proof(
        &mut self,
        now: Timestamp,
        method: &http::Method,
        uri: &str,
        access_token: Option<&AccessToken>,
        nonce: Option<&str>,
    ) -> Result<Option<DpopProof>, Error> {
        let Some(key) = self.config.dpop_key() else {
            return Ok(None);
        };
        let alg = self.dpop_alg(key)?;
        let jti = self.jti.next(now);
        let claims = DpopClaims {
            method,
            uri,
            now,
            jti: &jti,
            nonce: nonce.or_else(|| self.dpop_nonces.get(uri)),
            access_token: access_token.map(AccessToken::secret),
        };
        let signing = |e: SignError| Error::ClientAuth(ClientAuthError::Signing(e));
        match dpop_proof(key, alg, claims).map_err(signing)? {
            Jws::Signed(proof) => proof_header(&proof)
                .map(|p| Some(DpopProof::Signed(p)))
                .map_err(signing),
            Jws::Unsigned { key, input } => {
                let id = self.next_id();
                Ok(Some(DpopProof::Unsigned(Signing::new(id, key, input))))
            }
        }
    }

    /// The `alg` of DPoP proofs, checked against `dpop_signing_alg_values_supported`.
    fn dpop_alg(&self, key: &JwtKey) -> Result<&'static str, Error> {
        let listed = self
            .metadata()
            .and_then(|m| m.string_list("dpop_signing_alg_values_supported"));
        key.algorithm()
            .negotiate(listed.as_deref())
            .map_err(|()| unsupported("DPoP proofs", key.algorithm(), listed))
    }

    /// Caches a token obtained elsewhere unconditionally (seeding by hand).
    /// A provider or a fleet store should use [`TokenSource::offer_token`],
    /// which never replaces a token with an older one.
    pub(crate) fn insert_token(&mut self, token: AccessToken) {
        self.refresh_token = token.refresh_secret().cloned();
        self.cached = Some(Cached::new(&self.config, token));
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The discovered metadata, if any.
    pub(crate) fn metadata(&self) -> Option<&ProviderMetadata> {
        self.discovered.as_ref().map(|d| &d.metadata)
    }

    /// A 401 from the resource server to a request for `requested` named
    /// where its metadata is (`WWW-Authenticate: Bearer
    /// resource_metadata="…"`, RFC 9728 §5.1): read it there in the next
    /// discovery round, which starts with the next token request.
    ///
    /// Followed only with
    /// [`ConfigBuilder::resource_server`](crate::ConfigBuilder::resource_server),
    /// and only when `url` and `requested` are both on the resource's own
    /// origin (https, loopback aside): a hint elsewhere is ignored. The
    /// document read there must name `requested` exactly as its `resource`
    /// (RFC 9728 §3.3), and an authorization server the client may use
    /// (see [`ConfigBuilder::allow_authorization_server`](crate::ConfigBuilder::allow_authorization_server));
    /// otherwise it is refused with a typed error and the client keeps its
    /// server. A hint naming the resource's well-known metadata URL means
    /// that document, checked as at first discovery. Returns whether
    /// anything changed (`false` for the URL already in use, one that is not
    /// acceptable, or while the resource's metadata is being read).
    pub fn follow_resource_metadata(&mut self, requested: &str, url: &str) -> bool {
        let Endpoint::ResourceServer(resource) = self.config.endpoint() else {
            return false;
        };
        if matches!(&self.phase, Phase::InFlight { sent, .. } if matches!(**sent, Sent::ResourceMetadata { .. })) {
            // The answer in flight is checked against the hint it was sent for.
            return false;
        }
        let insecure = self.config.allows_insecure_http();
        let (Ok(url), Ok(resource_url), Ok(requested_url)) = (
            check_resource(url, insecure),
            Url::parse(resource.as_str()),
            Url::parse(requested),
        ) else {
            return false;
        };
        // Only the resource itself says where its metadata is: a hint on
        // another origin (or for a request to another origin) could name any
        // authorization server.
        let origin = resource_url.origin();
        if url.origin() != origin || requested_url.origin() != origin {
            return false;
        }
        let hint = match *resource.metadata_url() == url {
            true => None,
            false => Some(Box::new(ResourceHint {
                metadata_url: url,
                requested: requested.to_owned(),
            })),
        };
        if self.resource_hint == hint {
            return false;
        }
        self.resource_hint = hint;
        self.resource_read = false;
        self.metadata_stale = true;
        true
    }

    /// Where the resource's metadata is read, and the `resource` the document
    /// must name (RFC 9728 §3.3): the configured resource at its well-known
    /// location, or the URL of the request whose 401 named another location.
    fn resource_metadata_location(&self, resource: &ResourceServer) -> (Url, String) {
        match &self.resource_hint {
            Some(hint) => (hint.metadata_url.clone(), hint.requested.clone()),
            None => (resource.metadata_url().clone(), resource.as_str().to_owned()),
        }
    }

    /// The cached token, fresh or not.
    pub(crate) fn token(&self) -> Option<&AccessToken> {
        self.cached.as_ref().map(|c| &c.token)
    }

    /// The cached token if it has not expired at `now` (even inside the
    /// refresh margin, during a forced refresh, or during a cool-down). A
    /// read-only view: [`TokenSource::poll`] decides what callers get.
    pub fn usable(&self, now: Timestamp) -> Option<&AccessToken> {
        self.cached.as_ref().filter(|c| c.is_usable(now)).map(|c| &c.token)
    }

    /// When the cached token stops being served from cache: `None` when there
    /// is none (or a forced refresh is pending), [`Timestamp::MAX`] for a token
    /// without expiry. Until then [`TokenSource::poll`] returns it as `Ready`,
    /// so an adapter may publish `(token, refresh_at)` and serve reads without a lock.
    pub fn refresh_at(&self) -> Option<Timestamp> {
        let cached = self.cached.as_ref().filter(|c| !c.forced)?;
        Some(cached.expiry.map_or(Timestamp::MAX, |e| e.refresh_at))
    }

    /// When the next request may go out, while a retry back-off or the
    /// cool-down after a failed round holds it back: poll again then (a
    /// background refresher sleeps until the later of this and
    /// [`TokenSource::refresh_at`]). `None` when nothing holds a request back.
    /// Time passing starts nothing: only a poll at or after this time does.
    pub fn retry_at(&self) -> Option<Timestamp> {
        match (&self.phase, &self.round) {
            (Phase::Idle, Round::Running { .. } | Round::Failed { .. }) => self.not_before,
            _ => None,
        }
    }

    /// What the provider's `Retry-After` asked for on the last failed
    /// attempt, when that was longer than
    /// [`RetryPolicy::max_retry_after`](crate::RetryPolicy::max_retry_after)
    /// and the wait was capped to the maximum; `None` otherwise, and once a
    /// token arrives. The events of a failed attempt carry the same value;
    /// this view also covers a round that failed without a usable token (its
    /// end is the `Err` of the call, which has no room for it).
    pub(crate) fn retry_after_capped(&self) -> Option<Duration> {
        self.retry_after_capped
    }

    /// A back-off step or a cool-down holds requests back at `now`.
    fn held_back(&self, now: Timestamp) -> bool {
        self.not_before.is_some_and(|at| now < at)
    }

    /// What to do at `now`.
    ///
    /// Polled by hand, without the [`driver`](crate::driver), the source
    /// calls an [`AssertionSource::callback`](crate::AssertionSource::callback)
    /// and an external [`Signer`](crate::Signer) itself, from here; the driver
    /// hands both out as tasks instead, performed outside its lock.
    pub fn poll(&mut self, now: Timestamp) -> Action<'_> {
        let mut started = self.begin(now, true);
        while let Some(step) = started.take() {
            match step {
                Started::Send(outgoing) => return Action::Send(outgoing),
                Started::Sign(signing) => {
                    let signature = signing.sign();
                    if let Signed::Started(next) = self.signed(now, signing.id, signature) {
                        started = Some(next);
                    }
                }
            }
        }
        self.held(now)
    }

    /// [`TokenSource::poll`] for the driver: an external signature is a
    /// step of its own, and the assertions made elsewhere are the ones the
    /// driver read (`provide_assertion`), so nothing here calls out.
    pub(crate) fn next(&mut self, now: Timestamp) -> Next<'_> {
        match self.begin(now, false) {
            Some(Started::Send(outgoing)) => Next::Act(Action::Send(outgoing)),
            Some(Started::Sign(signing)) => Next::Sign(signing),
            None => Next::Act(self.held(now)),
        }
    }

    /// Starts the next request when one is due at `now` (`inline`: calling
    /// assertion callbacks here); `None` when none is, or it could not be
    /// built (the attempt failed).
    fn begin(&mut self, now: Timestamp, inline: bool) -> Option<Started> {
        let fresh = self.cached.as_ref().is_some_and(|c| c.is_fresh(now));
        if fresh || !self.phase.is_idle() || self.held_back(now) {
            return None;
        }
        if !matches!(self.round, Round::Running { .. }) {
            self.start_round();
        }
        match self.start(now, inline) {
            Ok(started) => Some(started),
            // Nothing could be sent (an expired assertion, a key the
            // provider does not accept): the attempt fails without a request.
            Err(error) => {
                let _ = self.fail(now, error, None);
                None
            }
        }
    }

    /// Hands back the external signature asked for by the [`Signing`] of
    /// request `id`: the request's next signature, or the request to send;
    /// a failed signature fails the attempt (retried as the failure policy
    /// says), and a revocation is then not sent.
    pub(crate) fn signed(&mut self, now: Timestamp, id: RequestId, signature: Result<Vec<u8>, SignError>) -> Signed {
        let mut pending = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Signing { id: current, pending } if current == id => pending,
            phase => {
                self.phase = phase;
                return Signed::Failed(Err(Error::UnknownRequest { id }));
            }
        };
        let revocation = pending.sent == Sent::Revocation;
        let started = signature.map_err(|e| Error::ClientAuth(ClientAuthError::Signing(e)));
        let started = started.and_then(|signature| {
            pending.parts.sign(&signature);
            self.proceed(now, id, pending)
        });
        match started {
            Ok(started) => Signed::Started(started),
            Err(error) if revocation => Signed::Failed(Err(error)),
            Err(error) => Signed::Failed(self.fail(now, error, None)),
        }
    }

    /// What callers get when no request is to go out: the cached token while
    /// it is fresh, and while a refresh is under way (in flight, backing off
    /// or cooling down) as long as it has not expired, unless a forced
    /// refresh withholds it (a failed round clears the force, so a cool-down
    /// always serves it); else the failed round's error, or a wait.
    ///
    /// Only the first failing round makes callers wait through its retries
    /// (0.5 s, then 1 s, with the defaults). Once a round has failed, the
    /// retries of later rounds wait escalated steps (up to 30 s each), so
    /// during those back-offs callers get the latest error at once, as in a
    /// cool-down, instead of waiting up to a minute; the retry goes out when
    /// someone polls after the step.
    fn held(&self, now: Timestamp) -> Action<'_> {
        if let Some(cached) = &self.cached {
            // A forced refresh withholds the unexpired token while its round
            // runs, except during a later round's back-off, which is served
            // like a cool-down.
            let withheld = cached.forced && !self.retrying_late();
            if !withheld && cached.is_usable(now) {
                return Action::Ready(&cached.token);
            }
        }
        match (&self.phase, self.latest_error()) {
            (Phase::Idle, Some(error)) => Action::Failed(error),
            (Phase::Idle, None) => Action::Wait { until: self.not_before },
            (Phase::Signing { .. } | Phase::InFlight { .. }, _) => Action::Wait { until: None },
        }
    }

    /// The error callers get without a usable token: the failed round's,
    /// or during a later round the latest attempt's; `None` while no round
    /// has failed since the last token.
    fn latest_error(&self) -> Option<&Error> {
        match &self.round {
            Round::Failed { error } => Some(error),
            Round::Running { latest_error, .. } => latest_error.as_deref(),
            Round::Done => None,
        }
    }

    /// A round runs after an earlier round failed (since the last token) and
    /// nothing is in flight: it waits out a back-off step between its
    /// attempts, and callers are not held through it (see `held`).
    fn retrying_late(&self) -> bool {
        matches!(
            self.round,
            Round::Running {
                latest_error: Some(_),
                ..
            }
        ) && self.phase.is_idle()
    }

    /// The error the forced refresh that returned `ticket` ended with, once
    /// its round has failed, even though other callers keep getting the
    /// unexpired token as `Ready` from [`TokenSource::poll`]; or, while that
    /// round is a later one backing off between attempts, its latest error.
    /// `None` while it runs or once it succeeded: poll then. So a `refresh()`
    /// whose round fails reports that failure, whoever performed the request.
    pub fn refresh_failed(&self, now: Timestamp, ticket: RefreshTicket) -> Option<&Error> {
        // Rounds are numbered from 1, and `None` orders before every number.
        let round = Some(ticket.0);
        let failed = self.last_failed_round >= round && self.last_good_round < round;
        // Or this refresh's round is in a later round's back-off: its latest
        // error now, not the unexpired token that other callers are served.
        let backing_off = ticket.0 == self.rounds_started && self.retrying_late() && self.held_back(now);
        self.latest_error().filter(|_| failed || backing_off)
    }

    fn start_round(&mut self) {
        if self.cached.as_ref().is_some_and(|c| !c.forced) {
            // The cached token lived to its refresh unrejected: probation is over.
            self.rejections = None;
        }
        let latest_error = match std::mem::replace(&mut self.round, Round::Done) {
            Round::Failed { error } => {
                // Try the discovery locations in order again.
                self.location = 0;
                Some(error)
            }
            Round::Running { latest_error, .. } => latest_error,
            Round::Done => None,
        };
        self.rounds_started += 1;
        self.round = Round::Running {
            attempts: 0,
            latest_error,
        };
        self.rediscovered = false;
    }

    fn next_id(&mut self) -> RequestId {
        let id = RequestId::new(self.next_id);
        self.next_id += 1;
        id
    }

    fn locations(&self) -> &'static [DiscoveryLocation] {
        use DiscoveryLocation::{OpenId, Rfc8414};
        match self.config.discovery_order() {
            DiscoveryOrder::OpenIdFirst => &[OpenId, Rfc8414],
            DiscoveryOrder::Rfc8414First => &[Rfc8414, OpenId],
            DiscoveryOrder::OpenIdOnly => &[OpenId],
            DiscoveryOrder::Rfc8414Only => &[Rfc8414],
        }
    }

    fn auth(&self) -> ClientAuth {
        if let Some(auth) = self.config.auth() {
            return auth;
        }
        match self.metadata() {
            Some(metadata) => metadata.negotiate_auth(&self.config),
            // No metadata to negotiate with: a key given for assertions is used.
            None => match self.config.client_assertion_key() {
                Some(key) => ClientAuth::PrivateKeyJwt(key.clone()),
                None => ClientAuth::default(),
            },
        }
    }

    /// Makes the per-attempt credentials of a request to `url`: a fresh client
    /// assertion for the JWT methods, a fresh DPoP proof for token requests;
    /// the parts an external signer signs are left for it. `inline`: an
    /// assertion callback is called here (a source polled by hand), else
    /// the assertion the driver read is used.
    fn prepare(&self, now: Timestamp, auth: &ClientAuth, url: &Url, dpop: bool, inline: bool) -> Result<Parts, Error> {
        let mut prepared = Parts::default();
        let failed = |e: ClientAuthError| Error::ClientAuth(e);
        let listed = || {
            self.metadata()
                .and_then(|m| m.string_list("token_endpoint_auth_signing_alg_values_supported"))
        };
        let (audience, typ) = self.assertion_audience(url);
        let claims = |jti| AssertionClaims {
            client_id: self.config.client_id(),
            audience,
            jti,
            now,
            lifetime: self.config.assertion_lifetime(),
            typ,
        };
        let assertion = match auth {
            ClientAuth::PrivateKeyJwt(key) => {
                let listed = listed();
                let alg = key
                    .algorithm()
                    .negotiate(listed.as_deref())
                    .map_err(|()| unsupported("client assertions", key.algorithm(), listed))?;
                let jwt = build_assertion(AssertionKey::Private(key, alg), claims(self.jti.next(now)))
                    .map_err(|e| failed(e.into()))?;
                Some((JWT_BEARER_ASSERTION_TYPE.to_owned(), jwt))
            }
            ClientAuth::ClientSecretJwt => {
                if let Some(listed) = listed().filter(|l| !l.iter().any(|a| a == "HS256")) {
                    return Err(failed(ClientAuthError::UnsupportedAlgorithm {
                        purpose: "client_secret_jwt assertions (HS256)",
                        alg: crate::JwsAlgorithm::Rs256,
                        supported: listed,
                    }));
                }
                let secret = self.config.client_secret().expose_secret();
                let jwt = build_assertion(AssertionKey::Secret(secret), claims(self.jti.next(now)))
                    .map_err(|e| failed(e.into()))?;
                Some((JWT_BEARER_ASSERTION_TYPE.to_owned(), jwt))
            }
            ClientAuth::Assertion(source) => {
                let called;
                let calling = if inline { source.call() } else { None };
                let jwt: &str = match (calling, self.assertion(AssertionRole::ClientAssertion)) {
                    (Some(result), _) => {
                        called = Zeroizing::new(result.map_err(|reason| failed(unavailable(&reason)))?);
                        &called
                    }
                    (None, Some(Ok(jwt))) => jwt,
                    (None, Some(Err(reason))) => return Err(failed(unavailable(reason))),
                    (None, None) => {
                        return Err(failed(unavailable(
                            "the assertion has not been read (the driver's Task::ReadAssertion hands it over)",
                        )))
                    }
                };
                let jwt = jwt.trim();
                check_external(jwt, now).map_err(failed)?;
                let jwt = Jws::Signed(Zeroizing::new(jwt.to_owned()));
                Some((source.assertion_type().to_owned(), jwt))
            }
            _ => None,
        };
        prepared.assertion = assertion;
        if let Some(subject) = self.config.grant().subject() {
            // RFC 7523 §2.1: the JWT bearer grant's assertion is a JWT.
            let must_be_jwt = self.config.grant().as_jwt_bearer().is_some();
            let (token, expires_at) = self.external_token(AssertionRole::Subject, subject, now, must_be_jwt, inline)?;
            prepared.subject = Some(token);
            prepared.subject_expires_at = expires_at;
        }
        if let Some(actor) = self.config.grant().actor() {
            let (token, _) = self.external_token(AssertionRole::Actor, actor, now, false, inline)?;
            prepared.actor = Some(token);
        }
        if let (true, Some(key)) = (dpop, self.config.dpop_key()) {
            let alg = self.dpop_alg(key)?;
            let jti = self.jti.next(now);
            let claims = DpopClaims {
                method: &http::Method::POST,
                uri: url.as_str(),
                now,
                jti: &jti,
                nonce: self.dpop_nonces.get(url.as_str()),
                access_token: None,
            };
            prepared.dpop = Some(dpop_proof(key, alg, claims).map_err(|e| failed(e.into()))?);
        }
        Ok(prepared)
    }

    /// The `aud` of built assertions, and their `typ`: the issuer identifier
    /// unless the token endpoint is asked for (or no issuer is known). Only
    /// an assertion whose `aud` is the issuer is explicitly typed
    /// (draft-ietf-oauth-rfc7523bis): one with the endpoint goes out untyped,
    /// as RFC 7523 has it. `ConfigBuilder::build` refuses the settings that
    /// would ask for both, so this is the rule, not a silent downgrade.
    fn assertion_audience<'a>(&'a self, token_url: &'a Url) -> (&'a str, Option<&'static str>) {
        let issuer = self
            .config
            .assertion_issuer()
            .or_else(|| self.metadata().map(|m| m.issuer.as_str()))
            .or_else(|| self.config.issuer());
        match (self.config.assertion_audience(), issuer) {
            (AssertionAudience::Issuer, Some(issuer)) => {
                (issuer, self.config.assertion_typ().then_some(CLIENT_ASSERTION_TYP))
            }
            _ => (self.token_endpoint_for_audience(token_url), None),
        }
    }

    /// The token endpoint as an audience: the one in the metadata (not its
    /// mTLS alias, which names the same endpoint), else the URL requested.
    fn token_endpoint_for_audience<'a>(&'a self, token_url: &'a Url) -> &'a str {
        match (self.metadata(), self.config.token_endpoint()) {
            (_, Some(url)) => url.as_str(),
            (Some(metadata), None) => &metadata.token_endpoint,
            (None, None) => token_url.as_str(),
        }
    }

    /// Where token requests go: the configured token endpoint, or the
    /// discovered one; `None` before discovery.
    fn token_url(&self) -> Option<&Url> {
        self.config
            .token_endpoint()
            .or(self.discovered.as_ref().map(|d| &d.token_url))
    }

    /// Builds the next request of the round and marks it in flight: a token
    /// request while the endpoint is known (configured, or discovered and
    /// neither stale nor older than the TTL), else the next discovery step.
    fn start(&mut self, now: Timestamp, inline: bool) -> Result<Started, Error> {
        let id = self.next_id();
        let ttl = self.config.discovery_ttl();
        let current = self
            .discovered
            .as_deref()
            .filter(|d| !self.metadata_stale && now < d.fetched_at.saturating_add(ttl));
        let (sent, request) = match (self.config.endpoint(), current) {
            (Endpoint::Token(url), _) | (_, Some(Discovered { token_url: url, .. })) => {
                let refresh = self
                    .refresh_token
                    .as_ref()
                    .filter(|_| self.config.uses_refresh_tokens() && self.config.grant().is_client_credentials());
                let auth = self.auth();
                let parts = self.prepare(now, &auth, url, true, inline)?;
                let pending = Pending {
                    sent: Sent::Token {
                        refresh_grant: refresh.is_some(),
                        sent_at: now,
                        subject_expires_at: parts.subject_expires_at,
                    },
                    url: url.clone(),
                    auth,
                    refresh_token: refresh.cloned(),
                    revoked: None,
                    parts,
                };
                return self.proceed(now, id, Box::new(pending));
            }
            (Endpoint::Issuer(issuer), None) => self.discovery_step(issuer)?,
            (Endpoint::ResourceServer(resource), None) => match (&self.authorization_server, self.resource_read) {
                // This round read the resource's metadata: discover the
                // issuer it named.
                (Some(issuer), true) => self.discovery_step(issuer)?,
                _ => {
                    let (url, resource) = self.resource_metadata_location(resource);
                    let request = get_json(&url)?;
                    (Sent::ResourceMetadata { url, resource }, request)
                }
            },
        };
        Ok(Started::Send(self.mark_sent(now, id, sent, request)))
    }

    /// A token or revocation request goes on: its next external signature,
    /// or, once every part is signed, the request itself.
    fn proceed(&mut self, now: Timestamp, id: RequestId, pending: Box<Pending>) -> Result<Started, Error> {
        if let Some((key, input)) = pending.parts.unsigned() {
            let signing = Signing::new(id, key.clone(), input.to_owned());
            self.phase = Phase::Signing { id, pending };
            return Ok(Started::Sign(signing));
        }
        let Pending {
            sent,
            url,
            auth,
            refresh_token,
            revoked,
            parts,
        } = *pending;
        let Some(prepared) = parts.finished()? else {
            // Every part was signed above: nothing is left unsigned.
            return Err(Error::ClientAuth(ClientAuthError::Signing(SignError::new(
                "a part of the request was left unsigned",
            ))));
        };
        let request = match &revoked {
            Some((value, hint)) => revocation_request(&self.config, &url, &auth, value, hint, &prepared)?,
            None => {
                let grant = match &refresh_token {
                    Some(token) => Grant::RefreshToken(token.expose_secret()),
                    None => Grant::Configured,
                };
                token_request(&self.config, &url, &auth, grant, &prepared)?
            }
        };
        Ok(Started::Send(self.mark_sent(now, id, sent, request)))
    }

    /// Marks `request` in flight as request `id`.
    fn mark_sent(&mut self, now: Timestamp, id: RequestId, sent: Sent, request: http::Request<Vec<u8>>) -> Outgoing {
        let kind = match sent {
            Sent::Token { .. } => RequestKind::Token,
            Sent::ResourceMetadata { .. } | Sent::Discovery { .. } => RequestKind::Discovery,
            Sent::Revocation => RequestKind::Revocation,
        };
        self.phase = Phase::InFlight {
            id,
            sent: Box::new(sent),
            sent_at: now,
        };
        self.sent_credentials = carried_credentials(&self.config, &request);
        Outgoing { id, kind, request }
    }

    /// The request for `issuer`'s metadata at the current location.
    fn discovery_step(&self, issuer: &Issuer) -> Result<(Sent, http::Request<Vec<u8>>), Error> {
        let locations = self.locations();
        let location = locations[self.location.min(locations.len() - 1)];
        let request = get_json(issuer.metadata_url(location))?;
        let sent = Sent::Discovery {
            issuer: Box::new(issuer.clone()),
            location,
        };
        Ok((sent, request))
    }

    fn take_in_flight(&mut self, id: RequestId) -> Result<Sent, Error> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::InFlight {
                id: current,
                sent,
                sent_at,
            } if current == id => {
                self.answered_sent_at = Some(sent_at);
                Ok(*sent)
            }
            phase => {
                self.phase = phase;
                Err(Error::UnknownRequest { id })
            }
        }
    }

    /// Hands back the response to the request `id`.
    ///
    /// `Ok` says what changed. `Err` is the round's error when the round failed
    /// and no unexpired token is cached (give it to the callers waiting; until
    /// [`TokenSource::retry_at`] later polls return it as [`Action::Failed`]),
    /// the revocation's error for a revocation request, or
    /// [`Error::UnknownRequest`] when `id` is not in flight (nothing changed).
    pub fn handle_response(
        &mut self,
        now: Timestamp,
        id: RequestId,
        response: Response<Vec<u8>>,
    ) -> Result<Event, Error> {
        let result = self.response_event(now, id, response);
        self.forget_sent_credentials();
        result
    }

    /// [`TokenSource::handle_response`] but for forgetting the request's
    /// credentials.
    fn response_event(&mut self, now: Timestamp, id: RequestId, response: Response<Vec<u8>>) -> Result<Event, Error> {
        let sent = self.take_in_flight(id)?;
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let nonce_retried = std::mem::take(&mut self.nonce_retried);
        let token_url = self.token_url().cloned();
        if let (Sent::Token { .. }, Some(_), Some(url)) = (&sent, self.config.dpop_key(), token_url) {
            // RFC 9449 §8: the latest nonce is used until the server sends another.
            if let Some(nonce) = response.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()) {
                self.dpop_nonces.remember(url.as_str(), nonce);
            }
        }
        match sent {
            Sent::Token {
                refresh_grant,
                sent_at,
                subject_expires_at,
            } => {
                let expected = Expected { subject_expires_at };
                match parse_token_response_with(&self.config, sent_at, &response, &self.sent_credentials, &expected) {
                    Ok(token) => {
                        let token = if refresh_grant && token.refresh_token().is_none() {
                            // RFC 6749 §6: without a new refresh token, the old one stays valid.
                            token.with_refresh_token(self.refresh_token.clone())
                        } else {
                            token
                        };
                        self.insert_token(token.clone());
                        self.end_round(now);
                        Ok(Event::TokenUpdated(token))
                    }
                    Err(error) if is_nonce_request(&error) && self.config.dpop_key().is_some() => {
                        if nonce_retried || !response.headers().contains_key("dpop-nonce") {
                            // A second use_dpop_nonce in a row: the nonce is not what is wrong.
                            return self.fail(now, Error::ClientAuth(ClientAuthError::DpopNonceLoop), None);
                        }
                        // Answered by one immediate retry with the nonce, not counted as a failure.
                        self.nonce_retried = true;
                        Ok(self.fallback(now, error))
                    }
                    Err(error) => {
                        let refused = matches!(
                            error.oauth_code(),
                            Some(
                                OAuthErrorCode::InvalidGrant
                                    | OAuthErrorCode::UnauthorizedClient
                                    | OAuthErrorCode::UnsupportedGrantType
                            )
                        );
                        if refresh_grant && refused {
                            self.refresh_token = None;
                            return Ok(self.fallback(now, error));
                        }
                        let gone = matches!(response.status().as_u16(), 404 | 410);
                        if gone && self.config.issuer().is_some() && !self.rediscovered {
                            self.rediscovered = true;
                            self.metadata_stale = true;
                            return Ok(self.fallback(now, error));
                        }
                        self.fail(now, error, retry_after)
                    }
                }
            }
            Sent::ResourceMetadata { url, resource } => {
                let fetched = Fetched::new(&self.config, Some(url), &self.sent_credentials);
                let read = parse_resource_metadata_with(&resource, &response, &fetched).and_then(|metadata| {
                    let server = choose_authorization_server(
                        &metadata,
                        self.trusted_authorization_server.as_deref(),
                        self.authorization_server.as_deref().map(Issuer::as_str),
                        self.config.allowed_authorization_servers(),
                        &self.sent_credentials,
                    )?;
                    // Its metadata URLs are built here, once: a name that
                    // cannot form them is refused like any other.
                    let issuer = Issuer::new(server, self.config.allows_insecure_http())?;
                    Ok((metadata, issuer))
                });
                match read {
                    // RFC 9728 §2: the resource accepts only DPoP-bound tokens;
                    // a bearer token would be refused on every call.
                    Ok((metadata, _))
                        if metadata.dpop_bound_access_tokens_required && self.config.dpop_key().is_none() =>
                    {
                        let required = DpopError::Required {
                            metadata: "protected resource",
                        };
                        self.fail(now, Error::Dpop(required), None)
                    }
                    Ok((metadata, server)) => {
                        self.trusted_authorization_server
                            .get_or_insert_with(|| server.as_str().to_owned());
                        self.authorization_server = Some(Box::new(server));
                        self.resource_metadata = Some(Arc::new(metadata.clone()));
                        self.resource_read = true;
                        self.location = 0;
                        self.pace(now);
                        Ok(Event::ResourceMetadataUpdated(metadata))
                    }
                    Err(error) => {
                        // A refused hint is forgotten: the next read is at
                        // the well-known location, as at first discovery.
                        let error = match (self.resource_hint.take(), error) {
                            // The URL requested may carry a query the
                            // application treats as private: the error (which
                            // is logged) names it without.
                            (Some(_), Error::Discovery(DiscoveryError::ResourceMismatch { expected, found })) => {
                                Error::Discovery(DiscoveryError::ResourceMismatch {
                                    expected: without_query(&expected),
                                    found,
                                })
                            }
                            (_, error) => error,
                        };
                        self.discovery_failed(now, error, retry_after)
                    }
                }
            }
            Sent::Discovery { issuer, location } => {
                let url = issuer.metadata_url(location).clone();
                let fetched = Fetched::new(&self.config, Some(url), &self.sent_credentials);
                let read = parse_discovery_with(issuer.as_str(), &response, &fetched)
                    .and_then(|metadata| self.checked_endpoints(metadata, now));
                match read {
                    Ok(discovered) => {
                        let metadata = discovered.metadata.clone();
                        self.discovered = Some(Arc::new(discovered));
                        self.metadata_stale = false;
                        // Only a token ends the escalation; until then the
                        // token request waits a back-off step like any other.
                        self.pace(now);
                        // The next discovery round reads the resource's metadata again.
                        self.resource_read = false;
                        Ok(Event::DiscoveryUpdated(metadata))
                    }
                    Err(error @ Error::Discovery(DiscoveryError::NotFound { .. }))
                        if self.location + 1 < self.locations().len() =>
                    {
                        self.location += 1;
                        Ok(self.fallback(now, error))
                    }
                    Err(error) => self.discovery_failed(now, error, retry_after),
                }
            }
            Sent::Revocation => revocation_result(&self.config, &response, &self.sent_credentials),
        }
    }

    /// Hands back a failed exchange for the request `id` (connect error,
    /// timeout, broken connection). Retried like a 5xx.
    pub fn handle_transport_error(
        &mut self,
        now: Timestamp,
        id: RequestId,
        error: impl Into<TransportError>,
    ) -> Result<Event, Error> {
        let sent = self.take_in_flight(id)?;
        // The HTTP client's text should never hold a credential; make sure.
        let error: TransportError = error.into();
        let message = self.sent_credentials.redact(error.message());
        let error = Error::Transport(TransportError::new(error.kind(), message));
        let result = match sent {
            Sent::Revocation => Err(error),
            Sent::Discovery { .. } | Sent::ResourceMetadata { .. } => self.discovery_failed(now, error, None),
            Sent::Token { .. } => self.fail(now, error, None),
        };
        self.forget_sent_credentials();
        result
    }

    /// Drops (zeroizing) the credentials of the last request once its
    /// answer is handled and nothing is in flight: they only redact that
    /// request's answer, and an idle key keeps no copy of a secret.
    fn forget_sent_credentials(&mut self) {
        if !matches!(self.phase, Phase::InFlight { .. }) {
            self.sent_credentials = Credentials::default();
        }
    }

    /// The request `id` was never sent and never will be: a custom provider
    /// or a fleet's store answered instead. Nothing is counted against the
    /// round; the next poll may send again. Returns whether `id` was in flight.
    ///
    /// A request that *was* sent and whose answer will never come (its task
    /// was cancelled, the HTTP client panicked) is a failed attempt: hand it
    /// back with [`TokenSource::handle_transport_error`], so that it counts
    /// against the round and the back-off, as a lost answer does.
    pub fn abandon(&mut self, id: RequestId) -> bool {
        if matches!(&self.phase, Phase::Signing { id: current, .. } if *current == id) {
            self.phase = Phase::Idle;
            return true;
        }
        let abandoned = self.take_in_flight(id).is_ok();
        // Never sent, so never answered: its credentials redact nothing.
        self.forget_sent_credentials();
        abandoned
    }

    /// The resource server rejected `token` at `now`: stop serving it. Only
    /// evicts when `token` is still the cached one, so a caller holding an
    /// older token never evicts a newer one. Returns whether it evicted.
    ///
    /// A rejected token that had proven itself is fetched again at once.
    /// A rejection of a token on probation — fetched less than the longest
    /// back-off step before, after the token before it was rejected or while
    /// the provider was failing — counts as a failed round: callers get
    /// [`Error::TokenRejected`] until [`TokenSource::retry_at`], and the
    /// back-off escalates as for a provider that fails, so a resource that
    /// rejects every token costs a few token requests, not two per call
    /// (the bounds of [`RetryPolicy`](crate::RetryPolicy) hold). The
    /// probation ends when a token lives to its refresh.
    pub fn invalidate(&mut self, now: Timestamp, token: &AccessToken) -> bool {
        !matches!(self.reject(now, token), Rejection::NotCurrent)
    }

    /// [`TokenSource::invalidate`], saying what the rejection did.
    pub(crate) fn reject(&mut self, now: Timestamp, token: &AccessToken) -> Rejection {
        let Some(current) = self.cached.take_if(|cached| cached.token.same_token(token)) else {
            return Rejection::NotCurrent;
        };
        let probation = self.config.retry().max_backoff;
        let on_probation = now < current.token.received_at().saturating_add(probation);
        match self.rejections {
            Some(streak) => {
                // The streak goes on: later failures escalate from its count
                // and its start, whether or not this rejection is one.
                self.failures = self.failures.max(streak.failures);
                let since = self.failing_since.map_or(streak.since, |s| s.min(streak.since));
                self.failing_since = Some(since);
                // A request in flight decides this round's outcome itself.
                if on_probation && self.phase.is_idle() {
                    // No usable token is left: the error is the callers', through `poll`.
                    let _ = self.fail(now, Error::TokenRejected, None);
                    let until = self.not_before.unwrap_or(now);
                    return Rejection::Failed(SharedBackoff::new(until, self.failures));
                }
            }
            None => {
                self.rejections = Some(Streak {
                    failures: 0,
                    since: now,
                })
            }
        }
        Rejection::Evicted
    }

    /// The fleet holds token requests back ([`SharedBackoff`]: another
    /// process's resource rejected the tokens of its streak): instead of
    /// sending request `id`, the round fails at once with
    /// [`Error::TokenRejected`], as if a token fetched now had been rejected.
    /// The back-off escalates from at least the fleet's count (its step,
    /// this client's own) and lasts at least until the fleet's `until`, but
    /// what the fleet imposes is capped at the policy's `max_backoff` from
    /// `now`: a store's value can never hold this client back longer than
    /// its own longest step. Returns what a response would
    /// ([`TokenSource::handle_response`]).
    pub(crate) fn hold_back(&mut self, now: Timestamp, id: RequestId, backoff: SharedBackoff) -> Result<Event, Error> {
        self.take_in_flight(id)?;
        // Never sent: its credentials redact nothing.
        self.forget_sent_credentials();
        // `fail` counts this round once more.
        self.failures = self.failures.max(backoff.failures.saturating_sub(1));
        self.failing_since.get_or_insert(now);
        // The next token is on probation: its rejection fails the round too.
        self.rejections.get_or_insert(Streak {
            failures: 0,
            since: now,
        });
        let result = self.fail(now, Error::TokenRejected, None);
        let until = backoff.until.min(now.saturating_add(self.config.retry().max_backoff));
        self.not_before = Some(self.not_before.map_or(until, |at| at.max(until)));
        result
    }

    /// Asks for a new token even though the cached one is fresh (an adapter's
    /// `refresh()`).
    ///
    /// One defined outcome:
    /// - during the cool-down after a failed round (or the back-off between
    ///   the attempts of a later round, which is served like one) it returns
    ///   the latest error and changes nothing: the unexpired token keeps
    ///   being served, and no request goes out before
    ///   [`TokenSource::retry_at`] (an explicit refresh does not lift the
    ///   rate limit);
    /// - otherwise the next poll sends at once (or joins the round already
    ///   running), and until the new token arrives `poll` does not return the
    ///   forced-out one. Drive the round with [`TokenSource::poll`], asking
    ///   [`TokenSource::refresh_failed`]`(now, ticket)` first: the refresh
    ///   ends with `Ready` (the new token) or with that round's error, while
    ///   other callers are served the unexpired token again.
    pub fn force_refresh(&mut self, now: Timestamp) -> Result<RefreshTicket, Error> {
        let running = matches!(self.round, Round::Running { .. });
        // A cool-down, or a later round's back-off (served like one).
        let cooling = matches!(self.round, Round::Failed { .. }) || self.retrying_late();
        if let (true, Some(error)) = (cooling && self.held_back(now), self.latest_error()) {
            return Err(error.clone());
        }
        if let Some(cached) = &mut self.cached {
            cached.forced = true;
        }
        Ok(RefreshTicket(if running {
            self.rounds_started
        } else {
            self.rounds_started + 1
        }))
    }

    /// Caches a token offered from elsewhere (a custom provider, a fleet
    /// store) if it is better than the cached one: usable at `now`, and
    /// expiring later than the cached token (a token without expiry counts as
    /// the latest). Returns whether it was taken. A provider answering with an
    /// older or already expired token never replaces a fresher one. With
    /// DPoP configured only a DPoP-bound token is taken (RFC 9449 §5).
    pub(crate) fn offer_token(&mut self, now: Timestamp, token: AccessToken) -> bool {
        let unbound = self.config.dpop_key().is_some() && !token.token_type().eq_ignore_ascii_case("dpop");
        if unbound || !Cached::new(&self.config, token.clone()).is_usable(now) {
            return false;
        }
        let newer = match &self.cached {
            None => true,
            Some(Cached { token: current, .. }) => match (current.expires_at(), token.expires_at()) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(old), Some(new)) => new > old,
            },
        };
        if newer {
            self.insert_token(token);
        }
        newer
    }

    /// Forgets the token and any request in flight (its result will be
    /// rejected). Returns the RFC 7009 revocation request to send when a
    /// revocation endpoint is configured or discovered and there was a token to revoke.
    ///
    /// The back-off state stays: a sign-out does not lift a cool-down. A token
    /// or discovery request in flight counts as a failed attempt (a transport
    /// error at `now`): a provider that does not answer is backed off whether
    /// its requests time out or sign-outs drop them, so sign-outs cannot make
    /// the client send without pause.
    ///
    /// With a JWT client authentication the revocation request carries a
    /// fresh assertion dated `now`; none is sent when no assertion can be
    /// made (an expired assertion file, a failing signer).
    pub fn signout(&mut self, now: Timestamp) -> Option<Outgoing> {
        match self.sign_out(now, true)? {
            Started::Send(outgoing) => Some(outgoing),
            Started::Sign(signing) => {
                // Polled by hand: the external signer is called here.
                let signature = signing.sign();
                match self.signed(now, signing.id, signature) {
                    Signed::Started(Started::Send(outgoing)) => Some(outgoing),
                    Signed::Started(Started::Sign(_)) | Signed::Failed(_) => None,
                }
            }
        }
    }

    /// [`TokenSource::signout`], whose revocation may first need an external
    /// signature (`inline`: as in [`TokenSource::prepare`]).
    pub(crate) fn sign_out(&mut self, now: Timestamp, inline: bool) -> Option<Started> {
        if let Phase::InFlight { id, sent, .. } = &self.phase {
            if **sent != Sent::Revocation {
                let id = *id;
                let dropped = TransportError::new(
                    crate::error::TransportErrorKind::Other,
                    "a sign-out dropped the request before its answer",
                );
                let _ = self.handle_transport_error(now, id, dropped);
            }
        }
        let cached = self.cached.take();
        let refresh = self.refresh_token.take();
        self.phase = Phase::Idle;
        let endpoint = match self.config.revocation_endpoint() {
            Some(url) => url,
            None => self.discovered.as_ref()?.revocation_url.as_ref()?,
        };
        // RFC 7009 §2.1: revoking the refresh token revokes its access tokens too.
        let (value, hint) = match (&refresh, &cached) {
            (Some(refresh), _) => (refresh.expose_secret().to_owned(), "refresh_token"),
            (None, Some(cached)) => (cached.token.secret().to_owned(), "access_token"),
            (None, None) => return None,
        };
        let auth = self.auth();
        // Revocation is best effort: without a fresh assertion it is not sent.
        let parts = self.prepare(now, &auth, endpoint, false, inline).ok()?;
        let pending = Pending {
            sent: Sent::Revocation,
            url: endpoint.clone(),
            auth,
            refresh_token: None,
            revoked: Some((Zeroizing::new(value), hint)),
            parts,
        };
        let id = self.next_id();
        self.proceed(now, id, Box::new(pending)).ok()
    }

    /// A token arrived: the escalation ends, unless a resource rejects this
    /// token while on probation (see [`Streak`]).
    fn end_round(&mut self, now: Timestamp) {
        if let Some(since) = self.failing_since {
            let earlier = self.rejections.unwrap_or(Streak { failures: 0, since });
            self.rejections = Some(Streak {
                failures: self.failures.max(earlier.failures),
                since: since.min(earlier.since),
            });
        }
        self.failures = 0;
        self.failing_since = None;
        self.retry_after_capped = None;
        self.rediscovered = false;
        self.round = Round::Done;
        self.last_good_round = Some(self.rounds_started);
        self.not_before = Some(now);
    }

    /// An answer without a token that is no failure (a fallback, metadata):
    /// it counts, and once a request has failed the next one waits its step
    /// like any retry, so fallbacks add no bursts to a failing provider.
    fn pace(&mut self, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        if self.failing_since.is_some() {
            let next = now.saturating_add(self.delay(now, None));
            self.not_before = Some(self.not_before.map_or(next, |at| at.max(next)));
        }
    }

    /// The wait after the latest request without a token: the back-off step
    /// for their count, at least `retry_after` (capped), and at least the time
    /// the failures have lasted (up to the maximum back-off). The last rule
    /// keeps the rate bound when callers come late: a streak that began a
    /// minute ago waits the maximum however few requests it has made.
    fn delay(&mut self, now: Timestamp, retry_after: Option<Duration>) -> Duration {
        let policy = *self.config.retry();
        let lasted = self
            .failing_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let floor = lasted
            .min(policy.max_backoff)
            .max(retry_after.unwrap_or(Duration::ZERO));
        self.jitter.backoff(&policy, self.failures, Some(floor))
    }

    fn fallback(&mut self, now: Timestamp, error: Error) -> Event {
        self.pace(now);
        Event::Fallback { error }
    }

    /// The endpoints `metadata` names, checked once, as it is taken into use:
    /// the token endpoint (RFC 8705 §5: with a client certificate, its mTLS
    /// alias when there is one) and the revocation endpoint, if any.
    fn checked_endpoints(&self, metadata: ProviderMetadata, now: Timestamp) -> Result<Discovered, Error> {
        let mtls = self.config.uses_mutual_tls();
        let alias = |name| metadata.mtls_alias(name).filter(|_| mtls);
        let token_endpoint = alias("token_endpoint").unwrap_or(&metadata.token_endpoint);
        let token_url = check_endpoint("token_endpoint", token_endpoint, self.config.allows_insecure_http())
            .map_err(|e| DiscoveryError::InvalidEndpoint(e.redacted(&self.sent_credentials)))?;
        // An unusable revocation endpoint was dropped when the document was read.
        let revocation_url = alias("revocation_endpoint")
            .or(metadata.revocation_endpoint.as_deref())
            .and_then(|url| Url::parse(url).ok());
        Ok(Discovered {
            metadata,
            token_url,
            revocation_url,
            fetched_at: now,
        })
    }

    /// A discovery failure: with earlier metadata, keep using it (its token
    /// endpoint most likely still works, and re-discovery is tried again after
    /// the TTL); else the failure counts like a token request's.
    fn discovery_failed(
        &mut self,
        now: Timestamp,
        error: Error,
        retry_after: Option<Duration>,
    ) -> Result<Event, Error> {
        if let Some(discovered) = &mut self.discovered {
            // A copy of its own when the metadata is shared: the other
            // keys see the later time when this key publishes it.
            Arc::make_mut(discovered).fetched_at = now;
            self.resource_read = false;
            self.metadata_stale = false;
            return Ok(self.fallback(now, error));
        }
        self.fail(now, error, retry_after)
    }

    /// Schedules a retry, or ends the round with `error`.
    ///
    /// The failure count persists across rounds until a token arrives, so the
    /// wait before each attempt keeps doubling up to the maximum back-off,
    /// whether the next attempt is a retry within the round or a new round.
    fn fail(&mut self, now: Timestamp, error: Error, retry_after: Option<Duration>) -> Result<Event, Error> {
        self.failures = self.failures.saturating_add(1);
        // The provider has been failing since it was sent the request that
        // failed: with slow answers, counting from the answer would let the
        // streak's first minute (and its burst of retries) start late.
        let started = self.answered_sent_at.map_or(now, |sent| sent.min(now));
        self.failing_since.get_or_insert(started);
        let (attempts, failed_before) = match &self.round {
            Round::Running { attempts, latest_error } => (attempts.saturating_add(1), latest_error.is_some()),
            Round::Failed { .. } => (1, true),
            Round::Done => (1, false),
        };
        let policy = *self.config.retry();
        let retry_after_capped = retry_after.filter(|wait| *wait > policy.max_retry_after);
        self.retry_after_capped = retry_after_capped;
        let retry_after = retry_after.map(|wait| wait.min(policy.max_retry_after));
        let retry_at = now.saturating_add(self.delay(now, retry_after));
        self.not_before = Some(retry_at);
        let patient = retry_after.is_none_or(|wait| wait <= policy.max_backoff);
        if error.is_retryable() && attempts < policy.max_attempts && patient {
            self.round = Round::Running {
                attempts,
                // A round failed before this one: callers get this attempt's
                // error during the back-off (see `held`).
                latest_error: failed_before.then(|| Box::new(error.clone())),
            };
            return Ok(Event::RetryScheduled {
                at: retry_at,
                error,
                retry_after_capped,
            });
        }
        self.round = Round::Failed {
            error: Box::new(error.clone()),
        };
        self.last_failed_round = Some(self.rounds_started);
        self.resource_read = false;
        self.rediscovered = false;
        if let Some(cached) = &mut self.cached {
            cached.forced = false;
        }
        if self.usable(now).is_some() {
            Ok(Event::RefreshFailed {
                error,
                retry_at,
                retry_after_capped,
            })
        } else {
            Err(error)
        }
    }
}

/// `url` without its query and fragment (`?…` marks a query cut off).
fn without_query(url: &str) -> String {
    match url.find(['?', '#']) {
        Some(end) if url[end..].starts_with('?') => format!("{}?…", &url[..end]),
        Some(end) => url[..end].to_owned(),
        None => url.to_owned(),
    }
}

/// A token endpoint's "send a DPoP nonce" answer (RFC 9449 §8).
fn is_nonce_request(error: &Error) -> bool {
    matches!(error.oauth_code(), Some(OAuthErrorCode::Other(code)) if code == USE_DPOP_NONCE)
}

fn unsupported(purpose: &'static str, alg: crate::JwsAlgorithm, listed: Option<Vec<String>>) -> Error {
    Error::ClientAuth(ClientAuthError::UnsupportedAlgorithm {
        purpose,
        alg,
        supported: listed.unwrap_or_default(),
    })
}

fn revocation_result(config: &Config, response: &Response<Vec<u8>>, credentials: &Credentials) -> Result<Event, Error> {
    let body = check_size(response.body(), config.max_body_size())?;
    if response.status().is_success() {
        return Ok(Event::Revoked);
    }
    if let Ok(object) = parse_json_object(body) {
        if let Some(error) = oauth_error(response.status(), &object, credentials) {
            return Err(error);
        }
    }
    Err(Error::UnexpectedStatus {
        status: response.status(),
        body_excerpt: excerpt(body, credentials),
    })
}

mod rest;
mod sharing;

pub(crate) use rest::RestingSource;
pub use sharing::Discovery;

#[cfg(test)]
mod tests;
