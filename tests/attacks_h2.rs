//! Hostile HTTP/2 inputs, rows 41–47 of `ATTACKS.md`: raw frames against a real portero and
//! real backends, asserting the exact error code, what reached the backend, that upstream work
//! ends, and that the daemon still serves others. Every loop is bounded in count and by a
//! deadline; every test by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use portero::App;
use std::sync::Arc;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::bounded;
use support::client::try_get;
use support::daemon::{config_text, start, traffic};
use support::h2raw::{
    self, Block, Client, END_HEADERS, END_STREAM, Event, INITIAL_WINDOW_SIZE, code, kind,
};
use support::metrics::{metric_reaches, metric_sum};
use tokio::time::Instant;

const GET: u8 = END_STREAM | END_HEADERS;

/// The backend under attack (pool `app`, the default route) and one that always answers
/// (pool `ok`, under `/ok`), so "still serves" holds even when the first one hangs.
struct Rig {
    app: Arc<App>,
    backend: TestBackend,
    ok: TestBackend,
}

impl Rig {
    async fn start(behavior: Behavior) -> Rig {
        let backend = TestBackend::start("attacked", behavior).await;
        let ok = TestBackend::named("ok").await;
        let routes = format!(
            "[[route]]\npath_prefix = \"/ok\"\npool = \"ok\"\n\n[[route]]\npool = \"app\"\n\n\
             [pool.ok]\nbackends = [\"{}\"]\n",
            ok.addr
        );
        let app = start(&config_text(&[(backend.addr, 1)], &routes)).await;
        Rig { app, backend, ok }
    }

    async fn connect(&self) -> Client {
        Client::connect(traffic(&self.app), &[]).await
    }

    /// A fresh HTTP/1.1 connection is answered 200 within 5 s.
    async fn still_serves(&self) {
        let reply = try_get(traffic(&self.app), "/ok").await;
        assert_eq!(reply.map(|r| r.status.as_u16()), Some(200), "not served");
    }

    /// Sum of a gauge over the `app` pool's backends, read from the admin `/metrics`.
    async fn gauge(&self, name: &str) -> f64 {
        metric_sum(&self.app, name, "pool=\"app\"").await
    }

    /// Polls the gauge until it reads `value`; panics after 10 s.
    async fn gauge_reaches(&self, name: &str, value: f64) {
        metric_reaches(
            &self.app,
            name,
            "pool=\"app\"",
            value,
            Duration::from_secs(10),
        )
        .await;
    }

    /// No request is still in flight to the attacked backend, and no connection to it is
    /// left open: cancelled exchanges were not returned to the pool.
    async fn upstream_work_ended(&self) {
        self.gauge_reaches("portero_backend_in_flight", 0.0).await;
        self.gauge_reaches("portero_upstream_connections", 0.0)
            .await;
    }

    /// Waits until the attacked backend has seen `n` requests, and no more.
    async fn requests_reach(&self, n: u64) {
        let what = format!("{n} requests at the backend");
        support::wait_until(&what, Duration::from_secs(10), || {
            self.backend.requests() >= n
        })
        .await;
        assert_eq!(self.backend.requests(), n);
    }
}

/// The deadline for one expected frame or event.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// `count` client stream ids (odd) from `first`.
fn ids(first: u32, count: u32) -> impl Iterator<Item = u32> {
    (0..count).map(move |i| first + 2 * i)
}

