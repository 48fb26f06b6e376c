//! A client that goes away (EOF or reset) with requests in flight, pipelined or not, ends
//! them at once (issue 19): the upstream request is aborted, its backend connection closed
//! rather than pooled, the exchange counted as a client abort (`client_aborted` in the access
//! log, `portero_requests_aborted_total{by="client"}`), and `/status` shows no connection left.
//! hyper stops reading a connection while it answers a request when the next one is already
//! buffered, so without portero's own watch a pipelining client's leaving went unseen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::raw_backend::{RawBackend, Reply};
use support::{metric, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);

/// A response head and the first of its 1,000,000 body bytes; the backend then stalls.
const PARTIAL: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\nfirst-bytes";

const GET: &[u8] = b"GET /stall HTTP/1.1\r\nHost: test\r\n\r\n";

/// How the client leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// close(): FIN.
    Close,
    /// close() with a zero linger: RST.
    Reset,
}

/// Sends `requests` GETs in one write, waits for the backend to get the first and (when it
/// answers `partial`ly, else it never answers) the client to get the start of its response,
/// leaves, and checks everything was ended and counted.
async fn client_leaves(requests: usize, partial: bool, leave: Leave) {
    let reply = if partial {
        Reply::Keep(PARTIAL.to_vec())
    } else {
        Reply::Never
    };
    let backend = RawBackend::start(vec![reply]).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let extra =
        "[timeouts]\nupstream_response = \"60s\"\n\n[pool.app.outlier]\nconsecutive_failures = 0\n";
    let text = config_text(&[(backend.addr, 1)], extra).replace(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"", log.path().display()),
    );
    let app = start(&text).await;
    let addr = traffic(&app);
    let admin = app.admin_addr();

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&GET.repeat(requests)).await.unwrap();
    backend
        .wait_conn(0, "the first request head arrived", WAIT, |c| c.heads == 1)
        .await;
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while partial && !got.ends_with(b"first-bytes") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("the start of the response within the deadline")
            .unwrap();
        assert!(n > 0, "portero closed early: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    let open = |status: &serde_json::Value| status["connections"]["open"].as_u64().unwrap();
    let status = status_json(admin).await;
    assert_eq!(
        open(&status),
        1,
        "the client's connection is open: {status}"
    );

    if let Leave::Reset = leave {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    let left = Instant::now();
    drop(stream);

    let closed = backend.wait_closed(0, WAIT).await;
    assert!(
        closed - left < Duration::from_secs(2),
        "{leave:?}: the backend connection was closed promptly: {:?}",
        closed - left
    );
    assert_eq!(
        backend.accepted(),
        1,
        "the second request never went upstream"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status_json(admin).await;
        let in_flight = status["pools"][0]["backends"][0]["in_flight"]
            .as_u64()
            .unwrap();
        if open(&status) == 0 && in_flight == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{leave:?}: still held: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("the access log to name the client abort", WAIT, || {
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["path"] == "/stall" && l["outcome"] == "client_aborted")
    })
    .await;
    let aborted = "portero_requests_aborted_total{by=\"client\",listener=\"http\"}";
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = client::get(admin, "/metrics").await.body;
        if metric(&metrics, aborted) == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{aborted} never reached 1:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_json(admin: std::net::SocketAddr) -> serde_json::Value {
    serde_json::from_str(&client::get(admin, "/status").await.body).unwrap()
}

#[tokio::test]
async fn pipelining_client_closing_mid_response_ends_its_requests() {
    client_leaves(2, true, Leave::Close).await;
}

#[tokio::test]
async fn pipelining_client_resetting_mid_response_ends_its_requests() {
    client_leaves(2, true, Leave::Reset).await;
}

#[tokio::test]
async fn client_closing_mid_response_ends_its_request() {
    client_leaves(1, true, Leave::Close).await;
}

#[tokio::test]
async fn client_resetting_mid_response_ends_its_request() {
    client_leaves(1, true, Leave::Reset).await;
}

#[tokio::test]
async fn pipelining_client_closing_while_the_backend_thinks_ends_its_requests() {
    client_leaves(2, false, Leave::Close).await;
}
