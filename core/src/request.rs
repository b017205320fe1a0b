//! The HTTP requests the core emits.

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Method, Request};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use url::Url;

use crate::config::{ClientAuth, Config};
use crate::error::{ConfigError, Error};
use crate::redact::Credentials;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
const AGENT: &str = concat!("client-credentials/", env!("CARGO_PKG_VERSION"));

/// Which grant a token request uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Grant<'a> {
    /// The configured grant ([`Config::grant`]): client credentials
    /// (RFC 6749 §4.4), token exchange (RFC 8693 §2.1) or the JWT bearer
    /// grant (RFC 7523 §2.1).
    Configured,
    /// RFC 6749 §6, with this refresh token.
    RefreshToken(&'a str),
}

/// Everything but RFC 3986 unreserved characters is percent-encoded: the
/// `application/x-www-form-urlencoded` encoding RFC 6749 §2.3.1 asks for, with a
/// space written `%20` (never `+`), which form decoders and percent decoders
/// read alike.
pub(crate) const CREDENTIAL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The `Authorization: Basic` value of RFC 6749 §2.3.1.
pub(crate) fn basic_credentials(client_id: &str, client_secret: &str, encode: bool) -> HeaderValue {
    let pair = if encode {
        format!(
            "{}:{}",
            utf8_percent_encode(client_id, CREDENTIAL),
            utf8_percent_encode(client_secret, CREDENTIAL)
        )
    } else {
        format!("{client_id}:{client_secret}")
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    // Base64 output is always a valid header value.
    let mut value =
        HeaderValue::try_from(format!("Basic {encoded}")).unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// The credentials of a configuration: the client secret and both Basic
/// header values it can produce (text from a server is cut with these even
/// when no request says what was sent).
pub(crate) fn config_credentials(config: &Config) -> Credentials {
    let secret = config.client_secret().expose_secret();
    let mut credentials = Credentials::default();
    credentials.add(secret);
    for encode in [true, false] {
        let value = basic_credentials(config.client_id(), secret, encode);
        credentials.add(token68(value.to_str().unwrap_or_default()));
    }
    credentials
}

/// The body members that carry a credential, in any request the core builds.
const CREDENTIAL_PARAMS: &[&str] = &[
    "client_secret",
    "refresh_token",
    "token",
    "client_assertion",
    "subject_token",
    "actor_token",
    "assertion",
];

/// Every credential `request` carries, read from the request itself so that
/// nothing added to requests later is missed: the configuration's, every
/// sensitive header's value (`Authorization`, DPoP proofs), and the body
/// members in [`CREDENTIAL_PARAMS`] (form or JSON).
pub(crate) fn carried_credentials(config: &Config, request: &Request<Vec<u8>>) -> Credentials {
    let mut credentials = config_credentials(config);
    for value in request.headers().values().filter(|v| v.is_sensitive()) {
        if let Ok(value) = value.to_str() {
            credentials.add(value);
            credentials.add(token68(value));
        }
    }
    let body = request.body();
    if body.first() == Some(&b'{') {
        if let Ok(serde_json::Value::Object(members)) = serde_json::from_slice(body) {
            for name in CREDENTIAL_PARAMS {
                if let Some(serde_json::Value::String(value)) = members.get(*name) {
                    credentials.add(value);
                }
            }
        }
    } else {
        for (name, value) in form_urlencoded::parse(body) {
            if CREDENTIAL_PARAMS.contains(&name.as_ref()) {
                credentials.add(&value);
            }
        }
    }
    credentials
}

/// The credential of an `Authorization`-style value: what follows the scheme.
fn token68(value: &str) -> &str {
    value.split_once(' ').map_or(value, |(_, credential)| credential.trim())
}

/// What the machine prepared for one request: a fresh client assertion and
/// DPoP proof, each made for this attempt only.
#[derive(Default)]
pub(crate) struct Prepared {
    /// `client_assertion_type` and `client_assertion` (RFC 7521 §4.2),
    /// zeroized when dropped.
    pub assertion: Option<(String, zeroize::Zeroizing<String>)>,
    /// The `DPoP` header (RFC 9449 §4).
    pub dpop: Option<HeaderValue>,
    /// The grant's subject token (RFC 8693 `subject_token`, RFC 7523
    /// `assertion`), read for this request.
    pub subject: Option<zeroize::Zeroizing<String>>,
    /// A token exchange's `actor_token`.
    pub actor: Option<zeroize::Zeroizing<String>>,
}

/// A token request (RFC 6749 §4.4.2 or §6) to `endpoint`.
pub(crate) fn token_request(
    config: &Config,
    endpoint: &Url,
    auth: &ClientAuth,
    grant: Grant<'_>,
    prepared: &Prepared,
) -> Result<Request<Vec<u8>>, Error> {
    let (content_type, body) = match auth {
        ClientAuth::Json => (JSON, json_body(config, grant, prepared)),
        _ => (FORM, form_body(config, auth, grant, prepared)),
    };
    let mut builder = post(config, endpoint, auth, content_type);
    if let Some(proof) = &prepared.dpop {
        // Not a secret (it is bound to this request), but no log needs it.
        let mut proof = proof.clone();
        proof.set_sensitive(true);
        builder = builder.header("DPoP", proof);
    }
    finish(builder, endpoint, body)
}

/// A `POST` to `endpoint` with the common headers and, for the Basic
/// methods, the `Authorization` header.
fn post(config: &Config, endpoint: &Url, auth: &ClientAuth, content_type: &'static str) -> http::request::Builder {
    let builder = Request::builder()
        .method(Method::POST)
        .uri(endpoint.as_str())
        .header(ACCEPT, JSON)
        .header(CONTENT_TYPE, content_type)
        .header(USER_AGENT, AGENT);
    match auth {
        ClientAuth::Basic | ClientAuth::BasicUnencoded => builder.header(
            AUTHORIZATION,
            basic_credentials(
                config.client_id(),
                config.client_secret().expose_secret(),
                *auth == ClientAuth::Basic,
            ),
        ),
        _ => builder,
    }
}

/// An RFC 7009 revocation request for `token`.
pub(crate) fn revocation_request(
    config: &Config,
    endpoint: &Url,
    auth: &ClientAuth,
    token: &str,
    hint: &str,
    prepared: &Prepared,
) -> Result<Request<Vec<u8>>, Error> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token).append_pair("token_type_hint", hint);
    // RFC 7009 §2.1: the client authenticates as at the token endpoint (a
    // revocation endpoint takes a form, so the JSON variant posts its credentials).
    let auth_in_form = if *auth == ClientAuth::Json {
        &ClientAuth::Post
    } else {
        auth
    };
    append_client_auth(&mut form, config, auth_in_form, prepared);
    finish(post(config, endpoint, auth, FORM), endpoint, form.finish().into_bytes())
}

