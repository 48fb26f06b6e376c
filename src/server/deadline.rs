//! A deadline that moves often and fires rarely, for the per-connection timers that keep-alive
//! traffic pushes on every request (the header, idle and park timeouts).
//!
//! Moving a tokio timer is a reregistration in the timer wheel under its lock. Most moves push
//! the deadline later (a new request, a new idle spell), so they only record the new time: the
//! timer stays where it was, and when it fires early it is moved to the recorded time then.
//! A move to an earlier time does move the timer, so the deadline never fires late. With a
//! request every few milliseconds and a header timeout of seconds, that is one timer move per
//! timeout instead of two or three per request (BENCHMARKS.md).

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// A deadline polled like a timer; [`set`](Deadline::set) is cheap when it moves later.
#[derive(Debug)]
pub struct Deadline {
    // Boxed because its owners are polled through `Unpin` wrappers; the due time rides in
    // the same box, as every idle connection's task carries this (one pointer).
    timer: Pin<Box<Timer>>,
}

pin_project! {
    #[derive(Debug)]
    struct Timer {
        #[pin]
        sleep: Sleep,
        // When it is really due; the timer may be armed earlier, never later.
        due: Instant,
    }
}

impl Deadline {
    /// Due at `due`.
    pub fn at(due: Instant) -> Self {
        Self {
            timer: Box::pin(Timer {
                sleep: tokio::time::sleep_until(due),
                due,
            }),
        }
    }

    /// Now due at `due`, earlier or later than before.
    pub fn set(&mut self, due: Instant) {
        let timer = self.timer.as_mut().project();
        *timer.due = due;
        if due < timer.sleep.deadline() {
            timer.sleep.reset(due);
        }
    }

    /// Ready once the deadline has passed; registers the waker until then.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut timer = self.timer.as_mut().project();
            if timer.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if *timer.due <= timer.sleep.deadline() {
                return Poll::Ready(());
            }
            // Fired at an earlier deadline that has since moved: wait for the real one.
            let due = *timer.due;
            timer.sleep.reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    /// Waits for `deadline`; how long after `start` it fired.
    async fn fired(deadline: &mut Deadline, start: Instant) -> Duration {
        poll_fn(|cx| deadline.poll_elapsed(cx)).await;
        Instant::now() - start
    }

    fn elapsed_now(deadline: &mut Deadline) -> bool {
        let waker = std::task::Waker::noop();
        deadline
            .poll_elapsed(&mut Context::from_waker(waker))
            .is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_kept_past_the_first_one() {
        let start = Instant::now();
        let mut deadline = Deadline::at(start + Duration::from_secs(1));
        deadline.set(start + Duration::from_secs(3));
        assert_eq!(fired(&mut deadline, start).await, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_fires_at_its_own_time() {
        let start = Instant::now();
        let mut deadline = Deadline::at(start + Duration::from_secs(75));
        deadline.set(start + Duration::from_secs(2));
        assert_eq!(fired(&mut deadline, start).await, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn many_moves_later_end_at_the_last_one() {
        let start = Instant::now();
        let mut deadline = Deadline::at(start + Duration::from_millis(10));
        for step in 1..=100 {
            tokio::time::advance(Duration::from_millis(1)).await;
            deadline.set(Instant::now() + Duration::from_millis(10));
            assert!(!elapsed_now(&mut deadline), "elapsed early at step {step}");
        }
        assert_eq!(
            fired(&mut deadline, start).await,
            Duration::from_millis(110)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_elapsed_deadline_set_again_waits_again() {
        let start = Instant::now();
        let mut deadline = Deadline::at(start + Duration::from_secs(1));
        fired(&mut deadline, start).await;
        deadline.set(Instant::now() + Duration::from_secs(5));
        assert!(!elapsed_now(&mut deadline));
        assert_eq!(fired(&mut deadline, start).await, Duration::from_secs(6));
    }
}
