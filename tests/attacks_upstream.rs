//! Hostile input on the upstream side (ATTACKS.md rows 8, 9 and 35 to 40): malformed uploads
//! that must abort the upstream request, backends that answer garbage, stop mid-body, never
//! answer or refuse connections, and clients that go away. A [`RawBackend`] shows exactly what
//! reached the backend and whether portero closed the connection ("abort upstream": the
//! request is cancelled and that connection never goes back to the pool); raw client sockets
//! send what no well-behaved client would. Every test ends by checking that portero still
//! serves a normal request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::Request;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client;
use support::client::h2_reset;
use support::daemon::{config_text, start, traffic};
use support::raw_backend::{RawBackend, Reply};
use support::source::get_closing;
use support::status::state;
use support::{metric, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);

/// Outlier detection off: a backend that misbehaves on purpose must keep its turn.
const NO_OUTLIERS: &str = "[pool.app.outlier]\nconsecutive_failures = 0\n";

const CHUNKED_HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Writes `bytes` on a new connection (then half-closes it when `half_close`) and reads until
/// portero closes it; what came back, and whether it was closed within [`WAIT`].
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    // A reset after the response still counts as closed.
    let closed = tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// At most the first 300 characters of `reply`, for assertion messages.
fn shown(reply: &str) -> &str {
    let end = (0..=reply.len().min(300))
        .rev()
        .find(|&i| reply.is_char_boundary(i))
        .unwrap_or(0);
    &reply[..end]
}

/// A normal request still gets the backend's answer, on a fresh upstream connection after
/// every one before it was closed by portero.
async fn still_serves(addr: SocketAddr, backend: &RawBackend) {
    let before = backend.accepted();
    let reply = client::get(addr, "/after").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "ok");
    assert_eq!(backend.accepted(), before + 1, "served on a new connection");
    let fresh = backend.conn(before);
    assert_eq!(
        (fresh.heads, fresh.complete),
        (1, 1),
        "the new connection carried only the normal request"
    );
    wait_until("every earlier upstream connection closed", WAIT, || {
        (0..before).all(|n| {
            let conn = backend.conn(n);
            conn.closed_by_peer.is_some() || conn.closed_by_us
        })
    })
    .await;
}

