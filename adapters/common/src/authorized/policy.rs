//! What the authorised HTTP clients of both adapters decide, written once:
//! which origins may receive the token, what a `401`'s `WWW-Authenticate`
//! challenge says (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9449 §7.1 and §9,
//! RFC 9728 §5.1), whether to retry, and which headers a redirect must lose.
//!
//! The adapters only move requests: they ask [`AllowedOrigins::allows`]
//! before setting the header, [`assess`] on each response and [`next_step`]
//! for the retry, and strip with [`strip_credentials`] where they follow
//! redirects themselves.

use client_credentials::{AccessToken, Config, ConfigError};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};

/// The `DPoP` request header (RFC 9449 §4.1) carrying the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 §8, §9) carrying a server nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// An origin (RFC 6454): scheme, host and port, compared as lowercase with
/// the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl std::fmt::Display for Origin {
    /// `scheme://host:port`, an absolute URL of the origin.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL, `None` for anything else.
    pub fn parse(url: &str) -> Option<Origin> {
        Origin::of(&url.parse::<Uri>().ok()?)
    }

    /// The origin of an absolute `http`/`https` URI, `None` for anything else
    /// (a relative URI has no origin: it never gets the header).
    pub fn of(uri: &Uri) -> Option<Origin> {
        Origin::from_parts(uri.scheme_str()?, uri.host()?, uri.port_u16())
    }

    /// The origin `url` names, when it is written as one: `http` or `https`,
    /// a host, an optional port, nothing else (a `/` path at most). Anything
    /// more (a missing scheme, a path, a query, user info) is an error that
    /// says why: such a value is a mistake, not an origin.
    pub fn parse_exact(url: &str) -> Result<Origin, String> {
        let uri = url
            .parse::<Uri>()
            .map_err(|e| format!("it does not parse ({e}); an origin is scheme://host[:port]"))?;
        if uri.scheme().is_none() {
            return Err("it has no scheme; write https://host[:port] (or http:// for loopback)".into());
        }
        let origin = Origin::of(&uri).ok_or("an origin is http:// or https:// followed by a host")?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("it has user info; an origin is scheme://host[:port]".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("it has a path or a query; an origin is scheme://host[:port], which allows every path".into());
        }
        Ok(origin)
    }

    /// From a URL's parts (for HTTP libraries with their own URL type).
    pub fn from_parts(scheme: &str, host: &str, port: Option<u16>) -> Option<Origin> {
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port: port.unwrap_or(default),
            scheme,
        })
    }
}

/// The origins that may receive the token: only those ever get the header.
///
/// By default (no [`allow`](AllowedOrigins::allow) call) the origins of the
/// config's resource server and RFC 8707 resources: the token was asked for
/// them. [`allow`](AllowedOrigins::allow) replaces that default with an
/// explicit list; [`allow_any`](AllowedOrigins::allow_any) is the explicit
/// opt-out. A URL that does not parse adds nothing (fail closed).
///
/// A client that allows no origin, or was given a value that is not an
/// origin, is misconfigured: [`check`](AllowedOrigins::check) says so, and
/// the authorised clients fail every request with that error.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    any: bool,
    explicit: bool,
    origins: Vec<Origin>,
    /// The first value given that is not an origin.
    invalid: Option<ConfigError>,
}

impl AllowedOrigins {
    /// The default for `config`: its resource server's and resources' origins.
    pub fn for_config(config: &Config) -> AllowedOrigins {
        let origins = config.resources().iter().filter_map(|r| Origin::parse(r)).collect();
        AllowedOrigins {
            any: false,
            explicit: false,
            origins,
            invalid: None,
        }
    }

    /// Adds `url`'s origin; the first call replaces the config's default.
    /// Returns whether `url` had an origin (an unusable URL allows nothing).
    pub fn allow(&mut self, url: &str) -> bool {
        if !self.explicit {
            self.explicit = true;
            self.origins.clear();
        }
        match Origin::parse_exact(url) {
            Ok(origin) => {
                if !self.origins.contains(&origin) {
                    self.origins.push(origin);
                }
                true
            }
            Err(reason) => {
                if self.invalid.is_none() {
                    self.invalid = Some(ConfigError::InvalidUrl {
                        field: "allow_origin",
                        url: url.to_owned(),
                        reason,
                    });
                }
                false
            }
        }
    }

    /// Whether these origins can be used: `Err` when a value given to
    /// [`allow`](Self::allow) was not an origin, or when no origin at all is
    /// allowed (nothing configured, nothing given), either of which would
    /// send requests without the token.
    pub fn check(&self) -> Result<(), ConfigError> {
        match &self.invalid {
            Some(error) => Err(error.clone()),
            None if self.is_empty() => Err(ConfigError::NoAllowedOrigin),
            None => Ok(()),
        }
    }

    /// Every origin gets the header (the explicit opt-out of the allow-list).
    pub fn allow_any(&mut self) {
        self.any = true;
    }

    /// Whether no origin at all is allowed (nothing configured, nothing given).
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// Whether a request to `uri` may carry the token.
    pub fn allows(&self, uri: &Uri) -> bool {
        self.any || Origin::of(uri).is_some_and(|o| self.origins.contains(&o))
    }

    /// [`allows`](Self::allows) for an origin already split up.
    pub fn allows_origin(&self, origin: Option<&Origin>) -> bool {
        self.any || origin.is_some_and(|o| self.origins.contains(o))
    }
}

