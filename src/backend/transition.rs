//! Why a backend's state changed: the words of logs and `portero_backend_transitions_total`.

use std::fmt;

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
