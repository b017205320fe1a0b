//! Black-box tests of the test issuer over real sockets, with a tiny
//! hand-written HTTP/1.1 client.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use client_credentials_testkit::{AuthMethod, DiscoveryMode, Fault, TestIssuer, TokenFormat, DEFAULT_CLIENT_SECRET};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Tiny HTTP client
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the body was complete (per Content-Length or chunk framing).
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends raw bytes and reads until EOF (or `timeout` without data).
fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

fn parse(bytes: &[u8]) -> Resp {
    let pos = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..pos]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let rest = &bytes[pos + 4..];
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
        complete: true,
    };
    if resp.header("transfer-encoding") == Some("chunked") {
        let mut rest = rest;
        resp.complete = false;
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
            if size == 0 {
                resp.complete = true;
                break;
            }
            let data = &rest[eol + 2..];
            resp.body.extend_from_slice(&data[..size.min(data.len())]);
            if data.len() < size + 2 {
                break;
            }
            rest = &data[size + 2..];
        }
    } else {
        resp.body = rest.to_vec();
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            resp.complete = resp.body.len() == len;
            resp.body.truncate(len);
        }
    }
    resp
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    parse(&raw(addr, &bytes, Duration::from_secs(5)).unwrap())
}

fn get(issuer: &TestIssuer, path: &str) -> Resp {
    request(issuer.addr(), "GET", path, &[], b"")
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (n, v) in pairs {
        s.append_pair(n, v);
    }
    s.finish()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// RFC 6749 §2.3.1 Basic credentials.
fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn post_form(issuer: &TestIssuer, path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
    let mut headers = vec![FORM];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    request(issuer.addr(), "POST", path, &headers, form(pairs).as_bytes())
}

/// A client_credentials request with Basic authentication.
fn token_basic(issuer: &TestIssuer, extra: &[(&str, &str)]) -> Resp {
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    post_form(issuer, &path_of(&issuer.token_endpoint()), Some(&auth), &pairs)
}

fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_owned()
}

// ---------------------------------------------------------------------------
// Lifecycle and discovery
// ---------------------------------------------------------------------------

#[test]
fn start_urls_and_drop() {
    let issuer = TestIssuer::start();
    let addr = issuer.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(issuer.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    assert_eq!(issuer.issuer_url(), issuer.base_url());
    assert_eq!(issuer.token_endpoint(), format!("{}/token", issuer.base_url()));
    assert_eq!(issuer.revocation_endpoint(), format!("{}/revoke", issuer.base_url()));
    assert_eq!(issuer.client_id(), "test-client");
    assert_eq!(issuer.client_secret(), "p@ss:w/rd+ &=%");
    assert_eq!(get(&issuer, "/nope").status, 404);
    drop(issuer);
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
}

#[test]
fn discovery_both_locations() {
    let issuer = TestIssuer::start();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let resp = get(&issuer, path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let doc = resp.json();
        assert_eq!(doc["issuer"], issuer.issuer_url());
        assert_eq!(doc["token_endpoint"], issuer.token_endpoint());
        assert_eq!(doc["revocation_endpoint"], issuer.revocation_endpoint());
        assert_eq!(doc["jwks_uri"], format!("{}/jwks", issuer.issuer_url()));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(doc["grant_types_supported"], serde_json::json!(["client_credentials"]));
        assert_eq!(doc["response_types_supported"], serde_json::json!(["token"]));
        assert!(doc.get("scopes_supported").is_none());
    }
    assert_eq!(get(&issuer, "/jwks").json(), serde_json::json!({"keys": []}));
    assert_eq!(issuer.discovery_requests().len(), 2);
    assert_eq!(
        request(issuer.addr(), "POST", "/.well-known/openid-configuration", &[], b"").status,
        405
    );
}

#[test]
fn discovery_with_issuer_path() {
    let issuer = TestIssuer::builder()
        .issuer_path("/tenant/a")
        .scopes(["read", "write"])
        .issue_refresh_tokens(true)
        .revocation(false)
        .start();
    assert_eq!(issuer.issuer_url(), format!("{}/tenant/a", issuer.base_url()));
    assert_eq!(issuer.token_endpoint(), format!("{}/tenant/a/token", issuer.base_url()));
    for path in [
        "/tenant/a/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant/a",
    ] {
        let doc = get(&issuer, path).json();
        assert_eq!(doc["issuer"], issuer.issuer_url());
        assert_eq!(doc["token_endpoint"], issuer.token_endpoint());
        assert_eq!(doc["scopes_supported"], serde_json::json!(["read", "write"]));
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["client_credentials", "refresh_token"])
        );
        assert!(doc.get("revocation_endpoint").is_none());
    }
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/tenant/a/.well-known/oauth-authorization-server",
        "/token",
    ] {
        assert_eq!(get(&issuer, path).status, 404, "{path}");
    }
    assert_eq!(get(&issuer, "/tenant/a/jwks").status, 200);
    let resp = token_basic(&issuer, &[]);
    assert_eq!(resp.status, 200);
    let revoke = post_form(&issuer, "/tenant/a/revoke", None, &[("token", "x")]);
    assert_eq!(revoke.status, 404);
}

