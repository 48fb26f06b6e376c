//! Hostile HTTP/1 requests, rows 1–7 and 10–34 of `ATTACKS.md`, and the HTTP/2-to-HTTP/1
//! downgrade (row 48) and path tricks (row 49): raw bytes on a socket (raw frames for row 48)
//! against a real portero whose backend is a [`RawBackend`], so each test asserts the exact
//! status, whether the connection was closed, and exactly what reached the backend — nothing
//! for a refused request, portero's own clean bytes for an accepted one. Every test ends by
//! checking that a fresh connection is still served. Rows 8–9 and 35–47 are tested in
//! `attacks_upstream.rs` and `attacks_h2.rs`.
//!
//! Rows marked H in ATTACKS.md are hyper's (or httparse's) work; they are proven here anyway,
//! so an upgrade that loosens a default fails a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use portero::App;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::h2raw::{self, Block, END_HEADERS, END_STREAM, INITIAL_WINDOW_SIZE, kind};
use support::raw_backend::{RawBackend, Reply, find};
use support::raw_client::{Message, Outcome, RawClient, exchange, has_bare_lf, parse_all};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);

/// A chunked body carrying `hello`.
const HELLO_CHUNKED: &str = "5\r\nhello\r\n0\r\n\r\n";

/// portero with one pool over a raw backend that records every byte.
struct Rig {
    app: Arc<App>,
    backend: RawBackend,
}

impl Rig {
    /// A backend that answers `raw_backend::OK` once each request's body is in; `extra` is
    /// appended to the config.
    async fn start(extra: &str) -> Rig {
        Rig::with(vec![Reply::AfterBody], extra).await
    }

    async fn with(script: Vec<Reply>, extra: &str) -> Rig {
        let backend = RawBackend::start(script).await;
        let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
        Rig { app, backend }
    }

    fn addr(&self) -> SocketAddr {
        traffic(&self.app)
    }

    /// `bytes` on a fresh connection; read until portero closes it (or [`WAIT`]).
    async fn send(&self, bytes: &[u8]) -> Outcome {
        exchange(self.addr(), bytes, WAIT).await
    }

    /// Bytes the backend has received over all its connections.
    fn received(&self) -> usize {
        (0..self.backend.accepted())
            .map(|n| self.backend.bytes(n).len())
            .sum()
    }

