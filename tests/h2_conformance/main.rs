//! HTTP/2 conformance of the side portero shows clients, h2spec-like: one test per server
//! requirement of RFC 9113 §3.4, §4–§6 and §8.1–§8.3 (and CONNECT, §8.5, and the control-frame
//! floods of §10.5) that a client can provoke, plus RFC 7541 decoding errors, sent as raw frames
//! to a real portero in front of real backends. One module per section, as h2spec groups its
//! cases (`s3` … `s10`); each test is named after the section it checks.
//!
//! What "the right answer" means here, as the RFC words it (§5.4):
//! - a stream error is RST_STREAM on that stream with the code, and the connection goes on
//!   (a PING sent after it is answered, and the next stream is served);
//! - a connection error is GOAWAY with the code, then the connection closes.
//!
//! Where the RFC lets the server choose (a frame-size error on DATA may be either), the test
//! says so and accepts both. Rows of `ATTACKS.md` that `tests/attacks_h2.rs` covers in depth
//! (41–47) are only touched here where a section needs its own case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod s10;
mod s3;
mod s4;
mod s5;
mod s6;
mod s6_9;
mod s8;

use portero::App;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::daemon::{config_text, start, traffic};
use support::h2raw::{
    self, ACK, Block, Client, ENABLE_PUSH, END_HEADERS, END_STREAM, Event, Frame,
    HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_FRAME_SIZE, PADDED,
    PREFACE, PRIORITY, code, kind,
};
use tokio::time::Instant;

const GET: u8 = END_STREAM | END_HEADERS;

/// portero with three pools: `app` (the default route) reads a request's body and answers 200
/// with its length; `/hang` never answers, so its streams stay open; `/big` answers 200 with
/// a 100 000-byte body.
struct Rig {
    app: Arc<App>,
    backend: TestBackend,
    _hang: TestBackend,
    _big: TestBackend,
}

impl Rig {
    async fn start() -> Rig {
        Rig::with_listener("").await
    }

    /// With `keys` added to the `http` listener's table.
    async fn with_listener(keys: &str) -> Rig {
        let backend = TestBackend::start("app", Behavior::Sink).await;
        let hang = TestBackend::start("hang", Behavior::Hang).await;
        let big = TestBackend::start("big", Behavior::Download(100_000)).await;
        let routes = format!(
            "[[route]]\npath_prefix = \"/hang\"\npool = \"hang\"\n\n\
             [[route]]\npath_prefix = \"/big\"\npool = \"big\"\n\n\
             [[route]]\npool = \"app\"\n\n\
             [pool.hang]\nbackends = [\"{}\"]\n\n[pool.big]\nbackends = [\"{}\"]\n",
            hang.addr, big.addr
        );
        let text = config_text(&[(backend.addr, 1)], &routes)
            .replace("name = \"http\"\n", &format!("name = \"http\"\n{keys}\n"));
        Rig {
            app: start(&text).await,
            backend,
            _hang: hang,
            _big: big,
        }
    }

    /// A connection past the handshake (preface, SETTINGS both ways, ACKs).
    async fn connect(&self) -> Client {
        Client::connect(traffic(&self.app), &[]).await
    }

    /// A connection whose SETTINGS carry `values`.
    async fn connect_with(&self, values: &[(u16, u32)]) -> Client {
        Client::connect(traffic(&self.app), values).await
    }
}

/// The deadline for one expected frame or event.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// Runs a whole test under a time limit.
async fn bounded(test: impl Future<Output = ()>) {
    support::bounded_by(Duration::from_secs(30), test).await;
}

fn get(path: &str) -> Block {
    Block::request("GET", path)
}

fn post(path: &str) -> Block {
    Block::request("POST", path)
}

/// A connection error: GOAWAY with `code`, then the connection closes.
async fn connection_error(client: &mut Client, code: u32) {
    let goaway = client.reader.expect_goaway(soon()).await;
    assert_eq!(goaway.code, code, "{goaway:?}");
    assert!(
        client.reader.closed_within(soon()).await,
        "still open after {goaway:?}"
    );
}

