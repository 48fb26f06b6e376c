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
//! Deadlines are `ConnIo`'s: `request_header` from a head's first byte (408), none while a
//! request is in progress (the body and upstream timeouts apply). Between requests the
//! connection is parked, and the server's idle sweep closes it after `idle` (`idle_sweep`).

mod inflow;
mod outflow;

use super::ServerCtx;
use super::conn_io::ConnIo;
use super::served::Active;
use super::stream::ClientStream;
use crate::body::Inbound;
use crate::conn::Tunnel;
use crate::h1::{HeadError, HeadLimits, ParsedRequest, parse_request};
use crate::proxy::ResponseBody;
use bytes::{BufMut, BytesMut};
use http::{Method, Response};
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

/// What the request asked of its response: how it is framed and what follows it.
struct Asked {
    head_only: bool,
    version: http::Version,
    keep_alive: bool,
    upgrade: bool,
}

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
    /// Bytes read and not used yet: part of a head, a body, pipelined requests. Empty, with
    /// no allocation, between requests.
    buf: BytesMut,
    limits: HeadLimits,
    /// `portero_connections_parked{listener}`: counted while waiting for a next request with
    /// nothing read of it (no buffer held).
    parked: IntGauge,
}

impl<'a> Http1<'a> {
    pub(super) fn new(ctx: &'a ServerCtx, listener: &str, limits: HeadLimits) -> Self {
        Self {
            ctx,
            buf: BytesMut::new(),
            limits,
            parked: ctx
                .metrics
                .connections
                .parked
                .with_label_values(&[listener]),
        }
    }

