//! Many tokens from one client (`token_for`, `with_params`, `max_keys`), against both adapters.
client_credentials_suite::scenarios!(keys:
    a_thousand_cold_keys_with_sixteen_callers_each_make_a_thousand_requests,
    one_keys_provider_error_leaves_the_other_keys_alone,
    beyond_max_keys_the_least_recently_used_idle_key_is_dropped,
    a_bound_handle_serves_its_keys_token,
    refused_params_are_a_config_error_and_send_nothing,
    a_key_at_rest_keeps_its_refresh_token_and_discovered_endpoint,
    the_keys_of_a_discovering_client_discover_once,
    the_keys_of_a_resource_server_client_read_its_metadata_once,
    a_new_key_keeps_the_clients_pinned_authorization_server,
    cold_keys_asked_for_at_once_discover_once,
    a_failed_first_discovery_leaves_cold_keys_to_read_for_themselves,
    keys_refreshing_at_once_past_the_ttl_rediscover_once,
);
