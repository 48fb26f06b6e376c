//! Hostile HTTP/1 requests, `ATTACKS.md` size and time rows 22–29: too many or too large header
//! fields, slowloris, silent connections, slow bodies, clients that stop reading, bodies over
//! the limit and unknown expectations.
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

use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::bounded;
use support::client;
use support::daemon::{config_text, start, traffic};
use support::h2raw::{self, Block, END_HEADERS, END_STREAM, INITIAL_WINDOW_SIZE, kind};
use support::metrics::metric_reaches;
use support::raw_client::{Message, RawClient, parse_all};
use support::raw_rig::{Rig, WAIT, get, shown};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

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

        // A second head pipelined behind a whole request, then left unfinished, is bounded
        // by `request_header` too: its first bytes came with the first request's, so it is
        // never a parked connection for the idle sweep.
        let mut client = RawClient::connect(rig.addr()).await;
        let mut bytes = get("/r24-first", "");
        bytes.extend_from_slice(b"GET /r24-second HTTP/1.1\r\nHost: t\r\nX-Slow: ");
        client.send(&bytes).await.unwrap();
        assert_eq!(client.response(WAIT).await.map(|r| r.status()), Some(200));
        let started = Instant::now();
        let second = client.response(WAIT).await.map(|r| r.status());
        assert_eq!(second, Some(408), "the unfinished head is answered 408");
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(3), "408 after {waited:?}");
        assert!(client.closed_within(WAIT).await, "closed after the 408");
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
