//! A request as its connection counts it: active from the moment hyper hands it over until its
//! response body is done with (its end, its failure, or hyper dropping it), or until its
//! handler is dropped before it answered (an HTTP/2 stream reset, a client gone). While a
//! backend's body streams, its frames are watched, so an HTTP/2 client that holds its window
//! at zero is noticed (`timeouts.client_write`). The proxy's body inside records the exchange
//! first.

use super::handoff::Handoff;
use crate::conn::ClientConn;
use crate::proxy::{BodyError, CloseAfter, ResponseBody};
use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// The proxy's answer to one request, boxed (hyper's HTTP/1 connection needs an `Unpin`
/// future to be handed back the socket).
pub type Answer = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// The proxy answering one request, and what the connection does with the answer: keep a
/// tunnel to splice, close after it, count its body. A plain struct around the one box, not
/// an `async` block, which would move the proxy's whole future into a second one.
pub struct Responding {
    answer: Answer,
    active: Option<Active>,
    handoff: Arc<Handoff>,
}

impl Responding {
    /// `answer`, to the request `active` counts, on the connection `handoff` belongs to.
    pub fn new(answer: Answer, active: Active, handoff: Arc<Handoff>) -> Self {
        Self {
            answer,
            active: Some(active),
            handoff,
        }
    }
}

impl Future for Responding {
    type Output = Result<Response<Served>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = ready!(self.answer.as_mut().poll(cx));
        let active = self
            .active
            .take()
            .expect("a future is not polled after its end");
        let conn = active.conn();
        if self.handoff.keep_from_response(&mut response) {
            // A tunnel from here on: its bytes are no longer HTTP.
            conn.activity.set_upgraded();
        }
        if response.extensions().get::<CloseAfter>().is_some() {
            conn.request_close();
        }
        Poll::Ready(Ok(response.map(|body| Served::new(body, active))))
    }
}

/// One request counted active on its connection until this is dropped.
#[derive(Debug)]
pub struct Active {
    conn: Arc<ClientConn>,
    streaming: bool,
}

impl Active {
    /// Counts a request that starts now on `conn` (which may ask a burst connection to close
    /// after it: see [`ClientConn::request_started`]).
    pub fn start(conn: Arc<ClientConn>) -> Self {
        conn.request_started();
        Self {
            conn,
            streaming: false,
        }
    }

    /// The connection.
    pub fn conn(&self) -> &Arc<ClientConn> {
        &self.conn
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.streaming {
            self.conn.activity.stream_ended();
        }
        self.conn.activity.request_finished();
    }
}

pin_project! {
    /// A response body, counted on its connection. Fields drop in order: the body (and the
    /// exchange it records) before the count.
    pub struct Served {
        #[pin]
        body: ResponseBody,
        active: Active,
    }
}

impl Served {
    /// `body`, the response to the request `active` counts.
    pub fn new(body: ResponseBody, mut active: Active) -> Self {
        if body.streams_from_backend() {
            active.streaming = true;
            active.conn.activity.stream_started();
        }
        Self { body, active }
    }
}

impl Body for Served {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let frame = ready!(this.body.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && frame.is_data()
        {
            this.active.conn.activity.stream_progressed();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
