//! RFC 9113 §4: frame format, frame size, field section compression (with RFC 7541).

use super::*;

// ---------------------------------------------------------------------------------------------
// §4.1 Frame format
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s4_1_unknown_frame_types_are_ignored() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(
                &[
                    h2raw::frame(0x20, 0xff, 0, b"?"),
                    h2raw::frame(0xfa, 0, 1, b""),
                ]
                .concat(),
            )
            .await
            .unwrap();
        alive(&mut client).await;
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
    })
    .await;
}

#[tokio::test]
async fn s4_1_undefined_flags_are_ignored() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        client
            .send(&h2raw::frame(kind::PING, 0xfe, 0, b"flagged!"))
            .await
            .unwrap();
        let pong = client.reader.find(soon(), |f| f.kind == kind::PING).await;
        assert_eq!(
            (pong.flags, pong.payload.as_slice()),
            (ACK, &b"flagged!"[..])
        );
        // HEADERS with every undefined flag (0x2, 0x10, 0x40, 0x80) set too.
        client
            .send(&h2raw::headers(1, GET | 0xd2, &get("/")))
            .await
            .unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
    })
    .await;
}

#[tokio::test]
async fn s4_1_reserved_bit_of_the_stream_identifier_is_ignored() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let block = get("/");
        client
            .send(&raw_frame(kind::HEADERS, GET, 0x8000_0001, &block.0))
            .await
            .unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// §4.2 Frame size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s4_2_data_of_the_default_max_frame_size_is_accepted() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let request = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::data(1, END_STREAM, &[b'x'; 16_384]),
        ];
        client.send(&request.concat()).await.unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
        assert_eq!(body(&mut client, 1).await, b"16384");
    })
    .await;
}

#[tokio::test]
async fn s4_2_data_over_max_frame_size_is_frame_size_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let request = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::data(1, END_STREAM, &[b'x'; 16_385]),
        ];
        client.send(&request.concat()).await.unwrap();
        // DATA changes no connection state: a stream or a connection error (§4.2).
        stream_or_connection_error(&mut client, 1, code::FRAME_SIZE_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s4_2_headers_over_max_frame_size_is_connection_frame_size_error() {
    let block = get("/").field("x-big", &"a".repeat(16_384));
    connection_error_after(&h2raw::headers(1, GET, &block), code::FRAME_SIZE_ERROR).await;
}

#[tokio::test]
async fn s4_2_settings_over_max_frame_size_is_connection_frame_size_error() {
    let values = vec![(INITIAL_WINDOW_SIZE, 65_535); 2731]; // 16 386 bytes
    connection_error_after(&h2raw::settings(&values), code::FRAME_SIZE_ERROR).await;
}

// ---------------------------------------------------------------------------------------------
// §4.3 Field section compression and decompression (and RFC 7541)
// ---------------------------------------------------------------------------------------------

/// HEADERS on stream 1 whose field block is `get("/")` followed by `bytes`.
fn headers_ending_with(bytes: &[u8]) -> Vec<u8> {
    let mut block = get("/");
    block.0.extend(bytes);
    h2raw::headers(1, GET, &block)
}

#[tokio::test]
async fn s4_3_index_zero_is_compression_error() {
    connection_error_after(&headers_ending_with(&[0x80]), code::COMPRESSION_ERROR).await;
}

#[tokio::test]
async fn s4_3_index_past_the_tables_is_compression_error() {
    // 62 is the first dynamic entry, and the table is empty.
    connection_error_after(&headers_ending_with(&[0x80 | 70]), code::COMPRESSION_ERROR).await;
}

#[tokio::test]
async fn s4_3_block_ending_inside_a_field_is_compression_error() {
    // A literal announcing a 5-byte name of which one byte came.
    connection_error_after(
        &headers_ending_with(&[0x00, 0x05, b'a']),
        code::COMPRESSION_ERROR,
    )
    .await;
}

#[tokio::test]
async fn s4_3_huffman_padding_over_7_bits_is_compression_error() {
    // RFC 7541 §5.2: name "a" in Huffman (00011) then 11 bits of padding.
    connection_error_after(
        &headers_ending_with(&[0x00, 0x82, 0x1f, 0xff, 0x01, b'1']),
        code::COMPRESSION_ERROR,
    )
    .await;
}

#[tokio::test]
async fn s4_3_table_size_update_over_the_setting_is_compression_error() {
    // RFC 7541 §6.3: 8 192 > SETTINGS_HEADER_TABLE_SIZE (4 096).
    let mut block = Block(vec![0x3f, 0xe1, 0x3f]);
    block.0.extend(get("/").0);
    connection_error_after(&h2raw::headers(1, GET, &block), code::COMPRESSION_ERROR).await;
}

#[tokio::test]
async fn s4_3_table_size_update_after_a_field_is_compression_error() {
    // RFC 7541 §4.2: an update comes first in a block.
    connection_error_after(&headers_ending_with(&[0x20]), code::COMPRESSION_ERROR).await;
}

#[tokio::test]
async fn s4_3_the_dynamic_table_spans_streams() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let first = get("/").indexed_literal("x-shared", "1");
        assert_eq!(status(&mut client, 1, &first).await, Some(200));
        // Index 62 is the field stream 1 added.
        assert_eq!(status(&mut client, 3, &get("/").index(62)).await, Some(200));
        assert_eq!(rig.backend.last_headers()["x-shared"], "1");
    })
    .await;
}

#[tokio::test]
async fn s4_3_priority_inside_a_field_block_is_protocol_error() {
    let frames = [
        h2raw::headers(1, END_STREAM, &get("/")),
        h2raw::priority(1, 0, 16),
        h2raw::continuation(1, END_HEADERS, &Block::default()),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn s4_3_headers_of_another_stream_inside_a_field_block_is_protocol_error() {
    let frames = [
        h2raw::headers(1, END_STREAM, &get("/")),
        h2raw::headers(3, GET, &get("/")),
    ];
    connection_error_after(&frames.concat(), code::PROTOCOL_ERROR).await;
}
