//! A backend's response body, read from its connection as the client takes it: bytes are
//! passed on in the pieces they were read in (a chunked body is decoded, never re-chunked
//! here), and the connection goes back to the idle pool the moment both the response and
//! the request's upload have ended.

use super::conn::{Conn, Upload, UploadError};
use super::idle::IdleConns;
use crate::body::ClientBodyError;
use crate::h1::{ChunkError, Chunked, Decoded, RawFields, ResponseBodyFraming};
use crate::upstream::observed::Open;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::net::TcpStream;

/// What is left of the body to read.
#[derive(Debug)]
enum Remaining {
    /// This many bytes.
    Length(u64),
    /// Chunks, to the last one and its trailers.
    Chunked(Chunked),
    /// Whatever comes until the backend closes.
    UntilClose,
    /// Nothing: the body has ended (or failed).
    Done,
}

/// Why a response body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The backend closed before the body's end.
    #[error("backend closed the connection mid-body")]
    Closed,
    /// The backend's socket failed.
    #[error("backend connection failed: {0}")]
    Io(#[from] io::Error),
    /// The backend's chunked framing was malformed or over a limit.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// The client's upload, still going with the response, failed.
    #[error("request body failed mid-response: {0}")]
    Upload(ClientBodyError),
}

/// A response body streamed from its backend connection.
#[derive(Debug)]
pub struct Body {
    /// The connection, until the body ends (or is taken by an upgrade).
    conn: Option<Conn>,
    /// The request's body, when the backend answered before all of it was sent (rare, so
    /// boxed: the body stays small for the usual response).
    upload: Option<Box<Upload>>,
    remaining: Remaining,
    /// The connection may serve another request after this one.
    keep_alive: bool,
    idle: Arc<IdleConns>,
    /// A failure to report at the next poll (see [`Body::fail`]).
    failed: Option<BodyError>,
    /// The response's fields, until whoever writes the head to the client takes them.
    fields: Option<RawFields>,
}

/// A backend connection after its 101: the socket, and what the backend sent after the head.
#[derive(Debug)]
pub struct Upgraded {
    /// The socket.
    pub io: TcpStream,
    /// Bytes of the new protocol that came in behind the 101's head.
    pub read: Bytes,
    /// Counts the connection open while the tunnel lasts.
    _open: Open,
}

impl Body {
    pub(super) fn new(
        conn: Conn,
        upload: Option<Box<Upload>>,
        framing: ResponseBodyFraming,
        keep_alive: bool,
        max_trailer_bytes: usize,
        idle: &Arc<IdleConns>,
        fields: Option<RawFields>,
    ) -> Self {
        let remaining = match framing {
            ResponseBodyFraming::Empty | ResponseBodyFraming::Tunnel => Remaining::Done,
            ResponseBodyFraming::Length(length) => Remaining::Length(length),
            ResponseBodyFraming::Chunked => Remaining::Chunked(Chunked::new(max_trailer_bytes)),
            ResponseBodyFraming::UntilClose => Remaining::UntilClose,
        };
        let mut body = Self {
            conn: Some(conn),
            upload,
            remaining,
            keep_alive,
            idle: Arc::clone(idle),
            failed: None,
            fields,
        };
        if framing == ResponseBodyFraming::Empty {
            body.release();
        }
        body
    }

    /// The response's fields as the backend sent them, when they have not been taken.
    pub fn fields_mut(&mut self) -> Option<&mut RawFields> {
        self.fields.as_mut()
    }

    /// Takes the response's fields, to write them out.
    pub fn take_fields(&mut self) -> Option<RawFields> {
        self.fields.take()
    }

    /// The connection of a 101 response, for the tunnel; `None` when the request's body was
    /// still going out (the backend switched protocols in the middle of it).
    pub fn upgrade(&mut self) -> Option<Upgraded> {
        if self.upload.is_some() {
            return None;
        }
        let (io, read, open) = self.conn.take()?.into_parts();
        Some(Upgraded {
            io,
            read: read.freeze(),
            _open: open,
        })
    }

    /// The body has ended: the connection goes back to the pool if it may serve again.
    fn release(&mut self) {
        self.remaining = Remaining::Done;
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Bytes past the body's end mean the backend's framing cannot be trusted.
        if self.keep_alive && conn.buf.is_empty() {
            self.idle.put(conn, self.upload.take());
        }
    }

    /// The body failed: the connection closes, and the error is reported at the next poll.
    /// That yield lets what was passed on before it reach the client first: an HTTP/2
    /// stream reset in the same turn as its last frames would discard the unsent head and
    /// data, and the client would never see that the response had begun.
    fn fail(
        &mut self,
        error: BodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.conn = None;
        self.upload = None;
        self.failed = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(error) = this.failed.take() {
            this.remaining = Remaining::Done;
            return Poll::Ready(Some(Err(error)));
        }
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(upload) = &mut this.upload {
            match upload.poll(&mut conn.io, cx) {
                Poll::Ready(Ok(())) => this.upload = None,
                Poll::Ready(Err(UploadError::Body(error))) => {
                    return this.fail(BodyError::Upload(error), cx);
                }
                // The backend stopped reading the upload; what it sends is still read.
                Poll::Ready(Err(UploadError::Io(error))) => {
                    tracing::debug!(%error, "backend stopped taking the request mid-response");
                    this.upload = None;
                    this.keep_alive = false;
                }
                Poll::Pending => {}
            }
        }
        loop {
            match decode(&mut this.remaining, &mut conn.buf) {
                Ok(Some(frame)) => {
                    if matches!(this.remaining, Remaining::Done) {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) if matches!(this.remaining, Remaining::Done) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(error) => return this.fail(error.into(), cx),
            }
            match ready!(conn.poll_read(cx)) {
                Ok(0) if matches!(this.remaining, Remaining::UntilClose) => {
                    this.remaining = Remaining::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(BodyError::Closed, cx),
                Ok(_) => {}
                Err(error) => return this.fail(error.into(), cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.remaining, Remaining::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Remaining::Length(length) => SizeHint::with_exact(length),
            Remaining::Done => SizeHint::with_exact(0),
            Remaining::Chunked(_) | Remaining::UntilClose => SizeHint::default(),
        }
    }
}

/// The next frame the bytes in `buf` hold; `Ok(None)` when more must be read (or, with
/// `remaining` now `Done`, when the body has ended).
fn decode(
    remaining: &mut Remaining,
    buf: &mut BytesMut,
) -> Result<Option<Frame<Bytes>>, ChunkError> {
    match remaining {
        Remaining::Done => Ok(None),
        _ if buf.is_empty() => Ok(None),
        Remaining::Length(left) => {
            let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
            *left -= n as u64;
            if *left == 0 {
                *remaining = Remaining::Done;
            }
            Ok(Some(Frame::data(buf.split_to(n).freeze())))
        }
        Remaining::UntilClose => Ok(Some(Frame::data(buf.split().freeze()))),
        Remaining::Chunked(chunked) => match chunked.decode(buf)? {
            None => Ok(None),
            Some(Decoded::Data(data)) => Ok(Some(Frame::data(data))),
            Some(Decoded::End(trailers)) => {
                *remaining = Remaining::Done;
                Ok((!trailers.is_empty()).then(|| Frame::trailers(trailers)))
            }
        },
    }
}
