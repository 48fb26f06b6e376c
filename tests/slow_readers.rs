//! Slow peers hold bounded buffers (issue 19), with backends and clients that are raw sockets,
//! not hyper:
//! - `limits.min_send_rate`: a client that keeps reading, but slowly, is closed once the time
//!   portero's writes waited on it adds up to `timeouts.client_write` and it took less than the
//!   rate meanwhile; it is counted in `portero_slow_readers_total{reason="min_send_rate"}`. A
//!   client that reads at full speed is not, and with the rate off a slow but steady one is
//!   left alone.
//! - `limits.stream_buffer`: what the kernel queues unsent for a client that does not read, or
//!   for a backend that does not take an upload, stays within it (the rest waits on the other
//!   side: backpressure, nothing dropped); HTTP/2 windows to clients and to backends are it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::h2raw::{self, PREFACE, kind};
use support::raw_backend::{RawBackend, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BODY: usize = 8 << 20;
const WAIT: Duration = Duration::from_secs(20);
const REQUEST: &[u8] = b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n";
/// What a socket may queue past `stream_buffer`: the segment in flight when the queue crossed
/// it, and what the peer's receive window already took.
const SLACK: u64 = 64 * 1024;

fn head() -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n")
}

/// 8 MiB, far more than the sockets between the backend and the client can hold.
fn big_response() -> Vec<u8> {
    let mut reply = head().into_bytes();
    reply.resize(reply.len() + BODY, b'x');
    reply
}

/// portero with `client_write` of 1 s and the given limits, in front of a backend answering
/// every request with [`big_response`].
async fn rig(limits: &str) -> (RawBackend, std::sync::Arc<portero::App>) {
    let backend = RawBackend::start(vec![Reply::Keep(big_response())]).await;
    let extra = format!("[timeouts]\nclient_write = \"1s\"\n\n[limits]\n{limits}\n");
    let app = start(&config_text(&[(backend.addr, 1)], &extra)).await;
    (backend, app)
}

/// A client with a small receive buffer, so portero's writes wait on it.
async fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    stream
}

/// Reads `chunk` bytes every 20 ms until the connection closes or `how_long` passes: the
/// bytes read, and whether it closed.
async fn read_slowly(stream: &mut TcpStream, chunk: usize, how_long: Duration) -> (usize, bool) {
    let until = Instant::now() + how_long;
    let mut buf = vec![0u8; chunk];
    let mut total = 0;
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => {}
        }
        // The slow reader's pace, not a wait for some other event.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (total, false)
}

async fn slow_readers(app: &portero::App, reason: &str) -> f64 {
    let metrics = client::get(app.admin_addr(), "/metrics").await.body;
    support::metric(
        &metrics,
        &format!("portero_slow_readers_total{{listener=\"http\",reason=\"{reason}\"}}"),
    )
}