/// A `GET` for a metadata document.
pub(crate) fn get_json(url: &Url) -> Result<Request<Vec<u8>>, Error> {
    let builder = Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(ACCEPT, JSON)
        .header(USER_AGENT, AGENT);
    finish(builder, url, Vec::new())
}

/// The request to `url`, or why it cannot be built. Every URL was checked to
/// be a valid request URI before it got here (by `Config::build`, or when the
/// metadata naming it was read) and header values are constants or base64,
/// so this does not fail; if it ever did, the error says so and nothing is
/// sent, rather than a request to nowhere.
fn finish(builder: http::request::Builder, url: &Url, body: Vec<u8>) -> Result<Request<Vec<u8>>, Error> {
    builder.body(body).map_err(|e| {
        // The URL without its query, which may carry a key.
        let mut shown = url.clone();
        shown.set_query(None);
        Error::Config(ConfigError::InvalidUrl {
            field: "request",
            url: shown.to_string(),
            reason: e.to_string(),
        })
    })
}

/// The client authentication members of a form body, by method.
fn append_client_auth(
    form: &mut form_urlencoded::Serializer<'_, String>,
    config: &Config,
    auth: &ClientAuth,
    prepared: &Prepared,
) {
    match auth {
        ClientAuth::Post => {
            form.append_pair("client_id", config.client_id())
                .append_pair("client_secret", config.client_secret().expose_secret());
        }
        // RFC 7521 §4.2: client_id is optional next to an assertion; sending it
        // helps providers that look the client up before reading the assertion.
        ClientAuth::PrivateKeyJwt(_) | ClientAuth::ClientSecretJwt | ClientAuth::Assertion(_) => {
            form.append_pair("client_id", config.client_id());
            if let Some((assertion_type, assertion)) = &prepared.assertion {
                form.append_pair("client_assertion_type", assertion_type)
                    .append_pair("client_assertion", assertion);
            }
        }
        // RFC 8705 §2: the certificate authenticates; client_id names the client.
        // RFC 6749 §3.2.1 (and RFC 8693 §2.1): a public client names itself.
        ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth | ClientAuth::None => {
            form.append_pair("client_id", config.client_id());
        }
        ClientAuth::Basic | ClientAuth::BasicUnencoded | ClientAuth::Json => {}
    }
}

