//! The client connection's I/O, with portero's timeouts and the first bytes it reads itself:
//! those of a connection, to tell HTTP/1 from HTTP/2 (hyper's HTTP/2 server then reads them
//! through [`ConnIo::poll_read`]; the tunnel of an upgraded HTTP/1 connection likewise gets
//! the bytes its client sent after the upgrade request).
//!
//! One deadline at a time, chosen from the connection's activity:
//! - before the first byte of a connection: `request_header` (close silently);
//! - from the first byte of an HTTP/1 request head until the request starts: `request_header`
//!   (answer 408, then close) — slowloris;
//! - while any request is in progress: none (body and upstream timeouts apply there);
//! - after the last request ended: `idle` (close silently) for an HTTP/2 connection with no
//!   open stream; none here for HTTP/1, whose parked connections the server's idle sweep
//!   closes (`idle_sweep`), so that an idle keep-alive connection holds no timer;
//! - once upgraded to a tunnel (WebSocket): none; shutdown's drain deadline bounds it.
//!
//! Writes are judged by [`SendRate`]: once writes have waited on the client for
//! `client_write` in all, a client that took nothing meanwhile (it stopped reading: zero TCP
//! window, ATTACKS.md row 27) or less than `min_send_rate` bytes per second of that waiting
//! (a slow reader) fails the connection, and [`ClientConn::slow_reader`] says why.

use super::deadline::Deadline;
use super::send_rate::{SendRate, Verdict};
use super::stream::ResetOnClose;
use crate::conn::ClientConn;
use bytes::{Buf, Bytes, BytesMut};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The answer to a connection that must be HTTP/2 and opens otherwise: the server preface
/// (an empty SETTINGS frame), then GOAWAY (last stream 0, PROTOCOL_ERROR, "invalid connection
/// preface").
const INVALID_PREFACE: &[u8] = b"\0\0\0\x04\0\0\0\0\0\
    \0\0\x22\x07\0\0\0\0\0\0\0\0\0\0\0\0\x01invalid connection preface";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 Request Timeout\n";

/// The deadlines the wrapper enforces.
#[derive(Debug, Clone, Copy)]
pub struct IoTimeouts {
    /// First byte, and a whole request head.
    pub request_header: Duration,
    /// Between requests.
    pub idle: Duration,
    /// Waiting on the client that a write may add up to before its progress is judged.
    pub client_write: Duration,
    /// Bytes per second a client must take while writes wait on it (0 = only stalls).
    pub min_send_rate: u64,
}

/// What the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 with prior knowledge (the connection preface came first).
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A new connection: nothing read yet.
    Fresh,
    /// Part of an HTTP/1 request head has arrived.
    Head,
    /// At least one request is in progress.
    Active,
    /// No request in progress since the last one ended.
    Idle,
}

/// A client connection's stream with portero's timeouts and its own read-ahead.
pub struct ConnIo<S> {
    inner: S,
    /// Bytes read ahead and not handed on yet: a connection's first bytes, or what came after
    /// an upgrade request. Boxed: most of a connection's life has none.
    prefix: Option<Box<BytesMut>>,
    /// The current phase's deadline, armed at its first wait (a head that arrives whole
    /// never arms one) and moved later lazily (see `Deadline`). `None` while an HTTP/1
    /// connection is parked: every idle connection would carry its 128 bytes.
    deadline: Option<Deadline>,
    conn: Arc<ClientConn>,
    timeouts: Arc<IoTimeouts>,
    phase: Phase,
    protocol: Option<Protocol>,
    seen_epoch: u32,
    write_blocked: bool,
    /// Created the first time a write waits on the client: most connections never have one,
    /// and every idle connection would carry its room.
    write_wait: Option<Box<WriteWait>>,
}

/// How writes have waited on the client (see [`SendRate`]).
struct WriteWait {
    rate: SendRate,
    /// Armed while a write is blocked, at the end of the rate's window.
    timer: Pin<Box<Sleep>>,
}

impl<S: AsyncRead + AsyncWrite + ResetOnClose + Unpin> ConnIo<S> {
    /// Wraps a freshly accepted stream; its first byte is due within `request_header` of
    /// the first wait for it.
    pub fn new(inner: S, conn: Arc<ClientConn>, timeouts: Arc<IoTimeouts>) -> Self {
        let seen_epoch = conn.activity.epoch();
        Self {
            inner,
            prefix: None,
            deadline: None,
            conn,
            timeouts,
            phase: Phase::Fresh,
            protocol: None,
            seen_epoch,
            write_blocked: false,
            write_wait: None,
        }
    }

