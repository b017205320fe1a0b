//! Concurrent callers share one request, against both adapters.
client_credentials_suite::scenarios!(single_flight: sixty_four_threads_one_request, sixty_four_threads_one_error);
