//! The client side: one pooled keep-alive client per backend, kept in [`PoolClients`] beside
//! its pool's members. Keeping the pool of connections per backend (rather than one client
//! keyed by address) means a backend's idle connections live and die with it: they carry over
//! a membership swap when the backend stays and are closed when it is dropped after draining.

use crate::body::{ClientBodyError, RequestBody};
use crate::config::UpstreamProtocol;
use crate::config::UpstreamTls;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version, header};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector, capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

mod body;
mod http1;
mod keep_alive;
mod observed;
mod pool_clients;

pub use body::{UpstreamBody, UpstreamBodyError, UpstreamIo};
use keep_alive::KeepAlive;
use observed::ObservedConnector;
pub use pool_clients::PoolClients;
use std::time::Duration;

/// Settings every upstream client is built with.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// HTTP/1.1 or h2c.
    pub protocol: UpstreamProtocol,
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this.
    pub idle_timeout: Duration,
    /// HTTPS to the backend (ALPN h2, then http/1.1).
    pub tls: Option<UpstreamTls>,
    /// `portero_upstream_connect_seconds` of the pool, when metrics are kept.
    pub connect_seconds: Option<prometheus::Histogram>,
    /// `limits.stream_buffer`: unsent bytes in a backend socket's kernel queue, and the
    /// HTTP/2 stream window and send buffer, per stream.
    pub stream_buffer: u32,
    /// `limits.max_response_header_bytes`: the largest HTTP/1.1 response head, and so the
    /// size of the buffer each backend connection reads into.
    pub max_response_head: usize,
}

/// A pooled client for one backend.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: Transport,
    /// The version a request through hyper-util's client carries (HTTP/2 for h2c).
    version: Version,
    /// Open connections to the backend, pooled or busy.
    open: Arc<AtomicI64>,
    /// The largest response head taken (`limits.max_response_header_bytes`).
    max_head: usize,
}

/// Plain HTTP/1.1, the common case, has a pool of portero's own (see `keep_alive`); h2c and TLS
/// backends use hyper-util's client, whose TLS and HTTP/2 handling is worth its cost there.
#[derive(Clone, Debug)]
enum Transport {
    Http1(KeepAlive),
    Plain(Client<ObservedConnector, RequestBody>),
    Tls(Client<HttpsConnector<ObservedConnector>, RequestBody>),
}

/// Why a request to a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made (refused, unreachable): nothing was sent.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TCP connection did not complete within the connect timeout: nothing was sent.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The request was sent but the exchange failed (reset, garbage, early close).
    #[error("upstream request failed: {0}")]
    Request(String),
    /// The client's body failed while it was being sent: the upstream request was aborted.
    #[error("{0}")]
    ClientBody(ClientBodyError),
}