/// The grant members of a token request, in order, with the `scope`,
/// `resource` and `audience` values it asks for.
fn grant_members<'a>(config: &'a Config, grant: Grant<'a>, prepared: &'a Prepared) -> Vec<(&'static str, String)> {
    let mut members: Vec<(&'static str, String)> = Vec::new();
    let secret = |value: &Option<zeroize::Zeroizing<String>>| value.as_ref().map(|v| v.as_str().to_owned());
    let configured = config.grant();
    match grant {
        // RFC 6749 §6: scope omitted means "as originally granted".
        Grant::RefreshToken(token) => {
            members.push(("grant_type", "refresh_token".to_owned()));
            members.push(("refresh_token", token.to_owned()));
        }
        Grant::Configured => {
            members.push(("grant_type", configured.grant_type().to_owned()));
            if let Some(exchange) = configured.as_token_exchange() {
                // RFC 8693 §2.1: the machine never builds a request without
                // the subject (an unreadable one fails the attempt first).
                if let Some(subject) = secret(&prepared.subject) {
                    members.push(("subject_token", subject));
                }
                members.push(("subject_token_type", exchange.subject_token_type().to_owned()));
                if let (Some((_, actor_type)), Some(actor)) = (exchange.actor_source(), secret(&prepared.actor)) {
                    members.push(("actor_token", actor));
                    members.push(("actor_token_type", actor_type.to_owned()));
                }
                if let Some(requested) = exchange.requested_type() {
                    members.push(("requested_token_type", requested.to_owned()));
                }
            } else if configured.as_jwt_bearer().is_some() {
                if let Some(assertion) = secret(&prepared.subject) {
                    members.push(("assertion", assertion));
                }
            }
            if let Some(scope) = config.requested_scope() {
                members.push(("scope", scope));
            }
        }
    }
    members
}

/// The `resource` values of a token request: the configuration's, then a
/// token exchange's.
fn resources(config: &Config) -> impl Iterator<Item = &str> {
    let exchange = config.grant().as_token_exchange();
    config
        .resources()
        .iter()
        .chain(exchange.map_or(&[][..], |e| e.resources()))
        .map(String::as_str)
}

/// The `audience` values of a token request: the configuration's, then a
/// token exchange's.
fn audiences(config: &Config) -> impl Iterator<Item = &str> {
    let exchange = config.grant().as_token_exchange();
    config
        .audience()
        .into_iter()
        .chain(exchange.map_or(&[][..], |e| e.audiences()).iter().map(String::as_str))
}

fn form_body(config: &Config, auth: &ClientAuth, grant: Grant<'_>, prepared: &Prepared) -> Vec<u8> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in grant_members(config, grant, prepared) {
        form.append_pair(name, &value);
    }
    for resource in resources(config) {
        form.append_pair("resource", resource);
    }
    for audience in audiences(config) {
        form.append_pair("audience", audience);
    }
    for (name, value) in config.params() {
        form.append_pair(name, value);
    }
    append_client_auth(&mut form, config, auth, prepared);
    form.finish().into_bytes()
}

fn json_body(config: &Config, grant: Grant<'_>, prepared: &Prepared) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    for (name, value) in grant_members(config, grant, prepared) {
        body.insert(name.into(), value.into());
    }
    body.insert("client_id".into(), config.client_id().into());
    body.insert("client_secret".into(), config.client_secret().expose_secret().into());
    let resources: Vec<&str> = resources(config).collect();
    if !resources.is_empty() {
        body.insert("resource".into(), resources.into());
    }
    let audiences: Vec<&str> = audiences(config).collect();
    match audiences.as_slice() {
        [] => {}
        [one] => {
            body.insert("audience".into(), (*one).into());
        }
        many => {
            body.insert("audience".into(), many.to_vec().into());
        }
    }
    for (name, value) in config.params() {
        body.insert(name.clone(), value.clone().into());
    }
    serde_json::Value::Object(body).to_string().into_bytes()
}
