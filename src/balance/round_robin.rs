//! Smooth weighted round robin, precomputed per membership snapshot.

use super::{Candidates, first_accepted};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Smooth weighted round robin (the nginx algorithm), precomputed: the interleaved order for
/// the current weights is built once per membership snapshot, and a pick is one atomic
/// increment. Weights 5,1,1 give `a a b a c a a`, not `a a a a a b c`.
#[derive(Debug)]
pub struct RoundRobin {
    pub(super) sequence: Box<[u32]>,
    cursor: AtomicUsize,
}

/// Sequences longer than this are scaled down (weights keep their proportions to within
/// rounding), so a pool with large weights does not cost megabytes.
pub(super) const MAX_SEQUENCE: u64 = 4096;

impl RoundRobin {
    /// The order for these weights; zero weights never appear.
    pub fn new(weights: &[u32]) -> Self {
        Self {
            sequence: smooth_weighted_sequence(&scaled(weights)).into_boxed_slice(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next eligible member in the order, skipping ineligible ones (their turn passes to
    /// the next in line) and, in slow start, ones their ramp turns down; `None` when nothing
    /// is eligible.
    pub fn pick(&self, c: &impl Candidates, rng: &mut fastrand::Rng) -> Option<usize> {
        let len = self.sequence.len();
        if len == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let order = (0..len).map(|step| self.sequence[start.wrapping_add(step) % len] as usize);
        first_accepted(order, c, rng)
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
