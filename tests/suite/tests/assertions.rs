//! Signed client assertions (RFC 7523) and workload identity files against
//! the verifying test issuer, against both adapters.
client_credentials_suite::scenarios!(assertions:
    private_key_jwt_negotiated_and_every_refresh_has_a_fresh_assertion,
    client_secret_jwt_is_accepted,
    an_assertion_file_is_read_and_reread_when_rotated,
    an_expired_or_missing_assertion_file_sends_nothing,
    authorised_requests_carry_a_dpop_proof_for_the_request,
    a_slow_external_signer_does_not_hold_up_cached_reads,
    a_slow_external_dpop_signer_does_not_hold_up_cached_reads,
);
