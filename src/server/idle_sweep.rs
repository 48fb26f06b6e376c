//! The idle timeout of parked HTTP/1 connections, kept by one task for all of them instead of
//! a timer each: a tokio timer is 128 bytes, a tenth of what an idle keep-alive connection
//! costs (BENCHMARKS.md, issue 21), and a parked connection already says since when it has
//! been idle ([`ConnActivity::parked_since`]).
//!
//! Each sweep asks the connections parked for `timeouts.idle` to close, as a drain does (a
//! parked one closes at once, silently), and notes when the next one is due. The next sweep
//! runs then, but no sooner than `idle / 16` (between 10 ms and 1 s) after this one, so a
//! sweep visits every connection at most 16 times per idle period however many park: an idle
//! connection closes between `idle` and `idle + idle / 16` after its last response.
//! A reload that changes `timeouts.idle` wakes the sweep, and the new value applies to every
//! parked connection. HTTP/2 connections keep their own timer (`ConnIo`): they close on it
//! without a GOAWAY exchange that a vanished client would never finish.
//!
//! [`ConnActivity::parked_since`]: crate::conn::ConnActivity::parked_since

use super::ServerCtx;
use crate::clock::now_us;
use crate::conn::ClientConn;
use dashmap::DashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The shortest and longest pause between sweeps.
const MIN_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Sweeps until `stop` is cancelled.
pub async fn run(ctx: Arc<ServerCtx>, stop: CancellationToken) {
    loop {
        let idle = ctx.settings.load().timeouts.idle;
        let now = now_us();
        let next = sweep(&ctx.open, now, micros(idle));
        let pause = Duration::from_micros(next_sweep(now, next, idle) - now);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = ctx.settings_changed.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Asks every connection parked for `idle` µs by `now` to close; when the next one is due.
fn sweep(open: &DashMap<usize, Weak<ClientConn>>, now: u64, idle: u64) -> Option<u64> {
    let mut next: Option<u64> = None;
    for entry in open {
        let Some(conn) = entry.value().upgrade() else {
            continue;
        };
        let Some(since) = conn.activity.parked_since() else {
            continue;
        };
        let due = since.saturating_add(idle);
        if due <= now {
            conn.request_close();
        } else if !conn.is_closing() {
            next = Some(next.map_or(due, |n| n.min(due)));
        }
    }
    next
}

/// When to sweep next (µs): when the next parked connection is due, or a whole `idle` from
/// now when none is parked (one that parks later is due later), but after a pause of at
/// least `idle / 16` within [`MIN_PAUSE`, `MAX_PAUSE`].
fn next_sweep(now: u64, next_due: Option<u64>, idle: Duration) -> u64 {
    let pause = (idle / 16).clamp(MIN_PAUSE, MAX_PAUSE);
    let due = next_due.unwrap_or_else(|| now.saturating_add(micros(idle)));
    due.max(now.saturating_add(micros(pause)))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Tier;
    use crate::conn::ConnScheme;

    const SECOND: u64 = 1_000_000;

    fn conn() -> Arc<ClientConn> {
        Arc::new(ClientConn::new(
            Arc::from("http"),
            "127.0.0.1:1".parse().unwrap(),
            ConnScheme::Http,
            Tier::Baseline,
        ))
    }

    /// A connection that served a request which ended at `idle_since` (µs), then parked.
    fn parked(open: &DashMap<usize, Weak<ClientConn>>, id: usize) -> Arc<ClientConn> {
        let conn = conn();
        conn.activity.request_started();
        conn.activity.request_finished();
        conn.activity.set_parked(true);
        open.insert(id, Arc::downgrade(&conn));
        conn
    }

    #[test]
    fn only_connections_parked_for_the_whole_idle_time_are_closed() {
        let open = DashMap::new();
        let old = parked(&open, 1);
        let since = old.activity.parked_since().unwrap();
        let busy = conn();
        busy.activity.request_started();
        open.insert(2, Arc::downgrade(&busy));
        let fresh = conn();
        open.insert(3, Arc::downgrade(&fresh));

        let next = sweep(&open, since + 5 * SECOND - 1, 5 * SECOND);
        assert!(!old.is_closing(), "closed a microsecond early");
        assert_eq!(next, Some(since + 5 * SECOND));

        assert_eq!(sweep(&open, since + 5 * SECOND, 5 * SECOND), None);
        assert!(old.is_closing());
        assert!(!busy.is_closing(), "a request is in progress");
        assert!(
            !fresh.is_closing(),
            "never parked: its own deadline applies"
        );
    }

    #[test]
    fn the_next_sweep_is_at_the_earliest_due_connection() {
        let open = DashMap::new();
        let first = parked(&open, 1);
        let later = parked(&open, 2);
        let since = first.activity.parked_since().unwrap();
        assert!(later.activity.parked_since().unwrap() >= since);
        later.activity.set_parked(false);
        drop(parked(&open, 3)); // gone: its entry is skipped
        assert_eq!(sweep(&open, since, 2 * SECOND), Some(since + 2 * SECOND));
    }

    #[test]
    fn sweeps_are_spaced_by_a_sixteenth_of_the_idle_time_within_bounds() {
        let now = 100 * SECOND;
        let idle = Duration::from_secs(8);
        assert_eq!(next_sweep(now, None, idle), now + 8 * SECOND);
        assert_eq!(
            next_sweep(now, Some(now + 3 * SECOND), idle),
            now + 3 * SECOND
        );
        assert_eq!(next_sweep(now, Some(now + 1), idle), now + SECOND / 2);
        let long = Duration::from_secs(75);
        assert_eq!(next_sweep(now, Some(now + 1), long), now + SECOND);
        let short = Duration::from_millis(80);
        assert_eq!(next_sweep(now, Some(now), short), now + 10_000);
    }
}
