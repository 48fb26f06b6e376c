//! The access log: one JSON object per request (and per session of a tcp listener, with
//! `"protocol": "tcp"`), written by its own task. The request path
//! only formats the line and hands it over with `try_send`: if the writer falls behind (slow
//! disk, blocked stdout), lines are dropped and counted, and requests never wait for a log.

use prometheus::IntCounter;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nowhere.
    Off,
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl Target {
    /// Reads `log.access_log`.
    pub fn parse(value: &str) -> Target {
        match value {
            "off" | "" => Target::Off,
            "stdout" | "-" => Target::Stdout,
            path => Target::File(PathBuf::from(path)),
        }
    }
}

/// One access-log line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// Traffic listener name.
    pub listener: &'a str,
    /// Client address (ip:port).
    pub client: String,
    /// Request method.
    pub method: &'a str,
    /// Host the client asked for.
    pub host: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// HTTP version of the client's request.
    pub protocol: &'a str,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Whole request, seconds.
    pub duration: f64,
    /// Until the backend's response head, seconds; absent when no backend answered.
    pub upstream_duration: Option<f64>,
    /// Pool that served it.
    pub pool: Option<&'a str>,
    /// Backend that served it.
    pub backend: Option<&'a str>,
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// How the exchange ended: complete, client_aborted, upstream_aborted.
    pub outcome: &'a str,
    /// Why portero answered itself, when it did.
    pub error: Option<&'a str>,
    /// The TLS version of the connection, when it is HTTPS.
    pub tls: Option<&'a str>,
}

/// One access-log line for a session of a `protocol = "tcp"` listener.
#[derive(Debug, Serialize)]
pub struct SessionRecord<'a> {
    /// RFC 3339 time the session was accepted.
    pub time: String,
    /// Traffic listener name.
    pub listener: &'a str,
    /// Client address (ip:port).
    pub client: String,
    /// Always `tcp`: what tells a session's line from a request's.
    pub protocol: &'static str,
    /// Bytes from the client to the backend.
    pub bytes_in: u64,
    /// Bytes from the backend to the client.
    pub bytes_out: u64,
    /// Whole session, seconds.
    pub duration: f64,
    /// The listener's pool.
    pub pool: &'a str,
    /// Backend that served it; absent when none could be reached.
    pub backend: Option<&'a str>,
    /// How it ended: `closed`, `error`, `idle`, `shutdown`, `backend_removed`,
    /// `marked_down`; or why it never reached a backend (`no_backend`, `connect_failed`).
    pub end: &'a str,
}

/// What the writer task receives.
#[derive(Debug)]
enum Message {
    Line(String),
    /// Flush everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
    /// Close and open the file again (after logrotate moved it).
    Reopen,
}

/// Which requests get a line (`log.access_log_sample`, `log.access_log_slow`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// The share of ordinary requests logged, 0 to 1.
    pub rate: f64,
    /// Requests at least this long are always logged.
    pub slow: Duration,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            rate: 1.0,
            slow: Duration::from_secs(1),
        }
    }
}

impl Sampling {
    /// Whether a request that ended with `status` after `elapsed` gets a line; `failed` when
    /// it did not complete (a backend or client broke it off). Server errors, failures and
    /// slow requests always do, so sampling hides only the ordinary; `roll` is uniform in 0..1.
    pub fn keeps(&self, status: u16, elapsed: Duration, failed: bool, roll: f64) -> bool {
        self.rate >= 1.0 || status >= 500 || failed || elapsed >= self.slow || roll < self.rate
    }
}

/// The handle the request path logs through; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<Message>>,
    dropped: IntCounter,
    sampling: Sampling,
}

