use super::*;
use crate::h1::{Chunked, Decoded};
use http::HeaderValue;

const LIMITS: ResponseLimits = ResponseLimits {
    max_bytes: 16 * 1024,
    max_headers: 100,
};

fn parse_with(
    input: &[u8],
    limits: ResponseLimits,
    method: &Method,
) -> Result<Option<ParsedResponse>, ResponseHeadError> {
    parse_response(&mut BytesMut::from(input), limits, method)
}

/// A response to `method` that must parse completely.
fn answer_to(method: &Method, input: &[u8]) -> ParsedResponse {
    match parse_with(input, LIMITS, method) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "{:?}: expected a complete head, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// A response to a GET that must parse completely.
fn complete(input: &[u8]) -> ParsedResponse {
    answer_to(&Method::GET, input)
}

/// A response to `method` that must be refused.
fn refused_to(method: &Method, input: &[u8]) -> ResponseHeadError {
    match parse_with(input, LIMITS, method) {
        Err(error) => error,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

fn refused(input: &[u8]) -> ResponseHeadError {
    refused_to(&Method::GET, input)
}

/// Every one of `inputs` is refused with `expected`.
fn all_refused_as(inputs: &[&[u8]], expected: ResponseHeadError) {
    for input in inputs {
        assert_eq!(
            refused(input),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// A 200 with `lines` as its fields.
fn ok_with(lines: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\n{lines}\r\n").into_bytes()
}

fn framing_of(lines: &str) -> ResponseBodyFraming {
    complete(&ok_with(lines)).framing
}

/// Every field as (name, value), in the order sent.
fn fields(parsed: &ParsedResponse) -> Vec<(&str, &[u8])> {
    parsed
        .fields
        .iter()
        .map(|(name, value)| (std::str::from_utf8(name).unwrap(), value))
        .collect()
}

fn encoded(method: Method, target: &str, headers: &HeaderMap, framing: RequestFraming) -> String {
    let mut out = Vec::new();
    encode_request_head(&mut out, &method, target, headers, framing);
    String::from_utf8(out).unwrap()
}

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_static(value));
    }
    headers
}

// ---------------------------------------------------------------------------------------
// The request head

#[test]
fn a_get_without_a_body_has_no_framing_field() {
    let headers = map(&[("host", "example.com"), ("accept", "*/*")]);
    assert_eq!(
        encoded(Method::GET, "/a?b=c", &headers, RequestFraming::Empty),
        "GET /a?b=c HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\r\n"
    );
}

#[test]
fn an_empty_post_has_no_content_length_as_in_hyper() {
    let headers = map(&[("host", "a")]);
    assert_eq!(
        encoded(Method::POST, "/", &headers, RequestFraming::Empty),
        "POST / HTTP/1.1\r\nhost: a\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::PUT, "/", &headers, RequestFraming::Length(0)),
        "PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn the_framing_field_comes_last_and_replaces_the_callers() {
    let headers = map(&[
        ("host", "a"),
        ("content-length", "99"),
        ("x-a", "1"),
        ("transfer-encoding", "gzip, chunked"),
        ("x-a", "2"),
    ]);
    assert_eq!(
        encoded(Method::POST, "/up", &headers, RequestFraming::Length(12)),
        "POST /up HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 12\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::PATCH, "/up", &headers, RequestFraming::Chunked),
        "PATCH /up HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    assert_eq!(
        encoded(Method::DELETE, "/up", &headers, RequestFraming::Empty),
        "DELETE /up HTTP/1.1\r\nhost: a\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
    );
}

#[test]
fn extension_methods_star_and_authority_targets_are_written_as_given() {
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(
        encoded(purge, "/cache", &HeaderMap::new(), RequestFraming::Empty),
        "PURGE /cache HTTP/1.1\r\n\r\n"
    );
    assert_eq!(
        encoded(
            Method::OPTIONS,
            "*",
            &HeaderMap::new(),
            RequestFraming::Empty
        ),
        "OPTIONS * HTTP/1.1\r\n\r\n"
    );
    assert_eq!(
        encoded(
            Method::CONNECT,
            "example.com:443",
            &map(&[("host", "example.com:443")]),
            RequestFraming::Empty
        ),
        "CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"
    );
}

#[test]
fn the_encoded_head_is_appended() {
    let mut out = b"previous".to_vec();
    encode_request_head(
        &mut out,
        &Method::GET,
        "/",
        &HeaderMap::new(),
        RequestFraming::Length(u64::MAX - 2),
    );
    assert_eq!(
        out,
        b"previousGET / HTTP/1.1\r\ncontent-length: 18446744073709551613\r\n\r\n"
    );
}

// ---------------------------------------------------------------------------------------
// The response head and the buffer

#[test]
fn a_simple_response_is_parsed_and_its_body_stays() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
    let mut buf = BytesMut::from(&[&head[..], b"hello"].concat()[..]);
    let parsed = parse_response(&mut buf, LIMITS, &Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.response.status(), StatusCode::OK);
    assert_eq!(parsed.response.version(), Version::HTTP_11);
    assert_eq!(
        fields(&parsed),
        [
            ("Content-Type", &b"text/plain"[..]),
            ("Content-Length", b"5")
        ]
    );
    assert_eq!(parsed.len, head.len());
    assert_eq!(parsed.framing, ResponseBodyFraming::Length(5));
    assert!(parsed.keep_alive);
    assert!(!parsed.is_interim());
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn a_partial_head_wants_more_and_leaves_the_buffer_intact() {
    let whole = b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
    for end in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..end]);
        let result = parse_response(&mut buf, LIMITS, &Method::GET);
        assert!(matches!(result, Ok(None)), "prefix of {end}: {result:?}");
        assert_eq!(&buf[..], &whole[..end], "prefix of {end} bytes was changed");
    }
}

#[test]
fn feeding_a_byte_at_a_time_gives_what_the_whole_gives() {
    let whole = b"\r\nHTTP/1.0 200 Fine\r\nConnection: keep-alive\r\nContent-Length: 3\r\nX-B: b\r\n\r\nabcHTTP";
    let expected = complete(whole);
    let mut buf = BytesMut::new();
    let mut parsed = None;
    for (at, &byte) in whole.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        match parse_response(&mut buf, LIMITS, &Method::GET) {
            Ok(None) => assert_eq!(buf.len(), at + 1, "bytes were lost at {at}"),
            Ok(Some(p)) => {
                parsed = Some(p);
                buf.extend_from_slice(&whole[at + 1..]);
                break;
            }
            Err(error) => panic!("error at byte {at}: {error:?}"),
        }
    }
    let parsed = parsed.expect("the head completes");
    assert_eq!(parsed.response.status(), expected.response.status());
    assert_eq!(parsed.response.version(), Version::HTTP_10);
    assert_eq!(fields(&parsed), fields(&expected));
    assert_eq!(parsed.len, expected.len);
    assert_eq!(parsed.framing, ResponseBodyFraming::Length(3));
    assert_eq!(parsed.framing, expected.framing);
    assert!(parsed.keep_alive && expected.keep_alive);
    assert_eq!(&buf[..], b"abcHTTP");
}

