//! Discovery chained into token fetching, against both adapters.
client_credentials_suite::scenarios!(discovery:
    openid_discovery_then_tokens,
    rfc8414_fallback_with_an_issuer_path,
    issuer_mismatch_sends_no_token_request,
    discover_function,
);
