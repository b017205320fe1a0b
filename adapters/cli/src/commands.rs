//! `token` and `discover`.

use std::io::Write;
use std::path::Path;

use client_credentials::{
    AssertionSource, ClientAuth, Config, ConfigBuilder, Grant, JwsAlgorithm, JwtKey, Timestamp, TokenExchange,
};
use client_credentials_blocking::{Client, FileStore};
use client_credentials_redis::RedisStore;

use crate::cli::{AuthArg, DiscoverArgs, GrantArg, KeyAlg, TokenArgs};
use crate::failure::Failure;
use crate::transport::LoggingTransport;

/// `client-credentials token`: fetch (or reuse from `--cache`) a token and print it.
pub fn token(args: TokenArgs) -> Result<(), Failure> {
    check_grant_flags(&args)?;
    let secret = read_secret(&args)?;
    let config = token_config(&args, secret)?;
    let transport = LoggingTransport::ureq(args.http.timeout, config.max_body_size());
    let last_request = transport.last_request();
    let store = match &args.store {
        Some(url) => Some(redis_store(&args, url, &config)?),
        None => None,
    };
    let mut builder = Client::builder(config).transport(transport);
    if let Some(path) = &args.cache {
        builder = builder.store(FileStore::new(path));
    }
    if let Some(store) = store {
        builder = builder.store(store);
    }
    let token = builder
        .build()
        .token()
        .map_err(|e| Failure::from(e).after(last_request.get()))?;
    let output = if args.header {
        // RFC 8693 §2.2.1: `N_A` is a token that is not an access token (a JWT
        // authorization grant for identity chaining): no use in a header.
        if token.token_type().eq_ignore_ascii_case("n_a") {
            return Err(Failure::usage(
                "the token exchange issued a token that is not an access token (token_type N_A); \
                 print it bare or with --json, not with --header",
            ));
        }
        let header = token.authorization_header();
        let value = header
            .to_str()
            .map_err(|_| Failure::from(invalid("the token has characters that cannot go in a header")))?;
        value.to_owned()
    } else if args.json {
        serde_json::json!({
            "access_token": token.secret(),
            "token_type": token.token_type(),
            "expires_at": token.expires_at().map(Timestamp::as_unix_secs),
            "scope": token.scope(),
        })
        .to_string()
    } else {
        token.secret().to_owned()
    };
    print_line(&output)
}

/// The environment variable naming the `--store-key-file` when the flag is absent.
const STORE_KEY_FILE_ENV: &str = "CLIENT_CREDENTIALS_STORE_KEY_FILE";

/// The `--store` Redis store for `config`, with the password from the
/// environment and the sealing key from `--store-key-file`; refused for a
/// client without a secret and no key.
fn redis_store(args: &TokenArgs, url: &str, config: &Config) -> Result<RedisStore, Failure> {
    let mut url = url::Url::parse(url).map_err(|_| Failure::usage("--store must be a redis:// or rediss:// URL"))?;
    if url.password().is_some() {
        return Err(Failure::usage(format!(
            "--store: put the Redis password in ${} instead of the URL (arguments are visible in `ps`)",
            args.store_password_env
        )));
    }
    if let Ok(password) = std::env::var(&args.store_password_env) {
        url.set_password(Some(password.trim_end_matches(['\r', '\n'])))
            .map_err(|()| Failure::usage("--store: this URL cannot carry a password"))?;
    }
    let mut builder = RedisStore::builder(url.as_str());
    if args.store_cluster {
        builder = builder.cluster();
    }
    if let Some(prefix) = &args.store_prefix {
        builder = builder.key_prefix(prefix);
    }
    if let Some(path) = &args.store_ca_file {
        let pem = std::fs::read(path)
            .map_err(|error| Failure::usage(format!("--store-ca-file {}: {error}", path.display())))?;
        builder = builder.tls_root_certificate(pem);
    }
    let key_file = args.store_key_file.clone().or_else(|| {
        std::env::var_os(STORE_KEY_FILE_ENV)
            .filter(|path| !path.is_empty())
            .map(std::path::PathBuf::from)
    });
    if let Some(path) = &key_file {
        builder = builder.encryption_key(read_key_file(path)?);
    }
    let store = builder
        .build()
        .map_err(|error| Failure::usage(format!("--store: {error}")))?;
    store.check_config(config).map_err(|_| {
        Failure::usage(
            "--store: this client has no secret to derive the Redis sealing key from; \
give one with --store-key-file (or CLIENT_CREDENTIALS_STORE_KEY_FILE)",
        )
    })?;
    Ok(store)
}

