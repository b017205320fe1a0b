//! A token store for scenarios: records every call, and can hold a `save`
//! until the scenario lets it through (to race a sign-out against it).

use std::io;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use client_credentials::{AccessToken, Config};
use client_credentials_tokio::BoxFuture;

/// An in-memory store that logs its calls (`"load"`, `"save <token>"`,
/// `"delete"`) and whose saves can be held at a gate.
#[derive(Debug, Default)]
pub struct RecordingStore {
    state: Mutex<Recorded>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Recorded {
    token: Option<AccessToken>,
    calls: Vec<String>,
    hold_saves: bool,
    saves_waiting: usize,
}

impl RecordingStore {
    /// An empty store whose saves go through.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token stored now.
    pub fn token(&self) -> Option<AccessToken> {
        self.lock().token.clone()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Holds every `save` at a gate (`true`) or lets them through (`false`).
    pub fn hold_saves(&self, hold: bool) {
        self.lock().hold_saves = hold;
        self.changed.notify_all();
    }

    /// Waits (up to 5 s) until a `save` is held at the gate.
    pub fn wait_for_held_save(&self) {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(5), |s| s.saves_waiting == 0)
            .unwrap_or_else(PoisonError::into_inner);
        assert_eq!(state.saves_waiting, 1, "no save reached the store");
    }

    /// Waits (up to 5 s) until `done` holds for the stored token.
    pub fn wait_until(&self, done: impl Fn(Option<&AccessToken>) -> bool) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(5), |s| !done(s.token.as_ref()))
            .unwrap_or_else(PoisonError::into_inner);
        done(state.token.as_ref())
    }

    fn save_now(&self, token: &AccessToken) {
        let mut state = self.lock();
        state.saves_waiting += 1;
        self.changed.notify_all();
        let mut state = self
            .changed
            .wait_while(state, |s| s.hold_saves)
            .unwrap_or_else(PoisonError::into_inner);
        state.saves_waiting -= 1;
        state.calls.push(format!("save {}", token.secret()));
        state.token = Some(token.clone());
        self.changed.notify_all();
    }

    fn delete_now(&self) {
        let mut state = self.lock();
        state.calls.push("delete".into());
        state.token = None;
        self.changed.notify_all();
    }

    fn load_now(&self) -> Option<AccessToken> {
        let mut state = self.lock();
        state.calls.push("load".into());
        state.token.clone()
    }
}

impl client_credentials_blocking::TokenStore for RecordingStore {
    fn load(&self, _: &Config) -> io::Result<Option<AccessToken>> {
        Ok(self.load_now())
    }

    fn save(&self, _: &Config, token: &AccessToken) -> io::Result<()> {
        self.save_now(token);
        Ok(())
    }

    fn delete(&self, _: &Config) -> io::Result<()> {
        self.delete_now();
        Ok(())
    }
}

// The tokio trait, doing the same on the calling task (a held save blocks a
// worker thread of the suite's two-worker runtime, which is what it is for).
impl client_credentials_tokio::TokenStore for RecordingStore {
    fn load<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<Option<AccessToken>>> {
        Box::pin(async move { Ok(self.load_now()) })
    }

    fn save<'a>(&'a self, _: &'a Config, token: &'a AccessToken) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.save_now(token);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, _: &'a Config) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            self.delete_now();
            Ok(())
        })
    }
}
