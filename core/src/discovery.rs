//! OpenID Connect Discovery 1.0 and RFC 8414 authorization server metadata.

use std::borrow::Borrow;

use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};
use url::Url;

use crate::config::{ClientAuth, Config, ConfigBuilder};
use crate::endpoint::{check_endpoint, redact_userinfo};
use crate::error::{ConfigError, DiscoveryError, Error};
use crate::redact::{clean, excerpt, Credentials};
use crate::request::get_json;
use crate::response::{check_size, parse_json_object};

/// Where a metadata document is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryLocation {
    /// OpenID Connect Discovery 1.0 §4: `{issuer}/.well-known/openid-configuration`.
    OpenId,
    /// RFC 8414 §3: `/.well-known/oauth-authorization-server` inserted between
    /// the host and the issuer's path.
    Rfc8414,
}

/// A provider's metadata, validated: the `issuer` equals the one configured,
/// the `token_endpoint` is present and `https` (loopback aside).
///
/// The fields the client uses are typed; every other member of the document is
/// kept in `additional` (so serialising gives the document back).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The RFC 7009 revocation endpoint, if advertised (dropped when not https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The JWK Set document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Client authentication methods of the token endpoint; when absent RFC 8414
    /// says the default is `client_secret_basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Scopes the provider supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Grant types the provider supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Every other member of the document.
    #[serde(flatten)]
    pub additional: Map<String, Value>,
}

impl ProviderMetadata {
    /// The issuer identifier (the same as the public field; a method, like
    /// [`Config::issuer`]).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint (the same as the public field; a method, like
    /// [`Config::token_endpoint`]).
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The RFC 7009 revocation endpoint, if advertised (https only).
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_deref()
    }

    /// The client authentication method to use when the user chose none:
    /// `client_secret_basic` if listed (or nothing is listed: RFC 8414's
    /// default), else `client_secret_post` if listed, else Basic.
    pub fn preferred_auth(&self) -> ClientAuth {
        match &self.token_endpoint_auth_methods_supported {
            Some(methods)
                if !methods.iter().any(|m| m == "client_secret_basic")
                    && methods.iter().any(|m| m == "client_secret_post") =>
            {
                ClientAuth::Post
            }
            _ => ClientAuth::Basic,
        }
    }

    /// The method to use when the configuration leaves it open, from
    /// `token_endpoint_auth_methods_supported`: `private_key_jwt` when a key
    /// is offered ([`crate::ConfigBuilder::client_assertion_key`]) and listed
    /// (or when the key is the only credential), then `tls_client_auth` /
    /// `self_signed_tls_client_auth` when the HTTP client presents a
    /// certificate ([`crate::ConfigBuilder::mutual_tls`]) and they are listed,
    /// then the secret methods as in [`ProviderMetadata::preferred_auth`]
    /// (`client_secret_jwt` when it is the only secret method listed and the
    /// secret has at least [`ConfigBuilder::MIN_HMAC_SECRET_BYTES`] bytes).
    pub fn negotiate_auth(&self, config: &Config) -> ClientAuth {
        let listed = |name: &str| {
            self.token_endpoint_auth_methods_supported
                .as_ref()
                .is_some_and(|methods| methods.iter().any(|m| m == name))
        };
        let no_secret = config.client_secret().expose_secret().is_empty();
        if let Some(key) = config.client_assertion_key() {
            if listed("private_key_jwt") || no_secret {
                return ClientAuth::PrivateKeyJwt(key.clone());
            }
        }
        if config.uses_mutual_tls() {
            if listed("tls_client_auth") {
                return ClientAuth::TlsClientAuth;
            }
            if listed("self_signed_tls_client_auth") {
                return ClientAuth::SelfSignedTlsClientAuth;
            }
        }
        // A secret too short for an HS256 key (RFC 7518 §3.2) is never used
        // as one: the HMAC would let anyone who sees an assertion brute-force it.
        let hmac_secret = config.client_secret().expose_secret().len() >= ConfigBuilder::MIN_HMAC_SECRET_BYTES;
        if hmac_secret && listed("client_secret_jwt") && !listed("client_secret_basic") && !listed("client_secret_post")
        {
            return ClientAuth::ClientSecretJwt;
        }
        self.preferred_auth()
    }

    /// A member that is a list of strings (`None` when absent or not such a list).
    pub fn string_list(&self, name: &str) -> Option<Vec<String>> {
        let list = self.additional.get(name)?.as_array()?;
        list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// The RFC 8705 §5 `mtls_endpoint_aliases` entry for `endpoint` (e.g.
    /// `token_endpoint`), when present and a usable https URL.
    pub fn mtls_alias(&self, endpoint: &str) -> Option<&str> {
        let alias = self.additional.get("mtls_endpoint_aliases")?.get(endpoint)?.as_str()?;
        check_endpoint("mtls_endpoint_aliases", alias, false)
            .ok()
            .map(|_| alias)
    }

    /// Any member of the document, typed or not.
    pub fn get(&self, name: &str) -> Option<Value> {
        serde_json::to_value(self).ok()?.get(name).cloned()
    }
}

