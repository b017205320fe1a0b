//! The fleet single flight, written once for both connection kinds: which
//! Redis command to send next, and what its reply means.
//!
//! A round ([`Round`]) starts when this process is about to send a token
//! request. Each step sends one script ([`Round::command`]) that, atomically
//! on the server, either returns the stored value (when it differs from the
//! one this round has already judged stale), or the fleet's rejection
//! back-off (when there is one this round has not judged over or forged),
//! or tries to take the lock (`SET lock owner NX PX ttl`). The reply
//! ([`Round::on_reply`]) decides: a fresh token → use it; a back-off sealed
//! for this client that still holds → fail the round at once
//! ([`FleetTurn::HoldBack`]); the lock taken → fetch (this process owns the
//! lock until `end_fetch`); the lock held by another process → poll again
//! after [`Settings::poll_interval`], until the lock TTL has passed, then
//! fetch regardless. A Redis error at any step → fetch (the drivers bound
//! every call with a timeout).
//!
//! Every store call (`load`, `save`, `delete`, `evict`, `begin_fetch`,
//! `end_fetch`) is an [`Operation`] built here: it says which command to
//! send next and what the answer means, so the drivers (`blocking`,
//! `tokio`) only send commands and sleep, each in one loop.

use std::io;
use std::time::Duration;

use client_credentials::{AccessToken, Config, SharedBackoff, Timestamp, TokenSource};
use client_credentials_common::FleetTurn;
use redis::{Cmd, RedisResult, Value};

use crate::keys::Keys;
use crate::seal::Sealer;
use crate::store::{io_error, store_error, RedisStoreError, Shared, MAX_VALUE_SIZE, TOO_LARGE};

/// `KEYS[1]` the token, `KEYS[2]` the lock, `KEYS[3]` the rejection
/// back-off; `ARGV[1]` owner, `ARGV[2]` lock TTL in ms, `ARGV[3]` the value
/// already judged stale (empty for none), `ARGV[4]` the size limit,
/// `ARGV[5]` the back-off already judged over or not ours (empty for none).
/// Returns `{1, value}`, `{2, ""}` (lock taken), `{3, ""}` (lock held) or
/// `{4, back-off}`. The keys share a hash tag, so in a cluster the script
/// runs on one slot. A key of another type (not ours) or a value over the
/// size limit (never sent) reads as an empty, stale value, so the round
/// takes the lock and the token written later replaces it; a back-off of
/// another type or longer than any sealed one reads as none.
const ACQUIRE: &str = r"
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' or (value and #value > tonumber(ARGV[4])) then value = '' end
if value and value ~= ARGV[3] then return {1, value} end
local held = redis.pcall('GET', KEYS[3])
if type(held) == 'string' and #held <= 128 and held ~= ARGV[5] then return {4, held} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {3, ''}
";

/// `KEYS[1]` the token; `ARGV[1]` the size limit. The stored value; nil for
/// none or a key of another type (not ours); an error reply `TOOLARGE` for a
/// value over the limit, which is not sent. The scripts call only `GET`,
/// `SET` and `DEL`, so an ACL user needs no more than those and `EVAL`.
const LOAD: &str = r"
local value = redis.pcall('GET', KEYS[1])
if type(value) == 'table' then return false end
if value and #value > tonumber(ARGV[1]) then
  return redis.error_reply('TOOLARGE the stored value exceeds the size limit')
end
return value
";

/// The fenced write. `KEYS[1]` the token; `ARGV[1]` the sealed value,
/// `ARGV[2]` its TTL in ms, `ARGV[3]` its expiry (ms since the epoch, as in
/// its header). Keeps a stored token of ours whose header says it expires
/// later (returns 0); otherwise writes (returns 1). Ordering by expiry
/// rather than fencing by the lock: a process that fetched without the
/// lock (Redis was slow, or it waited out a lock TTL) still shares its
/// token when nothing better is stored, and two writers without the lock
/// are ordered too; a late writer can only ever replace a token that
/// expires no later than its own.
const SAVE: &str = r"
local head = redis.pcall('GET', KEYS[1])
if type(head) == 'string' and string.byte(head, 1) == 2 then
  local stored = tonumber(string.sub(head, 2, 21))
  if stored and stored > tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The compare-and-delete of a rejected token, and the fleet's rejection
