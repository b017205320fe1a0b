//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! fuzz target functions on stable Rust, so CI checks every seed and every
//! regression input without a nightly toolchain or libFuzzer.

use std::fs;
use std::path::PathBuf;

use client_credentials_fuzzing as fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in files {
        let data = fs::read(&file).unwrap();
        // Name the input that fails: the panic inside says what broke.
        eprintln!("replaying {}", file.display());
        run(&data);
    }
}

#[test]
fn token_response() {
    replay("token_response", fuzzing::token_response);
}

#[test]
fn exchange_response() {
    replay("exchange_response", fuzzing::exchange_response);
}

#[test]
fn error_response() {
    replay("error_response", fuzzing::error_response);
}

#[test]
fn discovery_document() {
    replay("discovery_document", fuzzing::discovery_document);
}

#[test]
fn jwt_exp() {
    replay("jwt_exp", fuzzing::jwt_exp);
}

#[test]
fn retry_after() {
    replay("retry_after", fuzzing::retry_after);
}

#[test]
fn stored_token() {
    replay("stored_token", fuzzing::stored_token);
}

#[test]
fn token_source() {
    replay("token_source", fuzzing::token_source);
}

#[test]
fn www_authenticate() {
    replay("www_authenticate", fuzzing::www_authenticate);
}

#[test]
fn resource_metadata() {
    replay("resource_metadata", fuzzing::resource_metadata);
}
