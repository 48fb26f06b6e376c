//! The parts of the bodies portero streams: [`ClientBody`] (a client's request body, bounded
//! in size and time), [`RequestBody`] (what goes to a backend: streamed from a [`BodySlot`],
//! or whole for retries), the pace a response keeps with what its client has taken
//! ([`Pace`], [`Written`]) and the trailer fields no body may carry. Nothing buffers: each
//! frame is passed on as it arrives, so memory per request stays bounded whatever the body
//! size, and backpressure reaches the sender. The response body, which records its request
//! at its end, is the proxy's (`proxy::ResponseBody`).

mod client;
mod inbound;
mod pace;
mod trailers;

pub use client::{ClientBody, ClientBodyError};
pub use inbound::{FedBody, FeedError, Feeder, Inbound, Want, feed};
pub use pace::{Pace, Writes, Written};
pub use trailers::remove_forbidden_trailers;

use crate::clock::now_us;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

/// A client's request body on its way to a backend, counting the bytes it passes. A
/// streamed body stays in its [`BodySlot`] until the backend's connection first asks for it,
/// so a try that fails before that (connect refused) leaves it for the next try.
#[derive(Debug)]
pub struct RequestBody {
    kind: RequestKind,
    received: Arc<AtomicU64>,
}

#[derive(Debug)]
enum RequestKind {
    Streaming {
        slot: Arc<BodySlot>,
        taken: Option<ClientBody>,
    },
    Full(Option<Bytes>),
}

/// A client's body not read yet, waiting for the try that will stream it.
#[derive(Debug)]
pub struct BodySlot {
    body: Mutex<Option<ClientBody>>,
    end: bool,
    hint: SizeHint,
    upload: Upload,
}

/// Whose turn it is in a streamed upload, as the try waiting for the response head needs to
/// know (`upstream_response` counts only the backend's time, `request_body` the client's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// The backend's: the next part of the body is not asked for yet (the request head is
    /// going out, or the backend is not taking what was sent).
    Backend,
    /// The client's: portero asked for more body and the client has not sent it yet.
    Client,
    /// The body has been read to its end (or failed): only the response head is awaited.
    Ended,
}

/// An [`UploadState`] and the moment (`now_us`) it began, in one word: written on every poll
/// of a streamed body, so it costs one clock read and one store, and nothing for bodies that
/// are not streamed.
#[derive(Debug, Default)]
pub struct Upload(AtomicU64);

impl Upload {
    fn set(&self, state: UploadState) {
        let tag = match state {
            UploadState::Backend => 0,
            UploadState::Client => 1,
            UploadState::Ended => 2,
        };
        self.0.store(now_us() << 2 | tag, Ordering::Relaxed);
    }

    /// The state, and since when (`now_us`; 0 before the body was first asked for).
    pub fn get(&self) -> (UploadState, u64) {
        let word = self.0.load(Ordering::Relaxed);
        let state = match word & 3 {
            0 => UploadState::Backend,
            1 => UploadState::Client,
            _ => UploadState::Ended,
        };
        (state, word >> 2)
    }
}

impl BodySlot {
    /// Keeps `body` until a try takes it.
    pub fn new(body: ClientBody) -> Arc<Self> {
        Arc::new(Self {
            end: body.is_end_stream(),
            hint: body.size_hint(),
            body: Mutex::new(Some(body)),
            upload: Upload::default(),
        })
    }

    /// Where the upload from this slot stands.
    pub fn upload(&self) -> &Upload {
        &self.upload
    }

    /// Whether no try has started reading it.
    pub fn is_unread(&self) -> bool {
        self.body.lock().map(|b| b.is_some()).unwrap_or(false)
    }

    fn take(&self) -> Option<ClientBody> {
        self.body.lock().ok()?.take()
    }
}

impl RequestBody {
    /// A body streamed from `slot`; bytes passed are added to `received`.
    pub fn streaming(slot: Arc<BodySlot>, received: Arc<AtomicU64>) -> Self {
        Self {
            kind: RequestKind::Streaming { slot, taken: None },
            received,
        }
    }

    /// A complete body (empty, or small and buffered so that it can be sent again).
    pub fn full(data: Bytes, received: Arc<AtomicU64>) -> Self {
        let data = (!data.is_empty()).then_some(data);
        Self {
            kind: RequestKind::Full(data),
            received,
        }
    }
}

impl RequestBody {
    /// Another handle on the same body, to send it again on a new connection if this try's
    /// turns out closed: a whole body is shared by reference; a streamed one through its
    /// slot, and can be sent again only while no try has read from it
    /// ([`Self::is_resendable`]).
    pub fn spare(&self) -> Self {
        let kind = match &self.kind {
            RequestKind::Full(data) => RequestKind::Full(data.clone()),
            RequestKind::Streaming { slot, .. } => RequestKind::Streaming {
                slot: Arc::clone(slot),
                taken: None,
            },
        };
        Self {
            kind,
            received: Arc::clone(&self.received),
        }
    }

    /// Whether this handle can still send the whole body.
    pub fn is_resendable(&self) -> bool {
        match &self.kind {
            RequestKind::Full(_) => true,
            RequestKind::Streaming { slot, taken: None } => slot.is_unread(),
            RequestKind::Streaming { taken: Some(_), .. } => false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        let frame = match &mut this.kind {
            RequestKind::Full(data) => data.take().map(|d| Ok(Frame::data(d))),
            RequestKind::Streaming { slot, taken } => {
                if taken.is_none() {
                    *taken = slot.take();
                }
                match taken {
                    Some(body) => {
                        let polled = Pin::new(&mut *body).poll_frame(cx);
                        slot.upload.set(match &polled {
                            Poll::Pending => UploadState::Client,
                            Poll::Ready(Some(Ok(_))) if !body.is_end_stream() => {
                                UploadState::Backend
                            }
                            Poll::Ready(_) => UploadState::Ended,
                        });
                        ready!(polled)
                    }
                    // Another try took it first: nothing more to send from here.
                    None => None,
                }
            }
        };
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.received
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Full(data) => data.is_none(),
            RequestKind::Streaming {
                taken: Some(body), ..
            } => body.is_end_stream(),
            RequestKind::Streaming { slot, taken: None } => slot.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RequestKind::Streaming {
                taken: Some(body), ..
            } => body.size_hint(),
            RequestKind::Streaming { slot, taken: None } => slot.hint,
        }
    }
}
