//! RFC 9113 §6.1–§6.8: the rules of each frame type but WINDOW_UPDATE and CONTINUATION.

use super::*;

// ---------------------------------------------------------------------------------------------
// §6.1 DATA
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s6_1_data_on_stream_0_is_protocol_error() {
    connection_error_after(&h2raw::data(0, 0, b"x"), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_1_data_padding_longer_than_the_payload_is_protocol_error() {
    let frames = [
        h2raw::headers(1, END_HEADERS, &post("/")),
        h2raw::frame(kind::DATA, END_STREAM | PADDED, 1, &[10, b'a']),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_1_padded_data_is_accepted_without_its_padding() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let frames = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::frame(
                kind::DATA,
                END_STREAM | PADDED,
                1,
                &[3, b'a', b'b', 0, 0, 0],
            ),
        ];
        client.send(&frames.concat()).await.unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
        assert_eq!(body(&mut client, 1).await, b"2");
    })
    .await;
}

// §6.2 HEADERS

#[tokio::test]
async fn s6_2_headers_on_stream_0_is_protocol_error() {
    connection_error_after(&h2raw::headers(0, GET, &get("/")), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_2_headers_padding_longer_than_the_payload_is_protocol_error() {
    let mut payload = vec![200];
    payload.extend(get("/").0);
    let frame = h2raw::frame(kind::HEADERS, GET | PADDED, 1, &payload);
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_2_padded_and_prioritised_headers_are_accepted() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let mut payload = vec![2];
        payload.extend(0u32.to_be_bytes());
        payload.push(16);
        payload.extend(get("/").0);
        payload.extend([0, 0]);
        let frame = h2raw::frame(kind::HEADERS, GET | PADDED | PRIORITY, 1, &payload);
        client.send(&frame).await.unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
    })
    .await;
}

#[tokio::test]
async fn s6_2_data_inside_a_field_block_is_protocol_error() {
    let frames = [
        h2raw::headers(1, 0, &post("/")),
        h2raw::data(1, END_STREAM, b"x"),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

// §6.3 PRIORITY

#[tokio::test]
async fn s6_3_priority_on_stream_0_is_protocol_error() {
    connection_error_after(&h2raw::priority(0, 1, 16), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_3_priority_of_a_length_other_than_5_is_stream_frame_size_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        let frame = h2raw::frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 16, 0]);
        client.send(&frame).await.unwrap();
        stream_error(&mut client, 1, code::FRAME_SIZE_ERROR).await;
    })
    .await;
}

// §6.4 RST_STREAM

#[tokio::test]
async fn s6_4_rst_stream_on_stream_0_is_protocol_error() {
    connection_error_after(&h2raw::rst_stream(0, code::CANCEL), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_4_rst_stream_of_a_length_other_than_4_is_frame_size_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        let frame = h2raw::frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8, 0]);
        client.send(&frame).await.unwrap();
        connection_error(&mut client, code::FRAME_SIZE_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s6_4_rst_stream_with_an_unknown_code_ends_only_its_stream() {
    bounded(async {
        // §7: unknown error codes MUST NOT trigger any special behavior.
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        client.send(&h2raw::rst_stream(1, 0xbad)).await.unwrap();
        alive(&mut client).await;
        assert_eq!(status(&mut client, 3, &get("/")).await, Some(200));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// §6.5 SETTINGS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s6_5_settings_ack_with_payload_is_frame_size_error() {
    let frame = h2raw::frame(kind::SETTINGS, ACK, 0, &[0, 4, 0, 0, 0, 1]);
    connection_error_after(&frame, code::FRAME_SIZE_ERROR).await;
}

#[tokio::test]
async fn s6_5_settings_on_a_stream_is_protocol_error() {
    let frame = h2raw::frame(kind::SETTINGS, 0, 1, &[0, 4, 0, 0, 0, 1]);
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_5_settings_length_not_a_multiple_of_6_is_frame_size_error() {
    let frame = h2raw::frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 1]);
    connection_error_after(&frame, code::FRAME_SIZE_ERROR).await;
}

#[tokio::test]
async fn s6_5_2_enable_push_other_than_0_or_1_is_protocol_error() {
    connection_error_after(&h2raw::settings(&[(ENABLE_PUSH, 2)]), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_5_2_initial_window_size_over_2_31_minus_1_is_flow_control_error() {
    let frame = h2raw::settings(&[(INITIAL_WINDOW_SIZE, 1 << 31)]);
    connection_error_after(&frame, code::FLOW_CONTROL_ERROR).await;
}

#[tokio::test]
async fn s6_5_2_max_frame_size_below_16384_is_protocol_error() {
    let frame = h2raw::settings(&[(MAX_FRAME_SIZE, 16_383)]);
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_5_2_max_frame_size_over_2_24_minus_1_is_protocol_error() {
    let frame = h2raw::settings(&[(MAX_FRAME_SIZE, 1 << 24)]);
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_5_2_unknown_settings_are_ignored() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(0xff, 1), (0x4242, u32::MAX)]).await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
    })
    .await;
}

#[tokio::test]
async fn s6_5_3_settings_are_acknowledged_and_applied_in_order() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        // The first value would stop every response body; the second one wins.
        let both = h2raw::settings(&[(INITIAL_WINDOW_SIZE, 0), (INITIAL_WINDOW_SIZE, 65_535)]);
        client.send(&both).await.unwrap();
        let ack = client
            .reader
            .find(soon(), |f| f.kind == kind::SETTINGS)
            .await;
        assert_eq!((ack.flags, ack.payload.len()), (ACK, 0));
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
        assert_eq!(body(&mut client, 1).await, b"0");
    })
    .await;
}

