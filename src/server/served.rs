//! A request as its connection counts it: active from the moment hyper hands it over until its
//! response body is done with (its end, its failure, or hyper dropping it), or until its
//! handler is dropped before it answered (an HTTP/2 stream reset, a client gone). While a
//! backend's body streams, its frames are watched, so an HTTP/2 client that holds its window
//! at zero is noticed (`timeouts.client_write`). The proxy's body records its exchange before
//! the count ends. When the answer is ready, the connection reads what it must do after it
//! (splice a tunnel, close) from the response's extensions.

use crate::conn::ClientConn;
use crate::proxy::{CloseAfter, Watch};
use std::sync::Arc;

/// One request counted active on its connection until this is dropped; it rides in the
/// response body as the connection's [`Watch`].
#[derive(Debug)]
pub struct Active {
    conn: Arc<ClientConn>,
    streaming: bool,
}

impl Active {
    /// Counts a request that starts now on `conn` (which may ask a burst connection to close
    /// after it: see [`ClientConn::request_started`]); a tunnel its response asks for is left
    /// in the connection's handoff.
    pub fn start(conn: Arc<ClientConn>) -> Self {
        conn.request_started();
        Self {
            conn,
            streaming: false,
        }
    }
}

impl Watch for Active {
    fn answered(&mut self, extensions: &mut http::Extensions) {
        if self.conn.handoff.keep_tunnel(extensions) {
            // A tunnel from here on: its bytes are no longer HTTP.
            self.conn.activity.set_upgraded();
        }
        if extensions.get::<CloseAfter>().is_some() {
            self.conn.request_close();
        }
    }

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
