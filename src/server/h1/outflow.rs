//! A response on its way to an HTTP/1.1 client: the head with the framing this connection
//! needs, then the body frame by frame as the proxy yields it, through a [`Wire`].

use super::Io;
use crate::h1::{
    Coding, RawFields, ResponseFraming, SendError, Wire, encode_response_head, has_token,
};
use crate::proxy::ResponseBody;
use crate::server::served::Active;
use http::{HeaderMap, Response, StatusCode, Version, header};
use http_body::{Body, SizeHint};
use pin_project_lite::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

pin_project! {
    /// A response being sent.
    pub(super) struct Outflow {
        #[pin]
        body: ResponseBody<Active>,
        // The connection closes after this response.
        closes: bool,
        wire: Wire,
    }
}

impl Outflow {
    /// Encodes the head of `response` to a request that was `HEAD` (`head_only`) over
    /// `version`; `upgrade` when it switches protocols, `close` when the connection closes
    /// after it.
    pub(super) fn new(
        response: Response<ResponseBody<Active>>,
        head_only: bool,
        version: Version,
        upgrade: bool,
        close: bool,
    ) -> Self {
        let (parts, mut body) = response.into_parts();
        // An HTTP/1.1 backend's fields come as its bytes, and go out as such.
        let received = body.take_fields();
        let mut headers = parts.headers;
        let declared = declared_length(received.as_ref(), &headers);
        let framing = framing(
            head_only,
            parts.status,
            declared,
            &body.size_hint(),
            version,
        );
        if matches!(
            framing,
            ResponseFraming::Chunked
                | ResponseFraming::Length {
                    declared: false,
                    ..
                }
        ) {
            headers.remove(header::TRANSFER_ENCODING);
        }
        // The response's own `Connection` (portero's refusals say `close`) is read, then
        // replaced by what this connection does; an upgrade keeps its `Connection: upgrade`.
        let asked_close = !upgrade
            && headers
                .remove(header::CONNECTION)
                .is_some_and(|value| has_close(&value));
        let closes = !upgrade && (close || asked_close || framing == ResponseFraming::UntilClose);
        let connection = if upgrade {
            None
        } else if closes {
            Some("close")
        } else if version == Version::HTTP_10 {
            Some("keep-alive")
        } else {
            None
        };
        let fields = headers.len() + received.as_ref().map_or(0, RawFields::len);
        let mut out = Vec::with_capacity(256 + fields * 48);
        encode_response_head(
            &mut out,
            parts.status,
            received.as_ref(),
            &headers,
            framing,
            connection,
        );
        Self {
            body,
            closes,
            wire: Wire::new(out, coding(framing)),
        }
    }

    /// Whether the connection closes after this response (its head says so).
    pub(super) fn closes(&self) -> bool {
        self.closes
    }

    /// Sends the rest of the response: ready when all of it has been written and flushed, or
    /// with an error when the client could not take it or the body failed midway (the
    /// response is then cut short, and the connection must close).
    pub(super) fn poll_send(
        self: Pin<&mut Self>,
        io: &mut Io,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        match this.wire.poll_send(this.body.as_mut(), io, cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut *io).poll_flush(cx),
            Poll::Ready(Err(SendError::Io(error))) => Poll::Ready(Err(error)),
            Poll::Ready(Err(SendError::Body(error))) => {
                // What is queued (the head, if nothing went out yet) is offered to the socket
                // first: the client sees the response begin, then cut.
                let _ = this.wire.poll_write_out(io, cx);
                Poll::Ready(Err(io::Error::other(error)))
            }
            Poll::Pending if this.wire.is_written() => {
                // What is written so far goes out while the backend is waited on.
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn has_close(value: &http::HeaderValue) -> bool {
    has_token(value, "close")
}

/// How the body's bytes go out under `framing`.
fn coding(framing: ResponseFraming) -> Coding {
    match framing {
        ResponseFraming::Empty => Coding::Discard,
        ResponseFraming::Length { .. } | ResponseFraming::UntilClose => Coding::Raw,
        ResponseFraming::Chunked => Coding::Chunked,
    }
}

/// The length a response's `Content-Length` declares, read as `http` would read the first
/// one: from the backend's own fields when it sent them as bytes, else from the `HeaderMap`.
fn declared_length(received: Option<&RawFields>, headers: &HeaderMap) -> Option<u64> {
    let value = match received.and_then(RawFields::content_length) {
        Some(value) => value,
        None => headers.get(header::CONTENT_LENGTH)?.as_bytes(),
    };
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// How a response's body goes on the wire (RFC 9112 §6.3): none after HEAD, 1xx, 204 and
/// 304; the `declared` or known length; chunked for HTTP/1.1; until the close for HTTP/1.0.
pub(super) fn framing(
    head_only: bool,
    status: StatusCode,
    declared: Option<u64>,
    hint: &SizeHint,
    version: Version,
) -> ResponseFraming {
    if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return ResponseFraming::Empty;
    }
    match (declared, hint.exact()) {
        (Some(length), _) => ResponseFraming::Length {
            length,
            declared: true,
        },
        (None, Some(length)) => ResponseFraming::Length {
            length,
            declared: false,
        },
        (None, None) if version == Version::HTTP_11 => ResponseFraming::Chunked,
        (None, None) => ResponseFraming::UntilClose,
    }
}

#[cfg(test)]
mod tests;
