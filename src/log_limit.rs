//! Warnings that repeat per request, rate-limited: the first is logged, the next ones within
//! the period are only counted, and the next one logged after it says how many were held back.
//! A backend failing under load would otherwise write a line per failed request (990 lines in
//! one run), burying everything else in the log. Every line held back is counted by target,
//! for `portero_log_suppressed_total{target}`.
//!
//! A warning about something that owns state (a backend) keeps its [`Every`] there; one about
//! something that does not (the rate-limit store, a listener's accept loop, a feed) goes
//! through [`keyed`], one [`Every`] per target and key.

use dashmap::DashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Keys [`keyed`] remembers; past it, new keys share one (so no client-chosen key can grow
/// the table without bound).
const MAX_KEYS: usize = 1024;

/// Lines held back, by target, since the process started.
static SUPPRESSED: LazyLock<DashMap<&'static str, AtomicU64>> = LazyLock::new(DashMap::new);

/// The [`Every`]s of [`keyed`], by target and a hash of the key (no allocation per warning).
static KEYED: LazyLock<DashMap<(&'static str, u64), Every>> = LazyLock::new(DashMap::new);

/// Lines held back so far, by target.
pub fn suppressed() -> Vec<(&'static str, u64)> {
    SUPPRESSED
        .iter()
        .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
        .collect()
}

/// Whether to log a `target` warning about `key` now (at most one per `period` per key); when
/// yes, how many were held back since the last line.
pub fn keyed(target: &'static str, key: &str, period: Duration) -> Option<u64> {
    let now = crate::clock::now_us();
    let hash = |key: &str| {
        let mut hasher = fnv::FnvHasher::default();
        std::hash::Hash::hash(key, &mut hasher);
        std::hash::Hasher::finish(&hasher)
    };
    if let Some(every) = KEYED.get(&(target, hash(key))) {
        return every.admit(now);
    }
    let key = if KEYED.len() < MAX_KEYS { key } else { "" };
    KEYED
        .entry((target, hash(key)))
        .or_insert_with(|| Every::new(target, period))
        .admit(now)
}

/// One rate-limited warning's state: at most one line per period.
#[derive(Debug)]
pub struct Every {
    /// What the warning is about, for the suppression count.
    target: &'static str,
    period_us: u64,
    /// µs (on [`crate::clock::now_us`]) before which the warning is held back.
    next_us: AtomicU64,
    suppressed: AtomicU64,
}

impl Every {
    /// At most one line per `period`; lines held back are counted under `target`.
    pub fn new(target: &'static str, period: Duration) -> Self {
        Self {
            target,
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
            SUPPRESSED
                .entry(self.target)
                .or_default()
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_count_of_those_held_back() {
        let every = Every::new("test_every", Duration::from_secs(10));
        assert_eq!(every.admit(1_000_000), Some(0));
        for t in 1..=5 {
            assert_eq!(every.admit(1_000_000 + t * 1_000_000), None);
        }
        assert_eq!(every.admit(11_000_000), Some(5));
        assert_eq!(every.admit(11_000_001), None);
        assert_eq!(every.admit(21_000_000), Some(1));
        let counted = suppressed().into_iter().find(|(t, _)| *t == "test_every");
        assert_eq!(counted, Some(("test_every", 6)));
    }

    #[test]
    fn keyed_warnings_are_limited_per_key() {
        let period = Duration::from_secs(3600);
        assert_eq!(keyed("test_keyed", "a", period), Some(0));
        assert_eq!(keyed("test_keyed", "a", period), None);
        assert_eq!(
            keyed("test_keyed", "b", period),
            Some(0),
            "another key logs at once"
        );
        assert_eq!(keyed("test_keyed", "a", period), None);
        let counted = suppressed().into_iter().find(|(t, _)| *t == "test_keyed");
        assert_eq!(counted, Some(("test_keyed", 2)));
    }
}
