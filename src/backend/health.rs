//! The pure parts of backend health: check hysteresis and the slow-start ramp.

use std::fmt;
use std::time::Duration;

/// Up/down from active checks, flipping only after `rise` passes or `fall` failures in a row,
/// so one lost probe does not pull a backend and one lucky probe does not bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    up: bool,
    /// Results in a row that disagree with `up`.
    streak: u32,
}

impl Hysteresis {
    /// Starting up (a backend counts as healthy until checks say otherwise).
    pub fn up() -> Self {
        Self {
            up: true,
            streak: 0,
        }
    }

    /// Whether checks currently say up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records a result; `Some(new_up)` when it flips.
    pub fn record(&mut self, pass: bool, rise: u32, fall: u32) -> Option<bool> {
        if pass == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise };
        if self.streak < needed.max(1) {
            return None;
        }
        self.up = pass;
        self.streak = 0;
        Some(pass)
    }
}

/// Why a backend's state changed, for logs and `portero_backend_transitions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Active checks passed `rise` times in a row.
    CheckPassed,
    /// Active checks failed `fall` times in a row.
    CheckFailed,
    /// Passive outlier detection ejected it.
    Ejected,
    /// Its ejection ran out.
    EjectionEnded,
    /// It left the pool and drains.
    Removed,
}

impl Transition {
    /// The new state's name.
    pub fn to(self) -> &'static str {
        match self {
            Transition::CheckPassed | Transition::EjectionEnded => "healthy",
            Transition::CheckFailed | Transition::Ejected => "unhealthy",
            Transition::Removed => "draining",
        }
    }

    /// The reason's label.
    pub fn reason(self) -> &'static str {
        match self {
            Transition::CheckPassed => "check_passed",
            Transition::CheckFailed => "check_failed",
            Transition::Ejected => "outlier",
            Transition::EjectionEnded => "ejection_ended",
            Transition::Removed => "removed",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.to(), self.reason())
    }
}

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
    fn flips_only_after_rise_or_fall_in_a_row() {
        let mut h = Hysteresis::up();
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(
            h.record(true, 2, 3),
            None,
            "a pass resets the failure streak"
        );
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(true));
        assert!(h.is_up());
    }

    #[test]
    fn slow_start_ramps_from_a_floor() {
        let ramp = Duration::from_secs(10);
        assert_eq!(slow_start_factor(Duration::ZERO, Duration::ZERO), 1.0);
        assert_eq!(slow_start_factor(Duration::ZERO, ramp), 0.1);
        assert!((slow_start_factor(Duration::from_secs(5), ramp) - 0.5).abs() < 1e-9);
        assert_eq!(slow_start_factor(Duration::from_secs(11), ramp), 1.0);
    }
}
