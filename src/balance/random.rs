//! Weighted random.

use super::Candidates;

/// Weighted random: each eligible member with probability proportional to its effective weight.
pub fn random(c: &impl Candidates, rng: &mut fastrand::Rng) -> Option<usize> {
    weighted_draw(c, rng, usize::MAX)
}

pub(super) fn weighted_draw(
    c: &impl Candidates,
    rng: &mut fastrand::Rng,
    except: usize,
) -> Option<usize> {
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
