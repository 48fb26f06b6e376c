//! A response head and a body's chunked framing, as bytes for an HTTP/1.1 client.

use super::RawFields;
use super::date::http_date;
use http::{HeaderMap, StatusCode, header};

/// How a response's body is framed on the wire, decided by the connection from the request
/// (method, version) and the response (status, fields, body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body bytes follow (HEAD, 1xx, 204, 304), whatever the fields say.
    Empty,
    /// Exactly this many bytes; `declared` when the response already has the field.
    Length {
        /// The body's length.
        length: u64,
        /// The response carries this `Content-Length` already.
        declared: bool,
    },
    /// `Transfer-Encoding: chunked`, added here.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client, a body of unknown length).
    UntilClose,
}

/// Appends the head of a response to `dst`: status line, every field of `received` (names
/// lowercased, as `http` would have them) then of `headers` as given, then what framing and
/// the connection need (`Content-Length` or `Transfer-Encoding`, `Connection`) and a `Date`
/// when the response has none.
pub fn encode_response_head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    received: Option<&RawFields>,
    headers: &HeaderMap,
    framing: ResponseFraming,
    connection: Option<&'static str>,
) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    dst.extend_from_slice(b"\r\n");
    for (name, value) in received.into_iter().flat_map(RawFields::iter) {
        let at = dst.len();
        dst.extend_from_slice(name);
        dst[at..].make_ascii_lowercase();
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value);
        dst.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        field(dst, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        ResponseFraming::Length {
            length,
            declared: false,
        } => {
            let mut digits = itoa::Buffer::new();
            field(dst, b"content-length", digits.format(length).as_bytes());
        }
        ResponseFraming::Chunked => field(dst, b"transfer-encoding", b"chunked"),
        _ => {}
    }
    if let Some(connection) = connection {
        field(dst, b"connection", connection.as_bytes());
    }
    if !headers.contains_key(header::DATE) && !received.is_some_and(RawFields::has_date) {
        http_date(|date| field(dst, b"date", date));
    }
    dst.extend_from_slice(b"\r\n");
}

/// Appends one field line.
pub(super) fn field(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    dst.extend_from_slice(name);
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// The line that opens a chunk of `len` bytes: its size in hex, then CRLF.
pub fn chunk_size_line(len: usize, dst: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[at..]);
    dst.extend_from_slice(b"\r\n");
}

/// The end of a chunked body: the last chunk, any trailer fields, and the blank line.
pub fn encode_trailers(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        field(dst, name.as_str().as_bytes(), value.as_bytes());
    }
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_head_has_its_fields_then_framing_then_connection() {
        let mut fields = HeaderMap::new();
        fields.insert("x-a", HeaderValue::from_static("1"));
        fields.insert(header::DATE, HeaderValue::from_static("then"));
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::OK,
            None,
            &fields,
            ResponseFraming::Length {
                length: 12,
                declared: false,
            },
            Some("close"),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: then\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_missing_date_is_added_and_chunked_is_declared() {
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::from_u16(599).unwrap(),
            None,
            &HeaderMap::new(),
            ResponseFraming::Chunked,
            None,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 599 Unknown\r\ntransfer-encoding: chunked\r\ndate: "));
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
    }

    #[test]
    fn chunk_lines_are_hex_and_trailers_end_the_body() {
        let mut out = Vec::new();
        for len in [1, 15, 16, 255, 4096, 0x1_0000_0000] {
            chunk_size_line(len, &mut out);
        }
        assert_eq!(out, b"1\r\nf\r\n10\r\nff\r\n1000\r\n100000000\r\n");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut end = Vec::new();
        encode_trailers(&mut end, Some(&trailers));
        assert_eq!(end, b"0\r\ngrpc-status: 0\r\n\r\n");
        let mut bare = Vec::new();
        encode_trailers(&mut bare, None);
        assert_eq!(bare, b"0\r\n\r\n");
    }
}
