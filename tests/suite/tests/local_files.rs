//! A local user's FIFOs, symlinks and huge files at the client's file paths,
//! and the query of request URIs in logs, against both adapters.
client_credentials_suite::scenarios!(local_files:
    a_fifo_at_the_assertion_path_is_a_prompt_typed_error,
    an_unreadable_kind_of_token_file_is_refused_and_a_token_fetched,
    request_uris_are_logged_without_their_query,
);
