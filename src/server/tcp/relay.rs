//! Bytes both ways between a session's client and its backend: one pump per direction,
//! each reading what the socket has and writing it on before reading more. A half-close is
//! kept: when one side ends its writes, the other side's socket is shut for writing and the
//! other direction goes on. A pump holds a buffer only while bytes are in flight: it is
//! taken when a read is ready and let go when the socket has nothing more, so an idle
//! session (a pooled database connection, quiet for minutes) holds none, as HAProxy
//! allocates its buffers on demand. Each read is metered as it passes (live byte counters,
//! and the session's last activity for `timeouts.tcp_idle`). The session is cut at whichever
//! comes first of its idle limit, shutdown's drain deadline, its backend's removal, or its
//! backend marked down.
//!
//! The kernel's splice path (socket to pipe to socket, never through user space) was
//! measured against this: HAProxy's `option splice-auto` gained 1-5% on loopback and cost a
//! pipe (two descriptors) per busy direction; see BENCHMARKS.md.

use crate::clock::now_us;
use crate::metrics::Sessions;
use prometheus::IntCounter;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::Interest;
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

/// What one pump reads into: large enough that a bulk transfer takes few system calls, and
/// held only while bytes move.
const BUFFER: usize = 32 * 1024;

/// Relays between `client` and `upstream` until the session ends.
pub async fn run<D: Future<Output = ()>>(
    client: &TcpStream,
    upstream: &TcpStream,
    meters: &Meters,
    cuts: Cuts<'_, D>,
) -> End {
    let activity = AtomicU64::new(now_us());
    let ended = AtomicBool::new(false);
    let up = Pump {
        from: client,
        to: upstream,
        series: &meters.to_backend,
        count: &meters.sent_up,
        activity: &activity,
        other_ended: &ended,
    };
    let down = Pump {
        from: upstream,
        to: client,
        series: &meters.to_client,
        count: &meters.sent_down,
        activity: &activity,
        other_ended: &ended,
    };
    let both = async { tokio::try_join!(up.run(), down.run()) };
    let marked_down = async {
        match cuts.marked_down {
            Some(marked) => marked.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        pumped = both => match pumped {
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

/// One direction: what `from` sends, written to `to`, counted as it passes.
struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    series: &'a IntCounter,
    count: &'a AtomicU64,
    activity: &'a AtomicU64,
    /// Set by whichever direction ends first.
    other_ended: &'a AtomicBool,
}

impl Pump<'_> {
    /// Until `from` ends its writes; then `to` is shut for writing (the half-close passed on).
    async fn run(&self) -> io::Result<()> {
        loop {
            self.from.readable().await?;
            let mut buffer = Vec::with_capacity(BUFFER);
            // Drained while the socket has bytes; the buffer goes when it has none.
            loop {
                buffer.clear();
                let (read, drained) = match self.read(&mut buffer) {
                    Ok(Some(0)) => return self.half_close(),
                    Ok(Some(read)) => (read, read < buffer.capacity()),
                    Ok(None) => break,
                    Err(e) => return Err(e),
                };
                self.meter(read);
                self.write_all(&buffer).await?;
                if drained {
                    break;
                }
            }
        }
    }

    /// One read into `buffer`: `Some(bytes)`, `Some(0)` at the end, `None` when the socket
    /// has nothing. A short read emptied the socket, so its readiness is cleared then and
    /// there: the pump waits for the next bytes rather than asking again only to hear EAGAIN
    /// (a system call saved per burst). The readiness cleared is the one seen before the
    /// read (tokio's `try_io` takes it first), so bytes that arrive after it raise a newer
    /// one, which stays.
    fn read(&self, buffer: &mut Vec<u8>) -> io::Result<Option<usize>> {
        let mut got = None;
        let capacity = buffer.capacity();
        let outcome = self.from.try_io(Interest::READABLE, || {
            let read = self.from.try_read_buf(buffer)?;
            got = Some(read);
            if read > 0 && read < capacity {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match outcome {
            Err(e) if got.is_none() && e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(got),
        }
    }

    fn meter(&self, read: usize) {
        let read = read as u64;
        self.series.inc_by(read);
        self.count.fetch_add(read, Ordering::Relaxed);
        self.activity.store(now_us(), Ordering::Relaxed);
    }

    async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.to.writable().await?;
            match self.to.try_write(bytes) {
                Ok(written) => bytes = &bytes[written..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn half_close(&self) -> io::Result<()> {
        // The second direction to end needs no shutdown: both sockets close right after, and
        // the close says the same.
        if self.other_ended.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match socket2::SockRef::from(self.to).shutdown(std::net::Shutdown::Write) {
            // The other side may be gone already: nothing is left to tell it.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}
