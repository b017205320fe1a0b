//! Interoperability with a real OpenID Connect provider (`oidc-provider`,
//! started on loopback; Node.js required), against both adapters.
client_credentials_suite::scenarios!(interop:
    discovery,
    basic_auth_with_reserved_characters,
    post_auth,
    resource_indicator_gives_a_jwt,
    refresh_after_expiry,
    wrong_secret_is_invalid_client,
    unknown_scope_is_invalid_scope,
    private_key_jwt,
    private_key_jwt_negotiated,
    client_secret_jwt,
    private_key_jwt_with_an_unregistered_key_is_invalid_client,
    dpop_bound_token_with_nonce,
    mtls_tls_client_auth_negotiated,
    mtls_self_signed,
    the_keys_of_a_client_discover_once,
);
