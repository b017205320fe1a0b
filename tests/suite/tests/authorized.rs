//! Authorised HTTP clients (ureq middleware and agent; reqwest middleware and
//! tower layer), against both adapters.
client_credentials_suite::scenarios!(authorized:
    a_wave_of_rejections_causes_one_refresh_and_one_retry_each,
    no_retry_after_a_second_401,
    streamed_bodies_are_not_retried,
    the_token_never_reaches_another_origin,
    the_default_origins_are_the_configs_resources,
    dpop_proofs_are_accepted_and_a_nonce_is_answered_once,
    a_client_that_allows_no_origin_fails_every_request,
    an_allow_origin_that_is_not_an_origin_fails_every_request,
    each_origin_with_params_for_gets_its_own_keys_token,
    a_401_from_one_origin_evicts_only_its_keys_token,
    params_for_an_origin_not_allowed_or_with_refused_params_fails_and_sends_nothing,
);
