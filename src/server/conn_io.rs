//! The client connection's I/O, with the timeouts hyper does not give us and the bytes portero
//! reads itself. hyper's own header timer also runs while a keep-alive connection is idle
//! (which would make `idle` equal to `request_header`) and closes without a 408; and an idle
//! HTTP/1 connection inside hyper keeps two 8 KiB buffers. So portero reads the first bytes of
//! a connection (to tell HTTP/1 from HTTP/2) and of every request after a keep-alive pause
//! itself, with hyper out of the picture, and hands them to hyper through [`ConnIo::poll_read`].
//!
//! One deadline at a time:
//! - before the first byte of a connection: `request_header` (close silently);
//! - from the first byte of an HTTP/1 request head until the request starts: `request_header`
//!   (answer 408, then close) — slowloris;
//! - while any request is in progress: none (body and upstream timeouts apply there);
//! - after the last request ended: `idle` (close silently), for HTTP/1 keep-alive and for an
//!   HTTP/2 connection with no open stream;
//! - once upgraded to a tunnel (WebSocket): none; shutdown's drain deadline bounds it.

use crate::conn::ClientConn;
use bytes::{Buf, Bytes, BytesMut};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 Request Timeout\n";

/// The two deadlines the wrapper enforces.
#[derive(Debug, Clone, Copy)]
pub struct IoTimeouts {
    /// First byte, and a whole request head.
    pub request_header: Duration,
    /// Between requests.
    pub idle: Duration,
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
    /// Bytes portero read itself and hyper has not seen yet.
    prefix: BytesMut,
    // Boxed because hyper needs an `Unpin` stream; one timer per connection, as hyper's own.
    deadline: Pin<Box<Sleep>>,
    conn: Arc<ClientConn>,
    timeouts: IoTimeouts,
    phase: Phase,
    protocol: Option<Protocol>,
    seen_epoch: u32,
    write_blocked: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ConnIo<S> {
    /// Wraps a freshly accepted stream; its first byte is due within `request_header`.
    pub fn new(inner: S, conn: Arc<ClientConn>, timeouts: IoTimeouts) -> Self {
        let seen_epoch = conn.activity.epoch();
        Self {
            inner,
            prefix: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep(timeouts.request_header)),
            conn,
            timeouts,
            phase: Phase::Fresh,
            protocol: None,
            seen_epoch,
            write_blocked: false,
        }
    }

    /// Reads until the protocol is known: HTTP/2 when the connection preface arrives, HTTP/1
    /// at the first byte that differs from it. `None` when the client closed or stayed silent
    /// past `request_header`.
    pub async fn detect(&mut self) -> io::Result<Option<Protocol>> {
        loop {
            let n = self.prefix.len().min(H2_PREFACE.len());
            if self.prefix[..n] != H2_PREFACE[..n] {
                return Ok(Some(self.decided(Protocol::Http1)));
            }
            if n == H2_PREFACE.len() {
                return Ok(Some(self.decided(Protocol::Http2)));
            }
            if !self.read_ahead().await? {
                return Ok(None);
            }
        }
    }

    /// The protocol was settled elsewhere (TLS ALPN): the first head (or stream) is due within
    /// its deadline from now.
    pub fn known(&mut self, protocol: Protocol) -> Protocol {
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.timeouts.request_header);
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

    /// A parked HTTP/1 keep-alive connection: waits for the first bytes of the next request
    /// (up to `idle` since the last one ended). `false` when the client closed or stayed
    /// silent.
    pub async fn park(&mut self) -> io::Result<bool> {
        if !self.prefix.is_empty() {
            self.start_head();
            return Ok(true);
        }
        let more = self.read_ahead().await?;
        if more {
            self.start_head();
        }
        Ok(more)
    }

    /// Puts back bytes hyper read but did not use (the start of the next request).
    pub fn unread(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            let rest = self.prefix.split();
            self.prefix.extend_from_slice(&bytes);
            self.prefix.extend_from_slice(&rest);
        }
    }

    /// Reads what is available into the read-ahead; `false` on end of stream or at the deadline.
    async fn read_ahead(&mut self) -> io::Result<bool> {
        poll_fn(|cx| {
            let mut chunk = [0u8; 2048];
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    self.prefix.extend_from_slice(buf.filled());
                    Poll::Ready(Ok(!buf.filled().is_empty()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => self.deadline.as_mut().poll(cx).map(|()| Ok(false)),
            }
        })
        .await
    }

    fn start_head(&mut self) {
        self.phase = Phase::Head;
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.timeouts.request_header);
    }

    fn set_idle(&mut self) {
        self.phase = Phase::Idle;
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.timeouts.idle);
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
            self.offer_parking();
        }
    }
}

impl<S> ConnIo<S> {
    /// hyper is reading the next head of an idle HTTP/1 connection: it can be parked without
    /// hyper, once everything hyper wrote has reached the socket (its buffer is not handed back).
    fn offer_parking(&self) {
        if self.protocol == Some(Protocol::Http1)
            && self.phase == Phase::Idle
            && !self.write_blocked
        {
            self.conn.set_parkable();
        }
    }
    fn note_write(&mut self, blocked: bool) {
        let unblocked = self.write_blocked && !blocked;
        self.write_blocked = blocked;
        if unblocked {
            self.offer_parking();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        if this.conn.activity.is_upgraded() {
            // A tunnel (WebSocket...): the bytes are not HTTP, and HTTP deadlines do not apply.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        this.follow_requests();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got_bytes = buf.filled().len() > before;
                let waiting = this.phase == Phase::Idle && this.conn.activity.active() == 0;
                if got_bytes && waiting && this.protocol == Some(Protocol::Http1) {
                    this.start_head();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        this.follow_requests();
        if this.phase == Phase::Active || this.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if this.phase == Phase::Head && !this.write_blocked {
            // Best effort: the socket is idle in this phase, so the write normally completes at once.
            let _ = Pin::new(&mut this.inner).poll_write(cx, REQUEST_TIMEOUT);
            let _ = Pin::new(&mut this.inner).poll_flush(cx);
            tracing::debug!(peer = %this.conn.peer, "request head timed out: 408");
        }
        // End of stream: hyper closes the connection (mid-head, without answering itself).
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_write(result.is_pending());
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_write(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.note_write(result.is_pending());
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
