//! Overload actions under memory pressure (ATTACKS.md row 54, after Envoy's overload
//! manager): with `limits.max_memory` set, resident memory is sampled four times a second;
//! past 95% of it keep-alive is turned off (every connection closes after its response and
//! gives its buffers back), past 98% new requests are answered 503 with `Retry-After` until
//! memory falls back. Per-connection buffers are bounded anyway (hyper's read buffer by
//! `limits.max_header_bytes`, bodies streamed frame by frame); this guards the total.

use crate::snapshot::SharedSnapshot;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How hard the daemon is pushing back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Below 95% of the limit (or no limit).
    Normal = 0,
    /// Connections close after their current response.
    NoKeepAlive = 1,
    /// New requests are refused with 503.
    Refuse = 2,
}

/// The level for `rss` bytes resident against `limit` (0 = no limit). Pure.
pub fn level(rss: u64, limit: u64) -> Level {
    if limit == 0 {
        Level::Normal
    } else if rss.saturating_mul(100) >= limit.saturating_mul(98) {
        Level::Refuse
    } else if rss.saturating_mul(100) >= limit.saturating_mul(95) {
        Level::NoKeepAlive
    } else {
        Level::Normal
    }
}

/// The current level, shared by the monitor and every request.
#[derive(Debug, Default)]
pub struct Overload {
    level: AtomicU8,
}

impl Overload {
    /// The level now.
    pub fn level(&self) -> Level {
        match self.level.load(Ordering::Relaxed) {
            0 => Level::Normal,
            1 => Level::NoKeepAlive,
            _ => Level::Refuse,
        }
    }

    fn set(&self, level: Level) -> Level {
        let old = self.level.swap(level as u8, Ordering::Relaxed);
        match old {
            0 => Level::Normal,
            1 => Level::NoKeepAlive,
            _ => Level::Refuse,
        }
    }

    /// Samples memory until `stop`, against the limit of the live config.
    pub async fn run(
        &self,
        snapshot: SharedSnapshot,
        gauge: prometheus::IntGauge,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let limit = snapshot.load().config().limits.max_memory;
            let now = level(resident_bytes().unwrap_or(0), limit);
            let before = self.set(now);
            if now != before {
                tracing::warn!(?now, ?before, limit, "memory overload level changed");
            }
            gauge.set(now as i64);
        }
    }
}

/// Resident memory of this process (Linux `/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_at_95_and_98_percent() {
        assert_eq!(level(10_000, 0), Level::Normal, "no limit");
        assert_eq!(level(94, 100), Level::Normal);
        assert_eq!(level(95, 100), Level::NoKeepAlive);
        assert_eq!(level(97, 100), Level::NoKeepAlive);
        assert_eq!(level(98, 100), Level::Refuse);
        assert_eq!(level(u64::MAX, u64::MAX), Level::Refuse);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_bytes().unwrap() > 0);
    }
}
