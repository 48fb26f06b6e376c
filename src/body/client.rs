//! A client's request body as portero reads it, with the bounds hyper does not give a server:
//! at most `limits.max_request_body` bytes (ATTACKS.md row 28), each frame within
//! `timeouts.request_body` of the moment portero asked for it (row 26, slow POST), and no
//! trailer that could change framing, routing or credentials (row 11). A failure ends the
//! body with a [`ClientBodyError`]; the upstream request it feeds is then aborted, never
//! completed, and its connection is not reused.

use super::Inbound;
use super::trailers::remove_forbidden_trailers;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a client's body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    /// The client sent a malformed body (bad chunk framing) or went away mid-body.
    #[error("request body could not be read")]
    Read,
    /// More than `limits.max_request_body` bytes.
    #[error("request body over the limit")]
    TooLarge,
    /// No data for `timeouts.request_body`.
    #[error("request body timed out")]
    Timeout,
}

impl ClientBodyError {
    /// Finds a client-body failure inside an error reported by the upstream client.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<ClientBodyError> {
        let mut source = Some(error);
        while let Some(e) = source {
            if let Some(found) = e.downcast_ref::<ClientBodyError>() {
                return Some(*found);
            }
            source = e.source();
        }
        None
    }
}

/// The bounded request body.
#[derive(Debug)]
pub struct ClientBody {
    inner: Inbound,
    limit: u64,
    read: u64,
    idle: Duration,
    /// Armed the first time the client has nothing for us after a frame; boxed and created
    /// lazily so a body that never waits costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
    rearm: bool,
}

impl ClientBody {
    /// Wraps `inner` with a size limit and an idle timeout.
    pub fn new(inner: Inbound, limit: u64, idle: Duration) -> Self {
        Self {
            inner,
            limit,
            read: 0,
            idle,
            timer: None,
            rearm: true,
        }
    }

    fn waited_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if std::mem::take(&mut self.rearm) {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let frame = match polled {
            Poll::Pending if this.waited_too_long(cx) => {
                return Poll::Ready(Some(Err(ClientBodyError::Timeout)));
            }
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        this.rearm = true;
        let frame = match frame {
            None => return Poll::Ready(None),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body failed");
                return Poll::Ready(Some(Err(ClientBodyError::Read)));
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                this.read += data.len() as u64;
                if this.read > this.limit {
                    return Poll::Ready(Some(Err(ClientBodyError::TooLarge)));
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(frame) => Poll::Ready(frame.into_trailers().ok().map(|mut trailers| {
                remove_forbidden_trailers(&mut trailers);
                Ok(Frame::trailers(trailers))
            })),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
