//! Where the token endpoint comes from ([`Endpoint`]), endpoint URL checks,
//! and cutting credentials out of a URL before it is quoted: one place for
//! every URL the client will send to, whether it was configured or came from
//! a metadata document.
//!
//! `config`, `discovery` and `resource` all check URLs here; the metadata
//! URLs of an issuer or a resource are built by `discovery` and `resource`.

use url::Url;

use crate::discovery::{discovery_url_with, DiscoveryLocation};
use crate::error::{ConfigError, DiscoveryError};
use crate::resource::resource_metadata_url_with;

/// Where the token endpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Configured directly.
    Token(Url),
    /// Discovered from this issuer.
    Issuer(Issuer),
    /// Discovered from this protected resource (RFC 9728): its metadata names
    /// the issuer, whose metadata names the token endpoint.
    ResourceServer(ResourceServer),
}

/// An issuer whose metadata names the token endpoint, with the URLs of its
/// metadata documents built and checked once: every discovery request the
/// client sends is to one of them, so none can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issuer {
    /// The identifier exactly as configured or named: a document's `issuer`
    /// must equal it byte for byte (RFC 8414 §3.3).
    identifier: String,
    openid: Url,
    rfc8414: Url,
}

impl Issuer {
    /// Checks `identifier` and builds its metadata URLs; the error says why
    /// it cannot be used (not a URL, plain `http:` to a non-loopback host, a
    /// query or fragment).
    pub(crate) fn new(identifier: String, allow_insecure: bool) -> Result<Issuer, DiscoveryError> {
        let openid = discovery_url_with(&identifier, DiscoveryLocation::OpenId, allow_insecure)?;
        let rfc8414 = discovery_url_with(&identifier, DiscoveryLocation::Rfc8414, allow_insecure)?;
        Ok(Issuer {
            identifier,
            openid,
            rfc8414,
        })
    }

    /// The identifier.
    pub(crate) fn as_str(&self) -> &str {
        &self.identifier
    }

    /// Where its metadata document is read at `location`.
    pub(crate) fn metadata_url(&self, location: DiscoveryLocation) -> &Url {
        match location {
            DiscoveryLocation::OpenId => &self.openid,
            DiscoveryLocation::Rfc8414 => &self.rfc8414,
        }
    }
}

/// A protected resource (RFC 9728), with the checked URL of its well-known
/// metadata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceServer {
    /// The identifier exactly as configured: the document's `resource` must
    /// equal it (RFC 9728 §3.3).
    identifier: String,
    metadata_url: Url,
}

impl ResourceServer {
    /// The identifier.
    pub(crate) fn as_str(&self) -> &str {
        &self.identifier
    }

    /// Where its metadata document is read, unless a `401` named another place.
    pub(crate) fn metadata_url(&self) -> &Url {
        &self.metadata_url
    }

    /// Checks `identifier` and builds its well-known metadata URL.
    pub(crate) fn new(identifier: String, allow_insecure: bool) -> Result<ResourceServer, DiscoveryError> {
        let metadata_url = resource_metadata_url_with(&identifier, allow_insecure)?;
        Ok(ResourceServer {
            identifier,
            metadata_url,
        })
    }
}

/// Parses and checks an endpoint URL: absolute, no fragment, no credentials,
/// `https` unless the host is loopback or insecure HTTP is allowed.
pub(crate) fn check_endpoint(field: &'static str, raw: &str, allow_insecure: bool) -> Result<Url, ConfigError> {
    // Every error below quotes the URL: never with what could be a password.
    let url = without_userinfo(raw);
    let parsed = match Url::parse(raw) {
        Ok(parsed) => parsed,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(ConfigError::RelativeUrl { field, url }),
        Err(e) => {
            return Err(ConfigError::InvalidUrl {
                field,
                url,
                reason: e.to_string(),
            })
        }
    };
    // Before any other check, so the error names the credentials first.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::InvalidUrl {
            field,
            url: redact_userinfo(&parsed),
            reason: "credentials in the URL are not allowed; pass them to Config::builder".into(),
        });
    }
    if parsed.fragment().is_some() {
        return Err(ConfigError::UrlWithFragment { field, url });
    }
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure || is_loopback(&parsed) => {}
        "http" => {
            return Err(ConfigError::InsecureUrl {
                field,
                url: url.clone(),
            })
        }
        other => {
            return Err(ConfigError::InvalidUrl {
                field,
                url: url.clone(),
                reason: format!("scheme {other:?} is not http or https"),
            })
        }
    }
    if parsed.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            field,
            url: url.clone(),
            reason: "it has no host".into(),
        });
    }
    // `url` accepts some host characters (a backtick, braces) that `http::Uri`
    // rejects; such a URL could never be requested (found by fuzzing discovery).
    if http::Uri::try_from(parsed.as_str()).is_err() {
        return Err(ConfigError::InvalidUrl {
            field,
            url: url.clone(),
            reason: "it is not a valid HTTP request URI".into(),
        });
    }
    Ok(parsed)
}

/// `raw` with everything between the scheme and the last `@` cut out, when it
/// has an `@`: a URL that does not parse may still carry `user:password@`,
/// and where its authority ends is unknowable (a password may hold `/` or
/// `#`). Cuts too much from URLs with an `@` in the path, never too little.
pub(crate) fn without_userinfo(raw: &str) -> String {
    let Some(at) = raw.rfind('@') else {
        return raw.to_owned();
    };
    let start = match raw.find("//") {
        Some(slashes) if slashes < at => slashes + 2,
        _ => raw
            .find(':')
            .filter(|&colon| colon < at && raw[..colon].chars().all(|c| c.is_ascii_alphabetic()))
            .map_or(0, |colon| colon + 1),
    };
    format!("{}[redacted]{}", &raw[..start], &raw[at..])
}

pub(crate) fn redact_userinfo(url: &Url) -> String {
    let mut copy = url.clone();
    let _ = copy.set_username("");
    let _ = copy.set_password(None);
    copy.to_string()
}

/// `localhost`, `127.0.0.0/8` and `::1`.
///
/// Not `*.localhost`: RFC 6761 asks resolvers to map those names to loopback,
/// but the HTTP client's resolver, `/etc/hosts` or a proxy need not, so plain
/// http to them could leave the machine. They need
/// [`ConfigBuilder::allow_insecure_http`](crate::ConfigBuilder::allow_insecure_http) like any other host.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