#[tokio::test]
async fn row_41_rapid_reset_gets_enhance_your_calm_and_cancels_upstream() {
    bounded(async {
        let rig = Rig::start(Behavior::Hang).await;
        let mut client = rig.connect().await;
        // Requests already forwarded: the client's RST_STREAM must cancel them upstream.
        for id in ids(1, 5) {
            client
                .send(&h2raw::headers(id, GET, &Block::request("GET", "/slow")))
                .await
                .unwrap();
        }
        rig.requests_reach(5).await;
        assert_eq!(rig.gauge("portero_backend_in_flight").await, 5.0);
        assert_eq!(rig.gauge("portero_upstream_connections").await, 5.0);
        for id in ids(1, 5) {
            client
                .send(&h2raw::rst_stream(id, code::CANCEL))
                .await
                .unwrap();
        }
        rig.upstream_work_ended().await;

        // The flood: 5 000 HEADERS + RST_STREAM pairs on new streams, written at once. h2
        // counts streams reset before hyper accepted them and sends GOAWAY at the 21st; h2
        // reads many pairs per poll, so that comes within the first 100 pairs.
        let pairs: Vec<u8> = ids(11, 5000)
            .flat_map(|id| {
                let open = h2raw::headers(id, GET, &Block::request("GET", "/slow"));
                [open, h2raw::rst_stream(id, code::CANCEL)].concat()
            })
            .collect();
        let (mut reader, flood) = client.flood_in_background(pairs, 1);
        let goaway = reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_resets", soon())
            .await;
        assert!(goaway.last_stream < 11 + 2 * 100, "{goaway:?}");
        flood.await.unwrap();
        rig.upstream_work_ended().await;
        rig.still_serves().await;
    })
    .await;
}

#[tokio::test]
async fn row_42_made_you_reset_gets_enhance_your_calm_after_1024_resets() {
    bounded(async {
        let rig = Rig::start(Behavior::Hang).await;
        let mut client = rig.connect().await;
        server_resets_cancel_upstream(&rig, &mut client).await;

        // Open stream 4001, so 21..3999 are closed without ever being used; empty DATA on
        // one makes the server reset it. 1 014 more resets reach the limit of 1 024: all are
        // answered, and the PING after them too.
        let open = h2raw::headers(4001, GET, &Block::request("GET", "/ok"));
        let stale = ids(21, 1014).flat_map(|id| h2raw::data(id, 0, &[]));
        let ping = h2raw::ping(*b"1024 rst");
        client
            .send(&[open, stale.collect(), ping].concat())
            .await
            .unwrap();
        let (mut resets, mut acked) = (10, false);
        while resets < 1024 || !acked {
            match client.reader.next(soon()).await {
                Event::Frame(f) if f.kind == kind::RST_STREAM => {
                    assert_eq!(f.error_code(), Some(code::STREAM_CLOSED));
                    resets += 1;
                }
                Event::Frame(f) if f.kind == kind::PING => acked = true,
                Event::Frame(f) => assert_ne!(f.kind, kind::GOAWAY, "after {resets} resets"),
                other => panic!("{other:?} after {resets} resets"),
            }
        }
        // The 1 025th is refused with GOAWAY.
        client.send(&h2raw::data(2049, 0, &[])).await.unwrap();
        client
            .reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_internal_resets", soon())
            .await;
        assert_eq!(rig.backend.requests(), 10);
        rig.upstream_work_ended().await;

        // DATA after END_STREAM on a stream still open: RST_STREAM STREAM_CLOSED (RFC 9113
        // §5.1, half-closed (remote); h2 closed the connection before vendor/h2.patch), and
        // the connection goes on; the reset counts towards the same limit.
        let mut client = rig.connect().await;
        let open = h2raw::headers(1, GET, &Block::request("GET", "/slow"));
        client.send(&open).await.unwrap();
        rig.requests_reach(11).await;
        client.send(&h2raw::data(1, 0, b"late")).await.unwrap();
        let rst = client.reader.read_until_rst_or_goaway(1, soon()).await;
        assert_eq!(
            (rst.kind, rst.error_code()),
            (kind::RST_STREAM, Some(code::STREAM_CLOSED)),
            "{rst:?}"
        );
        assert_eq!(get_on(&mut client, 3, "/ok").await, Some(200));
        drop(client);
        rig.upstream_work_ended().await;
        rig.still_serves().await;
    })
    .await;
}

