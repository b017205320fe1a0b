//! Proxy environment variables, against both adapters. A binary of its own:
//! the scenario sets process-wide environment variables.
client_credentials_suite::scenarios!(hardening:
    plain_http_to_loopback_bypasses_proxies,
);
