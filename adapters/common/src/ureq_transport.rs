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
    // ureq's own wording of an I/O error ("io: …") names no cause: the
    // I/O error itself is the innermost cause, as for the tokio adapter.
    match &error {
        ureq::Error::Io(io) => crate::transport_failure(kind, url, io),
        _ => crate::transport_failure(kind, url, &error),
    }
}
