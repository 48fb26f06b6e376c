//! A client's request body as its connection hands it over: HTTP/2's from hyper, HTTP/1's
//! from portero's own engine (`server::h1`): none, whole when it arrived with its head, or
//! fed frame by frame by the connection as the body is asked for ([`feed`]).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A request body as it came in.
#[derive(Debug)]
pub enum Inbound {
    /// An HTTP/2 stream's (hyper).
    Hyper(Incoming),
    /// Complete already; `None` once handed on (or for no body at all).
    Full(Option<Bytes>),
    /// Fed by its HTTP/1 connection as it is asked for.
    Fed(FedBody),
}

impl Inbound {
    /// No body.
    pub fn empty() -> Self {
        Inbound::Full(None)
    }

    /// A body that arrived whole.
    pub fn full(data: Bytes) -> Self {
        Inbound::Full((!data.is_empty()).then_some(data))
    }
}

/// Why a fed body stopped: the client sent bad framing, or left mid-body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client's body could not be read")]
pub struct FeedError;

impl Body for Inbound {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Inbound::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Inbound::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inbound::Fed(body) => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Hyper(body) => body.is_end_stream(),
            Inbound::Full(data) => data.is_none(),
            Inbound::Fed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Inbound::Hyper(body) => body.size_hint(),
            Inbound::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Inbound::Fed(body) => body.hint,
        }
    }
}

/// A fed body and its connection's end of it: one frame at a time, and only once the body
/// has been asked for, so backpressure reaches the client (its connection reads the socket
/// only for a body that wants more) and `Expect: 100-continue` is answered only when a
/// backend is about to read.
pub fn feed(hint: SizeHint) -> (Feeder, FedBody) {
    let shared = Arc::new(Mutex::new(Slot::default()));
    (
        Feeder {
            shared: Arc::clone(&shared),
            ended: false,
        },
        FedBody { shared, hint },
    )
}

#[derive(Debug, Default)]
struct Slot {
    frame: Option<Frame<Bytes>>,
    /// The body asked for a frame and has not had one since.
    wanted: bool,
    ended: bool,
    failed: bool,
    /// The body was dropped: nothing more will be read.
    gone: bool,
    body_waker: Option<Waker>,
    feeder_waker: Option<Waker>,
}

fn lock(shared: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic while holding it leaves plain data behind: still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The body, on the proxy's side.
#[derive(Debug)]
pub struct FedBody {
    shared: Arc<Mutex<Slot>>,
    hint: SizeHint,
}

impl FedBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, FeedError>>> {
        let mut slot = lock(&self.shared);
        if let Some(frame) = slot.frame.take() {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                // Lower first: it must never pass the upper bound.
                self.hint.set_lower(self.hint.lower().saturating_sub(len));
                if let Some(upper) = self.hint.upper() {
                    self.hint.set_upper(upper.saturating_sub(len));
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if slot.failed {
            return Poll::Ready(Some(Err(FeedError)));
        }
        if slot.ended {
            return Poll::Ready(None);
        }
        slot.wanted = true;
        if !slot
            .body_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            slot.body_waker = Some(cx.waker().clone());
        }
        if let Some(waker) = slot.feeder_waker.take() {
            waker.wake();
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.shared);
        slot.ended && slot.frame.is_none()
    }
}

impl Drop for FedBody {
    fn drop(&mut self) {
        let mut slot = lock(&self.shared);
        slot.gone = true;
        if let Some(waker) = slot.feeder_waker.take() {
            waker.wake();
        }
    }
}

/// What the feeder's connection should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The body asked for a frame: read one and [`Feeder::send`] it.
    Frame,
    /// The body was dropped: the rest of it will never be read.
    Gone,
}

/// The connection's end of a fed body.
#[derive(Debug)]
pub struct Feeder {
    shared: Arc<Mutex<Slot>>,
    ended: bool,
}

impl Feeder {
    /// Ready when the body wants a frame or is gone.
    pub fn poll_want(&self, cx: &mut Context<'_>) -> Poll<Want> {
        let mut slot = lock(&self.shared);
        if slot.gone {
            return Poll::Ready(Want::Gone);
        }
        if slot.wanted && slot.frame.is_none() {
            return Poll::Ready(Want::Frame);
        }
        if !slot
            .feeder_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            slot.feeder_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Hands the body a frame (data, or the trailers that end it).
    pub fn send(&mut self, frame: Frame<Bytes>) {
        self.ended |= frame.is_trailers();
        self.put(|slot| {
            slot.ended |= frame.is_trailers();
            slot.frame = Some(frame);
        });
    }

    /// The body is complete.
    pub fn finish(&mut self) {
        self.ended = true;
        self.put(|slot| slot.ended = true);
    }

    /// The body could not be read (bad framing): the proxy's next read fails.
    pub fn fail(&mut self) {
        self.ended = true;
        self.put(|slot| slot.failed = true);
    }

    fn put(&self, f: impl FnOnce(&mut Slot)) {
        let mut slot = lock(&self.shared);
        f(&mut slot);
        slot.wanted = false;
        if let Some(waker) = slot.body_waker.take() {
            waker.wake();
        }
    }
}

impl Drop for Feeder {
    /// Dropped before the body's end: bad framing, or the client left.
    fn drop(&mut self) {
        if !self.ended {
            self.put(|slot| slot.failed = true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn poll(body: &mut Inbound) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        Pin::new(body)
            .poll_frame(&mut cx())
            .map(|f| f.map(|r| r.map_err(|e| e.to_string())))
    }

    #[test]
    fn a_frame_is_wanted_only_once_asked_for_and_comes_through_in_order() {
        let (mut feeder, body) = feed(SizeHint::with_exact(6));
        let mut body = Inbound::Fed(body);
        assert!(feeder.poll_want(&mut cx()).is_pending(), "not asked yet");
        assert!(poll(&mut body).is_pending());
        assert_eq!(feeder.poll_want(&mut cx()), Poll::Ready(Want::Frame));
        feeder.send(Frame::data(Bytes::from_static(b"abc")));
        assert!(
            feeder.poll_want(&mut cx()).is_pending(),
            "one frame at a time"
        );
        let Poll::Ready(Some(Ok(frame))) = poll(&mut body) else {
            panic!("a frame")
        };
        assert_eq!(frame.into_data().unwrap(), "abc");
        assert_eq!(body.size_hint().exact(), Some(3), "what is left");
        feeder.send(Frame::data(Bytes::from_static(b"def")));
        feeder.finish();
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_feeder_dropped_before_the_end_fails_the_body_and_a_dropped_body_is_gone() {
        let (feeder, body) = feed(SizeHint::default());
        let mut body = Inbound::Fed(body);
        drop(feeder);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err(_)))));

        let (mut feeder, body) = feed(SizeHint::default());
        feeder.fail();
        let mut failed = Inbound::Fed(body);
        assert!(matches!(poll(&mut failed), Poll::Ready(Some(Err(_)))));

        let (feeder, body) = feed(SizeHint::default());
        drop(body);
        assert_eq!(feeder.poll_want(&mut cx()), Poll::Ready(Want::Gone));
    }

    #[test]
    fn trailers_end_the_body() {
        let (mut feeder, body) = feed(SizeHint::default());
        let mut body = Inbound::Fed(body);
        let _ = poll(&mut body);
        feeder.send(Frame::trailers(http::HeaderMap::new()));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(f))) if f.is_trailers()));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        drop(feeder);
        assert!(
            matches!(poll(&mut body), Poll::Ready(None)),
            "ended, not failed"
        );
    }
}
