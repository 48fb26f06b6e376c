//! Check hysteresis: up or down from active checks, flipping only after a run of results.

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

    /// Starting down: a backend that must prove itself first (a role-aware check's node,
    /// whose role is unknown until asked).
    pub fn down() -> Self {
        Self {
            up: false,
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
}
