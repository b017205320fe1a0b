//! Stores, the update callback and sign-out, against both adapters.
client_credentials_suite::scenarios!(stores:
    file_store_is_shared_between_runs,
    file_store_keeps_configs_differing_in_a_param_apart,
    signout_leaves_another_configs_stored_token,
    update_callback_fires_once_per_token,
    signout_revokes_and_clears,
    token_provider_first_then_fetching,
);
