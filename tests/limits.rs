//! `limits.max_headers`, `limits.max_header_bytes` and `limits.max_uri_bytes` hold the same on
//! HTTP/1.1 and HTTP/2: for each limit and each protocol, a request exactly at the limit
//! reaches the backend and one a unit over it is answered (431, 414) and never forwarded.
//!
//! What each limit measures, on both protocols:
//! - `max_headers`: the header fields as sent; the request line and pseudo-header fields are
//!   not fields (an HTTP/1 `Host` line is one, an HTTP/2 `:authority` is not).
//! - `max_header_bytes`: each protocol's own size of the head. HTTP/1.1: the head's bytes on
//!   the wire, request line to blank line. HTTP/2: the decoded field section as RFC 9113
//!   §6.5.2 counts it (name + value + 32 per field, pseudo-header fields included), which is
//!   what portero advertises in SETTINGS_MAX_HEADER_LIST_SIZE; HPACK's compressed size
//!   means nothing to the client's head.
//! - `max_uri_bytes`: the request target as sent: HTTP/1's request-target, HTTP/2's `:path`.
//!
//! Heads are written byte by byte (raw HTTP/1, raw HTTP/2 frames) so each size is exact; a
//! real h2c client shows the `:path` case as a client's own request carries it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::Full;
use portero::App;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::bounded;
use support::client;
use support::daemon::{config_text, start, traffic};
use support::h2raw::{self, Block};
use support::raw_client::{RawClient, exchange};

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(5);

const MAX_HEADERS: usize = 20;
/// Below hyper's smallest read buffer (8 KiB), so the limit cannot lean on the buffer.
const MAX_HEADER_BYTES: usize = 4096;
const MAX_URI_BYTES: usize = 1024;

/// portero with the limits above, over one counting backend.
struct Rig {
    app: Arc<App>,
    backend: TestBackend,
}

impl Rig {
    async fn start() -> Rig {
        let limits = format!(
            "[limits]\nmax_headers = {MAX_HEADERS}\nmax_header_bytes = {MAX_HEADER_BYTES}\n\
             max_uri_bytes = {MAX_URI_BYTES}\n"
        );
        Rig::with(&limits).await
    }

    /// portero with `extra` appended to its config.
    async fn with(extra: &str) -> Rig {
        let backend = TestBackend::start("limits", Behavior::Name).await;
        let app = start(&config_text(&[(backend.addr, 1)], extra)).await;
        Rig { app, backend }
    }

    fn addr(&self) -> SocketAddr {
        traffic(&self.app)
    }

    /// An HTTP/1.1 head, sent whole on a fresh connection, is answered `status`, and reaches
    /// the backend exactly when that is 200.
    async fn h1(&self, case: &str, head: &[u8], status: u16) {
        let before = self.backend.requests();
        let got = if status == 200 {
            let mut client = RawClient::connect(self.addr()).await;
            client.send(head).await.unwrap();
            client.response(WAIT).await.map(|r| r.status())
        } else {
            let outcome = exchange(self.addr(), head, WAIT).await;
            assert!(outcome.closed, "{case}: closed after the refusal");
            outcome.statuses().first().copied()
        };
        assert_eq!(got, Some(status), "{case}");
        self.forwarded(case, before, status);
    }

    /// An HTTP/2 request (`block`, GET without a body) on a fresh h2c connection is answered
    /// `status`, and reaches the backend exactly when that is 200.
    async fn h2(&self, case: &str, block: &Block, status: u16) {
        let before = self.backend.requests();
        let answer = h2raw::answer_on_fresh(self.addr(), block, WAIT).await;
        assert_eq!(answer.status(), Some(status), "{case}: {answer:?}");
        self.forwarded(case, before, status);
    }

    /// The backend got one more request if `status` is 200, else none. portero answers a
    /// refusal before it forwards anything, and a 200 only after the backend's answer, so
    /// the count is final when the client has its status.
    fn forwarded(&self, case: &str, before: u64, status: u16) {
        let more = u64::from(status == 200);
        assert_eq!(
            self.backend.requests(),
            before + more,
            "{case}: requests at the backend"
        );
    }
}

/// An HTTP/1.1 GET for `target` with `fields` (each `name: value`) after its `Host: t`.
fn h1_head(target: &str, fields: &[String]) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: t\r\n");
    for field in fields {
        head.push_str(field);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An HTTP/2 GET for `path` at `:authority t` with `fields` after the pseudo-header fields.
fn h2_block(path: &str, fields: &[(String, String)]) -> Block {
    let mut block = Block::default()
        .field(":method", "GET")
        .field(":scheme", "http")
        .field(":path", path)
        .field(":authority", "t");
    for (name, value) in fields {
        block = block.field(name, value);
    }
    block
}

/// `n` distinct small fields.
fn numbered(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("x-f{i}"), "v".to_string()))
        .collect()
}

