//! Token exchange (RFC 8693) and the JWT bearer grant (RFC 7523 §2.1)
//! against the test issuer, against both adapters.
client_credentials_suite::scenarios!(grants:
    a_token_exchange_reads_its_subject_file_and_again_when_rotated,
    a_missing_subject_file_is_an_error_naming_it,
    a_jwt_bearer_grant_sends_its_assertion,
    an_identity_chain_exchanges_at_one_issuer_and_presents_the_grant_at_another,
    an_issued_token_type_other_than_the_one_asked_for_is_refused,
    the_store_key_differs_per_subject,
);
