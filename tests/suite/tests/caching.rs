//! Caching and refresh, against both adapters.
client_credentials_suite::scenarios!(caching:
    cached_token_is_reused,
    authorization_header_is_bearer,
    refreshes_ahead_of_expiry,
    invalidate_fetches_a_new_token,
    refresh_forces_a_new_token,
    post_and_json_authentication,
    parameters_reach_the_server,
    refresh_token_grant_is_used,
);