/// The bytes queued in the kernel (unsent or unacknowledged) on the established TCP socket
/// from `local` to `remote` (port 0: any), as `ss` reads it over netlink; `None` when there is
/// none. (/proc/net/tcp can skip sockets while other tests open and close theirs.)
fn send_queue(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let output = std::process::Command::new("ss")
        .args(["-tnH", "state", "established"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let matches = |field: &str, want: SocketAddr| {
        field.parse::<SocketAddr>().is_ok_and(|got| {
            got.ip() == want.ip() && (want.port() == 0 || got.port() == want.port())
        })
    };
    text.lines().find_map(|line| {
        // Recv-Q Send-Q Local Peer (the state column is left out when one is asked for).
        let fields: Vec<&str> = line.split_whitespace().collect();
        (matches(fields.get(2)?, local) && matches(fields.get(3)?, remote))
            .then(|| fields.get(1)?.parse().ok())?
    })
}

/// Polls `queue` until it has stopped growing (the same for 300 ms), within [`WAIT`].
async fn settled(mut queue: impl FnMut() -> Option<u64>) -> u64 {
    let deadline = Instant::now() + WAIT;
    let (mut last, mut same_since) = (0, Instant::now());
    loop {
        let now = queue().unwrap_or(0);
        if now != last {
            (last, same_since) = (now, Instant::now());
        } else if now > 0 && same_since.elapsed() >= Duration::from_millis(300) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the queue kept moving, or stayed empty: {now} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_client_reading_below_min_send_rate_is_closed_and_counted() {
    let (backend, app) = rig("min_send_rate = \"1MiB\"").await;
    let mut stream = small_window_client(traffic(&app)).await;
    let started = Instant::now();
    // About 100 KB/s: steady progress, a tenth of the rate.
    let (read, closed) = read_slowly(&mut stream, 2048, WAIT).await;
    assert!(closed, "still open after {WAIT:?}, {read} bytes read");
    assert!(read < BODY, "the response was cut short ({read} bytes)");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "judged only after client_write of waiting: {:?}",
        started.elapsed()
    );
    assert_eq!(slow_readers(&app, "min_send_rate").await, 1.0);
    assert_eq!(slow_readers(&app, "stalled").await, 0.0);
    // Its backend connection goes with it.
    backend.wait_closed(0, WAIT).await;
}

#[tokio::test]
async fn a_client_reading_at_full_speed_gets_everything() {
    let (_backend, app) = rig("min_send_rate = \"1MiB\"").await;
    let mut stream = small_window_client(traffic(&app)).await;
    let body = read_response_body(&mut stream).await;
    assert_eq!(body.len(), BODY, "the whole body");
    assert!(body.iter().all(|&b| b == b'x'));
    assert_eq!(slow_readers(&app, "min_send_rate").await, 0.0);
}

#[tokio::test]
async fn with_the_rate_off_a_slow_steady_reader_is_left_alone() {
    let (_backend, app) = rig("min_send_rate = 0").await;
    let mut stream = small_window_client(traffic(&app)).await;
    // Three windows of client_write: the rate would have closed it in the first.
    let (read, closed) = read_slowly(&mut stream, 2048, Duration::from_secs(3)).await;
    assert!(!closed, "closed after {read} bytes");
    assert!(read > 0);
    assert_eq!(slow_readers(&app, "min_send_rate").await, 0.0);
}

/// Without a bound the kernel queues up to `net.ipv4.tcp_wmem`'s maximum (4 MiB by default)
/// for a client that stopped reading; with it, `stream_buffer`, and portero stops taking the
/// backend's bytes. The body is not dropped: reading again gets all of it.
#[tokio::test]
async fn a_client_that_does_not_read_gets_no_more_than_stream_buffer_queued() {
    if !support::require_tool("ss") {
        return;
    }
    let (_backend, app) = rig("stream_buffer = \"32KiB\"\nmin_send_rate = 0").await;
    let portero = traffic(&app);
    let mut stream = small_window_client(portero).await;
    let client = stream.local_addr().unwrap();
    let queued = settled(|| send_queue(portero, client)).await;
    assert!(
        queued <= 32 * 1024 + SLACK,
        "{queued} bytes queued for a client that reads nothing"
    );
    assert_eq!(read_response_body(&mut stream).await.len(), BODY);
}

/// Reads one response of [`BODY`] bytes at full speed: its body (short if the connection
/// ended first).
async fn read_response_body(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::with_capacity(BODY + 1024);
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + WAIT;
    loop {
        let body_at = support::raw_backend::find(&received, b"\r\n\r\n").map(|at| at + 4);
        if body_at.is_some_and(|at| received.len() >= at + BODY) || Instant::now() > until {
            return received.split_off(body_at.unwrap_or(received.len()));
        }
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            _ => return received.split_off(body_at.unwrap_or(received.len())),
        }
    }
}

/// The other direction: a backend that takes nothing of an upload gets no more than
/// `stream_buffer` queued for it; the client's upload waits.
#[tokio::test]
async fn a_backend_that_does_not_read_gets_no_more_than_stream_buffer_queued() {
    if !support::require_tool("ss") {
        return;
    }
    // A small receive buffer (accepted sockets inherit it), so the upload piles up in portero.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let backend = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        socket // held, never read
    });
    let extra = "[limits]\nstream_buffer = \"32KiB\"\n";
    let app = start(&config_text(&[(backend, 1)], extra)).await;
    let mut upload = TcpStream::connect(traffic(&app)).await.unwrap();
    let head = format!("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {BODY}\r\n\r\n");
    upload.write_all(head.as_bytes()).await.unwrap();
    let sending = tokio::spawn(async move {
        let block = vec![b'u'; 64 * 1024];
        for _ in 0..BODY / block.len() {
            if upload.write_all(&block).await.is_err() {
                break;
            }
        }
        upload
    });
    let _held = accepting.await.unwrap();
    // portero's end of its one connection to the backend.
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let queued = settled(|| send_queue(any_port, backend)).await;
    assert!(
        queued <= 32 * 1024 + SLACK,
        "{queued} bytes queued for a backend that reads nothing"
    );
    assert!(!sending.is_finished(), "the client's upload waits");
    sending.abort();
}

/// HTTP/2 clients are offered `stream_buffer` as their stream window, and HTTP/2 backends are
/// asked for it.
#[tokio::test]
async fn http2_stream_windows_are_stream_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let extra = "protocol = \"h2c\"\n\n[limits]\nstream_buffer = \"48KiB\"\n";
    let app = start(&config_text(&[(backend, 1)], extra)).await;

    let mut h2 = h2raw::Client::open(traffic(&app)).await;
    h2.send(&[PREFACE, &h2raw::settings(&[])].concat())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let settings = h2
        .reader
        .find(deadline.into(), |f| {
            f.kind == kind::SETTINGS && f.flags & 1 == 0
        })
        .await;
    assert_eq!(initial_window(&settings.payload), Some(48 * 1024));

    // A request makes portero connect to its h2c backend: its SETTINGS say the same.
    h2.send(&h2raw::settings_ack()).await.unwrap();
    let block = h2raw::Block::request("GET", "/");
    h2.send(&h2raw::headers(1, 0x1 | 0x4, &block))
        .await
        .unwrap();
    let (mut socket, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut bytes = Vec::new();
    let payload = loop {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "portero closed before its SETTINGS");
        bytes.extend_from_slice(&buf[..n]);
        let Some(frame) = bytes.get(PREFACE.len()..) else {
            continue;
        };
        if frame.len() >= 9 {
            let len = u32::from_be_bytes([0, frame[0], frame[1], frame[2]]) as usize;
            assert_eq!(
                frame[3],
                kind::SETTINGS,
                "the preface is followed by SETTINGS"
            );
            if frame.len() >= 9 + len {
                break frame[9..9 + len].to_vec();
            }
        }
    };
    assert_eq!(initial_window(&payload), Some(48 * 1024));
}

/// SETTINGS_INITIAL_WINDOW_SIZE (0x4) in a SETTINGS payload.
fn initial_window(payload: &[u8]) -> Option<u32> {
    payload.chunks_exact(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == 0x4)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    })
}
