//! A request as its connection counts it: active from the moment hyper hands it over until its
//! response body is done with (its end, its failure, or hyper dropping it), or until its
//! handler is dropped before it answered (an HTTP/2 stream reset, a client gone). While a
//! backend's body streams, its frames are watched, so an HTTP/2 client that holds its window
//! at zero is noticed (`timeouts.client_write`). The proxy's body records its exchange before
//! the count ends.

use super::handoff::Handoff;
use crate::conn::ClientConn;
use crate::proxy::{CloseAfter, ResponseBody, Watch};
use http::Response;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One request counted active on its connection until this is dropped; it rides in the
/// response body as the connection's [`Watch`].
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

impl Watch for Active {
    fn streaming(&mut self) {
        if !self.streaming {
            self.streaming = true;
            self.conn.activity.stream_started();
        }
    }

    fn progressed(&self) {
        if self.streaming {
            self.conn.activity.stream_progressed();
        }
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

/// The proxy's answer to one request, boxed (hyper's HTTP/1 connection needs an `Unpin`
/// future to be handed back the socket).
pub type Answer =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<Active>>, Infallible>> + Send>>;

/// The proxy answering one request, and what the connection does with the answer: keep a
/// tunnel to splice, close after it. The answer is looked at where it lies and handed on as
/// it is: a response is large, and every move of it is a copy.
pub struct Responding {
    answer: Answer,
    handoff: Arc<Handoff>,
}

impl Responding {
    /// `answer`, on the connection `handoff` belongs to.
    pub fn new(answer: Answer, handoff: Arc<Handoff>) -> Self {
        Self { answer, handoff }
    }
}

impl Future for Responding {
    type Output = Result<Response<ResponseBody<Active>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut polled = self.answer.as_mut().poll(cx);
        if let Poll::Ready(Ok(response)) = &mut polled {
            let tunnel = self.handoff.keep_from_response(response);
            let close = response.extensions().get::<CloseAfter>().is_some();
            let conn = response.body().watch().conn();
            if tunnel {
                // A tunnel from here on: its bytes are no longer HTTP.
                conn.activity.set_upgraded();
            }
            if close {
                conn.request_close();
            }
        }
        polled
    }
}
