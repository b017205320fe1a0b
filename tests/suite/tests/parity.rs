//! Behaviours both adapters must share exactly, against both adapters.
client_credentials_suite::scenarios!(parity:
    refresh_after_a_failed_round_returns_its_error,
    refresh_during_and_after_a_cool_down,
    invalidate_deletes_the_stored_token,
    a_slow_provider_is_asked_once_per_flight,
    a_provider_never_downgrades_the_cache,
    signout_racing_a_save,
    a_huge_retry_after_is_capped,
    a_dead_provider_for_a_simulated_minute,
    sign_outs_do_not_lift_the_back_off,
    callers_are_not_held_through_escalated_retries,
    a_refused_connection_reads_the_same,
);
