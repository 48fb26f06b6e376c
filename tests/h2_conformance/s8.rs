//! RFC 9113 §8.1–§8.3 and §8.5: HTTP message framing, fields, pseudo-header fields, CONNECT.

use super::*;

// ---------------------------------------------------------------------------------------------
// §8.1 HTTP message framing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s8_1_trailers_without_end_stream_are_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let frames = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::data(1, 0, b"x"),
            h2raw::headers(1, END_HEADERS, &Block::default().field("x-trailer", "1")),
        ];
        client.send(&frames.concat()).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    })
    .await;
}

#[tokio::test]
async fn s8_1_trailers_with_end_stream_are_accepted() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let frames = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::data(1, 0, b"abc"),
            h2raw::headers(1, GET, &Block::default().field("x-trailer", "1")),
        ];
        client.send(&frames.concat()).await.unwrap();
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
        assert_eq!(body(&mut client, 1).await, b"3");
    })
    .await;
}

/// A POST with `content-length: length` and DATA frames of `parts` bytes: RST_STREAM
/// PROTOCOL_ERROR unless they add up (§8.1.1).
async fn content_length_case(length: &str, parts: &[usize], valid: bool) {
    let rig = Rig::start().await;
    let mut client = rig.connect().await;
    let head = post("/").field("content-length", length);
    let mut frames = h2raw::headers(1, if parts.is_empty() { GET } else { END_HEADERS }, &head);
    for (i, len) in parts.iter().enumerate() {
        let flags = if i + 1 == parts.len() { END_STREAM } else { 0 };
        frames.extend(h2raw::data(1, flags, &vec![b'x'; *len]));
    }
    client.send(&frames).await.unwrap();
    if valid {
        assert_eq!(response(&mut client, 1).await.status(), Some(200));
        assert_eq!(body(&mut client, 1).await, length.as_bytes());
    } else {
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    }
}

#[tokio::test]
async fn s8_1_1_content_length_over_the_data_is_stream_protocol_error() {
    bounded(content_length_case("10", &[3, 4], false)).await;
}

#[tokio::test]
async fn s8_1_1_content_length_under_the_data_is_stream_protocol_error() {
    bounded(content_length_case("5", &[3, 4], false)).await;
}

#[tokio::test]
async fn s8_1_1_content_length_without_data_is_stream_protocol_error() {
    bounded(content_length_case("5", &[], false)).await;
}

#[tokio::test]
async fn s8_1_1_content_length_matching_several_data_frames_is_accepted() {
    bounded(content_length_case("7", &[3, 0, 4], true)).await;
}

// ---------------------------------------------------------------------------------------------
// §8.2 HTTP fields
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s8_2_uppercase_field_name_is_stream_protocol_error() {
    bounded(malformed(get("/").field("X-Upper", "1"))).await;
}

#[tokio::test]
async fn s8_2_uppercase_field_name_keeps_the_dynamic_table_in_step() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        // The malformed field enters the table (index 62) and the next stream's field after
        // it (index 63): the decoder must still have decoded the whole block.
        let bad = get("/").indexed_literal("X-Upper", "1");
        client.send(&h2raw::headers(1, GET, &bad)).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
        let next = get("/").indexed_literal("x-ok", "2").index(63);
        client.send(&h2raw::headers(3, GET, &next)).await.unwrap();
        stream_error(&mut client, 3, code::PROTOCOL_ERROR).await;
        let fine = get("/").index(62);
        assert_eq!(status(&mut client, 5, &fine).await, Some(200));
        assert_eq!(rig.backend.last_headers()["x-ok"], "2");
    })
    .await;
}

#[tokio::test]
async fn s8_2_uppercase_field_name_before_a_continuation_is_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        // The malformed field ends the HEADERS frame's part of the block.
        let frames = [
            h2raw::headers(1, END_STREAM, &get("/").field("X-Upper", "1")),
            h2raw::continuation(1, END_HEADERS, &Block::default().field("x-more", "1")),
        ];
        client.send(&frames.concat()).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
        assert_eq!(status(&mut client, 3, &get("/")).await, Some(200));
        assert_eq!(rig.backend.requests(), 1);
    })
    .await;
}

#[tokio::test]
async fn s8_2_1_invalid_field_name_is_stream_protocol_error() {
    bounded(malformed(get("/").field("x y", "1"))).await;
}

#[tokio::test]
async fn s8_2_1_field_value_with_cr_lf_or_nul_is_stream_protocol_error() {
    bounded(malformed(get("/").field("x-split", "a\r\nx-injected: 1"))).await;
}

#[tokio::test]
async fn s8_2_1_field_value_with_whitespace_at_its_edges_is_stream_protocol_error() {
    bounded(malformed(get("/").field("x-padded", " a "))).await;
}

#[tokio::test]
async fn s8_2_2_connection_specific_fields_are_stream_protocol_error() {
    bounded(async {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ] {
            malformed(get("/").field(name, "x")).await;
        }
    })
    .await;
}

#[tokio::test]
async fn s8_2_2_te_other_than_trailers_is_stream_protocol_error() {
    bounded(malformed(get("/").field("te", "trailers, gzip"))).await;
}