    /// Reads until the protocol is known: HTTP/2 when the connection preface arrives, HTTP/1
    /// at the first byte that differs from it. `None` when the client closed or stayed silent
    /// past `request_header`, or the connection was asked to close.
    pub async fn detect(&mut self) -> io::Result<Option<Protocol>> {
        Ok(match self.read_preface().await? {
            Some(true) => Some(self.decided(Protocol::Http2)),
            Some(false) => Some(self.decided(Protocol::Http1)),
            None => None,
        })
    }

    /// A connection that must be HTTP/2 (an h2c-only listener, or ALPN h2): reads the client
    /// connection preface within `request_header`. Anything else is a connection error of
    /// type PROTOCOL_ERROR (RFC 9113 §3.4), which h2 would only answer by closing: the
    /// server's preface and a GOAWAY are written here, and `None` is returned, as it is when
    /// the client closed or stayed silent.
    pub async fn preface(&mut self) -> io::Result<Option<Protocol>> {
        self.deadline = None;
        match self.read_preface().await? {
            Some(true) => Ok(Some(self.decided(Protocol::Http2))),
            Some(false) => {
                tracing::debug!(peer = %self.conn.info.peer, "invalid HTTP/2 preface: GOAWAY");
                self.write_all(INVALID_PREFACE).await?;
                self.shutdown().await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Whether the connection opens with the HTTP/2 preface, read as far as needed to tell;
    /// `None` when the client closed or stayed silent first.
    async fn read_preface(&mut self) -> io::Result<Option<bool>> {
        loop {
            let prefix = self.prefix.as_deref().map_or(&[][..], |p| &p[..]);
            let n = prefix.len().min(H2_PREFACE.len());
            if prefix[..n] != H2_PREFACE[..n] {
                return Ok(Some(false));
            }
            if n == H2_PREFACE.len() {
                return Ok(Some(true));
            }
            if !self.read_ahead().await? {
                return Ok(None);
            }
        }
    }

    /// The protocol was settled elsewhere (TLS ALPN): the first head (or stream) is due within
    /// its deadline from now.
    pub fn known(&mut self, protocol: Protocol) -> Protocol {
        self.deadline = None;
        self.decided(protocol)
    }

    fn decided(&mut self, protocol: Protocol) -> Protocol {
        self.protocol = Some(protocol);
        match protocol {
            // The head has begun; its deadline still counts from the accept.
            Protocol::Http1 => self.phase = Phase::Head,
            // No "head in progress" at the connection level: idle until a stream opens.
            Protocol::Http2 => self.set_idle(),
        }
        protocol
    }

    /// The connection it is the I/O of.
    pub fn conn(&self) -> &Arc<ClientConn> {
        &self.conn
    }

    /// Puts back bytes read but not used (what a client sent after an upgrade request).
    pub fn unread(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            let prefix = self.prefix.get_or_insert_default();
            let rest = prefix.split();
            prefix.extend_from_slice(&bytes);
            prefix.extend_from_slice(&rest);
        }
    }

    /// Reads what is available into the read-ahead; `false` on end of stream, at the deadline,
    /// or once the connection is asked to close (a drain before its first request): watched
    /// here, not beside this future, which would make every connection's task larger.
    async fn read_ahead(&mut self) -> io::Result<bool> {
        poll_fn(|cx| {
            if self.conn.poll_close_requested(cx).is_ready() {
                return Poll::Ready(Ok(false));
            }
            let mut chunk = [0u8; 2048];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(false)),
                Poll::Ready(Ok(())) => {
                    let prefix = self.prefix.get_or_insert_default();
                    prefix.extend_from_slice(buf.filled());
                    Poll::Ready(Ok(true))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => self.poll_deadline(cx).map(|()| Ok(false)),
            }
        })
        .await
    }

    /// The HTTP/1 engine begins a request head (read by `ConnIo` or already buffered, as a
    /// pipelined one is): it is due within `request_header` of its first wait.
    pub fn head_started(&mut self) {
        self.follow_requests();
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.deadline = None;
        }
    }

    fn set_idle(&mut self) {
        self.phase = Phase::Idle;
        match (self.protocol, &mut self.deadline) {
            (Some(Protocol::Http1), _) => self.deadline = None,
            (_, Some(deadline)) => deadline.set(Instant::now() + self.timeouts.idle),
            (_, None) => {}
        }
    }

