//! RFC 9113 §5: stream states, identifiers, concurrency, priority errors, extensions.

use super::*;

// ---------------------------------------------------------------------------------------------
// §5.1 Stream states
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s5_1_data_on_an_idle_stream_is_protocol_error() {
    connection_error_after(&h2raw::data(1, END_STREAM, b"x"), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s5_1_rst_stream_on_an_idle_stream_is_protocol_error() {
    connection_error_after(&h2raw::rst_stream(1, code::CANCEL), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s5_1_window_update_on_an_idle_stream_is_protocol_error() {
    connection_error_after(&h2raw::window_update(1, 100), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s5_1_continuation_on_an_idle_stream_is_protocol_error() {
    let frame = h2raw::continuation(1, END_HEADERS, &get("/"));
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s5_1_priority_on_an_idle_stream_is_allowed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client.send(&h2raw::priority(5, 0, 16)).await.unwrap();
        alive(&mut client).await;
        assert_eq!(status(&mut client, 5, &get("/")).await, Some(200));
    })
    .await;
}

#[tokio::test]
async fn s5_1_data_on_a_half_closed_remote_stream_is_stream_closed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, GET, &get("/hang")))
            .await
            .unwrap();
        client
            .send(&h2raw::data(1, END_STREAM, b"late"))
            .await
            .unwrap();
        stream_error(&mut client, 1, code::STREAM_CLOSED).await;
    })
    .await;
}

#[tokio::test]
async fn s5_1_headers_on_a_half_closed_remote_stream_is_stream_closed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, GET, &get("/hang")))
            .await
            .unwrap();
        let trailers = Block::default().field("x-late", "1");
        client
            .send(&h2raw::headers(1, GET, &trailers))
            .await
            .unwrap();
        stream_error(&mut client, 1, code::STREAM_CLOSED).await;
    })
    .await;
}

#[tokio::test]
async fn s5_1_half_closed_remote_accepts_window_update_priority_and_rst_stream() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(&h2raw::headers(1, GET, &get("/hang")))
            .await
            .unwrap();
        let frames = [
            h2raw::window_update(1, 1000),
            h2raw::priority(1, 0, 200),
            h2raw::rst_stream(1, code::CANCEL),
        ];
        client.send(&frames.concat()).await.unwrap();
        alive(&mut client).await;
        assert_eq!(status(&mut client, 3, &get("/")).await, Some(200));
    })
    .await;
}

#[tokio::test]
async fn s5_1_data_after_rst_stream_is_stream_closed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        client
            .send(&h2raw::rst_stream(1, code::CANCEL))
            .await
            .unwrap();
        alive(&mut client).await;
        client
            .send(&h2raw::data(1, END_STREAM, b"x"))
            .await
            .unwrap();
        stream_error(&mut client, 1, code::STREAM_CLOSED).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "h2 0.4.20: a stream's id leaves its store when the stream closes (`Ptr::unlink`), so HEADERS on a stream the client reset reads as a reused stream identifier: GOAWAY PROTOCOL_ERROR (§5.1.1), not RST_STREAM STREAM_CLOSED (§5.1)"]
async fn s5_1_headers_after_rst_stream_is_stream_closed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        alive(&mut client).await;
        // In one write, so that a server that remembers closed streams for a while still
        // holds this one.
        let trailers = Block::default().field("x-late", "1");
        let frames = [
            h2raw::rst_stream(1, code::CANCEL),
            h2raw::headers(1, GET, &trailers),
        ];
        client.send(&frames.concat()).await.unwrap();
        stream_error(&mut client, 1, code::STREAM_CLOSED).await;
    })
    .await;
}

#[tokio::test]
async fn s5_1_data_after_both_sides_ended_is_stream_closed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
        body(&mut client, 1).await;
        client
            .send(&h2raw::data(1, END_STREAM, b"x"))
            .await
            .unwrap();
        // "MUST treat that as a connection error ... of type STREAM_CLOSED" once END_STREAM
        // was received; a server that no longer tells this stream from one it reset may
        // answer a stream error instead (h2spec accepts both).
        stream_or_connection_error(&mut client, 1, code::STREAM_CLOSED).await;
    })
    .await;
}

