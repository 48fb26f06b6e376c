//! One request's exchange on a connection: its head and body go out while the response head
//! is read, until the head is in; the response body then takes the connection.

use super::body::Body;
use super::conn::{Conn, Upload, UploadError};
use super::idle::IdleConns;
use crate::h1::{ResponseBodyFraming, ResponseLimits, parse_response};
use http::{Method, Response, StatusCode};
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Poll, ready};

/// A try that failed on its connection.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub error: crate::upstream::UpstreamError,
    /// The backend closed (or reset) the connection before a byte of a response: on a reused
    /// connection, the mark of one it closed while idle, as the request went out.
    pub closed_unanswered: bool,
}

/// Sends `upload` on `conn` and reads the response head, skipping interim (1xx) heads; the
/// response's body takes the connection and gives it back to `idle`.
pub async fn exchange(
    mut conn: Conn,
    upload: Upload,
    method: &Method,
    limits: ResponseLimits,
    idle: &Arc<IdleConns>,
) -> Result<Response<Body>, Failed> {
    let mut upload = Some(upload);
    let mut answered = false;
    let mut upload_failed = false;
    let parsed = poll_fn(|cx| {
        if let Some(sending) = &mut upload {
            match sending.poll(&mut conn.io, cx) {
                Poll::Ready(Ok(())) => upload = None,
                Poll::Ready(Err(UploadError::Body(error))) => {
                    return Poll::Ready(Err(failed(crate::upstream::UpstreamError::ClientBody(
                        error,
                    ))));
                }
                // The backend may have answered before it stopped reading: its response is
                // still read, and the connection is not used again.
                Poll::Ready(Err(UploadError::Io(error))) => {
                    tracing::debug!(%error, "backend stopped taking the request");
                    upload = None;
                    upload_failed = true;
                }
                Poll::Pending => {}
            }
        }
        loop {
            // Parsed only once bytes have come: the first poll, and a wake for the upload,
            // find none.
            let parsed = if conn.buf.is_empty() {
                Ok(None)
            } else {
                parse_response(&mut conn.buf, limits, method)
            };
            match parsed {
                Ok(Some(parsed)) if parsed.is_interim() => {
                    answered = true;
                    continue;
                }
                Ok(Some(parsed)) => return Poll::Ready(Ok(parsed)),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Err(failed(request_error(error)))),
            }
            let before = conn.buf.len();
            match ready!(conn.poll_read(cx)) {
                Ok(0) => {
                    return Poll::Ready(Err(Failed {
                        error: request_error("connection closed before the response head"),
                        closed_unanswered: !answered && before == 0,
                    }));
                }
                Ok(_) => {}
                Err(error) => {
                    return Poll::Ready(Err(Failed {
                        closed_unanswered: !answered && before == 0 && is_reset(&error),
                        error: request_error(error),
                    }));
                }
            }
        }
    })
    .await?;
    if parsed.framing == ResponseBodyFraming::Tunnel
        && parsed.response.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        // Only CONNECT gets a 2xx tunnel, and portero refuses CONNECT.
        return Err(failed(request_error(
            "a tunnel the request did not ask for",
        )));
    }
    let mut response = parsed.response;
    // A tunnel's head is the proxy's to rewrite (`Connection: upgrade`), as `http` types;
    // any other keeps its fields as bytes, for the client's head.
    let fields = if parsed.framing == ResponseBodyFraming::Tunnel {
        parsed.fields.prepend_to(response.headers_mut());
        None
    } else {
        Some(parsed.fields)
    };
    let body = Body::new(
        conn,
        upload.map(Box::new),
        parsed.framing,
        parsed.keep_alive && !upload_failed,
        limits.max_bytes,
        idle,
        fields,
    );
    Ok(response.map(|()| body))
}

fn failed(error: crate::upstream::UpstreamError) -> Failed {
    Failed {
        error,
        closed_unanswered: false,
    }
}

fn request_error(error: impl ToString) -> crate::upstream::UpstreamError {
    crate::upstream::UpstreamError::Request(error.to_string())
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