#[test]
fn discovery_modes_and_advertised_issuer() {
    let oidc = TestIssuer::builder().discovery(DiscoveryMode::Oidc).start();
    assert_eq!(get(&oidc, "/.well-known/openid-configuration").status, 200);
    assert_eq!(get(&oidc, "/.well-known/oauth-authorization-server").status, 404);

    let rfc = TestIssuer::builder()
        .discovery(DiscoveryMode::Rfc8414)
        .advertise_issuer("https://elsewhere.example")
        .auth_methods(vec!["client_secret_basic"])
        .start();
    assert_eq!(get(&rfc, "/.well-known/openid-configuration").status, 404);
    let doc = get(&rfc, "/.well-known/oauth-authorization-server").json();
    assert_eq!(doc["issuer"], "https://elsewhere.example");
    assert_eq!(doc["token_endpoint"], rfc.token_endpoint());
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );

    let none = TestIssuer::builder().discovery(DiscoveryMode::None).start();
    assert_eq!(get(&none, "/.well-known/openid-configuration").status, 404);
    assert_eq!(get(&none, "/.well-known/oauth-authorization-server").status, 404);
    assert_eq!(none.discovery_requests().len(), 2);
}

// ---------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------

#[test]
fn token_with_basic_reserved_characters() {
    let issuer = TestIssuer::start();
    let resp = token_basic(&issuer, &[]);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body.get("scope").is_none());
    assert!(body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("tk-1-"), "{token}");
    assert_eq!(issuer.issued_tokens(), vec![token.to_owned()]);

    let recorded = &issuer.token_requests()[0];
    assert_eq!(recorded.auth_method, Some(AuthMethod::Basic));
    assert_eq!(recorded.client_id.as_deref(), Some("test-client"));
    assert_eq!(recorded.client_secret.as_deref(), Some(DEFAULT_CLIENT_SECRET));
    assert_eq!(recorded.grant_type.as_deref(), Some("client_credentials"));

    // Without the §2.3.1 form-encoding the secret does not round-trip.
    let unencoded = format!(
        "Basic {}",
        STANDARD.encode(format!("test-client:{DEFAULT_CLIENT_SECRET}"))
    );
    let resp = post_form(
        &issuer,
        "/token",
        Some(&unencoded),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.error(), "invalid_client");

    // Tokens are unique.
    let second = token_basic(&issuer, &[]).json();
    assert_ne!(second["access_token"], body["access_token"]);
    assert_eq!(issuer.issued_tokens().len(), 2);
}

#[test]
fn token_with_post_credentials_and_scope() {
    let issuer = TestIssuer::builder()
        .client("svc", "s3cret")
        .client("other", "pw")
        .scopes(vec!["read", "write"])
        .start();
    assert_eq!(issuer.client_id(), "svc");
    let resp = post_form(
        &issuer,
        "/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "other"),
            ("client_secret", "pw"),
            ("scope", "read write"),
        ],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["scope"], "read write");
    let recorded = &issuer.token_requests()[0];
    assert_eq!(recorded.auth_method, Some(AuthMethod::Post));
    assert_eq!(recorded.client_id.as_deref(), Some("other"));
    assert_eq!(recorded.param("scope"), Some("read write"));

    let resp = token_basic(&issuer, &[("scope", "read admin")]);
    assert_eq!(resp.status, 400);
    assert_eq!(resp.error(), "invalid_scope");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
}

