//! Provider quirks (the README's "Provider quirks" section), against both adapters.
client_credentials_suite::scenarios!(quirks:
    a_space_in_the_secret_is_sent_as_percent_20,
    basic_unencoded_sends_the_raw_pair,
    expires_in_as_a_string,
    lower_case_token_type,
    a_200_with_an_error_member_is_an_oauth_error,
    retry_after_as_an_http_date,
);