/// The sealing key in `path`: its bytes, one trailing line break dropped.
/// Checked to be a regular file first (a FIFO would block), and capped.
fn read_key_file(path: &Path) -> Result<Vec<u8>, Failure> {
    use client_credentials_common::token_file::{read_checked, FileRule};
    // A key file is placed like an assertion file (a mounted secret may be
    // root-owned and reached through one link): checked on the open handle,
    // never writable by others, at most 64 KiB.
    let mut key = read_checked(path, FileRule::Platform)
        .map_err(|error| Failure::usage(format!("--store-key-file {}: {error}", path.display())))?;
    if key.ends_with(b"\n") {
        key.pop();
        if key.ends_with(b"\r") {
            key.pop();
        }
    }
    Ok(key)
}

fn invalid(reason: &str) -> client_credentials::Error {
    client_credentials::Error::InvalidResponse { reason: reason.into() }
}

fn token_config(args: &TokenArgs, secret: String) -> Result<Config, Failure> {
    let mut builder = Config::builder(&args.client_id, secret);
    builder = match (&args.issuer, &args.token_url) {
        (Some(issuer), None) => builder.issuer(issuer),
        (None, Some(url)) => builder.token_endpoint(url),
        // clap's "endpoint" group makes these unreachable; say so if they are reached anyway.
        _ => return Err(Failure::usage("give exactly one of --issuer URL or --token-url URL")),
    };
    for scope in &args.scope {
        builder = builder.scope(scope);
    }
    for resource in &args.resource {
        builder = builder.resource(resource);
    }
    if let Some(audience) = &args.audience {
        builder = builder.audience(audience);
    }
    if let Some(auth) = args.auth {
        builder = builder.auth(match auth {
            AuthArg::Basic => ClientAuth::Basic,
            AuthArg::Post => ClientAuth::Post,
            AuthArg::Json => ClientAuth::Json,
            AuthArg::ClientSecretJwt => ClientAuth::ClientSecretJwt,
        });
    }
    if let Some(path) = &args.private_key {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read the private key file {}: {e}", path.display())))?;
        let alg = match args.key_alg {
            KeyAlg::Rs256 => JwsAlgorithm::Rs256,
            KeyAlg::Ps256 => JwsAlgorithm::Ps256,
            KeyAlg::Es256 => JwsAlgorithm::Es256,
            KeyAlg::Ed25519 => JwsAlgorithm::Ed25519,
        };
        let mut key = JwtKey::from_pem(&pem, alg)?;
        if let Some(kid) = &args.key_id {
            key = key.with_key_id(kid);
        }
        builder = builder.auth(ClientAuth::PrivateKeyJwt(key));
    }
    if let Some(path) = &args.assertion_file {
        let source = AssertionSource::file(path);
        builder = builder.auth(ClientAuth::Assertion(if args.spiffe {
            source.spiffe()
        } else {
            source
        }));
    }
    if args.no_client_auth {
        builder = builder.auth(ClientAuth::None);
    }
    builder = builder.grant(grant(args));
    Ok(insecure(builder, args.http.allow_insecure_http).build()?)
}

/// The `--grant` with its files. The subject, actor and assertion files are
/// read by the client, under the same checks as `--assertion-file`
/// (`token_file::read_checked`, `FileRule::Platform`), before anything is sent.
fn grant(args: &TokenArgs) -> Grant {
    match args.grant {
        GrantArg::ClientCredentials => Grant::client_credentials(),
        GrantArg::TokenExchange => {
            // clap requires both with --grant token-exchange; an empty type is
            // refused by the configuration as not a URI.
            let subject = AssertionSource::file(args.subject_token_file.clone().unwrap_or_default());
            let mut exchange = TokenExchange::new(subject, args.subject_token_type.clone().unwrap_or_default());
            if let (Some(path), Some(kind)) = (&args.actor_token_file, &args.actor_token_type) {
                exchange = exchange.actor(AssertionSource::file(path), kind);
            }
            if let Some(kind) = &args.requested_token_type {
                exchange = exchange.requested_token_type(kind);
            }
            Grant::token_exchange(exchange)
        }
        GrantArg::JwtBearer => Grant::jwt_bearer(AssertionSource::file(
            args.grant_assertion_file.clone().unwrap_or_default(),
        )),
    }
}

