//! Passive outlier detection: every try's outcome, and every response body a backend breaks
//! off, counts for or against its backend; too many failures in a row eject it.

use crate::backend::{Backend, Transition};
use crate::clock::now_us;
use crate::metrics::Metrics;
use crate::pool::Pool;

/// Records a request's outcome on `backend` of `pool` for passive outlier detection, ejecting
/// it when it has failed too often in a row.
pub fn outcome(pool: &Pool, backend: &Backend, success: bool, metrics: &Metrics) {
    if success {
        // Only a failure needs the time (every request has one outcome; the clock read cost
        // more than the rest of it).
        backend.record_success();
        return;
    }
    let now = now_us();
    let threshold = pool.config().outlier.consecutive_failures;
    if backend.record_failure(threshold, now) {
        match pool.try_eject(backend, now) {
            Some(duration) => {
                tracing::warn!(pool = %pool.name(), backend = %backend.address(), ?duration, failures = threshold,
                    "backend ejected: {}", Transition::Ejected);
                let ejected = Transition::Ejected;
                metrics.transition(pool.name(), backend.label(), ejected.to(), ejected.reason());
            }
            None => {
                if let Some(suppressed) = backend.failing_warning(now) {
                    tracing::warn!(pool = %pool.name(), backend = %backend.address(), suppressed,
                        "backend failing but not ejected: half the pool is out already");
                }
            }
        }
    }
}
