//! The admin listener: metrics and the admin API, on its own port and outside the connection
//! limits, so an overloaded daemon can still be scraped and probed.

use crate::admission::Admission;
use crate::body::ResponseBody;
use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    /// Bound traffic listeners (name, address).
    pub listeners: Vec<(String, std::net::SocketAddr)>,
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
                async move { Ok::<_, Infallible>(handle(&ctx, request)) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn handle(ctx: &AdminCtx, request: Request<Incoming>) -> Response<ResponseBody> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => dashboard(),
        (&Method::GET, "/metrics") => metrics(ctx),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => readyz(ctx),
        (&Method::GET, "/status") => json_response(StatusCode::OK, &status(ctx)),
        (_, "/metrics" | "/healthz" | "/readyz" | "/status") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// One self-contained page (inline CSS and JS, no external assets) over `/status` and `/metrics`.
const DASHBOARD: &str = include_str!("admin/dashboard.html");

fn dashboard() -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(DASHBOARD));
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

fn metrics(ctx: &AdminCtx) -> Response<ResponseBody> {
    refresh_gauges(ctx);
    let mut response = Response::new(ResponseBody::full(ctx.metrics.encode()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Gauges that mirror live state are set at scrape time; backends are labelled only while
/// they are members, so the label set stays bounded.
fn refresh_gauges(ctx: &AdminCtx) {
    let m = &ctx.metrics;
    let a = &ctx.admission;
    m.connections_limit
        .with_label_values(&["baseline"])
        .set(a.baseline() as i64);
    m.connections_limit
        .with_label_values(&["burst"])
        .set(a.burst() as i64);
    m.connections_in_burst.set(a.in_burst() as i64);
    m.backend_up.reset();
    m.backend_in_flight.reset();
    let snapshot = ctx.snapshot.load();
    let now = crate::backend::now_us();
    for (name, pool) in snapshot.pools() {
        for member in pool.members() {
            let labels = [name.as_str(), &**member.backend.label()];
            m.backend_up
                .with_label_values(&labels)
                .set(i64::from(member.backend.is_selectable(now)));
            m.backend_in_flight
                .with_label_values(&labels)
                .set(member.backend.in_flight() as i64);
        }
    }
}

fn readyz(ctx: &AdminCtx) -> Response<ResponseBody> {
    let state = ctx.readiness.as_str();
    if state != "ready" {
        return text(StatusCode::SERVICE_UNAVAILABLE, &format!("{state}\n"));
    }
    let snapshot = ctx.snapshot.load();
    let now = crate::backend::now_us();
    let empty: Vec<&str> = snapshot
        .pools()
        .iter()
        .filter(|(_, pool)| !pool.members().iter().any(|m| m.backend.is_selectable(now)))
        .map(|(name, _)| name.as_str())
        .collect();
    if empty.is_empty() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no healthy backend in: {}\n", empty.join(", ")),
        )
    }
}

fn status(ctx: &AdminCtx) -> serde_json::Value {
    let snapshot = ctx.snapshot.load();
    let a = &ctx.admission;
    let pools: Vec<_> = snapshot
        .pools()
        .iter()
        .map(|(name, pool)| {
            let backends: Vec<_> = pool
                .members()
                .iter()
                .map(|m| {
                    json!({
                        "address": m.backend.address().to_string(),
                        "state": m.backend.state().as_str(),
                        "weight": m.weight,
                        "in_flight": m.backend.in_flight(),
                    })
                })
                .collect();
            json!({ "name": name, "backends": backends })
        })
        .collect();
    let listeners: Vec<_> = ctx
        .listeners
        .iter()
        .map(|(name, address)| json!({ "name": name, "address": address.to_string() }))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "state": ctx.readiness.as_str(),
        "generation": snapshot.generation(),
        "connections": {
            "open": a.open(),
            "baseline": a.baseline(),
            "burst": a.burst(),
            "in_burst": a.in_burst(),
        },
        "listeners": listeners,
        "pools": pools,
    })
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(value.to_string()));
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