    /// Ready once the current phase's deadline has passed, arming it at its first wait.
    /// Never while a request is in progress, nor for a parked HTTP/1 connection.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let limit = match (self.phase, self.protocol) {
            (Phase::Active, _) | (Phase::Idle, Some(Protocol::Http1)) => return Poll::Pending,
            (Phase::Idle, _) => self.timeouts.idle,
            (Phase::Fresh | Phase::Head, _) => self.timeouts.request_header,
        };
        self.deadline
            .get_or_insert_with(|| Deadline::at(Instant::now() + limit))
            .poll_elapsed(cx)
    }

    /// Brings the phase up to date with the requests on the connection.
    fn follow_requests(&mut self) {
        let epoch = self.conn.activity.epoch();
        if epoch == self.seen_epoch {
            return;
        }
        self.seen_epoch = epoch;
        if self.conn.activity.active() > 0 {
            self.phase = Phase::Active;
        } else {
            self.set_idle();
        }
    }
}

impl<S> ConnIo<S> {
    /// A write returned `Pending`: how the client's reading is judged now.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> Verdict {
        let now = Instant::now();
        let wait = match &mut self.write_wait {
            Some(wait) => {
                let due = wait.rate.waiting(now);
                if wait.timer.deadline() != due {
                    wait.timer.as_mut().reset(due);
                }
                wait
            }
            None => {
                let timeouts = &self.timeouts;
                let mut rate = SendRate::new(timeouts.client_write, timeouts.min_send_rate);
                let due = rate.waiting(now);
                self.write_wait.insert(Box::new(WriteWait {
                    rate,
                    timer: Box::pin(tokio::time::sleep_until(due)),
                }))
            }
        };
        loop {
            if wait.timer.as_mut().poll(cx).is_pending() {
                return Verdict::Reading;
            }
            match wait.rate.deadline(Instant::now()) {
                // A new window, the write still waiting in it.
                Verdict::Reading => {
                    let due = wait.rate.waiting(Instant::now());
                    wait.timer.as_mut().reset(due);
                }
                verdict => return verdict,
            }
        }
    }

    fn note_write(&mut self, blocked: bool) {
        self.write_blocked = blocked;
    }
}

impl<S: AsyncRead + AsyncWrite + ResetOnClose + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(prefix) = &mut this.prefix {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix[..n]);
            prefix.advance(n);
            if prefix.is_empty() {
                // Hold no allocation once it is all handed on.
                this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        if this.conn.activity.is_upgraded() {
            // A tunnel (WebSocket...): the bytes are not HTTP, and HTTP deadlines do not apply.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(result);
        }
        this.follow_requests();
        if this.poll_deadline(cx).is_pending() {
            return Poll::Pending;
        }
        if this.phase == Phase::Head && !this.write_blocked {
            // Best effort: the socket is idle in this phase, so the write normally completes at once.
            let _ = Pin::new(&mut this.inner).poll_write(cx, REQUEST_TIMEOUT);
            let _ = Pin::new(&mut this.inner).poll_flush(cx);
            tracing::debug!(peer = %this.conn.info.peer, "request head timed out: 408");
        }
        // End of stream: the connection closes (mid-head, after the 408).
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + ResetOnClose + Unpin> ConnIo<S> {
    /// Runs one write-side poll under [`SendRate`]; `taken` tells how many bytes a ready
    /// result wrote.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
        taken: impl FnOnce(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        let result = poll(Pin::new(&mut self.inner), cx);
        let verdict = match &result {
            Poll::Pending => self.write_waits(cx),
            Poll::Ready(Ok(done)) => {
                let n = taken(done);
                if n > 0 {
                    self.conn.info.written.add(n);
                }
                // No account yet: no write has waited, so there is no window to judge.
                match &mut self.write_wait {
                    Some(wait) => wait.rate.took(n, Instant::now),
                    None => Verdict::Reading,
                }
            }
            Poll::Ready(Err(_)) => Verdict::Reading,
        };
        if let Some(reason) = verdict.slow_reader() {
            tracing::debug!(peer = %self.conn.info.peer, reason = reason.as_str(), "client reads too slowly: closing");
            self.conn.set_slow_reader(reason);
            self.inner.reset_on_close();
            let message = match verdict {
                Verdict::Stalled => "client did not read for timeouts.client_write",
                _ => "client read slower than limits.min_send_rate",
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)));
        }
        self.note_write(result.is_pending());
        result
    }
}

impl<S: AsyncRead + AsyncWrite + ResetOnClose + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard_write(cx, |inner, cx| inner.poll_write(cx, buf), |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .guard_write(cx, |inner, cx| inner.poll_write_vectored(cx, bufs), |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .guard_write(cx, |inner, cx| inner.poll_flush(cx), |()| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .guard_write(cx, |inner, cx| inner.poll_shutdown(cx), |()| 0)
    }
}

#[cfg(test)]
mod tests;
