//! The process clock: microseconds on a monotonic clock, cheap to compare and to keep in
//! atomics. Every deadline and "since when" that lives in an atomic is on it.

use std::sync::OnceLock;
use std::time::Instant;

/// Microseconds on a process-wide monotonic clock. Starts at 1 s so that 0 can mean "long ago".
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1_000_000
}

/// Wall-clock Unix seconds: for certificate dates, which are on it.
pub fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
