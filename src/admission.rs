//! Connection admission over all traffic listeners together: up to `baseline` connections
//! are admitted freely, up to `burst` in a burst tier, none past that. A [`Permit`] is taken
//! before `accept`, so the daemon never holds more client sockets than its ceiling, and is
//! released when the connection closes. The accounting is lock-free and pure; the async
//! [`Admission::acquire`] only adds waiting for a free slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The tier a connection was admitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Within the baseline.
    Baseline,
    /// Above the baseline: served, but not kept alive, so the load drains back by itself.
    Burst,
}

/// The shared admission state.
#[derive(Debug)]
pub struct Admission {
    baseline: AtomicUsize,
    burst: AtomicUsize,
    /// Slots taken: open connections plus the permits accept loops hold while they wait.
    held: AtomicUsize,
    /// Slots holding an accepted connection.
    open: AtomicUsize,
    in_burst: AtomicUsize,
    freed: Notify,
    resized: Notify,
}

/// A held connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    tier: Tier,
    accepted: bool,
}

impl Permit {
    /// The tier this connection was admitted in (settled once it is accepted).
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Marks the slot as holding an accepted connection (until now it was only reserved), and
    /// settles its tier by the connections open, not the slots held: every listener's accept
    /// loop holds a slot ahead of its next connection, and with two listeners that spare slot
    /// would otherwise push the 10,000th connection into burst.
    pub fn accepted(&mut self) {
        if !self.accepted {
            self.accepted = true;
            let open = self.admission.open.fetch_add(1, Ordering::AcqRel) + 1;
            self.tier = if open > self.admission.baseline.load(Ordering::Acquire) {
                Tier::Burst
            } else {
                Tier::Baseline
            };
            if self.tier == Tier::Burst {
                self.admission.in_burst.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.accepted {
            self.admission.open.fetch_sub(1, Ordering::AcqRel);
            if self.tier == Tier::Burst {
                self.admission.in_burst.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.admission.held.fetch_sub(1, Ordering::AcqRel);
        self.admission.freed.notify_waiters();
    }
}

impl Admission {
    /// Limits `baseline <= burst` (validated by the config).
    pub fn new(baseline: usize, burst: usize) -> Arc<Self> {
        Arc::new(Self {
            baseline: AtomicUsize::new(baseline),
            burst: AtomicUsize::new(burst.max(baseline)),
            held: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            in_burst: AtomicUsize::new(0),
            freed: Notify::new(),
            resized: Notify::new(),
        })
    }

    /// Takes a slot if one is free. The slot counts as open once [`Permit::accepted`] is called.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut held = self.held.load(Ordering::Acquire);
        loop {
            if held >= self.burst.load(Ordering::Acquire) {
                return None;
            }
            match self.held.compare_exchange_weak(
                held,
                held + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => held = actual,
            }
        }
        // Provisional, until `Permit::accepted` settles it by the connections then open.
        let tier = if held + 1 > self.baseline.load(Ordering::Acquire) {
            Tier::Burst
        } else {
            Tier::Baseline
        };
        Some(Permit {
            admission: Arc::clone(self),
            tier,
            accepted: false,
        })
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register before trying, so a release between the try and the wait is not missed.
            freed.as_mut().enable();
            if let Some(permit) = self.try_acquire() {
                return permit;
            }
            freed.await;
        }
    }

    /// Changes the limits live; open connections are kept even above a lowered ceiling.
    pub fn resize(&self, baseline: usize, burst: usize) {
        self.baseline.store(baseline, Ordering::Release);
        self.burst.store(burst.max(baseline), Ordering::Release);
        self.freed.notify_waiters();
        self.resized.notify_waiters();
    }

    /// Resolves at the next [`resize`](Self::resize): a slot reserved before it may no
    /// longer be within the limits.
    pub async fn resized(&self) {
        self.resized.notified().await;
    }

    /// Open (accepted) connections.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Whether more connections are open than the baseline admits freely.
    pub fn over_baseline(&self) -> bool {
        self.open() > self.baseline.load(Ordering::Acquire)
    }

    /// Open connections admitted in the burst tier.
    pub fn in_burst(&self) -> usize {
        self.in_burst.load(Ordering::Acquire)
    }

    /// The baseline limit.
    pub fn baseline(&self) -> usize {
        self.baseline.load(Ordering::Acquire)
    }

    /// The ceiling.
    pub fn burst(&self) -> usize {
        self.burst.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(a: &Arc<Admission>) -> Permit {
        let mut p = a.try_acquire().unwrap();
        p.accepted();
        p
    }

    #[test]
    fn a_reserved_slot_is_not_an_open_connection() {
        let a = Admission::new(1, 2);
        let mut p = a.try_acquire().unwrap();
        assert_eq!(a.open(), 0);
        p.accepted();
        assert_eq!(a.open(), 1);
        drop(p);
        assert_eq!(a.open(), 0);
        assert!(a.try_acquire().is_some());
    }

    #[test]
    fn slots_reserved_ahead_do_not_count_toward_the_tier() {
        let a = Admission::new(2, 4);
        let _other_listener = a.try_acquire().unwrap();
        let (first, second) = (accepted(&a), accepted(&a));
        assert_eq!(
            (first.tier(), second.tier()),
            (Tier::Baseline, Tier::Baseline)
        );
        let third = accepted(&a);
        assert_eq!((third.tier(), a.in_burst()), (Tier::Burst, 1));
    }

    #[test]
    fn tiers_and_ceiling_at_full_size() {
        let a = Admission::new(10_000, 40_000);
        let permits: Vec<Permit> = (0..40_000).map(|_| accepted(&a)).collect();
        assert!(a.try_acquire().is_none());
        assert_eq!(
            permits
                .iter()
                .filter(|p| p.tier() == Tier::Baseline)
                .count(),
            10_000
        );
        assert_eq!(a.in_burst(), 30_000);
        drop(permits);
        assert_eq!((a.open(), a.in_burst()), (0, 0));
    }

    #[test]
    fn concurrent_acquire_and_release_never_exceed_the_ceiling() {
        let a = Admission::new(10_000, 40_000);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let a = Arc::clone(&a);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000 {
                        if let Some(mut p) = a.try_acquire() {
                            p.accepted();
                            held.push(p);
                        }
                        assert!(a.open() <= 40_000);
                        if i % 3 == 0 {
                            held.pop();
                        }
                    }
                    assert!(held.len() <= 40_000);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Every permit was dropped with its thread: the accounting is back to zero.
        assert_eq!((a.open(), a.in_burst()), (0, 0));
        assert_eq!(a.held.load(Ordering::Acquire), 0);
    }

    #[test]
    fn resize_changes_limits_without_dropping_anyone() {
        let a = Admission::new(2, 4);
        let held: Vec<Permit> = (0..4).map(|_| accepted(&a)).collect();
        a.resize(1, 2);
        assert!(a.try_acquire().is_none());
        assert_eq!(a.open(), 4);
        a.resize(10, 40);
        assert_eq!(a.try_acquire().unwrap().tier(), Tier::Baseline);
        drop(held);
    }

    #[tokio::test]
    async fn acquire_waits_for_a_release() {
        let a = Admission::new(1, 1);
        let first = a.try_acquire().unwrap();
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.acquire().await.tier() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(waiter.await.unwrap(), Tier::Baseline);
    }
}
