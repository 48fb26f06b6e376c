//! Sending a request to a pool: pick a backend, send, and when that fails, try another one
//! only if it is safe (PRODUCT.md): the try failed before anything was sent (connect refused
//! or timed out) and the body is still unread, or the method is idempotent and the body can
//! be sent again (empty, or small and buffered). Never a POST or PATCH once sent. Retries come
//! out of the pool's retry budget. Every try's outcome feeds passive outlier detection.

use super::ProxyError;
use super::exchange::Exchange;
use super::outlier::outcome;
use crate::backend::Backend;
use crate::body::{BodySlot, ClientBody, RequestBody, Upload, UploadState};
use crate::clock::now_us;
use crate::pool::{PickRequest, Pool};
use crate::upstream::{PoolClients, RequestHead, Upstream, UpstreamBody, UpstreamError};
use bytes::Bytes;
use http::{HeaderValue, Method, Response, header};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bodies up to this size are buffered for idempotent requests, so they can be sent again.
const REPLAY_BUFFER: u64 = 64 * 1024;
/// At most this many tries, whatever `retries` says.
const MAX_TRIES: usize = 6;

/// The request body in the form a retry can reuse.
pub enum Replay {
    /// Not read yet: the try that first reads it streams it; until then it can go anywhere.
    Unread(Arc<BodySlot>),
    /// Complete: every try gets a copy.
    Full(Bytes),
}

impl Replay {
    /// Prepares the body: empty or small bodies of idempotent requests are read whole now
    /// (so they can be sent twice); anything else stays a stream.
    pub async fn prepare(body: ClientBody, method: &Method) -> Result<Replay, ProxyError> {
        use http_body::Body as _;
        if body.is_end_stream() {
            return Ok(Replay::Full(Bytes::new()));
        }
        let small = body.size_hint().exact().is_some_and(|n| n <= REPLAY_BUFFER);
        if small && is_idempotent(method) {
            let data = body
                .collect()
                .await
                .map_err(ProxyError::ClientBody)?
                .to_bytes();
            return Ok(Replay::Full(data));
        }
        Ok(Replay::Unread(BodySlot::new(body)))
    }

    fn body(&self, exchange: &Exchange) -> Option<RequestBody> {
        let received = Arc::clone(exchange.bytes_in());
        match self {
            Replay::Full(data) => Some(RequestBody::full(data.clone(), received)),
            Replay::Unread(slot) if slot.is_unread() => {
                Some(RequestBody::streaming(Arc::clone(slot), received))
            }
            Replay::Unread(_) => None,
        }
    }

    fn is_full(&self) -> bool {
        matches!(self, Replay::Full(_))
    }
}

/// What every try of one request shares.
pub struct Tries<'a> {
    /// The pool.
    pub pool: &'a Arc<Pool>,
    /// The clients of its members, by the same index.
    pub clients: &'a PoolClients,
    /// What every try sends: method, path and the headers already rewritten for the
    /// backend; each try sets its own Host (when the client named none) and TE.
    pub head: RequestHead,
    /// Whether the client named no host (HTTP/1.0): each try sets the backend's.
    pub no_host: bool,
    /// Whether the client's TE accepted trailers: tries that may go over HTTP/2 say
    /// `te: trailers` (gRPC needs it); over HTTP/1.1 TE stays hop-by-hop (RFC 9110 §10.1.4).
    pub te_trailers: bool,
    /// The body.
    pub replay: Replay,
    /// The consistent-hash key, if any.
    pub key: Option<u64>,
    /// `timeouts.upstream_response`.
    pub timeout: Duration,
    /// A gRPC call's own deadline (`grpc-timeout`), when it has one: no try waits past it.
    pub deadline: Option<Instant>,
}

