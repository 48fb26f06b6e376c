//! One request, top to bottom: route it to a pool, pick a backend, rewrite the headers,
//! forward it, and stream the response back; any failure becomes a status from
//! [`ProxyError::status`]. Everything the request needs is read from one [`Snapshot`] loaded
//! at its start, so a reload in the middle never mixes two configs in one request.

mod affinity;
mod error;
pub mod exchange;
mod grpc;
pub mod headers;
pub(crate) mod outlier;
mod response_body;
pub mod sanitize;
mod tries;

pub use error::ProxyError;
pub use response_body::{BodyError, ResponseBody, Watch};

use crate::body::{ClientBody, Inbound};
pub use crate::conn::Tunnel;
use crate::conn::{ClientConn, ConnInfo, ConnScheme};
use crate::overload::{Level, Overload};
use crate::route::normalize_host;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::tls::Answers;
use crate::upstream::{RequestHead, UpstreamIo};
use exchange::{Exchange, Recorder};
use headers::Hop;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use std::convert::Infallible;
use std::sync::Arc;
use tries::{Replay, Tries};

/// A response extension asking the connection to close after this response: HTTP/1 says
/// `Connection: close`, HTTP/2 sends GOAWAY.
#[derive(Debug, Clone, Copy)]
pub struct CloseAfter;

/// The request handler shared by every connection of every traffic listener.
#[derive(Debug)]
pub struct Proxy {
    snapshot: SharedSnapshot,
    recorder: Arc<Recorder>,
    overload: Arc<Overload>,
    /// ACME HTTP-01 tokens in flight, answered on plain listeners before routing.
    acme: Arc<Answers>,
}

impl Proxy {
    /// A proxy over the live snapshot.
    pub fn new(
        snapshot: SharedSnapshot,
        recorder: Arc<Recorder>,
        overload: Arc<Overload>,
        acme: Arc<Answers>,
    ) -> Self {
        Self {
            snapshot,
            recorder,
            overload,
            acme,
        }
    }

