//! One backend connection, and a request's head and body on their way out on it.

use crate::body::{ClientBodyError, RequestBody};
use crate::h1::{Coding, RequestFraming, SendError, Wire};
use crate::upstream::observed::Open;
use bytes::BytesMut;
use http::{HeaderMap, header};
use http_body::Body as _;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::net::TcpStream;

/// The first read of a response, into a connection that holds no buffer: a usual head (and
/// a small body) fits, and a buffer this size is cheap to make.
const FIRST_READ: usize = 4 * 1024;

/// A connection to a backend, with what has been read from it and not yet used.
#[derive(Debug)]
pub struct Conn {
    pub(super) io: TcpStream,
    pub(super) buf: BytesMut,
    /// Bytes asked of the socket per read (`limits.max_response_header_bytes`): a body is
    /// passed on in pieces no larger, so a slow client holds about one per response.
    read_size: usize,
    /// Counts the connection open until it is dropped.
    _open: Open,
}

impl Conn {
    /// A new connection, read `read_size` bytes at a time.
    pub fn new(io: TcpStream, open: Open, read_size: usize) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            read_size: read_size.max(FIRST_READ),
            _open: open,
        }
    }

    /// Lets the read buffer go: an idle connection holds none (it would pin up to a read's
    /// size per pooled connection). Only for a connection with nothing unread.
    pub(super) fn park(&mut self) {
        debug_assert!(self.buf.is_empty());
        self.buf = BytesMut::new();
    }

    /// The socket, the bytes read and not used, and the open count.
    pub(super) fn into_parts(self) -> (TcpStream, BytesMut, Open) {
        (self.io, self.buf, self._open)
    }

    /// Whether an idle connection may carry another request: the backend has neither closed
    /// it nor sent anything unasked. Costs a syscall only when the socket says it is readable.
    pub fn is_fit(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable may be a stale mark from the last response: a read tells.
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Reads more of the response into `buf`; `Ok(0)` when the backend has closed.
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(FIRST_READ);
        } else if self.buf.capacity() - self.buf.len() < self.read_size / 4 {
            self.buf.reserve(self.read_size);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// The request's head and body on their way to the backend.
#[derive(Debug)]
pub struct Upload {
    wire: Wire,
    body: RequestBody,
}

/// Why an upload stopped: the backend's socket (`Io`) or the client's body (`Body`).
pub(super) type UploadError = SendError<ClientBodyError>;

impl Upload {
    /// The encoded `head`, then `body` framed as `framing` says.
    pub fn new(head: Vec<u8>, body: RequestBody, framing: RequestFraming) -> Self {
        let coding = match framing {
            RequestFraming::Chunked => Coding::Chunked,
            RequestFraming::Empty | RequestFraming::Length(_) => Coding::Raw,
        };
        Self {
            wire: Wire::new(head, coding),
            body,
        }
    }

    /// Sends what it can: ready when all of it is written. A body already at hand goes out
    /// in the head's write.
    pub(super) fn poll(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), UploadError>> {
        self.wire.poll_send(Pin::new(&mut self.body), io, cx)
    }

    /// Drives the upload to its end, after the response: the connection is fit for another
    /// request only once it is.
    pub(super) async fn finish(mut self, conn: &mut Conn) -> bool {
        poll_fn(|cx| self.poll(&mut conn.io, cx)).await.is_ok()
    }
}

/// How the request's body is framed: what hyper's client chose, so backends see what they
/// saw behind it. A body at its end has no framing field, unless the client's request
/// carried `Content-Length` (a `POST` with `Content-Length: 0` keeps it).
pub fn request_framing(headers: &HeaderMap, body: &RequestBody) -> RequestFraming {
    if body.is_end_stream() {
        return if headers.contains_key(header::CONTENT_LENGTH) {
            RequestFraming::Length(0)
        } else {
            RequestFraming::Empty
        };
    }
    match body.size_hint().exact() {
        Some(length) => RequestFraming::Length(length),
        None => RequestFraming::Chunked,
    }
}