/// back-off written in the same step. `KEYS[1]` the token, `KEYS[2]` the
/// back-off; `ARGV[1]` the sealed back-off (empty for none), `ARGV[2]` its
/// TTL in ms, then the rejected token's ids (one per key that may have
/// sealed it). Deletes the value only if its header names one of them
/// (returns 1); writes the back-off whether or not (a newer token stored
/// meanwhile is still served first: the round reads the token before the
/// back-off). Atomic: no process sees the token gone and the back-off not
/// yet written, so none fetches in between.
const EVICT: &str = r"
if ARGV[1] ~= '' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
local head = redis.pcall('GET', KEYS[1])
if type(head) ~= 'string' or string.byte(head, 1) ~= 2 then return 0 end
local id = string.sub(head, 22, 53)
for i = 3, #ARGV do
  if id == ARGV[i] then return redis.call('DEL', KEYS[1]) end
end
return 0
";

/// Deletes the lock only if `ARGV[1]` still owns it: a holder whose lock
/// expired and was taken by another process must not release that one.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The timing knobs of the fleet protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// How long a lock holder may fetch before others take over.
    pub(crate) lock_ttl: Duration,
    /// How often a waiting process looks for the holder's token.
    pub(crate) poll_interval: Duration,
}

/// What a driver does next for a store call.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// Send this command and hand its answer to the next [`Operation::step`].
    Send(Cmd),
    /// Sleep this long, then call [`Operation::step`] with no answer.
    Sleep(Duration),
    /// The call is over, with this result.
    Done(T),
}

/// One store call, sans IO: the driver calls [`step`](Operation::step),
/// does what it says, and calls it again until it says [`Step::Done`].
pub(crate) trait Operation {
    /// What the store call returns.
    type Output;

    /// The next step, given the answer to the last [`Step::Send`] (`None`
    /// at the start and after a [`Step::Sleep`]) and the time since the call
    /// started (a monotonic measure: the wall clock may jump).
    fn step(&mut self, answer: Option<RedisResult<Value>>, elapsed: Duration) -> Step<Self::Output>;
}

/// A call of at most one command, and what its answer means (`None`: no
/// command was sent).
struct Exchange<F> {
    command: Option<Cmd>,
    meaning: F,
}

fn exchange<T, F>(command: Option<Cmd>, meaning: F) -> Exchange<F>
where
    F: FnMut(Option<RedisResult<Value>>) -> T,
{
    Exchange { command, meaning }
}

impl<T, F: FnMut(Option<RedisResult<Value>>) -> T> Operation for Exchange<F> {
    type Output = T;

    fn step(&mut self, answer: Option<RedisResult<Value>>, _: Duration) -> Step<T> {
        match (answer, self.command.take()) {
            (None, Some(command)) => Step::Send(command),
            (answer, _) => Step::Done((self.meaning)(answer)),
        }
    }
}

/// `load`: the token stored for `config`, if it is one sealed for this
/// client; a key of another type (not ours) reads as none.
pub(crate) fn load(
    shared: &Shared,
    config: &Config,
) -> impl Operation<Output = io::Result<Option<AccessToken>>> + Send {
    let keys = shared.keys(config);
    let (command, sealer) = match shared.sealer(config) {
        Ok(sealer) => (Some(get_token(&keys)), Ok(sealer)),
        // Nothing is read for a client whose tokens cannot be sealed.
        Err(error) => (None, Err(error)),
    };
    exchange(command, move |answer| match (answer, &sealer) {
        (_, Err(error)) => Err(store_error(error.clone())),
        (Some(Ok(reply)), Ok(sealer)) => open_reply(sealer, &keys, reply),
        (Some(Err(error)), Ok(_)) if is_foreign(&error) => Ok(None),
        (Some(Err(error)), Ok(_)) => Err(io_error(error)),
        // Not reached: the command is sent whenever there is a sealer.
        (None, Ok(_)) => Ok(None),
    })
}

