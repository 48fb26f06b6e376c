//! A response body to an HTTP/1 client keeps pace with the client. hyper's HTTP/1 server takes
//! body frames into its write queue until the queue holds `max_buf_size` (which is also the
//! request head limit, 32 KiB by default), and each frame pins the backend read buffer it was
//! cut from; for a client that reads slowly that is most of what a connection holds. So a body
//! hands hyper its next frame only once everything it handed before has been written to the
//! socket: hyper holds at most one frame of it, and the rest waits in the backend's socket
//! (backpressure, nothing dropped). A client that keeps up loses nothing: its writes complete
//! at once. HTTP/2 streams are bounded by their own send buffers instead.

use atomic_waker::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Context;

/// The bytes a connection's I/O has written to the client, and a response body that waits for
/// them to catch up with what it handed hyper (see [`Pace`]): hyper's HTTP/1 server takes
/// body frames until its own write queue holds `max_buf_size` (the request head limit, 32 KiB
/// by default), whatever the client's pace.
#[derive(Debug, Default)]
pub struct Written {
    bytes: AtomicU64,
    waiting: AtomicBool,
    waker: AtomicWaker,
}

impl Written {
    /// Bytes written so far.
    pub fn get(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// `n` more bytes reached the socket: a body waiting on them may go on.
    pub fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) && self.waiting.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Wakes `cx` at the next write; then returns the bytes written, read after registering
    /// so a write in between is not missed.
    pub fn wait(&self, cx: &Context<'_>) -> u64 {
        self.waker.register(cx.waker());
        self.waiting.store(true, Ordering::Release);
        self.get()
    }
}

/// What keeps a connection's [`Written`]: a body holds its owner (the client connection) for
/// as long as it paces itself against it.
pub trait Writes: std::fmt::Debug + Send + Sync {
    /// The connection's writes.
    fn written(&self) -> &Written;
}

impl Writes for Written {
    fn written(&self) -> &Written {
        self
    }
}

/// One response body's account of what it handed hyper and what reached the client.
#[derive(Debug, Default)]
pub struct Pace {
    /// The client connection's writes; `None` leaves the body unpaced (HTTP/2, portero's own
    /// bodies).
    written: Option<Arc<dyn Writes>>,
    /// The connection's bytes written when this body first asked; the response head and this
    /// body are written after it.
    base: Option<u64>,
    /// Body bytes handed to hyper.
    handed: u64,
}

impl Pace {
    /// Paces a body against a connection's writes.
    pub fn with(written: Arc<dyn Writes>) -> Self {
        Self {
            written: Some(written),
            base: None,
            handed: 0,
        }
    }

    /// Whether the body must wait before its next frame; if so, `cx` is woken at the next
    /// write to the client.
    pub fn must_wait(&mut self, cx: &Context<'_>) -> bool {
        let Some(written) = &self.written else {
            return false;
        };
        let written = written.written();
        let now = written.get();
        let base = *self.base.get_or_insert(now);
        if !behind(self.handed, now - base) {
            return false;
        }
        // Read again once registered: a write in between would otherwise be missed.
        behind(self.handed, written.wait(cx) - base)
    }

    /// A frame of `n` bytes was handed to hyper.
    pub fn handed(&mut self, n: usize) {
        self.handed += n as u64;
    }
}

/// Whether some of the `handed` bytes cannot have been written yet, `written` being what the
/// connection wrote since the body began (its head included, which errs on the side of going
/// on).
fn behind(handed: u64, written: u64) -> bool {
    handed > written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_body_waits_until_what_it_handed_is_written() {
        let written = Arc::new(Written::default());
        written.add(500); // an earlier response on the connection
        let cx = Context::from_waker(Waker::noop());
        let mut pace = Pace::with(Arc::clone(&written) as Arc<dyn Writes>);
        assert!(!pace.must_wait(&cx), "the first frame goes");
        pace.handed(16_384);
        assert!(pace.must_wait(&cx));
        written.add(200 + 10_000); // the head and part of the frame
        assert!(pace.must_wait(&cx));
        written.add(6_384);
        assert!(!pace.must_wait(&cx), "all of it is out");
    }

    #[test]
    fn an_unpaced_body_never_waits() {
        let cx = Context::from_waker(Waker::noop());
        let mut pace = Pace::default();
        pace.handed(1 << 30);
        assert!(!pace.must_wait(&cx));
    }
}
