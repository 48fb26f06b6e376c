use super::*;
use http::HeaderValue;

fn headers(fields: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn no_body_after_head_1xx_204_and_304() {
    let cl = Some(10);
    let hint = SizeHint::with_exact(10);
    let v11 = Version::HTTP_11;
    assert_eq!(
        framing(true, StatusCode::OK, cl, &hint, v11),
        ResponseFraming::Empty
    );
    for status in [
        StatusCode::SWITCHING_PROTOCOLS,
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
    ] {
        assert_eq!(
            framing(false, status, cl, &hint, v11),
            ResponseFraming::Empty,
            "{status}"
        );
    }
}

#[test]
fn a_declared_length_is_kept_and_a_known_one_is_declared() {
    let v11 = Version::HTTP_11;
    assert_eq!(
        framing(false, StatusCode::OK, Some(10), &SizeHint::new(), v11),
        ResponseFraming::Length {
            length: 10,
            declared: true
        }
    );
    assert_eq!(
        framing(false, StatusCode::OK, None, &SizeHint::with_exact(3), v11),
        ResponseFraming::Length {
            length: 3,
            declared: false
        }
    );
}

#[test]
fn an_unknown_length_is_chunked_for_http11_and_until_close_for_http10() {
    let none = None;
    let hint = SizeHint::new();
    assert_eq!(
        framing(false, StatusCode::OK, none, &hint, Version::HTTP_11),
        ResponseFraming::Chunked
    );
    assert_eq!(
        framing(false, StatusCode::OK, none, &hint, Version::HTTP_10),
        ResponseFraming::UntilClose
    );
}

#[test]
fn connection_close_is_read_in_any_case_among_other_tokens() {
    assert!(has_close(&HeaderValue::from_static("keep-alive, Close")));
    assert!(!has_close(&HeaderValue::from_static("keep-alive")));
    assert!(!has_close(&HeaderValue::from_static("closed")));
}

/// The fields of a backend's response head, as the upstream connection keeps them.
fn received(head: &str) -> RawFields {
    let limits = crate::h1::ResponseLimits {
        max_bytes: 16 * 1024,
        max_headers: 100,
    };
    crate::h1::parse_response(&mut head.into(), limits, &http::Method::GET)
        .expect("a valid head")
        .expect("a complete head")
        .fields
}

#[test]
fn the_declared_length_is_the_first_content_length_read_as_http_reads_it() {
    let cl = headers(&[("content-length", "10")]);
    assert_eq!(declared_length(None, &cl), Some(10));
    assert_eq!(declared_length(None, &HeaderMap::new()), None);
    let bytes = received("HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 7\r\n\r\n");
    assert_eq!(declared_length(Some(&bytes), &HeaderMap::new()), Some(7));
    // The backend's own field comes first; the map holds only what portero added.
    assert_eq!(declared_length(Some(&bytes), &cl), Some(7));
    let none = received("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n");
    assert_eq!(declared_length(Some(&none), &cl), Some(10));
    // A list of equal lengths is a valid framing upstream, but no one number, as for `http`.
    let list = received("HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\n\r\n");
    assert_eq!(declared_length(Some(&list), &HeaderMap::new()), None);
}
