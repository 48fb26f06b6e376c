//! Least requests, by the power of two choices.

use super::Candidates;
use super::random::weighted_draw;

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
