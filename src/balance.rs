//! Balancing algorithms, as pure functions over weights and an eligibility predicate: no
//! sockets, no clocks, no allocation on the pick path. The pool calls them with "is this
//! backend selectable" and gets back an index.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Smooth weighted round robin (the nginx algorithm), precomputed: the interleaved order for
/// the current weights is built once per membership snapshot, and a pick is one atomic
/// increment. Weights 5,1,1 give `a a b a c a a`, not `a a a a a b c`.
#[derive(Debug)]
pub struct RoundRobin {
    sequence: Box<[u32]>,
    cursor: AtomicUsize,
}

/// Sequences longer than this are scaled down (weights keep their proportions to within
/// rounding), so a pool with large weights does not cost megabytes.
const MAX_SEQUENCE: u64 = 4096;

impl RoundRobin {
    /// The order for these weights; zero weights never appear.
    pub fn new(weights: &[u32]) -> Self {
        Self {
            sequence: smooth_weighted_sequence(&scaled(weights)).into_boxed_slice(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next eligible index in the order, skipping ineligible ones (their turn passes to the
    /// next in line); `None` when nothing is eligible.
    pub fn pick(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.sequence.len();
        if len == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|step| self.sequence[(start.wrapping_add(step)) % len] as usize)
            .find(|&index| eligible(index))
    }
}

fn scaled(weights: &[u32]) -> Vec<u32> {
    let gcd = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    let reduced: Vec<u32> = weights
        .iter()
        .map(|&w| w.checked_div(gcd).unwrap_or(0))
        .collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total <= MAX_SEQUENCE {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| match w {
            0 => 0,
            // Every positive weight keeps at least one slot.
            w => ((u64::from(w) * MAX_SEQUENCE / total).max(1)) as u32,
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One full cycle of smooth weighted round robin: each index appears `weight` times.
pub fn smooth_weighted_sequence(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let best = (0..weights.len())
            .filter(|&i| weights[i] > 0)
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .expect("total > 0 implies a positive weight");
        current[best] -= total;
        sequence.push(best as u32);
    }
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(
        rr: &RoundRobin,
        n: usize,
        picks: usize,
        eligible: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut counts = vec![0; n];
        for _ in 0..picks {
            if let Some(i) = rr.pick(&eligible) {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn sequence_is_smooth() {
        assert_eq!(
            smooth_weighted_sequence(&[5, 1, 1]),
            vec![0, 0, 1, 0, 2, 0, 0]
        );
        assert_eq!(smooth_weighted_sequence(&[1, 1, 1]), vec![0, 1, 2]);
        assert_eq!(smooth_weighted_sequence(&[0, 2]), vec![1, 1]);
        assert!(smooth_weighted_sequence(&[]).is_empty());
    }

    #[test]
    fn weights_are_respected_exactly_over_whole_cycles() {
        let rr = RoundRobin::new(&[3, 2, 1]);
        assert_eq!(counts(&rr, 3, 600, |_| true), vec![300, 200, 100]);
    }

    #[test]
    fn ineligible_backends_are_never_picked() {
        let rr = RoundRobin::new(&[1, 1, 1, 1]);
        let c = counts(&rr, 4, 400, |i| i != 2);
        assert_eq!(c[2], 0);
        assert_eq!(c.iter().sum::<usize>(), 400);
        assert!(c.iter().enumerate().all(|(i, &n)| i == 2 || n >= 100));
        assert_eq!(rr.pick(|_| false), None);
        assert_eq!(RoundRobin::new(&[]).pick(|_| true), None);
    }

    #[test]
    fn huge_weights_are_scaled_not_allocated() {
        let rr = RoundRobin::new(&[1_000_000, 3_000_000, 1]);
        assert!(rr.sequence.len() as u64 <= MAX_SEQUENCE + 3);
        let c = counts(&rr, 3, rr.sequence.len() * 10, |_| true);
        assert!(c[2] >= 1, "every positive weight keeps a slot");
        let ratio = c[1] as f64 / c[0] as f64;
        assert!((2.9..3.1).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn property_weights_respected_for_many_random_pools() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let n = rng.usize(1..8);
            let weights: Vec<u32> = (0..n).map(|_| rng.u32(1..20)).collect();
            let rr = RoundRobin::new(&weights);
            let total: u32 = weights.iter().sum();
            let cycles = 5;
            let c = counts(&rr, n, (total * cycles) as usize, |_| true);
            for (i, &w) in weights.iter().enumerate() {
                assert_eq!(c[i], (w * cycles) as usize, "weights {weights:?}");
            }
        }
    }
}