/// `save`: the token sealed, with its remaining life at `now` as its TTL
/// (a token without expiry lives the config's default lifetime from when it
/// was received), written unless a token that expires later is stored; an
/// expired token is not written.
pub(crate) fn save(
    shared: &Shared,
    config: &Config,
    token: &AccessToken,
    now: Timestamp,
) -> impl Operation<Output = io::Result<()>> + Send {
    let keys = shared.keys(config);
    let expiry = token
        .expires_at()
        .unwrap_or_else(|| token.received_at().saturating_add(config.default_lifetime()));
    let sealed = shared
        .sealer(config)
        .map_err(store_error)
        .and_then(|sealer| sealer.seal(&keys.token, token, expiry))
        .and_then(|value| match value.len() <= MAX_VALUE_SIZE {
            true => Ok(value),
            false => Err(store_error(RedisStoreError::TooLarge { limit: MAX_VALUE_SIZE })),
        });
    let (command, mut failure) = match sealed {
        Ok(value) => (set_token(&keys, value, expiry, now), None),
        Err(error) => (None, Some(error)),
    };
    exchange(command, move |answer| match answer {
        Some(result) => {
            if let Ok(Value::Int(0)) = result {
                tracing::debug!("a token that expires later is stored already; kept it");
            }
            written(result)
        }
        None => failure.take().map_or(Ok(()), Err),
    })
}

/// `delete`: the token stored for `config`.
pub(crate) fn delete(shared: &Shared, config: &Config) -> impl Operation<Output = io::Result<()>> + Send {
    exchange(Some(delete_token(&shared.keys(config))), |answer| {
        answer.map_or(Ok(()), written)
    })
}

/// `evict` and `evict_rejected`: deletes the token stored for `config` only
/// if it is `token`, and with `backoff` writes it, sealed, for the fleet's
/// turns: its TTL is the policy's maximum back-off, the longest any process
/// obeys one.
pub(crate) fn evict(
    shared: &Shared,
    config: &Config,
    token: &AccessToken,
    backoff: Option<&SharedBackoff>,
) -> impl Operation<Output = io::Result<()>> + Send {
    let keys = shared.keys(config);
    let command = shared.sealer(config).map_err(store_error).and_then(|sealer| {
        let held = match backoff {
            Some(backoff) => Some((sealer.seal_backoff(&keys.held, backoff)?, config.retry().max_backoff)),
            None => None,
        };
        Ok(evict_token(&keys, &sealer.token_ids(token), held))
    });
    let (command, mut failure) = match command {
        Ok(command) => (Some(command), None),
        Err(error) => (None, Some(error)),
    };
    exchange(command, move |answer| match answer {
        Some(result) => written(result),
        None => failure.take().map_or(Ok(()), Err),
    })
}

fn written(result: RedisResult<Value>) -> io::Result<()> {
    result.map(drop).map_err(io_error)
}

/// `begin_fetch`: one [`Round`]; a Redis error means fetching without the
/// fleet, and a lock taken is remembered for `end_fetch`. For a client whose
/// tokens cannot be sealed, an error and nothing sent.
pub(crate) fn begin_fetch<'a>(shared: &'a Shared, config: &'a Config, now: Timestamp) -> BeginFetch<'a> {
    BeginFetch {
        shared,
        round: shared
            .sealer(config)
            .map(|sealer| Round::new(config, sealer, shared.keys(config), shared.settings, now)),
    }
}

/// The [`Operation`] of `begin_fetch`.
pub(crate) struct BeginFetch<'a> {
    shared: &'a Shared,
    round: Result<Round<'a>, RedisStoreError>,
}

impl Operation for BeginFetch<'_> {
    type Output = io::Result<FleetTurn>;

    fn step(&mut self, answer: Option<RedisResult<Value>>, elapsed: Duration) -> Step<io::Result<FleetTurn>> {
        let round = match &mut self.round {
            Ok(round) => round,
            Err(error) => return Step::Done(Err(store_error(error.clone()))),
        };
        let next = match answer {
            None => Next::Send,
            Some(Ok(reply)) => round.on_reply(reply, elapsed),
            Some(Err(error)) => {
                tracing::debug!(%error, "no fleet coordination for this token request");
                Next::Done(Turn::Fetch(None))
            }
        };
        match next {
            Next::Send => Step::Send(round.command()),
            Next::Sleep(pause) => Step::Sleep(pause),
            Next::Done(turn) => Step::Done(Ok(self.shared.finish(&round.keys, turn))),
        }
    }
}

/// `end_fetch`: releases the lock this process took for `config`, if it
/// took one.
pub(crate) fn end_fetch(shared: &Shared, config: &Config) -> impl Operation<Output = ()> + Send {
    let keys = shared.keys(config);
    let command = shared.take_owner(&keys).map(|owner| release_lock(&keys, &owner));
    exchange(command, |answer| {
        if let Some(Err(error)) = answer {
            // The lock expires by itself after its TTL.
            tracing::debug!(%error, "could not release the fleet lock");
        }
    })
}