/// Streams 1..19 reach the backend, then a WINDOW_UPDATE overflowing each one's send window
/// makes the server reset it (FLOW_CONTROL_ERROR): ten resets counted, and the upstream work
/// must end with them (the harm MadeYouReset aims at is work that goes on).
async fn server_resets_cancel_upstream(rig: &Rig, client: &mut Client) {
    let opens = ids(1, 10).flat_map(|id| h2raw::headers(id, GET, &Block::request("GET", "/slow")));
    client.send(&opens.collect::<Vec<_>>()).await.unwrap();
    rig.requests_reach(10).await;
    let overflows = ids(1, 10).flat_map(|id| h2raw::window_update(id, 0x7fff_ffff));
    client.send(&overflows.collect::<Vec<_>>()).await.unwrap();
    let mut resets = Vec::new();
    while resets.len() < 10 {
        let wanted = |f: &h2raw::Frame| f.kind == kind::RST_STREAM || f.kind == kind::GOAWAY;
        let rst = client.reader.find(soon(), wanted).await;
        assert_eq!(rst.kind, kind::RST_STREAM, "{rst:?}");
        resets.push((rst.stream, rst.error_code().unwrap()));
    }
    resets.sort();
    let overflowed = ids(1, 10).map(|id| (id, code::FLOW_CONTROL_ERROR));
    assert_eq!(resets, overflowed.collect::<Vec<_>>());
    rig.upstream_work_ended().await;
}

#[tokio::test]
async fn row_43_continuation_flood_gets_enhance_your_calm() {
    bounded(async {
        let rig = Rig::start(Behavior::Name).await;
        // Small CONTINUATION frames, none ending the block. h2 allows as many as the header
        // list limit needs (32 KiB in 16 KiB frames), and at least 5.
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, END_STREAM, &Block::request("GET", "/")))
            .await
            .unwrap();
        let more = h2raw::continuation(1, 0, &Block::default().field("x-more", "a"));
        let (mut reader, flood) = client.flood_in_background(more, 100_000);
        reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_continuations", soon())
            .await;
        flood.await.unwrap();

        // One header value announced at 1 MiB, sent in 16 KiB frames.
        let mut client = rig.connect().await;
        let mut head = Block::request("GET", "/");
        // A literal named "x" whose value length is 127 + 1 + 127 * 128 + 63 * 128^2 = 1 MiB.
        head.0.extend([0x00, 0x01, b'x', 0x7f, 0x81, 0xff, 0x3f]);
        client
            .send(&h2raw::headers(1, END_STREAM, &head))
            .await
            .unwrap();
        let chunk = h2raw::continuation(1, 0, &Block(vec![b'a'; 16 * 1024]));
        let (mut reader, flood) = client.flood_in_background(chunk, 64);
        reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_continuations", soon())
            .await;
        flood.await.unwrap();

        assert_eq!(rig.backend.requests(), 0);
        rig.still_serves().await;
    })
    .await;
}

#[tokio::test]
async fn row_44_hpack_bomb_gets_431_then_goaway_past_four_times_the_limit() {
    bounded(async {
        let rig = Rig::start(Behavior::Name).await;
        // One 4 000-byte field enters the dynamic table; each one-byte reference to it
        // (index 62) adds 4 038 bytes to the decoded list. The limit is 32 KiB.
        let bomb = |references: usize| {
            let mut block = Block::request("GET", "/").indexed_literal("x-bomb", &"a".repeat(4000));
            for _ in 0..references {
                block = block.index(62);
            }
            block
        };

        // About twice the limit: 431 on that stream; the connection goes on.
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, GET, &bomb(15)))
            .await
            .unwrap();
        let response = client
            .reader
            .find(soon(), |f| f.stream == 1 && f.kind == kind::HEADERS)
            .await;
        assert_eq!(response.status(), Some(431));
        client
            .send(&h2raw::headers(3, GET, &Block::request("GET", "/")))
            .await
            .unwrap();
        let response = client
            .reader
            .find(soon(), |f| f.stream == 3 && f.kind == kind::HEADERS)
            .await;
        assert_eq!(response.status(), Some(200));
        assert_eq!(
            rig.backend.requests(),
            1,
            "only the second request was forwarded"
        );

        // About eight times the limit: GOAWAY, then the connection closes.
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, GET, &bomb(63)))
            .await
            .unwrap();
        client
            .reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "header_list_way_too_large", soon())
            .await;
        assert_eq!(rig.backend.requests(), 1);
        rig.still_serves().await;
    })
    .await;
}

