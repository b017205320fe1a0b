//! Scripted server faults, against both adapters.
client_credentials_suite::scenarios!(faults:
    retry_after_is_honoured,
    server_errors_and_broken_connections_are_retried,
    retries_give_up_after_the_configured_attempts,
    oauth_errors_are_final,
    a_silent_server_times_out,
    oversized_bodies_are_refused,
    redirects_are_not_followed,
    a_bad_refresh_keeps_the_usable_token,
    a_slow_body_within_the_timeout_is_fine,
);
