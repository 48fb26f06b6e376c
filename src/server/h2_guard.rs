//! A watch on an HTTP/2 connection's frames, below hyper and h2: it reads only the 9-byte
//! frame headers going each way and enforces what h2 0.4 does not.
//!
//! - The client's first frame after the preface must be SETTINGS (RFC 9113 §3.4); h2 accepts
//!   any. Otherwise: GOAWAY PROTOCOL_ERROR.
//! - Control frames that each demand an answer (PING and SETTINGS without ACK) are limited
//!   per window of time (CVE-2019-9512, CVE-2019-9515). h2 answers every one; it holds one
//!   unsent answer at most, so a client that does not read is throttled by TCP, but one that
//!   reads can keep the connection busy answering for ever. Past the limit: GOAWAY
//!   ENHANCE_YOUR_CALM, as nghttp2, Envoy and HAProxy do for their own flood limits.
//! - PRIORITY frames, which need no answer but cost a parse each (CVE-2019-9513), are limited
//!   as Envoy limits them: at most [`PRIORITY_FRAMES_PER_STREAM`] per stream the client
//!   opened, plus one stream's worth. Past it: GOAWAY ENHANCE_YOUR_CALM.
//!
//! The GOAWAY goes out at a frame boundary of what h2 writes (a write that would cross one is
//! cut short at it), naming the highest stream the client opened; then reads end (h2 sees the
//! client close) and writes fail, so the connection closes. The client's bytes from the
//! offending frame on never reach h2.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// PING and SETTINGS frames (not ACKs) a client may send per [`CONTROL_WINDOW`]. A
/// keep-alive client sends one PING every few seconds, a browser one SETTINGS per
/// connection, and gRPC's bandwidth probe one PING per round trip while its window grows;
/// 1 000 is the count nghttp2 (`max_outbound_ack`) and Envoy (`max_outbound_control_frames`)
/// allow queued before they call it a flood. Counted here as sent in a window, since h2
/// queues none.
const CONTROL_FRAMES_PER_WINDOW: u32 = 1000;
/// The window [`CONTROL_FRAMES_PER_WINDOW`] counts over.
const CONTROL_WINDOW: Duration = Duration::from_secs(10);
/// PRIORITY frames allowed per stream opened (and once more for the connection): Envoy's
/// `max_inbound_priority_frames_per_stream` default. Browsers that still send PRIORITY send a
/// few per stream; RFC 9218 clients send none.
const PRIORITY_FRAMES_PER_STREAM: u64 = 100;

/// The client connection preface, which comes before the first frame.
const PREFACE_LEN: usize = 24;
const HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const PROTOCOL_ERROR: u32 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// An HTTP/2 connection's stream, watched.
pub struct H2Guard<S> {
    inner: S,
    incoming: Frames,
    outgoing: Frames,
    /// Frames seen from the client so far (the first must be SETTINGS).
    received: u64,
    /// The highest stream the client opened.
    last_stream: u32,
    window_start: Option<Instant>,
    in_window: u32,
    /// HEADERS frames from the client (streams opened, plus trailers).
    headers: u64,
    /// PRIORITY frames from the client.
    priorities: u64,
    goaway: GoAway,
    /// The reader, waiting for the GOAWAY to be written.
    reader: Option<Waker>,
}

enum GoAway {
    None,
    /// To write, from `.1` on.
    Pending(Vec<u8>, usize),
    /// Written and flushed.
    Sent,
}

/// Follows frame boundaries through a byte stream.
#[derive(Default)]
struct Frames {
    /// Bytes to pass before the first frame (the client preface).
    skip: usize,
    head: [u8; HEADER_LEN],
    /// Bytes of `head` filled.
    have: usize,
    /// Payload bytes left in the current frame.
    payload_left: usize,
    /// Whole headers seen.
    count: u64,
}

impl Frames {
    /// Follows `bytes`; calls `on_header` with each complete header and its offset in
    /// `bytes` (of the header's first byte, 0 when it began in an earlier call). Stops, and
    /// returns that offset, when `on_header` returns `false`.
    fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_header: impl FnMut(&[u8; HEADER_LEN]) -> bool,
    ) -> Option<usize> {
        let total = bytes.len();
        while !bytes.is_empty() {
            let at = total - bytes.len();
            let pass = if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                n
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                n
            } else {
                let n = (HEADER_LEN - self.have).min(bytes.len());
                self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                let started = at.saturating_sub(self.have);
                self.have += n;
                if self.have == HEADER_LEN {
                    self.have = 0;
                    self.count += 1;
                    self.payload_left = usize::from(self.head[0]) << 16
                        | usize::from(self.head[1]) << 8
                        | usize::from(self.head[2]);
                    if !on_header(&self.head) {
                        return Some(started);
                    }
                }
                n
            };
            bytes = &bytes[pass..];
        }
        None
    }

    /// Bytes to write before the next frame boundary: the rest of a header, or of a payload.
    fn to_boundary(&self) -> usize {
        if self.have > 0 {
            HEADER_LEN - self.have
        } else {
            self.payload_left
        }
    }
}

