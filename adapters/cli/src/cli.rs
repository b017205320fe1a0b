//! The command line: subcommands, flags, help text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use client_credentials::token_type;

/// The exit codes, as listed in `--help` (and the README); a macro so it can be
/// `concat!`ed into the help texts.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  the output could not be written
  2  usage or configuration error (bad flags, missing secret, invalid URL, unusable key,
     assertion or subject token)
  3  the provider refused the request with an OAuth error (invalid_client, invalid_scope, ...)
  4  network, transport or server error (connect, timeout, 5xx, invalid response)
  5  discovery failed (no metadata document, issuer mismatch, invalid document)"
    };
}

const AFTER_HELP: &str = concat!(
    "\
Examples:
  client-credentials demo
  export CLIENT_SECRET=...   # or --client-secret-file /run/secrets/client
  curl -H \"Authorization: $(client-credentials token --header \\
           --issuer https://auth.example.com --client-id my-client \\
           --scope orders:read --cache ~/.cache/orders-token.json)\" \\
       https://api.example.com/orders
  client-credentials discover https://auth.example.com

",
    exit_codes!()
);

/// OAuth 2.0 client-credentials tokens from the command line.
#[derive(Debug, Parser)]
#[command(name = "client-credentials", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Show the HTTP requests made (method, URL, status; never credentials) on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an offline tour against an in-process test issuer: fetch, cached reads,
    /// refresh, single flight, retry, errors, discovery.
    Demo,
    /// Fetch an access token and print it (bare, as a header value, or as JSON).
    #[command(after_help = TOKEN_AFTER_HELP)]
    Token(Box<TokenArgs>),
    /// Fetch and validate a provider's metadata (OpenID Connect, then RFC 8414)
    /// and print it as JSON.
    Discover(DiscoverArgs),
}

const TOKEN_AFTER_HELP: &str = concat!(
    "\
The client secret is read from the environment variable named by --client-secret-env
(default CLIENT_SECRET) or from --client-secret-file. It is never accepted as an
argument: arguments are visible to every user in `ps` and are kept in shell history.
With --private-key (private_key_jwt), --assertion-file (workload identity) or
--no-client-auth no secret is needed.

Examples:
  CLIENT_SECRET=... client-credentials token --token-url https://auth.example.com/oauth2/token --client-id my-client
  curl -H \"Authorization: $(client-credentials token --header --issuer https://auth.example.com \\
           --client-id my-client --client-secret-file /run/secrets/client --cache ~/.cache/my-token.json)\" \\
       https://api.example.com/orders
  client-credentials token --json --issuer https://auth.example.com --client-id my-client --scope a --scope b

Grants (--grant): client-credentials, the default, asks for the client's own token.
token-exchange (RFC 8693) trades the token in --subject-token-file, of type
--subject-token-type (access_token, jwt, id_token, refresh_token, saml1, saml2, or
a URI), for a new one; --actor-token-file/--actor-token-type add an actor
(delegation), --requested-token-type asks for a type. jwt-bearer (RFC 7523) sends
the JWT in --grant-assertion-file as the grant; --assertion-file stays client
authentication. The files are read on every run, checked like --assertion-file
(not writable by others, at most 64 KiB); errors name the file, never print the
token. --scope, --resource and --audience go with every grant: with a token
exchange they name the token's target (RFC 8693 section 2.1). A public security
token service takes no client authentication: --no-client-auth sends only
--client-id, and is refused with --grant client-credentials.
  client-credentials token --token-url https://sts.example.com/v1/token --client-id workload \\
    --no-client-auth --grant token-exchange --audience https://api.example.com \\
    --subject-token-file /var/run/secrets/tokens/sts-token --subject-token-type jwt

With --cache, separate runs share one token file (mode 0600): a script calling this
1,000 times asks the provider once per token lifetime. The file records which
provider, client, scopes, resources, audience, authentication (method, key or
assertion type) and grant (with whom its subject token speaks for) each token was
fetched for, and serves it only to the same configuration; it keeps one token per
configuration (up to 64, dropping those that expire soonest), so runs with other
--scope, --resource, --audience or subject values do not overwrite each other's
token. Keep it in a directory only you can write
to, not a shared temporary one: a file another user owns, or that group or others may
read, is refused with a warning (and a new token is fetched).