/// A stream error on `stream`: RST_STREAM with `code`, and the connection goes on.
async fn stream_error(client: &mut Client, stream: u32, code: u32) {
    let frame = client.reader.read_until_rst_or_goaway(stream, soon()).await;
    assert_eq!(
        (frame.kind, frame.error_code()),
        (kind::RST_STREAM, Some(code)),
        "{frame:?}"
    );
    alive(client).await;
}

/// Where the RFC lets the server choose: RST_STREAM on `stream` or GOAWAY, with `code`.
async fn stream_or_connection_error(client: &mut Client, stream: u32, code: u32) {
    let frame = client.reader.read_until_rst_or_goaway(stream, soon()).await;
    assert_eq!(frame.error_code(), Some(code), "{frame:?}");
    if frame.kind == kind::GOAWAY {
        assert!(client.reader.closed_within(soon()).await);
    }
}

/// The connection works: a PING sent now is answered, with no GOAWAY before its ACK.
async fn alive(client: &mut Client) {
    client.send(&h2raw::ping(*b"alive?!!")).await.unwrap();
    loop {
        match client.reader.next(soon()).await {
            Event::Frame(f) if f.kind == kind::PING && f.payload == b"alive?!!" => {
                assert_eq!(f.flags, ACK, "{f:?}");
                return;
            }
            Event::Frame(f) => assert_ne!(f.kind, kind::GOAWAY, "{f:?}"),
            other => panic!("no PING ACK: {other:?}"),
        }
    }
}

/// The response HEADERS on `stream`; panics on RST_STREAM or GOAWAY instead.
async fn response(client: &mut Client, stream: u32) -> Frame {
    let frame = client.reader.answer(stream, soon()).await;
    assert_eq!(frame.kind, kind::HEADERS, "{frame:?}");
    frame
}

/// Sends `block` as a GET on `stream` and gives the response status.
async fn status(client: &mut Client, stream: u32, block: &Block) -> Option<u16> {
    client
        .send(&h2raw::headers(stream, GET, block))
        .await
        .unwrap();
    response(client, stream).await.status()
}

/// The response body on `stream`, to its END_STREAM.
async fn body(client: &mut Client, stream: u32) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let frame = client
            .reader
            .find(soon(), |f| f.stream == stream || f.kind == kind::GOAWAY)
            .await;
        assert!(
            [kind::DATA, kind::HEADERS].contains(&frame.kind),
            "{frame:?}"
        );
        if frame.kind == kind::DATA {
            body.extend(&frame.payload);
        }
        if frame.flags & END_STREAM != 0 {
            return body;
        }
    }
}

/// A frame whose stream identifier is written as given, reserved bit included.
fn raw_frame(kind: u8, flags: u8, stream_word: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = h2raw::frame(kind, flags, 0, payload);
    frame[5..9].copy_from_slice(&stream_word.to_be_bytes());
    frame
}

/// On a fresh connection, `frames` make a connection error with `code`.
async fn connection_error_after(frames: &[u8], code: u32) {
    let rig = Rig::start().await;
    let mut client = rig.connect().await;
    client.send(frames).await.unwrap();
    connection_error(&mut client, code).await;
    assert_eq!(rig.backend.requests(), 0);
}

/// A request whose field block is `block` (a GET, END_STREAM set) is malformed: RST_STREAM
/// PROTOCOL_ERROR on its stream (RFC 9113 §8.1.1), nothing forwarded, and the next stream
/// on the connection is served.
async fn malformed(block: Block) {
    let rig = Rig::start().await;
    let mut client = rig.connect().await;
    client.send(&h2raw::headers(1, GET, &block)).await.unwrap();
    stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    assert_eq!(status(&mut client, 3, &get("/")).await, Some(200));
    assert_eq!(
        rig.backend.requests(),
        1,
        "the malformed request was forwarded"
    );
}

/// Opens `stream` on `/hang` (without END_STREAM): it stays open.
async fn open_hanging(client: &mut Client, stream: u32) {
    client
        .send(&h2raw::headers(stream, END_HEADERS, &get("/hang")))
        .await
        .unwrap();
}