#[test]
fn token_with_json_body_and_jwt() {
    let issuer = TestIssuer::builder().token_format(TokenFormat::Jwt).start();
    let body = serde_json::json!({
        "grant_type": "client_credentials",
        "client_id": issuer.client_id(),
        "client_secret": issuer.client_secret(),
        "scope": "a b",
        "resource": ["https://api.example/", "urn:example:other"],
    })
    .to_string();
    let resp = request(
        issuer.addr(),
        "POST",
        "/token",
        &[("Content-Type", "application/json; charset=utf-8")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let token = resp.json()["access_token"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(payload["iss"], issuer.issuer_url());
    assert_eq!(payload["sub"], "test-client");
    assert_eq!(payload["scope"], "a b");
    assert_eq!(
        payload["aud"],
        serde_json::json!(["https://api.example/", "urn:example:other"])
    );
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        3600
    );
    assert!(payload["jti"].is_string());

    let recorded = &issuer.token_requests()[0];
    assert_eq!(recorded.auth_method, Some(AuthMethod::Json));
    assert_eq!(
        recorded.params("resource"),
        vec!["https://api.example/", "urn:example:other"]
    );
    assert_eq!(recorded.client_secret.as_deref(), Some(DEFAULT_CLIENT_SECRET));

    let resp = token_basic(&issuer, &[("resource", "/relative")]);
    assert_eq!(resp.error(), "invalid_target");
    let resp = token_basic(&issuer, &[("resource", "https://a.example/#frag")]);
    assert_eq!(resp.error(), "invalid_target");
}

#[test]
fn client_authentication_failures() {
    let issuer = TestIssuer::start();
    let grant = [("grant_type", "client_credentials")];
    type Case<'a> = (Option<String>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case<'_>> = vec![
        (Some(basic("test-client", "wrong")), grant.to_vec()),
        (Some(basic("nobody", DEFAULT_CLIENT_SECRET)), grant.to_vec()),
        (Some("Basic %%%not-base64".into()), grant.to_vec()),
        (Some("Bearer abc".into()), grant.to_vec()),
        (None, grant.to_vec()),
        (
            Some(basic("test-client", DEFAULT_CLIENT_SECRET)),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "test-client"),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ],
        ),
        (
            None,
            vec![("grant_type", "client_credentials"), ("client_id", "test-client")],
        ),
    ];
    for (auth, pairs) in cases {
        let resp = post_form(&issuer, "/token", auth.as_deref(), &pairs);
        assert_eq!(resp.status, 401, "{auth:?} {pairs:?}");
        assert_eq!(resp.error(), "invalid_client");
        assert_eq!(resp.header("www-authenticate"), Some("Basic realm=\"test\""));
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }
    assert!(issuer.issued_tokens().is_empty());

    let basic_only = TestIssuer::builder().auth_methods(["client_secret_basic"]).start();
    let resp = post_form(
        &basic_only,
        "/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "test-client"),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    );
    assert_eq!(resp.status, 401);
    assert_eq!(token_basic(&basic_only, &[]).status, 200);
}

#[test]
fn request_validation() {
    let issuer = TestIssuer::start();
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let resp = request(issuer.addr(), "GET", "/token", &[], b"");
    assert_eq!(resp.status, 405);
    let resp = request(
        issuer.addr(),
        "POST",
        "/token",
        &[("Content-Type", "text/plain"), ("Authorization", &auth)],
        b"grant_type=client_credentials",
    );
    assert_eq!((resp.status, resp.error().as_str()), (400, "invalid_request"));
    let resp = request(
        issuer.addr(),
        "POST",
        "/token",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        b"[1,2",
    );
    assert_eq!((resp.status, resp.error().as_str()), (400, "invalid_request"));
    let resp = post_form(&issuer, "/token", Some(&auth), &[]);
    assert_eq!((resp.status, resp.error().as_str()), (400, "invalid_request"));
    let resp = post_form(&issuer, "/token", Some(&auth), &[("grant_type", "password")]);
    assert_eq!((resp.status, resp.error().as_str()), (400, "unsupported_grant_type"));
    let resp = post_form(&issuer, "/token", Some(&auth), &[("grant_type", "refresh_token")]);
    assert_eq!(resp.error(), "unsupported_grant_type");
    let resp = post_form(
        &issuer,
        "/token",
        Some(&auth),
        &[("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
    );
    assert_eq!(resp.error(), "invalid_request");

    // Malformed HTTP is answered with 400 and still recorded.
    let out = raw(issuer.addr(), b"HELLO\r\n\r\n", Duration::from_secs(5)).unwrap();
    assert_eq!(parse(&out).status, 400);
    let out = raw(
        issuer.addr(),
        b"POST /token HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(parse(&out).status, 400);
    let out = raw(
        issuer.addr(),
        b"POST /token HTTP/1.1\r\nbad header\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(parse(&out).status, 400);
    let all = issuer.requests();
    assert_eq!(all.len(), 10);
    assert_eq!(all[7].method, "HELLO");
    assert!(issuer.issued_tokens().is_empty());
}

#[test]
fn chunked_request_body_is_accepted() {
    let issuer = TestIssuer::start();
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let body = "grant_type=client_credentials";
    let req = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        10,
        &body[..10],
        body.len() - 10,
        &body[10..]
    );
    let resp = parse(&raw(issuer.addr(), req.as_bytes(), Duration::from_secs(5)).unwrap());
    assert_eq!(resp.status, 200);
    assert_eq!(issuer.token_requests()[0].body, body.as_bytes());
}

#[test]
fn lifetime_and_response_quirks() {
    let issuer = TestIssuer::builder().lifetime(60).token_type("bearer").start();
    let body = token_basic(&issuer, &[]).json();
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["token_type"], "bearer");
    issuer.set_lifetime(5);
    assert_eq!(token_basic(&issuer, &[]).json()["expires_in"], 5);

    let omit = TestIssuer::builder().omit_expires_in(true).start();
    assert!(token_basic(&omit, &[]).json().get("expires_in").is_none());

    let string = TestIssuer::builder().expires_in_as_string(true).start();
    assert_eq!(token_basic(&string, &[]).json()["expires_in"], "3600");
}

#[test]
fn refresh_token_grant_rotates() {
    let issuer = TestIssuer::builder()
        .client("a", "pa")
        .client("b", "pb")
        .issue_refresh_tokens(true)
        .start();
    let first = token_basic(&issuer, &[("scope", "x y")]).json();
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |id: &str, secret: &str, rt: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        pairs.extend_from_slice(extra);
        post_form(&issuer, "/token", Some(&basic(id, secret)), &pairs)
    };
    // Another client cannot use it.
    assert_eq!(refresh("b", "pb", &rt1, &[]).error(), "invalid_grant");
    // Scope beyond the original grant is refused and does not consume it.
    assert_eq!(refresh("a", "pa", &rt1, &[("scope", "z")]).error(), "invalid_scope");

    let second = refresh("a", "pa", &rt1, &[]);
    assert_eq!(second.status, 200);
    let second = second.json();
    assert_eq!(second["scope"], "x y");
    let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_ne!(first["access_token"], second["access_token"]);
    // Single use.
    assert_eq!(refresh("a", "pa", &rt1, &[]).error(), "invalid_grant");
    assert_eq!(refresh("a", "pa", "bogus", &[]).error(), "invalid_grant");
    let missing = post_form(
        &issuer,
        "/token",
        Some(&basic("a", "pa")),
        &[("grant_type", "refresh_token")],
    );
    assert_eq!(missing.error(), "invalid_request");
    // Narrowing the scope is fine.
    let third = refresh("a", "pa", &rt2, &[("scope", "y")]).json();
    assert_eq!(third["scope"], "y");
    assert_eq!(issuer.issued_tokens().len(), 3);
    let grants: Vec<_> = issuer
        .token_requests()
        .iter()
        .map(|r| r.grant_type.clone().unwrap())
        .collect();
    assert_eq!(grants[0], "client_credentials");
    assert!(grants[1..].iter().all(|g| g == "refresh_token"));
}

#[test]
fn revocation_endpoint() {
    let issuer = TestIssuer::builder().issue_refresh_tokens(true).start();
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let rt = token_basic(&issuer, &[]).json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = post_form(
        &issuer,
        "/revoke",
        Some(&auth),
        &[("token", &rt), ("token_type_hint", "refresh_token")],
    );
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    let resp = post_form(
        &issuer,
        "/token",
        Some(&auth),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(resp.error(), "invalid_grant");

    let resp = post_form(&issuer, "/revoke", Some(&basic("x", "y")), &[("token", "t")]);
    assert_eq!((resp.status, resp.error().as_str()), (401, "invalid_client"));
    let resp = post_form(&issuer, "/revoke", Some(&auth), &[]);
    assert_eq!((resp.status, resp.error().as_str()), (400, "invalid_request"));
    assert_eq!(request(issuer.addr(), "GET", "/revoke", &[], b"").status, 405);
    let revocations = issuer.revocation_requests();
    assert_eq!(revocations.len(), 4);
    assert_eq!(revocations[0].param("token"), Some(rt.as_str()));
    assert_eq!(revocations[0].auth_method, Some(AuthMethod::Basic));
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[test]
fn status_faults_are_fifo_and_one_per_request() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::oauth_error(400, "invalid_client", "nope"));
    issuer.push_fault(Fault::retry_after(503, "1"));
    issuer.push_fault(Fault::status(500, "{\"oops\":1}"));
    issuer.push_fault(Fault::Status {
        status: 429,
        body: "slow down".into(),
        headers: vec![("X-Custom".into(), "yes".into())],
    });

    let r = token_basic(&issuer, &[]);
    assert_eq!((r.status, r.error().as_str()), (400, "invalid_client"));
    assert_eq!(r.json()["error_description"], "nope");
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 500);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["oops"], 1);
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-custom"), Some("yes"));
    assert_eq!(r.body, b"slow down");
    assert_eq!(token_basic(&issuer, &[]).status, 200);
    // Faulted requests are recorded but not served.
    assert_eq!(issuer.token_requests().len(), 5);
    assert_eq!(issuer.issued_tokens().len(), 1);
    // Faults only apply to the token endpoint.
    issuer.push_fault(Fault::status(500, ""));
    assert_eq!(get(&issuer, "/.well-known/openid-configuration").status, 200);
    assert_eq!(token_basic(&issuer, &[]).status, 500);
}

