//! Bytes both ways between a session's client and its backend. tokio's
//! `copy_bidirectional` does the copying and keeps a half-close: when one side ends its
//! writes, the other side's socket is shut for writing and the other direction goes on. Each
//! read is metered as it passes (live byte counters, and the session's last activity for
//! `timeouts.tcp_idle`); the session is cut at whichever comes first of its idle limit,
//! shutdown's drain deadline, its backend's removal, or its backend marked down.

use crate::clock::now_us;
use crate::metrics::Sessions;
use prometheus::IntCounter;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How a session that reached a backend ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides finished (each closed its writes, or one closed and the other followed).
    Closed,
    /// A socket failed (a reset, say).
    Error,
    /// Nothing either way for `timeouts.tcp_idle`.
    Idle,
    /// Still open at shutdown's drain deadline.
    Shutdown,
    /// Its backend left the pool and the drain deadline passed.
    BackendRemoved,
    /// Its backend's checks marked it down (`on_marked_down = "close"`).
    MarkedDown,
}

impl End {
    /// The metric label and access-log `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Error => "error",
            End::Idle => "idle",
            End::Shutdown => "shutdown",
            End::BackendRemoved => "backend_removed",
            End::MarkedDown => "marked_down",
        }
    }
}

/// What cuts a session short.
pub struct Cuts<'a, D> {
    /// `timeouts.tcp_idle` (zero: never).
    pub idle: Duration,
    /// Shutdown's drain deadline.
    pub shutdown: &'a CancellationToken,
    /// The backend's removal, at its drain deadline.
    pub removed: WaitForCancellationFutureOwned,
    /// The backend marked down, when the pool closes sessions then.
    pub marked_down: Option<D>,
}

/// A session's byte counts: the listener's series, and this session's own totals.
pub struct Meters {
    to_backend: IntCounter,
    to_client: IntCounter,
    sent_up: AtomicU64,
    sent_down: AtomicU64,
}

impl Meters {
    /// The series of `[listener, pool, backend]`.
    pub fn new(sessions: &Sessions, labels: [&str; 3]) -> Self {
        let [listener, pool, backend] = labels;
        let series = |direction| {
            sessions
                .bytes
                .with_label_values(&[listener, pool, backend, direction])
        };
        Self {
            to_backend: series("to_backend"),
            to_client: series("to_client"),
            sent_up: AtomicU64::new(0),
            sent_down: AtomicU64::new(0),
        }
    }

    /// This session's bytes from the client to the backend.
    pub fn to_backend(&self) -> u64 {
        self.sent_up.load(Ordering::Relaxed)
    }

    /// This session's bytes from the backend to the client.
    pub fn to_client(&self) -> u64 {
        self.sent_down.load(Ordering::Relaxed)
    }
}

/// Relays between `client` and `upstream` until the session ends.
pub async fn run<D: Future<Output = ()>>(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    meters: &Meters,
    cuts: Cuts<'_, D>,
) -> End {
    let activity = AtomicU64::new(now_us());
    let mut client = Metered {
        stream: client,
        series: &meters.to_backend,
        count: &meters.sent_up,
        activity: &activity,
    };
    let mut upstream = Metered {
        stream: upstream,
        series: &meters.to_client,
        count: &meters.sent_down,
        activity: &activity,
    };
    let marked_down = async {
        match cuts.marked_down {
            Some(marked) => marked.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok(_) => End::Closed,
            Err(_) => End::Error,
        },
        () = idle(&activity, cuts.idle) => End::Idle,
        () = cuts.shutdown.cancelled() => End::Shutdown,
        () = cuts.removed => End::BackendRemoved,
        () = marked_down => End::MarkedDown,
    }
}

/// Resolves once `activity` (µs on [`now_us`]) is `limit` old. One timer per session, set
/// again only when it fires early: reads move the mark without touching the timer.
async fn idle(activity: &AtomicU64, limit: Duration) {
    if limit.is_zero() {
        return std::future::pending().await;
    }
    let limit = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
    loop {
        let quiet = now_us().saturating_sub(activity.load(Ordering::Relaxed));
        if quiet >= limit {
            return;
        }
        tokio::time::sleep(Duration::from_micros(limit - quiet)).await;
    }
}

/// One side of the relay: what is read from it is counted as it passes.
struct Metered<'a> {
    stream: &'a mut TcpStream,
    series: &'a IntCounter,
    count: &'a AtomicU64,
    activity: &'a AtomicU64,
}

impl AsyncRead for Metered<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.stream).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.series.inc_by(read);
            self.count.fetch_add(read, Ordering::Relaxed);
            self.activity.store(now_us(), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Metered<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_shutdown(cx)
    }
}
