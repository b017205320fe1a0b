//! Which requests never go through a proxy.

use std::net::IpAddr;

/// Whether `uri` is plain `http` to a loopback host (`localhost`,
/// `127.0.0.0/8`, `::1`: the hosts the core lets receive credentials over
/// plain http). Both adapters send such requests directly, ignoring
/// `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` and any proxy configured on a
/// user's HTTP client: through a proxy, the client secret would cross the
/// network in clear text (and the proxy's loopback is not this machine's).
///
/// ```
/// use client_credentials_common::proxy::bypasses_proxy;
///
/// assert!(bypasses_proxy(&"http://localhost:8080/token".parse().unwrap()));
/// assert!(bypasses_proxy(&"http://127.0.0.1/token".parse().unwrap()));
/// assert!(bypasses_proxy(&"http://[::1]:9000/token".parse().unwrap()));
/// assert!(!bypasses_proxy(&"https://localhost/token".parse().unwrap()));
/// assert!(!bypasses_proxy(&"http://auth.localhost/token".parse().unwrap()));
/// assert!(!bypasses_proxy(&"http://10.0.0.1/token".parse().unwrap()));
/// ```
pub fn bypasses_proxy(uri: &http::Uri) -> bool {
    if uri
        .scheme_str()
        .is_none_or(|scheme| !scheme.eq_ignore_ascii_case("http"))
    {
        return false;
    }
    let Some(host) = uri.host() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
    }
}
