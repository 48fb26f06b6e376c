//! The rig of the HTTP/1 attack tests (`tests/attacks_h1_*.rs`): a real portero whose one
//! pool is a [`RawBackend`] that records every byte, raw requests on fresh connections, and
//! checks of exactly what was answered, closed and forwarded.

use super::client;
use super::daemon::{config_text, start, traffic};
use super::raw_backend::{RawBackend, Reply, find};
use super::raw_client::{Message, Outcome, RawClient, exchange, parse_all};
use portero::App;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long any one wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A chunked body carrying `hello`.
pub const HELLO_CHUNKED: &str = "5\r\nhello\r\n0\r\n\r\n";

/// portero with one pool over a raw backend that records every byte.
pub struct Rig {
    /// The daemon.
    pub app: Arc<App>,
    /// Its one backend, pool `app`.
    pub backend: RawBackend,
}

impl Rig {
    /// A backend that answers `raw_backend::OK` once each request's body is in; `extra` is
    /// appended to the config.
    pub async fn start(extra: &str) -> Rig {
        Rig::with(vec![Reply::AfterBody], extra).await
    }

    /// A backend that answers each request head with the next [`Reply`] of `script`.
    pub async fn with(script: Vec<Reply>, extra: &str) -> Rig {
        let backend = RawBackend::start(script).await;
        let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
        Rig { app, backend }
    }

    /// The `http` listener's address.
    pub fn addr(&self) -> SocketAddr {
        traffic(&self.app)
    }

    /// `bytes` on a fresh connection; read until portero closes it (or [`WAIT`]).
    pub async fn send(&self, bytes: &[u8]) -> Outcome {
        exchange(self.addr(), bytes, WAIT).await
    }

    /// Bytes the backend has received over all its connections.
    pub fn received(&self) -> usize {
        (0..self.backend.accepted())
            .map(|n| self.backend.bytes(n).len())
            .sum()
    }

    /// `bytes`, on a fresh connection, are answered `status` alone, the connection is then
    /// closed, and not a byte reaches the backend.
    pub async fn refused(&self, case: &str, bytes: &[u8], status: u16) {
        let before = self.received();
        let outcome = self.send(bytes).await;
        assert_eq!(outcome.statuses(), [status], "{case}: {}", shown(&outcome));
        assert!(outcome.closed, "{case}: the connection is closed after it");
        assert_eq!(
            self.received(),
            before,
            "{case}: nothing reached the backend"
        );
    }

    /// `bytes`, on a fresh connection, are answered 200 by the backend; returns the request
    /// the backend received for `target`.
    pub async fn accepted(&self, case: &str, bytes: &[u8], target: &str) -> Message {
        let mut client = RawClient::connect(self.addr()).await;
        client.send(bytes).await.unwrap();
        let response = client.response(WAIT).await;
        assert_eq!(response.map(|r| r.status()), Some(200), "{case}");
        self.forwarded_to(target)
    }

    /// Every request the backend received whole, connection by connection.
    pub fn forwarded(&self) -> Vec<Message> {
        (0..self.backend.accepted())
            .flat_map(|n| parse_all(&self.backend.bytes(n), false, false).0)
            .collect()
    }

    /// The one request the backend received whole for `target` (tests use a target once).
    pub fn forwarded_to(&self, target: &str) -> Message {
        let found: Vec<Message> = self
            .forwarded()
            .into_iter()
            .filter(|m| m.start.split(' ').nth(1) == Some(target))
            .collect();
        assert_eq!(found.len(), 1, "requests for {target} at the backend");
        found.into_iter().next().unwrap()
    }

    /// The backend connection that carried (part of) a request for `target`.
    pub async fn conn_carrying(&self, target: &str) -> usize {
        let needle = format!(" {target} HTTP/1.1\r\n");
        let mut found = None;
        super::wait_until(&format!("a request for {target} upstream"), WAIT, || {
            found = (0..self.backend.accepted())
                .find(|&n| find(&self.backend.bytes(n), needle.as_bytes()).is_some());
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// The request for `target` was aborted upstream: every backend connection that carried
    /// (part of) it was closed by portero, and it never arrived whole. Called once the client
    /// has its answer, when portero is done with the request; a request that failed before
    /// any of it was written upstream passes too.
    pub async fn aborted_upstream(&self, target: &str) {
        let needle = format!(" {target} HTTP/1.1\r\n");
        for n in 0..self.backend.accepted() {
            if find(&self.backend.bytes(n), needle.as_bytes()).is_none() {
                continue;
            }
            self.backend.wait_closed(n, WAIT).await;
            let whole = parse_all(&self.backend.bytes(n), false, false).0;
            assert!(
                whole
                    .iter()
                    .all(|m| m.start.split(' ').nth(1) != Some(target)),
                "{target}: the request was never completed upstream"
            );
        }
    }

    /// A fresh connection still gets a normal request through to the backend.
    pub async fn still_serves(&self) {
        let before = self.backend.heads();
        let reply = client::get(self.addr(), "/after").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(self.backend.heads(), before + 1, "it reached the backend");
    }
}

/// The header lines portero forwards for a request to `host` from this test's client (on
/// 127.0.0.1, not a trusted proxy), plus `more`, sorted as [`Message::header_lines`] sorts.
pub fn forwarded_lines(host: &str, more: &[&str]) -> Vec<String> {
    let mut lines = vec![
        format!("host: {host}"),
        "x-forwarded-for: 127.0.0.1".to_string(),
        format!("x-forwarded-host: {host}"),
        "x-forwarded-proto: http".to_string(),
        "x-request-id: *".to_string(),
    ];
    lines.extend(more.iter().map(|s| s.to_string()));
    lines.sort();
    lines
}

/// The statuses and the first bytes left over, for assertion messages.
pub fn shown(outcome: &Outcome) -> String {
    let rest = String::from_utf8_lossy(&outcome.rest);
    let rest: String = rest.chars().take(200).collect();
    format!(
        "statuses {:?}, closed {}, rest {rest:?}",
        outcome.statuses(),
        outcome.closed
    )
}

/// A request with `head` lines after the request line `GET {target} HTTP/1.1` and `Host: t`.
pub fn get(target: &str, head: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{head}\r\n").into_bytes()
}

/// Each `(case, head line)` after `GET / HTTP/1.1` and `Host: t` is refused with 400.
pub async fn fields_refused(rig: &Rig, cases: &[(&str, &[u8])]) {
    for (case, field) in cases {
        let bytes = [b"GET /f HTTP/1.1\r\nHost: t\r\n".as_slice(), field, b"\r\n"].concat();
        rig.refused(case, &bytes, 400).await;
    }
}
