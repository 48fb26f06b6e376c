//! A backend's response body, from whichever client carried the request: portero's own
//! HTTP/1.1 connection, or hyper's (h2c and TLS backends); and the backend side of a 101.

use super::http1;
use crate::h1::RawFields;
use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response body from a backend.
#[derive(Debug)]
// The large variant is the common one (plain HTTP/1.1 backends): boxing it would cost an
// allocation per request to save bytes in a future that is boxed already.
#[allow(clippy::large_enum_variant)]
pub enum UpstreamBody {
    /// Read by portero's own HTTP/1.1 connection.
    Http1(http1::Body),
    /// Read by hyper's client.
    Hyper(Incoming),
}

/// Why a backend's response body failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    /// On portero's own HTTP/1.1 connection.
    #[error(transparent)]
    Http1(#[from] http1::BodyError),
    /// In hyper's client.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// The backend's connection after a 101, to splice with the client's.
#[derive(Debug)]
pub enum UpstreamIo {
    /// portero's own: the socket and what came in behind the 101's head.
    Http1(http1::Upgraded),
    /// hyper's, once its client hands the connection over.
    Hyper(hyper::upgrade::OnUpgrade),
}

impl UpstreamIo {
    /// Takes the connection of a 101 `response`; `None` when it cannot be had (the backend
    /// switched protocols before the request's body was all sent).
    pub fn take(response: &mut Response<UpstreamBody>) -> Option<Self> {
        match response.body_mut() {
            UpstreamBody::Http1(body) => body.upgrade().map(UpstreamIo::Http1),
            UpstreamBody::Hyper(_) => Some(UpstreamIo::Hyper(hyper::upgrade::on(response))),
        }
    }
}

impl UpstreamBody {
    /// The response's fields, when they are still the backend's bytes (portero's own
    /// HTTP/1.1 connection keeps them so; hyper's client puts them in the `HeaderMap`).
    pub fn fields_mut(&mut self) -> Option<&mut RawFields> {
        match self {
            UpstreamBody::Http1(body) => body.fields_mut(),
            UpstreamBody::Hyper(_) => None,
        }
    }

    /// Takes the fields [`fields_mut`](Self::fields_mut) would show.
    pub fn take_fields(&mut self) -> Option<RawFields> {
        match self {
            UpstreamBody::Http1(body) => body.take_fields(),
            UpstreamBody::Hyper(_) => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        match self.get_mut() {
            UpstreamBody::Http1(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(UpstreamBodyError::from))),
            UpstreamBody::Hyper(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(UpstreamBodyError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Http1(body) => body.is_end_stream(),
            UpstreamBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Http1(body) => body.size_hint(),
            UpstreamBody::Hyper(body) => body.size_hint(),
        }
    }
}
