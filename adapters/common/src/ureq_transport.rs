//! What the blocking adapter's `ureq` errors mean to the core (feature `ureq`).

use client_credentials::{TransportError, TransportErrorKind};

/// A `ureq` error in an exchange with `url` as the core's [`TransportError`]
/// (worded by [`transport_failure`](crate::transport_failure)): timeouts,
/// failures to connect (DNS, refused, TLS) and broken exchanges told apart,
/// for the core's retry rules. ureq's messages name hosts and causes, never request
/// headers or bodies.
pub fn map_error(url: &http::Uri, error: ureq::Error) -> TransportError {
    use std::io::ErrorKind as Io;
    use TransportErrorKind::{Connect, Io as Broken, Other, Timeout};
    let kind = match &error {
        ureq::Error::Timeout(_) => Timeout,
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_) => Connect,
        ureq::Error::Io(e) => match e.kind() {
            Io::TimedOut | Io::WouldBlock => Timeout,
            Io::ConnectionRefused | Io::AddrNotAvailable | Io::NotFound => Connect,
            _ => Broken,
        },
        ureq::Error::Protocol(_) | ureq::Error::BodyStalled => Broken,
        _ => Other,
    };
    // ureq's errors name no cause (`source()`), and its wording of an I/O or
    // TLS error prefixes it ("io: …"): that error is the innermost cause, as
    // reqwest reports it to the tokio adapter.
    match &error {
        ureq::Error::Io(io) => crate::transport_failure(kind, url, io),
        ureq::Error::Rustls(tls) => crate::transport_failure(kind, url, tls),
        _ => crate::transport_failure(kind, url, &error),
    }
}
