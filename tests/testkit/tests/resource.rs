//! The test resource server over real sockets: metadata, challenges,
//! rejection, redirects, keep-alive, request counts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use client_credentials_testkit::{TestIssuer, TestResourceServer};

/// Sends `head` (request line and headers, without the final blank line)
/// with `Connection: close` and returns (status, raw response).
fn request(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    (status, response)
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("\r\nAuthorization: Bearer {t}"))
        .unwrap_or_default();
    request(addr, &format!("GET {path} HTTP/1.1{auth}"))
}

fn issue_token(issuer: &TestIssuer) -> String {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &issuer.client_id())
        .append_pair("client_secret", &issuer.client_secret())
        .finish();
    let mut stream = TcpStream::connect(issuer.addr()).unwrap();
    write!(
        stream,
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    issuer.issued_tokens().last().cloned().expect("a token was issued")
}

#[test]
fn serves_its_rfc_9728_metadata_naming_the_issuer() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let (status, response) = get(api.addr(), "/.well-known/oauth-protected-resource/api", None);
    assert_eq!(status, 200);
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let document: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(document["resource"], api.resource());
    assert_eq!(document["authorization_servers"][0], issuer.issuer_url());
}

#[test]
fn accepts_issued_tokens_and_rejects_others_with_a_challenge() {
    let issuer = TestIssuer::start();
    let api = TestResourceServer::builder().authorization_server(&issuer).start();
    let token = issue_token(&issuer);

    let (status, response) = get(api.addr(), "/api/things", None);
    assert_eq!(status, 401);
    assert!(
        response.contains("WWW-Authenticate: Bearer realm=\"test\", resource_metadata="),
        "{response}"
    );
    assert!(
        !response.contains("error=\"invalid_token\""),
        "no error code without a token"
    );

    let (status, response) = get(api.addr(), "/api/things", Some("forged"));
    assert_eq!(status, 401);
    assert!(response.contains("error=\"invalid_token\""), "{response}");

    assert_eq!(get(api.addr(), "/api/things", Some(&token)).0, 200);
    api.reject_token(&token);
    assert_eq!(get(api.addr(), "/api/things", Some(&token)).0, 401);
    assert_eq!((api.accepted(), api.rejected(), api.requests().len()), (1, 3, 4));

    let fresh = issue_token(&issuer);
    assert_eq!(get(api.addr(), "/api/things", Some(&fresh)).0, 200);
    api.reject_all(true);
    assert_eq!(get(api.addr(), "/api/things", Some(&fresh)).0, 401);
}

#[test]
fn redirects_to_another_origin_and_records_what_arrives_there() {
    let other = TestResourceServer::start();
    let api = TestResourceServer::builder().redirect_to(other.base_url()).start();
    let (status, response) = get(api.addr(), "/redirect/landing", Some("t"));
    assert_eq!(status, 307);
    assert!(
        response.contains(&format!("Location: {}/landing", other.base_url())),
        "{response}"
    );
    assert_eq!(get(other.addr(), "/landing", None).0, 401);
    assert_eq!(other.requests()[0].header("authorization"), None);
}

#[test]
fn keeps_the_connection_alive_between_requests() {
    let api = TestResourceServer::start();
    let mut stream = TcpStream::connect(api.addr()).unwrap();
    for _ in 0..3 {
        write!(
            stream,
            "GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
    }
    assert_eq!(api.accepted(), 3);
}
