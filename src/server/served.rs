//! A request as its connection counts it: active from the moment hyper hands it over until its
//! response body is done with (its end, its failure, or hyper dropping it), or until its
//! handler is dropped before it answered (an HTTP/2 stream reset, a client gone). While a
//! backend's body streams, its frames are watched, so an HTTP/2 client that holds its window
//! at zero is noticed (`timeouts.client_write`). The proxy's body inside records the exchange
//! first.

use crate::conn::ClientConn;
use crate::proxy::{BodyError, ResponseBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

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
