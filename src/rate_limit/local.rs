//! The in-process rate-limit table: one TAT per client address, in bounded memory. A client
//! whose bucket has refilled is indistinguishable from one never seen, so such entries are
//! swept away; a flood of distinct addresses (spoofed through a PROXY header, or an IPv6 /64
//! walked address by address) can fill the table only up to `max_clients`. Past that, after a
//! sweep, an eighth of the table is forgotten at random: those clients get a fresh burst, which
//! is the least harmful error a bounded table can make.

use super::gcra::{self, Rate, Verdict};
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How often, at most, full buckets are swept while the table is under its bound.
const SWEEP_EVERY_US: u64 = 10_000_000;

/// The table.
#[derive(Debug)]
pub struct LocalLimiter {
    rate: Rate,
    max_clients: usize,
    tats: DashMap<IpAddr, u64>,
    last_sweep: AtomicU64,
    sweeping: Mutex<()>,
}

impl LocalLimiter {
    /// An empty table.
    pub fn new(rate: Rate, max_clients: usize) -> Self {
        Self {
            rate,
            max_clients,
            tats: DashMap::new(),
            last_sweep: AtomicU64::new(0),
            sweeping: Mutex::new(()),
        }
    }

    /// Decides a request from `client` at `now` (µs, monotonic).
    pub fn check(&self, client: IpAddr, now: u64) -> Verdict {
        if let Some(mut tat) = self.tats.get_mut(&client) {
            let verdict = gcra::decide(self.rate, *tat, now);
            if let Verdict::Allow(next) = verdict {
                *tat = next;
            }
            return verdict;
        }
        self.make_room(now);
        let verdict = gcra::decide(self.rate, 0, now);
        if let Verdict::Allow(next) = verdict {
            self.tats.insert(client, next);
        }
        verdict
    }

    /// Client addresses tracked now.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }

    /// Before a new entry: sweep full buckets now and then, and always at the bound; if the
    /// table is still at its bound, forget an eighth of it.
    fn make_room(&self, now: u64) {
        let full = self.tats.len() >= self.max_clients;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if !full && now.saturating_sub(last) < SWEEP_EVERY_US {
            return;
        }
        // One sweeper at a time; the others go on (the table may pass its bound by the
        // number of requests in flight meanwhile, never by more).
        let Ok(_sweeping) = self.sweeping.try_lock() else {
            return;
        };
        self.last_sweep.store(now, Ordering::Relaxed);
        self.tats.retain(|_, tat| !gcra::is_full(*tat, now));
        if self.tats.len() >= self.max_clients {
            let mut n = 0u32;
            self.tats.retain(|_, _| {
                n = n.wrapping_add(1);
                n % 8 != 0
            });
            let every = std::time::Duration::from_secs(10);
            if let Some(suppressed) = crate::log_limit::keyed("rate_limit_table", "", every) {
                tracing::warn!(
                    max_clients = self.max_clients,
                    suppressed,
                    "rate-limit table full of active clients: an eighth forgotten"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn each_client_has_its_own_budget() {
        let table = LocalLimiter::new(Rate::new(1.0, 2), 1000);
        let now = 1_000_000;
        assert!(matches!(table.check(ip(1), now), Verdict::Allow(_)));
        assert!(matches!(table.check(ip(1), now), Verdict::Allow(_)));
        assert!(matches!(table.check(ip(1), now), Verdict::Deny(_)));
        assert!(matches!(table.check(ip(2), now), Verdict::Allow(_)));
    }

    #[test]
    fn a_flood_of_addresses_stays_within_the_bound() {
        let table = LocalLimiter::new(Rate::new(1.0, 5), 1000);
        let now = 1_000_000;
        for n in 0..100_000 {
            table.check(ip(n), now + u64::from(n));
            assert!(table.len() <= 1000, "at {n}: {}", table.len());
        }
    }

    #[test]
    fn refilled_buckets_are_swept() {
        let table = LocalLimiter::new(Rate::new(100.0, 1), 1000);
        for n in 0..500 {
            table.check(ip(n), 1_000_000);
        }
        assert_eq!(table.len(), 500);
        // Long after every bucket refilled, the next newcomer sweeps them.
        table.check(ip(9999), 1_000_000 + SWEEP_EVERY_US + 1);
        assert_eq!(table.len(), 1);
    }
}