impl AccessLog {
    /// Opens `target` and starts its writer task, logging requests as `sampling` says. The
    /// task ends when every handle is dropped.
    pub async fn start(
        target: &Target,
        dropped: IntCounter,
        sampling: Sampling,
    ) -> std::io::Result<(AccessLog, Option<JoinHandle<()>>)> {
        if *target == Target::Off {
            return Ok((
                AccessLog {
                    tx: None,
                    dropped,
                    sampling,
                },
                None,
            ));
        }
        let writer = open(target).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_lines(rx, writer, target.clone()));
        Ok((
            AccessLog {
                tx: Some(tx),
                dropped,
                sampling,
            },
            Some(task),
        ))
    }

    /// A handle that logs nothing.
    pub fn off() -> AccessLog {
        AccessLog {
            tx: None,
            dropped: IntCounter::new("unused", "unused").expect("valid metric"),
            sampling: Sampling::default(),
        }
    }

    /// Whether a request's line is written (see [`Sampling::keeps`]).
    pub fn keeps(&self, status: u16, elapsed: Duration, failed: bool) -> bool {
        self.sampling
            .keeps(status, elapsed, failed, fastrand::f64())
    }

    /// Whether lines are written at all (callers skip building records when not).
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one record ([`Record`], [`SessionRecord`]); drops it (counted) when the
    /// writer is behind.
    pub fn log(&self, record: &impl Serialize) {
        let Some(tx) = &self.tx else { return };
        match serde_json::to_string(record) {
            Ok(mut line) => {
                line.push('\n');
                if tx.try_send(Message::Line(line)).is_err() {
                    self.dropped.inc();
                }
            }
            Err(e) => tracing::warn!(error = %e, "access log record not serializable"),
        }
    }

    /// Reopens a log file (SIGUSR1, reload), so logrotate can move it away.
    pub fn reopen(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(Message::Reopen);
        }
    }

    /// Waits until every line queued so far is written (used at shutdown).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

async fn open(target: &Target) -> std::io::Result<Writer> {
    Ok(match target {
        Target::File(path) => Box::new(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?,
        ),
        _ => Box::new(tokio::io::stdout()),
    })
}

async fn write_lines(mut rx: mpsc::Receiver<Message>, writer: Writer, target: Target) {
    let mut out = BufWriter::with_capacity(64 * 1024, writer);
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        // Take whatever else is queued, then flush once: one write per burst, not per line.
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some(message) = next {
            match message {
                Message::Line(line) if result.is_ok() => {
                    result = out.write_all(line.as_bytes()).await
                }
                Message::Line(_) => {}
                Message::Flush(done) => waiting.push(done),
                Message::Reopen => {
                    let _ = out.flush().await;
                    match open(&target).await {
                        Ok(writer) => out = BufWriter::with_capacity(64 * 1024, writer),
                        Err(e) => {
                            tracing::error!(error = %e, "access log cannot be reopened; writing to the old file")
                        }
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = result.and(out.flush().await) {
            let every = std::time::Duration::from_secs(10);
            if let Some(suppressed) = crate::log_limit::keyed("access_log", "", every) {
                tracing::warn!(error = %e, suppressed, "access log write failed");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = out.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_hides_only_ordinary_requests() {
        let one_percent = Sampling {
            rate: 0.01,
            slow: Duration::from_secs(1),
        };
        let quick = Duration::from_millis(5);
        assert!(!one_percent.keeps(200, quick, false, 0.5));
        assert!(
            !one_percent.keeps(404, quick, false, 0.5),
            "a client error is ordinary"
        );
        assert!(
            one_percent.keeps(200, quick, false, 0.005),
            "the sampled share"
        );
        assert!(
            one_percent.keeps(502, quick, false, 0.5),
            "server errors always"
        );
        assert!(
            one_percent.keeps(200, quick, true, 0.5),
            "broken-off exchanges always"
        );
        assert!(
            one_percent.keeps(200, Duration::from_secs(2), false, 0.5),
            "slow ones always"
        );
        assert!(
            Sampling::default().keeps(200, quick, false, 0.999_999),
            "the default logs all"
        );
        let none = Sampling {
            rate: 0.0,
            ..one_percent
        };
        assert!(!none.keeps(200, quick, false, 0.0));
    }
}
