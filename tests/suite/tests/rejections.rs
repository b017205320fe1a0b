//! A resource that rejects tokens, against both adapters.
client_credentials_suite::scenarios!(rejections:
    a_resource_rejecting_every_token_is_backed_off,
    a_token_never_rejected_keeps_being_served,
    four_calls_to_a_nonce_demanding_resource_take_five_requests,
    with_dpop_a_bearer_token_is_refused_and_not_stored,
);