    /// Serves requests until the connection closes or becomes a tunnel; bytes the client sent
    /// after a 101 are put back into `io` for the tunnel. The engine is moved in, and this is
    /// an `async` block, not an `async fn`, whose arguments would be kept twice: every idle
    /// connection's task carries this future.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub(super) fn run<'s>(
        mut self,
        io: &'s mut Io,
    ) -> impl Future<Output = io::Result<Ended>> + Send + 's
    where
        'a: 's,
    {
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
                    Next::Close => break,
                    Next::Upgrade(tunnel) => {
                        io.unread(self.buf.split().freeze());
                        return Ok(Ended::Upgraded(tunnel));
                    }
                }
            }
            let _ = io.shutdown().await;
            Ok(Ended::Closed)
        }
    }

    /// Waits for the first bytes of a request (at once when pipelined ones are buffered);
    /// false when the connection is done first: the client closed, or it was asked to close
    /// (a drain, a reclaim, or the idle sweep once it has been parked for `timeouts.idle`).
    /// While it waits after a request, the connection counts as parked. A `poll_fn`, not an
    /// `async` block: the idle connection's task holds just its three fields.
    fn wait_for_request<'s>(
        &'s mut self,
        io: &'s mut Io,
    ) -> impl Future<Output = io::Result<bool>> + Send + 's {
        let mut parked = false;
        poll_fn(move |cx| {
            let poll = self.poll_next_request(io, cx);
            match (&poll, parked) {
                // After a request (a new connection's first bytes are `ConnIo`'s to wait for).
                (Poll::Pending, false) if io.conn().activity.epoch() > 0 => {
                    parked = true;
                    self.parked.inc();
                    // From now on the idle sweep keeps its idle time (no timer).
                    io.conn().activity.set_parked(true);
                }
                (Poll::Ready(_), true) => {
                    parked = false;
                    self.parked.dec();
                    io.conn().activity.set_parked(false);
                }
                _ => {}
            }
            poll
        })
    }

    /// One poll of `wait_for_request`: bytes already buffered, a close request, or fresh
    /// bytes from the socket.
    fn poll_next_request(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if !self.buf.is_empty() {
            return Poll::Ready(Ok(true));
        }
        if io.conn().poll_close_requested(cx).is_ready() {
            return Poll::Ready(Ok(false));
        }
        let poll = self.poll_read_fresh(io, cx, FIRST_READ);
        if poll.is_pending() && self.buf.capacity() > 0 {
            // Nothing came: the buffer the last request was read into is let go, or every
            // keep-alive connection would keep it (up to a page, resident once a request has
            // been read into it).
            self.buf = BytesMut::new();
        }
        poll.map_ok(|n| n > 0)
    }

    /// One request, from the rest of its head to the end of its response.
    async fn request(&mut self, io: &mut Io) -> io::Result<Next> {
        io.head_started();
        // Taken out of the match before the exchange is awaited: a match's scrutinee would
        // stay in the future beside it (512 bytes, which put the boxed future past 4 KiB,
        // the largest size jemalloc allocates on its fast path).
        let parsed = match self.read_head(io).await? {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Next::Close),
            Err(error) => {
                self.refuse(io, error).await;
                return Ok(Next::Close);
            }
        };
        self.exchange(io, parsed).await
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
        tracing::debug!(peer = %io.conn().info.peer, %error, "request head refused");
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

    /// One request, from its parsed head to the end of its response. An `async` block, not
    /// an `async fn`, which would keep the parsed head twice: this future is boxed and moved
    /// whole once a request.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn exchange<'s>(
        &'s mut self,
        io: &'s mut Io,
        parsed: ParsedRequest,
    ) -> impl Future<Output = io::Result<Next>> + 's
    where
        'a: 's,
    {
        let ParsedRequest {
            request,
            framing,
            keep_alive,
            expect_continue,
            upgrade,
            ..
        } = parsed;
        async move {
            let head_only = request.method() == Method::HEAD;
            let version = request.version();
            let (body, mut inflow) = Inflow::start(framing, expect_continue, &mut self.buf);
            let mut hard_stop = HardStop::default();
            let response = {
                let responding = Arc::clone(&self.ctx.proxy).handle(
                    request.map(|()| body.unwrap_or_else(Inbound::empty)),
                    Arc::clone(io.conn()),
                    Active::start(Arc::clone(io.conn())),
                );
                let mut responding = pin!(responding);
                poll_fn(|cx| {
                    if let Poll::Ready(answer) = responding.as_mut().poll(cx) {
                        let Ok(response) = answer;
                        return Poll::Ready(Ok(response));
                    }
                    ready!(hard_stop.poll(self.ctx, cx))?;
                    match self.poll_while_busy(io, cx, &mut inflow) {
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        _ => Poll::Pending,
                    }
                })
                .await?
            };

            let asked = Asked {
                head_only,
                version,
                keep_alive,
                upgrade,
            };
            self.respond(io, response, asked, inflow, hard_stop).await
        }
    }

    /// The response's way out, then what the connection does next. A future of its own,
    /// awaited after the proxy's has gone, so that the two share their room in the request's
    /// future instead of the response and its `Outflow` being kept beside the proxy's.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn respond<'s>(
        &'s mut self,
        io: &'s mut Io,
        response: Response<ResponseBody<Active>>,
        asked: Asked,
        mut inflow: Option<Inflow>,
        mut hard_stop: HardStop,
    ) -> impl Future<Output = io::Result<Next>> + 's
    where
        'a: 's,
    {
        let Asked {
            head_only,
            version,
            keep_alive,
            upgrade,
        } = asked;
        async move {
            let status = response.status();
            let tunnel = (status == http::StatusCode::SWITCHING_PROTOCOLS && upgrade)
                .then(|| io.conn().handoff.take_tunnel())
                .flatten();
            let close = !keep_alive
                || inflow.as_ref().is_some_and(|i| !i.is_done())
                || io.conn().is_closing()
                || self.ctx.is_draining();
            let mut outflow = pin!(Outflow::new(
                response,
                head_only,
                version,
                tunnel.is_some(),
                close,
            ));
            poll_fn(|cx| {
                ready!(hard_stop.poll(self.ctx, cx))?;
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
                    ready!(hard_stop.poll(self.ctx, cx))?;
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
            if outflow.closes() || unread || io.conn().is_closing() || self.ctx.is_draining() {
                return Ok(Next::Close);
            }
            Ok(Next::KeepAlive)
        }
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
                    tracing::debug!(peer = %io.conn().info.peer, "client closed with a request in progress");
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

/// The drain deadline, watched while a request is served: created once draining starts, and
/// per request, as an idle connection's task would carry it.
#[derive(Default)]
struct HardStop(Option<Pin<Box<WaitForCancellationFutureOwned>>>);

impl HardStop {
    /// Ready (with an error) once the drain deadline has passed: whatever is left stops.
    fn poll(&mut self, ctx: &ServerCtx, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !ctx.is_draining() {
            return Poll::Ready(Ok(()));
        }
        let stop = self
            .0
            .get_or_insert_with(|| Box::pin(ctx.hard_stop.clone().cancelled_owned()));
        match stop.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::other("stopped at the drain deadline"))),
            Poll::Pending => Poll::Ready(Ok(())),
        }
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