    /// Serves one request that came in on `conn`, whose response body `watch` follows. Never
    /// fails: errors become responses. What the connection must do after the response rides
    /// on it as an extension: a [`Tunnel`] to splice, or [`CloseAfter`].
    ///
    /// This and [`forward`](Self::forward) are `async` blocks, not `async fn`s, which keep
    /// their arguments twice: the request's future is moved whole several times a request.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    pub fn handle<W: Watch>(
        self: Arc<Self>,
        request: Request<Inbound>,
        client: Arc<ClientConn>,
        mut watch: W,
    ) -> impl Future<Output = Result<Response<ResponseBody<W>>, Infallible>> {
        async move {
            let snapshot = self.snapshot.load_full();
            let conn = &client.info;
            let mut exchange = Exchange::begin(
                Arc::clone(&self.recorder),
                Arc::clone(&client),
                request.method().clone(),
                request.uri(),
                request.version(),
            );
            if grpc::is_grpc(&request) {
                exchange.set_grpc();
            }
            let level = self.overload.level();
            let forwarded = match level {
                Level::Refuse => Err(ProxyError::Overloaded),
                _ => self.forward(&snapshot, request, conn, &mut exchange).await,
            };
            let response = match forwarded {
                Ok(response) => response,
                Err(error) => {
                    tracing::debug!(error = %error, peer = %conn.peer, "request answered by portero");
                    exchange.set_error(error.kind());
                    self.recorder
                        .metrics
                        .requests
                        .refused
                        .with_label_values(&[&conn.listener, error.kind()])
                        .inc();
                    error.into_response(exchange.is_grpc())
                }
            };
            let mut response = response;
            // The backend's fields may still be its bytes (an HTTP/1.1 backend): the HTTP/1
            // engine copies them to the client's head, hyper's HTTP/2 server needs a HeaderMap.
            if exchange.version() >= Version::HTTP_2
                && let Some(fields) = response.body_mut().take_fields()
            {
                fields.prepend_to(response.headers_mut());
            }
            if let ConnScheme::Https(tls) = &conn.scheme
                && let Some(hsts) = &tls.hsts
            {
                if let Some(fields) = response.body_mut().fields_mut() {
                    fields.remove("strict-transport-security");
                }
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            if level == Level::NoKeepAlive {
                response.extensions_mut().insert(CloseAfter);
            }
            exchange.set_status(response.status());
            watch.answered(response.extensions_mut());
            Ok(response.map(|body| body.with_exchange(exchange, watch)))
        }
    }

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn keeps its arguments twice"
    )]
    fn forward<'s>(
        &'s self,
        snapshot: &'s Snapshot,
        mut request: Request<Inbound>,
        conn: &'s ConnInfo,
        exchange: &'s mut Exchange,
    ) -> impl Future<Output = Result<Response<ResponseBody>, ProxyError>> + 's {
        async move {
            let config = snapshot.config();
            let client = headers::client_ip(conn.peer.ip(), request.headers(), |ip| {
                snapshot.is_trusted_proxy(ip)
            });
            if let Some(limiter) = snapshot.rate_limiter() {
                limiter
                    .check(client)
                    .await
                    .map_err(|retry_after| ProxyError::RateLimited { retry_after })?;
            }
            let host = sanitize::check(&request, &config.limits)?;
            exchange.set_host(&host);
            normalize_target(request.uri_mut());
            if let Some(answer) = self.acme_http01(&request, conn) {
                return Ok(answer);
            }
            match &conn.scheme {
                ConnScheme::Redirect(port) => {
                    return Ok(redirect_to_https(&host, *port, request.uri()));
                }
                // The certificate this connection negotiated must cover the Host it asks for,
                // or one tenant's SNI could reach another tenant's site.
                ConnScheme::Https(tls)
                    if tls.covered.as_ref().is_some_and(|cert| {
                        !crate::tls::covers(&cert.names, &normalize_host(&host))
                    }) =>
                {
                    return Err(ProxyError::Misdirected);
                }
                _ => {}
            }
            let methods = &config.security.deny_methods;
            if methods.denies(request.method()) {
                return Err(ProxyError::MethodDenied {
                    allow: methods.allow().clone(),
                });
            }
            if request.uri().path() == "*" {
                // `OPTIONS *` (the only method sanitize lets name `*`) asks about the server,
                // not a resource: the balancer is that server, so it answers.
                return Ok(options_asterisk(methods.allow()));
            }
            let target = snapshot
                .route(&normalize_host(&host), request.uri().path())
                .ok_or(ProxyError::NoRoute)?;
            if !target.access.permits(client) {
                return Err(ProxyError::Forbidden);
            }
            let pool = &target.pool;
            exchange.set_pool(Arc::clone(pool));
            let key = affinity::key(&pool.config().hash_key, request.headers(), conn.peer.ip());

            let upgrade = headers::requested_upgrade(request.headers());
            let from_h2 = request.version() == Version::HTTP_2;
            // The authority of an absolute-form target or of HTTP/2's :authority wins over any
            // Host header (RFC 9112 §3.2.2); otherwise `host` is the Host header as it came.
            let host_from_target = request.uri().authority().is_some();
            let headers = request.headers_mut();
            let te_trailers = headers::remove_hop_by_hop(headers, upgrade.clone());
            if from_h2 {
                headers::join_cookie_crumbs(headers);
            }
            let hop = Hop {
                peer: conn.peer.ip(),
                trusted: snapshot.is_trusted_proxy(conn.peer.ip()),
                proto: conn.proto(),
                host: &host,
            };
            let forwarding = headers::forwarding(headers, &hop);
            // The winning authority becomes the Host; a Host header that is already it stays as
            // it is. An HTTP/1.0 request may name none: each try then names its backend.
            if host_from_target
                && !host.is_empty()
                && let Ok(value) = HeaderValue::from_str(&host)
            {
                headers.insert(header::HOST, value);
            }
            exchange.set_request_id(forwarding.request_id);

            let (parts, body) = request.into_parts();
            let timeouts = &config.timeouts;
            // A gRPC call's deadline bounds its waits when shorter, and stands in for them, up to
            // grpc_timeout_max, when longer: a stream's first message or its client's next one
            // may rightly take minutes.
            let call = exchange
                .is_grpc()
                .then(|| grpc::timeout(&parts.headers))
                .flatten();
            let stretch = |wait: std::time::Duration| {
                call.map_or(wait, |call| wait.max(call.min(timeouts.grpc_timeout_max)))
            };
            let body = ClientBody::new(
                body,
                config.limits.max_request_body,
                stretch(timeouts.request_body),
            );
            let replay = Replay::prepare(body, &parts.method).await?;
            let deadline = call.map(|call| std::time::Instant::now() + call);
            let tries = Tries {
                pool,
                clients: &target.clients,
                head: RequestHead {
                    method: parts.method,
                    path: parts.uri.path_and_query().cloned(),
                    headers: parts.headers,
                    added: forwarding.fields,
                },
                no_host: host.is_empty(),
                te_trailers,
                replay,
                key,
                timeout: stretch(timeouts.upstream_response),
                deadline,
            };
            let mut response = tries.send(exchange).await?;
            let backend = exchange.backend().expect("a response comes from a backend");

            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                // Only to a request that asked for an upgrade.
                if upgrade.is_none() {
                    return Err(ProxyError::BadUpgrade);
                }
                // The backend's connection now belongs to the tunnel, never to the pool again.
                let upstream = UpstreamIo::take(&mut response).ok_or(ProxyError::BadUpgrade)?;
                let tunnel = Tunnel {
                    upstream: Arc::new(std::sync::Mutex::new(Some(upstream))),
                    backend: Arc::clone(backend),
                };
                response.extensions_mut().insert(tunnel);
                headers::remove_hop_by_hop(response.headers_mut(), upgrade);
                return Ok(response.map(|_| ResponseBody::empty()));
            }
            headers::remove_hop_by_hop(response.headers_mut(), None);
            if let Some(fields) = response.body_mut().fields_mut() {
                fields.remove_hop_by_hop();
            }
            // The client gets our HTTP version, whatever the backend spoke (an HTTP/1.0 backend's
            // version would otherwise turn a keep-alive client connection into a closing one).
            *response.version_mut() = Version::HTTP_11;
            let idle = stretch(timeouts.upstream_idle);
            let cut = Arc::clone(backend);
            Ok(response.map(|body| ResponseBody::upstream(body, cut, idle)))
        }
    }
}

