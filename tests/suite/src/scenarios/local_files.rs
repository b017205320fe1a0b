//! What a local user can put in the client's way: a FIFO, a symlink or a
//! huge file where the token file or the client assertion file is expected;
//! and what the client's own logs show of a request's URI.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use client_credentials::{AssertionSource, ClientAuth, ClientAuthError, Config, Error};
use client_credentials_testkit::TestIssuer;

use super::config;
use crate::{Adapter, Options};

/// Runs `call` on another thread and fails the scenario, instead of hanging
/// the suite, when it has not returned within `limit`.
fn within<T: Send + 'static>(limit: Duration, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(call()));
    receive
        .recv_timeout(limit)
        .expect("the call returned instead of blocking on the file")
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo");
}

/// A FIFO at the assertion file's path is refused at once with a typed
/// error, and nothing is sent: read as a file, its open would wait for a
/// writer that never comes, holding every caller in the single flight.
pub fn a_fifo_at_the_assertion_path_is_a_prompt_typed_error<A: Adapter>() {
    #[cfg(unix)]
    {
        let issuer = TestIssuer::start();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        mkfifo(&path);
        let config = Config::builder(issuer.client_id(), "")
            .token_endpoint(issuer.token_endpoint())
            .auth(ClientAuth::Assertion(AssertionSource::file(&path)))
            .build()
            .unwrap();
        let client = A::build(config, Options::default());
        let started = Instant::now();
        let result = within(Duration::from_secs(10), move || A::token(&client));
        match result {
            Err(error @ Error::ClientAuth(ClientAuthError::AssertionUnavailable { .. })) => {
                assert!(error.to_string().contains("not a regular file"), "{}: {error}", A::NAME);
            }
            other => panic!("{}: expected AssertionUnavailable, got {other:?}", A::NAME),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{}", A::NAME);
        assert!(issuer.token_requests().is_empty(), "nothing was sent");
    }
}

/// A FIFO, a symlink or a 1 MiB file at the token file's path is refused
/// at once, and the client fetches (and saves) a token of its own.
pub fn an_unreadable_kind_of_token_file_is_refused_and_a_token_fetched<A: Adapter>() {
    #[cfg(unix)]
    {
        let issuer = TestIssuer::start();
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::write(&elsewhere, b"{}").unwrap();
        for (round, what) in ["fifo", "symlink", "1 MiB"].into_iter().enumerate() {
            let path = dir.path().join(format!("token-{round}.json"));
            match what {
                "fifo" => mkfifo(&path),
                "symlink" => std::os::unix::fs::symlink(&elsewhere, &path).unwrap(),
                _ => std::fs::write(&path, vec![b' '; 1024 * 1024]).unwrap(),
            }
            let options = Options {
                store: crate::StoreChoice::File(path.clone()),
                ..Options::default()
            };
            let client = A::build(config(&issuer).build().unwrap(), options);
            within(Duration::from_secs(10), move || A::token(&client))
                .unwrap_or_else(|e| panic!("{}: {what}: {e}", A::NAME));
            assert_eq!(issuer.token_requests().len(), round + 1, "{}: {what}", A::NAME);
            let saved = std::fs::symlink_metadata(&path).unwrap();
            assert!(
                saved.file_type().is_file(),
                "{}: {what}: replaced by the saved token",
                A::NAME
            );
        }
        assert_eq!(
            std::fs::read(&elsewhere).unwrap(),
            b"{}",
            "the link's target was not written"
        );
    }
}

/// Everything the client logs, from every test of this binary.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A request URI is logged without its query: a token endpoint may carry a
/// key there (an API gateway's `?key=`, a function's `?code=`), and debug
/// logs are read by more people than the credentials are.
pub fn request_uris_are_logged_without_their_query<A: Adapter>() {
    let logs = captured_logs();
    let issuer = TestIssuer::start();
    let marker = format!("QUERY-MARKER-{}", A::NAME);
    let endpoint = format!("{}?key={marker}", issuer.token_endpoint());
    let config = config(&issuer).token_endpoint(endpoint).build().unwrap();
    A::token(&A::build(config, Options::default())).unwrap();
    assert_eq!(issuer.token_requests().len(), 1, "{}", A::NAME);
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let path = issuer.token_endpoint();
    assert!(
        logs.contains(&format!("{path}?…")),
        "{}: the request was logged: {logs}",
        A::NAME
    );
    assert!(!logs.contains(&marker), "{}: the query was logged: {logs}", A::NAME);
}
