//! portero's own keep-alive pool for plain HTTP/1.1 backends (`src/upstream/keep_alive.rs`):
//! a connection serves request after request, goes back to the pool only when its response has
//! ended (including responses without a body, and after an upload that outlasts an early
//! response), and is closed after the idle timeout; an idempotent request caught by a backend
//! closing its idle connection goes again on a new one, and a 101's connection becomes the
//! tunnel with the bytes behind its head. A [`RawBackend`] counts the connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use std::time::{Duration, Instant};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::raw_backend::{OK, RawBackend, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sequential_requests_reuse_one_backend_connection() {
    let backend = RawBackend::start(vec![Reply::Keep(OK.to_vec())]).await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    for _ in 0..20 {
        let reply = client::get(traffic(&app), "/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "ok");
    }
    assert_eq!(backend.heads(), 20);
    assert_eq!(
        backend.accepted(),
        1,
        "every request on the first connection"
    );
}

#[tokio::test]
async fn responses_without_a_body_give_their_connection_back() {
    // 204 and 304 have no body and a HEAD's response none on the wire: hyper never polls
    // such a body to its end, so the release must not wait for that.
    let backend = RawBackend::start(vec![
        Reply::Keep(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        Reply::Keep(b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n".to_vec()),
        Reply::Keep(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()),
    ])
    .await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    let expected = [204, 304, 200, 200, 200];
    for status in expected {
        let reply = client::get(traffic(&app), "/").await;
        assert_eq!(reply.status, status);
    }
    assert_eq!(backend.heads(), expected.len());
    assert_eq!(
        backend.accepted(),
        1,
        "no connection left behind unreleased"
    );
}

#[tokio::test]
async fn a_connection_answered_before_its_upload_ended_is_reused_after_it() {
    // The backend answers at the head; the client is still sending the body. The connection
    // can only serve again once the whole body is written.
    let backend = RawBackend::start(vec![Reply::Keep(OK.to_vec())]).await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(tokio_stream_from(rx));
    let request = Request::post(format!("http://{}/upload", traffic(&app)))
        .header("content-length", "8")
        .body(body.boxed())
        .unwrap();
    let sender = tokio::spawn(async move {
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"1234"))))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"5678"))))
            .await
            .unwrap();
    });
    let upload = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(request);
    let response = tokio::time::timeout(WAIT, upload).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
    sender.await.unwrap();
    // The upload finished on the same connection; the next request reuses it.
    support::wait_until("the whole upload reached the backend", WAIT, || {
        backend.bytes(0).ends_with(b"12345678")
    })
    .await;
    let reply = client::get(traffic(&app), "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        backend.accepted(),
        1,
        "the connection went back once the upload ended"
    );
}

#[tokio::test]
async fn idle_backend_connections_close_after_the_idle_timeout() {
    let backend = RawBackend::start(vec![Reply::Keep(OK.to_vec())]).await;
    let text = config_text(&[(backend.addr, 1)], "[timeouts]\nidle = \"800ms\"\n");
    let app = start(&text).await;
    let reply = client::get(traffic(&app), "/").await;
    assert_eq!(reply.status, 200);
    let idle_since = Instant::now();
    // No further request comes: the pool itself must notice and close it.
    let closed = backend.wait_closed(0, WAIT).await;
    assert!(
        closed.duration_since(idle_since) >= Duration::from_millis(700),
        "closed before the idle timeout"
    );
    let reply = client::get(traffic(&app), "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        backend.accepted(),
        2,
        "a new connection after the idle one closed"
    );
}

#[tokio::test]
async fn an_idempotent_request_on_a_connection_closed_under_it_goes_again_on_a_new_one() {
    // The second request reuses the idle connection; the backend reads it and closes without
    // a byte of answer, as a backend closing an idle connection at that moment does. A GET
    // is sent again on a new connection: the client never sees the pool's race.
    let (backend, app) = idle_connection_closed_at_next_request().await;
    let reply = client::get(traffic(&app), "/again").await;
    assert_eq!(reply.status, 200, "sent again, not a 502");
    assert_eq!(reply.body, "ok");
    assert_eq!(backend.heads(), 3, "the GET reached the backend twice");
    assert_eq!(backend.accepted(), 2, "the second time on a new connection");
}

#[tokio::test]
async fn a_post_on_a_connection_closed_under_it_is_not_sent_twice() {
    // The same race for a POST: the backend may have acted on it before closing, so it is
    // not repeated (Go's and nginx's rule); the client gets a 502.
    let (backend, app) = idle_connection_closed_at_next_request().await;
    let request = Request::post(format!("http://{}/order", traffic(&app)))
        .body(http_body_util::Full::new(Bytes::from_static(b"buy")))
        .unwrap();
    let response = tokio::time::timeout(WAIT, client::http1().request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(backend.heads(), 2, "the POST reached the backend once");
}

#[tokio::test]
async fn bytes_right_behind_a_101_reach_the_client_and_the_tunnel_carries_both_ways() {
    // The backend's first bytes of the new protocol come in the same read as its 101 head:
    // they belong to the tunnel, not to a next response.
    let backend = RawBackend::start(vec![Reply::Keep(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\nHELLO"
            .to_vec(),
    )])
    .await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
    stream
        .write_all(b"GET /chat HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.ends_with(b"HELLO") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("the 101 and HELLO arrive")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101 "), "{seen:?}");
    stream.write_all(b"ping").await.unwrap();
    support::wait_until("the client's bytes crossed the tunnel", WAIT, || {
        backend.bytes(0).ends_with(b"ping")
    })
    .await;
}

/// A backend whose first connection goes idle after one request, then reads the next request
/// and closes without answering; later connections answer.
async fn idle_connection_closed_at_next_request() -> (RawBackend, std::sync::Arc<portero::App>) {
    let backend = RawBackend::start(vec![
        Reply::Keep(OK.to_vec()),
        Reply::Close(Vec::new()),
        Reply::Keep(OK.to_vec()),
    ])
    .await;
    let app = start(&config_text(&[(backend.addr, 1)], "")).await;
    assert_eq!(client::get(traffic(&app), "/").await.status, 200);
    (backend, app)
}

/// The receiving half of a channel as a stream of body frames.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