pub(crate) fn discovery_url_with(
    issuer: &str,
    location: DiscoveryLocation,
    allow_insecure: bool,
) -> Result<Url, DiscoveryError> {
    // Never echo a password given in the issuer URL.
    let shown = match Url::parse(issuer) {
        Ok(url) if !url.username().is_empty() || url.password().is_some() => redact_userinfo(&url),
        _ => issuer.to_owned(),
    };
    let invalid = |reason: String| DiscoveryError::InvalidIssuer {
        issuer: clean(&shown, 200),
        reason,
    };
    let parsed = check_endpoint("issuer", issuer, allow_insecure).map_err(|e| invalid(e.to_string()))?;
    if parsed.query().is_some() {
        return Err(invalid("an issuer has no query component (RFC 8414 §2)".into()));
    }
    let path = parsed.path().trim_end_matches('/');
    let new_path = match location {
        DiscoveryLocation::OpenId => format!("{path}/.well-known/openid-configuration"),
        DiscoveryLocation::Rfc8414 => format!("/.well-known/oauth-authorization-server{path}"),
    };
    let mut url = parsed.clone();
    url.set_path(&new_path);
    Ok(url)
}

/// The `GET` request for `issuer`'s OpenID Connect discovery document
/// (`{issuer}/.well-known/openid-configuration`), for standalone use: hand the
/// response to [`parse_discovery`]. The request itself, as the discovery API
/// has always returned it; [`discovery_request_at`] is the same builder with
/// the location as a parameter (the RFC 8414 fallback) and the typed error.
/// An issuer that cannot be used (not a URL, plain `http:` to a non-loopback
/// host, a query or fragment) gives a request with an empty URI that no HTTP
/// client will send; call [`discovery_request_at`] to learn why.
///
/// ```
/// use client_credentials::discovery_request;
///
/// let request = discovery_request("https://id.example/tenant");
/// assert_eq!(request.uri(), "https://id.example/tenant/.well-known/openid-configuration");
/// assert_eq!(request.method(), "GET");
/// ```
pub fn discovery_request(issuer: impl AsRef<str>) -> Request<Vec<u8>> {
    discovery_request_at(issuer, DiscoveryLocation::OpenId).unwrap_or_else(|_| Request::new(Vec::new()))
}