/// What a round ended with.
#[derive(Debug)]
pub(crate) enum Turn {
    /// Use this token, written by another process; send nothing.
    Use(AccessToken),
    /// The fleet's rejection back-off holds: fail the round; send nothing.
    HoldBack(SharedBackoff),
    /// Send the token request; `Some(owner)` when this process holds the lock.
    Fetch(Option<String>),
}

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Send [`Round::command`] now.
    Send,
    /// Sleep this long, then send [`Round::command`].
    Sleep(Duration),
    /// The round is over.
    Done(Turn),
}

/// One round of the fleet single flight (see the module docs).
pub(crate) struct Round<'a> {
    config: &'a Config,
    sealer: Sealer,
    keys: Keys,
    settings: Settings,
    owner: String,
    started: Timestamp,
    stale: Vec<u8>,
    /// The back-off judged over, or not sealed for this client.
    held: Vec<u8>,
}

impl<'a> Round<'a> {
    /// A round for `config` starting at `now` (wall clock).
    pub(crate) fn new(config: &'a Config, sealer: Sealer, keys: Keys, settings: Settings, now: Timestamp) -> Self {
        Round {
            config,
            sealer,
            keys,
            settings,
            owner: random_owner(),
            started: now,
            stale: Vec::new(),
            held: Vec::new(),
        }
    }

    /// The script to send for the next step.
    pub(crate) fn command(&self) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ACQUIRE)
            .arg(3)
            .arg(&self.keys.token)
            .arg(&self.keys.lock)
            .arg(&self.keys.held)
            .arg(&self.owner)
            .arg(millis(self.settings.lock_ttl))
            .arg(&self.stale[..])
            .arg(MAX_VALUE_SIZE)
            .arg(&self.held[..]);
        cmd
    }

    /// What the reply to [`Round::command`] means, `elapsed` after the round
    /// started (a monotonic measure: the wall clock may jump).
    pub(crate) fn on_reply(&mut self, reply: Value, elapsed: Duration) -> Next {
        let now = self.started.saturating_add(elapsed);
        match parse_acquire(reply) {
            Some(Acquired::Value(value)) => {
                if let Some(token) = self.sealer.open(&self.keys.token, &value) {
                    if is_fresh(self.config, &token, now) {
                        return Next::Done(Turn::Use(token));
                    }
                } else {
                    tracing::debug!("the stored value is not a token sealed for this client; it will be replaced");
                }
                // Stale, corrupt or foreign: ask again for the lock, unless a
                // newer value has replaced this one meanwhile.
                self.stale = value;
                self.after_wait(elapsed, Duration::ZERO)
            }
            Some(Acquired::HeldBack(value)) => {
                // Only a back-off sealed for this client counts: one a Redis
                // writer without the key made opens to nothing. What it may
                // impose is capped by the core (the policy's maximum back-off).
                match self.sealer.open_backoff(&self.keys.held, &value) {
                    Some(backoff) if backoff.holds(now) => return Next::Done(Turn::HoldBack(backoff)),
                    Some(_) => {}
                    None => tracing::debug!("the stored back-off is not one sealed for this client; ignoring it"),
                }
                self.held = value;
                self.after_wait(elapsed, Duration::ZERO)
            }
            Some(Acquired::Locked) => Next::Done(Turn::Fetch(Some(std::mem::take(&mut self.owner)))),
            Some(Acquired::Held) => self.after_wait(elapsed, self.settings.poll_interval),
            None => {
                tracing::warn!("unexpected reply from Redis to the lock script; fetching without the fleet");
                Next::Done(Turn::Fetch(None))
            }
        }
    }

    fn after_wait(&self, elapsed: Duration, pause: Duration) -> Next {
        // The lock cannot outlive its TTL: by then the holder has written,
        // released or died and its lock has expired, and this round takes it.
        // Past that (Redis's clock stalled, a holder re-taking it in a loop)
        // this process stops waiting and fetches on its own.
        if elapsed + pause > self.settings.lock_ttl + 4 * self.settings.poll_interval {
            tracing::debug!("waited a lock TTL for another process's token; fetching");
            return Next::Done(Turn::Fetch(None));
        }
        if pause.is_zero() {
            Next::Send
        } else {
            Next::Sleep(pause)
        }
    }
}

enum Acquired {
    Value(Vec<u8>),
    Locked,
    Held,
    HeldBack(Vec<u8>),
}