With --store redis://host:6379 (or rediss://), runs on many machines share one token
in Redis, encrypted with a key derived from the client credentials; one run fetches
when it expires and the others reuse it. Put the Redis password in REDIS_PASSWORD
(or the variable named by --store-password-env), not in the URL: arguments are
visible in `ps`. Redis being down only costs a run up to half a second.
With --private-key, --assertion-file or --no-client-auth there is no secret to
derive that key from: give one with --store-key-file (or
CLIENT_CREDENTIALS_STORE_KEY_FILE), a file of at least 32 bytes (e.g. `head -c 32
/dev/urandom`), the same on every machine; without it --store is refused.

",
    exit_codes!()
);

/// Flags of `token`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("endpoint").required(true).args(["issuer", "token_url"]))]
pub struct TokenArgs {
    /// The issuer: the token endpoint is discovered from its metadata.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// The token endpoint, used as given (no discovery).
    #[arg(long, value_name = "URL")]
    pub token_url: Option<String>,

    /// The client id.
    #[arg(long, value_name = "ID")]
    pub client_id: String,

    /// The environment variable holding the client secret.
    #[arg(long, value_name = "VAR", default_value = "CLIENT_SECRET")]
    pub client_secret_env: String,

    /// A file holding the client secret (a trailing newline is ignored).
    #[arg(long, value_name = "PATH", conflicts_with = "client_secret_env")]
    pub client_secret_file: Option<PathBuf>,

    /// A scope to request (repeatable).
    #[arg(long, value_name = "SCOPE")]
    pub scope: Vec<String>,

    /// An RFC 8707 resource indicator (repeatable).
    #[arg(long, value_name = "URI")]
    pub resource: Vec<String>,

    /// The `audience` parameter some providers require.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,

    /// How to send the client credentials (default: basic, or what discovery lists).
    #[arg(long, value_enum, value_name = "METHOD", conflicts_with_all = ["private_key", "assertion_file"])]
    pub auth: Option<AuthArg>,

    /// Send no client authentication, only --client-id: a public client of a
    /// security token service. Only with --grant token-exchange or jwt-bearer.
    #[arg(long, conflicts_with_all = ["auth", "private_key", "assertion_file", "client_secret_file"])]
    pub no_client_auth: bool,

    /// A private key (PEM) to authenticate with a signed assertion instead of
    /// a secret (private_key_jwt, RFC 7523); no client secret is needed.
    #[arg(long, value_name = "PATH", conflicts_with = "assertion_file")]
    pub private_key: Option<PathBuf>,

