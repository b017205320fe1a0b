//! Hardening against hostile servers, proxies and token files, against both adapters.
client_credentials_suite::scenarios!(hardening:
    a_hostile_content_length_is_not_preallocated,
    credentials_echoed_by_the_server_are_redacted,
    a_token_file_for_another_configuration_is_not_served,
    an_untrusted_token_file_is_refused_and_a_token_fetched,
);