fn parse_acquire(reply: Value) -> Option<Acquired> {
    let Value::Array(items) = reply else { return None };
    let mut items = items.into_iter();
    let (Some(Value::Int(code)), Some(value), None) = (items.next(), items.next(), items.next()) else {
        return None;
    };
    match (code, value) {
        // Larger than the script sends: not a reply of an honest server.
        (1, Value::BulkString(bytes)) if bytes.len() > MAX_VALUE_SIZE => None,
        (1, Value::BulkString(bytes)) => Some(Acquired::Value(bytes)),
        (2, _) => Some(Acquired::Locked),
        (3, _) => Some(Acquired::Held),
        (4, Value::BulkString(bytes)) if bytes.len() <= 128 => Some(Acquired::HeldBack(bytes)),
        _ => None,
    }
}

/// Whether `token` needs no refresh at `now` under `config`: the core's own
/// rule (refresh margin, clock skew), asked of the core rather than copied.
pub(crate) fn is_fresh(config: &Config, token: &AccessToken, now: Timestamp) -> bool {
    // This source never sends a request, so its seed (jitter, `jti`) is unused.
    let source = TokenSource::with_token(config.clone(), token.clone(), [0; 32]);
    source.refresh_at().is_some_and(|at| now < at)
}

/// The [`LOAD`] script: the stored value, up to the size limit.
fn get_token(keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(LOAD).arg(1).arg(&keys.token).arg(MAX_VALUE_SIZE);
    cmd
}

/// The [`SAVE`] script: the sealed value with its remaining life at `now`
/// (until `expiry`) as its TTL; `None` when it has expired (nothing to share).
fn set_token(keys: &Keys, value: Vec<u8>, expiry: Timestamp, now: Timestamp) -> Option<Cmd> {
    let remaining = expiry.saturating_duration_since(now);
    if remaining.is_zero() {
        return None;
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SAVE)
        .arg(1)
        .arg(&keys.token)
        .arg(value)
        .arg(millis(remaining).max(1))
        .arg(expiry.as_unix_millis());
    Some(cmd)
}

/// What [`RedisStore::check`](crate::RedisStore::check) sends: a script
/// touching no key, which an ACL user limited to the store's commands
/// (`GET`, `SET`, `DEL`, `EVAL`) may run, where `PING` may be refused.
pub(crate) fn probe() -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg("return 1").arg(0);
    cmd
}

/// The [`EVICT`] script for a token with these ids, and the sealed
/// back-off with its TTL, if any.
fn evict_token(keys: &Keys, ids: &[String], held: Option<(Vec<u8>, Duration)>) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(EVICT).arg(2).arg(&keys.token).arg(&keys.held);
    match held {
        Some((value, ttl)) => cmd.arg(value).arg(millis(ttl).max(1)),
        None => cmd.arg("").arg(0),
    };
    for id in ids {
        cmd.arg(id);
    }
    cmd
}

/// `DEL token`.
fn delete_token(keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("DEL");
    cmd.arg(&keys.token);
    cmd
}

/// The owner-checked release of the lock.
fn release_lock(keys: &Keys, owner: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE).arg(1).arg(&keys.lock).arg(owner);
    cmd
}

/// The token in a [`LOAD`] reply, if it is one sealed for this client.
fn open_reply(sealer: &Sealer, keys: &Keys, reply: Value) -> io::Result<Option<AccessToken>> {
    match reply {
        // Larger than the script sends: not a reply of an honest server.
        Value::BulkString(bytes) if bytes.len() > MAX_VALUE_SIZE => {
            Err(store_error(RedisStoreError::TooLarge { limit: MAX_VALUE_SIZE }))
        }
        Value::BulkString(bytes) => {
            let token = sealer.open(&keys.token, &bytes);
            if token.is_none() {
                tracing::debug!("the stored value is not a token sealed for this client; ignoring it");
            }
            Ok(token)
        }
        _ => Ok(None),
    }
}

