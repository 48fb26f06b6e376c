//! Least connections, exact: every eligible member is looked at and the one with the fewest
//! requests in flight per unit of effective weight wins (nginx's `least_conn`, HAProxy's
//! `leastconn`). Ties go round robin, so an idle pool is spread evenly rather than sent to
//! its first member. O(n) per pick; for large pools `least_requests` samples two instead.

use super::Candidates;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the scan starts, moved on every pick so that ties rotate.
#[derive(Debug, Default)]
pub struct LeastConn {
    cursor: AtomicUsize,
}

impl LeastConn {
    /// The eligible member with the lowest `(in_flight + 1) / effective_weight`; `None` when
    /// nothing is eligible.
    pub fn pick(&self, c: &impl Candidates) -> Option<usize> {
        let n = c.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, f64)> = None;
        for index in (0..n).map(|step| (start + step) % n) {
            if !c.eligible(index) {
                continue;
            }
            let load = (c.in_flight(index) as f64 + 1.0)
                / c.effective_weight(index).max(f64::MIN_POSITIVE);
            if best.is_none_or(|(_, lowest)| load < lowest) {
                best = Some((index, load));
            }
        }
        best.map(|(index, _)| index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::View;
    use super::*;

    #[test]
    fn the_member_with_the_fewest_in_flight_wins() {
        let mut view = View::uniform(4);
        view.in_flight = vec![3, 1, 0, 2];
        let lc = LeastConn::default();
        assert!((0..8).all(|_| lc.pick(&view) == Some(2)));
    }

    #[test]
    fn in_flight_counts_per_unit_of_weight() {
        // 4 in flight on weight 2 is a lighter load than 3 on weight 1.
        let mut view = View::weighted(&[1, 2]);
        view.in_flight = vec![3, 4];
        assert_eq!(LeastConn::default().pick(&view), Some(1));
    }

    #[test]
    fn slow_start_ramps_count_like_weights() {
        let mut view = View::uniform(2);
        view.ramps = vec![0.25, 1.0];
        view.in_flight = vec![0, 2];
        // (0 + 1) / 0.25 = 4 is heavier than (2 + 1) / 1 = 3.
        assert_eq!(LeastConn::default().pick(&view), Some(1));
    }

    #[test]
    fn ties_rotate_over_an_idle_pool() {
        let view = View::uniform(3);
        let lc = LeastConn::default();
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[lc.pick(&view).unwrap()] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn only_eligible_members_are_picked() {
        let mut view = View::uniform(3).only(|i| i != 0);
        view.in_flight = vec![0, 5, 7];
        let lc = LeastConn::default();
        assert!((0..6).all(|_| lc.pick(&view) == Some(1)));
        assert_eq!(lc.pick(&View::uniform(3).only(|_| false)), None);
        assert_eq!(lc.pick(&View::uniform(0)), None);
    }
}