/// The `GET` request for `issuer`'s metadata document at `location`, or why
/// the issuer cannot be used: [`DiscoveryLocation::OpenId`] is
/// `{issuer}/.well-known/openid-configuration`, [`DiscoveryLocation::Rfc8414`]
/// inserts `/.well-known/oauth-authorization-server` before the issuer's path.
/// Hand the response to [`parse_discovery`]; on [`DiscoveryError::NotFound`]
/// try the other location. The error, like `parse_discovery`'s, is an
/// [`Error::Discovery`] naming the issuer and why it cannot be used (not a
/// URL, plain `http:` to a non-loopback host, a query or fragment).
///
/// ```
/// use client_credentials::{discovery_request_at, DiscoveryLocation};
///
/// let request = discovery_request_at("https://id.example/tenant", DiscoveryLocation::OpenId)?;
/// assert_eq!(request.uri(), "https://id.example/tenant/.well-known/openid-configuration");
/// assert_eq!(request.method(), "GET");
/// let request = discovery_request_at("https://id.example/tenant", DiscoveryLocation::Rfc8414)?;
/// assert_eq!(request.uri(), "https://id.example/.well-known/oauth-authorization-server/tenant");
/// assert!(discovery_request_at("http://id.example", DiscoveryLocation::OpenId).is_err());
/// assert!(discovery_request_at("not a url", DiscoveryLocation::OpenId).is_err());
/// # Ok::<(), client_credentials::Error>(())
/// ```
pub fn discovery_request_at(issuer: impl AsRef<str>, location: DiscoveryLocation) -> Result<Request<Vec<u8>>, Error> {
    Ok(get_json(&discovery_url_with(issuer.as_ref(), location, false)?))
}

/// Validates a metadata response for `issuer` (standalone use; HTTPS required
/// except to loopback hosts; bodies up to 64 KiB).
///
/// ```
/// use client_credentials::parse_discovery;
///
/// let body = br#"{"issuer":"https://id.example","token_endpoint":"https://id.example/token"}"#;
/// let response = http::Response::builder().status(200).body(body.to_vec())?;
/// let metadata = parse_discovery("https://id.example", &response)?;
/// assert_eq!(metadata.token_endpoint, "https://id.example/token");
///
/// let response = http::Response::builder().status(200).body(body.to_vec())?;
/// assert!(parse_discovery("https://other.example", response).is_err()); // issuer mismatch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_discovery(
    issuer: impl AsRef<str>,
    response: impl Borrow<Response<Vec<u8>>>,
) -> Result<ProviderMetadata, Error> {
    parse_discovery_with(issuer.as_ref(), response.borrow(), &Fetched::default())
}

/// [`parse_discovery`] for a document fetched as `fetched` says.
pub(crate) fn parse_discovery_with(
    issuer: &str,
    response: &Response<Vec<u8>>,
    fetched: &Fetched<'_>,
) -> Result<ProviderMetadata, Error> {
    let (mut document, found) =
        metadata_document(response, fetched, "document", ("issuer", issuer), |expected, found| {
            DiscoveryError::IssuerMismatch { expected, found }
        })?;
    let token_endpoint = match document.remove("token_endpoint") {
        Some(Value::String(endpoint)) => endpoint,
        _ => return Err(DiscoveryError::MissingTokenEndpoint.into()),
    };
    // A document fetched over https may not move the client secret to plain
    // http, not even to loopback (a local proxy or another user's listener
    // could be there), whatever `allow_insecure_http` says. Only an issuer
    // that parses as an `http` URL may have http endpoints: one that does not
    // parse (a standalone caller's typo) counts as https.
    let https_issuer = !Url::parse(issuer).is_ok_and(|url| url.scheme() == "http");
    let check = |field: &'static str, endpoint: &str| {
        let url = check_endpoint(field, endpoint, fetched.allow_insecure)?;
        if https_issuer && url.scheme() != "https" {
            return Err(ConfigError::InvalidUrl {
                field,
                url: url.to_string(),
                reason: "the issuer uses https, so its endpoints must too".into(),
            });
        }
        Ok(url)
    };
    check("token_endpoint", &token_endpoint)
        .map_err(|e| DiscoveryError::InvalidEndpoint(e.redacted(fetched.credentials)))?;
    let mut string = |name: &str| match document.remove(name) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let revocation_endpoint = string("revocation_endpoint").filter(|url| check("revocation_endpoint", url).is_ok());
    let jwks_uri = string("jwks_uri");
    let mut list = |name: &str| take_strings(&mut document, name);
    Ok(ProviderMetadata {
        issuer: found,
        token_endpoint,
        revocation_endpoint,
        jwks_uri,
        token_endpoint_auth_methods_supported: list("token_endpoint_auth_methods_supported"),
        scopes_supported: list("scopes_supported"),
        grant_types_supported: list("grant_types_supported"),
        additional: document,
    })
}