impl Tries<'_> {
    /// Sends the request, retrying when safe; the response of the last try (whose body holds
    /// its connection), or its error. An `async` block, not an `async fn`, which would keep
    /// `self` twice in its future: every request's future is moved whole several times.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn send(
        mut self,
        exchange: &mut Exchange,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, ProxyError>> {
        async move {
            let config = self.pool.config();
            let budget = self.pool.retry_budget();
            budget.on_request();
            let tries = (config.retries as usize + 1).min(MAX_TRIES);
            let mut tried: Vec<SocketAddr> = Vec::new();
            let mut last_error = ProxyError::NoHealthyBackend;
            for attempt in 0..tries {
                let now = now_us();
                if attempt > 0 {
                    if !budget.try_retry(now) {
                        tracing::debug!(pool = %self.pool.name(), "retry budget spent");
                        break;
                    }
                    exchange.retried();
                }
                let Some(picked) = self.pool.pick(&PickRequest {
                    now,
                    key: self.key,
                    exclude: &tried,
                }) else {
                    break;
                };
                if picked.panic {
                    exchange.picked_in_panic();
                }
                let backend = Arc::clone(picked.backend);
                let member = &self.pool.members()[picked.index];
                let upstream = self.clients.get(picked.index);
                let Some(body) = self.replay.body(exchange) else {
                    break;
                };
                self.fit_head(&backend, upstream);
                exchange.set_backend(backend.begin_request());
                let sent = Instant::now();
                let send = upstream.send(&self.head, backend.authority(), body);
                let result = match &self.replay {
                    // A body already in memory is at its end from the start: the timer runs from
                    // now, and the send future is awaited in place (passed down by value, a
                    // future this size cost ~900 instructions of copies per request).
                    Replay::Full(_) => {
                        let deadline = self.deadline.filter(|&d| d < sent + self.timeout);
                        let wait =
                            deadline.map_or(self.timeout, |d| d.saturating_duration_since(sent));
                        match tokio::time::timeout(wait, send).await {
                            Ok(result) => Head::Sent(result),
                            Err(_) if deadline.is_some() => Head::PastDeadline,
                            Err(_) => Head::TimedOut,
                        }
                    }
                    // Streamed uploads, rarer and longer, take the boxed path.
                    Replay::Unread(slot) => Box::pin(self.streamed_head(send, slot)).await,
                };
                match result {
                    Head::Sent(Ok(response)) => {
                        exchange.upstream_responded(
                            sent.elapsed(),
                            response.status(),
                            &member.requests,
                        );
                        outcome(
                            self.pool,
                            &backend,
                            !response.status().is_server_error(),
                            exchange.metrics(),
                        );
                        return Ok(response);
                    }
                    Head::Sent(Err(UpstreamError::ClientBody(error))) => {
                        // The client's fault, not the backend's: not counted against it, no retry.
                        return Err(ProxyError::ClientBody(error));
                    }
                    Head::Sent(Err(error)) => {
                        let retryable = match &error {
                            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout => true,
                            UpstreamError::Request(_) | UpstreamError::ClientBody(_) => {
                                is_idempotent(&self.head.method) && self.replay.is_full()
                            }
                        };
                        last_error = ProxyError::Upstream(error);
                        exchange.try_failed(last_error.kind());
                        outcome(self.pool, &backend, false, exchange.metrics());
                        if !retryable {
                            break;
                        }
                        tried.push(backend.address());
                    }
                    Head::PastDeadline => {
                        last_error = ProxyError::DeadlineExceeded;
                        break;
                    }
                    Head::TimedOut => {
                        // Not retried: the backend may still be working on it, and the client has
                        // already waited the whole response timeout.
                        last_error = ProxyError::UpstreamTimeout;
                        exchange.try_failed(last_error.kind());
                        outcome(self.pool, &backend, false, exchange.metrics());
                        break;
                    }
                }
            }
            Err(last_error)
        }
    }

    /// Waits for the response head of a try whose body streams from the client.
    /// `upstream_response` is the backend's time: from the end of the request body to the head
    /// (HAProxy's `timeout server`, Envoy's route timeout), so a slow upload is not cut by it.
    /// While the client is still sending, its own `request_body` timeout (in `ClientBody`)
    /// bounds the wait, and its failure is the client's (408, never charged to the backend).
    /// A gRPC call's deadline bounds the whole try; passing it is the client's choice too.
    async fn streamed_head(&self, send: impl Future<Output = Sent>, slot: &BodySlot) -> Head {
        let watched = after_body(send, slot.upload(), now_us(), self.timeout);
        match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), watched)
                .await
                .unwrap_or(Head::PastDeadline),
            None => watched.await,
        }
    }

    /// Sets the head's Host (when the client named none: the backend's) and TE (`trailers`
    /// to a backend that may speak HTTP/2, none over HTTP/1.1) for a try to `backend`.
    fn fit_head(&mut self, backend: &Backend, upstream: &Upstream) {
        let headers = &mut self.head.headers;
        if self.no_host {
            match HeaderValue::from_str(backend.label()) {
                Ok(host) => headers.insert(header::HOST, host),
                Err(_) => headers.remove(header::HOST),
            };
        }
        if self.te_trailers {
            if upstream.may_speak_http2() {
                headers.insert(header::TE, HeaderValue::from_static("trailers"));
            } else {
                headers.remove(header::TE);
            }
        }
    }
}

type Sent = Result<Response<UpstreamBody>, UpstreamError>;

/// How the wait for a try's response head ended.
// Returned once per try and taken apart at once: boxing the response would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
enum Head {
    /// The try ended: a head, or an error.
    Sent(Sent),
    /// `upstream_response` passed: the backend's fault.
    TimedOut,
    /// The gRPC call's own deadline passed first: the client's choice.
    PastDeadline,
}

/// Waits for `send` while its body streams from the client: `timeout` runs from the body's end
/// (or from `sent_us` if later), and also while the backend does not take the body (so a
/// backend that stops reading is still timed out), but never while the client is the one
/// awaited. Checked on a timer rather than woken by the body, so a streaming body pays one
/// store per frame and nothing more.
async fn after_body(
    send: impl Future<Output = Sent>,
    upload: &Upload,
    sent_us: u64,
    timeout: Duration,
) -> Head {
    let timeout_us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
    let mut send = std::pin::pin!(send);
    let sleep = tokio::time::sleep(timeout);
    let mut sleep = std::pin::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            result = &mut send => return Head::Sent(result),
            () = &mut sleep => {}
        }
        let now = now_us();
        let due = match upload.get() {
            (UploadState::Client, _) => now.saturating_add(timeout_us),
            (UploadState::Backend | UploadState::Ended, since) => {
                since.max(sent_us).saturating_add(timeout_us)
            }
        };
        if due <= now {
            return Head::TimedOut;
        }
        sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + Duration::from_micros(due - now));
    }
}

/// RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}