#[tokio::test]
async fn s8_2_2_te_trailers_is_accepted() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let block = get("/").field("te", "trailers");
        assert_eq!(status(&mut client, 1, &block).await, Some(200));
    })
    .await;
}

#[tokio::test]
async fn s8_2_2_responses_carry_no_connection_specific_fields() {
    bounded(async {
        // The backend answers in HTTP/1.1 with `transfer-encoding: chunked` (a streamed
        // body); the client is h2's own, which resets a response with a connection-specific
        // field as malformed, so a whole response is the proof.
        let rig = Rig::start().await;
        let client = support::client::h2c();
        let uri = format!("http://{}/big", traffic(&rig.app));
        let request = http::Request::get(uri).body(Default::default()).unwrap();
        let reply = support::client::send(&client, request).await;
        assert_eq!((reply.status.as_u16(), reply.body.len()), (200, 100_000));
        for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(!reply.headers.contains_key(name), "{name}");
        }
    })
    .await;
}

#[tokio::test]
async fn s8_2_3_cookie_crumbs_are_joined_for_http1() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let block = get("/").field("cookie", "a=1").field("cookie", "b=2");
        assert_eq!(status(&mut client, 1, &block).await, Some(200));
        let headers = rig.backend.last_headers();
        let cookies: Vec<_> = headers.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2"]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// §8.3 HTTP control data (pseudo-header fields)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn s8_3_unknown_pseudo_header_is_stream_protocol_error() {
    bounded(malformed(
        Block::default()
            .field(":method", "GET")
            .field(":scheme", "http")
            .field(":path", "/")
            .field(":authority", "localhost")
            .field(":unknown", "1"),
    ))
    .await;
}

#[tokio::test]
async fn s8_3_response_pseudo_header_in_a_request_is_stream_protocol_error() {
    bounded(malformed(get("/").field(":status", "200"))).await;
}

#[tokio::test]
async fn s8_3_pseudo_header_after_a_regular_field_is_stream_protocol_error() {
    bounded(malformed(
        Block::default()
            .field(":method", "GET")
            .field(":scheme", "http")
            .field("x-early", "1")
            .field(":path", "/")
            .field(":authority", "localhost"),
    ))
    .await;
}

#[tokio::test]
async fn s8_3_pseudo_header_in_trailers_is_stream_protocol_error() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        let frames = [
            h2raw::headers(1, END_HEADERS, &post("/")),
            h2raw::data(1, 0, b"x"),
            h2raw::headers(1, GET, &Block::default().field(":path", "/")),
        ];
        client.send(&frames.concat()).await.unwrap();
        stream_error(&mut client, 1, code::PROTOCOL_ERROR).await;
    })
    .await;
}

fn request_with(fields: &[(&str, &str)]) -> Block {
    fields
        .iter()
        .fold(Block::default(), |block, (name, value)| {
            block.field(name, value)
        })
}

#[tokio::test]
async fn s8_3_1_missing_method_is_stream_protocol_error() {
    let fields = [
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
    ];
    bounded(malformed(request_with(&fields))).await;
}

#[tokio::test]
async fn s8_3_1_missing_scheme_is_stream_protocol_error() {
    let fields = [
        (":method", "GET"),
        (":path", "/"),
        (":authority", "localhost"),
    ];
    bounded(malformed(request_with(&fields))).await;
}

#[tokio::test]
async fn s8_3_1_missing_path_is_stream_protocol_error() {
    // With :authority (ATTACKS.md row 47); without it, see the test below.
    let fields = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "localhost"),
    ];
    bounded(malformed(request_with(&fields))).await;
}

#[tokio::test]
async fn s8_3_1_missing_path_and_authority_is_stream_protocol_error() {
    let fields = [
        (":method", "GET"),
        (":scheme", "http"),
        ("host", "localhost"),
    ];
    bounded(malformed(request_with(&fields))).await;
}

#[tokio::test]
async fn s8_3_1_empty_path_is_stream_protocol_error() {
    bounded(malformed(Block::request("GET", ""))).await;
}

#[tokio::test]
async fn s8_3_1_duplicated_pseudo_headers_are_stream_protocol_error() {
    bounded(async {
        for (name, value) in [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "localhost"),
        ] {
            malformed(get("/").field(name, value)).await;
        }
    })
    .await;
}

// §8.5 The CONNECT method

#[tokio::test]
async fn s8_5_connect_with_scheme_or_path_is_stream_protocol_error() {
    bounded(async {
        malformed(request_with(&[
            (":method", "CONNECT"),
            (":authority", "localhost:443"),
            (":path", "/"),
        ]))
        .await;
        malformed(request_with(&[
            (":method", "CONNECT"),
            (":authority", "localhost:443"),
            (":scheme", "https"),
        ]))
        .await;
    })
    .await;
}

#[tokio::test]
async fn s8_5_connect_without_authority_is_stream_protocol_error() {
    bounded(malformed(request_with(&[(":method", "CONNECT")]))).await;
}
