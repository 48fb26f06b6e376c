//! Plain HTTP/1.1 backends: hyper's connection API with a keep-alive pool of portero's own, in
//! place of hyper-util's legacy client. The legacy client spent about 12,000 instructions per
//! request on things a proxy in front of one address does not need (a checkout raced against a
//! connect, per-request connection metadata, a spawned task to return each connection): about
//! a fifth of portero's whole request path (BENCHMARKS.md).
//!
//! Each connection still runs in a task of its own, as under the legacy client. A request
//! takes an idle connection that is ready, or connects; the response's [`Lease`] gives the
//! connection back when the body has ended, so a connection is never shared by two requests.

use super::UpstreamError;
use super::observed::{ObservedConnector, ObservedIo};
use crate::body::{ClientBodyError, RequestBody};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tower_service::Service;

/// The keep-alive connections to one backend.
#[derive(Clone, Debug)]
pub struct KeepAlive {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    connector: ObservedConnector,
    /// `http://address/`: what the connector connects to.
    target: Uri,
    builder: Builder,
    /// Idle connections, the most recently used last (taken first: its socket is warm).
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    /// Whether a task is closing expired idle connections (guarded by `idle`'s lock).
    reaping: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

/// A response's hold on its connection: [`Lease::release`] returns it to the pool once the
/// response body has ended. Dropped unreleased, the connection closes.
#[derive(Debug, Default)]
pub struct Lease {
    held: Option<(SendRequest<RequestBody>, Arc<Shared>)>,
}

impl Lease {
    /// A lease on nothing (responses from hyper-util's clients, which pool on their own).
    pub fn none() -> Self {
        Self::default()
    }

    /// The response has ended: its connection may serve another request.
    pub fn release(&mut self) {
        if let Some((sender, shared)) = self.held.take() {
            Shared::put(&shared, sender);
        }
    }
}

impl KeepAlive {
    /// No connections yet; `target` is the backend's `http://address/`.
    pub fn new(
        connector: ObservedConnector,
        target: Uri,
        idle_timeout: Duration,
        max_response_head: usize,
    ) -> Self {
        let mut builder = Builder::new();
        // Bounds the memory a backend's response head can take; `invalid_head` enforces the
        // exact limit. hyper reads the body into the same buffer, in pieces of up to this
        // size, and each piece holds its buffer until the client has taken it: for a slow
        // reader this is most of what a connection holds (README, "Resource budget").
        builder.max_buf_size(max_response_head);
        Self {
            shared: Arc::new(Shared {
                connector,
                target,
                builder,
                idle: Mutex::new(Vec::new()),
                idle_timeout,
                reaping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `request` (origin-form URI, Host set) and waits for the response head.
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        loop {
            let (mut sender, reused) = match self.shared.checkout() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        held: Some((sender, Arc::clone(&self.shared))),
                    };
                    return Ok((response, lease));
                }
                Err(mut failed) => match failed.take_message() {
                    // The backend closed an idle connection as the request went out, before
                    // a byte of it was written: safe to send on a fresh one, whatever the
                    // method (the legacy client did the same).
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(request_failed(&failed.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, UpstreamError> {
        let io: ObservedIo = self
            .shared
            .connector
            .clone()
            .call(self.shared.target.clone())
            .await
            .map_err(|e| {
                if super::is_timeout(&e) {
                    UpstreamError::ConnectTimeout
                } else {
                    UpstreamError::Connect(super::root_cause(&e))
                }
            })?;
        let (mut sender, connection) = self
            .shared
            .builder
            .handshake(io)
            .await
            .map_err(|e| request_failed(&e))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection closed with an error");
            }
        });
        sender.ready().await.map_err(|e| request_failed(&e))?;
        Ok(sender)
    }
}

impl Shared {
    fn checkout(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            if conn.sender.is_ready() && conn.since.elapsed() < self.idle_timeout {
                return Some(conn.sender);
            }
        }
        None
    }

    fn put(this: &Arc<Shared>, mut sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        if !sender.is_ready() {
            // Still finishing: the request body may still be going out after an early
            // response. It rejoins the pool when hyper is done with it, or closes.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let shared = Arc::clone(this);
            runtime.spawn(async move {
                if sender.ready().await.is_ok() {
                    Shared::put(&shared, sender);
                }
            });
            return;
        }
        let mut idle = this.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        let start_reaper = !this.reaping.swap(true, Ordering::Relaxed);
        drop(idle);
        if start_reaper && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(this)));
        } else if start_reaper {
            this.reaping.store(false, Ordering::Relaxed);
        }
    }
}

/// Closes connections idle longer than the idle timeout, until none is left idle or the pool
/// is gone. Holds the pool weakly: a removed backend's connections close with it.
async fn reap(pool: Weak<Shared>) {
    loop {
        let Some(timeout) = pool.upgrade().map(|shared| shared.idle_timeout) else {
            return;
        };
        tokio::time::sleep(timeout.max(Duration::from_millis(100)) / 2).await;
        let Some(shared) = pool.upgrade() else {
            return;
        };
        let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|conn| !conn.sender.is_closed() && conn.since.elapsed() < shared.idle_timeout);
        if idle.is_empty() {
            shared.reaping.store(false, Ordering::Relaxed);
            return;
        }
    }
}

fn request_failed(error: &hyper::Error) -> UpstreamError {
    match ClientBodyError::find(error) {
        Some(body) => UpstreamError::ClientBody(body),
        None => UpstreamError::Request(super::root_cause(error)),
    }
}
