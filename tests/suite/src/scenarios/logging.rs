//! What the clients log, against both adapters: every event carries the
//! adapter's crate as its `tracing` target, the shared driver's included, so
//! `RUST_LOG=client_credentials_blocking=debug` (or `…_tokio`) shows them.

use std::sync::{Mutex, Once};

use client_credentials_testkit::{Fault, TestIssuer};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::config;
use crate::{Adapter, Options};

/// The target and message of every event, from every thread.
static EVENTS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Recorder;

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let target = event.metadata().target().to_owned();
        EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((target, message.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn record_events() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Recorder).expect("no other subscriber"));
}

/// A request sent and a refresh that failed are logged with the adapter's
/// crate as the target, never the shared crate's module path.
pub fn log_lines_carry_the_adapters_target<A: Adapter>() {
    record_events();
    let issuer = TestIssuer::start();
    let client = A::build(config(&issuer).max_attempts(1).build().unwrap(), Options::default());
    let first = A::token(&client).unwrap();
    issuer.push_fault(Fault::status(500, "down"));
    A::invalidate(&client, &first);
    let _ = A::token(&client);
    let target = format!("client_credentials_{}", A::NAME);
    let events = EVENTS.lock().unwrap().clone();
    let ours: Vec<_> = events.iter().filter(|(t, _)| t == &target).collect();
    assert!(
        ours.iter().any(|(_, m)| m.contains("sending")),
        "{target}: a request sent, in {events:?}"
    );
    assert!(
        events.iter().all(|(t, _)| !t.starts_with("client_credentials_common")),
        "the shared crate's path as a target: {events:?}"
    );
}