/// Sends a GET for `path` on stream `id` and returns the response status.
async fn get_on(client: &mut Client, id: u32, path: &str) -> Option<u16> {
    get_block_on(client, id, &Block::request("GET", path)).await
}

/// Sends `block` as a GET on stream `id` and returns the response status.
async fn get_block_on(client: &mut Client, id: u32, block: &Block) -> Option<u16> {
    client.send(&h2raw::headers(id, GET, block)).await.unwrap();
    let response = client
        .reader
        .find(soon(), |f| f.stream == id && f.kind == kind::HEADERS)
        .await;
    response.status()
}

#[tokio::test]
async fn row_45_control_and_tiny_data_floods_are_cut_off_or_served_within_bounds() {
    bounded(async {
        let rig = Rig::start(Behavior::Sink).await;
        empty_data_flood_is_cut_off_at_101(&rig).await;
        rig.still_serves().await;
        tiny_data_within_the_budget_is_served(&rig).await;
        rig.still_serves().await;
        // PING and SETTINGS: portero's frame guard (`src/server/h2_guard.rs`) allows 1 000 in
        // 10 s per connection (the handshake's SETTINGS and the closing PING count), then
        // GOAWAY ENHANCE_YOUR_CALM (tests/h2_conformance/s10.rs); below it every one is
        // answered. PRIORITY, parsed and dropped by h2 (`connection.rs`: "TODO: handle"), is
        // allowed 100 per stream opened plus 100, as Envoy does, then GOAWAY.
        let ping = h2raw::ping(*b"flooding");
        control_flood_is_served(&rig, "PING", &ping, 900, 900).await;
        // The handshake's own SETTINGS is acknowledged too.
        let settings = h2raw::settings(&[(INITIAL_WINDOW_SIZE, 65_535)]);
        control_flood_is_served(&rig, "SETTINGS", &settings, 900, 901).await;
        let priority = h2raw::priority(101, 0, 16);
        control_flood_is_served(&rig, "PRIORITY", &priority, 100, 0).await;
        let client = rig.connect().await;
        let (mut reader, flood) = client.flood_in_background(priority.repeat(10_000), 1);
        reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_priority_frames", soon())
            .await;
        flood.await.unwrap();
        let client = rig.connect().await;
        let (mut reader, flood) = client.flood_in_background(ping.repeat(2000), 1);
        reader
            .expect_goaway_then_close(code::ENHANCE_YOUR_CALM, "too_many_control_frames", soon())
            .await;
        flood.await.unwrap();
    })
    .await;
}

/// h2 `MAX_RECV_EMPTY_DATA_FRAMES`: 100 empty DATA frames are allowed per connection, the
/// 101st gets GOAWAY. The PING's ACK proves the first 100 were read and accepted.
async fn empty_data_flood_is_cut_off_at_101(rig: &Rig) {
    let mut client = rig.connect().await;
    let post = h2raw::headers(1, END_HEADERS, &Block::request("POST", "/upload"));
    let empty = h2raw::data(1, 0, &[]);
    let ping = h2raw::ping(*b"100 done");
    client
        .send(&[post, empty.repeat(100), ping].concat())
        .await
        .unwrap();
    let ack = client
        .reader
        .find(soon(), |f| f.kind == kind::PING || f.kind == kind::GOAWAY)
        .await;
    assert_eq!(
        (ack.kind, ack.payload.as_slice()),
        (kind::PING, &b"100 done"[..])
    );
    client.send(&empty).await.unwrap();
    let goaway = client.reader.expect_goaway(soon()).await;
    assert_eq!(
        (goaway.code, goaway.debug.as_str()),
        (code::ENHANCE_YOUR_CALM, "too_many_data_frames")
    );
    assert!(client.reader.closed_within(soon()).await);
}

