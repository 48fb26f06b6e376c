//! The backend side of portero's own HTTP/1.1 engine (`src/upstream/http1`), against a raw
//! backend that is not hyper: interim responses are skipped, a body that ends with the
//! connection is passed on whole (and that connection is not reused), a chunked body's
//! trailers reach the client, and a response to HEAD frees its connection at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client;
use support::daemon::traffic;
use support::raw_backend::{OK, Reply};
use support::raw_rig::{Rig, WAIT};

/// One request that closes its connection, so the raw client reads to the end.
fn closing(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn interim_responses_are_skipped_and_the_final_one_is_passed_on() {
    let Rig {
        app,
        backend: _backend,
    } = Rig::with(vec![Reply::Keep(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal"
            .to_vec(),
    )], "").await;
    let reply = client::raw(traffic(&app), &closing("GET", "/hints"), WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
    assert!(reply.ends_with("\r\n\r\nfinal"), "{reply:?}");
    assert!(
        !reply.contains("103"),
        "no interim head reaches the client: {reply:?}"
    );
}

#[tokio::test]
async fn a_body_that_ends_with_the_connection_is_passed_on_whole_and_not_reused() {
    // HTTP/1.0 without Content-Length: the body is whatever comes before the close.
    let Rig { app, backend } = Rig::with(
        vec![Reply::Close(
            b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec(),
        )],
        "",
    )
    .await;
    for _ in 0..2 {
        let reply = client::get(traffic(&app), "/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "until the end");
    }
    assert_eq!(
        backend.accepted(),
        2,
        "a connection whose body ended with it is not pooled"
    );
}

#[tokio::test]
async fn a_chunked_body_and_its_trailers_reach_the_client() {
    let Rig { app, backend } = Rig::with(vec![Reply::Keep(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n"
            .to_vec(),
    )], "").await;
    let reply = client::raw(traffic(&app), &closing("GET", "/chunked"), WAIT).await;
    let lower = reply.to_ascii_lowercase();
    assert!(
        lower.contains("transfer-encoding: chunked\r\n"),
        "{reply:?}"
    );
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    assert!(
        body.contains("hello") && body.contains(" world"),
        "{body:?}"
    );
    assert!(body.ends_with("0\r\nx-checksum: abc\r\n\r\n"), "{body:?}");
    // The connection went back to the pool after the last chunk.
    assert_eq!(client::get(traffic(&app), "/").await.status, 200);
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn a_response_to_head_has_no_body_whatever_it_declares_and_frees_its_connection() {
    let Rig { app, backend } = Rig::with(
        vec![
            Reply::Keep(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec()),
            Reply::Keep(OK.to_vec()),
        ],
        "",
    )
    .await;
    let reply = client::raw(traffic(&app), &closing("HEAD", "/"), WAIT).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("content-length: 1000\r\n"),
        "{reply:?}"
    );
    assert!(
        reply.ends_with("\r\n\r\n"),
        "no body after the head: {reply:?}"
    );
    let next = client::get(traffic(&app), "/").await;
    assert_eq!(next.status, 200);
    assert_eq!(next.body, "ok");
    assert_eq!(
        backend.accepted(),
        1,
        "the HEAD's connection served the GET"
    );
}
