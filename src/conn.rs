//! One client connection. [`ConnInfo`] is what it is, fixed at accept: its listener, its
//! client, its scheme and TLS facts, its admission tier; it is all the proxy reads of it.
//! [`ClientConn`], which holds it (one allocation per connection, as an idle connection pays
//! for each), is the server's live view: what it is doing (requests in progress, idle
//! since when, streams moving, upgraded or not) and a way to ask it to close gracefully. The
//! server updates the activity around each request it hands the proxy; the connection's I/O
//! reads it to choose its timeout; admission pressure asks idle ones to close. What crosses
//! the proxy as a response extension is defined here, below both: [`Tunnel`].

mod handoff;

pub use handoff::Handoff;

use crate::admission::{Admission, Tier};
use crate::backend::Backend;
use crate::body::{Writes, Written};
use crate::clock::now_us;
use atomic_waker::AtomicWaker;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

/// A 101 response's backend side, carried out of the proxy as a response extension:
/// the connection splices the two sockets once the 101 is written.
#[derive(Debug, Clone)]
pub struct Tunnel {
    /// The backend's connection, taken once by the connection that splices it (shared
    /// only because response extensions must be `Clone`).
    pub upstream: Arc<std::sync::Mutex<Option<crate::upstream::UpstreamIo>>>,
    /// The backend, whose drain deadline cuts the tunnel.
    pub backend: Arc<Backend>,
}

/// What a connection is, from accept to close.
#[derive(Debug)]
pub struct ConnInfo {
    /// The traffic listener's name.
    pub listener: Arc<str>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Plain, redirecting to https, or TLS (with what the handshake settled).
    pub scheme: ConnScheme,
    /// The admission tier it was accepted in.
    pub tier: Tier,
    /// How far the connection's writes have got: written by the connection as the client
    /// takes bytes, read by HTTP/1 response bodies to keep pace with it.
    pub written: Written,
}

impl ConnInfo {
    /// `"http"` or `"https"`.
    pub fn proto(&self) -> &'static str {
        match self.scheme {
            ConnScheme::Https(_) => "https",
            _ => "http",
        }
    }
}

impl Writes for ClientConn {
    fn written(&self) -> &Written {
        &self.info.written
    }
}

/// A client connection, live. One allocation per connection, with what it is inline: an idle
/// keep-alive connection pays for each of its allocations (BENCHMARKS.md, issue 21).
#[derive(Debug)]
pub struct ClientConn {
    /// What it is: all the proxy reads of it.
    pub info: ConnInfo,
    /// What it is doing.
    pub activity: ConnActivity,
    /// For a connection admitted in burst, the admission it counts against.
    burst_of: Option<Arc<Admission>>,
    /// The connection's own task, woken when it is asked to close (it is the only waiter).
    close: AtomicWaker,
    closing: AtomicBool,
    /// Why it was closed for reading too slowly, if it was (`portero_slow_readers_total`):
    /// a [`SlowReader`] as a byte, 0 for none. A byte beside `closing`, not a 24-byte
    /// `OnceLock`, keeps the connection in jemalloc's 224-byte class.
    slow_reader: AtomicU8,
    /// What a request's watch hands its connection (a tunnel to splice).
    pub handoff: Handoff,
}

impl ClientConn {
    /// A newly accepted connection.
    pub fn new(listener: Arc<str>, peer: SocketAddr, scheme: ConnScheme, tier: Tier) -> Self {
        Self {
            info: ConnInfo {
                listener,
                peer,
                scheme,
                tier,
                written: Written::default(),
            },
            activity: ConnActivity::default(),
            burst_of: None,
            close: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            slow_reader: AtomicU8::new(0),
            handoff: Handoff::default(),
        }
    }

    /// Marks a connection admitted in burst as counted against `admission`.
    pub fn in_burst_of(mut self, admission: Arc<Admission>) -> Self {
        self.burst_of = Some(admission);
        self
    }

