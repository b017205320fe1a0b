//! Discovery from the resource (RFC 9728), against both adapters.
client_credentials_suite::scenarios!(resource_server:
    the_resource_names_the_issuer_and_tokens_are_for_the_resource,
    metadata_for_another_resource_is_rejected,
    a_challenge_pointing_at_another_origin_sends_nothing_there,
    a_document_naming_an_authorization_server_not_allowed_is_refused,
    an_allowed_second_authorization_server_is_used,
);