#[test]
fn discovery_faults() {
    let issuer = TestIssuer::start();
    issuer.push_discovery_fault(Fault::Malformed("{not json".into()));
    issuer.push_discovery_fault(Fault::status(503, ""));
    assert_eq!(token_basic(&issuer, &[]).status, 200);
    let r = get(&issuer, "/.well-known/oauth-authorization-server");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{not json"[..]));
    assert_eq!(get(&issuer, "/.well-known/openid-configuration").status, 503);
    assert_eq!(get(&issuer, "/.well-known/openid-configuration").status, 200);
    assert_eq!(issuer.discovery_requests().len(), 3);
}

#[test]
fn delay_fault() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Delay(Duration::from_millis(300)));
    let start = Instant::now();
    let r = token_basic(&issuer, &[]);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status, 200);
    assert_eq!(issuer.issued_tokens().len(), 1);
}

#[test]
fn dribble_fault() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Dribble {
        interval: Duration::from_millis(2),
    });
    let start = Instant::now();
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(start.elapsed() >= Duration::from_millis(2) * r.body.len() as u32);
    assert_eq!(r.json()["access_token"], issuer.issued_tokens()[0]);
}

#[test]
fn oversized_faults() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Oversized(100_000));
    issuer.push_fault(Fault::OversizedChunked(50_000));
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.body.len(), 100_000);
    assert!(r.body.starts_with(b"{\"access_token\":\"aaaa"));
    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_none());
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.complete);
    assert_eq!(r.body.len(), 50_000);
}

