use super::*;

const MAX_TRAILER_BYTES: usize = 1024;

/// What decoding produced: the body, and the trailers once the body ended.
#[derive(Debug, Default)]
struct Outcome {
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

/// Decodes from `buf` until the decoder wants more bytes or the body ends.
fn drain(decoder: &mut Chunked, buf: &mut BytesMut, out: &mut Outcome) -> Result<(), ChunkError> {
    while out.trailers.is_none() {
        match decoder.decode(buf)? {
            None => {
                assert!(buf.is_empty(), "Ok(None) with {} bytes left", buf.len());
                return Ok(());
            }
            Some(Decoded::Data(data)) => {
                assert!(!data.is_empty(), "an empty data frame");
                out.body.extend_from_slice(&data);
            }
            Some(Decoded::End(trailers)) => out.trailers = Some(trailers),
        }
    }
    Ok(())
}

/// Decodes `input` given whole; returns what was decoded and the bytes left in the buffer.
fn decode_all(input: &[u8]) -> Result<(Outcome, BytesMut), ChunkError> {
    let mut decoder = Chunked::new(MAX_TRAILER_BYTES);
    let mut buf = BytesMut::from(input);
    let mut out = Outcome::default();
    drain(&mut decoder, &mut buf, &mut out)?;
    Ok((out, buf))
}

/// Decodes `input` arriving in the given pieces.
fn decode_pieces(pieces: &[&[u8]]) -> Result<(Outcome, BytesMut), ChunkError> {
    let mut decoder = Chunked::new(MAX_TRAILER_BYTES);
    let mut buf = BytesMut::new();
    let mut out = Outcome::default();
    for piece in pieces {
        buf.extend_from_slice(piece);
        drain(&mut decoder, &mut buf, &mut out)?;
        if out.trailers.is_some() {
            assert!(decoder.is_done());
        }
    }
    Ok((out, buf))
}

fn ended(input: &[u8]) -> Outcome {
    let (out, rest) = decode_all(input).unwrap();
    assert!(out.trailers.is_some(), "the body did not end: {out:?}");
    assert!(rest.is_empty(), "bytes left after the end: {rest:?}");
    out
}

/// The input for a failure message, cut short.
fn shown(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], input.len()),
        None => text.into_owned(),
    }
}

fn refused(input: &[u8]) -> ChunkError {
    match decode_all(input) {
        Err(error) => error,
        Ok(out) => panic!("{:?} was not refused: {out:?}", shown(input)),
    }
}