    /// The algorithm of --private-key.
    #[arg(
        long,
        value_enum,
        value_name = "ALG",
        default_value = "es256",
        requires = "private_key"
    )]
    pub key_alg: KeyAlg,

    /// The key id (kid) the provider knows --private-key by.
    #[arg(long, value_name = "KID", requires = "private_key")]
    pub key_id: Option<String>,

    /// A client assertion made elsewhere (a Kubernetes projected token, a
    /// cloud's federated token file, a SPIFFE JWT-SVID), sent instead of a
    /// secret; an expired one is an error, never sent.
    #[arg(long, value_name = "PATH")]
    pub assertion_file: Option<PathBuf>,

    /// Send --assertion-file as a SPIFFE JWT-SVID (client_assertion_type jwt-spiffe).
    #[arg(long, requires = "assertion_file")]
    pub spiffe: bool,

    /// How the token is asked for: the client's own (client-credentials), in
    /// exchange for the token in --subject-token-file (token-exchange, RFC 8693),
    /// or for the JWT in --grant-assertion-file (jwt-bearer, RFC 7523).
    #[arg(long, value_enum, value_name = "GRANT", default_value = "client-credentials")]
    pub grant: GrantArg,

    /// With --grant token-exchange: the file holding the subject token, the
    /// token traded in (read on every run, checked like --assertion-file,
    /// never printed).
    #[arg(long, value_name = "PATH", required_if_eq("grant", "token-exchange"))]
    pub subject_token_file: Option<PathBuf>,

    /// The type of --subject-token-file: access_token, jwt, id_token,
    /// refresh_token, saml1, saml2, or a token type URI.
    #[arg(
        long,
        value_name = "TYPE",
        value_parser = parse_token_type,
        required_if_eq("grant", "token-exchange"),
        requires = "subject_token_file"
    )]
    pub subject_token_type: Option<String>,

    /// With --grant token-exchange: the file holding an actor token, to act on
    /// behalf of the subject (delegation); read like --subject-token-file.
    #[arg(long, value_name = "PATH", requires = "actor_token_type")]
    pub actor_token_file: Option<PathBuf>,

    /// The type of --actor-token-file (as for --subject-token-type).
    #[arg(long, value_name = "TYPE", value_parser = parse_token_type, requires = "actor_token_file")]
    pub actor_token_type: Option<String>,

    /// With --grant token-exchange: the type of token to ask for (as for
    /// --subject-token-type). Another than access_token (e.g. jwt, for
    /// identity chaining) is not an access token: it is printed bare or with --json.
    #[arg(long, value_name = "TYPE", value_parser = parse_token_type)]
    pub requested_token_type: Option<String>,

    /// With --grant jwt-bearer: the file holding the JWT sent as the grant
    /// (`assertion`). Not client authentication: that is --assertion-file.
    #[arg(long, value_name = "PATH", required_if_eq("grant", "jwt-bearer"))]
    pub grant_assertion_file: Option<PathBuf>,

    /// Print `Bearer <token>`, for an Authorization header.
    #[arg(long, conflicts_with = "json")]
    pub header: bool,

    /// Print {"access_token", "token_type", "expires_at" (unix seconds), "scope"}.
    #[arg(long)]
    pub json: bool,

    /// Keep the token in this file and reuse it while it is fresh.
    #[arg(long, value_name = "PATH")]
    pub cache: Option<PathBuf>,

    /// Share the token through Redis (redis:// or rediss:// URL, user name allowed,
    /// password from --store-password-env): one fetch per lifetime for all machines.
    #[arg(long, value_name = "URL", conflicts_with = "cache")]
    pub store: Option<String>,

    /// The environment variable holding the Redis password (if it is set).
    #[arg(long, value_name = "VAR", default_value = "REDIS_PASSWORD", requires = "store")]
    pub store_password_env: String,

    /// Trust this certificate authority (PEM file) for a rediss:// --store.
    #[arg(long, value_name = "PATH", requires = "store")]
    pub store_ca_file: Option<PathBuf>,

    /// The --store URL is a node of a Redis Cluster.
    #[arg(long, requires = "store")]
    pub store_cluster: bool,

    /// The prefix of the Redis key (default client-credentials:); one per application
    /// on a shared Redis.
    #[arg(long, value_name = "PREFIX", requires = "store")]
    pub store_prefix: Option<String>,

    /// A file holding the key that seals tokens in --store (at least 32 bytes; one
    /// trailing line break dropped), instead of one derived from the client secret.
    /// Required with --private-key, --assertion-file or --no-client-auth.
    /// Default: the file named by CLIENT_CREDENTIALS_STORE_KEY_FILE, if set.
    #[arg(long, value_name = "PATH", requires = "store")]
    pub store_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// Flags of `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The issuer identifier, e.g. https://auth.example.com
    #[arg(value_name = "ISSUER")]
    pub issuer: String,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// HTTP settings shared by `token` and `discover`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// The time limit of each HTTP exchange, in seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// Allow plain http:// to hosts other than loopback for `token` (sends the secret in clear text).
    /// `discover` uses the adapters' standalone discovery, which reads metadata over https, or
    /// plain http to loopback, only.
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// `--auth` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// HTTP Basic (client_secret_basic, RFC 6749 §2.3.1).
    Basic,
    /// Credentials in the form body (client_secret_post).
    Post,
    /// A JSON request body.
    Json,
    /// An HS256 assertion signed with the secret (client_secret_jwt, RFC 7523).
    ClientSecretJwt,
}

