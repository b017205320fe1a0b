//! Credentials never leave through proxies, echoes or allocations; token
//! files are served only to the configuration and owner that wrote them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use base64::Engine as _;
use client_credentials::{Config, Error};
use client_credentials_testkit::{Fault, TestIssuer};

use super::config;
use crate::{Adapter, Options};

/// A listener that counts connections and answers each with a 502: where
/// the proxy environment variables point in [`plain_http_to_loopback_bypasses_proxies`].
fn counting_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, count)
}

/// With `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` set, a plain
/// http token endpoint on loopback is still reached directly: through the
/// proxy, the client secret would cross the network in clear text.
///
/// Sets process-wide environment variables: its test binary runs nothing else.
pub fn plain_http_to_loopback_bypasses_proxies<A: Adapter>() {
    let (proxy, connections) = counting_proxy();
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(name, &proxy);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }
    let issuer = TestIssuer::start();
    let port = issuer.addr().port();
    for endpoint in [issuer.token_endpoint(), format!("http://localhost:{port}/token")] {
        let config = Config::builder(issuer.client_id(), issuer.client_secret())
            .token_endpoint(&endpoint)
            .max_attempts(1)
            .build()
            .unwrap();
        let client = A::build(config, Options::default());
        A::token(&client).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a request went through the proxy"
    );
    assert_eq!(issuer.token_requests().len(), 2);
    // Discovery over plain http to loopback goes direct too.
    A::discover(&issuer.issuer_url()).unwrap();
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "discovery went through the proxy"
    );
}

/// A `Content-Length` of 2^60 under a huge body cap is not
/// allocated up front: the client reads what arrives and reports the broken
/// body (allocating that much up front aborts the process).
pub fn a_hostile_content_length_is_not_preallocated<A: Adapter>() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/token", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1152921504606846976\r\n\r\n{\"access",
            );
        }
    });
    let config = Config::builder("id", "secret")
        .token_endpoint(endpoint)
        .max_body_size(usize::MAX / 2)
        .max_attempts(1)
        .build()
        .unwrap();
    let client = A::build(config, Options::default());
    let error = A::token(&client).unwrap_err();
    assert!(
        matches!(error, Error::Transport(_) | Error::InvalidResponse { .. }),
        "{error:?}"
    );
}

/// End to end: a server that echoes the Basic header, the refresh
/// token or the token being revoked (escaped as it likes) never gets them
/// into the errors either adapter returns.
pub fn credentials_echoed_by_the_server_are_redacted<A: Adapter>() {
    let issuer = TestIssuer::builder().issue_refresh_tokens(true).start();
    // Revocation is sent to the token endpoint, where faults can be queued.
    let signing_out = config(&issuer)
        .revocation_endpoint(issuer.token_endpoint())
        .max_attempts(1)
        .build()
        .unwrap();
    let client = A::build(signing_out, Options::default());
    let token = A::token(&client).unwrap();
    let refresh = token.refresh_token().expect("a refresh token").to_owned();
    let lower_hex = |value: &str| -> String { value.bytes().map(|b| format!("%{b:02x}")).collect() };
    let json_escaped = |value: &str| value.replace('/', "\\/");

    // The refresh grant answered with an error page quoting it (5xx: not a
    // fallback to the client credentials grant).
    issuer.push_fault(Fault::status(
        503,
        format!("refresh token {} expired", lower_hex(&refresh)),
    ));
    let error = A::refresh(&client).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains(&lower_hex(&refresh)) && !text.contains(&refresh),
        "{text}"
    );
    assert!(text.contains("[redacted]"), "{text}");

    // A 401 page echoing the Authorization header.
    let fresh = TestIssuer::start();
    let pair = format!("{}:{}", fresh.client_id(), fresh.client_secret());
    let fresh_basic = base64::engine::general_purpose::STANDARD.encode(pair);
    fresh.push_fault(Fault::status(
        401,
        format!(
            "<pre>Authorization: Basic {}</pre>",
            json_escaped(&fresh_basic).replace('+', "&#43;")
        ),
    ));
    let other = A::build(config(&fresh).max_attempts(1).build().unwrap(), Options::default());
    let error = A::token(&other).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains(&fresh_basic[..fresh_basic.len() - 4]), "{text}");

    // Revocation answered with an OAuth error quoting the token.
    issuer.push_fault(Fault::oauth_error(
        400,
        "invalid_request",
        &format!("token {refresh} unknown"),
    ));
    match A::signout(&client) {
        Err(error) => {
            let text = format!("{error} {error:?}");
            assert!(!text.contains(&refresh), "{text}");
        }
        Ok(()) => panic!("the revocation fault was not met"),
    }
}

fn file_options(path: &std::path::Path) -> Options {
    Options {
        store: crate::StoreChoice::File(path.to_owned()),
        ..Options::default()
    }
}

/// A token file is tied to the configuration that wrote it. A
/// client configured otherwise (here: the same provider through discovery
/// rather than a direct endpoint) fetches its own token instead of serving
/// the file's.
pub fn a_token_file_for_another_configuration_is_not_served<A: Adapter>() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let issuer = TestIssuer::start();
    let first = A::token(&A::build(config(&issuer).build().unwrap(), file_options(&path))).unwrap();
    let other = super::discovering(&issuer).build().unwrap();
    let second = A::token(&A::build(other, file_options(&path))).unwrap();
    assert_ne!(
        first.secret(),
        second.secret(),
        "the other configuration's token was served"
    );
    assert_eq!(issuer.token_requests().len(), 2);
    // The same configuration as the last writer is served from the file.
    let third = A::token(&A::build(
        super::discovering(&issuer).build().unwrap(),
        file_options(&path),
    ))
    .unwrap();
    assert_eq!(third.secret(), second.secret());
    assert_eq!(issuer.token_requests().len(), 2);
}

/// A token file group or others can read, or (when the test runs
/// as root, which can give it away) one another user owns, is not trusted:
/// the client fetches and saves a private file of its own.
pub fn an_untrusted_token_file_is_refused_and_a_token_fetched<A: Adapter>() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let issuer = TestIssuer::start();
        let build = || A::build(config(&issuer).build().unwrap(), file_options(&path));
        let planted = A::token(&build()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fetched = A::token(&build()).unwrap();
        assert_ne!(fetched.secret(), planted.secret(), "a world-readable file was served");
        assert_eq!(issuer.token_requests().len(), 2);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o777, 0o600, "the fetched token was saved privately");

        let owner = metadata.uid();
        if std::os::unix::fs::chown(&path, Some(owner.wrapping_add(4242)), None).is_ok() {
            let again = A::token(&build()).unwrap();
            assert_ne!(again.secret(), fetched.secret(), "another user's file was served");
            assert_eq!(issuer.token_requests().len(), 3);
        }
    }
}
