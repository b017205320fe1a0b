//! RFC 9728 OAuth 2.0 Protected Resource Metadata: finding the authorization
//! server from the resource (the way MCP servers and other APIs advertise it).

use std::borrow::Borrow;

use http::Response;
use serde_json::{Map, Value};
use url::Url;

use crate::discovery::{metadata_document, take_strings, Fetched};
use crate::endpoint::{check_endpoint, redact_userinfo, without_userinfo};
use crate::error::{DiscoveryError, Error};
use crate::redact::{clean, Credentials};

/// A protected resource's metadata (RFC 9728 §2), validated: its `resource`
/// equals the resource identifier it was fetched for, and it names at least
/// one usable authorization server.
///
/// The fields the client uses are typed; every other member of the document
/// is kept in `additional`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// The resource identifier (RFC 9728 §1.2), identical to the one expected:
    /// the configured resource, or the URL requested when a 401 named the document.
    pub resource: String,
    /// The issuer identifiers of the authorization servers that issue tokens
    /// for this resource; only those usable as issuers (https, loopback aside,
    /// no query or fragment) are kept, in the document's order.
    pub authorization_servers: Vec<String>,
    /// Scopes the resource uses, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// How the resource accepts a bearer token (`header`, `body`, `query`), if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// Whether the resource always requires DPoP-bound tokens (RFC 9728 §2).
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
    /// Every other member of the document.
    #[serde(flatten)]
    pub additional: Map<String, Value>,
}

impl ResourceMetadata {
    /// The first authorization server listed: the one a client uses at first
    /// discovery (later it keeps the server it trusts, or takes an allowed one,
    /// see [`ConfigBuilder::allow_authorization_server`](crate::ConfigBuilder::allow_authorization_server)).
    pub fn authorization_server(&self) -> &str {
        // Never empty: parse_resource_metadata rejects a document without one.
        self.authorization_servers.first().map_or("", String::as_str)
    }
}

/// The metadata URL of `resource` (RFC 9728 §3.1):
/// `/.well-known/oauth-protected-resource` inserted between the host and the
/// resource's path (a terminating slash dropped), its query kept.
///
/// ```
/// use client_credentials::resource_metadata_url;
///
/// let url = |r| resource_metadata_url(r).unwrap().to_string();
/// assert_eq!(url("https://api.example"), "https://api.example/.well-known/oauth-protected-resource");
/// assert_eq!(url("https://api.example/"), "https://api.example/.well-known/oauth-protected-resource");
/// assert_eq!(url("https://api.example/v1/"), "https://api.example/.well-known/oauth-protected-resource/v1");
/// assert_eq!(url("https://api.example/v1?t=a"), "https://api.example/.well-known/oauth-protected-resource/v1?t=a");
/// assert!(resource_metadata_url("http://api.example").is_err()); // plain http, not loopback
/// ```
pub fn resource_metadata_url(resource: &str) -> Result<Url, DiscoveryError> {
    resource_metadata_url_with(resource, false)
}

pub(crate) fn resource_metadata_url_with(resource: &str, allow_insecure: bool) -> Result<Url, DiscoveryError> {
    let parsed = check_resource(resource, allow_insecure)?;
    let path = parsed.path().trim_end_matches('/');
    let mut url = parsed.clone();
    url.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
    Ok(url)
}

/// Checks a resource identifier: an `https` URL (loopback aside) without
/// fragment or credentials (RFC 9728 §1.2).
pub(crate) fn check_resource(resource: &str, allow_insecure: bool) -> Result<Url, DiscoveryError> {
    check_endpoint("resource_server", resource, allow_insecure).map_err(|e| {
        let shown = match Url::parse(resource) {
            Ok(url) => redact_userinfo(&url),
            Err(_) => without_userinfo(resource),
        };
        DiscoveryError::InvalidResource {
            resource: clean(&shown, 200),
            reason: e.to_string(),
        }
    })
}

