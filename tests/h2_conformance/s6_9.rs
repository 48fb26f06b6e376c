//! RFC 9113 §6.9 and §6.10: WINDOW_UPDATE and flow control, CONTINUATION.

use super::*;

// ---------------------------------------------------------------------------------------------
// §6.9 WINDOW_UPDATE and flow control
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s6_9_zero_increment_on_the_connection_is_protocol_error() {
    connection_error_after(&h2raw::window_update(0, 0), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_9_zero_increment_on_a_stream_is_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        client.send(&h2raw::window_update(1, 0)).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s6_9_window_update_of_a_length_other_than_4_is_frame_size_error() {
    let frame = h2raw::frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0, 0]);
    connection_error_after(&frame, code::FRAME_SIZE_ERROR).await;
}

#[tokio::test]
async fn s6_9_1_connection_window_over_2_31_minus_1_is_flow_control_error() {
    let frames = [
        h2raw::window_update(0, 0x7fff_ffff),
        h2raw::window_update(0, 0x7fff_ffff),
    ];
    connection_error_after(&frames.concat(), code::FLOW_CONTROL_ERROR).await;
}

#[tokio::test]
async fn s6_9_1_stream_window_over_2_31_minus_1_is_stream_flow_control_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        client
            .send(&h2raw::window_update(1, 0x7fff_ffff))
            .await
            .unwrap();
        stream_error(&mut client, 1, code::FLOW_CONTROL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s6_9_1_data_past_the_advertised_window_is_flow_control_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        // portero advertises 64 KiB per stream; 128 KiB go out in one write, before any
        // WINDOW_UPDATE could come back. Either error is allowed (§6.9.1).
        let mut request = h2raw::headers(1, END_HEADERS, &post("/hang"));
        for _ in 0..8 {
            request.extend(h2raw::data(1, 0, &[b'x'; 16_384]));
        }
        client.send(&request).await.unwrap();
        stream_or_connection_error(&mut client, 1, code::FLOW_CONTROL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s6_9_1_the_server_sends_no_more_than_the_stream_window() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(INITIAL_WINDOW_SIZE, 100)]).await;
        assert_eq!(status(&mut client, 1, &get("/big")).await, Some(200));
        let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
        assert_eq!(data.payload.len(), 100);
        // The PING's ACK comes before any more DATA: the window is spent.
        client.send(&h2raw::ping(*b"spent?!!")).await.unwrap();
        let next = client
            .reader
            .find(soon(), |f| f.kind == kind::PING || f.kind == kind::DATA)
            .await;
        assert_eq!(next.kind, kind::PING, "{next:?}");
        client.send(&h2raw::window_update(1, 50)).await.unwrap();
        let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
        assert_eq!(data.payload.len(), 50);
    })
    .await;
}

#[tokio::test]
async fn s6_9_2_initial_window_size_change_applies_to_open_streams() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(INITIAL_WINDOW_SIZE, 0)]).await;
        assert_eq!(status(&mut client, 1, &get("/big")).await, Some(200));
        client.send(&h2raw::ping(*b"no data?")).await.unwrap();
        let next = client
            .reader
            .find(soon(), |f| f.kind == kind::PING || f.kind == kind::DATA)
            .await;
        assert_eq!(next.kind, kind::PING, "DATA with a window of 0: {next:?}");
        client
            .send(&h2raw::settings(&[(INITIAL_WINDOW_SIZE, 1000)]))
            .await
            .unwrap();
        let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
        assert_eq!((data.stream, data.payload.len()), (1, 1000));
    })
    .await;
}

#[tokio::test]
async fn s6_9_2_a_window_made_negative_by_settings_is_honoured() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(INITIAL_WINDOW_SIZE, 1000)]).await;
        assert_eq!(status(&mut client, 1, &get("/big")).await, Some(200));
        let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
        assert_eq!(data.payload.len(), 1000);
        // 1 000 spent, the initial size lowered to 500: the window is -500. A WINDOW_UPDATE
        // of 600 leaves 100 to send.
        client
            .send(&h2raw::settings(&[(INITIAL_WINDOW_SIZE, 500)]))
            .await
            .unwrap();
        client
            .reader
            .find(soon(), |f| f.kind == kind::SETTINGS)
            .await;
        client.send(&h2raw::window_update(1, 600)).await.unwrap();
        let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
        assert_eq!(data.payload.len(), 100);
    })
    .await;
}

#[tokio::test]
async fn s6_9_2_initial_window_size_change_overflowing_a_window_is_flow_control_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        // Stream 1's send window, 65 535 to begin with, grown to 2^31-1; raising the initial
        // size by one would take it past the maximum.
        client
            .send(&h2raw::window_update(1, 0x7fff_ffff - 65_535))
            .await
            .unwrap();
        alive(&mut client).await;
        client
            .send(&h2raw::settings(&[(INITIAL_WINDOW_SIZE, 65_536)]))
            .await
            .unwrap();
        connection_error(&mut client, code::FLOW_CONTROL_ERROR).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// §6.10 CONTINUATION
// ---------------------------------------------------------------------------------------------

/// `get("/")` cut in three: HEADERS and two CONTINUATION frames.
fn in_three_parts() -> [Vec<u8>; 3] {
    let block = get("/").0;
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(10);
    [
        h2raw::headers(1, END_STREAM, &Block(a.to_vec())),
        h2raw::continuation(1, 0, &Block(b.to_vec())),
        h2raw::continuation(1, END_HEADERS, &Block(c.to_vec())),
    ]
}

#[tokio::test]
async fn s6_10_continuation_frames_complete_a_field_block() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client.send(&in_three_parts().concat()).await.unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
    })
    .await;
}

#[tokio::test]
async fn s6_10_another_frame_inside_a_field_block_is_protocol_error() {
    let [headers, _, last] = in_three_parts();
    let frames = [headers, h2raw::ping(*b"between!"), last];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_10_continuation_on_another_stream_is_protocol_error() {
    let [headers, _, _] = in_three_parts();
    let frames = [headers, h2raw::continuation(3, END_HEADERS, &get("/"))];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_10_continuation_on_stream_0_is_protocol_error() {
    let [headers, _, _] = in_three_parts();
    let frames = [
        headers,
        h2raw::continuation(0, END_HEADERS, &Block::default()),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_10_continuation_after_end_headers_is_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        let frame = h2raw::continuation(1, END_HEADERS, &Block::default().field("x", "1"));
        client.send(&frame).await.unwrap();
        connection_error(&mut client, code::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s6_10_continuation_after_a_continuation_with_end_headers_is_protocol_error() {
    let frames = [
        in_three_parts().concat(),
        h2raw::continuation(1, END_HEADERS, &Block::default().field("x", "1")),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_10_continuation_after_data_is_protocol_error() {
    let frames = [
        h2raw::headers(1, END_HEADERS, &post("/hang")),
        h2raw::data(1, 0, b"x"),
        h2raw::continuation(1, END_HEADERS, &Block::default().field("x", "1")),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}
