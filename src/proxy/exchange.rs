//! One request/response exchange, from the request head to the last byte of the response.
//! It is created when a request arrives, travels inside the response body, and is recorded
//! exactly once when that body ends, fails or is dropped: request metrics, the access-log
//! line, and the end of the backend's in-flight count all happen there, so a long download
//! counts as in flight until its last byte.

use crate::access_log::{AccessLog, Record};
use crate::backend::InFlight;
use crate::conn::{ClientConn, ConnInfo, ConnScheme};
use crate::metrics::{ByClass, Metrics, PoolSeries};
use crate::pool::Pool;
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Where exchanges are recorded.
#[derive(Debug)]
pub struct Recorder {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The access log.
    pub access_log: AccessLog,
    /// The series of requests answered before a pool was chosen (`pool="none"`).
    pub unrouted: PoolSeries,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response was sent.
    Complete,
    /// The client went away (or the connection was closed) before the response ended.
    ClientAborted,
    /// The backend failed in the middle of the response body.
    UpstreamAborted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientAborted => "client_aborted",
            Outcome::UpstreamAborted => "upstream_aborted",
        }
    }
}

/// What only the access log reads, kept only while it is on.
#[derive(Debug)]
struct Logged {
    started_at: SystemTime,
    uri: Uri,
    host: String,
}

/// One exchange in progress. Dropping it without [`finish`](Exchange::finish) records it as
/// aborted by the client, with the nginx-style status 499 when no response was produced.
#[derive(Debug)]
pub struct Exchange {
    recorder: Arc<Recorder>,
    conn: Arc<ClientConn>,
    started: Instant,
    /// `None` while the access log is off.
    logged: Option<Logged>,
    method: Method,
    version: Version,
    status: Option<StatusCode>,
    pool: Option<Arc<Pool>>,
    in_flight: Option<InFlight>,
    upstream_elapsed: Option<Duration>,
    request_id: Option<HeaderValue>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: u64,
    error: Option<&'static str>,
    outcome: Outcome,
    grpc: bool,
}

impl Exchange {
    /// Starts recording a request that came in on `conn`.
    pub fn begin(
        recorder: Arc<Recorder>,
        conn: Arc<ClientConn>,
        method: Method,
        uri: &Uri,
        version: Version,
    ) -> Self {
        let logged = recorder.access_log.is_enabled().then(|| Logged {
            started_at: SystemTime::now(),
            uri: uri.clone(),
            host: String::new(),
        });
        Self {
            started: Instant::now(),
            logged,
            method,
            version,
            recorder,
            conn,
            status: None,
            pool: None,
            in_flight: None,
            upstream_elapsed: None,
            request_id: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
            error: None,
            outcome: Outcome::ClientAborted,
            grpc: false,
        }
    }

    /// The counter the request body adds received bytes to.
    pub fn bytes_in(&self) -> &Arc<AtomicU64> {
        &self.bytes_in
    }

    /// Marks the request as a gRPC call: portero's own answers to it are gRPC statuses.
    pub fn set_grpc(&mut self) {
        self.grpc = true;
    }

    /// Whether the request is a gRPC call.
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// Records the Host the request was routed by.
    pub fn set_host(&mut self, host: &str) {
        if let Some(logged) = &mut self.logged {
            host.clone_into(&mut logged.host);
        }
    }

    /// Records the pool that serves the request.
    pub fn set_pool(&mut self, pool: Arc<Pool>) {
        self.pool = Some(pool);
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.recorder.metrics
    }

    fn pool_name(&self) -> &str {
        self.pool.as_ref().map_or("none", |p| &**p.name())
    }

    /// A try failed without a response; counted per backend.
    pub fn try_failed(&self, kind: &'static str) {
        if let Some(flight) = &self.in_flight {
            self.recorder
                .metrics
                .requests
                .upstream_errors
                .with_label_values(&[self.pool_name(), flight.backend().label(), kind])
                .inc();
        }
    }

    /// Another try is about to be made.
    pub fn retried(&self) {
        self.recorder
            .metrics
            .requests
            .retries
            .with_label_values(&[self.pool_name()])
            .inc();
    }

    /// A try's backend was picked in panic mode.
    pub fn picked_in_panic(&self) {
        self.recorder
            .metrics
            .requests
            .pool_panic
            .with_label_values(&[self.pool_name()])
            .inc();
    }

