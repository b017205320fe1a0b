//! `client-credentials`: OAuth 2.0 client-credentials tokens from the command line.
//!
//! - `client-credentials demo` — an offline tour of the blocking client against an
//!   in-process test issuer, with timings measured in that run.
//! - `client-credentials token` — a token for shell scripts (`--header` for curl,
//!   `--json`, `--cache FILE` to reuse it across runs), by the client credentials
//!   grant or, with `--grant`, by token exchange or the JWT bearer grant.
//! - `client-credentials discover ISSUER` — the provider's validated metadata as JSON.
//!
//! Errors are one line on stderr; the exit code says which kind (see `--help`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cli;
mod commands;
mod demo;
mod failure;
mod transport;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if cli::passes_secret_as_argument(&args) {
        eprintln!("error: {}", cli::SECRET_ARGUMENT_REFUSED);
        return ExitCode::from(failure::USAGE);
    }
    let cli = Cli::parse_from(args);
    transport::init_logging(cli.verbose);
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::Token(args) => commands::token(*args),
        Command::Discover(args) => commands::discover(args),
    };
    match result {
        Ok(()) => ExitCode::from(failure::OK),
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
