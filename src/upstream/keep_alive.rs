//! Plain HTTP/1.1 backends: a keep-alive pool of portero's own over its own codec
//! ([`http1`](super::http1)), in place of hyper-util's legacy client and then hyper's client
//! connection. The legacy client spent about 12,000 instructions per request on things a
//! proxy in front of one address does not need, and hyper's connection task with its channels
//! about 14,600 more (BENCHMARKS.md).
//!
//! A request takes an idle connection that is still fit, or connects; the response body holds
//! the connection and gives it back when it has ended, so a connection is never shared by two
//! requests.

use super::http1::{self, Conn, IdleConns, Upload, exchange, request_framing};
use super::observed::ObservedConnector;
use super::{RequestHead, UpstreamError};
use crate::body::RequestBody;
use crate::h1::{ResponseLimits, encode_request_head_with};
use http::{Response, Uri};
use std::sync::Arc;
use std::time::Duration;
use tower_service::Service;

/// Response heads may have this many fields (hyper's client allowed 100).
const MAX_RESPONSE_FIELDS: usize = 100;

/// The keep-alive connections to one backend.
#[derive(Clone, Debug)]
pub struct KeepAlive {
    connector: ObservedConnector,
    /// `http://address/`: what the connector connects to.
    target: Uri,
    idle: Arc<IdleConns>,
    limits: ResponseLimits,
}

impl KeepAlive {
    /// No connections yet; `target` is the backend's `http://address/`.
    pub fn new(
        connector: ObservedConnector,
        target: Uri,
        idle_timeout: Duration,
        max_response_head: usize,
    ) -> Self {
        Self {
            connector,
            target,
            idle: IdleConns::new(idle_timeout),
            limits: ResponseLimits {
                max_bytes: max_response_head,
                max_headers: MAX_RESPONSE_FIELDS,
            },
        }
    }

    /// Sends `request` (origin-form URI, Host set) and waits for the response head.
    ///
    /// A reused connection the backend closed as the request went out (nothing came back) is
    /// the pool's race, not the backend's failure: an idempotent request whose body can be
    /// sent again goes once more on a new connection, as Go's and hyper's clients do.
    pub async fn send(
        &self,
        head: &RequestHead,
        mut body: RequestBody,
    ) -> Result<Response<http1::Body>, UpstreamError> {
        let target = match head.path.as_ref().map(|p| p.as_str()) {
            Some(target) if !target.is_empty() => target,
            _ => "/",
        };
        let mut spare = head.method.is_idempotent().then(|| body.spare());
        loop {
            let (conn, reused) = match self.idle.checkout() {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            let framing = request_framing(&head.headers, &body);
            let fields = head.headers.len() + head.added.len();
            let mut bytes = Vec::with_capacity(256 + fields * 48);
            encode_request_head_with(
                &mut bytes,
                &head.method,
                target,
                &head.headers,
                &head.added,
                framing,
            );
            let upload = Upload::new(bytes, body, framing);
            match exchange(conn, upload, &head.method, self.limits, &self.idle).await {
                Ok(response) => return Ok(response),
                Err(failed) => match spare.take() {
                    Some(again) if reused && failed.closed_unanswered && again.is_resendable() => {
                        tracing::debug!(error = %failed.error, "idle backend connection closed under a request: sending it again");
                        spare = Some(again.spare());
                        body = again;
                    }
                    _ => return Err(failed.error),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(|e| {
                if super::is_timeout(&e) {
                    UpstreamError::ConnectTimeout
                } else {
                    UpstreamError::Connect(super::root_cause(&e))
                }
            })?;
        let (stream, open) = io.into_parts();
        Ok(Conn::new(stream, open, self.limits.max_bytes))
    }
}
