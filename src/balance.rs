//! Balancing algorithms, as pure functions over a [`Candidates`] view: no sockets, no clocks,
//! no allocation on the pick path. The pool describes its members (which are eligible, their
//! effective weights, their slow-start ramp, their in-flight requests) and gets back an index.

mod maglev;

pub use maglev::Maglev;

/// A stable 64-bit hash of a consistent-hashing key (the same on every portero).
pub fn key_hash(bytes: &[u8]) -> u64 {
    maglev::hash(b"key", bytes)
}

use std::sync::atomic::{AtomicUsize, Ordering};

/// What an algorithm may know about the members of a pool, by index.
pub trait Candidates {
    /// How many members there are.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether member `i` may be picked.
    fn eligible(&self, i: usize) -> bool;
    /// Its configured weight.
    fn weight(&self, i: usize) -> u32;
    /// Its slow-start share, in (0, 1]: 1 once ramped up.
    fn ramp(&self, i: usize) -> f64;
    /// Requests in flight to it.
    fn in_flight(&self, i: usize) -> u64;

    /// Weight times ramp: what weighted algorithms draw by.
    fn effective_weight(&self, i: usize) -> f64 {
        f64::from(self.weight(i)) * self.ramp(i)
    }
}

/// Keeps `index` with probability `ramp` (slow start for algorithms that walk an order).
fn accepts(ramp: f64, rng: &mut fastrand::Rng) -> bool {
    ramp >= 1.0 || rng.f64() < ramp
}

/// Walks `order` (indexes) and returns the first eligible member its ramp accepts; when the
/// ramp turns every eligible one down, the first eligible one.
fn first_accepted(
    order: impl Iterator<Item = usize>,
    c: &impl Candidates,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    let mut fallback = None;
    for index in order {
        if !c.eligible(index) {
            continue;
        }
        if accepts(c.ramp(index), rng) {
            return Some(index);
        }
        fallback.get_or_insert(index);
    }
    fallback
}

/// Weighted random: each eligible member with probability proportional to its effective weight.
pub fn random(c: &impl Candidates, rng: &mut fastrand::Rng) -> Option<usize> {
    weighted_draw(c, rng, usize::MAX)
}

fn weighted_draw(c: &impl Candidates, rng: &mut fastrand::Rng, except: usize) -> Option<usize> {
    let total: f64 = (0..c.len())
        .filter(|&i| i != except && c.eligible(i))
        .map(|i| c.effective_weight(i))
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut point = rng.f64() * total;
    let mut last = None;
    for i in (0..c.len()).filter(|&i| i != except && c.eligible(i)) {
        point -= c.effective_weight(i);
        last = Some(i);
        if point < 0.0 {
            break;
        }
    }
    last
}

/// Least requests by the power of two choices: draw two members by effective weight and keep
/// the one with fewer requests in flight per unit of weight. Near-optimal spreading at O(n)
/// with no shared state, and it never herds every request onto one momentarily idle member.
pub fn least_requests(c: &impl Candidates, rng: &mut fastrand::Rng) -> Option<usize> {
    let first = weighted_draw(c, rng, usize::MAX)?;
    let Some(second) = weighted_draw(c, rng, first) else {
        return Some(first);
    };
    let load =
        |i: usize| (c.in_flight(i) as f64 + 1.0) / c.effective_weight(i).max(f64::MIN_POSITIVE);
    Some(if load(second) < load(first) {
        second
    } else {
        first
    })
}

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

#[cfg(test)]
pub(crate) mod view;

#[cfg(test)]
mod tests;