/// Rewrites the path to its normalised form (row 49), keeping the query, so routes, access
/// rules and the backend all see the same path.
fn normalize_target(uri: &mut Uri) {
    let Some(path_and_query) = uri.path_and_query() else {
        return;
    };
    let path = sanitize::normalize_path(path_and_query.path());
    if let std::borrow::Cow::Owned(path) = path {
        let target = match path_and_query.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = target.parse().ok();
        if let Ok(rebuilt) = Uri::from_parts(parts) {
            *uri = rebuilt;
        }
    }
}

/// The answer to `OPTIONS *`: 200, the methods portero forwards, no body.
fn options_asterisk(allow: &HeaderValue) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    response.headers_mut().insert(header::ALLOW, allow.clone());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

impl Proxy {
    /// A CA validating an HTTP-01 challenge of an order in flight: answered here, before the
    /// redirect and the routes (RFC 8555 §8.3). Any other token goes on to the routes, so a
    /// backend that runs its own ACME client keeps working.
    fn acme_http01(
        &self,
        request: &Request<Inbound>,
        conn: &ConnInfo,
    ) -> Option<Response<ResponseBody>> {
        if matches!(conn.scheme, ConnScheme::Https(_)) || request.method() != http::Method::GET {
            return None;
        }
        let token = request
            .uri()
            .path()
            .strip_prefix("/.well-known/acme-challenge/")?;
        let key_authorization = self.acme.http01(token)?;
        tracing::debug!(token, peer = %conn.peer, "ACME HTTP-01 challenge answered");
        let mut response = Response::new(ResponseBody::full(key_authorization));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(response)
    }
}

/// A 308 to the same host and path over https (the https port named unless it is 443).
fn redirect_to_https(host: &str, port: Option<u16>, uri: &Uri) -> Response<ResponseBody> {
    let name = normalize_host(host);
    let authority = match port {
        Some(port) => format!("{name}:{port}"),
        None => name.into_owned(),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(location) = HeaderValue::from_str(&format!("https://{authority}{path}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
