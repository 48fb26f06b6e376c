//! The response body sent to a client: streamed from a backend (released to its keep-alive
//! pool at its end, cut at its backend's drain deadline or after `timeouts.upstream_idle` of
//! silence, paced to what an HTTP/1 client has taken), or a short one of portero's own. It
//! carries the request's [`Exchange`], which is recorded (metrics, access log, in-flight
//! counts) when the body ends, fails or is dropped.

use super::exchange::{Exchange, Outcome};
use crate::backend::Backend;
use crate::body::{Pace, Writes, remove_forbidden_trailers};
use crate::h1::RawFields;
use crate::upstream::{UpstreamBody, UpstreamBodyError};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

pin_project! {
    #[project = KindProj]
    enum Kind {
        Upstream {
            body: UpstreamBody,
            cut: Cut,
            stall: Stall,
            pace: Pace,
        },
        Full { data: Option<Bytes> },
    }
}

/// What the connection a response goes out on learns of its body, supplied by the server: the
/// proxy tells it, and knows nothing else of the live connection. It is dropped after the
/// exchange is recorded.
pub trait Watch: Send + 'static {
    /// The response is ready to go: its extensions say what the connection must do after it
    /// ([`Tunnel`](super::Tunnel), [`CloseAfter`](super::CloseAfter)). Read where they lie,
    /// inside the proxy's future, so the response is not copied once more on its way out.
    fn answered(&mut self, extensions: &mut http::Extensions);
    /// The body streams from a backend.
    fn streaming(&mut self);
    /// The body handed a data frame on.
    fn progressed(&self);
}

/// Nothing watches.
impl Watch for () {
    fn answered(&mut self, _: &mut http::Extensions) {}
    fn streaming(&mut self) {}
    fn progressed(&self) {}
}

pin_project! {
    /// A response body sent to a client: streamed from a backend, or a short one of portero's
    /// own; once it carries its exchange, watched by its connection (`W`).
    pub struct ResponseBody<W = ()> {
        #[pin]
        kind: Kind,
        exchange: Option<Exchange>,
        watch: W,
    }

    impl<W> PinnedDrop for ResponseBody<W> {
        fn drop(this: Pin<&mut Self>) {
            let complete = this.kind.is_end();
            let this = this.project();
            if let Some(exchange) = this.exchange.take() {
                // Dropped before its end: the client went away, or hyper gave up on the connection.
                exchange.finish(if complete { Outcome::Complete } else { Outcome::ClientAborted });
            }
        }
    }
}

/// Why a response body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The backend failed in the middle of it.
    #[error("upstream body failed: {0}")]
    Upstream(#[from] UpstreamBodyError),
    /// Its backend was removed from the pool and the drain deadline passed.
    #[error("backend removed and drained: response cut")]
    Drained,
    /// The backend sent nothing for `timeouts.upstream_idle` while portero waited on it.
    #[error("upstream sent no body for the idle timeout: response cut")]
    UpstreamIdle,
}

/// `timeouts.upstream_idle`: how long the backend may stay silent while portero waits on its
/// body. Only that wait counts (a client that does not read is `client_write`'s business):
/// the timer is armed when the backend's body answers `Pending`, and disarmed by the next
/// frame. It is created lazily, so a body that arrives whole never costs one, and re-armed
/// with `reset` rather than re-created.
struct Stall {
    idle: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Stall {
    fn new(idle: Duration) -> Self {
        Self {
            idle,
            sleep: None,
            armed: false,
        }
    }

    /// A frame arrived: the backend is not silent.
    fn progressed(&mut self) {
        self.armed = false;
    }

    /// The backend's body is pending: whether it has been silent past the idle timeout (`0s`
    /// = never). Registers `cx` to be woken when it will be.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.is_zero() {
            return false;
        }
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(Instant::now() + self.idle);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep(self.idle))),
        };
        self.armed = true;
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// The backend's drain deadline (`Backend::cut_in_flight`). Read with one atomic load while
/// the body has frames to give; the wait that wakes the body when the cut comes is made only
/// once the body waits, so a response that arrives whole never registers one (registering
/// on every poll cost about 500 instructions a request).
struct Cut {
    backend: Arc<Backend>,
    wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Cut {
    fn new(backend: Arc<Backend>) -> Self {
        Self {
            backend,
            wait: None,
        }
    }

    /// Whether the backend's responses have been cut.
    fn is_cut(&self) -> bool {
        self.backend.is_cut()
    }

    /// The body is about to wait: whether the cut came meanwhile; if not, `cx` is woken
    /// when it does.
    fn cut_while_waiting(&mut self, cx: &mut Context<'_>) -> bool {
        let backend = &self.backend;
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(backend.cut_signal()));
        wait.as_mut().poll(cx).is_ready()
    }
}

