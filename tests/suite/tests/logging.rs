//! What the clients log, against both adapters.
client_credentials_suite::scenarios!(logging:
    log_lines_carry_the_adapters_target,
);