/// The origins given a token key of their own (`.params_for(origin,
/// params)`), each with its handle `C` of the client bound to that key:
/// requests to such an origin carry that key's token, and a `401` there
/// evicts only that key's token. Every other allowed origin gets the
/// client's default key.
///
/// `params_for` never allows an origin by itself: the allow-list
/// ([`AllowedOrigins`]) stays the one place that says which origins get a
/// token, so a key given to an origin the list does not name is a
/// configuration error ([`check`](KeyedOrigins::check)) rather than a
/// silent widening of where tokens go, or a silent drop of the header.
/// Origins compare as in [`AllowedOrigins`] (scheme, host, port, with the
/// scheme's default port); giving one origin a second key replaces the first.
///
/// ```
/// use client_credentials_common::authorized::policy::{AllowedOrigins, KeyedOrigins, Origin};
///
/// let mut allowed = AllowedOrigins::default();
/// allowed.allow("https://orders.example");
/// allowed.allow("https://billing.example");
/// let mut keyed = KeyedOrigins::default();
/// assert!(keyed.insert("https://orders.example:443", || "orders key").is_ok());
/// assert_eq!(keyed.check(&allowed), Ok(()));
/// let orders = Origin::parse("https://orders.example/v1/orders");
/// assert_eq!(keyed.get(orders.as_ref()), Some(&"orders key"));
/// // No key of its own: the caller uses the default one.
/// assert_eq!(keyed.get(Origin::parse("https://billing.example/").as_ref()), None);
///
/// // A key for an origin that is not allowed is refused, not allowed.
/// keyed.insert("https://other.example", || "other key").unwrap();
/// assert!(keyed.check(&allowed).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct KeyedOrigins<C> {
    keyed: Vec<(Origin, C)>,
    /// The first value given that is not an origin.
    invalid: Option<ConfigError>,
}

impl<C> Default for KeyedOrigins<C> {
    fn default() -> Self {
        KeyedOrigins {
            keyed: Vec::new(),
            invalid: None,
        }
    }
}

impl<C> KeyedOrigins<C> {
    /// Gives `url`'s origin the handle `bind()` makes (replacing one given
    /// before). `Err` when `url` is not an origin (`scheme://host[:port]`):
    /// nothing is bound, and [`check`](Self::check) fails from then on.
    pub fn insert(&mut self, url: &str, bind: impl FnOnce() -> C) -> Result<(), ConfigError> {
        match Origin::parse_exact(url) {
            Ok(origin) => {
                let client = bind();
                match self.keyed.iter_mut().find(|(o, _)| *o == origin) {
                    Some(entry) => entry.1 = client,
                    None => self.keyed.push((origin, client)),
                }
                Ok(())
            }
            Err(reason) => {
                let error = ConfigError::InvalidUrl {
                    field: "params_for",
                    url: url.to_owned(),
                    reason,
                };
                self.invalid.get_or_insert_with(|| error.clone());
                Err(error)
            }
        }
    }

    /// The handle bound to `origin`'s key, `None` for an origin without
    /// one (use the default key).
    pub fn get(&self, origin: Option<&Origin>) -> Option<&C> {
        let origin = origin?;
        self.keyed.iter().find(|(o, _)| o == origin).map(|(_, c)| c)
    }