#[test]
fn reason_phrases_are_optional_and_any_will_do() {
    for line in [
        &b"HTTP/1.1 200\r\n"[..],
        b"HTTP/1.1 200 \r\n",
        b"HTTP/1.1 200 All Good Here\r\n",
        b"HTTP/1.1 200 caf\xc3\xa9\r\n",
    ] {
        let input = [line, b"Content-Length: 0\r\n\r\n"].concat();
        assert_eq!(complete(&input).response.status(), StatusCode::OK);
    }
    let odd = complete(b"HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(odd.response.status().as_u16(), 599);
}

#[test]
fn fields_are_kept_as_sent_repeats_included() {
    let parsed = complete(&ok_with(
        "X-A:  spaced \t\r\nContent-Length: 2\r\nX-B:\r\nContent-Length: 2\r\nX-A: second\r\n",
    ));
    // In the order and case they came: the client's head is written from them as they are
    // (names lowercased there).
    assert_eq!(
        fields(&parsed),
        [
            ("X-A", &b"spaced"[..]),
            ("Content-Length", b"2"),
            ("X-B", b""),
            ("Content-Length", b"2"),
            ("X-A", b"second"),
        ]
    );
    assert_eq!(parsed.framing, ResponseBodyFraming::Length(2));
}

#[test]
fn bare_lf_line_endings_are_accepted_as_httparse_does() {
    let parsed = complete(b"HTTP/1.1 200 OK\nContent-Length: 1\n\n");
    assert_eq!(parsed.framing, ResponseBodyFraming::Length(1));
}

// ---------------------------------------------------------------------------------------
// Framing, in RFC 9112 §6.3's order

#[test]
fn a_response_to_head_has_no_body_whatever_it_says() {
    for lines in [
        "Content-Length: 100\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: nonsense\r\n",
        "",
    ] {
        let parsed = answer_to(&Method::HEAD, &ok_with(lines));
        assert_eq!(parsed.framing, ResponseBodyFraming::Empty, "{lines:?}");
        assert!(parsed.keep_alive, "{lines:?}");
    }
}

#[test]
fn interim_204_and_304_responses_have_no_body() {
    for status in [100, 102, 103, 199, 204, 304] {
        for lines in [
            "Content-Length: 10\r\n",
            "Transfer-Encoding: chunked\r\n",
            "",
        ] {
            let input = format!("HTTP/1.1 {status} X\r\n{lines}\r\n");
            let parsed = complete(input.as_bytes());
            assert_eq!(parsed.framing, ResponseBodyFraming::Empty, "{input:?}");
            assert_eq!(parsed.is_interim(), status < 200, "{input:?}");
        }
    }
}

#[test]
fn an_interim_response_comes_back_alone_and_the_final_one_follows() {
    let first = b"HTTP/1.1 100 Continue\r\n\r\n";
    let second = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n";
    let last = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let mut buf = BytesMut::from(&[&first[..], second, last].concat()[..]);
    let mut statuses = Vec::new();
    loop {
        let parsed = parse_response(&mut buf, LIMITS, &Method::POST)
            .unwrap()
            .unwrap();
        statuses.push(parsed.response.status().as_u16());
        if !parsed.is_interim() {
            assert_eq!(parsed.framing, ResponseBodyFraming::Length(2));
            break;
        }
    }
    assert_eq!(statuses, [100, 103, 201]);
    assert_eq!(&buf[..], b"ok");
}

#[test]
fn switching_protocols_is_a_tunnel_for_the_caller() {
    let input = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    let mut buf = BytesMut::from(&input[..]);
    let parsed = parse_response(&mut buf, LIMITS, &Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.framing, ResponseBodyFraming::Tunnel);
    assert!(!parsed.is_interim());
    assert!(!parsed.keep_alive, "the connection is no longer HTTP");
    assert_eq!(&buf[..], b"\x81\x05hello", "the tunnel's first bytes stay");
}

#[test]
fn a_2xx_to_connect_is_a_tunnel_and_a_refusal_has_a_body() {
    for status in [200, 204, 299] {
        let input = format!("HTTP/1.1 {status} X\r\n\r\n");
        let parsed = answer_to(&Method::CONNECT, input.as_bytes());
        let expected = if status == 204 {
            ResponseBodyFraming::Empty
        } else {
            ResponseBodyFraming::Tunnel
        };
        assert_eq!(parsed.framing, expected, "{status}");
    }
    let refusal = answer_to(
        &Method::CONNECT,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\n",
    );
    assert_eq!(refusal.framing, ResponseBodyFraming::Length(4));
    assert!(refusal.keep_alive);
    // A 2xx to anything else is an ordinary response.
    assert_eq!(
        answer_to(&Method::POST, b"HTTP/1.1 200 OK\r\n\r\n").framing,
        ResponseBodyFraming::UntilClose
    );
}

#[test]
fn transfer_encoding_ending_in_chunked_is_chunked() {
    for lines in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: CHUNKED\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let parsed = complete(&ok_with(lines));
        assert_eq!(parsed.framing, ResponseBodyFraming::Chunked, "{lines:?}");
        assert!(parsed.keep_alive, "{lines:?}");
    }
}

