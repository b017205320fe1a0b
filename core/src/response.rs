//! Reading token responses (RFC 6749 §5.1 and §5.2).

use std::time::Duration;

use base64::Engine as _;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{DpopError, Error, GrantError, OAuthErrorCode};
use crate::grant::token_type;
use crate::redact::{clean, excerpt, Credentials};
use crate::request::config_credentials;
use crate::time::Timestamp;
use crate::token::AccessToken;

/// The shortest lifetime a token is given: an `expires_in` of zero or below
/// (or an `exp` already past) counts as this, so a broken server cannot make
/// the client refetch on every call: a token is reused for at least half of it.
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// The longest lifetime a token is given: larger values (up to `1e300`) are
/// cut to one year, so every token is refreshed at least yearly and no
/// arithmetic overflows.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a token endpoint response into an [`AccessToken`] or an [`Error`].
///
/// `sent_at` is the time the request was sent: expiry is counted from there.
/// Lifetime comes from `expires_in` (a number or a numeric string), else from
/// the `exp` claim of a JWT access token (read, not verified: it only
/// schedules refresh; `exp` counts from the receive time, bounded by
/// `exp - iat`), else from
/// [`Config::default_lifetime`]; it is then clamped to
/// 1 s ..= 366 days.
///
/// ```
/// use client_credentials::{parse_token_response, Config, Timestamp};
///
/// let config = Config::builder("id", "secret").token_endpoint("https://id.example/token").build()?;
/// let response = http::Response::builder()
///     .status(200)
///     .body(br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600"}"#.to_vec())?;
/// let token = parse_token_response(&config, Timestamp::from_unix_secs(100), &response)?;
/// assert_eq!(token.expires_at(), Some(Timestamp::from_unix_secs(3700)));
/// assert_eq!(token.token_type(), "Bearer");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_token_response(
    config: &Config,
    sent_at: Timestamp,
    response: &Response<Vec<u8>>,
) -> Result<AccessToken, Error> {
    parse_token_response_with(
        config,
        sent_at,
        response,
        &config_credentials(config),
        &Expected::default(),
    )
}

/// What the machine knows about a token request beyond the configuration.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Expected {
    /// The `exp` of the grant's subject token: the lifetime of an opaque
    /// token issued without `expires_in` ends there at the latest.
    pub subject_expires_at: Option<Timestamp>,
}

/// [`parse_token_response`], cutting `credentials` (those the request
/// carried) out of any server text an error quotes.
pub(crate) fn parse_token_response_with(
    config: &Config,
    sent_at: Timestamp,
    response: &Response<Vec<u8>>,
    credentials: &Credentials,
    expected: &Expected,
) -> Result<AccessToken, Error> {
    let body = check_size(response.body(), config.max_body_size())?;
    let status = response.status();
    let parsed = parse_json_object(body);
    if !status.is_success() {
        if let Ok(object) = &parsed {
            if let Some(error) = oauth_error(status, object, credentials) {
                return Err(error);
            }
        }
        return Err(Error::UnexpectedStatus {
            status,
            body_excerpt: excerpt(body, credentials),
        });
    }
    let object = parsed.map_err(|reason| Error::invalid(format!("{reason} (HTTP {})", status.as_u16())))?;
    // Some servers answer 200 with an error body.
    if let Some(error) = oauth_error(status, &object, credentials) {
        return Err(error);
    }
    let secret = match object.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(Error::invalid("the access_token is empty")),
        Some(_) => return Err(Error::invalid("the access_token is not a string")),
        None => return Err(Error::invalid("the response has no access_token")),
    };
    let token_type = match object.get("token_type") {
        Some(Value::String(t)) => t.clone(),
        // Required by RFC 6749 §5.1, but some providers omit it; bearer is what they mean.
        None | Some(Value::Null) => "Bearer".to_owned(),
        Some(_) => return Err(Error::invalid("the token_type is not a string")),
    };
    let exchange = config.grant().as_token_exchange();
    // RFC 8693 §2.2.1: `issued_token_type` says what the server issued. It
    // must be what was asked for; when nothing was, an access token (or a
    // JWT, which RFC 8693 §3 allows as one): anything else would be used as
    // an access token it is not.
    if let (Some(exchange), Some(issued)) = (exchange, object.get("issued_token_type")) {
        let Value::String(issued) = issued else {
            return Err(Error::invalid("the issued_token_type is not a string"));
        };
        let matches = match exchange.requested_type() {
            Some(requested) => issued == requested,
            None => issued == token_type::ACCESS_TOKEN || issued == token_type::JWT,
        };
        if !matches {
            return Err(Error::Grant(GrantError::IssuedTokenType {
                expected: exchange.requested_type().unwrap_or(token_type::ACCESS_TOKEN).to_owned(),
                issued: clean(&credentials.redact(issued), 120),
            }));
        }
    }
    // RFC 8693 §2.2.1: `N_A` says the issued token is not an access token
    // (a JWT authorization grant for identity chaining). Accepted only when
    // a type other than an access token was asked for.
    // Otherwise it is refused below like any type that is not an access token.
    let not_access_token =
        token_type.eq_ignore_ascii_case("n_a") && exchange.is_some_and(|e| e.allows_non_access_token());
    // RFC 9449 §5: a DPoP-bound token only when DPoP was asked for, and then
    // nothing else: an unbound token sent as `DPoP` is refused, and sent as
    // a bearer token it loses the binding the client asked for.
    let dpop = config.dpop_key().is_some();
    if dpop && !not_access_token && !token_type.eq_ignore_ascii_case("dpop") {
        return Err(Error::Dpop(DpopError::UnboundToken {
            token_type: clean(&credentials.redact(&token_type), 40),
        }));
    }
    if !token_type.eq_ignore_ascii_case("bearer")
        && !dpop
        && !not_access_token
        && !config
            .accepted_token_types()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&token_type))
    {
        return Err(Error::invalid(format!(
            "token_type {:?} is not Bearer; accept it with ConfigBuilder::accept_token_type",
            clean(&credentials.redact(&token_type), 40)
        )));
    }
    let lifetime = match expires_in(&object)? {
        Some(secs) => clamp_lifetime(secs),
        None => match jwt_lifetime(&secret, sent_at) {
            Some(secs) => clamp_lifetime(secs),
            // An opaque token issued for a subject lives no longer than the
            // subject token did (RFC 8693 leaves `expires_in` optional).
            None => match expected.subject_expires_at {
                Some(subject_expires_at) => {
                    let remaining = subject_expires_at.saturating_duration_since(sent_at);
                    config
                        .default_lifetime()
                        .min(remaining)
                        .clamp(MIN_LIFETIME, MAX_LIFETIME)
                }
                None => config.default_lifetime().clamp(MIN_LIFETIME, MAX_LIFETIME),
            },
        },
    };
    let scope = match object.get("scope") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => config.scope(),
    };
    let mut builder = AccessToken::builder(secret)
        .token_type(token_type)
        .received_at(sent_at)
        .expires_at(sent_at.saturating_add(lifetime));
    if let Some(scope) = scope {
        builder = builder.scope(scope);
    }
    if let Some(Value::String(refresh)) = object.get("refresh_token") {
        if !refresh.is_empty() {
            builder = builder.refresh_token(refresh.clone());
        }
    }
    builder.build()
}