#[test]
fn connection_faults() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::CloseMidResponse);
    issuer.push_fault(Fault::CloseImmediately);
    issuer.push_fault(Fault::Redirect("http://elsewhere.example/token".into()));

    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "body should be cut short");
    assert!(!r.body.is_empty());

    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let body = form(&[("grant_type", "client_credentials")]);
    let req = format!(
        "POST /token HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let out = raw(issuer.addr(), req.as_bytes(), Duration::from_secs(5)).unwrap();
    assert!(out.is_empty());

    let r = token_basic(&issuer, &[]);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("http://elsewhere.example/token"));
    assert_eq!(issuer.token_requests().len(), 3);
}

#[test]
fn hang_fault_holds_until_drop() {
    let issuer = TestIssuer::start();
    issuer.push_fault(Fault::Hang);
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let body = form(&[("grant_type", "client_credentials")]);
    let req = format!(
        "POST /token HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(issuer.addr()).unwrap();
    stream.write_all(req.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 64];
    let err = stream.read(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    // Other requests are still served meanwhile.
    assert_eq!(token_basic(&issuer, &[]).status, 200);
    let start = Instant::now();
    drop(issuer);
    assert!(start.elapsed() < Duration::from_secs(2));
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(stream.read(&mut buf).unwrap_or(0), 0);
}

// ---------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------

#[test]
fn recording() {
    let issuer = TestIssuer::start();
    get(&issuer, "/.well-known/openid-configuration?x=1");
    token_basic(
        &issuer,
        &[
            ("scope", "s1 s2"),
            ("resource", "https://r1/"),
            ("resource", "https://r2/"),
        ],
    );
    post_form(&issuer, "/revoke", None, &[("token", "t")]);
    get(&issuer, "/other");

    let all = issuer.requests();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].method, "GET");
    assert_eq!(all[0].path, "/.well-known/openid-configuration?x=1");
    assert_eq!(all[3].path, "/other");
    let token = &issuer.token_requests()[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.path, "/token");
    assert_eq!(token.header("Content-Type"), Some("application/x-www-form-urlencoded"));
    assert!(token.headers.iter().all(|(n, _)| n == &n.to_ascii_lowercase()));
    assert_eq!(token.param("scope"), Some("s1 s2"));
    assert_eq!(token.params("resource"), vec!["https://r1/", "https://r2/"]);
    assert!(token.param("missing").is_none());
    assert_eq!(issuer.revocation_requests().len(), 1);
    assert_eq!(issuer.discovery_requests().len(), 1);

    issuer.clear_requests();
    assert!(issuer.requests().is_empty());
    assert_eq!(issuer.issued_tokens().len(), 1);
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

/// Sends `request`, half-closes the connection and returns the response.
fn raw_half_close(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

#[test]
fn malformed_http_is_answered_with_400() {
    let issuer = TestIssuer::start();
    let mut huge_head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    huge_head.resize(70 * 1024, b'a');
    let cases: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET token HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /token HTTP/9\r\n\r\n".to_vec(),
        b"GET /token HTTP/1.1 extra\r\n\r\n".to_vec(),
        b"\xff\xfe /token HTTP/1.1\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
        b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".to_vec(),
        b"POST /token HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\n: empty name\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x".to_vec(),
        huge_head,
    ];
    for case in &cases {
        let out = raw_half_close(issuer.addr(), case);
        let resp = parse(&out);
        assert!(
            resp.status == 400 || resp.status == 413,
            "{:?} -> {}",
            String::from_utf8_lossy(&case[..case.len().min(80)]),
            resp.status
        );
    }
    let size = raw_half_close(
        issuer.addr(),
        b"POST /token HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert_eq!(parse(&size).status, 413);
    // An empty connection is not a request.
    drop(TcpStream::connect(issuer.addr()).unwrap());
    // Still alive and serving after all that.
    assert_eq!(token_basic(&issuer, &[]).status, 200);
    assert_eq!(issuer.requests().len(), cases.len() + 2);
}

#[test]
fn expect_100_continue() {
    let issuer = TestIssuer::start();
    let auth = basic(&issuer.client_id(), &issuer.client_secret());
    let body = "grant_type=client_credentials";
    let mut stream = TcpStream::connect(issuer.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        stream,
        "POST /token HTTP/1.1\r\nAuthorization: {auth}\r\nExpect: 100-continue\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    assert_eq!(parse(&out).status, 200);
}
