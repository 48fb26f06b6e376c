use super::*;
use crate::h1::{ResponseLimits, parse_response};
use http::Method;

const LIMITS: ResponseLimits = ResponseLimits {
    max_bytes: 16 * 1024,
    max_headers: 100,
};

/// The fields of a response head with `lines`, as the parser keeps them; `None` when the
/// head is refused.
fn parsed(lines: &[u8]) -> Option<RawFields> {
    let head = [b"HTTP/1.1 200 OK\r\n", lines, b"\r\n"].concat();
    match parse_response(&mut head[..].into(), LIMITS, &Method::GET) {
        Ok(Some(parsed)) => Some(parsed.fields),
        _ => None,
    }
}

fn listed(fields: &RawFields) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn fields_keep_their_order_and_case_and_are_found_in_any_case() {
    let fields = parsed(b"Set-Cookie: a\r\nX-Up: 1\r\nset-cookie: b\r\n").unwrap();
    assert_eq!(
        listed(&fields),
        pairs(&[("Set-Cookie", "a"), ("X-Up", "1"), ("set-cookie", "b")])
    );
    assert_eq!(fields.get("set-cookie"), Some(&b"a"[..]));
    assert!(fields.contains("x-up"));
    assert!(!fields.contains("x-down"));
    assert_eq!(fields.content_length(), None);
    assert!(!fields.has_date());
    let known = parsed(b"DATE: then\r\nContent-Length: 3\r\ncontent-length: 3\r\n").unwrap();
    assert_eq!(known.content_length(), Some(&b"3"[..]));
    assert!(known.has_date());
    let mut fewer = fields.clone();
    fewer.remove("set-cookie");
    assert_eq!(listed(&fewer), pairs(&[("X-Up", "1")]));
}

#[test]
fn hop_by_hop_fields_and_those_connection_names_go() {
    let mut fields = parsed(
        b"Connection: X-Trace, close\r\nKeep-Alive: timeout=5\r\nX-Trace: 1\r\nUpgrade: ws\r\n\
          Proxy-Connection: x\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\
          Proxy-Authorization: y\r\nServer: n\r\n",
    )
    .unwrap();
    fields.remove_hop_by_hop();
    assert_eq!(listed(&fields), pairs(&[("Server", "n")]));
    // A `Connection` with bytes `to_str` refuses names nothing, as for a `HeaderMap`.
    let mut opaque = parsed(b"Connection: x-a, \xff\r\nX-A: 1\r\n").unwrap();
    opaque.remove_hop_by_hop();
    assert_eq!(listed(&opaque), pairs(&[("X-A", "1")]));
}

#[test]
fn prepended_fields_come_before_the_maps_own() {
    let fields = parsed(b"Server: n\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n").unwrap();
    let mut headers = HeaderMap::new();
    headers.append("x-added", HeaderValue::from_static("1"));
    headers.append("x-added", HeaderValue::from_static("2"));
    fields.prepend_to(&mut headers);
    let all: Vec<_> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        all,
        [
            ("server", "n"),
            ("set-cookie", "a"),
            ("set-cookie", "b"),
            ("x-added", "1"),
            ("x-added", "2")
        ]
    );
}

/// Every field httparse admits is one `http` admits, and the other way round, byte by byte:
/// what goes out as bytes to an HTTP/1.1 client goes out as a `HeaderMap` to an HTTP/2 one.
#[test]
fn httparse_and_http_admit_the_same_name_and_value_bytes() {
    for byte in 0..=255u8 {
        let name = [b'a', byte, b'b'];
        let line = [&name[..], b": v\r\n"].concat();
        let kept = parsed(&line).is_some_and(|f| f.len() == 1 && f.contains_name(&name));
        assert_eq!(
            kept,
            HeaderName::from_bytes(&name).is_ok(),
            "name byte {byte:#04x}"
        );
        let value = [b'a', byte, b'b'];
        let line = [&b"x: "[..], &value, b"\r\n"].concat();
        let kept = parsed(&line).is_some_and(|f| f.get("x") == Some(&value[..]));
        assert_eq!(
            kept,
            HeaderValue::from_bytes(&value).is_ok(),
            "value byte {byte:#04x}"
        );
    }
}

impl RawFields {
    fn contains_name(&self, name: &[u8]) -> bool {
        self.iter().any(|(field, _)| field == name)
    }
}

/// The fields that describe one connection, never the message (RFC 9110 §7.6.1, with the
/// non-standard `Keep-Alive` and `Proxy-Connection`): the list `proxy::headers` removes from
/// a `HeaderMap`, which `Known::of` must find hop-by-hop.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

#[test]
fn the_known_names_are_exactly_the_hop_by_hop_list_and_the_heads_own() {
    for name in HOP_BY_HOP {
        for spelled in [name.to_string(), name.to_ascii_uppercase()] {
            assert!(Known::of(spelled.as_bytes()).is_hop_by_hop(), "{spelled}");
        }
    }
    assert_eq!(Known::of(b"Content-Length"), Known::ContentLength);
    assert_eq!(Known::of(b"DATE"), Known::Date);
    assert_eq!(Known::of(b"Transfer-Encoding"), Known::TransferEncoding);
    assert_eq!(Known::of(b"connection"), Known::Connection);
    // Names of the same lengths, and near misses, are none of them.
    for other in [
        "tf",
        "data",
        "upgradf",
        "connectiox",
        "keep-alivf",
        "content-lengtx",
        "x-request-id",
        "",
        "content-type",
        "proxy-connectioN!",
        "transfer-encodinx",
        "set-cookie",
    ] {
        assert_eq!(Known::of(other.as_bytes()), Known::Other, "{other}");
    }
}