    /// A request started on the connection. A connection admitted in burst is asked to close
    /// after it while the daemon is still over its baseline, so load drains back under the
    /// baseline by itself; once under, it is kept alive like any other. Judged per request,
    /// not once at accept: a client that reconnects at once after a close would otherwise find
    /// its old connection still counted, be admitted in burst again, and never leave it.
    pub fn request_started(&self) {
        self.activity.request_started();
        if self.info.tier == Tier::Burst && self.burst_of.as_ref().is_none_or(|a| a.over_baseline())
        {
            self.request_close();
        }
    }

    /// Asks the connection to close gracefully: HTTP/1 after the response in progress (at
    /// once when idle), HTTP/2 with GOAWAY after its open streams.
    pub fn request_close(&self) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.close.wake();
        }
    }

    /// Whether it was asked to close.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Records that the connection is closed because its client reads too slowly, and why
    /// (the first reason given stands).
    pub fn set_slow_reader(&self, reason: SlowReader) {
        let _ =
            self.slow_reader
                .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the connection was closed for reading too slowly, if it was.
    pub fn slow_reader(&self) -> Option<SlowReader> {
        match self.slow_reader.load(Ordering::Acquire) {
            1 => Some(SlowReader::Stalled),
            2 => Some(SlowReader::TooSlow),
            _ => None,
        }
    }

    /// Ready once [`request_close`](Self::request_close) has been called; until then `cx` is
    /// woken when it is. Only the connection's own task waits, so one waker is kept, with no
    /// lock and no future held in the task while the connection is idle.
    pub fn poll_close_requested(&self, cx: &Context<'_>) -> Poll<()> {
        if self.is_closing() {
            return Poll::Ready(());
        }
        self.close.register(cx.waker());
        // Again once registered: a request in between would otherwise wake no one.
        if self.is_closing() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Resolves when [`request_close`](Self::request_close) has been called.
    pub async fn close_requested(&self) {
        poll_fn(|cx| self.poll_close_requested(cx)).await;
    }
}

/// Why a connection was closed for reading too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowReader {
    /// It took no byte for a whole `timeouts.client_write`.
    Stalled = 1,
    /// It took some, at fewer than `limits.min_send_rate` bytes per second.
    TooSlow = 2,
}

impl SlowReader {
    /// The `reason` label of `portero_slow_readers_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowReader::Stalled => "stalled",
            SlowReader::TooSlow => "min_send_rate",
        }
    }
}

/// How a connection's requests are to be treated by scheme.
#[derive(Debug)]
pub enum ConnScheme {
    /// Plain HTTP.
    Http,
    /// Plain HTTP on a listener that answers everything with a 308 to https; the https port
    /// to name (`None` = 443).
    Redirect(Option<u16>),
    /// HTTPS. Boxed: a plain connection does not carry room for it.
    Https(Box<ConnTls>),
}

/// What a TLS handshake settled for a connection.
#[derive(Debug)]
pub struct ConnTls {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// With strict SNI: the names the connection's certificate covers (a Host outside them
    /// gets 421).
    pub covered: Option<Arc<crate::tls::LoadedCert>>,
    /// `Strict-Transport-Security` to add to every response.
    pub hsts: Option<http::HeaderValue>,
}

/// Requests in progress on one connection, and since when it has been idle.
#[derive(Debug)]
pub struct ConnActivity {
    active: AtomicU32,
    epoch: AtomicU32,
    idle_since_us: AtomicU64,
    upgraded: AtomicBool,
    /// An HTTP/1 connection waiting for its next request, its idle time kept by the server's
    /// idle sweep rather than a timer of its own.
    parked: AtomicBool,
    /// Response bodies streaming from backends, and when one last moved a frame to the client.
    streams: AtomicU32,
    progress_us: AtomicU64,
}

impl Default for ConnActivity {
    fn default() -> Self {
        Self {
            active: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
            idle_since_us: AtomicU64::new(now_us()),
            upgraded: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            streams: AtomicU32::new(0),
            progress_us: AtomicU64::new(0),
        }
    }
}

