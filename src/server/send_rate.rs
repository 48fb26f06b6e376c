//! Whether a client reads its responses fast enough. Only the time portero's writes spend
//! waiting on the client counts (a write that returned `Pending` until it made progress): time
//! spent waiting on a backend, or with nothing to send, is not the client's. Once that waiting
//! adds up to `timeouts.client_write`, the bytes the client took meanwhile are judged:
//! - none at all: it stopped reading (ATTACKS.md row 27);
//! - fewer than `limits.min_send_rate` per second of waiting: it reads too slowly to be worth
//!   the buffers and the slot it holds (slow read, `slowhttptest -X`);
//! - otherwise a new window starts.
//!
//! A client that keeps up never makes a write wait, so it never opens a window: the clock is
//! read only on the slow path.

use crate::conn::SlowReader;
use std::time::Duration;
use tokio::time::Instant;

/// How a window of waiting on the client was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fast enough, or not yet a whole window.
    Reading,
    /// It took no byte for a whole window.
    Stalled,
    /// It took some, at fewer than `min_send_rate` bytes per second.
    TooSlow,
}

impl Verdict {
    /// Why a connection closed on this verdict is counted as a slow reader; `None` while
    /// the client keeps reading.
    pub fn slow_reader(self) -> Option<SlowReader> {
        match self {
            Verdict::Reading => None,
            Verdict::Stalled => Some(SlowReader::Stalled),
            Verdict::TooSlow => Some(SlowReader::TooSlow),
        }
    }
}

/// One connection's account of waiting on its client.
#[derive(Debug, Clone)]
pub struct SendRate {
    window: Duration,
    /// Bytes per second; 0 judges only stalls.
    min_rate: u64,
    /// From the first write that waited until the window is judged.
    open: bool,
    /// Waiting already ended in this window.
    waited: Duration,
    /// Since when the current write waits.
    waiting_since: Option<Instant>,
    /// Bytes the client took in this window.
    sent: u64,
}

impl SendRate {
    /// Judges every `window` of waiting against `min_rate` bytes per second.
    pub fn new(window: Duration, min_rate: u64) -> Self {
        Self {
            window,
            min_rate,
            open: false,
            waited: Duration::ZERO,
            waiting_since: None,
            sent: 0,
        }
    }

    /// A write waits on the client from `now` (if it did not already): when the window ends
    /// if it keeps waiting.
    pub fn waiting(&mut self, now: Instant) -> Instant {
        self.open = true;
        let since = *self.waiting_since.get_or_insert(now);
        since + self.window.saturating_sub(self.waited)
    }

    /// A write or flush made progress, `n` bytes of it (0 for a flush); `now` is read only
    /// when a window is open.
    pub fn took(&mut self, n: usize, now: impl FnOnce() -> Instant) -> Verdict {
        if !self.open {
            return Verdict::Reading;
        }
        self.sent += n as u64;
        let Some(since) = self.waiting_since.take() else {
            return Verdict::Reading;
        };
        let now = now();
        self.waited += now.saturating_duration_since(since);
        self.judge(now)
    }

    /// The window's deadline passed, with a write still waiting.
    pub fn deadline(&mut self, now: Instant) -> Verdict {
        self.judge(now)
    }

    fn judge(&mut self, now: Instant) -> Verdict {
        let waited = self.waited
            + self
                .waiting_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        if waited < self.window {
            return Verdict::Reading;
        }
        if self.sent == 0 {
            return Verdict::Stalled;
        }
        if u128::from(self.sent) * 1_000_000 < u128::from(self.min_rate) * waited.as_micros() {
            return Verdict::TooSlow;
        }
        // A new window; a write still waiting counts in it from now.
        self.open = self.waiting_since.is_some();
        self.waiting_since = self.waiting_since.map(|_| now);
        self.waited = Duration::ZERO;
        self.sent = 0;
        Verdict::Reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_client_that_keeps_up_opens_no_window() {
        let mut rate = SendRate::new(WINDOW, 1024);
        for _ in 0..1000 {
            assert_eq!(
                rate.took(65536, || panic!("no clock on the fast path")),
                Verdict::Reading
            );
        }
        assert!(!rate.open);
    }

    #[test]
    fn a_write_that_waits_a_whole_window_without_progress_is_a_stall() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 0);
        assert_eq!(rate.waiting(t), at(t, 10));
        assert_eq!(rate.waiting(at(t, 3)), at(t, 10), "still the first wait");
        assert_eq!(rate.deadline(at(t, 9)), Verdict::Reading, "early");
        assert_eq!(rate.deadline(at(t, 10)), Verdict::Stalled);
    }

    #[test]
    fn only_time_spent_waiting_counts() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 1000);
        // Waits 6 s, takes 100 bytes, then nothing to send for an hour (a slow backend).
        rate.waiting(t);
        assert_eq!(rate.took(100, || at(t, 6)), Verdict::Reading);
        // Waits again: the window ends after 4 more seconds of waiting, not at once.
        assert_eq!(rate.waiting(at(t, 3600)), at(t, 3604));
        assert_eq!(
            rate.deadline(at(t, 3604)),
            Verdict::TooSlow,
            "100 B in 10 s"
        );
    }

    #[test]
    fn a_slow_reader_is_judged_on_its_average() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 1024);
        // 200 bytes a second: every write waits a second for the client to take a little.
        let mut verdict = Verdict::Reading;
        for second in 0..10 {
            rate.waiting(at(t, second));
            verdict = rate.took(200, || at(t, second + 1));
        }
        assert_eq!(verdict, Verdict::TooSlow);
    }

    #[test]
    fn a_fast_enough_reader_starts_a_new_window() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 1024);
        for second in 0..10 {
            rate.waiting(at(t, second));
            assert_eq!(rate.took(4096, || at(t, second + 1)), Verdict::Reading);
        }
        assert_eq!(rate.sent, 0, "judged and reset after 10 s of waiting");
        assert_eq!(rate.waited, Duration::ZERO);
        assert!(!rate.open, "nothing waits now");
        // The next window counts afresh: a stall in it is a stall.
        rate.waiting(at(t, 20));
        assert_eq!(rate.deadline(at(t, 30)), Verdict::Stalled);
    }

    #[test]
    fn a_window_judged_while_a_write_waits_keeps_counting_that_wait() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 10);
        rate.waiting(t);
        rate.took(1000, || at(t, 5));
        rate.waiting(at(t, 5));
        assert_eq!(rate.deadline(at(t, 10)), Verdict::Reading, "100 B/s");
        assert_eq!(
            rate.waiting(at(t, 11)),
            at(t, 20),
            "the wait continues from 10 s"
        );
        assert_eq!(rate.deadline(at(t, 20)), Verdict::Stalled);
    }

    #[test]
    fn off_still_catches_a_stall() {
        let t = Instant::now();
        let mut rate = SendRate::new(WINDOW, 0);
        rate.waiting(t);
        assert_eq!(
            rate.took(1, || at(t, 10)),
            Verdict::Reading,
            "1 byte is progress"
        );
    }
}