/// Refuses grant flags that the `--grant` given does not use (clap cannot say
/// "only with this value"), and `--no-client-auth` with the client
/// credentials grant: before any secret or file is read.
fn check_grant_flags(args: &TokenArgs) -> Result<(), Failure> {
    let exchange_flags = [
        ("--subject-token-file", args.subject_token_file.is_some()),
        ("--subject-token-type", args.subject_token_type.is_some()),
        ("--actor-token-file", args.actor_token_file.is_some()),
        ("--actor-token-type", args.actor_token_type.is_some()),
        ("--requested-token-type", args.requested_token_type.is_some()),
    ];
    if args.grant != GrantArg::TokenExchange {
        if let Some((flag, _)) = exchange_flags.iter().find(|(_, given)| *given) {
            return Err(Failure::usage(format!("{flag} needs --grant token-exchange")));
        }
    }
    if args.grant != GrantArg::JwtBearer && args.grant_assertion_file.is_some() {
        return Err(Failure::usage(
            "--grant-assertion-file needs --grant jwt-bearer (client authentication with an assertion is --assertion-file)",
        ));
    }
    if args.grant == GrantArg::ClientCredentials && args.no_client_auth {
        return Err(Failure::usage(
            "--no-client-auth is refused with the client credentials grant: the client must authenticate \
             (a secret, --private-key or --assertion-file); a public client needs --grant token-exchange or jwt-bearer",
        ));
    }
    Ok(())
}

fn insecure(builder: ConfigBuilder, allow: bool) -> ConfigBuilder {
    if allow {
        builder.allow_insecure_http()
    } else {
        builder
    }
}

/// The secret, from `--client-secret-file` (one trailing line break dropped) or
/// the environment variable `--client-secret-env` names.
fn read_secret(args: &TokenArgs) -> Result<String, Failure> {
    // A signed or external assertion replaces the secret.
    let secretless = args.private_key.is_some() || args.assertion_file.is_some() || args.no_client_auth;
    if secretless && args.client_secret_file.is_none() {
        return Ok(String::new());
    }
    let secret = match &args.client_secret_file {
        Some(path) => read_secret_file(path)?,
        None => {
            let name = &args.client_secret_env;
            match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    let public = if args.grant == GrantArg::ClientCredentials {
                        ""
                    } else {
                        " (or --no-client-auth for a public client)"
                    };
                    return Err(Failure::usage(format!(
                        "no client secret: the environment variable {name} is not set; \
                         set it, name another with --client-secret-env VAR, or use --client-secret-file PATH{public}"
                    )));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Failure::usage(format!(
                        "the environment variable {name} is not valid UTF-8"
                    )))
                }
            }
        }
    };
    if secret.is_empty() {
        let source = match &args.client_secret_file {
            Some(path) => format!("the file {}", path.display()),
            None => format!("the environment variable {}", args.client_secret_env),
        };
        return Err(Failure::usage(format!("no client secret: {source} is empty")));
    }
    Ok(secret)
}

fn read_secret_file(path: &Path) -> Result<String, Failure> {
    let mut secret = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read the client secret file {}: {e}", path.display())))?;
    // Editors and `echo` end files with a line break; it is never part of a secret.
    if secret.ends_with('\n') {
        secret.pop();
        if secret.ends_with('\r') {
            secret.pop();
        }
    }
    Ok(secret)
}

/// `client-credentials discover`: fetch and validate the metadata, print it as JSON.
pub fn discover(args: DiscoverArgs) -> Result<(), Failure> {
    // The adapters' own standalone discovery (OpenID Connect, then RFC 8414
    // on 404; issuer and endpoint validation), through the logging transport
    // so that `--timeout` and `-v` apply. No credentials are involved.
    let transport = LoggingTransport::ureq(args.http.timeout, ConfigBuilder::DEFAULT_MAX_BODY_SIZE);
    let metadata = client_credentials_blocking::discover_with(&transport, &args.issuer)
        .map_err(|e| Failure::from(e).after(transport.last_request().get()))?;
    let json = serde_json::to_string_pretty(&metadata)
        .map_err(|e| Failure::from(invalid(&format!("cannot print the metadata: {e}"))))?;
    print_line(&json)
}

/// Prints one line on stdout; a closed stdout (`| head`) is an error, not a panic.
fn print_line(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure {
            code: crate::failure::OUTPUT,
            message: format!("cannot write the output: {e}"),
        })
}
