//! A retry budget per pool, so retries cannot multiply an outage: each request earns the pool
//! `ratio` of a retry, a small floor accrues with time for quiet pools, and a retry spends one.
//! Token arithmetic in thousandths, in one atomic.

use std::sync::atomic::{AtomicU64, Ordering};

/// Retries the floor allows per second even with no traffic.
const FLOOR_PER_SECOND: u64 = 10;
/// Saved-up retries are capped (10 s of floor), so a long quiet spell cannot fund a storm.
const CAP: u64 = FLOOR_PER_SECOND * 10 * 1000;

/// The shared budget.
#[derive(Debug)]
pub struct RetryBudget {
    ratio_milli: u64,
    tokens_milli: AtomicU64,
    last_refill_us: AtomicU64,
}

impl RetryBudget {
    /// Retries may add at most `ratio` (0..=1) of the request rate, plus the floor.
    pub fn new(ratio: f64, now_us: u64) -> Self {
        Self {
            ratio_milli: (ratio.clamp(0.0, 1.0) * 1000.0) as u64,
            tokens_milli: AtomicU64::new(CAP),
            last_refill_us: AtomicU64::new(now_us),
        }
    }

    /// A request was sent: it earns `ratio` of a retry.
    pub fn on_request(&self) {
        self.deposit(self.ratio_milli);
    }

    /// Takes one retry from the budget if there is one.
    pub fn try_retry(&self, now_us: u64) -> bool {
        self.refill(now_us);
        self.tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1000))
            .is_ok()
    }

    fn refill(&self, now_us: u64) {
        let last = self.last_refill_us.load(Ordering::Acquire);
        let elapsed = now_us.saturating_sub(last);
        // Whole milliseconds only, claimed by one caller at a time.
        if elapsed >= 1000
            && self
                .last_refill_us
                .compare_exchange(last, now_us, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.deposit(elapsed * FLOOR_PER_SECOND / 1000);
        }
    }

    fn deposit(&self, milli: u64) {
        let _ = self
            .tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t + milli).min(CAP))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_by_the_ratio_of_requests() {
        let b = RetryBudget::new(0.2, 0);
        // Spend the initial allowance.
        while b.try_retry(0) {}
        for _ in 0..100 {
            b.on_request();
        }
        let allowed = (0..100).filter(|_| b.try_retry(0)).count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn a_floor_accrues_with_time() {
        let b = RetryBudget::new(0.0, 0);
        while b.try_retry(0) {}
        assert!(!b.try_retry(50_000));
        let second = 1_000_000;
        let allowed = (0..100).filter(|_| b.try_retry(second)).count();
        assert_eq!(allowed, FLOOR_PER_SECOND as usize);
    }
}