/// How a metadata document (discovery or RFC 9728) was fetched, which its
/// checks and its errors depend on. Built once per response: by a
/// [`crate::TokenSource`] from its configuration ([`Fetched::new`]), by the
/// standalone parsers as [`Fetched::default`].
pub(crate) struct Fetched<'a> {
    /// Plain `http:` endpoints to non-loopback hosts are accepted.
    pub(crate) allow_insecure: bool,
    /// The largest body accepted, in bytes.
    pub(crate) max_body: usize,
    /// Where the document was asked for, named when it is not there (empty
    /// when not known).
    pub(crate) url: String,
    /// What the request carried, cut out of any server text an error quotes.
    pub(crate) credentials: &'a Credentials,
}

impl<'a> Fetched<'a> {
    /// Fetched under `config` from `url` (if it is known) by a request that
    /// carried `credentials`.
    pub(crate) fn new(config: &Config, url: Option<Url>, credentials: &'a Credentials) -> Self {
        Fetched {
            allow_insecure: config.allows_insecure_http(),
            max_body: config.max_body_size(),
            url: url.map(String::from).unwrap_or_default(),
            credentials,
        }
    }
}

impl Default for Fetched<'_> {
    /// Standalone use: HTTPS required except to loopback hosts, bodies up to
    /// [`crate::ConfigBuilder::DEFAULT_MAX_BODY_SIZE`], no URL known and no
    /// credentials sent.
    fn default() -> Self {
        Fetched {
            allow_insecure: false,
            max_body: crate::ConfigBuilder::DEFAULT_MAX_BODY_SIZE,
            url: String::new(),
            credentials: Credentials::NONE,
        }
    }
}

/// The JSON object of a metadata response (RFC 8414, OpenID Connect
/// Discovery, RFC 9728) and its identifier member, which must equal what was
/// configured (RFC 8414 §3.3, RFC 9728 §3.3): the body is size-capped,
/// 404/410 mean [`DiscoveryError::NotFound`], any other non-2xx is
/// [`DiscoveryError::UnexpectedStatus`] (its excerpt redacted). `what` names
/// the document in errors; `(key, expected)` is the identifier member and
/// its configured value; `mismatch` builds the error when the document's
/// differs (from the expected and the found value, the latter redacted).
pub(crate) fn metadata_document(
    response: &Response<Vec<u8>>,
    fetched: &Fetched<'_>,
    what: &str,
    (key, expected): (&str, &str),
    mismatch: fn(String, String) -> DiscoveryError,
) -> Result<(Map<String, Value>, String), Error> {
    let max_body = fetched.max_body;
    let body = check_size(response.body(), max_body).map_err(|_| DiscoveryError::InvalidDocument {
        reason: format!("the {what} exceeds the {max_body}-byte limit"),
    })?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Err(DiscoveryError::NotFound {
            url: fetched.url.clone(),
        }
        .into());
    }
    if !status.is_success() {
        return Err(DiscoveryError::UnexpectedStatus {
            status,
            body_excerpt: excerpt(body, fetched.credentials),
        }
        .into());
    }
    let mut document = parse_json_object(body).map_err(|reason| DiscoveryError::InvalidDocument { reason })?;
    let found = match document.remove(key) {
        Some(Value::String(found)) => found,
        _ => {
            return Err(DiscoveryError::InvalidDocument {
                reason: format!("the {what} has no {key}"),
            }
            .into())
        }
    };
    if found != expected {
        return Err(mismatch(expected.to_owned(), clean(&fetched.credentials.redact(&found), 200)).into());
    }
    Ok((document, found))
}

/// Takes the member `name` out of `document` as a list of its strings
/// (other items skipped); `None` when absent or not a list.
pub(crate) fn take_strings(document: &mut Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match document.remove(name) {
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}
