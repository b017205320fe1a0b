//! At `TRACE`, ureq hex-dumps each request, credentials
//! included, under the `log` target `ureq_proto`; every other record stays
//! clean, so the documented `ureq_proto=off` is the whole fix.
//! A binary of its own: it installs the process-wide `log` logger.

use std::sync::Mutex;

use client_credentials_blocking::Client;
use client_credentials_testkit::TestIssuer;

struct Capture(Mutex<Vec<(String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let entry = (record.target().to_owned(), record.args().to_string());
        self.0.lock().unwrap().push(entry);
    }
    fn flush(&self) {}
}

mod common;

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn ureqs_trace_dump_is_only_under_the_target_the_docs_say_to_silence() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let issuer = TestIssuer::start();
    let config = common::config(&issuer).build().unwrap();
    let token = Client::new(config).token().unwrap();
    let sent = issuer.token_requests().pop().unwrap();
    let basic = sent
        .header("authorization")
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap()
        .to_owned();

    let records = CAPTURE.0.lock().unwrap().clone();
    // The dump: 16 bytes a row, their printable form in the last 16 characters.
    let dumped: String = records
        .iter()
        .filter(|(target, _)| target.starts_with("ureq_proto"))
        .map(|(_, row)| {
            row.chars()
                .rev()
                .take(16)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        })
        .collect();
    assert!(
        dumped.contains(&basic),
        "the documented hazard is gone; update the docs"
    );
    for (target, message) in records.iter().filter(|(target, _)| !target.starts_with("ureq_proto")) {
        for credential in [basic.as_str(), &issuer.client_secret(), token.secret()] {
            assert!(!message.contains(credential), "{target}: {message}");
        }
    }
    let docs = [include_str!("../src/lib.rs"), include_str!("../../../README.md")];
    assert!(docs.iter().all(|text| text.contains("ureq_proto=off")));
}
