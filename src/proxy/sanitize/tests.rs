use super::*;

fn request(version: Version, target: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().uri(target).version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

fn h11(target: &str, headers: &[(&str, &str)]) -> Result<String, Invalid> {
    check(
        &request(Version::HTTP_11, target, headers),
        &Limits::default(),
    )
}

#[test]
fn a_plain_request_is_for_its_host() {
    assert_eq!(
        h11("/", &[("host", "example.com")]),
        Ok("example.com".into())
    );
    assert_eq!(
        h11("/x?y", &[("host", "[::1]:8080")]),
        Ok("[::1]:8080".into())
    );
}

#[test]
fn host_must_be_present_single_and_well_formed() {
    assert_eq!(h11("/", &[]), Err(Invalid::Host));
    assert_eq!(
        h11("/", &[("host", "a.example"), ("host", "b.example")]),
        Err(Invalid::Host)
    );
    for bad in [
        "", "u@h", "h/x", "h:99999", "h:", "h:8o", "h?x", "h#x", "[::1", "[zz]:80", "h h", "%zz",
    ] {
        assert_eq!(h11("/", &[("host", bad)]), Err(Invalid::Host), "{bad:?}");
    }
    for good in [
        "h",
        "h:1",
        "h:65535",
        "10.0.0.1:80",
        "[::1]",
        "xn--bcher-kva.example",
        "a_b",
    ] {
        assert!(h11("/", &[("host", good)]).is_ok(), "{good:?}");
    }
}

#[test]
fn http11_needs_host_even_in_absolute_form() {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
    // HTTP/1.1 request message that lacks a Host header field".
    assert_eq!(h11("http://a.example/x", &[]), Err(Invalid::Host));
    let r = request(Version::HTTP_10, "http://a.example/x", &[]);
    assert_eq!(check(&r, &Limits::default()), Ok("a.example".into()));
    // HTTP/2 names its authority in :authority; a Host header is optional there.
    let r = request(Version::HTTP_2, "http://a.example/x", &[]);
    assert_eq!(check(&r, &Limits::default()), Ok("a.example".into()));
}

#[test]
fn http10_may_name_no_host_but_http2_must() {
    let r = request(Version::HTTP_10, "/", &[]);
    assert_eq!(check(&r, &Limits::default()), Ok("".into()));
    let r = request(Version::HTTP_2, "/", &[]);
    assert_eq!(check(&r, &Limits::default()), Err(Invalid::Host));
}

#[test]
fn the_target_authority_wins_and_must_agree_with_host() {
    assert_eq!(
        h11("http://a.example/x", &[("host", "a.example")]),
        Ok("a.example".into())
    );
    assert_eq!(
        h11("http://a.example/x", &[("host", "A.example")]),
        Ok("a.example".into())
    );
    assert_eq!(
        h11("http://a.example:80/", &[("host", "a.example")]),
        Ok("a.example:80".into())
    );
    assert_eq!(
        h11("http://a.example/", &[("host", "b.example")]),
        Err(Invalid::HostMismatch)
    );
    assert_eq!(
        h11("http://u@a.example/", &[("host", "a.example")]),
        Err(Invalid::Host)
    );
    // HTTP/2: :authority against Host (row 48).
    let r = request(
        Version::HTTP_2,
        "https://a.example/",
        &[("host", "b.example")],
    );
    assert_eq!(check(&r, &Limits::default()), Err(Invalid::HostMismatch));
}

#[test]
fn transfer_encoding_must_be_exactly_chunked_and_alone() {
    assert!(h11("/", &[("host", "h"), ("transfer-encoding", "chunked")]).is_ok());
    assert!(h11("/", &[("host", "h"), ("transfer-encoding", "Chunked")]).is_ok());
    for bad in [
        "gzip, chunked",
        "chunked, chunked",
        "x, chunked",
        ",chunked",
        "chunked,",
    ] {
        assert_eq!(
            h11("/", &[("host", "h"), ("transfer-encoding", bad)]),
            Err(Invalid::Framing),
            "{bad:?}"
        );
    }
    assert_eq!(
        h11(
            "/",
            &[
                ("host", "h"),
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]
        ),
        Err(Invalid::Framing)
    );
    // portero's parser keeps the Content-Length beside the Transfer-Encoding.
    let r = request(
        Version::HTTP_11,
        "/",
        &[
            ("host", "h"),
            ("transfer-encoding", "chunked"),
            ("content-length", "4"),
        ],
    );
    assert_eq!(check(&r, &Limits::default()), Err(Invalid::Framing));
}

#[test]
fn limits_have_their_own_answers() {
    let long = format!("/{}", "a".repeat(8 * 1024));
    assert_eq!(h11(&long, &[("host", "h")]), Err(Invalid::UriTooLong));
    assert!(h11(&long[..8 * 1024], &[("host", "h")]).is_ok());
    assert_eq!(
        h11("/", &[("host", "h"), ("content-length", "10485761")]),
        Err(Invalid::BodyTooLarge)
    );
    assert!(h11("/", &[("host", "h"), ("content-length", "10485760")]).is_ok());
}

#[test]
fn only_100_continue_is_expected() {
    assert!(h11("/", &[("host", "h"), ("expect", "100-Continue")]).is_ok());
    assert_eq!(
        h11("/", &[("host", "h"), ("expect", "200-ok")]),
        Err(Invalid::Expectation)
    );
    assert_eq!(
        h11(
            "/",
            &[
                ("host", "h"),
                ("expect", "100-continue"),
                ("expect", "100-continue")
            ]
        ),
        Err(Invalid::Expectation),
        "repeated"
    );
}

#[test]
fn underscores_and_padded_values_are_refused() {
    assert_eq!(
        h11("/", &[("host", "h"), ("x_forwarded_for", "1.2.3.4")]),
        Err(Invalid::Header)
    );
    let r = request(Version::HTTP_2, "http://h/", &[("x-a", " padded")]);
    assert_eq!(check(&r, &Limits::default()), Err(Invalid::Header));
}

#[test]
fn connect_is_not_proxied() {
    let r = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .body(())
        .unwrap();
    assert_eq!(check(&r, &Limits::default()), Err(Invalid::Method));
}

#[test]
fn paths_are_normalised_before_routing() {
    let cases = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/./b", "/a/b"),
        ("//admin", "/admin"),
        ("/a//b/", "/a/b/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2e//admin", "/admin"),
        ("/%7euser", "/~user"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb/..", "/"),
        ("/a;b/../c", "/c"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/bad%zz/.", "/bad%25zz/"),
        ("/%+f/x", "/%25+f/x"),
        ("/a%", "/a%25"),
        ("/%%32%65", "/%252e"),
        ("/public/%%32%65%2%65/admin", "/public/%252e%252e/admin"),
        ("*", "*"),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_path(input), expected, "{input}");
    }
    assert!(matches!(normalize_path("/plain/path"), Cow::Borrowed(_)));
}

#[test]
fn the_target_must_be_a_path() {
    let options = Request::builder()
        .method(Method::OPTIONS)
        .uri("*")
        .header("host", "h")
        .body(())
        .unwrap();
    assert!(check(&options, &Limits::default()).is_ok());
    assert_eq!(h11("*", &[("host", "h")]), Err(Invalid::Target));
    assert!(
        h11("http://h", &[("host", "h")]).is_ok(),
        "absolute-form without a path is /"
    );
}
