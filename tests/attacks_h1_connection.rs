//! Hostile HTTP/1 requests, `ATTACKS.md` connection-level rows 33 and 34: an upgrade without a
//! 101 (and `h2c`), GET with a body, and requests pipelined behind bodies.
//!
//! Raw bytes on a socket against a real portero whose backend is a `RawBackend` that records
//! every byte (the rig is `tests/support/raw_rig.rs`), so each test asserts the exact status,
//! whether the connection was closed, and exactly what reached the backend — nothing for a
//! refused request, portero's own clean bytes for an accepted one. Every test ends by checking
//! that a fresh connection is still served.
//!
//! Rows marked H in ATTACKS.md are hyper's (or httparse's) work; they are proven here anyway,
//! so an upgrade that loosens a default fails a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::bounded;
use support::raw_backend::Reply;
use support::raw_client::Message;
use support::raw_rig::{Rig, forwarded_lines, get, shown};

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
