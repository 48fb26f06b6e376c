//! When to order: pure arithmetic on Unix seconds, so the policy is unit-tested without
//! clocks or CAs.

use std::time::Duration;

/// The longest wait between failed orders: a CA's outage should not cost more than an hour
/// of a certificate's remaining life per try.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` is renewed without ARI: at two
/// thirds of its lifetime, as Let's Encrypt advises, moved earlier by up to 5% of the
/// lifetime (`jitter` in 0..1) so that a fleet's renewals spread out.
pub fn renewal_at(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    let spread = (lifetime as f64 * 0.05 * jitter.clamp(0.0, 1.0)) as i64;
    not_before + lifetime * 2 / 3 - spread
}

/// A time in an ARI suggested window (RFC 9773 §4.2: chosen uniformly within it, `jitter`
/// in 0..1). A time already past means now.
pub fn within_window(start: i64, end: i64, jitter: f64) -> i64 {
    let width = (end - start).max(0);
    start + (width as f64 * jitter.clamp(0.0, 1.0)) as i64
}

/// When to ask for an ARI window again: the CA's Retry-After (RFC 9773 §4.3), kept between a
/// minute (a CA asking for less must not make a loop) and a day (a window may move earlier,
/// after a mass revocation).
pub fn ari_recheck(retry_after: Duration) -> Duration {
    retry_after.clamp(Duration::from_secs(60), Duration::from_secs(86_400))
}

/// The wait after the `failures`-th failed order in a row: `retry`, doubled at each further
/// failure, at most [`MAX_BACKOFF`], and never sooner than the CA's `retry_after`.
pub fn backoff(retry: Duration, failures: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let wait = retry.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    wait.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renews_at_two_thirds_minus_up_to_five_percent() {
        assert_eq!(renewal_at(0, 90 * DAY, 0.0), 60 * DAY);
        assert_eq!(renewal_at(0, 90 * DAY, 1.0), 60 * DAY - 90 * DAY * 5 / 100);
        assert_eq!(renewal_at(1000, 1030, 0.0), 1020, "a 30 s test certificate");
        assert_eq!(
            renewal_at(10, 5, 0.5),
            10,
            "a backwards certificate is due at once"
        );
    }

    #[test]
    fn ari_windows_are_followed() {
        assert_eq!(within_window(100, 200, 0.0), 100);
        assert_eq!(within_window(100, 200, 0.5), 150);
        assert_eq!(within_window(100, 200, 2.0), 200);
        assert_eq!(
            within_window(200, 100, 0.5),
            200,
            "an empty window is its start"
        );
    }

    #[test]
    fn ari_is_asked_again_between_a_minute_and_a_day() {
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(ari_recheck(hours(6)), hours(6));
        assert_eq!(ari_recheck(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(ari_recheck(hours(100)), hours(24));
    }

    #[test]
    fn backoff_doubles_to_an_hour_and_honours_retry_after() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 1, None), minute);
        assert_eq!(backoff(minute, 2, None), minute * 2);
        assert_eq!(backoff(minute, 4, None), minute * 8);
        assert_eq!(backoff(minute, 7, None), MAX_BACKOFF);
        assert_eq!(backoff(minute, u32::MAX, None), MAX_BACKOFF);
        let later = Duration::from_secs(600);
        assert_eq!(backoff(minute, 1, Some(later)), later);
        assert_eq!(backoff(minute, 9, Some(later)), MAX_BACKOFF);
    }
}