#[tokio::test]
async fn s5_1_headers_on_a_stream_ended_and_forgotten_is_a_connection_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
        body(&mut client, 1).await;
        alive(&mut client).await;
        client
            .send(&h2raw::headers(1, GET, &get("/")))
            .await
            .unwrap();
        // §5.1 asks for a connection error of type STREAM_CLOSED after END_STREAM both
        // ways; a server that no longer holds the stream sees HEADERS reusing a stream
        // identifier, a connection error of type PROTOCOL_ERROR by §5.1.1. h2 keeps no
        // record of closed streams, so it is the latter: a connection error either way.
        let goaway = client.reader.expect_goaway(soon()).await;
        assert!(
            [code::STREAM_CLOSED, code::PROTOCOL_ERROR].contains(&goaway.code),
            "{goaway:?}"
        );
        assert!(client.reader.closed_within(soon()).await);
    })
    .await;
}

#[tokio::test]
async fn s5_1_priority_on_a_closed_stream_is_allowed() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
        body(&mut client, 1).await;
        client.send(&h2raw::priority(1, 0, 16)).await.unwrap();
        alive(&mut client).await;
    })
    .await;
}

// §5.1.1 Stream identifiers

#[tokio::test]
async fn s5_1_1_even_stream_identifier_is_protocol_error() {
    connection_error_after(&h2raw::headers(2, GET, &get("/")), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s5_1_1_decreasing_stream_identifier_is_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        assert_eq!(status(&mut client, 5, &get("/")).await, Some(200));
        client
            .send(&h2raw::headers(3, GET, &get("/")))
            .await
            .unwrap();
        connection_error(&mut client, code::PROTOCOL_ERROR).await;
    })
    .await;
}

// §5.1.2 Stream concurrency (ATTACKS.md row 46 in depth)

#[tokio::test]
async fn s5_1_2_streams_past_max_concurrent_streams_are_refused() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = Client::open(traffic(&rig.app)).await;
        client
            .send(&[PREFACE, &h2raw::settings(&[])].concat())
            .await
            .unwrap();
        let settings = client
            .reader
            .find(soon(), |f| f.kind == kind::SETTINGS)
            .await;
        let advertised = settings
            .payload
            .chunks(6)
            .find(|s| u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
            .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
        assert_eq!(advertised, Some(100));
        client.send(&h2raw::settings_ack()).await.unwrap();
        let opens: Vec<u8> = (0..101)
            .flat_map(|i| h2raw::headers(1 + 2 * i, GET, &get("/hang")))
            .collect();
        client.send(&opens).await.unwrap();
        stream_error(&mut client, 201, code::REFUSED_STREAM).await;
    })
    .await;
}

// §5.3 Prioritization (the signals are deprecated, their errors are not)

#[tokio::test]
async fn s5_3_1_headers_depending_on_itself_is_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let mut payload = 1u32.to_be_bytes().to_vec();
        payload.push(16);
        payload.extend(get("/").0);
        let frame = h2raw::frame(kind::HEADERS, GET | PRIORITY, 1, &payload);
        client.send(&frame).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
        assert_eq!(rig.backend.requests(), 0);
    })
    .await;
}

#[tokio::test]
async fn s5_3_1_priority_depending_on_itself_is_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        client.send(&h2raw::priority(1, 1, 16)).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    })
    .await;
}

// §5.5 Extending HTTP/2

#[tokio::test]
async fn s5_5_unknown_frame_inside_a_field_block_is_protocol_error() {
    let frames = [
        h2raw::headers(1, END_STREAM, &get("/")),
        h2raw::frame(0x20, 0, 1, b"ext"),
        h2raw::continuation(1, END_HEADERS, &Block::default()),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}