/// Rejects a body over the cap (adapters also stop reading at the cap).
pub(crate) fn check_size(body: &[u8], max: usize) -> Result<&[u8], Error> {
    if body.len() > max {
        return Err(Error::invalid(format!(
            "the body exceeds the {max}-byte limit (raise it with ConfigBuilder::max_body_size)"
        )));
    }
    Ok(body)
}

/// Parses a JSON object, with reasons a person can act on.
pub(crate) fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("the body is JSON but not an object".into()),
        Err(e) if e.is_eof() => Err("the body is truncated JSON".into()),
        Err(_) => Err("the body is not JSON".into()),
    }
}

/// An RFC 6749 §5.2 error, when the object has a string `error` member. A
/// code, description or URI that echoes a credential has it cut out.
pub(crate) fn oauth_error(status: StatusCode, object: &Map<String, Value>, credentials: &Credentials) -> Option<Error> {
    let code = object.get("error")?.as_str()?;
    let text = |name: &str, max: usize| {
        object
            .get(name)
            .and_then(Value::as_str)
            .map(|s| clean(&credentials.redact(s), max))
    };
    Some(Error::OAuth {
        code: OAuthErrorCode::from_wire(&clean(&credentials.redact(code), 64)),
        description: text("error_description", 300),
        uri: text("error_uri", 300),
        status,
    })
}

/// `expires_in` in seconds: a JSON number or a numeric string; `None` when absent.
fn expires_in(object: &Map<String, Value>) -> Result<Option<f64>, Error> {
    let value = match object.get("expires_in") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        // Seen in the wild: "expires_in": "3600".
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match value {
        Some(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(Error::invalid("expires_in is not a number of seconds")),
    }
}

fn clamp_lifetime(secs: f64) -> Duration {
    let max = MAX_LIFETIME.as_secs_f64();
    let min = MIN_LIFETIME.as_secs_f64();
    if secs.is_nan() {
        return MIN_LIFETIME;
    }
    Duration::from_secs_f64(secs.clamp(min, max))
}

/// The remaining lifetime, in seconds, that a JWT's `exp` claim implies at
/// `now` (the time the token was received): `exp - now`, but never more than
/// `exp - iat` when both are present and ordered. `None` when the token is not
/// a JWT or has no numeric `exp`. The signature is not checked: the value only
/// schedules a refresh.
///
/// Counting from `now` matters: a provider that hands out a cached JWT issued
/// 50 minutes ago with a 1 h life has 10 minutes left, not 60. The `exp - iat`
/// bound keeps a clock running behind the issuer's from stretching a lifetime.
pub(crate) fn jwt_lifetime(token: &str, now: Timestamp) -> Option<f64> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() {
        return None;
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let decoded = engine.decode(payload).ok()?;
    let claims = match serde_json::from_slice::<Value>(&decoded).ok()? {
        Value::Object(claims) => claims,
        _ => return None,
    };
    let exp = claims.get("exp")?.as_f64().filter(|v| v.is_finite())?;
    let remaining = exp - now.as_unix_millis() as f64 / 1000.0;
    match claims.get("iat").and_then(Value::as_f64).filter(|v| v.is_finite()) {
        Some(iat) if exp > iat => Some(remaining.min(exp - iat)),
        _ => Some(remaining),
    }
}
