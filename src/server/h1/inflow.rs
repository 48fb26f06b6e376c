//! A request body on its way from the client's socket to the proxy: whole when it came with
//! its head, otherwise fed a frame at a time as the proxy asks for one (so a client is read
//! only as fast as its backend takes the body), with `Expect: 100-continue` answered at the
//! first ask.

use super::{Io, poll_read_into};
use crate::body::{Feeder, Inbound, Want, feed};
use crate::h1::{BodyFraming, Chunked, Decoded};
use bytes::BytesMut;
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The most read from the socket at once for a body.
const BODY_READ: usize = 16 * 1024;

/// What is left of the body to read.
enum Left {
    Length(u64),
    Chunked(Box<Chunked>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Feeding,
    /// Read to its end.
    Done,
    /// The proxy dropped the body, or it could not be read: the rest stays unread (the
    /// connection closes after the response).
    Stopped,
}

/// A body being fed to the proxy.
pub(super) struct Inflow {
    feeder: Feeder,
    left: Left,
    state: State,
    /// Bytes of `100 Continue` written so far, while one is owed.
    continue_owed: Option<usize>,
}

impl Inflow {
    /// The request's body: whole (`buf` already holds it), fed (returned with its feed), or
    /// none.
    pub(super) fn start(
        framing: BodyFraming,
        expect_continue: bool,
        buf: &mut BytesMut,
    ) -> (Option<Inbound>, Option<Inflow>) {
        let left = match framing {
            BodyFraming::None => return (None, None),
            BodyFraming::Length(n) if buf.len() as u64 >= n => {
                let body = buf.split_to(n as usize).freeze();
                return (Some(Inbound::full(body)), None);
            }
            BodyFraming::Length(n) => Left::Length(n),
            // The largest trailer section a head's limit would allow.
            BodyFraming::Chunked => Left::Chunked(Box::new(Chunked::new(32 * 1024))),
        };
        let hint = match left {
            Left::Length(n) => SizeHint::with_exact(n),
            Left::Chunked(_) => SizeHint::default(),
        };
        let (feeder, body) = feed(hint);
        let flow = Inflow {
            feeder,
            left,
            state: State::Feeding,
            // A client that sent body bytes already is not waiting for the 100.
            continue_owed: (expect_continue && buf.is_empty()).then_some(0),
        };
        (Some(Inbound::Fed(body)), Some(flow))
    }

    /// Whether the body was read to its end.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether it is still being fed.
    pub(super) fn is_feeding(&self) -> bool {
        self.state == State::Feeding
    }

    /// Feeds one frame when the proxy wants one. Ready(Ok) on progress (a frame, the end, or
    /// the proxy giving the body up); an error when the client left mid-body.
    pub(super) fn poll_feed(
        &mut self,
        io: &mut Io,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<()>> {
        if ready!(self.feeder.poll_want(cx)) == Want::Gone {
            self.state = State::Stopped;
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_continue(io, cx))?;
        loop {
            if let Some(progress) = self.take_frame(buf) {
                return Poll::Ready(Ok(progress));
            }
            let want = match &self.left {
                Left::Length(n) => usize::try_from(*n).unwrap_or(usize::MAX).min(BODY_READ),
                Left::Chunked(_) => BODY_READ,
            };
            let cap = buf.len() + want;
            if ready!(poll_read_into(io, cx, buf, cap))? == 0 {
                self.state = State::Stopped;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed the connection mid-body",
                )));
            }
        }
    }

    /// Hands the proxy what `buf` holds of the body, if anything.
    fn take_frame(&mut self, buf: &mut BytesMut) -> Option<()> {
        match &mut self.left {
            Left::Length(left) => {
                if buf.is_empty() {
                    return None;
                }
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                self.feeder.send(Frame::data(buf.split_to(n).freeze()));
                if *left == 0 {
                    self.feeder.finish();
                    self.state = State::Done;
                }
            }
            Left::Chunked(decoder) => match decoder.decode(buf) {
                Ok(None) => return None,
                Ok(Some(Decoded::Data(data))) => self.feeder.send(Frame::data(data)),
                Ok(Some(Decoded::End(trailers))) if trailers.is_empty() => {
                    self.feeder.finish();
                    self.state = State::Done;
                }
                Ok(Some(Decoded::End(trailers))) => {
                    self.feeder.send(Frame::trailers(trailers));
                    self.state = State::Done;
                }
                Err(error) => {
                    // The proxy's body read fails and the
                    // request is answered; the connection closes after it.
                    tracing::debug!(%error, "request body refused");
                    self.feeder.fail();
                    self.state = State::Stopped;
                }
            },
        }
        Some(())
    }

    /// Writes the `100 Continue` owed before the first read of the body.
    fn poll_continue(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(written) = self.continue_owed {
            if written == CONTINUE.len() {
                self.continue_owed = None;
                return Pin::new(&mut *io).poll_flush(cx);
            }
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &CONTINUE[written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.continue_owed = Some(written + n);
        }
        Poll::Ready(Ok(()))
    }
}