/// Validates a resource metadata response for `resource` (standalone use;
/// HTTPS required except to loopback hosts; bodies up to 64 KiB).
///
/// The document's `resource` must equal `resource` exactly (RFC 9728 §3.3),
/// otherwise it is rejected: an attacker's metadata cannot send the client's
/// credentials to another authorization server.
///
/// ```
/// use client_credentials::parse_resource_metadata;
///
/// let body = br#"{"resource":"https://api.example","authorization_servers":["https://id.example"]}"#;
/// let response = http::Response::builder().status(200).body(body.to_vec())?;
/// let metadata = parse_resource_metadata("https://api.example", &response)?;
/// assert_eq!(metadata.authorization_server(), "https://id.example");
///
/// let response = http::Response::builder().status(200).body(body.to_vec())?;
/// assert!(parse_resource_metadata("https://other.example", response).is_err()); // resource mismatch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_resource_metadata(
    resource: impl AsRef<str>,
    response: impl Borrow<Response<Vec<u8>>>,
) -> Result<ResourceMetadata, Error> {
    parse_resource_metadata_with(resource.as_ref(), response.borrow(), &Fetched::default())
}

/// [`parse_resource_metadata`] for a document fetched as `fetched` says.
pub(crate) fn parse_resource_metadata_with(
    resource: &str,
    response: &Response<Vec<u8>>,
    fetched: &Fetched<'_>,
) -> Result<ResourceMetadata, Error> {
    let (mut document, found) = metadata_document(
        response,
        fetched,
        "resource metadata",
        ("resource", resource),
        |expected, found| DiscoveryError::ResourceMismatch { expected, found },
    )?;
    // An issuer identifier is an https URL without query or fragment (RFC 8414 §2).
    // Metadata fetched over https may not send the client to plain http, not
    // even on loopback (as for discovered endpoints); a resource identifier
    // that does not parse as an `http` URL counts as https.
    let https_resource = !Url::parse(resource).is_ok_and(|url| url.scheme() == "http");
    let usable = |issuer: &String| {
        !issuer.contains('?')
            && check_endpoint("authorization_server", issuer, fetched.allow_insecure)
                .is_ok_and(|url| !https_resource || url.scheme() == "https")
    };
    let authorization_servers: Vec<String> = match document.remove("authorization_servers") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .filter(usable)
            .collect(),
        _ => Vec::new(),
    };
    if authorization_servers.is_empty() {
        return Err(DiscoveryError::NoAuthorizationServer.into());
    }
    let scopes_supported = take_strings(&mut document, "scopes_supported");
    let bearer_methods_supported = take_strings(&mut document, "bearer_methods_supported");
    let dpop_bound_access_tokens_required = matches!(
        document.remove("dpop_bound_access_tokens_required"),
        Some(Value::Bool(true))
    );
    Ok(ResourceMetadata {
        resource: found,
        authorization_servers,
        scopes_supported,
        bearer_methods_supported,
        dpop_bound_access_tokens_required,
        additional: document,
    })
}

/// The authorization server to use of those `metadata` names.
///
/// The client's credentials go only to a server the user chose: before
/// `trusted` is known (the first document read), the first one named; after
/// that `trusted` or one of `allowed` (the configuration's
/// [`allow_authorization_server`](crate::ConfigBuilder::allow_authorization_server)),
/// preferring `current` while the document still names it. A document
/// naming none of them is refused, so a resource (or whoever answers for it)
/// cannot move the client to another server.
pub(crate) fn choose_authorization_server(
    metadata: &ResourceMetadata,
    trusted: Option<&str>,
    current: Option<&str>,
    allowed: &[String],
    credentials: &Credentials,
) -> Result<String, DiscoveryError> {
    let named = &metadata.authorization_servers;
    let Some(trusted) = trusted else {
        return Ok(metadata.authorization_server().to_owned());
    };
    let usable = |server: &&String| *server == trusted || allowed.contains(server);
    let chosen = current
        .and_then(|current| named.iter().find(|s| *s == current))
        .filter(|s| usable(s))
        .or_else(|| named.iter().find(usable));
    match chosen {
        Some(server) => Ok(server.clone()),
        None => Err(DiscoveryError::AuthorizationServerNotAllowed {
            named: named
                .iter()
                .take(5)
                .map(|s| clean(&credentials.redact(s), 200))
                .collect(),
        }),
    }
}
