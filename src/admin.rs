//! The admin listener: metrics and the admin API, on its own port and outside the connection
//! limits, so an overloaded daemon can still be scraped and probed.

mod status;
mod write;

use crate::admission::Admission;
use crate::control::Control;
use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every admin response is short and whole.
type Body = http_body_util::Full<Bytes>;

/// The daemon's lifecycle as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// Listeners are bound: ready (pools permitting).
    pub fn set_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Shutdown began: never ready again.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// `starting`, `ready` or `draining`.
    pub fn as_str(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            STARTING => "starting",
            READY => "ready",
            _ => "draining",
        }
    }
}

/// What the admin endpoints read.
pub struct AdminCtx {
    /// The live snapshot.
    pub snapshot: SharedSnapshot,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Connection admission, for `/status`.
    pub admission: Arc<Admission>,
    /// Lifecycle.
    pub readiness: Arc<Readiness>,
    /// Bound traffic listeners (name, address); a reload may change them.
    pub listeners: Arc<ArcSwap<Vec<(String, std::net::SocketAddr)>>>,
    /// When set, write endpoints need `Authorization: Bearer <token>`.
    pub token: ArcSwap<Option<String>>,
    /// The daemon, for the write endpoints.
    pub control: Weak<dyn Control>,
}

/// Serves the admin API on `listener` until `stop` is cancelled.
pub async fn run(listener: TcpListener, ctx: Arc<AdminCtx>, stop: CancellationToken) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let http = Arc::new(http);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let ctx = Arc::clone(&ctx);
        let http = Arc::clone(&http);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, Infallible>(handle(&ctx, request).await) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn handle(ctx: &AdminCtx, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let pool = path
        .strip_prefix("/pools/")
        .and_then(|rest| rest.strip_suffix("/backends"));
    match (request.method(), path.as_str(), pool) {
        (&Method::GET, "/", _) => dashboard(),
        (&Method::GET, "/metrics", _) => status::metrics(ctx),
        (&Method::GET, "/healthz", _) => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz", _) => status::readyz(ctx),
        (&Method::GET, "/status", _) => json_response(StatusCode::OK, &status::status(ctx)),
        (&Method::POST, "/reload", _) => write::reload(ctx, &request).await,
        (&Method::POST, "/acme/renew", _) => write::renew(ctx, &request),
        (&Method::PUT, _, Some(pool)) if !pool.is_empty() && !pool.contains('/') => {
            let pool = pool.to_string();
            write::push(ctx, request, &pool).await
        }
        (
            _,
            "/" | "/metrics" | "/healthz" | "/readyz" | "/status" | "/reload" | "/acme/renew",
            _,
        )
        | (_, _, Some(_)) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// One self-contained page (inline CSS and JS, no external assets) over `/status` and `/metrics`.
const DASHBOARD: &str = include_str!("admin/dashboard.html");

fn dashboard() -> Response<Body> {
    let mut response = Response::new(Body::from(DASHBOARD));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page only talks to this origin; say so to the browser too.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"),
    );
    response
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /readyz` on `admin`: true when it answers 200 within a few seconds.
pub async fn probe_ready(admin: std::net::SocketAddr) -> bool {
    let probe = async {
        let stream = tokio::net::TcpStream::connect(admin).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = Request::get("/readyz")
            .header(header::HOST, admin.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        Some(response.status() == StatusCode::OK)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Some(true))
    )
}