impl Upstream {
    /// A client with no connections yet for the backend at `address`; the first request
    /// connects.
    pub fn new(settings: &UpstreamSettings, address: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.enforce_http(settings.tls.is_none());
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.idle_timeout)
            // Bounds the memory a backend's response head can take (hyper's default is about
            // 400 KiB); `invalid_head` enforces the exact limit.
            .http1_max_buf_size(settings.max_response_head)
            // portero sets Host itself: the client's Host, not the backend's address.
            .set_host(false)
            // What an HTTP/2 backend may send on one stream before the client has taken it
            // (hyper's default is 2 MiB), and what portero queues for one that reads slowly.
            // The connection window stays hyper's (5 MiB): every stream to the backend shares
            // it, and a stream that waits on a slow client keeps its share.
            .http2_initial_stream_window_size(settings.stream_buffer)
            .http2_adaptive_window(false)
            .http2_max_send_buf_size(settings.stream_buffer as usize);
        let version = match settings.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::H2c => {
                builder.http2_only(true);
                Version::HTTP_2
            }
        };
        let open = Arc::new(AtomicI64::new(0));
        let target = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(address.to_string())
            .path_and_query("/")
            .build()
            .expect("http, a socket address and / make a valid URI");
        let connector = ObservedConnector::new(
            connector,
            settings.connect_seconds.clone(),
            Arc::clone(&open),
        )
        .fixed_to(target.clone())
        .notsent_lowat(settings.stream_buffer);
        let client = match &settings.tls {
            None if version == Version::HTTP_11 => Transport::Http1(KeepAlive::new(
                connector,
                target,
                settings.idle_timeout,
                settings.max_response_head,
            )),
            None => Transport::Plain(builder.build(connector)),
            Some(tls) => {
                // The request URI names the client's site, so the name checked on the
                // backend's certificate is set here: the configured one, or its address.
                let name = tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| address.ip().into());
                let https = HttpsConnectorBuilder::new()
                    .with_tls_config((*tls.client).clone())
                    .https_only()
                    .with_server_name_resolver(FixedServerNameResolver::new(name));
                Transport::Tls(
                    builder.build(
                        https
                            .enable_http1()
                            .enable_http2()
                            .wrap_connector(connector),
                    ),
                )
            }
        };
        Self {
            client,
            version,
            open,
            max_head: settings.max_response_head,
        }
    }

    /// The absolute URI of `path` for hyper-util's client (h2c, TLS), with the site the
    /// client asked for (`host`, its Host or `:authority`) as the authority, which hyper sends
    /// as `:authority` on HTTP/2 (RFC 9113 §8.3.1) — the connection itself goes to the backend
    /// whatever the URI names. Without a usable `host`, the backend's `address`.
    fn absolute_uri(
        scheme: Scheme,
        address: &Authority,
        host: Option<&HeaderValue>,
        path: Option<&PathAndQuery>,
    ) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(
            path.cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        let site = host.and_then(|h| Authority::try_from(h.as_bytes()).ok());
        parts.scheme = Some(scheme);
        parts.authority = Some(site.unwrap_or_else(|| address.clone()));
        Uri::from_parts(parts).expect("scheme, authority and path make a valid URI")
    }

    /// Connections open to the backend now, pooled or busy.
    pub fn open_connections(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Whether requests may go over HTTP/2: h2c, or TLS, where ALPN decides per connection.
    pub fn may_speak_http2(&self) -> bool {
        !matches!(self.client, Transport::Http1(_))
    }

    /// Sends `head` with `body` to the backend at `address` and waits for the response head.
    /// The response body holds the connection until it ends. The head is borrowed, so that
    /// a retry sends it again without a copy made on every first try: portero's own
    /// HTTP/1.1 pool encodes it from the borrow; hyper-util's client is handed a `Request`
    /// of its own.
    pub async fn send(
        &self,
        head: &RequestHead,
        address: &Authority,
        body: RequestBody,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        match &self.client {
            // portero's own codec enforces the head's rules as it parses.
            Transport::Http1(pool) => Ok(pool.send(head, body).await?.map(UpstreamBody::Http1)),
            Transport::Plain(client) => {
                let request = self.legacy_request(head, Scheme::HTTP, address, body);
                send_legacy(client, request, self.max_head).await
            }
            Transport::Tls(client) => {
                let request = self.legacy_request(head, Scheme::HTTPS, address, body);
                send_legacy(client, request, self.max_head).await
            }
        }
    }

    fn legacy_request(
        &self,
        head: &RequestHead,
        scheme: Scheme,
        address: &Authority,
        body: RequestBody,
    ) -> Request<RequestBody> {
        let host = head.headers.get(header::HOST);
        let mut request = Request::new(body);
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = Self::absolute_uri(scheme, address, host, head.path.as_ref());
        *request.version_mut() = self.version;
        *request.headers_mut() = head.all_headers();
        request
    }
}

/// A request's head as the proxy sends it to a backend, shared by all of its tries.
#[derive(Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// Path and query (`/` when `None`).
    pub path: Option<PathAndQuery>,
    /// The fields, already rewritten for the backend.
    pub headers: HeaderMap,
    /// Fields that follow `headers` (the proxy's `X-Forwarded-*` and `X-Request-Id`), none of
    /// them named in `headers`: kept apart so that no request pays for hashing them in.
    pub added: Vec<(HeaderName, HeaderValue)>,
}

impl RequestHead {
    /// `headers` and `added` in one map, for a client that takes a `HeaderMap`.
    pub fn all_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        for (name, value) in &self.added {
            headers.insert(name.clone(), value.clone());
        }
        headers
    }
}

/// Sends through hyper-util's client.
async fn send_legacy<C: Connect + Clone + Send + Sync + 'static>(
    client: &Client<C, RequestBody>,
    mut request: Request<RequestBody>,
    max_head: usize,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let connection = capture_connection(&mut request);
    let response = client.request(request).await.map_err(|e| {
        if e.is_connect() {
            if is_timeout(&e) {
                UpstreamError::ConnectTimeout
            } else {
                UpstreamError::Connect(root_cause(&e))
            }
        } else if let Some(body) = ClientBodyError::find(&e) {
            UpstreamError::ClientBody(body)
        } else {
            UpstreamError::Request(root_cause(&e))
        }
    })?;
    if let Some(reason) = invalid_head(response.headers(), max_head) {
        // Its connection is poisoned, not just dropped: hyper may already have read the
        // whole body and found the connection fit for reuse.
        if let Some(connected) = connection.connection_metadata().as_ref() {
            connected.poison();
        }
        return Err(UpstreamError::Request(reason.into()));
    }
    Ok(response.map(UpstreamBody::Hyper))
}

/// Why a response head hyper accepted must still be refused (a 502), if it must.
fn invalid_head(headers: &HeaderMap, max: usize) -> Option<&'static str> {
    // hyper frames such a response by Transfer-Encoding but keeps the Content-Length, which
    // would then describe a different body to the client (RFC 9112 §6.3 item 3).
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return Some("response has both Content-Length and Transfer-Encoding");
    }
    // hyper's buffer limit is checked only while a head is incomplete, so a head that
    // arrives in a few large reads can pass it; this is the exact bound (name, value, ": "
    // and CRLF per field).
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (size > max).then_some("response head too large")
}

fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = e.source();
    }
    false
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