/// `--grant` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrantArg {
    /// The client credentials grant (RFC 6749 §4.4): the client's own token.
    ClientCredentials,
    /// Token exchange (RFC 8693): --subject-token-file traded for a new token.
    TokenExchange,
    /// The JWT bearer grant (RFC 7523 §2.1): --grant-assertion-file sent as the grant.
    JwtBearer,
}

/// The short names `--subject-token-type` and the other token type flags
/// take, and the RFC 8693 §3 URIs they stand for.
pub const TOKEN_TYPE_NAMES: [(&str, &str); 6] = [
    ("access_token", token_type::ACCESS_TOKEN),
    ("jwt", token_type::JWT),
    ("id_token", token_type::ID_TOKEN),
    ("refresh_token", token_type::REFRESH_TOKEN),
    ("saml1", token_type::SAML1),
    ("saml2", token_type::SAML2),
];

/// A token type: one of [`TOKEN_TYPE_NAMES`]' short names, or a URI given as
/// is (anything with a `:`; the configuration checks it is a URI).
fn parse_token_type(value: &str) -> Result<String, String> {
    if value.contains(':') {
        return Ok(value.to_owned());
    }
    TOKEN_TYPE_NAMES
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, uri)| (*uri).to_owned())
        .ok_or_else(|| {
            let names: Vec<&str> = TOKEN_TYPE_NAMES.iter().map(|(name, _)| *name).collect();
            format!(
                "{value:?} is not a token type: use one of {} or a URI",
                names.join(", ")
            )
        })
}

/// `--key-alg` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA key).
    Rs256,
    /// RSASSA-PSS with SHA-256 (RSA key).
    Ps256,
    /// ECDSA P-256 with SHA-256 (EC key).
    Es256,
    /// EdDSA with an Ed25519 key.
    Ed25519,
}

fn parse_timeout(value: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("the timeout must be more than 0 seconds".into());
    }
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// Whether the arguments try to pass the client secret itself (`--client-secret VALUE`
/// or `--client-secret=VALUE`). Checked before parsing so the refusal wins over any
/// other usage error, and the value is never echoed.
pub fn passes_secret_as_argument(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .filter_map(|arg| arg.to_str())
        .any(|arg| arg == "--client-secret" || arg.starts_with("--client-secret="))
}

/// Why a secret on the command line is refused, and what to use instead.
pub const SECRET_ARGUMENT_REFUSED: &str = "--client-secret is refused: a secret given as an argument is visible to \
every user in `ps` and stays in shell history; put it in an environment variable (CLIENT_SECRET, or name \
another with --client-secret-env VAR) or in a file (--client-secret-file PATH)";

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_secret_argument_is_detected_in_both_forms_but_not_after_double_dash() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(passes_secret_as_argument(&args(&[
            "cc",
            "token",
            "--client-secret",
            "x"
        ])));
        assert!(passes_secret_as_argument(&args(&["cc", "token", "--client-secret=x"])));
        assert!(!passes_secret_as_argument(&args(&[
            "cc",
            "token",
            "--client-secret-env",
            "X"
        ])));
        assert!(!passes_secret_as_argument(&args(&["cc", "--", "--client-secret"])));
    }

    #[test]
    fn token_types_are_short_names_or_uris() {
        assert_eq!(parse_token_type("jwt").as_deref(), Ok(token_type::JWT));
        assert_eq!(parse_token_type("saml2").as_deref(), Ok(token_type::SAML2));
        assert_eq!(
            parse_token_type("access_token").as_deref(),
            Ok(token_type::ACCESS_TOKEN)
        );
        assert_eq!(
            parse_token_type("urn:example:token-type:custom").as_deref(),
            Ok("urn:example:token-type:custom")
        );
        let error = parse_token_type("JWT").unwrap_err();
        assert!(error.contains("id_token") && error.contains("URI"), "{error}");
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_timeout("1.5"), Ok(std::time::Duration::from_millis(1500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
