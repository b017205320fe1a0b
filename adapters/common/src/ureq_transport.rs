//! What the blocking adapter's `ureq` errors mean to the core (feature `ureq`).

use client_credentials::{TransportError, TransportErrorKind};

/// A `ureq` error as the core's [`TransportError`] (with its causes): timeouts,
/// failures to connect (DNS, refused, TLS) and broken exchanges told apart,
/// for the core's retry rules. ureq's messages name hosts and causes, never request
/// headers or bodies.
pub fn map_error(error: ureq::Error) -> TransportError {
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
    crate::transport_error(kind, &error)
}
