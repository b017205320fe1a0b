//! What a client reports and how a caller bounds a call, against both adapters.
client_credentials_suite::scenarios!(observability:
    on_refresh_failed_is_called_once_per_failed_round,
    a_round_failed_by_a_rejected_token_is_reported,
    a_call_deadline_passes_while_the_shared_refresh_carries_on,
    a_lone_caller_past_its_deadline_leaves_the_request_running,
    each_request_is_a_span_under_the_callers_span,
    a_shared_request_is_a_child_of_the_first_callers_span,
    requests_rounds_and_the_token_are_measured,
    fleet_turns_and_store_failures_are_counted,
);
