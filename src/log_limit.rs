//! Warnings that repeat per request, rate-limited: the first is logged, the next ones within
//! the period are only counted, and the next one logged after it says how many were held back.
//! A backend failing under load would otherwise write a line per failed request (990 lines in
//! one run), burying everything else in the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One rate-limited warning's state: at most one line per period.
#[derive(Debug)]
pub struct Every {
    period_us: u64,
    /// µs (on [`crate::clock::now_us`]) before which the warning is held back.
    next_us: AtomicU64,
    suppressed: AtomicU64,
}

impl Every {
    /// At most one line per `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period_us: u64::try_from(period.as_micros()).unwrap_or(u64::MAX),
            next_us: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log at `now_us`; when yes, how many were held back since the last line.
    pub fn admit(&self, now_us: u64) -> Option<u64> {
        let next = self.next_us.load(Ordering::Relaxed);
        let due = now_us >= next
            && self
                .next_us
                .compare_exchange(
                    next,
                    now_us.saturating_add(self.period_us),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_count_of_those_held_back() {
        let every = Every::new(Duration::from_secs(10));
        assert_eq!(every.admit(1_000_000), Some(0));
        for t in 1..=5 {
            assert_eq!(every.admit(1_000_000 + t * 1_000_000), None);
        }
        assert_eq!(every.admit(11_000_000), Some(5));
        assert_eq!(every.admit(11_000_001), None);
        assert_eq!(every.admit(21_000_000), Some(1));
    }
}
