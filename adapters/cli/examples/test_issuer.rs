//! A test issuer and a protected API on loopback, for trying the
//! `client-credentials` command from a shell without an account anywhere.
//!
//! It starts the workspace's in-process test issuer
//! (`client-credentials-testkit`) with one client, `my-client`, whose secret
//! is the `CLIENT_SECRET` environment variable, and a tiny API that answers
//! `GET /orders` only with a token that issuer issued. Then it prints, as
//! shell assignments, where everything is:
//!
//! ```text
//! ISSUER=http://127.0.0.1:41771
//! TOKEN_URL=http://127.0.0.1:41771/token
//! API_URL=http://127.0.0.1:41772
//! ```
//!
//! and serves until killed (or for `--serve-secs N`, default 600). The API
//! also answers `GET /stats` with `token_requests=N`, the number of token
//! requests the issuer received, so a script can check that its cache works.
//! `adapters/cli/examples/recipes.sh` runs the README's recipes against it:
//!
//! ```sh
//! export CLIENT_SECRET=my-secret
//! cargo run -p client-credentials-cli --example test_issuer
//! ```

// ci: skip (a server that runs until killed; CI runs it through recipes.sh)

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use client_credentials_testkit::TestIssuer;

fn main() {
    let secret = std::env::var("CLIENT_SECRET").unwrap_or_else(|_| {
        eprintln!("test_issuer: set CLIENT_SECRET to the secret the client `my-client` should have");
        std::process::exit(2);
    });
    let serve = serve_duration();

    let issuer = Arc::new(
        TestIssuer::builder()
            .client("my-client", secret)
            .scopes(["orders:read", "orders:write"])
            .start(),
    );
    let api = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the API");

    println!("ISSUER={}", issuer.issuer_url());
    println!("TOKEN_URL={}", issuer.token_endpoint());
    println!("API_URL=http://{}", api.local_addr().expect("local address"));
    // Scripts read the lines above from a pipe or a file: flush them now.
    std::io::stdout().flush().expect("stdout");

    let api_issuer = Arc::clone(&issuer);
    std::thread::spawn(move || {
        for stream in api.incoming().flatten() {
            let issuer = Arc::clone(&api_issuer);
            std::thread::spawn(move || answer(stream, &issuer));
        }
    });
    std::thread::sleep(serve);
}

/// `--serve-secs N`: how long to serve before exiting on its own.
fn serve_duration() -> Duration {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--serve-secs") {
        Some(i) => match args.get(i + 1).and_then(|s| s.parse().ok()) {
            Some(secs) => Duration::from_secs(secs),
            None => {
                eprintln!("test_issuer: --serve-secs takes a number of seconds");
                std::process::exit(2);
            }
        },
        None => Duration::from_secs(600),
    }
}

/// One HTTP/1.1 exchange of the protected API: `GET /orders` with a bearer
/// token the issuer issued, or `GET /stats`.
fn answer(stream: TcpStream, issuer: &TestIssuer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim_end().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        authorization = Some(value.trim().to_owned());
                    }
                }
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/stats" => (
            "200 OK",
            "text/plain",
            format!("token_requests={}\n", issuer.token_requests().len()),
        ),
        "/orders" => {
            let token = authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
            match token {
                Some(token) if issuer.issued_tokens().iter().any(|t| t == token) => {
                    ("200 OK", "application/json", "{\"orders\":[]}\n".to_owned())
                }
                _ => (
                    "401 Unauthorized",
                    "application/json",
                    "{\"error\":\"invalid_token\"}\n".to_owned(),
                ),
            }
        }
        _ => ("404 Not Found", "text/plain", String::new()),
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
