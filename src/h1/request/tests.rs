use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 32 * 1024,
    max_headers: 100,
};

fn parse_with(input: &[u8], limits: HeadLimits) -> Result<Option<ParsedRequest>, HeadError> {
    parse_request(&mut BytesMut::from(input), limits)
}

fn parse(input: &[u8]) -> Result<Option<ParsedRequest>, HeadError> {
    parse_with(input, LIMITS)
}

/// A head that must parse completely.
fn complete(input: &[u8]) -> ParsedRequest {
    match parse(input) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "{:?}: expected a complete head, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// A head that must be refused.
fn refused(input: &[u8]) -> HeadError {
    match parse(input) {
        Err(error) => error,
        other => panic!(
            "{:?}: expected an error, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Every field as (name, value), in the map's order.
fn fields(parsed: &ParsedRequest) -> Vec<(&str, &[u8])> {
    parsed
        .request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect()
}

/// A request with `lines` as its fields, HTTP/1.1.
fn with_fields(lines: &str) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: a\r\n{lines}\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------------
// The request line and the buffer

#[test]
fn a_simple_get_is_parsed_whole() {
    let input = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let mut buf = BytesMut::from(&input[..]);
    let parsed = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(parsed.request.method(), Method::GET);
    assert_eq!(parsed.request.uri(), "/index.html?q=1");
    assert_eq!(parsed.request.uri().path(), "/index.html");
    assert_eq!(parsed.request.uri().query(), Some("q=1"));
    assert_eq!(parsed.request.version(), Version::HTTP_11);
    assert_eq!(
        fields(&parsed),
        [("host", &b"example.com"[..]), ("accept", b"*/*")]
    );
    assert_eq!(parsed.len, input.len());
    assert_eq!(parsed.framing, BodyFraming::None);
    assert!(parsed.keep_alive);
    assert!(!parsed.expect_continue);
    assert!(!parsed.upgrade);
    assert!(buf.is_empty(), "the head was taken: {buf:?}");
}

#[test]
fn what_follows_the_head_stays_in_the_buffer() {
    let first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let second = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = BytesMut::new();
    buf.extend_from_slice(first);
    buf.extend_from_slice(second);
    buf.extend_from_slice(b"GET /c HT");

    let a = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(a.request.uri(), "/a");
    assert_eq!(a.len, first.len());
    assert_eq!(&buf[..], &[&second[..], b"GET /c HT"].concat()[..]);

    let b = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(b.request.uri(), "/b");
    assert_eq!(&buf[..], b"GET /c HT");

    assert!(parse_request(&mut buf, LIMITS).unwrap().is_none());
    assert_eq!(&buf[..], b"GET /c HT", "an incomplete head stays as it was");
}

#[test]
fn body_bytes_after_the_head_stay_in_the_buffer() {
    let mut buf = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"[..]);
    let parsed = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(parsed.framing, BodyFraming::Length(5));
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn a_partial_head_wants_more_and_leaves_the_buffer_intact() {
    let whole = b"GET /path HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n";
    for end in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..end]);
        let result = parse_request(&mut buf, LIMITS);
        assert!(
            matches!(result, Ok(None)),
            "prefix of {end} bytes: {result:?}"
        );
        assert_eq!(&buf[..], &whole[..end], "prefix of {end} bytes was changed");
    }
}

#[test]
fn feeding_a_byte_at_a_time_gives_what_the_whole_gives() {
    let whole = b"\r\nPOST /submit?x=y HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabcGET";
    let expected = complete(whole);

    let mut buf = BytesMut::new();
    let mut parsed = None;
    for (at, &byte) in whole.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        match parse_request(&mut buf, LIMITS) {
            Ok(None) => assert_eq!(buf.len(), at + 1, "bytes were lost at {at}"),
            Ok(Some(p)) => {
                parsed = Some(p);
                // The rest, fed the same way, stays behind the head.
                buf.extend_from_slice(&whole[at + 1..]);
                break;
            }
            Err(error) => panic!("error at byte {at}: {error:?}"),
        }
    }
    let parsed = parsed.expect("the head completes");
    assert_eq!(parsed.request.method(), expected.request.method());
    assert_eq!(parsed.request.uri(), expected.request.uri());
    assert_eq!(parsed.request.version(), expected.request.version());
    assert_eq!(fields(&parsed), fields(&expected));
    assert_eq!(parsed.len, expected.len);
    assert_eq!(parsed.framing, BodyFraming::Length(3));
    assert_eq!(parsed.framing, expected.framing);
    assert_eq!(parsed.keep_alive, expected.keep_alive);
    assert!(!parsed.keep_alive);
    assert_eq!(&buf[..], b"abcGET");
}

#[test]
fn leading_blank_lines_are_skipped_and_counted() {
    let input = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let parsed = complete(input);
    assert_eq!(parsed.request.uri(), "/");
    assert_eq!(parsed.len, input.len());
    // Blank lines alone are not a request yet.
    assert!(matches!(parse(b"\r\n\r\n"), Ok(None)));
    assert!(matches!(parse(b"\n"), Ok(None)));
}

#[test]
fn bare_lf_line_endings_are_accepted_as_httparse_does() {
    let input = b"GET / HTTP/1.1\nHost: a\n\n";
    let parsed = complete(input);
    assert_eq!(fields(&parsed), [("host", &b"a"[..])]);
    assert_eq!(parsed.len, input.len());
}

#[test]
fn absolute_form_options_star_and_connect_authority_form() {
    let absolute = complete(b"GET http://example.com:8080/p?q HTTP/1.1\r\n\r\n");
    assert_eq!(absolute.request.uri().scheme_str(), Some("http"));
    assert_eq!(
        absolute.request.uri().authority().unwrap(),
        "example.com:8080"
    );
    assert_eq!(absolute.request.uri().path(), "/p");

    let star = complete(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(star.request.method(), Method::OPTIONS);
    assert_eq!(star.request.uri(), "*");

    let connect = complete(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(connect.request.method(), Method::CONNECT);
    assert_eq!(
        connect.request.uri().authority().unwrap(),
        "example.com:443"
    );
    assert!(connect.upgrade, "CONNECT switches the connection");
}

#[test]
fn extension_methods_are_kept_case_sensitive() {
    let parsed = complete(b"get / HTTP/1.1\r\n\r\n");
    assert_eq!(parsed.request.method().as_str(), "get");
    assert_ne!(parsed.request.method(), Method::GET);
    let parsed = complete(b"PURGE /cache HTTP/1.1\r\n\r\n");
    assert_eq!(parsed.request.method().as_str(), "PURGE");
}

#[test]
fn field_values_are_trimmed_and_kept_with_their_bytes() {
    let parsed = complete(b"GET / HTTP/1.1\r\nX-A:   spaced out \t \r\nX-B:\r\nX-Obs: caf\xc3\xa9\r\nX-A: second\r\n\r\n");
    assert_eq!(
        fields(&parsed),
        [
            ("x-a", &b"spaced out"[..]),
            ("x-a", b"second"),
            ("x-b", b""),
            ("x-obs", b"caf\xc3\xa9"),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Connection semantics

#[test]
fn http10_closes_unless_it_asks_for_keep_alive() {
    let plain = complete(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(plain.request.version(), Version::HTTP_10);
    assert!(!plain.keep_alive);

    let asked = complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(asked.keep_alive);

    let listed = complete(b"GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n");
    assert!(listed.keep_alive);

    let later = complete(b"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n");
    assert!(later.keep_alive);

    let closed = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n");
    assert!(!closed.keep_alive);
}

#[test]
fn http11_keeps_alive_unless_a_connection_line_says_close() {
    assert!(complete(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(complete(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!complete(b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
    // A later line cannot take a close back.
    assert!(
        !complete(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n")
            .keep_alive
    );
    // A token is matched whole.
    assert!(complete(b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").keep_alive);
}

#[test]
fn expect_100_continue_is_seen_case_insensitively() {
    assert!(
        complete(&with_fields(
            "Content-Length: 3\r\nExpect: 100-Continue\r\n"
        ))
        .expect_continue
    );
    assert!(
        !complete(&with_fields(
            "Content-Length: 3\r\nExpect: 100-continue-please\r\n"
        ))
        .expect_continue
    );
    assert!(!complete(&with_fields("Content-Length: 3\r\n")).expect_continue);
}

#[test]
fn upgrade_and_connect_ask_to_switch_protocols() {
    let upgrade = complete(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(upgrade.upgrade);
    assert!(upgrade.keep_alive);
    assert!(!complete(b"GET /ws HTTP/1.1\r\nHost: a\r\n\r\n").upgrade);
    assert!(complete(b"CONNECT a:1 HTTP/1.1\r\n\r\n").upgrade);
    assert!(complete(b"CONNECT a:1 HTTP/1.0\r\n\r\n").upgrade);
}

// ---------------------------------------------------------------------------------------
// Body framing

#[test]
fn content_length_frames_the_body() {
    assert_eq!(
        complete(&with_fields("Content-Length: 42\r\n")).framing,
        BodyFraming::Length(42)
    );
    assert_eq!(
        complete(&with_fields("Content-Length: 0042\r\n")).framing,
        BodyFraming::Length(42)
    );
    assert_eq!(
        complete(&with_fields("Content-Length: 0\r\n")).framing,
        BodyFraming::None
    );
    assert_eq!(complete(&with_fields("")).framing, BodyFraming::None);
    // The largest length hyper's body took (u64::MAX - 2).
    assert_eq!(
        complete(&with_fields("Content-Length: 18446744073709551613\r\n")).framing,
        BodyFraming::Length(u64::MAX - 2)
    );
}

#[test]
fn content_length_must_be_one_decimal_number() {
    for value in ["+5", "-1", "5, 5", "5,5", "0x10", "5 5", "1e3", "\u{b2}"] {
        let input = with_fields(&format!("Content-Length: {value}\r\n"));
        assert_eq!(
            refused(&input),
            HeadError::ContentLength,
            "Content-Length: {value}"
        );
    }
    assert_eq!(
        refused(&with_fields("Content-Length:\r\n")),
        HeadError::ContentLength
    );
    assert_eq!(
        refused(&with_fields("Content-Length:    \r\n")),
        HeadError::ContentLength
    );
    // Past u64.
    assert_eq!(
        refused(&with_fields("Content-Length: 18446744073709551616\r\n")),
        HeadError::ContentLength
    );
    assert_eq!(
        refused(&with_fields("Content-Length: 99999999999999999999999\r\n")),
        HeadError::ContentLength
    );
}

#[test]
fn equal_content_lengths_agree_and_differing_ones_are_refused() {
    let parsed = complete(&with_fields("Content-Length: 5\r\nContent-Length: 5\r\n"));
    assert_eq!(parsed.framing, BodyFraming::Length(5));
    let lengths: Vec<_> = parsed
        .request
        .headers()
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .collect();
    assert_eq!(lengths, ["5"], "a repeat is dropped, as hyper drops it");
    assert_eq!(
        refused(&with_fields("Content-Length: 5\r\nContent-Length: 6\r\n")),
        HeadError::ContentLength
    );
    assert_eq!(
        refused(&with_fields("Content-Length: 5\r\nContent-Length: 05x\r\n")),
        HeadError::ContentLength
    );
}

#[test]
fn chunked_transfer_encoding_frames_the_body() {
    let parsed = complete(&with_fields("Transfer-Encoding: chunked\r\n"));
    assert_eq!(parsed.framing, BodyFraming::Chunked);
    assert_eq!(
        complete(&with_fields("Transfer-Encoding: gzip, Chunked\r\n")).framing,
        BodyFraming::Chunked
    );
    assert_eq!(
        complete(&with_fields(
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
        ))
        .framing,
        BodyFraming::Chunked
    );
}

#[test]
fn transfer_encoding_must_end_in_chunked() {
    for lines in [
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunkedx\r\n",
        "Transfer-Encoding:\r\n",
    ] {
        assert_eq!(
            refused(&with_fields(lines)),
            HeadError::TransferEncoding,
            "{lines:?}"
        );
    }
}

#[test]
fn transfer_encoding_is_refused_in_http10() {
    assert_eq!(
        refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        HeadError::TransferEncoding
    );
}

#[test]
fn transfer_encoding_beside_content_length_is_chunked_and_both_fields_stay() {
    for lines in [
        "Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 10\r\n",
        // A Content-Length after the Transfer-Encoding is not read at all, as in hyper.
        "Transfer-Encoding: chunked\r\nContent-Length: nonsense\r\n",
    ] {
        let parsed = complete(&with_fields(lines));
        assert_eq!(parsed.framing, BodyFraming::Chunked, "{lines:?}");
        let headers = parsed.request.headers();
        assert!(headers.contains_key(header::CONTENT_LENGTH), "{lines:?}");
        assert_eq!(headers[header::TRANSFER_ENCODING], "chunked", "{lines:?}");
    }
    // One before the Transfer-Encoding is read, and refused when bad.
    assert_eq!(
        refused(&with_fields(
            "Content-Length: nonsense\r\nTransfer-Encoding: chunked\r\n"
        )),
        HeadError::ContentLength
    );
}

// ---------------------------------------------------------------------------------------
// Limits

#[test]
fn more_fields_than_allowed_is_too_large() {
    let limits = HeadLimits {
        max_bytes: 32 * 1024,
        max_headers: 3,
    };
    let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_with(three, limits)
            .unwrap()
            .unwrap()
            .request
            .headers()
            .len(),
        3
    );
    let four = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(parse_with(four, limits).unwrap_err(), HeadError::TooLarge);

    // hyper's 100 by default.
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    let mut one_more = many.clone();
    many.extend_from_slice(b"\r\n");
    assert_eq!(complete(&many).request.headers().len(), 100);
    one_more.extend_from_slice(b"X-100: v\r\n\r\n");
    assert_eq!(refused(&one_more), HeadError::TooLarge);
}

#[test]
fn more_fields_than_the_stack_holds_parse_into_the_heap() {
    let limits = HeadLimits {
        max_bytes: 64 * 1024,
        max_headers: 200,
    };
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..150 {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let parsed = parse_with(&input, limits).unwrap().unwrap();
    assert_eq!(parsed.request.headers().len(), 150);
}

#[test]
fn a_head_longer_than_max_bytes_is_too_large_complete_or_not() {
    let limits = HeadLimits {
        max_bytes: 64,
        max_headers: 100,
    };
    // Exactly 64 bytes is fine.
    let head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64 - 23));
    assert_eq!(head.len(), 64);
    assert!(parse_with(head.as_bytes(), limits).unwrap().is_some());
    // 65 complete bytes are not.
    let head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(65 - 23));
    assert_eq!(
        parse_with(head.as_bytes(), limits).unwrap_err(),
        HeadError::TooLarge
    );
    // Nor are 65 bytes of a head that has not ended yet.
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(65 - 19));
    assert_eq!(partial.len(), 65);
    assert_eq!(
        parse_with(partial.as_bytes(), limits).unwrap_err(),
        HeadError::TooLarge
    );
    // A body after a head within the limit does not count.
    let with_body = format!(
        "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}",
        "b".repeat(100)
    );
    let parsed = parse_with(with_body.as_bytes(), limits).unwrap().unwrap();
    assert_eq!(parsed.framing, BodyFraming::Length(100));
}

#[test]
fn a_target_past_65534_bytes_is_uri_too_long() {
    let limits = HeadLimits {
        max_bytes: 128 * 1024,
        max_headers: 100,
    };
    let target = |len: usize| format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(len - 1));
    let longest = parse_with(target(65534).as_bytes(), limits)
        .unwrap()
        .unwrap();
    assert_eq!(longest.request.uri().path().len(), 65534);
    assert_eq!(
        parse_with(target(65535).as_bytes(), limits).unwrap_err(),
        HeadError::UriTooLong
    );
    // Under the usual limits such a head is too large first, as in hyper.
    assert_eq!(refused(target(65535).as_bytes()), HeadError::TooLarge);
}

// ---------------------------------------------------------------------------------------
// Malformed heads

#[test]
fn bad_methods_are_malformed() {
    for input in [
        &b"G(T / HTTP/1.1\r\n\r\n"[..],
        b"GE\x00T / HTTP/1.1\r\n\r\n",
        b" GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        assert_eq!(refused(input), HeadError::Malformed("method"), "{input:?}");
    }
}

#[test]
fn bad_targets_are_malformed() {
    for input in [
        &b"GET /a\x00b HTTP/1.1\r\n\r\n"[..],
        b"GET /a\x7fb HTTP/1.1\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\n\r\n",
        // No version at all.
        b"GET /\r\n\r\n",
    ] {
        assert_eq!(refused(input), HeadError::Malformed("target"), "{input:?}");
    }
    // Bytes httparse lets through but `Uri` does not.
    for input in [
        &b"GET http://[::1 HTTP/1.1\r\n\r\n"[..],
        b"GET http:// HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(refused(input), HeadError::Malformed("target"), "{input:?}");
    }
    // Non-ASCII bytes in a path are taken, as `Uri` (and so hyper) takes them.
    assert_eq!(
        complete(b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n")
            .request
            .uri()
            .path()
            .len(),
        6
    );
}

#[test]
fn versions_other_than_1_0_and_1_1_are_malformed() {
    for input in [
        &b"GET / HTTP/2.0\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\n\r\n",
        b"GET / http/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert_eq!(refused(input), HeadError::Malformed("version"), "{input:?}");
    }
    // httparse reads a space after the version as the start of a bad line ending.
    assert!(matches!(
        refused(b"GET / HTTP/1.1 \r\n\r\n"),
        HeadError::Malformed(_)
    ));
}

#[test]
fn bad_fields_are_malformed() {
    for input in [
        // obs-fold
        &b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"[..],
        // whitespace before the colon
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        // no colon
        b"GET / HTTP/1.1\r\nHost\r\n\r\n",
        // NUL or CR inside a value
        b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        // a bad name
        b"GET / HTTP/1.1\r\nX(A): 1\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
    ] {
        assert!(
            matches!(refused(input), HeadError::Malformed(_)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn errors_answer_as_hyper_did() {
    assert_eq!(
        HeadError::TooLarge.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(HeadError::UriTooLong.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(HeadError::Malformed("x").status(), StatusCode::BAD_REQUEST);
    assert_eq!(HeadError::ContentLength.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        HeadError::TransferEncoding.status(),
        StatusCode::BAD_REQUEST
    );
}

// ---------------------------------------------------------------------------------------
// Where portero once differed from hyper 1.12's server (found by the `h1_differential`
// fuzz target's review); each asserts what hyper does.

#[test]
fn upgrade_in_http10_is_ignored_as_hyper_does() {
    assert!(!complete(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").upgrade);
    // hyper even drops a CONNECT's upgrade when an HTTP/1.0 one carries the field.
    assert!(!complete(b"CONNECT a:1 HTTP/1.0\r\nUpgrade: x\r\n\r\n").upgrade);
}

#[test]
fn transfer_encoding_beside_content_length_closes_as_hyper_does() {
    let parsed = complete(&with_fields(
        "Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
    ));
    assert!(!parsed.keep_alive);
}

#[test]
fn the_two_largest_content_lengths_are_too_large_as_in_hyper() {
    for value in ["18446744073709551614", "18446744073709551615"] {
        let error = refused(&with_fields(&format!("Content-Length: {value}\r\n")));
        assert_eq!(
            error.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{value}"
        );
    }
}

#[test]
fn a_partial_head_of_exactly_max_bytes_is_too_large_as_in_hyper() {
    let limits = HeadLimits {
        max_bytes: 64,
        max_headers: 100,
    };
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(64 - 19));
    assert_eq!(partial.len(), 64);
    assert_eq!(
        parse_with(partial.as_bytes(), limits).unwrap_err(),
        HeadError::TooLarge
    );
}

#[test]
fn blank_lines_before_the_request_line_are_skipped_and_nothing_is_lost() {
    // The head's end is looked for first; here the first empty line is not it, and the
    // buffer is put back whole for the parser, which skips the blank lines as hyper's did.
    let head = b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = BytesMut::from(&[&head[..], b"rest"].concat()[..]);
    let parsed = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(parsed.request.uri(), "/a");
    assert_eq!(parsed.len, head.len());
    assert_eq!(&buf[..], b"rest");
}

#[test]
fn the_head_taken_leaves_the_rest_in_the_same_allocation() {
    // The next read reuses the buffer once the message is gone: no copy of what follows.
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nbody");
    let before = buf.as_ptr();
    let parsed = parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(&buf[..], b"body");
    assert_eq!(buf.as_ptr(), before.wrapping_add(parsed.len));
}

#[test]
fn a_head_with_nothing_behind_it_leaves_no_buffer_held() {
    // Between requests a keep-alive connection holds no buffer (README, "Resource budget").
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    parse_request(&mut buf, LIMITS).unwrap().unwrap();
    assert_eq!(buf.capacity(), 0);
}
