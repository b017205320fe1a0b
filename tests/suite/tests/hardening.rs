//! Issue 13's adapter defects, against both adapters.
client_credentials_suite::scenarios!(hardening:
    a_hostile_content_length_is_not_preallocated,
    credentials_echoed_by_the_server_are_redacted,
);
