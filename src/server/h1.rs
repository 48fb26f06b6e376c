//! HTTP/1.1 on a client connection, with portero's own engine ([`crate::h1`]): one loop per
//! connection, one request at a time, in order (pipelined requests wait their turn in the
//! read buffer).
//!
//! For each request:
//! 1. the head is read into a buffer that exists only while a request is being read or
//!    served: between requests the connection holds its socket and nothing else, so an idle
//!    keep-alive connection costs no buffer ("parked");
//! 2. the proxy is handed the request, with its body whole when it came with the head, or
//!    fed from the socket as the proxy asks for it ([`inflow`]); meanwhile the socket is
//!    watched, so a client that leaves ends its request at once;
//! 3. the response head is written with the framing this connection needs, then its body,
//!    frame by frame as the proxy yields it ([`outflow`]), each write judged by `ConnIo`.
//!
//! The connection then reads the next head, closes (`Connection: close`, an HTTP/1.0 client
//! without keep-alive, a body left unread, a drain, a reclaim, a burst connection over the
//! baseline), or becomes a tunnel after a 101.
//!
//! Deadlines are `ConnIo`'s: `request_header` from a head's first byte (408), `idle` between
//! requests, none while a request is in progress (the body and upstream timeouts apply).

mod inflow;
mod outflow;

use super::ServerCtx;
use super::conn_io::ConnIo;
use super::served::Active;
use super::stream::ClientStream;
use crate::body::Inbound;
use crate::conn::{ClientConn, Tunnel};
use crate::h1::{HeadError, HeadLimits, ParsedRequest, parse_request};
use bytes::{BufMut, BytesMut};
use http::Method;
use inflow::Inflow;
use outflow::Outflow;
use prometheus::IntGauge;
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio_util::sync::WaitForCancellationFutureOwned;

type Io = ConnIo<ClientStream>;

/// Bytes read at once into a connection that holds no buffer (on the stack, copied out).
const FIRST_READ: usize = 4096;

/// How the connection ended.
pub(super) enum Ended {
    /// Closed (or to be closed by the caller).
    Closed,
    /// A 101 was sent: splice with the backend.
    Upgraded(Tunnel),
}

/// What the connection does after a response.
enum Next {
    KeepAlive,
    Close,
    Upgrade(Tunnel),
}

/// One HTTP/1 connection's engine.
pub(super) struct Http1<'a> {
    ctx: &'a ServerCtx,
    conn: &'a Arc<ClientConn>,
    /// Bytes read and not used yet: part of a head, a body, pipelined requests. Empty, with
    /// no allocation, between requests.
    buf: BytesMut,
    limits: HeadLimits,
    /// Created once draining starts: the moment whatever is left must stop.
    hard_stop: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    served: u64,
    /// `portero_connections_parked{listener}`: counted while waiting for a next request with
    /// nothing read of it (no buffer held).
    parked: IntGauge,
}

impl<'a> Http1<'a> {
    pub(super) fn new(ctx: &'a ServerCtx, conn: &'a Arc<ClientConn>, limits: HeadLimits) -> Self {
        Self {
            ctx,
            conn,
            buf: BytesMut::new(),
            limits,
            hard_stop: None,
            served: 0,
            parked: ctx
                .metrics
                .connections
                .parked
                .with_label_values(&[&conn.info.listener]),
        }
    }

