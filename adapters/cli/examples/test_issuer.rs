//! A test issuer and a protected API on loopback, for trying the
//! `client-credentials` command from a shell without an account anywhere.
//!
//! It starts the workspace's in-process test issuer
//! (`client-credentials-testkit`) with one client, `my-client`, whose secret
//! is the `CLIENT_SECRET` environment variable, and a protected API (the
//! testkit's resource server) that answers any path under `API_URL` with
//! `200` for a token that issuer issued and `401` otherwise. Then it prints,
//! as shell assignments, where everything is:
//!
//! ```text
//! ISSUER=http://127.0.0.1:41771
//! TOKEN_URL=http://127.0.0.1:41771/token
//! API_URL=http://127.0.0.1:41772/api
//! ```
//!
//! and serves until killed (or for `--serve-secs N`, default 600).
//! `adapters/cli/examples/recipes.sh` runs the README's recipes against it:
//!
//! ```sh
//! export CLIENT_SECRET=my-secret
//! cargo run -p client-credentials-cli --example test_issuer
//! ```

// ci: skip (a server that runs until killed; CI runs it through recipes.sh)

use std::io::Write;
use std::time::Duration;

use client_credentials_testkit::{TestIssuer, TestResourceServer};

fn main() {
    let secret = std::env::var("CLIENT_SECRET").unwrap_or_else(|_| {
        eprintln!("test_issuer: set CLIENT_SECRET to the secret the client `my-client` should have");
        std::process::exit(2);
    });
    let serve = serve_duration();

    let issuer = TestIssuer::builder()
        .client("my-client", secret)
        .scopes(["orders:read", "orders:write"])
        .start();
    let api = TestResourceServer::builder().accept_tokens_of(&issuer).start();

    println!("ISSUER={}", issuer.issuer_url());
    println!("TOKEN_URL={}", issuer.token_endpoint());
    println!("API_URL={}", api.resource());
    // Scripts read the lines above from a pipe or a file: flush them now.
    std::io::stdout().flush().expect("stdout");
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