/// An HTTP/2 header list's size as RFC 9113 §6.5.2 counts it.
fn list_size(fields: &[(&str, &str)]) -> usize {
    fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

#[tokio::test]
async fn max_headers_over_http1_passes_at_the_limit_and_is_431_past_it() {
    bounded(async {
        let rig = Rig::start().await;
        let lines = |n: usize| -> Vec<String> {
            numbered(n)
                .into_iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect()
        };
        // `Host: t` is the first field.
        let at = h1_head("/at", &lines(MAX_HEADERS - 1));
        rig.h1("20 fields", &at, 200).await;
        let over = h1_head("/over", &lines(MAX_HEADERS));
        rig.h1("21 fields", &over, 431).await;
    })
    .await;
}

/// The measured fault: h2 has no field count of its own, and 500 fields were forwarded.
#[tokio::test]
async fn max_headers_over_http2_passes_at_the_limit_and_is_431_past_it() {
    bounded(async {
        let rig = Rig::start().await;
        let at = h2_block("/at", &numbered(MAX_HEADERS));
        rig.h2("20 fields", &at, 200).await;
        let over = h2_block("/over", &numbered(MAX_HEADERS + 1));
        rig.h2("21 fields", &over, 431).await;

        // As measured, with the default limits (100 fields, 32 KiB): 500 small fields are
        // well inside the header list size.
        let rig = Rig::with("").await;
        let many = h2_block("/many", &numbered(500));
        rig.h2("500 fields", &many, 431).await;
    })
    .await;
}

#[tokio::test]
async fn max_header_bytes_over_http1_counts_the_head_as_sent() {
    bounded(async {
        let rig = Rig::start().await;
        let head = |size: usize| {
            let bare = h1_head("/hb", &["x-pad: ".to_string()]).len();
            let head = h1_head("/hb", &[format!("x-pad: {}", "a".repeat(size - bare))]);
            assert_eq!(head.len(), size);
            head
        };
        rig.h1("a head of exactly the limit", &head(MAX_HEADER_BYTES), 200)
            .await;
        rig.h1("a byte more", &head(MAX_HEADER_BYTES + 1), 431)
            .await;
    })
    .await;
}

#[tokio::test]
async fn max_header_bytes_over_http2_counts_the_header_list() {
    bounded(async {
        let rig = Rig::start().await;
        let block = |size: usize| {
            let pseudo = [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/hb"),
                (":authority", "t"),
                ("x-pad", ""),
            ];
            let pad = "a".repeat(size - list_size(&pseudo));
            h2_block("/hb", &[("x-pad".to_string(), pad)])
        };
        rig.h2("a list of exactly the limit", &block(MAX_HEADER_BYTES), 200)
            .await;
        rig.h2("a byte more", &block(MAX_HEADER_BYTES + 1), 431)
            .await;
    })
    .await;
}

#[tokio::test]
async fn max_uri_bytes_over_http1_counts_the_request_target() {
    bounded(async {
        let rig = Rig::start().await;
        let target = |len: usize| format!("/{}", "u".repeat(len - 1));
        let at = h1_head(&target(MAX_URI_BYTES), &[]);
        rig.h1("a target of exactly the limit", &at, 200).await;
        let over = h1_head(&target(MAX_URI_BYTES + 1), &[]);
        rig.h1("a byte more", &over, 414).await;
    })
    .await;
}

/// hyper hands portero an HTTP/2 request with `:scheme` and `:authority` joined to its
/// `:path`; only the `:path` is the target the client sent.
#[tokio::test]
async fn max_uri_bytes_over_http2_counts_the_path() {
    bounded(async {
        let rig = Rig::start().await;
        let target = |len: usize| format!("/{}", "u".repeat(len - 1));
        let at = h2_block(&target(MAX_URI_BYTES), &[]);
        rig.h2("a :path of exactly the limit", &at, 200).await;
        let over = h2_block(&target(MAX_URI_BYTES + 1), &[]);
        rig.h2("a byte more", &over, 414).await;

        // A real client's request, whose :authority carries the port.
        let h2c = client::h2c();
        for (len, status) in [(MAX_URI_BYTES, 200), (MAX_URI_BYTES + 1, 414)] {
            let before = rig.backend.requests();
            let uri = format!("http://{}{}", rig.addr(), target(len));
            let request = http::Request::get(uri)
                .body(Full::<Bytes>::default())
                .unwrap();
            let reply = client::send(&h2c, request).await;
            assert_eq!(reply.status.as_u16(), status, "h2c client, {len} bytes");
            rig.forwarded("h2c client", before, status);
        }
    })
    .await;
}