    /// `bytes`, on a fresh connection, are answered `status` alone, the connection is then
    /// closed, and not a byte reaches the backend.
    async fn refused(&self, case: &str, bytes: &[u8], status: u16) {
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
    async fn accepted(&self, case: &str, bytes: &[u8], target: &str) -> Message {
        let mut client = RawClient::connect(self.addr()).await;
        client.send(bytes).await.unwrap();
        let response = client.response(WAIT).await;
        assert_eq!(response.map(|r| r.status()), Some(200), "{case}");
        self.forwarded_to(target)
    }

    /// Every request the backend received whole, connection by connection.
    fn forwarded(&self) -> Vec<Message> {
        (0..self.backend.accepted())
            .flat_map(|n| parse_all(&self.backend.bytes(n), false, false).0)
            .collect()
    }

    /// The one request the backend received whole for `target` (tests use a target once).
    fn forwarded_to(&self, target: &str) -> Message {
        let found: Vec<Message> = self
            .forwarded()
            .into_iter()
            .filter(|m| m.start.split(' ').nth(1) == Some(target))
            .collect();
        assert_eq!(found.len(), 1, "requests for {target} at the backend");
        found.into_iter().next().unwrap()
    }

    /// The backend connection that carried (part of) a request for `target`.
    async fn conn_carrying(&self, target: &str) -> usize {
        let needle = format!(" {target} HTTP/1.1\r\n");
        let mut found = None;
        support::wait_until(&format!("a request for {target} upstream"), WAIT, || {
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
    async fn aborted_upstream(&self, target: &str) {
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
    async fn still_serves(&self) {
        let before = self.backend.heads();
        let reply = client::get(self.addr(), "/after").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(self.backend.heads(), before + 1, "it reached the backend");
    }
}

/// The header lines portero forwards for a request to `host` from this test's client (on
/// 127.0.0.1, not a trusted proxy), plus `more`, sorted as [`Message::header_lines`] sorts.
fn forwarded_lines(host: &str, more: &[&str]) -> Vec<String> {
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
fn shown(outcome: &Outcome) -> String {
    let rest = String::from_utf8_lossy(&outcome.rest);
    let rest: String = rest.chars().take(200).collect();
    format!(
        "statuses {:?}, closed {}, rest {rest:?}",
        outcome.statuses(),
        outcome.closed
    )
}

/// A request with `head` lines after the request line `GET {target} HTTP/1.1` and `Host: t`.
fn get(target: &str, head: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{head}\r\n").into_bytes()
}

/// Runs a whole test under a time limit.
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test took over 60 s");
}

/// The sum of a metric's samples whose line contains `labels`, from the admin `/metrics`.
async fn metric_sum(app: &App, name: &str, labels: &str) -> f64 {
    let text = client::get(app.admin_addr(), "/metrics").await.body;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls the metric until it reads `value`; panics after `timeout`.
async fn metric_reaches(app: &App, name: &str, labels: &str, value: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = metric_sum(app, name, labels).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{{labels}}} stayed at {now}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The peak resident memory of this process so far (Linux `VmHWM`), in bytes. nextest runs
/// each test in its own process, so this is the test's daemon, backend and client.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

const OPEN: &str = "portero_connections_open";
const HTTP: &str = "listener=\"http\"";
const UPSTREAM: &str = "portero_upstream_connections";
const APP_POOL: &str = "pool=\"app\"";

// ---------------------------------------------------------------------------------------
// Framing: rows 1–7, 10, 11
// ---------------------------------------------------------------------------------------

/// Row 1, strict choice: a head with both Content-Length and `Transfer-Encoding: chunked` is
/// refused whole. hyper drops the Content-Length and frames by chunked; portero's head scan
/// (`server/head_scan.rs`) saw the Content-Length line at the start of the connection, or of
/// a request after a keep-alive pause, and the proxy refuses it.
#[tokio::test]
async fn row_01_content_length_with_chunked_is_refused_and_never_forwarded() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases = [
            (
                "TE first",
                format!(
                    "POST /r1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
                     Content-Length: 15\r\n\r\n{HELLO_CHUNKED}"
                ),
            ),
            (
                "CL first",
                format!(
                    "POST /r1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
                     Transfer-Encoding: chunked\r\n\r\n{HELLO_CHUNKED}"
                ),
            ),
            (
                "CL in mixed case, bare LF",
                format!(
                    "POST /r1 HTTP/1.1\nHost: t\ncOnTeNt-LeNgTh: 4\n\
                     Transfer-Encoding: chunked\n\n{HELLO_CHUNKED}"
                ),
            ),
        ];
        for (case, bytes) in &cases {
            rig.refused(case, bytes.as_bytes(), 400).await;
        }

        // After a keep-alive pause: the next head is scanned too.
        let mut client = RawClient::connect(rig.addr()).await;
        client.send(&get("/r1-first", "")).await.unwrap();
        let first = client.response(WAIT).await.map(|r| r.status());
        assert_eq!(first, Some(200));
        let before = rig.received();
        client.send(cases[1].1.as_bytes()).await.unwrap();
        let outcome = client.finish(WAIT).await;
        assert_eq!(
            outcome.statuses(),
            [400],
            "after a pause: {}",
            shown(&outcome)
        );
        assert!(outcome.closed, "after a pause: closed");
        assert_eq!(rig.received(), before, "after a pause: nothing forwarded");

        // Pipelined behind a request in the same write, the head is not scanned (see the
        // head_scan docs): hyper's rule holds, which is safe. It frames by chunked, the
        // request goes upstream with portero's own chunked framing and no Content-Length,
        // and the connection closes after the response.
        let pipelined = [
            get("/r1-benign", ""),
            format!(
                "POST /r1-pipelined HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{HELLO_CHUNKED}"
            )
            .into_bytes(),
        ]
        .concat();
        let outcome = rig.send(&pipelined).await;
        assert_eq!(outcome.statuses(), [200, 200], "{}", shown(&outcome));
        assert!(outcome.closed, "closed after the CL+TE request's response");
        assert_eq!(outcome.responses[1].header("connection"), Some("close"));
        let smuggled = rig.forwarded_to("/r1-pipelined");
        assert_eq!(
            smuggled.header_lines(),
            forwarded_lines("t", &["transfer-encoding: chunked"])
        );
        assert_eq!(smuggled.text(), "hello");
        rig.still_serves().await;
    })
    .await;
}

/// Sends `POST {target}` with each `Transfer-Encoding` value and a chunked body; each must be
/// refused with `status`.
async fn te_refused(rig: &Rig, values: &[&str], status: u16) {
    for te in values {
        let bytes = format!(
            "POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {te}\r\n\r\n{HELLO_CHUNKED}"
        );
        rig.refused(&format!("TE {te:?}"), bytes.as_bytes(), status)
            .await;
    }
}

/// Row 2 (hyper): a final coding other than chunked leaves the body length unknown.
#[tokio::test]
async fn row_02_transfer_encoding_not_ending_in_chunked_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        te_refused(
            &rig,
            &["gzip", "chunked, gzip", "identity", "chunked, x"],
            400,
        )
        .await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 3 (portero): hyper accepts anything that ends in chunked; portero allows exactly
/// `chunked`. ATTACKS.md allows 400, 422 or 501 here; portero answers 400 throughout.
#[tokio::test]
async fn row_03_extra_or_unknown_codings_before_chunked_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let values = [
            "gzip, chunked",
            "chunked, chunked",
            "x, chunked",
            "identity, chunked",
        ];
        te_refused(&rig, &values, 400).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 4: obfuscated Transfer-Encoding is refused; the accepted spellings (case, padding
/// that HTTP allows) reach the backend as portero's own clean `transfer-encoding: chunked`.
#[tokio::test]
async fn row_04_obfuscated_transfer_encoding_is_refused_or_normalised() {
    bounded(async {
        let rig = Rig::start("").await;
        let head = "POST /r4 HTTP/1.1\r\nHost: t\r\n";
        let cases: [(&str, &[u8]); 9] = [
            ("leading comma", b"Transfer-Encoding: ,chunked\r\n"),
            ("trailing comma", b"Transfer-Encoding: chunked,\r\n"),
            (
                "two lines",
                b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            ),
            (
                "split over two lines",
                b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            ),
            ("VT before", b"Transfer-Encoding: \x0bchunked\r\n"),
            ("VT after", b"Transfer-Encoding: chunked\x0b\r\n"),
            ("NBSP before", b"Transfer-Encoding: \xa0chunked\r\n"),
            ("underscore", b"Transfer_Encoding: chunked\r\n"),
            ("space before the name", b" Transfer-Encoding: chunked\r\n"),
        ];
        for (case, field) in cases {
            let bytes = [head.as_bytes(), field, b"\r\n", HELLO_CHUNKED.as_bytes()].concat();
            rig.refused(case, &bytes, 400).await;
        }
        let accepted = [
            ("upper case", "/r4-upper", "CHUNKED"),
            ("optional whitespace", "/r4-ows", " \t chunked \t "),
        ];
        for (case, target, value) in accepted {
            let bytes = format!(
                "POST {target} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {value}\r\n\r\n\
                 {HELLO_CHUNKED}"
            );
            let request = rig.accepted(case, bytes.as_bytes(), target).await;
            assert_eq!(
                request.header_lines(),
                forwarded_lines("t", &["transfer-encoding: chunked"]),
                "{case}"
            );
            assert_eq!(request.text(), "hello", "{case}");
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 5 (hyper): HTTP/1.0 has no Transfer-Encoding.
#[tokio::test]
async fn row_05_transfer_encoding_in_http_1_0_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        for method in ["POST", "GET"] {
            let bytes = format!(
                "{method} /r5 HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {HELLO_CHUNKED}"
            );
            rig.refused(method, bytes.as_bytes(), 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 6 (hyper): differing Content-Lengths are refused; a repeated identical one is
/// de-duplicated. hyper is stricter than RFC 9110 §8.6 about lists: it refuses `5, 5` too.
#[tokio::test]
async fn row_06_conflicting_content_lengths_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases = [
            ("two lines", "Content-Length: 5\r\nContent-Length: 6\r\n"),
            ("a list", "Content-Length: 5, 6\r\n"),
            (
                "a list of one value (hyper is strict)",
                "Content-Length: 5, 5\r\n",
            ),
        ];
        for (case, fields) in cases {
            let bytes = format!("POST /r6 HTTP/1.1\r\nHost: t\r\n{fields}\r\nhello!");
            rig.refused(case, bytes.as_bytes(), 400).await;
        }
        let bytes = b"POST /r6-same HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
                      Content-Length: 5\r\n\r\nhello";
        let request = rig.accepted("same value twice", bytes, "/r6-same").await;
        assert_eq!(
            request.header_lines(),
            forwarded_lines("t", &["content-length: 5"])
        );
        assert_eq!(request.text(), "hello");
        rig.still_serves().await;
    })
    .await;
}

/// Row 7 (hyper): Content-Length is 1*DIGIT that fits a u64.
#[tokio::test]
async fn row_07_malformed_content_length_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let values = [
            "+5",
            "-1",
            "0x10",
            "",
            "1_0",
            "5 5",
            "18446744073709551616",
            "99999999999999999999999",
        ];
        for value in values {
            let bytes =
                format!("POST /r7 HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nhello");
            rig.refused(&format!("CL {value:?}"), bytes.as_bytes(), 400)
                .await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 10 (hyper, 16 KiB of extensions per body): a chunk extension of 64 KiB fails the
/// body; no response head was sent yet, so the client gets a 400 (ATTACKS.md: "4xx or
/// close"), and the upload is aborted upstream.
#[tokio::test]
async fn row_10_huge_chunk_extensions_fail_the_body_and_abort_upstream() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = [
            b"POST /r10 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            b"1;",
            &vec![b'a'; 64 * 1024],
            b"\r\nx\r\n0\r\n\r\n",
        ]
        .concat();
        let outcome = rig.send(&bytes).await;
        assert_eq!(outcome.statuses(), [400], "{}", shown(&outcome));
        assert!(outcome.closed);
        rig.aborted_upstream("/r10").await;
        // The body can fail before hyper has written even the head upstream (then the
        // connection carries nothing); that connection is discarded all the same.
        for n in 0..rig.backend.accepted() {
            rig.backend.wait_closed(n, WAIT).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 11 (portero): trailer fields that carry framing, routing or credentials are dropped
/// before the body goes upstream; others pass. (hyper forwards only the trailers the
/// request's `Trailer` field announces, so all are announced.)
#[tokio::test]
async fn row_11_framing_and_routing_trailers_are_dropped() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = b"POST /r11 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
            Trailer: x-checksum, content-length, host, te, transfer-encoding, authorization\r\n\r\n\
            5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\nHost: evil\r\nTE: gzip\r\n\
            Transfer-Encoding: gzip\r\nAuthorization: Basic ZXZpbA==\r\n\r\n";
        let request = rig.accepted("trailers", bytes, "/r11").await;
        assert_eq!(request.text(), "hello");
        assert_eq!(
            request.trailers,
            [("x-checksum".to_string(), "abc".to_string())]
        );
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Syntax: rows 12–17 (hyper and httparse)
// ---------------------------------------------------------------------------------------

/// Each `(case, head line)` after `GET / HTTP/1.1` and `Host: t` is refused with 400.
async fn fields_refused(rig: &Rig, cases: &[(&str, &[u8])]) {
    for (case, field) in cases {
        let bytes = [b"GET /f HTTP/1.1\r\nHost: t\r\n".as_slice(), field, b"\r\n"].concat();
        rig.refused(case, &bytes, 400).await;
    }
}

/// Row 12: obs-fold in a request.
#[tokio::test]
async fn row_12_obs_fold_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("SP fold", b"X-A: a\r\n b\r\n"),
            ("HTAB fold", b"X-A: a\r\n\tb\r\n"),
            ("fold of a second field", b"X-B: 1\r\n t2\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 13: whitespace between a field name and its colon.
#[tokio::test]
async fn row_13_whitespace_before_the_colon_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("SP", b"X-A : b\r\n"),
            ("HTAB", b"X-A\t: b\r\n"),
            ("Host", b"Host : t\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 14: CR, NUL (and other controls) inside a field value. A LF inside a value cannot be
/// sent: it ends the line (bare LF is a line ending, row 16).
#[tokio::test]
async fn row_14_cr_nul_or_controls_in_a_value_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 4] = [
            ("NUL", b"X-A: a\x00.evil\r\n"),
            ("bare CR", b"X-A: a\rb\r\n"),
            ("DEL", b"X-A: a\x7fb\r\n"),
            ("ESC", b"X-A: a\x1bb\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.refused(
            "NUL in Host",
            b"GET /f HTTP/1.1\r\nHost: a\x00.evil\r\n\r\n",
            400,
        )
        .await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 15: field names that are not tokens, empty, or without a colon.
#[tokio::test]
async fn row_15_bad_field_names_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 6] = [
            ("0x85", b"X\x85A: b\r\n"),
            ("quote", b"\"X-A\": b\r\n"),
            ("space inside", b"X A: b\r\n"),
            ("parenthesis", b"X(A): b\r\n"),
            ("empty name", b": b\r\n"),
            ("no colon", b"X-A b\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 16: bare-LF line endings are accepted (RFC 9112 §2.2 allows it) and the request goes
/// upstream re-serialised with CRLF only.
#[tokio::test]
async fn row_16_bare_lf_is_accepted_and_forwarded_with_crlf() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &str, &[u8]); 2] = [
            (
                "all LF",
                "/r16-lf",
                b"GET /r16-lf HTTP/1.1\nHost: t\nX-A: 1\n\n",
            ),
            (
                "mixed",
                "/r16-mixed",
                b"GET /r16-mixed HTTP/1.1\r\nHost: t\nX-A: 1\r\n\n",
            ),
        ];
        for (case, target, bytes) in cases {
            let request = rig.accepted(case, bytes, target).await;
            assert!(!has_bare_lf(&request.raw), "{case}: {:?}", request.raw);
            assert_eq!(request.header_lines(), forwarded_lines("t", &["x-a: 1"]));
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 17: malformed request lines. ATTACKS.md suggests 505 for an unsupported major
/// version; hyper answers 400 for every version it cannot parse (`Parse::Version`), and
/// httparse only parses `HTTP/1.x`, so `HTTP/2.0` on an HTTP/1 connection is a 400 too.
#[tokio::test]
async fn row_17_malformed_request_lines_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let lines: [(&str, &[u8]); 11] = [
            ("bare CR in the target", b"GET /r17\rx HTTP/1.1"),
            ("two SP after the method", b"GET  /r17 HTTP/1.1"),
            ("two SP before the version", b"GET /r17  HTTP/1.1"),
            ("HTAB delimiter", b"GET\t/r17 HTTP/1.1"),
            ("method not a token", b"G(T /r17 HTTP/1.1"),
            ("HTTP/1.10", b"GET /r17 HTTP/1.10"),
            ("HTTP/2.0 in HTTP/1 (not 505)", b"GET /r17 HTTP/2.0"),
            ("HTTP/3.0 (not 505)", b"GET /r17 HTTP/3.0"),
            ("HTTP/0.9", b"GET /r17 HTTP/0.9"),
            ("lower-case version", b"GET /r17 http/1.1"),
            ("trailing SP", b"GET /r17 HTTP/1.1 "),
        ];
        for (case, line) in lines {
            let bytes = [line, b"\r\nHost: t\r\n\r\n"].concat();
            rig.refused(case, &bytes, 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Host and target: rows 18–21
// ---------------------------------------------------------------------------------------

/// Row 18 (portero): exactly one valid Host in HTTP/1.1, absolute-form included (RFC 9112
/// §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host). HTTP/1.0 may name
/// none: the backend then gets its own address as Host.
#[tokio::test]
async fn row_18_missing_repeated_or_invalid_host_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 7] = [
            ("no Host", b"GET /r18 HTTP/1.1\r\n\r\n"),
            (
                "absolute-form, no Host",
                b"GET http://t/r18 HTTP/1.1\r\n\r\n",
            ),
            (
                "two equal Hosts",
                b"GET /r18 HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n",
            ),
            (
                "two Hosts",
                b"GET /r18 HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
            ),
            ("empty Host", b"GET /r18 HTTP/1.1\r\nHost:\r\n\r\n"),
            ("space in Host", b"GET /r18 HTTP/1.1\r\nHost: t u\r\n\r\n"),
            ("broken IPv6", b"GET /r18 HTTP/1.1\r\nHost: [::1\r\n\r\n"),
        ];
        for (case, bytes) in cases {
            rig.refused(case, bytes, 400).await;
        }
        let request = rig
            .accepted(
                "HTTP/1.0 without Host",
                b"GET /r18-10 HTTP/1.0\r\n\r\n",
                "/r18-10",
            )
            .await;
        assert_eq!(request.header("host"), Some(&*rig.backend.addr.to_string()));
        rig.still_serves().await;
    })
    .await;
}

/// Row 19 (portero): the absolute-form authority wins; a different Host is refused, an
/// equivalent one is replaced by the target's authority upstream (origin-form there).
#[tokio::test]
async fn row_19_absolute_form_against_a_different_host_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            (
                "other host",
                b"GET http://a.example/r19 HTTP/1.1\r\nHost: b.example\r\n\r\n",
            ),
            (
                "other port",
                b"GET http://a.example:8080/r19 HTTP/1.1\r\nHost: a.example\r\n\r\n",
            ),
            (
                "https default port is 443",
                b"GET https://a.example/r19 HTTP/1.1\r\nHost: a.example:80\r\n\r\n",
            ),
        ];
        for (case, bytes) in cases {
            rig.refused(case, bytes, 400).await;
        }
        let bytes = b"GET http://a.example/r19-ok?q=1 HTTP/1.1\r\nHost: A.EXAMPLE:80\r\n\r\n";
        let request = rig.accepted("same authority", bytes, "/r19-ok?q=1").await;
        assert_eq!(request.start, "GET /r19-ok?q=1 HTTP/1.1");
        assert_eq!(request.header_lines(), forwarded_lines("a.example", &[]));
        rig.still_serves().await;
    })
    .await;
}

/// Row 20 (portero): userinfo, a path or a bad port in Host or in the target's authority.
#[tokio::test]
async fn row_20_userinfo_path_or_bad_port_in_the_authority_is_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let hosts = ["u@h", "h/x", "h:99999", "h:", "h:8o", "h?x", "h#x", "%zz"];
        for host in hosts {
            let bytes = format!("GET /r20 HTTP/1.1\r\nHost: {host}\r\n\r\n");
            rig.refused(&format!("Host {host:?}"), bytes.as_bytes(), 400)
                .await;
        }
        let targets: [(&str, &[u8]); 2] = [
            (
                "userinfo",
                b"GET http://u@h/r20 HTTP/1.1\r\nHost: h\r\n\r\n",
            ),
            (
                "port",
                b"GET http://h:99999/r20 HTTP/1.1\r\nHost: h:99999\r\n\r\n",
            ),
        ];
        for (case, bytes) in targets {
            rig.refused(case, bytes, 400).await;
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 21 (portero, 8 KiB): a 10 KiB request target is 414; one of exactly 8 KiB passes.
#[tokio::test]
async fn row_21_long_request_target_is_414() {
    bounded(async {
        let rig = Rig::start("").await;
        let long = format!("/{}", "a".repeat(10 * 1024 - 1));
        rig.refused("10 KiB", &get(&long, ""), 414).await;
        let limit = format!("/{}", "b".repeat(8 * 1024 - 1));
        let request = rig.accepted("8 KiB", &get(&limit, ""), &limit).await;
        assert_eq!(request.start.len(), "GET  HTTP/1.1".len() + 8 * 1024);
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Size and time: rows 22–29
// ---------------------------------------------------------------------------------------

/// Row 22 (hyper, `limits.max_headers` = 100): 10 000 fields.
#[tokio::test]
async fn row_22_ten_thousand_fields_are_431() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = get("/r22", &"a: b\r\n".repeat(10_000));
        rig.refused("10 000 fields", &bytes, 431).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 23 (hyper's read buffer, `limits.max_header_bytes` = 32 KiB): one 1 MB cookie.
#[tokio::test]
async fn row_23_a_one_megabyte_cookie_is_431() {
    bounded(async {
        let rig = Rig::start("").await;
        let bytes = get("/r23", &format!("Cookie: a={}\r\n", "c".repeat(1_000_000)));
        rig.refused("1 MB cookie", &bytes, 431).await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 24 (portero's `ConnIo`): a head trickled a byte every 100 ms is answered 408 and
/// closed when `request_header` (500 ms here) runs out, counted from its first byte, not
/// reset by each byte; and an idle keep-alive connection is closed after `idle`.
#[tokio::test]
async fn row_24_slowloris_gets_408_and_close_at_the_header_timeout() {
    bounded(async {
        let rig = Rig::start("[timeouts]\nrequest_header = \"500ms\"\nidle = \"1s\"\n").await;
        let stream = tokio::net::TcpStream::connect(rig.addr()).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            writer
                .write_all(b"GET /r24 HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .await?;
            // 40 bytes over 4 s: far past the deadline, and bounded.
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                writer.write_all(b"a").await?;
            }
            Ok::<_, std::io::Error>(())
        });
        let deadline = Instant::now() + WAIT;
        let (bytes, closed) = support::raw_client::read_to_close(&mut reader, deadline).await;
        let elapsed = started.elapsed();
        trickle.abort();
        let (responses, rest) = parse_all(&bytes, true, closed);
        let statuses: Vec<u16> = responses.iter().map(Message::status).collect();
        assert_eq!(statuses, [408], "rest {rest:?}");
        assert_eq!(responses[0].header("connection"), Some("close"));
        assert!(closed, "closed after the 408");
        assert!(
            elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
            "408 after {elapsed:?}: the trickle must not extend the deadline"
        );
        assert_eq!(rig.backend.heads(), 0, "nothing forwarded");

        // Keep-alive idle time is bounded too: closed silently after `idle`.
        let mut client = RawClient::connect(rig.addr()).await;
        client.send(&get("/r24-idle", "")).await.unwrap();
        assert_eq!(client.response(WAIT).await.map(|r| r.status()), Some(200));
        let idle_from = Instant::now();
        assert!(client.closed_within(WAIT).await, "idle connection closed");
        let idle = idle_from.elapsed();
        assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
        assert!(client.unread().is_empty(), "closed without a response");
        rig.still_serves().await;
    })
    .await;
}

/// Row 25 (portero): a connection that sends nothing, or half the HTTP/2 preface, is closed
/// silently at `request_header`, and counts against the limits while it is open: in
/// `portero_connections_open` and in `max_connections_per_ip` (a third connection from the
/// same address is refused with 429 while the two silent ones hold their slots).
#[tokio::test]
async fn row_25_silent_connections_are_closed_at_the_header_timeout_and_counted() {
    bounded(async {
        let extra =
            "[timeouts]\nrequest_header = \"4s\"\n\n[security]\nmax_connections_per_ip = 2\n";
        let rig = Rig::start(extra).await;
        let started = Instant::now();
        let mut silent = RawClient::connect(rig.addr()).await;
        let mut half = RawClient::connect(rig.addr()).await;
        half.send(&h2raw::PREFACE[..12]).await.unwrap();
        metric_reaches(&rig.app, OPEN, HTTP, 2.0, WAIT).await;
        let third = rig.send(&get("/r25", "")).await;
        assert_eq!(third.statuses(), [429], "{}", shown(&third));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the checks above ran while both were open"
        );
        for (case, client) in [("nothing", &mut silent), ("half a preface", &mut half)] {
            assert!(
                client.closed_within(Duration::from_secs(10)).await,
                "{case}: closed"
            );
            let elapsed = started.elapsed();
            assert!(
                elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(10),
                "{case}: closed after {elapsed:?}"
            );
            assert!(client.unread().is_empty(), "{case}: closed silently");
        }
        metric_reaches(&rig.app, OPEN, HTTP, 0.0, WAIT).await;
        assert_eq!(rig.backend.heads(), 0);
        rig.still_serves().await;
    })
    .await;
}

/// Row 26 (portero's `ClientBody`): a body that stops coming gets 408 after
/// `request_body` (500 ms here) and a closed connection; the upstream request, already under
/// way with the first bytes, is aborted (its connection closed, never completed).
#[tokio::test]
async fn row_26_slow_post_gets_408_and_aborts_upstream() {
    bounded(async {
        let rig = Rig::start("[timeouts]\nrequest_body = \"500ms\"\n").await;
        let mut client = RawClient::connect(rig.addr()).await;
        client
            .send(b"POST /r26 HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let started = Instant::now();
        let response = client.response(WAIT).await.expect("a response");
        assert_eq!(response.status(), 408);
        assert!(started.elapsed() >= Duration::from_millis(450));
        assert!(client.closed_within(WAIT).await, "closed after the 408");
        let n = rig.conn_carrying("/r26").await;
        rig.aborted_upstream("/r26").await;
        assert!(
            rig.backend.bytes(n).ends_with(b"\r\n\r\n0123456789"),
            "only what the client sent went upstream"
        );
        rig.still_serves().await;
    })
    .await;
}

/// Row 27 (portero): a client that stops reading a 64 MiB response (HTTP/1 with a tiny
/// receive buffer: zero TCP window) or holds its HTTP/2 stream window at 0 is dropped after
/// `client_write` (1 s here), the upstream connection with it, and memory stays bounded: the
/// process's peak resident memory stays well under the response size (no buffering beyond
/// the sockets and hyper's bounded buffers).
#[tokio::test]
async fn row_27_clients_that_stop_reading_are_closed_after_client_write() {
    bounded(async {
        let backend = TestBackend::start("big", Behavior::Download(64 << 20)).await;
        let extra = "[timeouts]\nclient_write = \"1s\"\n";
        let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
        let addr = traffic(&app);
        let rss_before = support::rss_bytes(std::process::id());

        // HTTP/1: zero TCP window.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let mut client = RawClient::from(stream);
        client.send(&get("/download", "")).await.unwrap();
        let started = Instant::now();
        metric_reaches(&app, UPSTREAM, APP_POOL, 1.0, WAIT).await;
        metric_reaches(&app, OPEN, HTTP, 0.0, Duration::from_secs(15)).await;
        metric_reaches(&app, UPSTREAM, APP_POOL, 0.0, WAIT).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
            "closed after {elapsed:?}"
        );
        let grown = peak_rss_bytes().saturating_sub(rss_before);
        assert!(
            grown < 32 << 20,
            "memory peaked {grown} bytes above the start"
        );
        assert!(
            client.closed_within(WAIT).await,
            "the client sees the close"
        );
        assert!(
            client.unread().len() < 64 << 20,
            "the response was cut short"
        );

        // HTTP/2: the stream window held at 0, never a WINDOW_UPDATE.
        let mut h2 = h2raw::Client::connect(addr, &[(INITIAL_WINDOW_SIZE, 0)]).await;
        let block = Block::request("GET", "/download");
        h2.send(&h2raw::headers(1, END_STREAM | END_HEADERS, &block))
            .await
            .unwrap();
        let started = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(15);
        let head = h2.reader.find(deadline, |f| f.kind == kind::HEADERS).await;
        assert_eq!(head.status(), Some(200));
        let (mut data, mut closed) = (0, false);
        while !closed {
            match h2.reader.next(deadline).await {
                h2raw::Event::Frame(f) if f.kind == kind::DATA => data += f.payload.len(),
                h2raw::Event::Frame(_) => {}
                h2raw::Event::Closed => closed = true,
                h2raw::Event::TimedOut => panic!("not closed within 15 s"),
            }
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
            "closed after {elapsed:?}"
        );
        assert_eq!(data, 0, "no DATA past a zero window");
        metric_reaches(&app, UPSTREAM, APP_POOL, 0.0, WAIT).await;
        metric_reaches(&app, OPEN, HTTP, 0.0, WAIT).await;
        let grown = peak_rss_bytes().saturating_sub(rss_before);
        assert!(
            grown < 32 << 20,
            "memory peaked {grown} bytes above the start"
        );

        let reply = client::try_get(addr, "/after").await;
        assert_eq!(reply.map(|r| r.status.as_u16()), Some(200), "still serves");
    })
    .await;
}

/// Row 28 (portero, `limits.max_request_body` = 1 KiB): a declared length over the limit is
/// 413 before the backend is contacted and before any `100 Continue`; a chunked body that
/// grows past it is 413 and aborted upstream. Within the limit, 100-continue still works.
#[tokio::test]
async fn row_28_bodies_over_the_limit_are_413() {
    bounded(async {
        let rig = Rig::start("[limits]\nmax_request_body = \"1KiB\"\n").await;
        let before = rig.received();
        let mut client = RawClient::connect(rig.addr()).await;
        let head = b"POST /r28 HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\
                     Expect: 100-continue\r\n\r\n";
        client.send(head).await.unwrap();
        let first = client.response(WAIT).await.expect("a response");
        assert_eq!(first.status(), 413, "413 first, never a 100");
        assert!(client.closed_within(WAIT).await, "closed after the 413");
        assert!(client.unread().is_empty(), "nothing after the 413 either");
        assert_eq!(rig.received(), before, "nothing forwarded");

        let declared = [
            b"POST /r28 HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n".as_slice(),
            &[b'x'; 2048],
        ]
        .concat();
        rig.refused("declared, body sent", &declared, 413).await;
        assert_eq!(rig.backend.accepted(), 0, "the backend was never contacted");

        let mut client = RawClient::connect(rig.addr()).await;
        let head = b"POST /r28-ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\
                     Expect: 100-continue\r\n\r\n";
        client.send(head).await.unwrap();
        let continued = client.response(WAIT).await.map(|r| r.status());
        assert_eq!(continued, Some(100), "within the limit: 100 Continue");
        client.send(b"0123456789").await.unwrap();
        assert_eq!(client.response(WAIT).await.map(|r| r.status()), Some(200));
        assert_eq!(rig.forwarded_to("/r28-ok").text(), "0123456789");

        let chunk = format!("200\r\n{}\r\n", "y".repeat(0x200));
        let streamed = format!(
            "POST /r28-chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             {chunk}{chunk}{chunk}0\r\n\r\n"
        );
        let outcome = rig.send(streamed.as_bytes()).await;
        assert_eq!(outcome.statuses(), [413], "{}", shown(&outcome));
        assert!(outcome.closed);
        rig.conn_carrying("/r28-chunked").await;
        rig.aborted_upstream("/r28-chunked").await;
        rig.still_serves().await;
    })
    .await;
}

/// Row 29 (portero): an expectation other than `100-continue` is 417.
#[tokio::test]
async fn row_29_unknown_expectations_are_417() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases = [
            ("200-ok", "Expect: 200-ok\r\n"),
            ("a list", "Expect: 100-continue, 200-ok\r\n"),
            (
                "two lines",
                "Expect: 100-continue\r\nExpect: 100-continue\r\n",
            ),
        ];
        for (case, fields) in cases {
            let bytes =
                format!("POST /r29 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n{fields}\r\nhello");
            rig.refused(case, bytes.as_bytes(), 417).await;
        }
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Headers portero rewrites: rows 30–32
// ---------------------------------------------------------------------------------------

/// Row 30 (portero): Connection, every header it names and the fixed hop-by-hop set are
/// removed, then portero's own X-Forwarded-* added: the client cannot make portero drop
/// X-Forwarded-For, nor pass credentials a hop on.
#[tokio::test]
async fn row_30_hop_by_hop_headers_and_those_named_in_connection_are_removed() {
    bounded(async {
        let rig = Rig::start("").await;
        let fields = "Connection: close, X-Forwarded-For, Authorization, X-Auth-User, Cookie\r\n\
                      X-Forwarded-For: 6.6.6.6\r\nAuthorization: Basic ZXZpbA==\r\n\
                      X-Auth-User: admin\r\nCookie: session=1\r\nKeep-Alive: timeout=5\r\n\
                      Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic ZXZpbA==\r\n\
                      TE: gzip\r\nUpgrade: websocket\r\nX-Kept: yes\r\n";
        let outcome = rig.send(&get("/r30", fields)).await;
        assert_eq!(outcome.statuses(), [200], "{}", shown(&outcome));
        assert!(outcome.closed, "Connection: close is honoured");
        let request = rig.forwarded_to("/r30");
        assert_eq!(
            request.header_lines(),
            forwarded_lines("t", &["x-kept: yes"])
        );
        rig.still_serves().await;
    })
    .await;
}

/// Row 30, TE (RFC 9110 §7.6.1, §10.1.4): TE is hop-by-hop whatever its value, so neither
/// `TE: trailers` nor the `Connection: TE` that must come with it reach an HTTP/1.1 backend
/// (only an HTTP/2 backend gets `te: trailers`, for gRPC).
#[tokio::test]
async fn row_30_te_never_reaches_an_http1_backend() {
    bounded(async {
        let rig = Rig::start("").await;
        for (n, fields) in [
            "Connection: TE\r\nTE: trailers\r\n",
            "TE: trailers, deflate;q=0.5\r\nConnection: te\r\n",
            "TE: trailers\r\n",
        ]
        .iter()
        .enumerate()
        {
            let path = format!("/r30te{n}");
            let request = rig.accepted(fields, &get(&path, fields), &path).await;
            assert_eq!(
                request.header_lines(),
                forwarded_lines("t", &[]),
                "{fields:?}"
            );
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 31 (portero): forwarding headers from an untrusted client are replaced, not
/// appended to; from a trusted proxy the chain is kept and extended.
#[tokio::test]
async fn row_31_spoofed_forwarding_headers_are_replaced() {
    bounded(async {
        let spoofed = "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\
                       X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\
                       Forwarded: for=1.2.3.4;proto=https\r\nX-Real-IP: 1.2.3.4\r\n";
        let rig = Rig::start("").await;
        let request = rig
            .accepted("untrusted", &get("/r31", spoofed), "/r31")
            .await;
        assert_eq!(request.header_lines(), forwarded_lines("t", &[]));
        rig.still_serves().await;

        let trusted = Rig::start("[security]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
        let request = trusted
            .accepted("trusted", &get("/r31", spoofed), "/r31")
            .await;
        let mut expected = vec![
            "forwarded: for=1.2.3.4;proto=https",
            "host: t",
            "x-forwarded-for: 1.2.3.4, 5.6.7.8, 127.0.0.1",
            "x-forwarded-host: evil.example",
            "x-forwarded-proto: https",
            "x-real-ip: 1.2.3.4",
            "x-request-id: *",
        ];
        expected.sort();
        assert_eq!(request.header_lines(), expected);
    })
    .await;
}

/// Row 32 (portero): header names with underscores are refused (Envoy's edge default).
#[tokio::test]
async fn row_32_underscores_in_header_names_are_400() {
    bounded(async {
        let rig = Rig::start("").await;
        let cases: [(&str, &[u8]); 3] = [
            ("X_Forwarded_For", b"X_Forwarded_For: 1.2.3.4\r\n"),
            ("one underscore", b"X-Forwarded_For: 1.2.3.4\r\n"),
            ("Content_Length", b"Content_Length: 0\r\n"),
        ];
        fields_refused(&rig, &cases).await;
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Connection-level tricks: rows 33, 34
// ---------------------------------------------------------------------------------------

/// Row 33: an upgrade request with bytes pipelined behind it, to a backend that answers 200
/// rather than 101, is no tunnel: the bytes are parsed as the next request (the backend gets
/// it with portero's headers, not raw). `Upgrade: h2c` is never passed on.
#[tokio::test]
async fn row_33_upgrade_without_101_keeps_parsing_http_and_h2c_is_dropped() {
    bounded(async {
        let rig = Rig::start("").await;
        let upgrade = get(
            "/r33-ws",
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
        let bytes = [upgrade, get("/r33-next", "Connection: close\r\n")].concat();
        let outcome = rig.send(&bytes).await;
        assert_eq!(outcome.statuses(), [200, 200], "{}", shown(&outcome));
        let ws = rig.forwarded_to("/r33-ws");
        assert_eq!(
            ws.header_lines(),
            forwarded_lines(
                "t",
                &[
                    "connection: upgrade",
                    "upgrade: websocket",
                    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                    "sec-websocket-version: 13",
                ]
            )
        );
        let next = rig.forwarded_to("/r33-next");
        assert_eq!(
            next.header_lines(),
            forwarded_lines("t", &[]),
            "parsed as HTTP"
        );

        let h2c = get(
            "/r33-h2c",
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
             HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n",
        );
        let request = rig.accepted("h2c", &h2c, "/r33-h2c").await;
        assert_eq!(request.header_lines(), forwarded_lines("t", &[]));
        rig.still_serves().await;
    })
    .await;
}

/// Row 34: a GET with a body has it forwarded with its framing; requests pipelined behind
/// bodies are answered in order, each forwarded whole.
#[tokio::test]
async fn row_34_bodies_and_pipelined_requests_keep_their_framing_and_order() {
    bounded(async {
        let reply = |body: &str| {
            Reply::Keep(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        };
        let script = vec![reply("one"), reply("two"), reply("three"), reply("four")];
        let rig = Rig::with(script, "").await;
        let bytes = [
            b"GET /r34-1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".as_slice(),
            &get("/r34-2", ""),
            b"POST /r34-3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nworld\r\n0\r\n\r\n",
            &get("/r34-4", "Connection: close\r\n"),
        ]
        .concat();
        let outcome = rig.send(&bytes).await;
        let bodies: Vec<String> = outcome.responses.iter().map(Message::text).collect();
        assert_eq!(
            bodies,
            ["one", "two", "three", "four"],
            "{}",
            shown(&outcome)
        );
        assert!(outcome.closed);
        let first = rig.forwarded_to("/r34-1");
        assert_eq!(
            first.header_lines(),
            forwarded_lines("t", &["content-length: 5"])
        );
        assert_eq!(first.text(), "hello");
        assert_eq!(
            rig.forwarded_to("/r34-2").header_lines(),
            forwarded_lines("t", &[])
        );
        let third = rig.forwarded_to("/r34-3");
        assert_eq!(
            third.header_lines(),
            forwarded_lines("t", &["transfer-encoding: chunked"])
        );
        assert_eq!(third.text(), "world");
        assert_eq!(
            rig.forwarded_to("/r34-4").header_lines(),
            forwarded_lines("t", &[])
        );
        rig.still_serves().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// HTTP/2 to HTTP/1, and paths: rows 48, 49
// ---------------------------------------------------------------------------------------

/// How portero answered one HTTP/2 request.
#[derive(Debug, PartialEq, Eq)]
enum H2Answer {
    Status(u16),
    Reset(u32),
    GoAway(u32),
}

/// Sends `block` as a GET on a fresh HTTP/2 connection; the response status or the reset.
async fn h2_answer(rig: &Rig, block: &Block) -> H2Answer {
    let mut h2 = h2raw::Client::connect(rig.addr(), &[]).await;
    h2.send(&h2raw::headers(1, END_STREAM | END_HEADERS, block))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let frame = h2
        .reader
        .find(deadline, |f| {
            (f.stream == 1 && (f.kind == kind::HEADERS || f.kind == kind::RST_STREAM))
                || f.kind == kind::GOAWAY
        })
        .await;
    match frame.kind {
        kind::HEADERS => H2Answer::Status(frame.status().expect("a :status")),
        kind::RST_STREAM => H2Answer::Reset(frame.error_code().unwrap()),
        _ => H2Answer::GoAway(frame.error_code().unwrap()),
    }
}

/// Row 48 (portero): HTTP/2 requests become HTTP/1 upstream, so an `:authority` that
/// disagrees with `host` is 400 (h2 accepts both fields; portero's sanitizer refuses the
/// pair). A value with whitespace at an edge, which an HTTP/1 parser would trim, makes the
/// request malformed (RFC 9113 §8.2.1): portero's h2 (vendor/h2.patch) resets the stream with
/// PROTOCOL_ERROR, the stream error §8.1.1 asks for, as it does for an `:authority` with
/// whitespace. Nothing of either is forwarded. The HTTP/1 Host is built from `:authority`.
#[tokio::test]
async fn row_48_authority_and_host_must_agree_and_values_must_be_trimmed() {
    bounded(async {
        let rig = Rig::start("").await;
        let base = |path: &str, authority: &str| {
            Block::default()
                .field(":method", "GET")
                .field(":scheme", "http")
                .field(":path", path)
                .field(":authority", authority)
        };
        let cases = [
            (
                ":authority a, host b",
                base("/r48", "a.example").field("host", "b.example"),
                H2Answer::Status(400),
            ),
            (
                "host with a trailing space",
                base("/r48", "a.example").field("host", "a.example "),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "leading space",
                base("/r48", "a.example").field("x-a", " padded"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "trailing tab",
                base("/r48", "a.example").field("x-a", "padded\t"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
            (
                "space in :authority",
                base("/r48", " a.example"),
                H2Answer::Reset(h2raw::code::PROTOCOL_ERROR),
            ),
        ];
        for (case, block, expected) in cases {
            let before = rig.received();
            assert_eq!(h2_answer(&rig, &block).await, expected, "{case}");
            assert_eq!(rig.received(), before, "{case}: nothing forwarded");
        }
        let agreeing = [
            ("no host", base("/r48-a", "a.example")),
            (
                "same host",
                base("/r48-b", "a.example").field("host", "A.example"),
            ),
        ];
        for (case, block) in agreeing {
            assert_eq!(
                h2_answer(&rig, &block).await,
                H2Answer::Status(200),
                "{case}"
            );
        }
        for target in ["/r48-a", "/r48-b"] {
            let request = rig.forwarded_to(target);
            assert_eq!(request.start, format!("GET {target} HTTP/1.1"));
            assert_eq!(request.header_lines(), forwarded_lines("a.example", &[]));
        }
        rig.still_serves().await;
    })
    .await;
}

/// Row 49 (portero): the path is normalised before routing and sent upstream normalised, so
/// the route table and the backend see the same path: `/public/%2e%2e/admin` reaches the
/// `admin` pool as `/admin`. Encoded slashes and `;` are data, not structure (RFC 3986):
/// such paths are routed and forwarded exactly as they are.
#[tokio::test]
async fn row_49_paths_are_normalised_before_routing() {
    bounded(async {
        let admin = RawBackend::start(vec![Reply::AfterBody]).await;
        let routes = format!(
            "[[route]]\npath_prefix = \"/admin\"\npool = \"admin\"\n\n\
             [[route]]\npool = \"app\"\n\n[pool.admin]\nbackends = [\"{}\"]\n",
            admin.addr
        );
        let rig = Rig::start(&routes).await;
        let cases = [
            ("/public/%2e%2e/admin", "admin", "/admin"),
            ("/public/%2E%2e//admin/x", "admin", "/admin/x"),
            ("//admin", "admin", "/admin"),
            ("/public/./../admin?q=/../x", "admin", "/admin?q=/../x"),
            ("/admin/../public/p", "app", "/public/p"),
            ("/public/..%2Fadmin", "app", "/public/..%2Fadmin"),
            ("/public/..;/admin", "app", "/public/..;/admin"),
        ];
        for (target, pool, normalised) in cases {
            let (backend, other) = match pool {
                "admin" => (&admin, &rig.backend),
                _ => (&rig.backend, &admin),
            };
            let expected = format!("GET {normalised} HTTP/1.1");
            let arrived = |backend: &RawBackend| {
                (0..backend.accepted())
                    .flat_map(|n| parse_all(&backend.bytes(n), false, false).0)
                    .filter(|m| m.start == expected)
                    .count()
            };
            let (before, other_heads) = (arrived(backend), other.heads());
            let outcome = rig.send(&get(target, "Connection: close\r\n")).await;
            assert_eq!(outcome.statuses(), [200], "{target}: {}", shown(&outcome));
            assert_eq!(
                arrived(backend),
                before + 1,
                "{target}: reached {pool} as {normalised}"
            );
            assert_eq!(other.heads(), other_heads, "{target}: not the other pool");
        }
        rig.still_serves().await;
    })
    .await;
}
