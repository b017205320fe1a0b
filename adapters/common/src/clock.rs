use client_credentials::Timestamp;

/// The wall clock, precise: used wherever the core decides.
pub fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

/// The wall clock at tick granularity (a few milliseconds), for the cached-read
/// fast path: expiry decisions are made in seconds, and on Linux this read
/// (`CLOCK_REALTIME_COARSE`, through the vDSO) costs a fraction of a precise one.
/// Elsewhere it is the precise clock.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn coarse_now() -> Timestamp {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let millis = (t.tv_sec.max(0) as u64).saturating_mul(1000) + (t.tv_nsec.max(0) as u64) / 1_000_000;
    Timestamp::from_unix_millis(millis)
}

/// The wall clock (precise on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn coarse_now() -> Timestamp {
    now()
}

#[cfg(test)]
mod tests {
    #[test]
    fn coarse_and_precise_agree_within_a_tick() {
        let a = super::coarse_now().as_unix_millis();
        let b = super::now().as_unix_millis();
        assert!(b + 50 >= a && a + 50 >= b, "{a} {b}");
    }
}
