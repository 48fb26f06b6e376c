//! The bytes of one message on their way out, either way: a response to a client, a request
//! body to a backend. Small frames are copied behind the head or the chunk-size line so one
//! write carries them; large ones go out from their own bytes in the same vectored write.

use super::response::{chunk_size_line, encode_trailers};
use bytes::{Buf, Bytes};
use http::HeaderMap;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

/// Frames up to this size are copied into the output buffer rather than written from their
/// own bytes.
const COPY_UP_TO: usize = 4096;
/// Copied bytes queued past this wait for a write before more are taken.
const QUEUE_UP_TO: usize = 16 * 1024;

/// How body bytes are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Not at all: the message has no body (a response to HEAD, a 204).
    Discard,
    /// As they are (a `Content-Length` body, or one that ends with the connection).
    Raw,
    /// In chunks, ended by the last chunk and any trailers.
    Chunked,
}

/// Why sending a body stopped.
#[derive(Debug)]
pub enum SendError<E> {
    /// The socket failed.
    Io(io::Error),
    /// The body failed.
    Body(E),
}

/// A message's bytes queued for a socket.
#[derive(Debug)]
pub struct Wire {
    coding: Coding,
    /// Head, chunk-size lines, small frames, trailers: written from `written` on.
    out: Vec<u8>,
    written: usize,
    /// A large frame, after `out`.
    data: Bytes,
    /// What follows `data` (a chunk's CRLF).
    tail: &'static [u8],
    /// The body has ended and its last bytes are queued.
    ended: bool,
}

impl Wire {
    /// A message whose head is `out`, and whose body is coded as `coding`.
    pub fn new(out: Vec<u8>, coding: Coding) -> Self {
        Self {
            coding,
            out,
            written: 0,
            data: Bytes::new(),
            tail: b"",
            ended: false,
        }
    }

    /// Whether the body has ended (its last bytes may still be queued).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether everything queued has been written.
    pub fn is_written(&self) -> bool {
        self.written == self.out.len() && self.data.is_empty() && self.tail.is_empty()
    }

    /// Whether another frame may be queued before what is queued is written: a large frame
    /// is held by its own bytes, one at a time, and copies stop at 16 KiB queued.
    pub fn has_room(&self) -> bool {
        self.data.is_empty() && self.out.len() - self.written < QUEUE_UP_TO
    }

    /// Queues a data frame.
    pub fn queue(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match self.coding {
            Coding::Discard => {}
            Coding::Chunked => {
                chunk_size_line(data.len(), &mut self.out);
                if data.len() <= COPY_UP_TO {
                    self.out.extend_from_slice(&data);
                    self.out.extend_from_slice(b"\r\n");
                } else {
                    self.data = data;
                    self.tail = b"\r\n";
                }
            }
            Coding::Raw => {
                if data.len() <= COPY_UP_TO {
                    self.out.extend_from_slice(&data);
                } else {
                    self.data = data;
                }
            }
        }
    }

    /// Queues the end of the body, with its trailers when it is chunked.
    pub fn end(&mut self, trailers: Option<&HeaderMap>) {
        if self.coding == Coding::Chunked {
            encode_trailers(&mut self.out, trailers);
        }
        self.ended = true;
    }

    /// Sends `body` after what is queued: ready when all of it is written (not flushed),
    /// pending when the socket or the body is. The body is asked before each write, so a
    /// frame already at hand (a small body read with its head) goes out in the head's write.
    pub fn poll_send<B, W>(
        &mut self,
        mut body: Pin<&mut B>,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError<B::Error>>>
    where
        B: http_body::Body<Data = Bytes>,
        W: AsyncWrite + Unpin,
    {
        loop {
            let mut waiting = false;
            if !self.ended && self.has_room() {
                match body.as_mut().poll_frame(cx) {
                    Poll::Pending => waiting = true,
                    Poll::Ready(None) => self.end(None),
                    Poll::Ready(Some(Err(error))) => {
                        return Poll::Ready(Err(SendError::Body(error)));
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        match frame.into_data() {
                            Ok(data) => self.queue(data),
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    self.end(Some(&trailers));
                                }
                            }
                        }
                        continue;
                    }
                }
            }
            ready!(self.poll_write_out(io, cx)).map_err(SendError::Io)?;
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            if waiting {
                return Poll::Pending;
            }
        }
    }

    /// Writes what is queued, in as few writes as the socket takes.
    pub fn poll_write_out<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.written < self.out.len() || !self.data.is_empty() || !self.tail.is_empty() {
            let slices = [
                IoSlice::new(&self.out[self.written..]),
                IoSlice::new(&self.data),
                IoSlice::new(self.tail),
            ];
            let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        let from_out = n.min(self.out.len() - self.written);
        self.written += from_out;
        n -= from_out;
        let from_data = n.min(self.data.len());
        self.data.advance(from_data);
        n -= from_data;
        self.tail = &self.tail[n.min(self.tail.len())..];
    }
}