    /// Serves requests until the connection closes or becomes a tunnel; bytes the client sent
    /// after a 101 are put back into `io` for the tunnel. An `async` block, not an `async fn`,
    /// whose arguments would be kept twice in every idle connection's task.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(super) fn run<'s>(
        &'s mut self,
        io: &'s mut Io,
    ) -> impl Future<Output = io::Result<Ended>> + Send + 's {
        async move {
            loop {
                // Parked until the next request's first bytes: the only await an idle connection
                // sits in, so its state is all the task holds. Everything a request needs (its
                // head, the proxy's future, the response on its way) is boxed for the request.
                let next = if self.wait_for_request(io).await? {
                    Box::pin(self.request(io)).await?
                } else {
                    Next::Close
                };
                match next {
                    Next::KeepAlive => {}
                    Next::Close => {
                        let _ = io.shutdown().await;
                        return Ok(Ended::Closed);
                    }
                    Next::Upgrade(tunnel) => {
                        io.unread(self.buf.split().freeze());
                        return Ok(Ended::Upgraded(tunnel));
                    }
                }
            }
        }
    }

    /// Waits for the first bytes of a request (at once when pipelined ones are buffered);
    /// false when the connection is done first: the client closed or stayed silent past
    /// `timeouts.idle` (`ConnIo`'s deadline), or it was asked to close.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn wait_for_request<'s>(
        &'s mut self,
        io: &'s mut Io,
    ) -> impl Future<Output = io::Result<bool>> + Send + 's {
        async move {
            let mut counted = false;
            let result = poll_fn(|cx| {
                if !self.buf.is_empty() {
                    return Poll::Ready(Ok(true));
                }
                if self.close_requested(cx) {
                    return Poll::Ready(Ok(false));
                }
                match self.poll_read_fresh(io, cx, FIRST_READ) {
                    Poll::Ready(Ok(n)) => Poll::Ready(Ok(n > 0)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Nothing came: the buffer the last request was read into is let
                        // go, or every keep-alive connection would keep it (up to a page,
                        // resident once a request has been read into it).
                        if self.buf.capacity() > 0 {
                            self.buf = BytesMut::new();
                        }
                        if self.served > 0 && !counted {
                            counted = true;
                            self.parked.inc();
                        }
                        Poll::Pending
                    }
                }
            })
            .await;
            if counted {
                self.parked.dec();
            }
            result
        }
    }

    /// One request, from the rest of its head to the end of its response.
    async fn request(&mut self, io: &mut Io) -> io::Result<Next> {
        match self.read_head(io).await? {
            Ok(Some(parsed)) => self.exchange(io, parsed).await,
            Ok(None) => Ok(Next::Close),
            Err(error) => {
                self.refuse(io, error).await;
                Ok(Next::Close)
            }
        }
    }

    /// The rest of a request head whose first bytes are in the buffer; `None` when the
    /// client closed or stayed silent mid-head (`ConnIo` answers 408 then).
    async fn read_head(
        &mut self,
        io: &mut Io,
    ) -> io::Result<Result<Option<ParsedRequest>, HeadError>> {
        poll_fn(|cx| {
            loop {
                match parse_request(&mut self.buf, self.limits) {
                    Ok(Some(parsed)) => return Poll::Ready(Ok(Ok(Some(parsed)))),
                    Ok(None) => {}
                    Err(error) => return Poll::Ready(Ok(Err(error))),
                }
                match ready!(poll_read_into(
                    io,
                    cx,
                    &mut self.buf,
                    self.limits.max_bytes + 1
                )) {
                    Ok(0) => return Poll::Ready(Ok(Ok(None))),
                    Ok(_) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        })
        .await
    }

    /// Answers a refused head, as hyper's server did, and gives up on the connection.
    async fn refuse(&mut self, io: &mut Io, error: HeadError) {
        tracing::debug!(peer = %self.conn.info.peer, %error, "request head refused");
        let status = error.status();
        let mut answer = Vec::with_capacity(128);
        crate::h1::encode_response_head(
            &mut answer,
            status,
            None,
            &http::HeaderMap::new(),
            crate::h1::ResponseFraming::Length {
                length: 0,
                declared: false,
            },
            Some("close"),
        );
        let _ = io.write_all(&answer).await;
        let _ = io.flush().await;
    }

    /// One request, from its parsed head to the end of its response.
    async fn exchange(&mut self, io: &mut Io, parsed: ParsedRequest) -> io::Result<Next> {
        let ParsedRequest {
            request,
            framing,
            keep_alive,
            expect_continue,
            upgrade,
            ..
        } = parsed;
        let head_only = request.method() == Method::HEAD;
        let version = request.version();
        let (body, mut inflow) = Inflow::start(framing, expect_continue, &mut self.buf);
        let request = request.map(|()| body.unwrap_or_else(Inbound::empty));
        let active = Active::start(Arc::clone(self.conn));
        let mut responding =
            pin!(Arc::clone(&self.ctx.proxy).handle(request, Arc::clone(self.conn), active,));
        let response = poll_fn(|cx| {
            if let Poll::Ready(answer) = responding.as_mut().poll(cx) {
                let Ok(response) = answer;
                return Poll::Ready(Ok(response));
            }
            ready!(self.poll_hard_stop(cx))?;
            match self.poll_while_busy(io, cx, &mut inflow) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            }
        })
        .await?;
        self.served += 1;

        let status = response.status();
        let tunnel = (status == http::StatusCode::SWITCHING_PROTOCOLS && upgrade)
            .then(|| self.conn.handoff.take_tunnel())
            .flatten();
        let close = !keep_alive
            || inflow.as_ref().is_some_and(|i| !i.is_done())
            || self.conn.is_closing()
            || self.ctx.is_draining();
        let mut outflow = pin!(Outflow::new(
            response,
            head_only,
            version,
            tunnel.is_some(),
            close,
        ));
        poll_fn(|cx| {
            ready!(self.poll_hard_stop(cx))?;
            match outflow.as_mut().poll_send(io, cx) {
                Poll::Ready(result) => Poll::Ready(result),
                Poll::Pending => match self.poll_while_busy(io, cx, &mut inflow) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                },
            }
        })
        .await?;
        if let Some(flow) = &mut inflow
            && flow.is_feeding()
        {
            // Answered before the body ended (a backend may): the upload goes on, and the
            // connection serves again once it has.
            poll_fn(|cx| {
                ready!(self.poll_hard_stop(cx))?;
                while flow.is_feeding() {
                    ready!(flow.poll_feed(io, cx, &mut self.buf))?;
                }
                Poll::Ready(Ok::<(), io::Error>(()))
            })
            .await?;
        }
        // The response body records its exchange and ends the request's count when this
        // returns and it is dropped.
        if let Some(tunnel) = tunnel {
            return Ok(Next::Upgrade(tunnel));
        }
        let unread = inflow.as_ref().is_some_and(|i| !i.is_done());
        if outflow.closes() || unread || self.conn.is_closing() || self.ctx.is_draining() {
            return Ok(Next::Close);
        }
        Ok(Next::KeepAlive)
    }

    /// While a request is in progress: feeds its body as the proxy asks for it, and otherwise
    /// reads ahead (the next pipelined request) so that a client that leaves is noticed.
    /// Ready only with an error: the client left or sent a body that could not be read.
    fn poll_while_busy(
        &mut self,
        io: &mut Io,
        cx: &mut Context<'_>,
        inflow: &mut Option<Inflow>,
    ) -> Poll<io::Result<()>> {
        if let Some(flow) = inflow {
            while flow.is_feeding() {
                ready!(flow.poll_feed(io, cx, &mut self.buf))?;
            }
            if !flow.is_done() {
                // The rest of an abandoned body is not read: no watch over it.
                return Poll::Pending;
            }
        }
        // Read ahead up to a head's worth; past it, a leaving client is noticed when the
        // pipelined requests before it have been served. Onto the stack: the read usually
        // finds nothing, and a buffer reserved for it would be one more allocation a request.
        while self.buf.len() <= self.limits.max_bytes {
            let room = self.limits.max_bytes + 1 - self.buf.len();
            match ready!(self.poll_read_fresh(io, cx, room)) {
                Ok(0) => {
                    tracing::debug!(peer = %self.conn.info.peer, "client closed with a request in progress");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed the connection with a request in progress",
                    )));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Pending
    }

    /// Whether the connection has been asked to close (a drain asks every connection); if
    /// not, the task is woken when it is.
    fn close_requested(&mut self, cx: &mut Context<'_>) -> bool {
        self.conn.poll_close_requested(cx).is_ready()
    }

    /// Ready (with an error) once the drain deadline has passed: whatever is left stops.
    fn poll_hard_stop(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.ctx.is_draining() {
            return Poll::Ready(Ok(()));
        }
        let stop = self
            .hard_stop
            .get_or_insert_with(|| Box::pin(self.ctx.hard_stop.clone().cancelled_owned()));
        match stop.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::other("stopped at the drain deadline"))),
            Poll::Pending => Poll::Ready(Ok(())),
        }
    }

    /// A read that usually finds nothing (between requests, or ahead while one is served):
    /// onto the stack, then appended to the buffer, which is allocated only when something
    /// came. At most `room` bytes (and `FIRST_READ`); Ready(0) at the end of the stream.
    fn poll_read_fresh(
        &mut self,
        io: &mut Io,
        cx: &mut Context<'_>,
        room: usize,
    ) -> Poll<io::Result<usize>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut read = ReadBuf::uninit(&mut chunk[..room.min(FIRST_READ)]);
        ready!(Pin::new(io).poll_read(cx, &mut read))?;
        let got = read.filled();
        self.buf.extend_from_slice(got);
        Poll::Ready(Ok(got.len()))
    }
}

/// Reads into the spare room of `buf`, growing it by up to a page at a time and never past
/// `cap` bytes in all. Ready(0) at the end of the stream (or with no room left).
fn poll_read_into(
    io: &mut Io,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    cap: usize,
) -> Poll<io::Result<usize>> {
    let room = cap.saturating_sub(buf.len()).min(FIRST_READ.max(buf.len()));
    if room == 0 {
        return Poll::Ready(Ok(0));
    }
    buf.reserve(room);
    tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut (&mut *buf).limit(room))
}
