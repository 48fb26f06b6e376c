//! `timeouts.upstream_idle` (issue 19): a backend that sends the head and part of the body,
//! then goes silent, is cut once the idle timeout passes: the HTTP/1.1 client connection is
//! closed without a complete body, the HTTP/2 stream is reset, the backend is charged and its
//! connection closed. A backend that is slow but steady, and a client that is slow to read,
//! are left alone: only the backend's silence counts.
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
use support::raw_client::read_to_close;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one wait in these tests may take; the 500 ms timeout fires well before.
const WAIT: Duration = Duration::from_secs(10);

/// A 500 ms idle timeout, and outlier detection off so the stalling backend keeps its turn.
const IDLE: &str =
    "[timeouts]\nupstream_idle = \"500ms\"\n\n[pool.app.outlier]\nconsecutive_failures = 0\n";

/// Content-Length 1,000,000 and the first 1,000 bytes of it.
fn stalling_length() -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n".to_vec();
    reply.extend_from_slice(&[b'x'; 1000]);
    reply
}

/// A backend that stalls mid-body twice (Content-Length, then chunked) and then answers
/// whole, behind portero with the 500 ms idle timeout.
async fn stalling_rig() -> (RawBackend, std::sync::Arc<portero::App>) {
    let backend = RawBackend::start(vec![
        Reply::Keep(stalling_length()),
        Reply::Keep(stalling_chunked()),
        Reply::AfterBody,
    ])
    .await;
    let app = start(&config_text(&[(backend.addr, 1)], IDLE)).await;
    (backend, app)
}

/// A chunked body with one 1,000-byte chunk and no last chunk.
fn stalling_chunked() -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3e8\r\n".to_vec();
    reply.extend_from_slice(&[b'x'; 1000]);
    reply.extend_from_slice(b"\r\n");
    reply
}

/// Waits until `portero_upstream_errors_total{kind="upstream_idle_timeout"}` reaches `n` and
/// the `upstream` aborts with it.
async fn wait_charged(admin: SocketAddr, n: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = client::get(admin, "/metrics").await.body;
        let idle: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("portero_upstream_errors_total{")
                    && l.contains("kind=\"upstream_idle_timeout\"")
                    && l.contains("pool=\"app\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let aborted = support::metric(
            &metrics,
            "portero_requests_aborted_total{by=\"upstream\",listener=\"http\"}",
        );
        if idle == n && aborted == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never charged {n} idle timeouts:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// HTTP/1.1, Content-Length and chunked: the client gets the head and the 1,000 bytes, then
/// the connection closes short, soon after the 500 ms (today it was held until the client
/// gave up); the backend is charged and its connection closed, never reused.
#[tokio::test]
async fn http1_a_backend_silent_mid_body_is_cut_after_upstream_idle() {
    let (backend, app) = stalling_rig().await;
    let addr = traffic(&app);

    for (n, framing) in [
        "content-length: 1000000\r\n",
        "transfer-encoding: chunked\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        stream
            .write_all(b"GET /stall HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let (received, closed) =
            read_to_close(&mut stream, tokio::time::Instant::now() + WAIT).await;
        let waited = started.elapsed();
        let reply = String::from_utf8_lossy(&received);
        assert!(
            closed,
            "{framing}: the client connection is closed within {WAIT:?}"
        );
        assert!(
            reply.starts_with("HTTP/1.1 200 "),
            "{framing}: {:.200}",
            reply
        );
        assert!(reply.to_ascii_lowercase().contains(framing), "{reply:.200}");
        let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
        assert!(
            body.contains(&"x".repeat(1000)),
            "{framing}: the 1,000 bytes arrive"
        );
        assert!(
            body.len() < 1100,
            "{framing}: and no more: {} bytes",
            body.len()
        );
        assert!(!body.ends_with("0\r\n\r\n"), "{framing}: no last chunk");
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
            "{framing}: cut after the 500 ms idle timeout, not much later: {waited:?}"
        );
        backend.wait_closed(n, WAIT).await;
        wait_charged(app.admin_addr(), (n + 1) as f64).await;
    }

    // The next request goes to a new upstream connection: neither stalled one was reused.
    let reply = client::get(addr, "/after").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    assert_eq!(backend.accepted(), 3, "served on a new connection");
}

/// HTTP/2 (h2c): the head arrives, then the stream is reset (RST_STREAM INTERNAL_ERROR)
/// instead of waiting for the backend forever; the backend is charged and its connection
/// closed.
#[tokio::test]
async fn http2_a_backend_silent_mid_body_gets_the_stream_reset() {
    let (backend, app) = stalling_rig().await;
    let addr = traffic(&app);
    let h2 = client::h2c();
    for n in 0..2 {
        let request = Request::get(format!("http://{addr}/stall"))
            .body(Full::default())
            .unwrap();
        let started = Instant::now();
        let exchange = async {
            let response = h2.request(request).await.expect("the head arrives");
            assert_eq!(response.status(), 200);
            response.into_body().collect().await
        };
        let body = tokio::time::timeout(WAIT, exchange)
            .await
            .expect("the stream ends within the wait");
        let error = body.expect_err("the body fails, it does not end cleanly");
        assert_eq!(
            h2_reset(&error),
            Some(h2::Reason::INTERNAL_ERROR),
            "RST_STREAM INTERNAL_ERROR, got {error:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "not before the idle timeout: {:?}",
            started.elapsed()
        );
        backend.wait_closed(n, WAIT).await;
        wait_charged(app.admin_addr(), (n + 1) as f64).await;
    }
}

/// A backend sending a chunk every 300 ms for about 2 s is never silent for 500 ms: the
/// whole body arrives, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn a_slow_but_steady_backend_completes() {
    let backend =
        TestBackend::start("slow", Behavior::Trickle(7, Duration::from_millis(300))).await;
    let app = start(&config_text(&[(backend.addr, 1)], IDLE)).await;
    let addr = traffic(&app);
    let h1 = client::get(addr, "/slow").await;
    assert_eq!(h1.status, 200);
    assert_eq!(h1.body, "tick\n".repeat(7));
    let request = Request::get(format!("http://{addr}/slow"))
        .body(Full::default())
        .unwrap();
    let response = client::h2c().request(request).await.unwrap();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole body");
    assert_eq!(&body.to_bytes()[..], "tick\n".repeat(7).as_bytes());
}

/// A client that reads nothing for 2 s while the backend has its (large) response ready is
/// not cut by the 500 ms upstream_idle: that wait is the client's, not the backend's.
#[tokio::test]
async fn a_slow_reading_client_is_not_cut_by_upstream_idle() {
    const SIZE: u64 = 32 << 20;
    let backend = TestBackend::start("big", Behavior::Download(SIZE)).await;
    let app = start(&config_text(&[(backend.addr, 1)], IDLE)).await;
    let addr = traffic(&app);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // The client's own behaviour, not synchronisation: it takes nothing for 2 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut total = 0u64;
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("the response ends within the deadline")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..n.min(4096)]);
        }
        total += n as u64;
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:.200}");
    let head_len = head.find("\r\n\r\n").expect("a whole head") as u64 + 4;
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
            || head
                .to_ascii_lowercase()
                .contains(&format!("content-length: {SIZE}")),
        "{head:.300}"
    );
    assert!(
        total - head_len >= SIZE,
        "the whole body arrived: {} of {SIZE}",
        total - head_len
    );
}
