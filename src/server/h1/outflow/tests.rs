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
    let cl = headers(&[("content-length", "10")]);
    let hint = SizeHint::with_exact(10);
    let v11 = Version::HTTP_11;
    assert_eq!(
        framing(true, StatusCode::OK, &cl, &hint, v11),
        ResponseFraming::Empty
    );
    for status in [
        StatusCode::SWITCHING_PROTOCOLS,
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
    ] {
        assert_eq!(
            framing(false, status, &cl, &hint, v11),
            ResponseFraming::Empty,
            "{status}"
        );
    }
}

#[test]
fn a_declared_length_is_kept_and_a_known_one_is_declared() {
    let v11 = Version::HTTP_11;
    assert_eq!(
        framing(
            false,
            StatusCode::OK,
            &headers(&[("content-length", "10")]),
            &SizeHint::new(),
            v11
        ),
        ResponseFraming::Length {
            length: 10,
            declared: true
        }
    );
    assert_eq!(
        framing(
            false,
            StatusCode::OK,
            &HeaderMap::new(),
            &SizeHint::with_exact(3),
            v11
        ),
        ResponseFraming::Length {
            length: 3,
            declared: false
        }
    );
}

#[test]
fn an_unknown_length_is_chunked_for_http11_and_until_close_for_http10() {
    let none = HeaderMap::new();
    let hint = SizeHint::new();
    assert_eq!(
        framing(false, StatusCode::OK, &none, &hint, Version::HTTP_11),
        ResponseFraming::Chunked
    );
    assert_eq!(
        framing(false, StatusCode::OK, &none, &hint, Version::HTTP_10),
        ResponseFraming::UntilClose
    );
}

#[test]
fn connection_close_is_read_in_any_case_among_other_tokens() {
    assert!(has_close(&HeaderValue::from_static("keep-alive, Close")));
    assert!(!has_close(&HeaderValue::from_static("keep-alive")));
    assert!(!has_close(&HeaderValue::from_static("closed")));
}