#[test]
fn a_single_chunk() {
    let out = ended(b"5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(out.body, b"hello");
    assert!(out.trailers.unwrap().is_empty());
}

#[test]
fn an_empty_body_is_just_the_last_chunk() {
    let out = ended(b"0\r\n\r\n");
    assert!(out.body.is_empty());
    assert!(out.trailers.unwrap().is_empty());
}

#[test]
fn many_chunks_hex_sizes_of_either_case() {
    let out = ended(b"3\r\nabc\r\nA\r\n0123456789\r\nb\r\nhello world\r\n01\r\n!\r\n0\r\n\r\n");
    assert_eq!(out.body, b"abc0123456789hello world!");
}

#[test]
fn data_is_handed_out_as_it_arrives() {
    let mut decoder = Chunked::new(MAX_TRAILER_BYTES);
    let mut buf = BytesMut::from(&b"a\r\n0123"[..]);
    match decoder.decode(&mut buf).unwrap() {
        Some(Decoded::Data(data)) => assert_eq!(&data[..], b"0123"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
    buf.extend_from_slice(b"456789\r\n0\r\n\r\n");
    match decoder.decode(&mut buf).unwrap() {
        Some(Decoded::Data(data)) => assert_eq!(&data[..], b"456789"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(Decoded::End(map))) if map.is_empty()));
    assert!(decoder.is_done());
    assert!(buf.is_empty());
}

#[test]
fn every_split_of_the_input_decodes_the_same() {
    let input: &[u8] =
        b"4;name=value\r\nWiki\r\n6 \t\r\npedia \r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Sum: 42\r\n\r\n";
    let (whole, rest) = decode_all(input).unwrap();
    assert_eq!(whole.body, b"Wikipedia  in\r\n\r\nchunks.");
    assert!(rest.is_empty());
    let trailers = whole.trailers.clone().unwrap();
    assert_eq!(trailers["expires"], "never");
    assert_eq!(trailers["x-sum"], "42");

    for at in 0..=input.len() {
        let (first, second) = input.split_at(at);
        let (split, rest) = decode_pieces(&[first, second]).unwrap();
        assert_eq!(split.body, whole.body, "split at {at}");
        assert_eq!(split.trailers, whole.trailers, "split at {at}");
        assert!(rest.is_empty(), "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let (one_by_one, _) = decode_pieces(&bytes).unwrap();
    assert_eq!(one_by_one.body, whole.body);
    assert_eq!(one_by_one.trailers, whole.trailers);
}

#[test]
fn extensions_are_ignored() {
    let out = ended(b"5;a=b;c=\"d;e\"\r\nhello\r\n0;last\r\n\r\n");
    assert_eq!(out.body, b"hello");
}

#[test]
fn whitespace_may_follow_the_size() {
    let out = ended(b"5 \t \r\nhello\r\n0  \r\n\r\n");
    assert_eq!(out.body, b"hello");
    let out = ended(b"5 ;ext\r\nhello\r\n0\r\n\r\n");
    assert_eq!(out.body, b"hello");
}

#[test]
fn trailers_come_with_the_end() {
    let out = ended(b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\nX-Checksum: def\r\n\r\n");
    assert_eq!(out.body, b"hi");
    let trailers = out.trailers.unwrap();
    assert_eq!(trailers.len(), 3);
    let sums: Vec<_> = trailers.get_all("x-checksum").iter().collect();
    assert_eq!(sums, ["abc", "def"]);
    assert_eq!(trailers["x-other"], "1");
}

#[test]
fn a_trailer_section_split_across_calls() {
    for pieces in [
        &[&b"0\r\nX-A: 1\r\n"[..], b"X-B: 2\r\n", b"\r\n"][..],
        &[b"0\r\nX-A: 1\r", b"\n\r", b"\nX-Next"],
        &[b"0\r\nX-A:", b" 1\r\nX-B: 2\r\n\r", b"\n"],
        &[b"0\r\n", b"X", b"-A: 1\r\nX-B: 2\r\n\r\n"],
    ] {
        let (out, rest) = decode_pieces(pieces).unwrap();
        let trailers = out
            .trailers
            .unwrap_or_else(|| panic!("not ended: {pieces:?}"));
        assert_eq!(trailers["x-a"], "1", "{pieces:?}");
        let ends_with_next = pieces.last().unwrap().ends_with(b"X-Next");
        if ends_with_next {
            assert_eq!(&rest[..], b"X-Next");
        } else {
            assert_eq!(trailers["x-b"], "2", "{pieces:?}");
            assert!(rest.is_empty());
        }
    }
}

#[test]
fn an_empty_trailer_section_split_in_its_crlf() {
    let (out, rest) = decode_pieces(&[b"0\r\n\r", b"\nGET / HTTP/1.1\r\n"]).unwrap();
    assert!(out.trailers.unwrap().is_empty());
    assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
}

#[test]
fn bytes_after_the_end_are_left_for_the_next_request() {
    let next = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    let (out, rest) = decode_all(&[&b"3\r\nabc\r\n0\r\n\r\n"[..], next].concat()).unwrap();
    assert_eq!(out.body, b"abc");
    assert_eq!(&rest[..], next);

    let (out, rest) = decode_all(&[&b"0\r\nX-T: 1\r\n\r\n"[..], next].concat()).unwrap();
    assert_eq!(out.trailers.unwrap()["x-t"], "1");
    assert_eq!(&rest[..], next);

    // Once done, the decoder takes nothing more.
    let mut decoder = Chunked::new(MAX_TRAILER_BYTES);
    let mut buf = BytesMut::from(&b"0\r\n\r\nrest"[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::End(_)))
    ));
    assert!(matches!(
        decoder.decode(&mut buf),
        Ok(Some(Decoded::End(_)))
    ));
    assert_eq!(&buf[..], b"rest");
}

#[test]
fn malformed_size_lines_are_refused() {
    for input in [
        &b"\r\nhello\r\n0\r\n\r\n"[..],
        b"g\r\n",
        b"-5\r\n",
        b" 5\r\nhello\r\n",
        b"5 5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b"5\rx",
        b";ext\r\n",
    ] {
        assert!(
            matches!(refused(input), ChunkError::Malformed(_)),
            "{:?}",
            shown(input)
        );
    }
}

#[test]
fn bare_lf_is_refused() {
    for input in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5;ext\nhello\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\n\r\n",
    ] {
        assert!(
            matches!(refused(input), ChunkError::Malformed(_)),
            "{:?}",
            shown(input)
        );
    }
}

#[test]
fn data_must_be_followed_by_crlf() {
    assert_eq!(
        refused(b"5\r\nhelloX\r\n0\r\n\r\n"),
        ChunkError::Malformed("chunk data not followed by CRLF")
    );
    assert_eq!(
        refused(b"5\r\nhello\rX0\r\n\r\n"),
        ChunkError::Malformed("chunk data not followed by CRLF")
    );
    // A chunk longer than its size says is the same thing.
    assert_eq!(
        refused(b"3\r\nhello\r\n0\r\n\r\n"),
        ChunkError::Malformed("chunk data not followed by CRLF")
    );
}

#[test]
fn a_size_past_u64_is_too_large() {
    assert_eq!(
        refused(b"fffffffffffffffff\r\n"),
        ChunkError::TooLarge("chunk size")
    );
    // Sixteen digits still fit: the decoder then waits for that much data.
    let mut decoder = Chunked::new(MAX_TRAILER_BYTES);
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nabc"[..]);
    match decoder.decode(&mut buf).unwrap() {
        Some(Decoded::Data(data)) => assert_eq!(&data[..], b"abc"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(decoder.decode(&mut buf), Ok(None)));
}

#[test]
fn a_trailer_section_over_its_limit_is_too_large() {
    let field = format!("X-Big: {}\r\n", "v".repeat(60));
    // Within the limit.
    let mut decoder = Chunked::new(2 * field.len() + 2);
    let mut buf = BytesMut::from(format!("0\r\n{field}{field}\r\n").as_bytes());
    assert!(matches!(decoder.decode(&mut buf), Ok(Some(Decoded::End(map))) if map.len() == 2));

    // One byte over, whole.
    let mut decoder = Chunked::new(2 * field.len() + 1);
    let mut buf = BytesMut::from(format!("0\r\n{field}{field}\r\n").as_bytes());
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        ChunkError::TooLarge("trailer section")
    );

    // Over, and not ended yet.
    let mut decoder = Chunked::new(100);
    let mut buf = BytesMut::from(format!("0\r\n{field}{field}").as_bytes());
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        ChunkError::TooLarge("trailer section")
    );

    // Over, a little at a time.
    let mut decoder = Chunked::new(100);
    let mut buf = BytesMut::from(&b"0\r\n"[..]);
    let mut result = decoder.decode(&mut buf);
    for _ in 0..200 {
        if !matches!(result, Ok(None)) {
            break;
        }
        buf.extend_from_slice(b"X-A: 1\r\n");
        result = decoder.decode(&mut buf);
    }
    assert_eq!(result.unwrap_err(), ChunkError::TooLarge("trailer section"));
}

#[test]
fn malformed_trailers_are_refused() {
    for input in [
        &b"0\r\nno colon\r\n\r\n"[..],
        b"0\r\nX-A : 1\r\n\r\n",
        b"0\r\nX-A: 1\r\n folded\r\n\r\n",
        b"0\r\nX-A: a\x00b\r\n\r\n",
    ] {
        assert!(
            matches!(refused(input), ChunkError::Malformed(_)),
            "{:?}",
            shown(input)
        );
    }
}

#[test]
fn too_many_trailer_fields_are_too_large() {
    let mut input = b"0\r\n".to_vec();
    for i in 0..=MAX_TRAILERS {
        input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let mut decoder = Chunked::new(64 * 1024);
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap_err(),
        ChunkError::TooLarge("trailer fields")
    );
}

#[test]
fn extensions_past_their_bound_are_too_large() {
    // The bound counts the bytes after each chunk's first `;`, over the whole body.
    let under = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_EXTENSIONS - 1));
    assert_eq!(ended(under.as_bytes()).body, b"a");
    let over = format!("1;{}\r\n", "x".repeat(MAX_EXTENSIONS + 1));
    assert_eq!(
        refused(over.as_bytes()),
        ChunkError::TooLarge("chunk extensions")
    );
    let half = "x".repeat(MAX_EXTENSIONS / 2 + 1);
    let input = format!("1;{half}\r\na\r\n1;{half}\r\nb\r\n0\r\n\r\n");
    assert_eq!(
        refused(input.as_bytes()),
        ChunkError::TooLarge("chunk extensions")
    );
}

#[test]
fn any_number_of_leading_zeros_is_a_size() {
    let input = format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(300));
    assert_eq!(ended(input.as_bytes()).body, b"hello");
    let input = format!("{}\r\n\r\n", "0".repeat(256));
    assert!(ended(input.as_bytes()).body.is_empty());
}
