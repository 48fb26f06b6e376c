use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// The fields a backend gets: the map and those added beside it, joined as
/// `RequestHead::all_headers` joins them for hyper's client.
fn joined(headers: HeaderMap, added: Forwarding) -> HeaderMap {
    crate::upstream::RequestHead {
        method: http::Method::GET,
        path: None,
        headers,
        added: added.fields,
    }
    .all_headers()
}

/// `headers` after `forwarding` for `hop`, as a backend gets them.
fn forwarded(mut headers: HeaderMap, hop: &Hop<'_>) -> HeaderMap {
    let added = forwarding(&mut headers, hop);
    joined(headers, added)
}

fn hop(trusted: bool) -> Hop<'static> {
    Hop {
        peer: "192.0.2.7".parse().unwrap(),
        trusted,
        proto: "http",
        host: "example.com",
    }
}

#[test]
fn hop_by_hop_and_named_headers_are_removed() {
    let mut h = map(&[
        ("connection", "close, X-Secret"),
        ("connection", "x-other"),
        ("x-secret", "1"),
        ("x-other", "2"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("proxy-authorization", "Basic x"),
        ("te", "gzip"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-kept", "yes"),
    ]);
    remove_hop_by_hop(&mut h, None);
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, vec!["x-kept"]);
}

#[test]
fn te_trailers_is_removed_and_reported_for_grpc() {
    let mut h = map(&[("te", "trailers")]);
    assert!(remove_hop_by_hop(&mut h, None), "accepts trailers");
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn te_that_accepts_trailers_among_codings_is_reported() {
    let mut h = map(&[("connection", "TE"), ("te", "deflate;q=0.5, Trailers")]);
    assert!(remove_hop_by_hop(&mut h, None));
    assert!(h.is_empty(), "{h:?}");
    let mut h = map(&[("connection", "te"), ("te", "gzip")]);
    assert!(!remove_hop_by_hop(&mut h, None));
    assert!(h.is_empty(), "{h:?}");
    assert!(!remove_hop_by_hop(&mut map(&[("x", "y")]), None));
}

#[test]
fn connection_cannot_strip_our_own_forwarding_headers() {
    let mut h = map(&[
        ("connection", "close, X-Forwarded-For"),
        ("x-forwarded-for", "6.6.6.6"),
    ]);
    remove_hop_by_hop(&mut h, None);
    let h = forwarded(h, &hop(false));
    assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
}

#[test]
fn upgrade_is_recognised_and_reannounced() {
    let h = map(&[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
    ]);
    let up = requested_upgrade(&h).unwrap();
    let mut h2 = h.clone();
    remove_hop_by_hop(&mut h2, Some(up));
    assert_eq!(h2.get("connection").unwrap(), "upgrade");
    assert_eq!(h2.get("upgrade").unwrap(), "websocket");
    assert!(
        requested_upgrade(&map(&[("upgrade", "websocket")])).is_none(),
        "needs Connection: upgrade"
    );
    assert!(requested_upgrade(&map(&[("connection", "upgrade"), ("upgrade", "h2c")])).is_none());
}

#[test]
fn spoofed_forwarding_headers_are_replaced_for_untrusted_peers() {
    let h = map(&[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
    ]);
    let h = forwarded(h, &hop(false));
    assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
    assert_eq!(h.get("x-forwarded-host").unwrap(), "example.com");
    assert!(h.get("forwarded").is_none());
    assert!(h.get("x-real-ip").is_none());
    for (name, value) in [("forwarded", "for=1.2.3.4"), ("x-real-ip", "1.2.3.4")] {
        let h = forwarded(map(&[(name, value), (name, value)]), &hop(false));
        assert!(h.get(name).is_none(), "{name} alone, twice");
    }
}

#[test]
fn trusted_proxies_chain_is_appended_to() {
    let mut h = map(&[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8"),
        ("x-forwarded-proto", "https"),
    ]);
    let added = forwarding(&mut h, &hop(true));
    // What stays in the map and what is added never name the same field.
    assert!(added.fields.iter().all(|(name, _)| !h.contains_key(name)));
    let h = joined(h, added);
    assert_eq!(
        h.get("x-forwarded-for").unwrap(),
        "1.2.3.4, 5.6.7.8, 192.0.2.7"
    );
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
}

#[test]
fn request_id_is_kept_or_made() {
    let mut h = map(&[("x-request-id", "abc")]);
    let added = forwarding(&mut h, &hop(false));
    assert_eq!(added.request_id, "abc");
    assert!(added.fields.iter().all(|(name, _)| name != X_REQUEST_ID));
    let h = joined(h, added);
    assert_eq!(h.get_all("x-request-id").iter().count(), 1);
    let mut h = HeaderMap::new();
    let added = forwarding(&mut h, &hop(false));
    let id = added.request_id.clone();
    assert_eq!(id.len(), 32);
    let h = joined(h, added);
    assert_eq!(h.get("x-request-id").unwrap(), &id);
    assert_ne!(new_request_id(), new_request_id());
}

#[test]
fn the_client_is_the_nearest_untrusted_hop() {
    let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let h = map(&[
        ("x-forwarded-for", "198.51.100.9, 203.0.113.5"),
        ("x-forwarded-for", "10.0.0.7"),
    ]);
    assert_eq!(client_ip(peer, &h, trusted).to_string(), "203.0.113.5");
    let outsider: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        client_ip(outsider, &h, trusted),
        outsider,
        "spoofed XFF ignored"
    );
    let junk = map(&[("x-forwarded-for", "198.51.100.9, junk, 10.0.0.8")]);
    assert_eq!(
        client_ip(peer, &junk, trusted).to_string(),
        "10.0.0.8",
        "nothing left of a bad entry is believed"
    );
    assert_eq!(client_ip(peer, &HeaderMap::new(), trusted), peer);
}

#[test]
fn ipv4_is_written_as_display_writes_it() {
    for octet in 0..=255u8 {
        for ip in [
            std::net::Ipv4Addr::new(octet, 0, 9, 255),
            std::net::Ipv4Addr::new(10, octet, 100, octet),
        ] {
            let mut out = String::new();
            push_ip(&mut out, IpAddr::V4(ip));
            assert_eq!(out, ip.to_string());
        }
    }
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let mut out = String::from("a, ");
    push_ip(&mut out, v6);
    assert_eq!(out, "a, 2001:db8::7");
}

#[test]
fn request_ids_are_32_lowercase_hex_digits() {
    for _ in 0..100 {
        let id = new_request_id();
        let text = id.to_str().unwrap();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}

#[test]
fn an_upgrade_is_announced_even_with_no_hop_by_hop_field_to_remove() {
    let mut h = map(&[("x-kept", "yes")]);
    remove_hop_by_hop(&mut h, Some(HeaderValue::from_static("websocket")));
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["x-kept"], "yes");
}

#[test]
fn cookie_crumbs_are_joined_in_order() {
    let mut h = map(&[
        ("cookie", "a=1"),
        ("x", "y"),
        ("cookie", "b=2"),
        ("cookie", "c=3"),
    ]);
    join_cookie_crumbs(&mut h);
    assert_eq!(
        h.get_all("cookie").iter().collect::<Vec<_>>(),
        ["a=1; b=2; c=3"]
    );
    let mut one = map(&[("cookie", "a=1")]);
    join_cookie_crumbs(&mut one);
    assert_eq!(one.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1"]);
}

/// A response from an HTTP/1.1 backend keeps its fields as bytes (`h1::RawFields`); their
/// hop-by-hop removal must leave what this module's leaves of the same fields as a map.
#[test]
fn raw_fields_lose_the_same_hop_by_hop_fields_as_a_map() {
    let heads: [&[u8]; 5] = [
        b"Connection: close\r\nServer: n\r\nContent-Length: 0\r\n",
        b"Connection: X-Trace, keep-alive\r\nKeep-Alive: timeout=5\r\nX-Trace: 1\r\nX-Kept: 2\r\n",
        b"Upgrade: ws\r\nTE: trailers\r\nProxy-Connection: x\r\nProxy-Authorization: y\r\n",
        b"x-a: 1\r\nConnection: X-A\r\nconnection: x-b\r\nX-B: 2\r\nX-C: 3\r\n",
        b"Connection: x-a, \xff\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n",
    ];
    let limits = crate::h1::ResponseLimits {
        max_bytes: 16 * 1024,
        max_headers: 100,
    };
    for lines in heads {
        let head = [b"HTTP/1.1 200 OK\r\n", lines, b"\r\n"].concat();
        let parsed = crate::h1::parse_response(&mut head[..].into(), limits, &http::Method::GET)
            .unwrap()
            .unwrap();
        let mut expected = HeaderMap::new();
        parsed.fields.prepend_to(&mut expected);
        remove_hop_by_hop(&mut expected, None);
        let mut raw = parsed.fields;
        raw.remove_hop_by_hop();
        let mut got = HeaderMap::new();
        raw.prepend_to(&mut got);
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(lines));
    }
}
