//! The client connection's I/O, with the timeouts hyper does not give us. hyper's own header
//! timer also runs while a keep-alive connection is idle, which would make `idle` equal to
//! `request_header`; and it closes without a 408. This wrapper sees every byte read and the
//! connection's [`ConnActivity`], and keeps one deadline:
//!
//! - before the first byte of a connection: `request_header` (close silently);
//! - from the first byte of an HTTP/1 request head until the request starts: `request_header`
//!   (answer 408, then close) — slowloris;
//! - while any request is in progress: none (body and upstream timeouts apply there);
//! - after the last request ended: `idle` (close silently), for HTTP/1 keep-alive and for an
//!   HTTP/2 connection with no open stream;
//! - once upgraded to a tunnel (WebSocket): none; shutdown's drain deadline bounds it.

use crate::conn::ClientConn;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Still matching the HTTP/2 preface; the number of bytes matched so far.
    Detecting(usize),
    Http1,
    Http2,
}

/// A client connection's stream with portero's header and idle timeouts.
pub struct ConnIo<S> {
    inner: S,
    // Boxed because hyper needs an `Unpin` stream; one timer per connection, as hyper's own.
    deadline: Pin<Box<Sleep>>,
    conn: Arc<ClientConn>,
    timeouts: IoTimeouts,
    phase: Phase,
    protocol: Protocol,
    seen_epoch: u32,
    write_blocked: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ConnIo<S> {
    /// Wraps a freshly accepted stream.
    pub fn new(inner: S, conn: Arc<ClientConn>, timeouts: IoTimeouts) -> Self {
        let seen_epoch = conn.activity.epoch();
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeouts.request_header)),
            conn,
            timeouts,
            phase: Phase::Fresh,
            protocol: Protocol::Detecting(0),
            seen_epoch,
            write_blocked: false,
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
        if this.conn.activity.is_upgraded() {
            // A tunnel (WebSocket...): the bytes are not HTTP, and HTTP deadlines do not apply.
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.protocol = detect(this.protocol, read);
                    let waiting = matches!(this.phase, Phase::Fresh | Phase::Idle);
                    if this.protocol == Protocol::Http2 {
                        // HTTP/2 has no "head in progress" at the connection level: once the
                        // preface is in, the connection is idle until a stream opens.
                        if matches!(this.phase, Phase::Fresh | Phase::Head) {
                            this.phase = Phase::Idle;
                            this.deadline
                                .as_mut()
                                .reset(Instant::now() + this.timeouts.idle);
                        }
                    } else if waiting && this.conn.activity.active() == 0 {
                        // A fresh connection's deadline already counts from the accept.
                        if this.phase == Phase::Idle {
                            let at = Instant::now() + this.timeouts.request_header;
                            this.deadline.as_mut().reset(at);
                        }
                        this.phase = Phase::Head;
                    }
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }

        // Nothing to read: bring the phase up to date with the requests, then check its deadline.
        let epoch = this.conn.activity.epoch();
        if epoch != this.seen_epoch {
            this.seen_epoch = epoch;
            if this.conn.activity.active() > 0 {
                this.phase = Phase::Active;
            } else {
                this.phase = Phase::Idle;
                this.deadline
                    .as_mut()
                    .reset(Instant::now() + this.timeouts.idle);
            }
        }
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

fn detect(protocol: Protocol, read: &[u8]) -> Protocol {
    let Protocol::Detecting(matched) = protocol else {
        return protocol;
    };
    let want = &H2_PREFACE[matched..];
    let n = want.len().min(read.len());
    if read[..n] != want[..n] {
        Protocol::Http1
    } else if matched + n == H2_PREFACE.len() {
        Protocol::Http2
    } else {
        Protocol::Detecting(matched + n)
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
        this.write_blocked = result.is_pending();
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write_blocked = result.is_pending();
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.write_blocked = result.is_pending();
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_http2_preface_across_reads() {
        let p = detect(Protocol::Detecting(0), b"PRI * HTTP/2.0\r\n");
        assert_eq!(p, Protocol::Detecting(16));
        assert_eq!(detect(p, b"\r\nSM\r\n\r\nextra"), Protocol::Http2);
        assert_eq!(
            detect(Protocol::Detecting(0), b"POST / HTTP/1.1"),
            Protocol::Http1
        );
        assert_eq!(detect(Protocol::Detecting(0), b"GET"), Protocol::Http1);
        assert_eq!(detect(Protocol::Http1, H2_PREFACE), Protocol::Http1);
    }

    #[test]
    fn the_408_is_a_well_formed_response() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
