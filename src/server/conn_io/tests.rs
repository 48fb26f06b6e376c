use super::*;
use crate::admission::Tier;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

const TIMEOUTS: IoTimeouts = IoTimeouts {
    request_header: Duration::from_secs(10),
    idle: Duration::from_secs(60),
    client_write: Duration::from_secs(60),
    min_send_rate: 0,
};

fn conn_io() -> (ConnIo<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(64 * 1024);
    let conn = Arc::new(ClientConn::new(
        Arc::from("test"),
        "127.0.0.1:1".parse().unwrap(),
        crate::conn::ConnScheme::Http,
        Tier::Baseline,
    ));
    (ConnIo::new(server, conn, Arc::new(TIMEOUTS)), client)
}

#[tokio::test(start_paused = true)]
async fn http1_is_detected_at_the_first_differing_byte_and_its_bytes_are_replayed() {
    let (mut io, mut client) = conn_io();
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert_eq!(io.detect().await.unwrap(), Some(Protocol::Http1));
    let mut replay = vec![0u8; 16];
    io.read_exact(&mut replay).await.unwrap();
    assert_eq!(replay, b"GET / HTTP/1.1\r\n");
}

#[tokio::test(start_paused = true)]
async fn a_preface_split_over_writes_is_http2() {
    let (mut io, mut client) = conn_io();
    let writer = tokio::spawn(async move {
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.write_all(&H2_PREFACE[5..]).await.unwrap();
        client
    });
    assert_eq!(io.detect().await.unwrap(), Some(Protocol::Http2));
    let mut replay = vec![0u8; H2_PREFACE.len()];
    io.read_exact(&mut replay).await.unwrap();
    assert_eq!(replay, H2_PREFACE);
    drop(writer.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_given_up_at_the_header_timeout() {
    let (mut io, _client) = conn_io();
    let started = Instant::now();
    assert_eq!(io.detect().await.unwrap(), None);
    assert_eq!(started.elapsed(), TIMEOUTS.request_header);
}

#[tokio::test(start_paused = true)]
async fn unread_bytes_come_first_and_an_idle_read_ends_at_the_idle_timeout() {
    let (mut io, mut client) = conn_io();
    client.write_all(b"GET /1 HTTP/1.1\r\n").await.unwrap();
    io.detect().await.unwrap();
    let mut first = vec![0u8; 17];
    io.read_exact(&mut first).await.unwrap();
    io.set_idle();
    io.unread(Bytes::from_static(b"GET /2"));
    client.write_all(b" HTTP/1.1\r\n").await.unwrap();
    let mut next = vec![0u8; 17];
    io.read_exact(&mut next).await.unwrap();
    assert_eq!(next, b"GET /2 HTTP/1.1\r\n");

    let (mut io, _client) = conn_io();
    io.set_idle();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert_eq!(
        io.read(&mut byte).await.unwrap(),
        0,
        "end of stream at the deadline"
    );
    assert_eq!(started.elapsed(), TIMEOUTS.idle);
}

/// An HTTP/1 connection that has served one request, now idle.
async fn after_one_request() -> (ConnIo<DuplexStream>, DuplexStream) {
    let (mut io, mut client) = conn_io();
    client.write_all(b"GET /1 HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(io.detect().await.unwrap(), Some(Protocol::Http1));
    let mut head = vec![0u8; 19];
    io.read_exact(&mut head).await.unwrap();
    io.conn.activity.request_started();
    io.conn.activity.request_finished();
    (io, client)
}

/// An HTTP/1 connection between requests holds no timer: the idle sweep closes it.
#[tokio::test(start_paused = true)]
async fn a_parked_http1_connection_holds_no_timer() {
    let (mut io, _client) = after_one_request().await;
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(3 * TIMEOUTS.idle, io.read(&mut byte)).await;
    assert!(waited.is_err(), "no deadline of its own: {waited:?}");
    assert!(io.deadline.is_none(), "a parked connection keeps no timer");
}

/// A head that starts from bytes already buffered (pipelined behind the last request) is
/// bounded by `request_header` from its first wait, and answered 408.
#[tokio::test(start_paused = true)]
async fn a_buffered_head_that_stalls_gets_408_at_the_header_timeout() {
    let (mut io, mut client) = after_one_request().await;
    io.head_started();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(3 * TIMEOUTS.idle, io.read(&mut byte)).await;
    assert_eq!(read.expect("bounded by request_header").unwrap(), 0);
    assert_eq!(started.elapsed(), TIMEOUTS.request_header);
    let mut answer = vec![0u8; REQUEST_TIMEOUT.len()];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, REQUEST_TIMEOUT);
}

#[test]
fn the_408_is_a_well_formed_response() {
    let text = std::str::from_utf8(REQUEST_TIMEOUT).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 408 "));
    assert!(head.contains(&format!("content-length: {}", body.len())));
}

impl ResetOnClose for DuplexStream {
    fn reset_on_close(&self) {}
}

/// Every idle keep-alive connection's task carries a `ConnIo`; what only some connections
/// need (a write's account of waiting on its client, read-ahead bytes, a timer) is boxed
/// when first needed. Part of keeping the task in jemalloc's 384-byte class (BENCHMARKS.md,
/// issue 21; `session::tests`).
#[test]
fn the_connection_io_stays_small() {
    let size = size_of::<ConnIo<crate::server::stream::ClientStream>>();
    assert!(size <= 88, "ConnIo is {size} bytes (80 in release)");
}
