//! hyper's HTTP/1 server over an in-memory connection, polled by hand on the caller's thread
//! (no runtime, no network, no sleeps): the harness `h1_differential` and `h1_roundtrip`
//! share. The connection's reads hand out the input and then wait (or end, once `eof` is
//! set); every poll is counted, so a run is deterministic and bounded.

use hyper::rt::{Read, ReadBufCursor, Write};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// hyper's HTTP/1 server as both harnesses run it: heads up to `max_header_bytes`, no read
/// timeout (there is no clock here) and no `Date` (the output must not vary).
pub fn server(max_header_bytes: usize) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_header_size(max_header_bytes)
        .header_read_timeout(None)
        .auto_date_header(false);
    builder
}

/// What both services answer: 404 with no body (not 2xx, so that a CONNECT is not turned
/// into a tunnel).
pub fn not_found() -> http::Response<String> {
    let mut response = http::Response::new(String::new());
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    response
}

/// Polls of hyper's connection per phase before it is declared stuck (it yields every 16
/// turns of its loop; a pipelined input of a few KiB takes a few dozen).
const MAX_POLLS: usize = 100_000;

/// The connection's two directions, shared between the test and hyper's I/O.
#[derive(Default)]
pub struct Wire {
    /// What the peer sends, all of it available from the start.
    pub input: Vec<u8>,
    /// How much of `input` hyper has read.
    pub at: usize,
    /// The input has all been read and the peer has closed.
    pub eof: bool,
    /// Where each of hyper's reads ended.
    pub reads: Vec<usize>,
    /// What hyper wrote.
    pub output: Vec<u8>,
}

/// hyper's end of the connection.
pub struct Io(pub Rc<RefCell<Wire>>);

impl Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut wire = self.0.borrow_mut();
        let n = buf.remaining().min(wire.input.len() - wire.at);
        if n == 0 {
            // Nothing registers a wake-up: `run` sees hyper wait on input.
            return if wire.eof {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let at = wire.at;
        buf.put_slice(&wire.input[at..at + n]);
        wire.at += n;
        let end = wire.at;
        wire.reads.push(end);
        Poll::Ready(Ok(()))
    }
}

impl Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.borrow_mut().output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Counts wake-ups: a poll that returned `Pending` without one waits on the input.
#[derive(Default)]
pub struct Wakes(pub AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Polls `conn` until it finishes (`Some`) or waits on the input (`None`).
pub fn run<F: Future>(mut conn: Pin<&mut F>, wakes: &Arc<Wakes>) -> Option<F::Output> {
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    for _ in 0..MAX_POLLS {
        let before = wakes.0.load(Ordering::Relaxed);
        if let Poll::Ready(output) = conn.as_mut().poll(&mut cx) {
            return Some(output);
        }
        if wakes.0.load(Ordering::Relaxed) == before {
            return None;
        }
    }
    panic!("hyper's connection neither finished nor waited in {MAX_POLLS} polls");
}

/// `data` for a failure message: printable ASCII as is, the rest escaped, long runs cut.
pub fn escaped(data: &[u8]) -> String {
    const SHOWN: usize = 600;
    let mut text: String = data
        .iter()
        .take(SHOWN)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if data.len() > SHOWN {
        text.push_str(&format!("... ({} bytes)", data.len()));
    }
    format!("\"{text}\"")
}