#[test]
fn transfer_encoding_not_ending_in_chunked_reads_until_close() {
    for lines in [
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        "Transfer-Encoding: \r\n",
    ] {
        let parsed = complete(&ok_with(lines));
        assert_eq!(parsed.framing, ResponseBodyFraming::UntilClose, "{lines:?}");
        assert!(!parsed.keep_alive, "{lines:?}");
    }
}

#[test]
fn transfer_encoding_with_content_length_is_refused_whatever_the_status() {
    all_refused_as(
        &[
            &ok_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")[..],
            &ok_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            &ok_with("Content-Length: nonsense\r\nTransfer-Encoding: gzip\r\n"),
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ],
        ResponseHeadError::TransferEncodingWithContentLength,
    );
    assert_eq!(
        refused_to(
            &Method::HEAD,
            &ok_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")
        ),
        ResponseHeadError::TransferEncodingWithContentLength
    );
}

#[test]
fn transfer_encoding_framing_an_http10_response_is_refused() {
    assert_eq!(
        refused(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ResponseHeadError::TransferEncodingInHttp10
    );
    // Where it frames nothing, it is not read.
    let empty = complete(b"HTTP/1.0 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(empty.framing, ResponseBodyFraming::Empty);
}

#[test]
fn content_length_frames_the_body() {
    assert_eq!(
        framing_of("Content-Length: 42\r\n"),
        ResponseBodyFraming::Length(42)
    );
    assert_eq!(
        framing_of("Content-Length: 0\r\n"),
        ResponseBodyFraming::Empty
    );
    assert_eq!(
        framing_of("Content-Length: 007\r\n"),
        ResponseBodyFraming::Length(7)
    );
    assert_eq!(
        framing_of(&format!("Content-Length: {}\r\n", u64::MAX - 2)),
        ResponseBodyFraming::Length(u64::MAX - 2)
    );
}

#[test]
fn equal_content_lengths_agree_lists_included_as_in_hyper() {
    for lines in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5,5\r\nContent-Length: 5\r\n",
    ] {
        assert_eq!(
            framing_of(lines),
            ResponseBodyFraming::Length(5),
            "{lines:?}"
        );
    }
}

#[test]
fn bad_or_differing_content_lengths_are_refused() {
    for lines in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: \r\n",
        "Content-Length: 5,\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: 5\r\nContent-Length: x\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Content-Length: 18446744073709551614\r\n",
        "Content-Length: 18446744073709551615\r\n",
    ] {
        assert_eq!(
            refused(&ok_with(lines)),
            ResponseHeadError::ContentLength,
            "{lines:?}"
        );
    }
    // A 204 or 304 ignores the field, as hyper's client did.
    let ignored = complete(b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n");
    assert_eq!(ignored.framing, ResponseBodyFraming::Empty);
}

#[test]
fn neither_field_reads_until_close() {
    let parsed = complete(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>");
    assert_eq!(parsed.framing, ResponseBodyFraming::UntilClose);
    assert!(!parsed.keep_alive);
}

// ---------------------------------------------------------------------------------------
// Connection semantics

#[test]
fn http11_keeps_alive_unless_a_connection_line_says_close() {
    assert!(complete(&ok_with("Content-Length: 0\r\n")).keep_alive);
    for lines in [
        "Connection: close\r\n",
        "Connection: Close\r\n",
        "Connection: foo, close\r\n",
        "Connection: close\r\nConnection: keep-alive\r\n",
        "Connection: keep-alive\r\nConnection: close\r\n",
    ] {
        let parsed = complete(&ok_with(&format!("{lines}Content-Length: 0\r\n")));
        assert!(!parsed.keep_alive, "{lines:?}");
    }
}

#[test]
fn http10_closes_unless_it_says_keep_alive() {
    let plain = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
    assert_eq!(plain.response.version(), Version::HTTP_10);
    assert!(!plain.keep_alive);
    for (lines, keep_alive) in [
        ("Connection: keep-alive\r\n", true),
        ("Connection: Keep-Alive, foo\r\n", true),
        ("Connection: foo\r\nConnection: keep-alive\r\n", true),
        ("Connection: close\r\nConnection: keep-alive\r\n", false),
        ("Connection: keep-alive\r\nConnection: close\r\n", false),
    ] {
        let input = format!("HTTP/1.0 200 OK\r\n{lines}Content-Length: 1\r\n\r\n");
        assert_eq!(
            complete(input.as_bytes()).keep_alive,
            keep_alive,
            "{lines:?}"
        );
    }
    // A body until close ends the connection whatever it says.
    let until_close = complete(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(until_close.framing, ResponseBodyFraming::UntilClose);
    assert!(!until_close.keep_alive);
}

// ---------------------------------------------------------------------------------------
// Limits

#[test]
fn a_head_longer_than_max_bytes_is_too_large_complete_or_not() {
    let limits = ResponseLimits {
        max_bytes: 64,
        max_headers: 100,
    };
    let head = |len: usize| format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(len - 24));
    assert_eq!(head(64).len(), 64);
    assert!(
        parse_with(head(64).as_bytes(), limits, &Method::GET)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        parse_with(head(65).as_bytes(), limits, &Method::GET).unwrap_err(),
        ResponseHeadError::TooLarge
    );
    // A partial head as long as the limit cannot end within it (as `parse_request`).
    let partial = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(64 - 20));
    assert_eq!(partial.len(), 64);
    assert_eq!(
        parse_with(partial.as_bytes(), limits, &Method::GET).unwrap_err(),
        ResponseHeadError::TooLarge
    );
    assert!(
        parse_with(&partial.as_bytes()[..63], limits, &Method::GET)
            .unwrap()
            .is_none()
    );
    // Body bytes after a head within the limit do not count.
    let with_body = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",
        "b".repeat(100)
    );
    let parsed = parse_with(with_body.as_bytes(), limits, &Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.framing, ResponseBodyFraming::Length(100));
}

