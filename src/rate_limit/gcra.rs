//! The rate-limit arithmetic, GCRA (the generic cell rate algorithm): a token bucket kept as
//! one number per client, the "theoretical arrival time" (TAT) of its next request. Pure, so
//! the local table and the Redis script make the same decisions, and tests need no clock.

/// A bucket's shape: one request per `interval_us`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds per request at the sustained rate.
    pub interval_us: u64,
    /// Requests allowed back to back after a quiet spell.
    pub burst: u32,
}

impl Rate {
    /// `requests_per_second` sustained, `burst` at once.
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        Self {
            interval_us: ((1_000_000.0 / requests_per_second).round() as u64).max(1),
            burst: burst.max(1),
        }
    }

    /// How far ahead of now a client's TAT may run: the whole burst.
    fn tolerance_us(self) -> u64 {
        self.interval_us.saturating_mul(u64::from(self.burst))
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; the client's new TAT.
    Allow(u64),
    /// Refused; microseconds until a request would be allowed.
    Deny(u64),
}

/// Decides a request arriving at `now` for a client whose TAT is `tat` (0 = never seen).
pub fn decide(rate: Rate, tat: u64, now: u64) -> Verdict {
    let next = tat.max(now).saturating_add(rate.interval_us);
    let ahead = next - now;
    if ahead > rate.tolerance_us() {
        Verdict::Deny(ahead - rate.tolerance_us())
    } else {
        Verdict::Allow(next)
    }
}

/// Whether a client's bucket has refilled completely by `now`: its entry can be forgotten
/// without changing any later decision.
pub fn is_full(tat: u64, now: u64) -> bool {
    tat <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let rate = Rate::new(10.0, 5);
        let mut tat = 0;
        let now = 1_000_000;
        for i in 0..5 {
            match decide(rate, tat, now) {
                Verdict::Allow(t) => tat = t,
                Verdict::Deny(_) => panic!("request {i} of the burst refused"),
            }
        }
        let Verdict::Deny(wait) = decide(rate, tat, now) else {
            panic!("the sixth at once must wait");
        };
        assert_eq!(wait, 100_000, "one interval at 10/s");
        assert!(matches!(decide(rate, tat, now + wait), Verdict::Allow(_)));
    }

    #[test]
    fn a_quiet_client_is_full_again_and_forgettable() {
        let rate = Rate::new(100.0, 2);
        let Verdict::Allow(tat) = decide(rate, 0, 5_000_000) else {
            panic!()
        };
        assert!(!is_full(tat, 5_000_000));
        assert!(is_full(tat, tat));
        // Forgetting it (TAT 0) decides exactly as keeping it would, once full.
        assert_eq!(decide(rate, tat, tat + 1), decide(rate, 0, tat + 1));
    }

    #[test]
    fn refusals_do_not_cost_tokens() {
        let rate = Rate::new(1.0, 1);
        let Verdict::Allow(tat) = decide(rate, 0, 1_000_000) else {
            panic!()
        };
        for _ in 0..100 {
            assert!(matches!(decide(rate, tat, 1_500_000), Verdict::Deny(_)));
        }
        assert!(matches!(decide(rate, tat, 2_000_000), Verdict::Allow(_)));
    }
}