    /// Whether an authorised client with these keys and `allowed` origins
    /// can be used: [`AllowedOrigins::check`], then `Err` for a value given
    /// to [`insert`](Self::insert) that was not an origin, or for a keyed
    /// origin that `allowed` does not allow
    /// ([`ConfigError::OriginNotAllowed`]).
    pub fn check(&self, allowed: &AllowedOrigins) -> Result<(), ConfigError> {
        allowed.check()?;
        if let Some(error) = &self.invalid {
            return Err(error.clone());
        }
        match self.keyed.iter().find(|(o, _)| !allowed.allows_origin(Some(o))) {
            Some((origin, _)) => Err(ConfigError::OriginNotAllowed {
                origin: origin.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// The `allow_origin` / `allow_any_origin` / `params_for` builder methods of
/// the authorised clients (each has `client: C`, `origins: AllowedOrigins`
/// and `keyed: KeyedOrigins<C>` fields).
#[allow(unused_macros)] // unused when no authorised client's feature is on
macro_rules! origin_methods {
    () => {
        /// Allows `url`'s origin (repeatable): only allowed origins ever get
        /// the token. The first call replaces the default (the config's
        /// resource server and resources). `url` is an origin,
        /// `scheme://host[:port]` (`https://api.example.com`,
        /// `http://127.0.0.1:8080`): a value without a scheme, or with a path
        /// or a query, is a configuration error, logged here as a warning and
        /// returned by every request (`Error::Config`).
        pub fn allow_origin(mut self, url: impl AsRef<str>) -> Self {
            if !self.origins.allow(url.as_ref()) {
                if let Err(error) = self.origins.check() {
                    $crate::log_event!(
                        <C as $crate::authorized::Authorizer>::LOG_TARGET,
                        warn,
                        %error,
                        "client-credentials: every request through this authorised client will fail"
                    );
                }
            }
            self
        }

        /// Sends the token to every origin: the explicit opt-out of the allow-list.
        pub fn allow_any_origin(mut self) -> Self {
            self.origins.allow_any();
            self
        }

        /// Requests to `origin` carry the token of `params`' key (its own
        /// audience, resource, scopes: see
        /// [`TokenParams`](client_credentials::TokenParams)), `Bearer` or
        /// DPoP as configured; a `401` there evicts only that key's token,
        /// and the retry uses that key. Other allowed origins get the
        /// client's default token. Repeatable, one key per origin (a second
        /// call for the same origin replaces the first).
        ///
        /// `params_for` does **not** allow `origin`: only
        /// [`allow_origin`](Self::allow_origin), `allow_any_origin` or the
        /// config's default origins do, so the list of origins that get a
        /// token stays in one place. An `origin` they do not allow fails every
        /// request with `ConfigError::OriginNotAllowed`; a value that is not
        /// an origin (`scheme://host[:port]`), with `ConfigError::InvalidUrl`
        /// (logged here as a warning). Params that break the config
        /// builder's rules fail the requests to that origin with their
        /// `Error::Config`, sending nothing to the token endpoint.
        pub fn params_for(mut self, origin: impl AsRef<str>, params: client_credentials::TokenParams) -> Self {
            let client = &self.client;
            let bind = || $crate::authorized::Authorizer::with_params(client, params);
            if let Err(error) = self.keyed.insert(origin.as_ref(), bind) {
                $crate::log_event!(
                    <C as $crate::authorized::Authorizer>::LOG_TARGET,
                    warn,
                    %error,
                    "client-credentials: every request through this authorised client will fail"
                );
            }
            self
        }

        /// The client handle for a request to `origin`: the one bound by
        /// [`params_for`](Self::params_for), else the client's own.
        fn client_for(&self, origin: Option<&$crate::authorized::policy::Origin>) -> &C {
            self.keyed.get(origin).unwrap_or(&self.client)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use origin_methods;

/// Whether `a` and `b` have the same origin (both absolute `http`/`https`).
pub fn same_origin(a: &Uri, b: &Uri) -> bool {
    match (Origin::of(a), Origin::of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Removes what carries the token (`Authorization`, `DPoP`) from a request
/// about to follow a redirect to an origin that may not have it.
pub fn strip_credentials(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    headers.remove(DPOP);
}

/// One challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The auth scheme as sent (compare case-insensitively).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the scheme is `scheme`, ignoring case.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// An auth-param's value (names compare case-insensitively; quotes removed).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token68 form (`Negotiate abc==`), if the challenge has one.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// Every auth-param in the order sent, as `(name, value)` (quotes removed).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Token(String),
    Quoted(String),
    Equals,
    Comma,
    /// Whitespace: it tells `Scheme token68` from `Scheme, Other`.
    Space,
}

/// `tchar` (RFC 9110 §5.6.2) plus `/`, which token68 also allows.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

fn lex(input: &[u8], items: &mut Vec<Item>) {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b' ' | b'\t' => {
                while i < input.len() && matches!(input[i], b' ' | b'\t') {
                    i += 1;
                }
                items.push(Item::Space);
            }
            b',' => {
                items.push(Item::Comma);
                i += 1;
            }
            b'=' => {
                items.push(Item::Equals);
                i += 1;
            }
            b'"' => {
                let mut value = Vec::new();
                i += 1;
                while i < input.len() && input[i] != b'"' {
                    if input[i] == b'\\' && i + 1 < input.len() {
                        i += 1;
                    }
                    value.push(input[i]);
                    i += 1;
                }
                i += 1; // the closing quote (or past the end when unterminated)
                items.push(Item::Quoted(String::from_utf8_lossy(&value).into_owned()));
            }
            b if is_token_char(b) => {
                let start = i;
                while i < input.len() && is_token_char(input[i]) {
                    i += 1;
                }
                items.push(Item::Token(String::from_utf8_lossy(&input[start..i]).into_owned()));
            }
            _ => i += 1, // not allowed here: skipped
        }
    }
}

/// Parses every challenge in `values` (several headers, several challenges
/// per header). Tolerant: what does not parse is skipped; never panics.
///
/// ```
/// use client_credentials_common::authorized::policy::parse_challenges;
///
/// let value = http::HeaderValue::from_static(
///     r#"Basic realm="x", Bearer realm="api", error="invalid_token", error_description="expired""#,
/// );
/// let challenges = parse_challenges([&value]);
/// assert_eq!(challenges.len(), 2);
/// assert!(challenges[1].is("bearer"));
/// assert_eq!(challenges[1].param("error"), Some("invalid_token"));
/// ```
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    let mut items = Vec::new();
    for value in values {
        items.clear();
        lex(value.as_bytes(), &mut items);
        parse_items(&items, &mut challenges);
    }
    challenges
}

fn parse_items(all: &[Item], challenges: &mut Vec<Challenge>) {
    // Spaces matter only between a scheme and a token68; drop the rest.
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while matches!(all.get(*i), Some(Item::Space)) {
            *i += 1;
        }
    };
    // `name = value` at `i` (spaces allowed around `=`): the length consumed.
    let param_at = |i: usize| -> Option<(String, String, usize)> {
        let mut j = i;
        let Some(Item::Token(name)) = all.get(j) else {
            return None;
        };
        j += 1;
        skip_space(&mut j);
        if all.get(j) != Some(&Item::Equals) {
            return None;
        }
        j += 1;
        skip_space(&mut j);
        match all.get(j) {
            Some(Item::Token(v) | Item::Quoted(v)) => Some((name.clone(), v.clone(), j + 1 - i)),
            _ => None,
        }
    };
    while i < all.len() {
        let Item::Token(scheme) = &all[i] else {
            i += 1; // a separator, or garbage where a scheme should be
            continue;
        };
        let mut challenge = Challenge {
            scheme: scheme.clone(),
            token68: None,
            params: Vec::new(),
        };
        i += 1;
        if matches!(all.get(i), Some(Item::Space)) {
            skip_space(&mut i);
            if param_at(i).is_none() {
                if let Some(Item::Token(t)) = all.get(i) {
                    // token68: the token and its `=` padding, up to a comma or the end.
                    let mut token = t.clone();
                    let mut j = i + 1;
                    while all.get(j) == Some(&Item::Equals) {
                        token.push('=');
                        j += 1;
                    }
                    skip_space(&mut j);
                    if matches!(all.get(j), None | Some(Item::Comma)) {
                        challenge.token68 = Some(token);
                        i = j;
                    }
                }
            }
            while challenge.token68.is_none() {
                let Some((name, value, used)) = param_at(i) else { break };
                challenge.params.push((name, value));
                i += used;
                skip_space(&mut i);
                // A comma, then either the next param or the next challenge.
                let mut j = i;
                while matches!(all.get(j), Some(Item::Comma | Item::Space)) {
                    j += 1;
                }
                if j > i && param_at(j).is_some() {
                    i = j;
                } else {
                    break;
                }
            }
        }
        challenges.push(challenge);
    }
}

/// What a response says about the token the request carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// The token was rejected: a `401` whose Bearer/DPoP challenge says
    /// `invalid_token`, or has no error code, or carries no challenge at all
    /// (RFC 6750 §3.1). Invalidate it: the next request gets a new one.
    pub invalid_token: bool,
    /// A `401` with `error="use_dpop_nonce"` and a `DPoP-Nonce` header
    /// (RFC 9449 §9): send again with a proof carrying this nonce.
    pub dpop_nonce: Option<HeaderValue>,
    /// The `resource_metadata` URL of a Bearer/DPoP challenge (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
}

impl Assessment {
    /// Whether the response calls for another attempt (token or nonce).
    pub fn wants_retry(&self) -> bool {
        self.invalid_token || self.dpop_nonce.is_some()
    }
}

/// Reads a response's status and challenges. Anything but a `401` is left alone.
///
/// ```
/// use client_credentials_common::authorized::policy::assess;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer error="invalid_token""#.parse().unwrap());
/// assert!(assess(http::StatusCode::UNAUTHORIZED, &headers).invalid_token);
/// assert!(!assess(http::StatusCode::FORBIDDEN, &headers).invalid_token);
/// ```
pub fn assess(status: StatusCode, headers: &HeaderMap) -> Assessment {
    if status != StatusCode::UNAUTHORIZED {
        return Assessment::default();
    }
    let challenges = parse_challenges(headers.get_all(WWW_AUTHENTICATE));
    let ours: Vec<&Challenge> = challenges.iter().filter(|c| c.is("Bearer") || c.is("DPoP")).collect();
    let resource_metadata = ours
        .iter()
        .find_map(|c| c.param("resource_metadata"))
        .map(str::to_owned);
    let nonce = headers.get(DPOP_NONCE).filter(|v| !v.is_empty());
    if let Some(nonce) = nonce {
        if ours.iter().any(|c| c.param("error") == Some("use_dpop_nonce")) {
            return Assessment {
                invalid_token: false,
                dpop_nonce: Some(nonce.clone()),
                resource_metadata,
            };
        }
    }
    // Only an explicit other error (insufficient_scope, invalid_request, or
    // use_dpop_nonce without a nonce) says the token itself is fine.
    let other_error = ours
        .iter()
        .any(|c| c.param("error").is_some_and(|e| e != "invalid_token"));
    let invalid_token = ours.iter().any(|c| c.param("error") == Some("invalid_token")) || !other_error;
    Assessment {
        invalid_token,
        dpop_nonce: None,
        resource_metadata,
    }
}

/// What to do after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Hand the response to the caller.
    Return,
    /// Send the request again (with a new token, or the server's DPoP nonce).
    Retry,
}

/// The retry rule, the same for every adapter: at most one retry per request
/// (never a second, whatever the second response says), and only when the
/// request can be sent again as it was — a body that was streamed cannot be,
/// and is never re-sent half-consumed.
///
/// ```
/// use client_credentials_common::authorized::policy::{next_step, Assessment, Next};
///
/// let rejected = Assessment { invalid_token: true, ..Assessment::default() };
/// assert_eq!(next_step(&rejected, 0, true), Next::Retry);
/// assert_eq!(next_step(&rejected, 1, true), Next::Return); // never a second retry
/// assert_eq!(next_step(&rejected, 0, false), Next::Return); // streamed body
/// ```
pub fn next_step(assessment: &Assessment, retries_so_far: u32, replayable: bool) -> Next {
    if retries_so_far == 0 && replayable && assessment.wants_retry() {
        Next::Retry
    } else {
        Next::Return
    }
}

/// Sets `Authorization` (marked sensitive) for `token`: `DPoP <token>` with
/// the `DPoP` proof header when there is a proof, else the token's own
/// `Bearer <token>`.
pub fn set_authorization(headers: &mut HeaderMap, token: &AccessToken, proof: Option<HeaderValue>) {
    match proof {
        Some(proof) => {
            // The token passed HeaderValue checks when it was parsed.
            if let Ok(mut value) = HeaderValue::try_from(format!("DPoP {}", token.secret())) {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            headers.insert(DPOP, proof);
        }
        None => {
            headers.insert(AUTHORIZATION, token.authorization_header());
            headers.remove(DPOP);
        }
    }
}

/// A copy of `request` with `body` (method, URI, version, headers,
/// extensions), to send again after a `401`.
pub fn copy_request<B>(request: &http::Request<B>, body: B) -> http::Request<B> {
    let mut copy = http::Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// One request through an authorised client, from the first send to the
/// response handed back: whether it gets the token at all, the token and
/// nonce of each attempt, what a response means, whether to send again.
/// The adapters' middleware only moves the request; every decision is here.
#[derive(Debug)]
pub struct Exchange {
    origin: Option<Origin>,
    /// The URL requested (when it may carry the token): a `401`'s
    /// `resource_metadata` document must name it (RFC 9728 §3.3).
    requested: String,
    allowed: bool,
    retries: u32,
    token: Option<AccessToken>,
    nonce: Option<HeaderValue>,
}

/// What an [`Exchange`] decided about a response.
#[derive(Debug)]
pub struct Verdict {
    /// Evict this token (`Client::invalidate`): the resource server rejected it.
    pub invalidate: Option<AccessToken>,
    /// The RFC 9728 metadata URL the challenge named, to read at the next
    /// discovery if the core accepts it (only on the resource's own origin).
    pub resource_metadata: Option<MetadataHint>,
    /// Send the request again (authorised anew) rather than return this response.
    pub retry: bool,
    /// The `DPoP-Nonce` the server sent (on a `401` or a success), with its
    /// origin: kept for the next request there (RFC 9449 §9).
    pub dpop_nonce: Option<(Origin, HeaderValue)>,
}

/// A `401` challenge's `resource_metadata` (RFC 9728 §5.1) with the URL of
/// the request it answered, for `TokenSource::follow_resource_metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataHint {
    /// The URL the request went to.
    pub requested: String,
    /// The metadata URL the challenge named.
    pub metadata_url: String,
}

impl Exchange {
    /// A request to `uri`: it carries the token only if `origins` allow it.
    pub fn new(origins: &AllowedOrigins, uri: &Uri) -> Exchange {
        let origin = Origin::of(uri);
        let allowed = origins.allows_origin(origin.as_ref());
        let requested = if allowed { uri.to_string() } else { String::new() };
        Exchange::with(origin, requested, allowed)
    }

    /// The same for a URL already split up (for HTTP libraries with their
    /// own URL type): its origin, and the whole URL as sent.
    pub fn for_origin(origins: &AllowedOrigins, origin: Option<&Origin>, url: &str) -> Exchange {
        let allowed = origins.allows_origin(origin);
        let requested = if allowed { url.to_owned() } else { String::new() };
        Exchange::with(origin.cloned(), requested, allowed)
    }

    fn with(origin: Option<Origin>, requested: String, allowed: bool) -> Exchange {
        Exchange {
            origin,
            requested,
            allowed,
            retries: 0,
            token: None,
            nonce: None,
        }
    }

    /// The origin requested, if it has one (an absolute `http`/`https` URL).
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// Whether this request may carry the token (else: send it untouched, and
    /// hand its response back as it is).
    pub fn authorizes(&self) -> bool {
        self.allowed
    }

    /// The resource server's DPoP nonce to put in the next proof, if it sent one.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_ref().and_then(|n| n.to_str().ok())
    }

    /// The attempt about to go out carries `token`.
    pub fn sending(&mut self, token: AccessToken) {
        self.token = Some(token);
    }

    /// The response to the last attempt came from `from` (the HTTP client
    /// followed redirects): a response from another origin says nothing
    /// about the token, which that origin never saw.
    pub fn answered_by(&mut self, from: Option<&Origin>) {
        if from.is_some_and(|from| self.origin.as_ref() != Some(from)) {
            self.token = None;
        }
    }

    /// The response to the last attempt: `replayable` says whether the
    /// request could be sent again as it was (a copy of its body was kept).
    pub fn received(&mut self, status: StatusCode, headers: &HeaderMap, replayable: bool) -> Verdict {
        let sent = self.token.take();
        if !self.allowed || sent.is_none() {
            return Verdict {
                invalidate: None,
                resource_metadata: None,
                retry: false,
                dpop_nonce: None,
            };
        }
        let dpop_nonce = headers
            .get(DPOP_NONCE)
            .filter(|nonce| !nonce.is_empty())
            .and_then(|nonce| Some((self.origin.clone()?, nonce.clone())));
        let assessment = assess(status, headers);
        let retry = next_step(&assessment, self.retries, replayable) == Next::Retry;
        if retry {
            self.retries += 1;
            self.nonce = assessment.dpop_nonce.clone();
        }
        Verdict {
            invalidate: sent.filter(|_| assessment.invalid_token),
            resource_metadata: assessment.resource_metadata.map(|metadata_url| MetadataHint {
                requested: self.requested.clone(),
                metadata_url,
            }),
            retry,
            dpop_nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges(value: &str) -> Vec<Challenge> {
        parse_challenges([&HeaderValue::from_str(value).unwrap()])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn challenges_with_params_token68_and_several_schemes() {
        let parsed = challenges(
            r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple", Negotiate abc+/== , Bearer"#,
        );
        let schemes: Vec<_> = parsed.iter().map(Challenge::scheme).collect();
        assert_eq!(schemes, ["Newauth", "Basic", "Negotiate", "Bearer"]);
        assert_eq!(parsed[0].param("TYPE"), Some("1"));
        assert_eq!(parsed[0].param("title"), Some(r#"Login to "apps""#));
        assert_eq!(parsed[1].param("realm"), Some("simple"));
        assert_eq!(parsed[2].token68(), Some("abc+/=="));
        assert_eq!(parsed[3].param("realm"), None);
    }

    #[test]
    fn bearer_and_dpop_challenges() {
        let parsed = challenges(
            r#"DPoP algs="ES256 PS256", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        );
        assert!(parsed[0].is("dpop"));
        assert_eq!(parsed[0].param("algs"), Some("ES256 PS256"));
        assert_eq!(parsed[0].param("error"), Some("use_dpop_nonce"));
        let parsed = challenges(
            r#"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource", error=invalid_token"#,
        );
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].param("error"), Some("invalid_token"));
    }

    #[test]
    fn garbage_never_panics_and_parses_to_something_or_nothing() {
        for value in [
            "",
            ",",
            "=",
            "\"",
            "\"unterminated",
            "Bearer =",
            "Bearer a=",
            "Bearer ,,, a=b",
            "= = =",
            "Bearer \"x\"",
            "Bearer a = \"b\\\"",
            "\\",
            "a=b=c",
            "Bearer realm=\"x\"error=\"y\"",
        ] {
            let _ = challenges(value);
        }
        let parsed = challenges("Bearer ,,, a=b");
        assert_eq!(parsed[0].param("a"), None, "a comma ends the scheme's params");
    }

    #[test]
    fn a_401_without_error_code_or_without_challenge_rejects_the_token() {
        let unauthorized = StatusCode::UNAUTHORIZED;
        assert!(assess(unauthorized, &HeaderMap::new()).invalid_token);
        assert!(assess(unauthorized, &headers(&[("www-authenticate", r#"Bearer realm="api""#)])).invalid_token);
        assert!(
            assess(
                unauthorized,
                &headers(&[("www-authenticate", r#"Bearer error="invalid_token""#)])
            )
            .invalid_token
        );
        // Another error code: the token is fine; retrying would not help.
        let scope = headers(&[("www-authenticate", r#"Bearer error="insufficient_scope", scope="a""#)]);
        assert!(!assess(unauthorized, &scope).wants_retry());
        // Not a 401: nothing.
        let rejected = headers(&[("www-authenticate", r#"Bearer error="invalid_token""#)]);
        assert_eq!(assess(StatusCode::FORBIDDEN, &rejected), Assessment::default());
    }

    #[test]
    fn a_dpop_nonce_challenge_asks_for_the_nonce_not_a_new_token() {
        let response = headers(&[
            ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
            ("dpop-nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v"),
        ]);
        let assessment = assess(StatusCode::UNAUTHORIZED, &response);
        assert!(!assessment.invalid_token);
        assert_eq!(assessment.dpop_nonce.unwrap(), "eyJ7S_zG.eyJH0-Z.HX4w-7v");
        // Without the nonce header there is nothing to answer with.
        let response = headers(&[("www-authenticate", r#"DPoP error="use_dpop_nonce""#)]);
        assert!(!assess(StatusCode::UNAUTHORIZED, &response).wants_retry());
    }

    #[test]
    fn the_resource_metadata_url_is_read_from_the_challenge() {
        let response = headers(&[
            ("www-authenticate", r#"Basic realm="x""#),
            (
                "www-authenticate",
                r#"Bearer error="invalid_token", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
            ),
        ]);
        let assessment = assess(StatusCode::UNAUTHORIZED, &response);
        assert!(assessment.invalid_token);
        assert_eq!(
            assessment.resource_metadata.as_deref(),
            Some("https://api.example/.well-known/oauth-protected-resource")
        );
    }

    #[test]
    fn one_retry_at_most_and_only_for_a_replayable_request() {
        let rejected = Assessment {
            invalid_token: true,
            ..Assessment::default()
        };
        assert_eq!(next_step(&rejected, 0, true), Next::Retry);
        assert_eq!(next_step(&rejected, 1, true), Next::Return);
        assert_eq!(next_step(&rejected, 0, false), Next::Return);
        assert_eq!(next_step(&Assessment::default(), 0, true), Next::Return);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let mut allowed = AllowedOrigins::default();
        assert!(allowed.is_empty());
        assert_eq!(allowed.check(), Err(ConfigError::NoAllowedOrigin));
        assert!(allowed.allow("https://API.example/"));
        assert_eq!(allowed.check(), Ok(()));
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(allowed.allows(&uri("https://api.example/other")));
        assert!(allowed.allows(&uri("https://api.example:443/x")));
        assert!(!allowed.allows(&uri("http://api.example/x")));
        assert!(!allowed.allows(&uri("https://api.example:8443/x")));
        assert!(!allowed.allows(&uri("https://api.example.evil.example/x")));
        assert!(!allowed.allows(&uri("/relative")));
        allowed.allow_any();
        assert!(allowed.allows(&uri("https://anything.example/")));
        assert!(same_origin(&uri("http://127.0.0.1:80/a"), &uri("http://127.0.0.1/b")));
        assert!(!same_origin(
            &uri("http://127.0.0.1:8080/a"),
            &uri("http://127.0.0.1:8081/a")
        ));
    }

    #[test]
    fn a_value_that_is_not_an_origin_is_a_config_error_naming_it() {
        for (value, why) in [
            ("127.0.0.1:8080", "no scheme"),
            ("api.example.com", "no scheme"),
            ("https://api.example/some/path", "a path"),
            ("https://api.example/?q=1", "a query"),
            ("https://user@api.example", "user info"),
            ("ftp://api.example", "http:// or https://"),
            ("not a url", "does not parse"),
        ] {
            let mut allowed = AllowedOrigins::default();
            assert!(allowed.allow("https://good.example"));
            assert!(!allowed.allow(value), "{value}");
            assert!(allowed.allow("https://also-good.example"));
            let error = allowed.check().expect_err(value).to_string();
            assert!(error.contains(value) && error.contains(why), "{value}: {error}");
        }
        for origin in [
            "https://api.example",
            "https://api.example/",
            "http://127.0.0.1:8080",
            "http://[::1]:80",
        ] {
            assert!(Origin::parse_exact(origin).is_ok(), "{origin}");
        }
    }

    #[test]
    fn the_default_is_the_configs_resources_and_an_explicit_list_replaces_it() {
        let config = Config::builder("id", "secret")
            .resource_server("http://127.0.0.1:8080/mcp")
            .resource("https://api.example/v1")
            .build()
            .unwrap();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let mut allowed = AllowedOrigins::for_config(&config);
        assert!(allowed.allows(&uri("http://127.0.0.1:8080/other")));
        assert!(allowed.allows(&uri("https://api.example/v2")));
        allowed.allow("https://only.example");
        assert!(!allowed.allows(&uri("https://api.example/v2")));
        assert!(allowed.allows(&uri("https://only.example/v2")));
    }

    #[test]
    fn keyed_origins_compare_as_origins_and_never_allow_one_themselves() {
        let origin = |s: &str| Origin::parse(s);
        let mut allowed = AllowedOrigins::default();
        allowed.allow("https://orders.example");
        allowed.allow("http://127.0.0.1:8080");
        let mut keyed = KeyedOrigins::default();
        keyed.insert("https://ORDERS.example", || 1).unwrap();
        keyed.insert("http://127.0.0.1:8080", || 2).unwrap();
        assert_eq!(keyed.check(&allowed), Ok(()));
        assert_eq!(keyed.get(origin("https://orders.example:443/a").as_ref()), Some(&1));
        assert_eq!(keyed.get(origin("http://127.0.0.1:8080/b").as_ref()), Some(&2));
        assert_eq!(
            keyed.get(origin("http://orders.example/a").as_ref()),
            None,
            "another scheme"
        );
        assert_eq!(
            keyed.get(origin("http://127.0.0.1:8081/").as_ref()),
            None,
            "another port"
        );
        assert_eq!(keyed.get(None), None, "a relative URI");
        // A second key for an origin replaces the first.
        keyed.insert("https://orders.example:443/", || 3).unwrap();
        assert_eq!(keyed.get(origin("https://orders.example/").as_ref()), Some(&3));

        // Keyed but not allowed: refused, naming the origin.
        keyed.insert("https://billing.example", || 4).unwrap();
        let error = keyed.check(&allowed).unwrap_err();
        assert_eq!(
            error,
            ConfigError::OriginNotAllowed {
                origin: "https://billing.example:443".into()
            }
        );
        assert!(error.to_string().contains(".allow_origin("), "{error}");
        // Allowing it (or every origin) is what makes it usable.
        allowed.allow("https://billing.example");
        assert_eq!(keyed.check(&allowed), Ok(()));
        let mut any = AllowedOrigins::default();
        any.allow_any();
        assert_eq!(keyed.check(&any), Ok(()));
        // The allow-list's own errors come first.
        assert_eq!(
            keyed.check(&AllowedOrigins::default()),
            Err(ConfigError::NoAllowedOrigin)
        );

        // A value that is not an origin binds nothing and stays an error.
        let error = keyed.insert("https://api.example/v1", || 5).unwrap_err();
        assert!(error.to_string().contains("params_for"), "{error}");
        assert_eq!(keyed.check(&allowed), Err(error));
        assert_eq!(keyed.get(origin("https://api.example/v1").as_ref()), None);
    }

    #[test]
    fn an_exchange_retries_once_and_invalidates_the_token_it_sent() {
        let mut origins = AllowedOrigins::default();
        origins.allow("https://api.example");
        let uri: Uri = "https://api.example/things".parse().unwrap();
        let rejected = headers(&[("www-authenticate", r#"Bearer error="invalid_token""#)]);
        let token = |s: &str| AccessToken::builder(s).build().unwrap();

        let mut exchange = Exchange::new(&origins, &uri);
        assert!(exchange.authorizes());
        exchange.sending(token("one"));
        let verdict = exchange.received(StatusCode::UNAUTHORIZED, &rejected, true);
        assert!(verdict.retry);
        assert_eq!(verdict.invalidate.unwrap().secret(), "one");
        exchange.sending(token("two"));
        let verdict = exchange.received(StatusCode::UNAUTHORIZED, &rejected, true);
        assert!(!verdict.retry, "never a second retry");
        assert_eq!(verdict.invalidate.unwrap().secret(), "two");

        let mut streamed = Exchange::new(&origins, &uri);
        streamed.sending(token("one"));
        let verdict = streamed.received(StatusCode::UNAUTHORIZED, &rejected, false);
        assert!(!verdict.retry && verdict.invalidate.is_some());

        let mut redirected = Exchange::new(&origins, &uri);
        redirected.sending(token("one"));
        redirected.answered_by(Origin::parse("https://other.example/landing").as_ref());
        let verdict = redirected.received(StatusCode::UNAUTHORIZED, &rejected, true);
        assert!(!verdict.retry && verdict.invalidate.is_none(), "another origin's 401");

        let other: Uri = "https://other.example/".parse().unwrap();
        let mut elsewhere = Exchange::new(&origins, &other);
        assert!(!elsewhere.authorizes());
        let verdict = elsewhere.received(StatusCode::UNAUTHORIZED, &rejected, true);
        assert!(!verdict.retry && verdict.invalidate.is_none());
    }

    #[test]
    fn a_challenges_metadata_url_comes_with_the_url_requested_and_only_from_its_origin() {
        let mut origins = AllowedOrigins::default();
        origins.allow("https://api.example");
        let uri: Uri = "https://api.example/mcp/tools?x=1".parse().unwrap();
        let challenge = headers(&[(
            "www-authenticate",
            r#"Bearer error="invalid_token", resource_metadata="https://evil.example/meta""#,
        )]);
        let token = AccessToken::builder("t").build().unwrap();

        let mut exchange = Exchange::new(&origins, &uri);
        exchange.sending(token.clone());
        let verdict = exchange.received(StatusCode::UNAUTHORIZED, &challenge, true);
        // The core decides whether to follow it (only on the resource's origin).
        assert_eq!(
            verdict.resource_metadata,
            Some(MetadataHint {
                requested: "https://api.example/mcp/tools?x=1".into(),
                metadata_url: "https://evil.example/meta".into(),
            })
        );

        let url = "https://api.example/mcp";
        let mut split = Exchange::for_origin(&origins, Origin::parse(url).as_ref(), url);
        split.sending(token.clone());
        let verdict = split.received(StatusCode::UNAUTHORIZED, &challenge, true);
        assert_eq!(verdict.resource_metadata.unwrap().requested, url);

        // Answered by another origin (after a redirect): nothing is acted on.
        let mut redirected = Exchange::new(&origins, &uri);
        redirected.sending(token);
        redirected.answered_by(Origin::parse("https://evil.example/landing").as_ref());
        let verdict = redirected.received(StatusCode::UNAUTHORIZED, &challenge, true);
        assert!(verdict.resource_metadata.is_none() && verdict.invalidate.is_none() && !verdict.retry);
    }

    #[test]
    fn a_nonce_challenge_is_answered_once_with_its_nonce() {
        let origins = {
            let mut o = AllowedOrigins::default();
            o.allow_any();
            o
        };
        let uri: Uri = "https://api.example/".parse().unwrap();
        let nonce = headers(&[
            ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
            ("dpop-nonce", "n-1"),
        ]);
        let mut exchange = Exchange::new(&origins, &uri);
        exchange.sending(AccessToken::builder("t").build().unwrap());
        let verdict = exchange.received(StatusCode::UNAUTHORIZED, &nonce, true);
        assert!(verdict.retry && verdict.invalidate.is_none());
        assert_eq!(exchange.nonce(), Some("n-1"));
        let (origin, kept) = verdict.dpop_nonce.unwrap();
        assert_eq!(
            (origin.to_string().as_str(), kept.to_str().unwrap()),
            ("https://api.example:443", "n-1")
        );
    }

    #[test]
    fn a_nonce_sent_with_a_success_is_kept_for_the_origin_that_sent_it() {
        let mut origins = AllowedOrigins::default();
        origins.allow("https://api.example");
        let uri: Uri = "https://api.example/things".parse().unwrap();
        let fresh = headers(&[("dpop-nonce", "n-2")]);
        let mut exchange = Exchange::new(&origins, &uri);
        exchange.sending(AccessToken::builder("t").build().unwrap());
        let verdict = exchange.received(StatusCode::OK, &fresh, true);
        assert!(!verdict.retry);
        assert_eq!(verdict.dpop_nonce.unwrap().1, "n-2");
        // Another origin's answer (after a redirect) is not kept for this one.
        let mut redirected = Exchange::new(&origins, &uri);
        redirected.sending(AccessToken::builder("t").build().unwrap());
        redirected.answered_by(Origin::parse("https://other.example/").as_ref());
        assert!(redirected.received(StatusCode::OK, &fresh, true).dpop_nonce.is_none());
    }

    #[test]
    fn the_header_is_bearer_or_dpop_with_its_proof_and_sensitive() {
        let token = AccessToken::builder("tok").build().unwrap();
        let mut map = HeaderMap::new();
        set_authorization(&mut map, &token, Some(HeaderValue::from_static("proof")));
        assert_eq!(map[AUTHORIZATION], "DPoP tok");
        assert!(map[AUTHORIZATION].is_sensitive());
        assert_eq!(map[DPOP], "proof");
        set_authorization(&mut map, &token, None);
        assert_eq!(map[AUTHORIZATION], "Bearer tok");
        assert!(map[AUTHORIZATION].is_sensitive());
        assert!(map.get(DPOP).is_none());
    }

    #[test]
    fn stripping_removes_the_token_headers() {
        let mut map = headers(&[("authorization", "Bearer x"), ("dpop", "proof"), ("accept", "*/*")]);
        strip_credentials(&mut map);
        assert_eq!(map.len(), 1);
    }
}