/// Roughly how many bytes `value` holds: what a driver checks against
/// [`MAX_VALUE_SIZE`] before any operation sees a reply.
pub(crate) fn reply_size(value: &Value) -> usize {
    fn all(items: &[Value]) -> usize {
        items.iter().map(reply_size).fold(items.len(), usize::saturating_add)
    }
    fn pairs(pairs: &[(Value, Value)]) -> usize {
        pairs
            .iter()
            .map(|(key, value)| reply_size(key).saturating_add(reply_size(value)))
            .fold(pairs.len(), usize::saturating_add)
    }
    match value {
        Value::BulkString(bytes) => bytes.len(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => text.len(),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => all(items),
        Value::Map(items) => pairs(items),
        Value::Attribute { data, attributes } => reply_size(data).saturating_add(pairs(attributes)),
        Value::ServerError(error) => error.details().map_or(0, str::len).saturating_add(error.code().len()),
        _ => 16,
    }
}

/// The reply a driver hands on: `value`, or the store's `TOOLARGE` error
/// when it exceeds [`MAX_VALUE_SIZE`] (plus room for the script's framing).
pub(crate) fn capped(value: Value) -> RedisResult<Value> {
    if reply_size(&value) <= MAX_VALUE_SIZE + 1024 {
        return Ok(value);
    }
    Err(redis::make_extension_error(
        TOO_LARGE.to_owned(),
        Some("the reply exceeds the size limit".to_owned()),
    ))
}

/// Whether `error` says the key holds something that is not a string (so
/// not ours): read as no token; the next save replaces it.
fn is_foreign(error: &redis::RedisError) -> bool {
    error.code() == Some("WRONGTYPE")
}

/// The wall clock, for TTLs.
pub(crate) fn wall_now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// 128 random bits, hex: a lock owner no other process will pick.
fn random_owner() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: fall back to what differs between processes and
        // calls. Ownership only needs uniqueness, not secrecy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{config, config_with_secret};

    fn keys() -> Keys {
        Keys::new("p:", "f")
    }

    fn settings() -> Settings {
        Settings {
            lock_ttl: Duration::from_secs(1),
            poll_interval: Duration::from_millis(5),
        }
    }

    fn token(received: u64, expires: u64) -> AccessToken {
        AccessToken::builder(format!("t{received}"))
            .received_at(Timestamp::from_unix_secs(received))
            .expires_at(Timestamp::from_unix_secs(expires))
            .build()
            .unwrap()
    }

    fn value(token: &AccessToken) -> Value {
        let sealed = sealer(&config())
            .seal(&keys().token, token, token.expires_at().unwrap())
            .unwrap();
        Value::Array(vec![Value::Int(1), Value::BulkString(sealed)])
    }

    fn sealer(config: &Config) -> Sealer {
        Sealer::new(config, None, None).unwrap()
    }

    fn code(code: i64) -> Value {
        Value::Array(vec![Value::Int(code), Value::BulkString(Vec::new())])
    }

    fn round<'a>(config: &'a Config, keys: &Keys) -> Round<'a> {
        round_at(config, keys, 10_000)
    }

    #[test]
    fn a_fresh_stored_token_is_used() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        let fresh = token(9_000, 13_600);
        assert!(matches!(round.on_reply(value(&fresh), Duration::ZERO), Next::Done(Turn::Use(t)) if t == fresh));
    }

    #[test]
    fn a_stale_token_is_remembered_and_the_lock_asked_for_next() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        // Inside its refresh window (refresh at 13 300, now 13 400).
        let mut late = round_at(&config, &keys, 13_400);
        let stale = token(9_700, 13_600);
        assert!(matches!(late.on_reply(value(&stale), Duration::ZERO), Next::Send));
        assert!(!late.stale.is_empty());
        let args = late.command().get_packed_command();
        assert!(args.windows(late.stale.len()).any(|w| w == late.stale));
        assert!(matches!(
            round.on_reply(code(2), Duration::ZERO),
            Next::Done(Turn::Fetch(Some(_)))
        ));
    }

    fn round_at<'a>(config: &'a Config, keys: &Keys, secs: u64) -> Round<'a> {
        Round::new(
            config,
            sealer(config),
            keys.clone(),
            settings(),
            Timestamp::from_unix_secs(secs),
        )
    }

    #[test]
    fn a_held_lock_is_polled_until_the_lock_ttl_has_passed() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        assert!(
            matches!(round.on_reply(code(3), Duration::from_millis(10)), Next::Sleep(d) if d == Duration::from_millis(5))
        );
        assert!(matches!(
            round.on_reply(code(3), Duration::from_millis(1_010)),
            Next::Sleep(_)
        ));
        assert!(matches!(
            round.on_reply(code(3), Duration::from_millis(1_030)),
            Next::Done(Turn::Fetch(None))
        ));
    }

    #[test]
    fn the_token_written_while_waiting_is_judged_at_the_time_it_arrives() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        // Refresh time 10 000.5 s: fresh at the start, not 600 ms later.
        let short = token(9_999, 10_002);
        assert!(matches!(
            round.on_reply(value(&short), Duration::from_millis(600)),
            Next::Send
        ));
    }

    #[test]
    fn corrupt_foreign_and_unexpected_replies_lead_to_a_fetch() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        let corrupt = Value::Array(vec![Value::Int(1), Value::BulkString(b"garbage".to_vec())]);
        assert!(matches!(round.on_reply(corrupt, Duration::ZERO), Next::Send));
        let other = config_with_secret("other");
        let foreign = sealer(&other)
            .seal(&keys.token, &token(9_000, 13_600), Timestamp::from_unix_secs(13_600))
            .unwrap();
        let reply = Value::Array(vec![Value::Int(1), Value::BulkString(foreign)]);
        assert!(matches!(round.on_reply(reply, Duration::ZERO), Next::Send));
        for reply in [Value::Nil, Value::Int(2), code(9), Value::Array(vec![])] {
            assert!(matches!(
                round.on_reply(reply, Duration::ZERO),
                Next::Done(Turn::Fetch(None))
            ));
        }
    }

    fn held_back(config: &Config, keys: &Keys, until: u64, failures: u32) -> Value {
        let backoff = SharedBackoff::new(Timestamp::from_unix_secs(until), failures);
        let sealed = sealer(config).seal_backoff(&keys.held, &backoff).unwrap();
        Value::Array(vec![Value::Int(4), Value::BulkString(sealed)])
    }

    #[test]
    fn a_back_off_sealed_for_this_client_fails_the_round_while_it_holds() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        assert!(matches!(
            round.on_reply(held_back(&config, &keys, 10_020, 3), Duration::ZERO),
            Next::Done(Turn::HoldBack(b)) if b.until == Timestamp::from_unix_secs(10_020) && b.failures == 3
        ));
        // Judged at the time it arrives: over by then, so the lock is asked
        // for next, past this back-off.
        let mut round = self::round(&config, &keys);
        let reply = held_back(&config, &keys, 10_000, 3);
        assert!(matches!(round.on_reply(reply, Duration::from_millis(1)), Next::Send));
        assert!(!round.held.is_empty());
        let args = round.command().get_packed_command();
        assert!(args.windows(round.held.len()).any(|w| w == round.held));
    }

    #[test]
    fn a_forged_or_foreign_back_off_is_passed_over() {
        let (config, keys) = (config(), keys());
        let mut round = round(&config, &keys);
        let garbage = Value::Array(vec![Value::Int(4), Value::BulkString(b"garbage".to_vec())]);
        assert!(matches!(round.on_reply(garbage, Duration::ZERO), Next::Send));
        let other = config_with_secret("other");
        assert!(matches!(
            round.on_reply(held_back(&other, &keys, 99_999, u32::MAX), Duration::ZERO),
            Next::Send
        ));
        // Longer than any sealed one: not an honest server's reply.
        let huge = Value::Array(vec![Value::Int(4), Value::BulkString(vec![3; 129])]);
        assert!(matches!(
            round.on_reply(huge, Duration::ZERO),
            Next::Done(Turn::Fetch(None))
        ));
    }

    /// Steps `operation` as a driver would, answering its commands with
    /// `answers` in turn; returns how many commands it sent and its result.
    fn drive<O: Operation>(mut operation: O, answers: Vec<RedisResult<Value>>) -> (usize, O::Output) {
        let (mut answers, mut answer, mut sent) = (answers.into_iter(), None, 0);
        loop {
            match operation.step(answer.take(), Duration::ZERO) {
                Step::Send(_) => {
                    sent += 1;
                    answer = answers.next();
                }
                Step::Sleep(_) => {}
                Step::Done(output) => return (sent, output),
            }
        }
    }

    fn unreachable() -> RedisResult<Value> {
        Err(redis::RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer",
        )))
    }

    #[test]
    fn store_calls_send_what_they_need_and_read_the_answers_the_same_for_both_drivers() {
        let store = crate::RedisStore::builder("redis://127.0.0.1:1").build().unwrap();
        let (shared, config) = (&*store.shared, config());
        let now = Timestamp::from_unix_secs(1_500);

        let (sent, loaded) = drive(load(shared, &config), vec![Ok(Value::Nil)]);
        assert_eq!((sent, loaded.unwrap()), (1, None));
        let (_, loaded) = drive(load(shared, &config), vec![unreachable()]);
        assert_eq!(loaded.unwrap_err().kind(), io::ErrorKind::TimedOut);

        let (sent, saved) = drive(save(shared, &config, &token(1_000, 2_000), now), vec![Ok(Value::Okay)]);
        assert_eq!((sent, saved.unwrap()), (1, ()));
        let expired = token(1_000, 1_500);
        assert_eq!(
            drive(save(shared, &config, &expired, now), vec![]).0,
            0,
            "nothing to share"
        );
        let (_, deleted) = drive(delete(shared, &config), vec![unreachable()]);
        assert!(deleted.is_err());

        // No lock taken: nothing to release.
        assert_eq!(drive(end_fetch(shared, &config), vec![]).0, 0);
        let (_, turn) = drive(begin_fetch(shared, &config, now), vec![unreachable()]);
        assert!(matches!(turn, Ok(FleetTurn::Fetch)));
        let (_, turn) = drive(begin_fetch(shared, &config, now), vec![Ok(code(3)), Ok(code(2))]);
        assert!(matches!(turn, Ok(FleetTurn::Fetch)));
        // The lock taken is released at the end of the round.
        assert_eq!(drive(end_fetch(shared, &config), vec![Ok(Value::Int(1))]).0, 1);
        assert_eq!(drive(end_fetch(shared, &config), vec![]).0, 0);
    }

    #[test]
    fn owners_are_random() {
        assert_ne!(random_owner(), random_owner());
        assert_eq!(random_owner().len(), 32);
    }

    #[test]
    fn an_expired_token_is_not_written() {
        let expiry = Timestamp::from_unix_secs(2_000);
        assert!(set_token(&keys(), vec![1], expiry, Timestamp::from_unix_secs(2_000)).is_none());
        let cmd = set_token(&keys(), vec![1], expiry, Timestamp::from_unix_secs(1_500)).unwrap();
        assert!(cmd.get_packed_command().windows(6).any(|w| w == b"500000"));
    }

    #[test]
    fn a_secretless_client_sends_nothing_and_gets_the_typed_error() {
        let store = crate::RedisStore::builder("redis://127.0.0.1:1").build().unwrap();
        let shared = &*store.shared;
        let config = Config::builder("fleet-client", "")
            .token_endpoint("https://auth.example.com/token")
            .build()
            .unwrap();
        let typed = |error: io::Error| {
            error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<RedisStoreError>())
                .cloned()
        };
        let required = Some(RedisStoreError::EncryptionKeyRequired);
        let now = Timestamp::from_unix_secs(1_500);
        let (sent, loaded) = drive(load(shared, &config), vec![]);
        assert_eq!((sent, typed(loaded.unwrap_err())), (0, required.clone()));
        let (sent, saved) = drive(save(shared, &config, &token(1_000, 2_000), now), vec![]);
        assert_eq!((sent, typed(saved.unwrap_err())), (0, required.clone()));
        let (sent, evicted) = drive(evict(shared, &config, &token(1_000, 2_000), None), vec![]);
        assert_eq!((sent, typed(evicted.unwrap_err())), (0, required.clone()));
        let (sent, turn) = drive(begin_fetch(shared, &config, now), vec![]);
        assert_eq!((sent, typed(turn.unwrap_err())), (0, required));
    }

    #[test]
    fn replies_over_the_size_limit_are_refused_whatever_the_server_sends() {
        // Over the limit and the room left for a script's framing.
        let huge = Value::BulkString(vec![0; MAX_VALUE_SIZE + 2048]);
        assert!(capped(Value::BulkString(vec![0; MAX_VALUE_SIZE])).is_ok());
        let Err(error) = capped(huge.clone()) else {
            panic!("a huge reply passed")
        };
        assert!(matches!(
            io_error(error)
                .get_ref()
                .and_then(|e| e.downcast_ref::<RedisStoreError>()),
            Some(RedisStoreError::TooLarge { .. })
        ));
        let nested = Value::Array(vec![Value::Int(1), Value::Array(vec![huge.clone()])]);
        assert!(capped(nested).is_err());
        // Past a driver's check, the operations refuse it too.
        let (config, keys) = (config(), keys());
        assert!(open_reply(&sealer(&config), &keys, huge.clone()).is_err());
        let mut round = round(&config, &keys);
        let reply = Value::Array(vec![Value::Int(1), huge]);
        assert!(matches!(
            round.on_reply(reply, Duration::ZERO),
            Next::Done(Turn::Fetch(None))
        ));
    }
}