impl Kind {
    fn is_end(&self) -> bool {
        match self {
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }
}

impl ResponseBody {
    /// A body streamed from a backend (which gives its connection back at its end); `cut`,
    /// its backend, ends it early (the drain deadline), and so does `idle`
    /// (`timeouts.upstream_idle`) passing while the backend sends nothing.
    pub fn upstream(body: UpstreamBody, cut: Arc<Backend>, idle: Duration) -> Self {
        Self {
            kind: Kind::Upstream {
                body,
                cut: Cut::new(cut),
                stall: Stall::new(idle),
                pace: Pace::default(),
            },
            exchange: None,
            watch: (),
        }
    }

    /// A complete body of portero's own.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: Kind::Full { data },
            exchange: None,
            watch: (),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
            exchange: None,
            watch: (),
        }
    }

    /// Attaches the exchange to record when this body ends, and its connection's `watch`. A
    /// body streamed to an HTTP/1 client keeps pace with what the connection has written.
    pub fn with_exchange<W: Watch>(mut self, exchange: Exchange, mut watch: W) -> ResponseBody<W> {
        // Taken, not moved: a body with a drop of its own cannot be taken apart.
        let mut kind = std::mem::replace(&mut self.kind, Kind::Full { data: None });
        if let Kind::Upstream { pace, .. } = &mut kind {
            watch.streaming();
            if exchange.version() < http::Version::HTTP_2 {
                *pace = Pace::with(Arc::clone(exchange.client()) as Arc<dyn Writes>);
            }
        }
        ResponseBody {
            kind,
            exchange: Some(exchange),
            watch,
        }
    }
}

impl<W> ResponseBody<W> {
    /// The backend's fields still held as its bytes, when the response came over portero's
    /// own HTTP/1.1 connection. They come before the response's `HeaderMap`, which then holds
    /// only what portero adds; whoever writes the head takes them
    /// ([`take_fields`](Self::take_fields)).
    pub fn fields_mut(&mut self) -> Option<&mut RawFields> {
        match &mut self.kind {
            Kind::Upstream { body, .. } => body.fields_mut(),
            Kind::Full { .. } => None,
        }
    }

    /// Takes the fields [`fields_mut`](Self::fields_mut) would show.
    pub fn take_fields(&mut self) -> Option<RawFields> {
        match &mut self.kind {
            Kind::Upstream { body, .. } => body.take_fields(),
            Kind::Full { .. } => None,
        }
    }
}

impl<W: Watch> Body for ResponseBody<W> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let frame = match this.kind.project() {
            KindProj::Upstream {
                body,
                cut,
                stall,
                pace,
            } => {
                if cut.is_cut() {
                    Some(Err(BodyError::Drained))
                } else if !body.is_end_stream() && pace.must_wait(cx) {
                    // A body at its end has nothing left to pace: its end goes out with its
                    // last frame, in the same write (waiting would cost a wake-up and a poll
                    // of the whole request a response).
                    if !cut.cut_while_waiting(cx) {
                        return Poll::Pending;
                    }
                    Some(Err(BodyError::Drained))
                } else {
                    match Pin::new(body).poll_frame(cx) {
                        Poll::Pending if stall.expired(cx) => Some(Err(BodyError::UpstreamIdle)),
                        Poll::Pending if cut.cut_while_waiting(cx) => Some(Err(BodyError::Drained)),
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(frame) => {
                            stall.progressed();
                            if let Some(Ok(frame)) = &frame
                                && let Some(data) = frame.data_ref()
                            {
                                pace.handed(data.len());
                            }
                            frame
                                .map(|f| f.map(without_forbidden_trailers).map_err(BodyError::from))
                        }
                    }
                }
            }
            KindProj::Full { data } => data.take().map(|d| Ok(Frame::data(d))),
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.watch.progressed();
                    if let Some(exchange) = this.exchange.as_mut() {
                        exchange.add_bytes_out(data.len() as u64);
                    }
                }
            }
            Some(Err(error)) => {
                // The backend failed mid-body: hyper aborts the client side (HTTP/1 close with
                // no final chunk, HTTP/2 RST_STREAM), so a truncated body never looks complete.
                if let Some(mut exchange) = this.exchange.take() {
                    if let BodyError::UpstreamIdle = error {
                        exchange.try_failed("upstream_idle_timeout");
                        exchange.set_error("upstream_idle_timeout");
                    }
                    exchange.finish(Outcome::UpstreamAborted);
                }
            }
            None => {
                if let Some(exchange) = this.exchange.take() {
                    exchange.finish(Outcome::Complete);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// A backend's trailers lose the fields a client must not merge into the head (row 11).
fn without_forbidden_trailers(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            remove_forbidden_trailers(&mut trailers);
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}