impl ConnActivity {
    /// A request started.
    pub fn request_started(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// A request ended (its response was sent, or it was abandoned).
    pub fn request_finished(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since_us.store(now_us(), Ordering::Release);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Requests in progress.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Changes every time a request starts or ends.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// When it last became idle (µs on a process-wide monotonic clock), if it is idle now:
    /// no request in progress and not a tunnel.
    pub fn idle_since(&self) -> Option<u64> {
        (self.active() == 0 && !self.is_upgraded())
            .then(|| self.idle_since_us.load(Ordering::Acquire))
    }

    /// Marks an HTTP/1 connection as parked between requests (or no longer).
    pub fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Release);
    }

    /// When a parked connection became idle (µs, as [`idle_since`](Self::idle_since)); `None`
    /// when it is not parked.
    pub fn parked_since(&self) -> Option<u64> {
        self.parked
            .load(Ordering::Acquire)
            .then(|| self.idle_since_us.load(Ordering::Acquire))
    }

    /// Marks the connection as a tunnel (after a 101): its bytes are no longer HTTP.
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    /// Whether the connection became a tunnel.
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    /// A response body began streaming from a backend.
    pub fn stream_started(&self) {
        self.stream_progressed();
        self.streams.fetch_add(1, Ordering::AcqRel);
    }

    /// A streaming response body handed a frame to the client's connection.
    pub fn stream_progressed(&self) {
        self.progress_us.store(now_us(), Ordering::Release);
    }

    /// A streaming response body ended.
    pub fn stream_ended(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether response bodies are streaming but none has moved a frame for `limit` (µs) up
    /// to `now`: the client holds its HTTP/2 flow-control window at zero, or the backend stalls.
    pub fn stalled(&self, now: u64, limit: u64) -> bool {
        self.streams.load(Ordering::Acquire) > 0
            && now.saturating_sub(self.progress_us.load(Ordering::Acquire)) > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One allocation per connection, in jemalloc's 224-byte class with the `Arc`'s two
    /// counts: a plain connection carries no room for TLS details (BENCHMARKS.md, issue 21).
    #[test]
    fn a_connection_fits_one_224_byte_allocation() {
        let size = size_of::<ClientConn>() + 2 * size_of::<usize>();
        assert!(size <= 224, "Arc<ClientConn> allocates {size} bytes");
    }

    #[test]
    fn the_first_slow_reader_reason_stands() {
        let conn = ClientConn::new(
            Arc::from("http"),
            "127.0.0.1:1".parse().unwrap(),
            ConnScheme::Http,
            Tier::Baseline,
        );
        assert_eq!(conn.slow_reader(), None);
        conn.set_slow_reader(SlowReader::TooSlow);
        conn.set_slow_reader(SlowReader::Stalled);
        assert_eq!(conn.slow_reader(), Some(SlowReader::TooSlow));
        assert_eq!(SlowReader::TooSlow.as_str(), "min_send_rate");
    }

    #[test]
    fn idle_means_no_request_and_no_tunnel() {
        let a = ConnActivity::default();
        assert!(a.idle_since().is_some());
        a.request_started();
        a.request_started();
        assert_eq!(a.idle_since(), None);
        a.request_finished();
        assert_eq!(a.idle_since(), None, "one of two requests still runs");
        a.request_finished();
        assert!(a.idle_since().is_some());
        assert_eq!(a.epoch(), 4);
        a.set_upgraded();
        assert_eq!(a.idle_since(), None);
    }

    #[test]
    fn a_stall_needs_a_stream_that_stopped_moving() {
        let a = ConnActivity::default();
        let later = now_us() + 10_000_000;
        assert!(!a.stalled(later, 1_000_000), "nothing streams");
        a.stream_started();
        assert!(!a.stalled(now_us(), 1_000_000));
        assert!(a.stalled(later, 1_000_000));
        a.stream_progressed();
        assert!(!a.stalled(now_us(), 1_000_000));
        a.stream_ended();
        assert!(!a.stalled(later, 1_000_000));
    }
}
