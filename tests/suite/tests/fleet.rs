//! A fleet of processes sharing one Redis store, against both adapters.
client_credentials_suite::scenarios!(fleet:
    one_request_for_a_fleet_on_one_server,
    one_request_for_a_fleet_on_a_cluster,
    every_caller_gets_a_token_when_redis_dies_mid_run,
    others_recover_within_the_lock_ttl_when_the_lock_owner_dies,
    a_rejected_token_is_invalidated_fleet_wide,
    a_stale_rejection_never_deletes_a_newer_fleet_token,
    a_fleet_backs_off_a_resource_rejecting_every_token_as_one_client,
    a_client_without_a_secret_shares_only_with_an_encryption_key,
    a_corrupt_or_foreign_value_is_replaced,
    a_frozen_redis_delays_a_request_by_at_most_the_timeout,
);

/// The worker processes the scenarios start (this binary, run again with
/// `CC_FLEET_WORKER` set); a no-op in a normal test run.
#[test]
fn fleet_worker() {
    client_credentials_suite::fleet::worker_main();
}

/// BENCHMARKS.md's table: provider requests per token lifetime for 1, 8 and
/// 32 processes, with and without the store. Run with
/// `cargo test -p client-credentials-suite --test fleet -- --ignored --nocapture requests_per_token_lifetime`.
#[test]
#[ignore = "a measurement for BENCHMARKS.md (about 40 s)"]
fn requests_per_token_lifetime() {
    use client_credentials_suite::scenarios::fleet::requests_per_lifetime;
    use client_credentials_suite::{Blocking, Tokio};
    println!("| processes × 16 threads | adapter | store | cold start | refresh after expiry |");
    println!("| --- | --- | --- | --- | --- |");
    for processes in [1, 8, 32] {
        for with_store in [false, true] {
            let store = if with_store { "Redis" } else { "none" };
            let (cold, refresh) = requests_per_lifetime::<Blocking>(processes, with_store);
            println!("| {processes} | blocking | {store} | {cold} | {refresh} |");
            let (cold, refresh) = requests_per_lifetime::<Tokio>(processes, with_store);
            println!("| {processes} | tokio | {store} | {cold} | {refresh} |");
        }
    }
}
