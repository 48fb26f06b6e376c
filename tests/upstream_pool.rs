//! portero's own keep-alive pool for plain HTTP/1.1 backends (`src/upstream/keep_alive.rs`):
//! a connection serves request after request, goes back to the pool only when its response has
//! ended (including responses without a body, and after an upload that outlasts an early
//! response), and is closed after the idle timeout. A [`RawBackend`] counts the connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use std::time::{Duration, Instant};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::raw_backend::{OK, RawBackend, Reply};

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

/// The receiving half of a channel as a stream of body frames.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