/// One-byte DATA frames: h2 charges 255 bytes of overhead for each one buffered and not yet
/// read by portero, against a budget of half the connection window (512 KiB, about 2 056
/// frames), and GOAWAYs past it. 2 000 stay within it even unread, so they are served; past
/// that the outcome depends on how fast portero forwards, so it is not tested.
async fn tiny_data_within_the_budget_is_served(rig: &Rig) {
    let mut client = rig.connect().await;
    let post = h2raw::headers(1, END_HEADERS, &Block::request("POST", "/upload"));
    let bytes = h2raw::data(1, 0, b"x").repeat(2000);
    let end = h2raw::data(1, END_STREAM, &[]);
    client.send(&[post, bytes, end].concat()).await.unwrap();
    let response = client
        .reader
        .find(soon(), |f| f.stream == 1 && f.kind == kind::HEADERS)
        .await;
    assert_eq!(response.status(), Some(200));
    let body = client
        .reader
        .find(soon(), |f| f.stream == 1 && f.kind == kind::DATA)
        .await;
    assert_eq!(body.payload, b"2000", "the backend read every byte");
}

/// Writes `count` copies of `frame` and a final PING on a new connection, serving another
/// client meanwhile; then counts the ACKs of the same type before that PING's ACK (no
/// GOAWAY allowed), and checks the connection still serves a request.
async fn control_flood_is_served(rig: &Rig, name: &str, frame: &[u8], count: usize, acks: usize) {
    let Client {
        mut reader,
        mut writer,
    } = rig.connect().await;
    let frames = [frame.repeat(count), h2raw::ping(*b"the end!")].concat();
    let flood = tokio::spawn(async move {
        let sent = h2raw::flood(&mut writer, &frames, 1).await;
        (sent, writer)
    });
    rig.still_serves().await;
    let mut answers = 0;
    loop {
        match reader.next(soon()).await {
            Event::Frame(f) if f.kind == kind::PING && f.payload == b"the end!" => break,
            Event::Frame(f) if f.kind == frame[3] && f.flags & h2raw::ACK != 0 => answers += 1,
            Event::Frame(f) => assert_ne!(f.kind, kind::GOAWAY, "{name} flood: {f:?}"),
            other => panic!("{name} flood: {other:?} after {answers} answers"),
        }
    }
    let (sent, writer) = flood.await.unwrap();
    assert_eq!(sent, 1, "{name} flood written");
    assert_eq!(answers, acks, "{name} answers");
    let mut client = Client { reader, writer };
    assert_eq!(get_on(&mut client, 1, "/ok").await, Some(200), "{name}");
}

#[tokio::test]
async fn row_46_streams_past_100_are_refused() {
    bounded(async {
        let rig = Rig::start(Behavior::Hang).await;
        let mut client = rig.connect().await;
        let opens: Vec<u8> = ids(1, 110)
            .flat_map(|id| h2raw::headers(id, GET, &Block::request("GET", "/slow")))
            .collect();
        client.send(&opens).await.unwrap();
        let mut refused = Vec::new();
        while refused.len() < 10 {
            let rst = client
                .reader
                .find(soon(), |f| {
                    f.kind == kind::RST_STREAM || f.kind == kind::GOAWAY
                })
                .await;
            assert_eq!(
                (rst.kind, rst.error_code()),
                (kind::RST_STREAM, Some(code::REFUSED_STREAM))
            );
            refused.push(rst.stream);
        }
        refused.sort();
        assert_eq!(refused, ids(201, 10).collect::<Vec<_>>());
        rig.requests_reach(100).await;

        // A stream the client ends frees its slot for a new one.
        client
            .send(&h2raw::rst_stream(1, code::CANCEL))
            .await
            .unwrap();
        client
            .send(&h2raw::headers(221, GET, &Block::request("GET", "/slow")))
            .await
            .unwrap();
        rig.requests_reach(101).await;
        rig.gauge_reaches("portero_backend_in_flight", 100.0).await;
        rig.gauge_reaches("portero_upstream_connections", 100.0)
            .await;

        drop(client);
        rig.upstream_work_ended().await;
        rig.still_serves().await;
    })
    .await;
}

