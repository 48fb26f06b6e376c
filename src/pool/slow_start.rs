//! Slow start: a backend that just became able to take traffic gets a growing share.

use std::time::Duration;

/// The share of its weight a backend gets `elapsed` after it became able to take traffic:
/// ramping linearly from 10% to 100% over `slow_start` (all of it when `slow_start` is zero).
pub fn slow_start_factor(elapsed: Duration, slow_start: Duration) -> f64 {
    if slow_start.is_zero() || elapsed >= slow_start {
        return 1.0;
    }
    (elapsed.as_secs_f64() / slow_start.as_secs_f64()).clamp(0.1, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_ramps_from_a_floor() {
        let ramp = Duration::from_secs(10);
        assert_eq!(slow_start_factor(Duration::ZERO, Duration::ZERO), 1.0);
        assert_eq!(slow_start_factor(Duration::ZERO, ramp), 0.1);
        assert!((slow_start_factor(Duration::from_secs(5), ramp) - 0.5).abs() < 1e-9);
        assert_eq!(slow_start_factor(Duration::from_secs(11), ramp), 1.0);
    }
}