/// Sends one chunked upload whose body is `body`, and checks the upload was aborted upstream:
/// every backend connection so far closed by portero, none carried a complete request, and the
/// client got a 400 or a closed connection, never a backend answer. Returns the client's reply.
async fn chunked_upload_is_aborted(
    addr: SocketAddr,
    backend: &RawBackend,
    case: &str,
    body: &[u8],
    half_close: bool,
) -> String {
    let request = [CHUNKED_HEAD, body].concat();
    let (reply, closed) = raw_exchange(addr, &request, half_close).await;
    assert!(closed, "{case}: the client connection is closed");
    assert!(
        !reply.starts_with("HTTP/1.1 2"),
        "{case}: no success for a malformed upload: {reply:?}"
    );
    wait_until(
        &format!("{case}: every upstream connection closed by portero"),
        WAIT,
        || backend.closed_by_peer() == backend.accepted(),
    )
    .await;
    assert_eq!(
        backend.complete(),
        0,
        "{case}: no complete request upstream"
    );
    for n in 0..backend.accepted() {
        let bytes = backend.bytes(n);
        assert!(
            support::raw_backend::find(&bytes, b"0\r\n\r\n").is_none(),
            "{case}: the upload was not ended cleanly upstream: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    reply
}

/// Row 8: malformed chunk sizes, each after a valid first chunk (so the upstream request is
/// under way) — portero must abort it, not end it with a clean last chunk.
#[tokio::test]
async fn row_08_malformed_chunk_size_aborts_the_upstream_request() {
    let backend = RawBackend::start(vec![Reply::AfterBody]).await;
    let app = start(&config_text(&[(backend.addr, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);
    let cases: [(&str, &[u8]); 7] = [
        ("0x", b"3\r\nabc\r\n0x\r\n\r\n"),
        ("+5", b"3\r\nabc\r\n+5\r\nhello\r\n0\r\n\r\n"),
        ("-1", b"3\r\nabc\r\n-1\r\nx\r\n0\r\n\r\n"),
        ("leading space", b"3\r\nabc\r\n 5\r\nhello\r\n0\r\n\r\n"),
        ("empty size", b"3\r\nabc\r\n\r\nhello\r\n0\r\n\r\n"),
        (
            "longest valid prefix",
            b"3\r\nabc\r\n5z\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "overflow",
            b"3\r\nabc\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (case, body) in cases {
        chunked_upload_is_aborted(addr, &backend, case, body, false).await;
    }
    still_serves(addr, &backend).await;
}

/// Row 9: bare LF or `\rX` where a chunk line needs CRLF, and an upload that ends (the client
/// half-closes) without its last `0` chunk.
#[tokio::test]
async fn row_09_bad_chunk_line_ending_or_missing_last_chunk_aborts_the_upstream_request() {
    let backend = RawBackend::start(vec![Reply::AfterBody]).await;
    let app = start(&config_text(&[(backend.addr, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);
    let cases: [(&str, &[u8], bool); 5] = [
        (
            "bare LF after size",
            b"3\r\nabc\r\n3\ndef\r\n0\r\n\r\n",
            false,
        ),
        (
            "bare LF after data",
            b"3\r\nabc\r\n3\r\ndef\n0\r\n\r\n",
            false,
        ),
        (
            "CR X after size",
            b"3\r\nabc\r\n3\rXdef\r\n0\r\n\r\n",
            false,
        ),
        ("bare LF in last chunk", b"3\r\nabc\r\n0\n\n", false),
        ("no last chunk", b"3\r\nabc\r\n", true),
    ];
    for (case, body, half_close) in cases {
        chunked_upload_is_aborted(addr, &backend, case, body, half_close).await;
    }
    still_serves(addr, &backend).await;
}

/// Rows 8 and 9, the client's side: no response head was sent when the body turned out
/// malformed, so the client must get a 400 (or, at least, a closed connection).
#[tokio::test]
async fn row_08_09_malformed_chunked_upload_is_answered_400() {
    let backend = RawBackend::start(vec![Reply::AfterBody]).await;
    let app = start(&config_text(&[(backend.addr, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);
    let cases: [(&str, &[u8], bool); 3] = [
        ("+5", b"3\r\nabc\r\n+5\r\nhello\r\n0\r\n\r\n", false),
        (
            "bare LF after size",
            b"3\r\nabc\r\n3\ndef\r\n0\r\n\r\n",
            false,
        ),
        ("no last chunk", b"3\r\nabc\r\n", true),
    ];
    for (case, body, half_close) in cases {
        let reply = chunked_upload_is_aborted(addr, &backend, case, body, half_close).await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400 "),
            "{case}: 400 or a closed connection, got {reply:?}"
        );
    }
    still_serves(addr, &backend).await;
}

/// Rows 8, 9 and 39, the backend's side: an upload that breaks on the client's side (malformed
/// chunked framing, or the client leaving halfway) is not the backend's fault, so it must not
/// count against it, or any client could get healthy backends ejected by passive outlier
/// detection.
#[tokio::test]
async fn row_08_09_39_broken_uploads_are_not_blamed_on_the_backend() {
    let a = RawBackend::start(vec![Reply::AfterBody]).await;
    let b = RawBackend::start(vec![Reply::AfterBody]).await;
    let extra = "[pool.app.outlier]\nconsecutive_failures = 2\n";
    let app = start(&config_text(&[(a.addr, 1), (b.addr, 1)], extra)).await;
    let addr = traffic(&app);
    let malformed = [CHUNKED_HEAD, b"3\r\nabc\r\n+5\r\nhello\r\n0\r\n\r\n"].concat();
    let abandoned = b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\nhalf";
    for i in 0..3 {
        let (reply, closed) = raw_exchange(addr, &malformed, false).await;
        assert!(
            closed && !reply.starts_with("HTTP/1.1 2"),
            "upload {i}: {reply:?}"
        );
        let heads = a.heads() + b.heads();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(abandoned).await.unwrap();
        wait_until("the abandoned upload to reach a backend", WAIT, || {
            a.heads() + b.heads() > heads
        })
        .await;
        drop(stream);
    }
    wait_until("every upstream connection closed", WAIT, || {
        a.closed_by_peer() == a.accepted() && b.closed_by_peer() == b.accepted()
    })
    .await;
    let states = [state(&app, a.addr).await, state(&app, b.addr).await];
    let metrics = client::get(app.admin_addr(), "/metrics").await.body;
    let blamed: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("portero_upstream_errors_total{"))
        .collect();
    assert_eq!(
        states,
        ["healthy", "healthy"],
        "not ejected; counted: {blamed:?}"
    );
    assert!(blamed.is_empty(), "no upstream error counted: {blamed:?}");
    let reply = client::get(addr, "/after").await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "ok"));
}

/// Row 35: a backend answering garbage. Each garbage response carries the word "garbage", so
/// any of it reaching the client shows.
#[tokio::test]
async fn row_35_invalid_backend_response_is_502_and_its_connection_closed() {
    let mut oversized = b"HTTP/1.1 200 OK\r\nx-garbage: ".to_vec();
    oversized.extend(std::iter::repeat_n(b'g', 70 * 1024));
    oversized.extend_from_slice(b"\r\ncontent-length: 7\r\n\r\ngarbage");
    // The flag: hyper rejects the head itself and portero drops the connection at once.
    // The other heads hyper accepts and portero refuses after the fact; hyper may already
    // have found their connection fit for reuse, so portero poisons it and the pool closes
    // it when it next looks (at the latest when the next request checks a connection out).
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "bad status code",
            b"HTTP/1.1 2OO OK\r\ncontent-length: 7\r\n\r\ngarbage".to_vec(),
            true,
        ),
        (
            "bad version",
            b"HTTX/1.1 200 OK\r\ncontent-length: 7\r\n\r\ngarbage".to_vec(),
            true,
        ),
        (
            "content-length and transfer-encoding",
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n7\r\ngarbage\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        (
            "two content-lengths",
            b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 3\r\n\r\ngarbage".to_vec(),
            true,
        ),
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\nx-garbage: a\r\n b\r\ncontent-length: 7\r\n\r\ngarbage".to_vec(),
            true,
        ),
        (
            "NUL in a value",
            b"HTTP/1.1 200 OK\r\nx-garbage: a\0b\r\ncontent-length: 7\r\n\r\ngarbage".to_vec(),
            true,
        ),
        ("header block over 64 KiB", oversized, false),
    ];
    let mut script: Vec<Reply> = cases
        .iter()
        .map(|(_, garbage, _)| Reply::Keep(garbage.clone()))
        .collect();
    script.push(Reply::AfterBody);
    let backend = RawBackend::start(script).await;
    // No retries: each case must use exactly one scripted reply.
    let text = config_text(&[(backend.addr, 1)], NO_OUTLIERS)
        .replace("[pool.app]\n", "[pool.app]\nretries = 0\n");
    let app = start(&text).await;
    let addr = traffic(&app);
    for (n, (case, _, at_once)) in cases.iter().enumerate() {
        let (reply, closed) = raw_exchange(addr, &get_closing("/r35"), false).await;
        assert!(closed, "{case}: answered and closed");
        assert!(
            reply.starts_with("HTTP/1.1 502 "),
            "{case}: 502, got {:?}",
            shown(&reply)
        );
        assert!(
            !reply.to_ascii_lowercase().contains("garbage"),
            "{case}: nothing of the backend's answer reaches the client: {:?}",
            shown(&reply)
        );
        assert_eq!(
            backend.accepted(),
            n + 1,
            "{case}: a new connection, none reused"
        );
        if *at_once {
            backend.wait_closed(n, WAIT).await;
        }
    }
    still_serves(addr, &backend).await;
}

/// Row 36: a backend closing in the middle of the body, with Content-Length not reached and
/// with chunked not finished. HTTP/1.1 clients see the truncation (the connection closes
/// short); HTTP/2 clients get a stream error, never a clean end.
#[tokio::test]
async fn row_36_backend_closing_mid_body_is_truncation_never_a_complete_200() {
    let short_length = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_vec();
    let short_chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n".to_vec();
    let backend = RawBackend::start(vec![
        Reply::Close(short_length.clone()),
        Reply::Close(short_chunked.clone()),
        Reply::Close(short_length),
        Reply::Close(short_chunked),
        Reply::AfterBody,
    ])
    .await;
    let app = start(&config_text(&[(backend.addr, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);

    // HTTP/1.1, Content-Length not reached: 100 announced, 10 sent, then the close.
    let (reply, closed) = raw_exchange(addr, &get_closing("/length"), false).await;
    assert!(closed, "the client connection is closed");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply:?}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("content-length: 100\r\n"),
        "{reply:?}"
    );
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.len() < 100, "fewer bytes than announced: {body:?}");

    // HTTP/1.1, chunked not finished: no last chunk.
    let (reply, closed) = raw_exchange(addr, &get_closing("/chunked"), false).await;
    assert!(closed, "the client connection is closed");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply:?}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{reply:?}"
    );
    assert!(!reply.ends_with("0\r\n\r\n"), "no last chunk: {reply:?}");

    // HTTP/2: the head arrives, then the stream fails (RST_STREAM) instead of ending.
    let h2 = client::h2c();
    for path in ["/length", "/chunked"] {
        let request = Request::get(format!("http://{addr}{path}"))
            .body(Full::default())
            .unwrap();
        let exchange = async {
            let response = h2.request(request).await.expect("the head arrives");
            assert_eq!(response.status(), 200);
            response.into_body().collect().await
        };
        let body = tokio::time::timeout(WAIT, exchange).await.expect("bounded");
        let error = body.expect_err("the h2 body fails, it does not end cleanly");
        assert_eq!(
            h2_reset(&error),
            Some(h2::Reason::INTERNAL_ERROR),
            "{path}: RST_STREAM INTERNAL_ERROR, got {error:?}"
        );
    }
    assert_eq!(backend.accepted(), 4);
    still_serves(addr, &backend).await;
}

/// Row 37: a backend that never answers gets the client a 504 once
/// `timeouts.upstream_response` has passed, and portero closes that upstream connection.
#[tokio::test]
async fn row_37_silent_backend_is_504_after_the_response_timeout_and_closed() {
    let backend = RawBackend::start(vec![Reply::Never, Reply::AfterBody]).await;
    let extra = format!("[timeouts]\nupstream_response = \"300ms\"\n\n{NO_OUTLIERS}");
    let app = start(&config_text(&[(backend.addr, 1)], &extra)).await;
    let addr = traffic(&app);
    let started = Instant::now();
    let (reply, closed) = raw_exchange(addr, &get_closing("/silent"), false).await;
    let waited = started.elapsed();
    assert!(closed);
    assert!(reply.starts_with("HTTP/1.1 504 "), "{reply:?}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "after the 300 ms timeout, not much later: {waited:?}"
    );
    assert_eq!(backend.conn(0).heads, 1);
    backend.wait_closed(0, WAIT).await;
    still_serves(addr, &backend).await;
}

/// A socket bound to a loopback port but not listening: connecting to it is refused, and
/// nobody else can take the port until it listens (or is dropped).
fn refusing_socket() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// Row 38: a backend refusing connections. Nothing was sent, so the request is retried on the
/// other backend (and counted against the refusing one for outlier detection); with no other
/// backend the client gets 502. tests/pool.rs already shows a POST retried after a refused
/// connect (`a_post_whose_connect_failed_is_retried_elsewhere_because_nothing_was_sent`);
/// this covers GETs, the ejection and the pool with nothing else. Connect timeouts and failed
/// TLS handshakes are not covered here.
#[tokio::test]
async fn row_38_refused_connection_is_retried_elsewhere_else_502() {
    let (_refusing, dead) = refusing_socket();
    let good = TestBackend::named("good").await;
    let extra = "[pool.app.outlier]\nconsecutive_failures = 2\n";
    let app = start(&config_text(&[(dead, 1), (good.addr, 1)], extra)).await;
    let addr = traffic(&app);
    for i in 0..8 {
        let reply = client::get(addr, &format!("/r38/{i}")).await;
        assert_eq!(
            (reply.status.as_u16(), reply.body.as_str()),
            (200, "good"),
            "request {i}"
        );
    }
    assert_eq!(
        good.requests(),
        8,
        "every request reached the good backend once"
    );
    let metrics = client::get(app.admin_addr(), "/metrics").await.body;
    let refused = format!(
        "portero_upstream_errors_total{{backend=\"{dead}\",kind=\"connect_failed\",pool=\"app\"}}"
    );
    assert!(metric(&metrics, &refused) >= 2.0, "{refused} in\n{metrics}");
    assert_eq!(
        state(&app, dead).await,
        "unhealthy",
        "ejected by outlier detection"
    );

    // Only the refusing backend: 502. Then it starts listening, and is served.
    let (refusing, only) = refusing_socket();
    let app = start(&config_text(&[(only, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);
    let reply = client::get(addr, "/r38").await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    refusing.listen(128).unwrap();
    let revived = TestBackend::start_on(refusing.into(), "revived", Behavior::Name);
    let reply = client::get(addr, "/r38").await;
    assert_eq!(
        (reply.status.as_u16(), reply.body.as_str()),
        (200, "revived")
    );
    assert_eq!(revived.requests(), 1);
}

/// Row 39: the client sends half of a Content-Length upload and goes away. The upstream
/// request is cancelled and its connection closed, never returned to the pool (it is still
/// owed half a body).
#[tokio::test]
async fn row_39_client_leaving_mid_upload_closes_the_upstream_connection() {
    let backend = RawBackend::start(vec![Reply::AfterBody]).await;
    let app = start(&config_text(&[(backend.addr, 1)], NO_OUTLIERS)).await;
    let addr = traffic(&app);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n";
    stream.write_all(head).await.unwrap();
    stream.write_all(&[b'#'; 500]).await.unwrap();
    backend
        .wait_conn(0, "half the body arrived", WAIT, |c| {
            c.bytes.ends_with(&[b'#'; 500])
        })
        .await;
    drop(stream);
    backend.wait_closed(0, WAIT).await;
    let record = backend.conn(0);
    assert_eq!((record.heads, record.complete), (1, 0));
    still_serves(addr, &backend).await;
}

/// Row 40: the client goes away while the backend is still thinking. portero closes the
/// upstream connection at once (not when `upstream_response` fires) and the metrics count
/// the request as a client abort.
#[tokio::test]
async fn row_40_client_leaving_while_waiting_closes_upstream_at_once_and_is_counted() {
    let backend = RawBackend::start(vec![Reply::Never, Reply::AfterBody]).await;
    let extra = format!("[timeouts]\nupstream_response = \"20s\"\n\n{NO_OUTLIERS}");
    let log = tempfile::NamedTempFile::new().unwrap();
    let text = config_text(&[(backend.addr, 1)], &extra).replace(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"", log.path().display()),
    );
    let app = start(&text).await;
    let addr = traffic(&app);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    backend
        .wait_conn(0, "the request head arrived", WAIT, |c| c.heads == 1)
        .await;
    let left = Instant::now();
    drop(stream);
    let closed = backend.wait_closed(0, WAIT).await;
    assert!(
        closed - left < Duration::from_secs(2),
        "closed promptly: {:?}",
        closed - left
    );
    // The outcome itself is named only in the access log.
    wait_until("the access log to name the client abort", WAIT, || {
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["path"] == "/slow" && l["outcome"] == "client_aborted" && l["status"] == 499)
    })
    .await;
    // The metrics count it as a 4xx (nginx's 499) and, to tell it from other 4xx, as an
    // exchange the client aborted.
    let samples = [
        "portero_requests_total{code_class=\"4xx\",listener=\"http\",pool=\"app\"}",
        "portero_requests_aborted_total{by=\"client\",listener=\"http\"}",
    ];
    let admin = app.admin_addr();
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = client::get(admin, "/metrics").await.body;
        if samples.iter().all(|s| metric(&metrics, s) == 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{samples:?} never reached 1:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    still_serves(addr, &backend).await;
}