/// Sends `block` (and `body`, in the same write) as a request on stream 1 of a new
/// connection; returns the first RST_STREAM for it or GOAWAY, and the connection.
async fn malformed(rig: &Rig, block: &Block, body: Option<&[u8]>) -> (h2raw::Frame, Client) {
    let mut client = rig.connect().await;
    let request = match body {
        Some(body) => [
            h2raw::headers(1, END_HEADERS, block),
            h2raw::data(1, END_STREAM, body),
        ]
        .concat(),
        None => h2raw::headers(1, GET, block),
    };
    client.send(&request).await.unwrap();
    let frame = client.reader.read_until_rst_or_goaway(1, soon()).await;
    (frame, client)
}

#[tokio::test]
async fn row_47_malformed_requests_are_reset_with_protocol_error() {
    bounded(async {
        let rig = Rig::start(Behavior::Sink).await;
        let get = || Block::request("GET", "/");
        let stream_errors = [
            (
                "connection-specific header",
                get().field("connection", "keep-alive"),
            ),
            ("TE other than trailers", get().field("te", "gzip")),
            (
                "pseudo-header after a regular one",
                Block::default()
                    .field(":method", "GET")
                    .field(":scheme", "http")
                    .field("x-early", "1")
                    .field(":path", "/")
                    .field(":authority", "localhost"),
            ),
            (
                "missing :path (with :authority)",
                Block::default()
                    .field(":method", "GET")
                    .field(":scheme", "http")
                    .field(":authority", "localhost"),
            ),
            (
                "missing :path and :authority",
                Block::default()
                    .field(":method", "GET")
                    .field(":scheme", "http")
                    .field("host", "localhost"),
            ),
            // An uppercase name: a stream error since vendor/h2.patch (h2 0.4.20 failed the
            // whole HPACK block and closed the connection).
            ("uppercase name", get().field("X-Upper", "1")),
        ];
        for (case, block) in stream_errors {
            let (frame, mut client) = malformed(&rig, &block, None).await;
            assert_eq!(
                (frame.kind, frame.error_code()),
                (kind::RST_STREAM, Some(code::PROTOCOL_ERROR)),
                "{case}"
            );
            // A stream error: the connection serves the next stream.
            assert_eq!(get_on(&mut client, 3, "/ok").await, Some(200), "{case}");
        }
        assert_eq!(
            rig.backend.requests(),
            0,
            "a malformed request was forwarded"
        );
        assert_eq!(rig.ok.requests(), 6);

        // content-length that the DATA does not add up to, either way. h2 resets the stream
        // on reading the DATA (sent in the same write as the HEADERS); hyper may still hand
        // the request to portero, but drops it on the reset before anything goes upstream.
        let post = |length: &str| Block::request("POST", "/").field("content-length", length);
        for (case, block) in [("short body", post("10")), ("long body", post("2"))] {
            let (frame, _client) = malformed(&rig, &block, Some(b"hello")).await;
            assert_eq!(
                (frame.kind, frame.error_code()),
                (kind::RST_STREAM, Some(code::PROTOCOL_ERROR)),
                "{case}"
            );
        }
        rig.upstream_work_ended().await;
        assert_eq!(rig.backend.requests(), 0);

        rig.still_serves().await;
    })
    .await;
}