    /// Records the backend chosen; it counts the request as in flight until the exchange ends.
    pub fn set_backend(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
    }

    /// The backend of the current try.
    pub fn backend(&self) -> Option<&Arc<crate::backend::Backend>> {
        self.in_flight.as_ref().map(InFlight::backend)
    }

    /// Records the request id sent upstream.
    pub fn set_request_id(&mut self, id: HeaderValue) {
        self.request_id = Some(id);
    }

    /// Records the backend's response head arriving.
    /// `requests` is the backend's `portero_upstream_requests_total` series in its pool.
    pub fn upstream_responded(
        &mut self,
        elapsed: Duration,
        status: StatusCode,
        requests: &ByClass,
    ) {
        self.upstream_elapsed = Some(elapsed);
        if let (Some(flight), Some(pool)) = (&self.in_flight, &self.pool) {
            let m = &self.recorder.metrics;
            let backend = flight.backend();
            pool.series()
                .upstream_response
                .get(&m.requests.upstream_response, pool.name())
                .observe(elapsed.as_secs_f64());
            requests
                .get(
                    &m.requests.upstream,
                    [pool.name(), backend.label()],
                    status.as_u16(),
                )
                .inc();
        }
    }

    /// The client's connection.
    pub fn conn(&self) -> &ConnInfo {
        &self.conn.info
    }

    /// The client's connection, shared (a body paces itself against its writes).
    pub fn client(&self) -> &Arc<ClientConn> {
        &self.conn
    }

    /// The client's HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Records that portero answered itself, and why.
    pub fn set_error(&mut self, kind: &'static str) {
        self.error = Some(kind);
    }

    /// Records the status sent to the client.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = Some(status);
    }

    /// Adds response body bytes sent.
    pub fn add_bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    /// Ends the exchange. A backend that broke off its response body counts as failing.
    pub fn finish(mut self, outcome: Outcome) {
        self.outcome = outcome;
        if outcome == Outcome::UpstreamAborted
            && let (Some(pool), Some(flight)) = (&self.pool, &self.in_flight)
        {
            super::outlier::outcome(pool, flight.backend(), false, &self.recorder.metrics);
        }
    }

    fn record(&self) {
        let status = self.status.map_or(499, |s| s.as_u16());
        let pool = self.pool_name();
        let elapsed = self.started.elapsed();
        let m = &self.recorder.metrics;
        let series = self
            .pool
            .as_ref()
            .map_or(&self.recorder.unrouted, |p| p.series());
        series
            .requests
            .inc(&m.requests.total, &self.conn.info.listener, pool, status);
        series
            .request_duration
            .get(&m.requests.duration, pool)
            .observe(elapsed.as_secs_f64());
        let aborted_by = match self.outcome {
            Outcome::Complete => None,
            Outcome::ClientAborted => Some("client"),
            Outcome::UpstreamAborted => Some("upstream"),
        };
        if let Some(by) = aborted_by {
            m.requests
                .aborted
                .with_label_values(&[&*self.conn.info.listener, by])
                .inc();
        }
        let failed = self.outcome != Outcome::Complete;
        if let Some(logged) = &self.logged
            && self.recorder.access_log.keeps(status, elapsed, failed)
        {
            self.recorder.access_log.log(&Record {
                time: humantime::format_rfc3339_millis(logged.started_at).to_string(),
                listener: &self.conn.info.listener,
                client: self.conn.info.peer.to_string(),
                method: self.method.as_str(),
                host: &logged.host,
                path: logged.uri.path_and_query().map_or("/", |p| p.as_str()),
                protocol: version_str(self.version),
                status,
                bytes_in: self.bytes_in.load(Ordering::Relaxed),
                bytes_out: self.bytes_out,
                duration: elapsed.as_secs_f64(),
                upstream_duration: self.upstream_elapsed.map(|d| d.as_secs_f64()),
                pool: self.pool.as_ref().map(|p| &**p.name()),
                backend: self.in_flight.as_ref().map(|f| &**f.backend().label()),
                request_id: self
                    .request_id
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                outcome: self.outcome.as_str(),
                error: self.error,
                tls: match &self.conn.info.scheme {
                    ConnScheme::Https(tls) => Some(tls.version),
                    _ => None,
                },
            });
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.record();
    }
}

fn version_str(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/3",
    }
}