#[test]
fn more_fields_than_allowed_are_refused() {
    let limits = ResponseLimits {
        max_bytes: 16 * 1024,
        max_headers: 3,
    };
    let three = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let parsed = parse_with(three, limits, &Method::GET).unwrap().unwrap();
    assert_eq!(parsed.fields.len(), 3);
    let four = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(
        parse_with(four, limits, &Method::GET).unwrap_err(),
        ResponseHeadError::TooManyFields
    );
}

#[test]
fn more_fields_than_the_stack_holds_parse_into_the_heap() {
    let limits = ResponseLimits {
        max_bytes: 64 * 1024,
        max_headers: 200,
    };
    let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..150 {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let parsed = parse_with(&input, limits, &Method::GET).unwrap().unwrap();
    assert_eq!(parsed.fields.len(), 151);
}

// ---------------------------------------------------------------------------------------
// Syntax

#[test]
fn obs_fold_is_refused() {
    assert_eq!(
        refused(b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n"),
        ResponseHeadError::Field
    );
    assert_eq!(
        refused(b"HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\n\r\n"),
        ResponseHeadError::Field
    );
}

#[test]
fn bad_fields_are_refused() {
    all_refused_as(
        &[
            &ok_with("X-A : 1\r\n")[..],
            &ok_with("X A: 1\r\n"),
            &ok_with(": 1\r\n"),
            &ok_with("no colon\r\n"),
            &ok_with("X-A: a\x00b\r\n"),
            &ok_with("X-A: a\rb\r\n"),
            &ok_with("X-A: a\x7fb\r\n"),
            &ok_with("X-\u{e9}: 1\r\n"),
            b"HTTP/1.1 200 OK\r\n X-A: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\r\n",
        ],
        ResponseHeadError::Field,
    );
}

#[test]
fn bad_versions_are_refused() {
    all_refused_as(
        &[
            &b"HTTP/2.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.2 200 OK\r\n\r\n",
            b"HTTP/0.9 200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"<html>\r\n\r\n",
        ],
        ResponseHeadError::Version,
    );
}

#[test]
fn bad_status_lines_are_refused() {
    all_refused_as(
        &[
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 099 Too Low\r\n\r\n",
            b"HTTP/1.1 000\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200 O\x00K\r\n\r\n",
            b"HTTP/1.1 200 OK\rX\r\n\r\n",
        ],
        ResponseHeadError::StatusLine,
    );
}

#[test]
fn an_error_empties_the_buffer() {
    let mut buf = BytesMut::from(&b"HTTP/3 200 OK\r\n\r\nbody"[..]);
    assert!(parse_response(&mut buf, LIMITS, &Method::GET).is_err());
    assert!(buf.is_empty());
}

// ---------------------------------------------------------------------------------------
// A chunked response body, decoded as a request's is

#[test]
fn a_chunked_response_body_with_trailers_then_the_next_response() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n\
        5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n\
        HTTP/1.1 204 No Content\r\n\r\n";
    let mut buf = BytesMut::from(&input[..]);
    let parsed = parse_response(&mut buf, LIMITS, &Method::POST)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.framing, ResponseBodyFraming::Chunked);
    let mut decoder = Chunked::new(1024);
    let mut body = Vec::new();
    let trailers = loop {
        match decoder.decode(&mut buf).unwrap() {
            Some(Decoded::Data(data)) => body.extend_from_slice(&data),
            Some(Decoded::End(trailers)) => break trailers,
            None => panic!("the body is all there"),
        }
    };
    assert_eq!(body, b"hello world");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");
    let next = parse_response(&mut buf, LIMITS, &Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(next.response.status(), StatusCode::NO_CONTENT);
    assert!(buf.is_empty());
}
