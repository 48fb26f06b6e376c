//! A response on its way to an HTTP/1.1 client: the head with the framing this connection
//! needs, then the body frame by frame as the proxy yields it. Small frames are copied behind
//! the head or the chunk-size line so one write carries them; large ones go out from their
//! own bytes in the same vectored write.

use super::Io;
use crate::h1::{ResponseFraming, chunk_size_line, encode_response_head, encode_trailers};
use crate::proxy::ResponseBody;
use crate::server::served::Active;
use bytes::{Buf, Bytes};
use http::{HeaderMap, Response, StatusCode, Version, header};
use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

/// Frames up to this size are copied into the output buffer rather than written from their
/// own bytes.
const COPY_UP_TO: usize = 4096;

pin_project! {
    /// A response being sent.
    pub(super) struct Outflow {
        #[pin]
        body: ResponseBody<Active>,
        // The connection closes after this response.
        closes: bool,
        wire: Wire,
    }
}

/// The bytes of a response on their way out.
struct Wire {
    framing: ResponseFraming,
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

impl Outflow {
    /// Encodes the head of `response` to a request that was `HEAD` (`head_only`) over
    /// `version`; `upgrade` when it switches protocols, `close` when the connection closes
    /// after it.
    pub(super) fn new(
        response: Response<ResponseBody<Active>>,
        head_only: bool,
        version: Version,
        upgrade: bool,
        close: bool,
    ) -> Self {
        let (parts, body) = response.into_parts();
        let mut headers = parts.headers;
        let framing = framing(
            head_only,
            parts.status,
            &headers,
            &body.size_hint(),
            version,
        );
        if matches!(
            framing,
            ResponseFraming::Chunked
                | ResponseFraming::Length {
                    declared: false,
                    ..
                }
        ) {
            headers.remove(header::TRANSFER_ENCODING);
        }
        // The response's own `Connection` (portero's refusals say `close`) is read, then
        // replaced by what this connection does; an upgrade keeps its `Connection: upgrade`.
        let asked_close = !upgrade
            && headers
                .remove(header::CONNECTION)
                .is_some_and(|value| has_close(&value));
        let closes = !upgrade && (close || asked_close || framing == ResponseFraming::UntilClose);
        let connection = if upgrade {
            None
        } else if closes {
            Some("close")
        } else if version == Version::HTTP_10 {
            Some("keep-alive")
        } else {
            None
        };
        let mut out = Vec::with_capacity(256 + headers.len() * 48);
        encode_response_head(&mut out, parts.status, &headers, framing, connection);
        Self {
            body,
            closes,
            wire: Wire {
                framing,
                out,
                written: 0,
                data: Bytes::new(),
                tail: b"",
                ended: false,
            },
        }
    }

    /// Whether the connection closes after this response (its head says so).
    pub(super) fn closes(&self) -> bool {
        self.closes
    }

    /// Sends the rest of the response: ready when all of it has been written and flushed, or
    /// with an error when the client could not take it or the body failed midway (the
    /// response is then cut short, and the connection must close).
    pub(super) fn poll_send(
        self: Pin<&mut Self>,
        io: &mut Io,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let wire = this.wire;
        loop {
            ready!(wire.poll_write_out(io, cx))?;
            if wire.ended {
                return Pin::new(&mut *io).poll_flush(cx);
            }
            let frame = match this.body.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    // What is written so far goes out while the backend is waited on.
                    ready!(Pin::new(&mut *io).poll_flush(cx))?;
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    wire.end(None);
                    continue;
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Err(io::Error::other(error)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => wire.queue(data),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        wire.end(Some(&trailers));
                    }
                }
            }
        }
    }
}

impl Wire {
    fn queue(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match self.framing {
            ResponseFraming::Empty => {}
            ResponseFraming::Chunked => {
                chunk_size_line(data.len(), &mut self.out);
                if data.len() <= COPY_UP_TO {
                    self.out.extend_from_slice(&data);
                    self.out.extend_from_slice(b"\r\n");
                } else {
                    self.data = data;
                    self.tail = b"\r\n";
                }
            }
            ResponseFraming::Length { .. } | ResponseFraming::UntilClose => {
                if data.len() <= COPY_UP_TO {
                    self.out.extend_from_slice(&data);
                } else {
                    self.data = data;
                }
            }
        }
    }

    fn end(&mut self, trailers: Option<&HeaderMap>) {
        if self.framing == ResponseFraming::Chunked {
            encode_trailers(&mut self.out, trailers);
        }
        self.ended = true;
    }

    /// Writes what is queued, in as few writes as the socket takes.
    fn poll_write_out(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

fn has_close(value: &http::HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// How a response's body goes on the wire (RFC 9112 §6.3): none after HEAD, 1xx, 204 and
/// 304; the declared or known length; chunked for HTTP/1.1; until the close for HTTP/1.0.
pub(super) fn framing(
    head_only: bool,
    status: StatusCode,
    headers: &HeaderMap,
    hint: &SizeHint,
    version: Version,
) -> ResponseFraming {
    if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return ResponseFraming::Empty;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match (declared, hint.exact()) {
        (Some(length), _) => ResponseFraming::Length {
            length,
            declared: true,
        },
        (None, Some(length)) => ResponseFraming::Length {
            length,
            declared: false,
        },
        (None, None) if version == Version::HTTP_11 => ResponseFraming::Chunked,
        (None, None) => ResponseFraming::UntilClose,
    }
}

#[cfg(test)]
mod tests;
