//! Benchmarks of the tokio adapter (written next).
fn main() {}