#[tokio::test]
async fn s6_5_2_header_table_size_0_is_honoured() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(HEADER_TABLE_SIZE, 0)]).await;
        // RFC 7541 §4.2: the first block after the change opens with a dynamic table size
        // update (001xxxxx) to 0; §6.2.1: nothing is added to a table of size 0, so no
        // literal with incremental indexing (01xxxxxx) follows.
        let first = response_to(&mut client, 1).await;
        assert_eq!(first.payload[0], 0x20, "{first:?}");
        for response in [first, response_to(&mut client, 3).await] {
            assert!(!literal_with_indexing_at_start(&response), "{response:?}");
        }
    })
    .await;
}

/// Whether the block's first field (after any size updates) is a literal with indexing.
fn literal_with_indexing_at_start(response: &Frame) -> bool {
    let first_field = response.payload.iter().find(|b| *b & 0xe0 != 0x20);
    first_field.is_some_and(|b| b & 0xc0 == 0x40)
}

/// Sends a GET for `/` on `stream` and gives the response HEADERS.
async fn response_to(client: &mut Client, stream: u32) -> Frame {
    client
        .send(&h2raw::headers(stream, GET, &get("/")))
        .await
        .unwrap();
    let response = response(client, stream).await;
    body(client, stream).await;
    response
}

#[tokio::test]
async fn s6_5_2_max_frame_size_of_the_client_is_honoured() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect_with(&[(INITIAL_WINDOW_SIZE, 1 << 20)]).await;
        client
            .send(&h2raw::window_update(0, 1 << 20))
            .await
            .unwrap();
        assert_eq!(status(&mut client, 1, &get("/big")).await, Some(200));
        let mut total = 0;
        while total < 100_000 {
            let data = client.reader.find(soon(), |f| f.kind == kind::DATA).await;
            assert!(data.payload.len() <= 16_384, "{} bytes", data.payload.len());
            total += data.payload.len();
        }
    })
    .await;
}

// §6.6 PUSH_PROMISE (and §8.4: only servers push)

#[tokio::test]
async fn s6_6_push_promise_from_a_client_is_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        open_hanging(&mut client, 1).await;
        let mut payload = 2u32.to_be_bytes().to_vec();
        payload.extend(get("/").0);
        let frame = h2raw::frame(kind::PUSH_PROMISE, END_HEADERS, 1, &payload);
        client.send(&frame).await.unwrap();
        connection_error(&mut client, code::PROTOCOL_ERROR).await;
    })
    .await;
}

// §6.7 PING

#[tokio::test]
async fn s6_7_ping_is_answered_with_its_payload_and_ack() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client.send(&h2raw::ping(*b"h2spec!!")).await.unwrap();
        let pong = client.reader.find(soon(), |f| f.kind == kind::PING).await;
        assert_eq!((pong.flags, pong.stream), (ACK, 0));
        assert_eq!(pong.payload, b"h2spec!!");
    })
    .await;
}

#[tokio::test]
async fn s6_7_ping_ack_is_not_answered() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let frames = [
            h2raw::frame(kind::PING, ACK, 0, b"unasked!"),
            h2raw::ping(*b"answered"),
        ];
        client.send(&frames.concat()).await.unwrap();
        let pong = client.reader.find(soon(), |f| f.kind == kind::PING).await;
        assert_eq!(pong.payload, b"answered");
    })
    .await;
}

#[tokio::test]
async fn s6_7_ping_on_a_stream_is_protocol_error() {
    let frame = h2raw::frame(kind::PING, 0, 1, b"onstream");
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_7_ping_of_a_length_other_than_8_is_frame_size_error() {
    let frame = h2raw::frame(kind::PING, 0, 0, b"short");
    connection_error_after(&frame, code::FRAME_SIZE_ERROR).await;
}

// §6.8 GOAWAY

#[tokio::test]
async fn s6_8_goaway_on_a_stream_is_protocol_error() {
    let mut frame = h2raw::goaway(0, code::NO_ERROR);
    frame[8] = 1;
    connection_error_after(&frame, code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s6_8_open_streams_finish_after_a_client_goaway() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(
                &[
                    h2raw::headers(1, GET, &get("/")),
                    h2raw::goaway(0, code::NO_ERROR),
                ]
                .concat(),
            )
            .await
            .unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
        assert_eq!(body(&mut client, 1).await, b"0");
    })
    .await;
}
