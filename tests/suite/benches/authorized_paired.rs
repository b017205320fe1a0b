//! The authorised HTTP clients' added cost, measured in pairs: each round
//! sends the baseline request and then the same request through the
//! authorised client, and the figure is the ratio of the medians. A busy
//! machine slows both alike, where criterion (`benches/authorized.rs`)
//! measures one function after the other. The requests are that bench's;
//! a few seconds in all.
//!
//! `cargo bench -p client-credentials-suite --bench authorized_paired`

mod loopback;

use std::time::{Duration, Instant};

use loopback::Requests;

const ROUNDS: usize = 20_000;
const WARM_UP: usize = 500;

/// Runs `ROUNDS` rounds of `baseline` then `measured`; prints the medians and their ratio.
fn paired(name: &str, baseline: impl Fn(), measured: impl Fn()) {
    let (mut base, mut with) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for round in 0..WARM_UP + ROUNDS {
        let started = Instant::now();
        baseline();
        let middle = Instant::now();
        measured();
        if round >= WARM_UP {
            base.push(middle - started);
            with.push(middle.elapsed());
        }
    }
    let median = |mut times: Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2].as_secs_f64() * 1e6
    };
    let (base, with) = (median(base), median(with));
    println!(
        "{name}: baseline {base:.2} µs, authorised {with:.2} µs, {:.3}×",
        with / base
    );
}

fn main() {
    let requests = Requests::start();
    paired(
        "blocking: ureq Agent vs AuthorizedAgent::run",
        || requests.ureq_by_hand(),
        || requests.authorized_agent(),
    );
    paired(
        "tokio: reqwest vs reqwest-middleware + AuthMiddleware",
        || requests.reqwest_by_hand(),
        || requests.auth_middleware(),
    );
    paired(
        "tokio: reqwest as a tower service vs AuthLayer around it",
        || requests.tower_by_hand(),
        || requests.auth_layer(),
    );
}