impl<S> H2Guard<S> {
    /// Watches `inner`, whose first bytes from the client are the connection preface.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            incoming: Frames {
                skip: PREFACE_LEN,
                ..Frames::default()
            },
            outgoing: Frames::default(),
            received: 0,
            last_stream: 0,
            window_start: None,
            in_window: 0,
            headers: 0,
            priorities: 0,
            goaway: GoAway::None,
            reader: None,
        }
    }

    /// Checks one frame header from the client; `false` once a GOAWAY is due.
    fn inspect(&mut self, head: &[u8; HEADER_LEN]) -> bool {
        let (kind, flags) = (head[3], head[4]);
        self.received += 1;
        if self.received == 1 && (kind != SETTINGS || flags & ACK != 0) {
            tracing::debug!(kind, "HTTP/2 client's first frame is not SETTINGS: GOAWAY");
            self.go_away(PROTOCOL_ERROR, "first frame must be SETTINGS");
            return false;
        }
        match kind {
            HEADERS => {
                let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & !(1 << 31);
                self.last_stream = self.last_stream.max(stream);
                self.headers += 1;
            }
            PRIORITY => {
                self.priorities += 1;
                if self.priorities > PRIORITY_FRAMES_PER_STREAM * (1 + self.headers) {
                    tracing::debug!("HTTP/2 PRIORITY flood: GOAWAY");
                    self.go_away(ENHANCE_YOUR_CALM, "too_many_priority_frames");
                    return false;
                }
            }
            PING | SETTINGS if flags & ACK == 0 => {
                let now = Instant::now();
                match self.window_start {
                    Some(start) if now.duration_since(start) < CONTROL_WINDOW => {}
                    _ => {
                        self.window_start = Some(now);
                        self.in_window = 0;
                    }
                }
                self.in_window += 1;
                if self.in_window > CONTROL_FRAMES_PER_WINDOW {
                    tracing::debug!(kind, "HTTP/2 control frame flood: GOAWAY");
                    self.go_away(ENHANCE_YOUR_CALM, "too_many_control_frames");
                    return false;
                }
            }
            _ => {}
        }
        true
    }

    fn go_away(&mut self, code: u32, debug: &str) {
        let len = u32::try_from(8 + debug.len()).expect("a short debug text");
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend([GOAWAY, 0, 0, 0, 0, 0]);
        frame.extend(self.last_stream.to_be_bytes());
        frame.extend(code.to_be_bytes());
        frame.extend(debug.as_bytes());
        self.goaway = GoAway::Pending(frame, 0);
    }

    /// Notes `n` bytes h2 wrote.
    fn wrote(&mut self, bytes: &[u8]) {
        self.outgoing.feed(bytes, |_| true);
    }
}

impl<S: AsyncWrite + Unpin> H2Guard<S> {
    /// Writes the due GOAWAY once what h2 wrote ends at a frame boundary (after h2's own
    /// SETTINGS, which must come first); `Ready` once it is written and flushed.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let GoAway::Pending(frame, written) = &mut self.goaway else {
                return Poll::Ready(Ok(()));
            };
            if self.outgoing.count == 0 || self.outgoing.to_boundary() > 0 {
                // h2 finishes its frame first, through `poll_write`, which comes back here.
                return Poll::Pending;
            }
            if *written < frame.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
                continue;
            }
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.goaway = GoAway::Sent;
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }

    /// A write while a GOAWAY is due or sent: only up to h2's next frame boundary, then the
    /// GOAWAY, then nothing.
    fn poll_write_closing(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let limit = self.outgoing.to_boundary();
        if limit > 0 && !matches!(self.goaway, GoAway::Sent) {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..limit.min(buf.len())]))?;
            self.wrote(&buf[..n]);
            return Poll::Ready(Ok(n));
        }
        ready!(self.poll_goaway(cx))?;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "GOAWAY sent by the frame guard",
        )))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.goaway, GoAway::None) {
            this.reader = Some(cx.waker().clone());
            // End of stream once the GOAWAY is out: h2 ends the connection.
            return this.poll_goaway(cx);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let cut = {
            let got = &buf.filled()[before..];
            let mut incoming = std::mem::take(&mut this.incoming);
            let cut = incoming.feed(got, |head| this.inspect(head));
            this.incoming = incoming;
            cut
        };
        if let Some(cut) = cut {
            buf.set_filled(before + cut);
            if cut == 0 {
                this.reader = Some(cx.waker().clone());
                return this.poll_goaway(cx);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.goaway, GoAway::None) {
            return this.poll_write_closing(cx, buf);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wrote(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.goaway, GoAway::None) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return this.poll_write_closing(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            this.wrote(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.goaway, GoAway::Pending(..)) && this.outgoing.to_boundary() == 0 {
            ready!(this.poll_goaway(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
