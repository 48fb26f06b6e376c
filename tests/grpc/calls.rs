//! The four call kinds with their messages and metadata, statuses passing through, TLS in
//! front, a cancel reaching the backend and a stream cut midway.

use super::*;

/// The four call kinds through portero. Also shows `te: trailers` reaching the backend:
/// grpcio's server refuses a call without it (HTTP 200, `grpc-status: 2`, "Missing :te
/// header"), so every call here would fail if portero dropped it as hop-by-hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_peer_client_grpcio_all_four_call_kinds_with_metadata_and_trailers() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&h2c_config(&[addr], "", "")).await;
    let results = calls(
        traffic(&app),
        &[
            "unary:hello through portero",
            "big:300000",
            "server_stream:5",
            "client_stream:alpha,beta,gamma",
            "bidi:one,two,three",
        ],
    )
    .await;
    let [unary, big, server_stream, client_stream, bidi] = &results[..] else {
        panic!("{results:?}");
    };
    for result in &results {
        assert_ok(result);
    }

    assert_eq!(messages(unary), ["hello through portero"]);
    assert_eq!(metadata(unary, "initial", "x-peer-initial"), Some("echo"));
    assert_eq!(metadata(unary, "trailing", "x-peer-trailer"), Some("unary"));
    // A binary (-bin, base64 on the wire) trailer arrives byte for byte.
    assert_eq!(
        metadata(unary, "trailing", "x-peer-bin-bin"),
        Some("0001feff")
    );
    let port = addr.port().to_string();
    assert_eq!(metadata(unary, "trailing", "x-peer-port"), Some(&*port));

    // Larger than HTTP/2's default 64 KiB window both ways: flow control crosses portero.
    assert_eq!(big["received_len"], 300_000, "{big}");
    assert_eq!(big["received_sha256"], big["sent_sha256"], "{big}");

    assert_eq!(
        messages(server_stream),
        ["reply-0", "reply-1", "reply-2", "reply-3", "reply-4"]
    );
    assert_eq!(
        metadata(server_stream, "trailing", "x-peer-trailer"),
        Some("count")
    );

    assert_eq!(messages(client_stream), ["alphabetagamma"]);
    assert_eq!(
        metadata(client_stream, "trailing", "x-peer-count"),
        Some("3")
    );

    // Each message was sent only after the reply to the one before arrived: both directions
    // streamed through portero, nothing waited for the end of a body.
    assert_eq!(messages(bidi), ["echo:one", "echo:two", "echo:three"]);
    assert_eq!(metadata(bidi, "trailing", "x-peer-port"), Some(&*port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_peer_client_grpcio_non_ok_statuses_pass_through_unchanged() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&h2c_config(&[addr], "", "")).await;
    let results = calls(
        traffic(&app),
        &[
            "fail:9:not now, 100% sure ñ",
            "fail:5:no such thing",
            "fail:14:the backend's own unavailable",
            "fail:16:who are you",
        ],
    )
    .await;
    let expected = [
        ("FAILED_PRECONDITION", 9, "not now, 100% sure ñ"),
        ("NOT_FOUND", 5, "no such thing"),
        ("UNAVAILABLE", 14, "the backend's own unavailable"),
        ("UNAUTHENTICATED", 16, "who are you"),
    ];
    for (result, (name, code, details)) in results.iter().zip(expected) {
        assert_eq!(result["code"], name, "{result}");
        assert_eq!(result["code_value"], code, "{result}");
        // grpc-message is percent-encoded on the wire: it arrives decoded, exactly.
        assert_eq!(result["details"], details, "{result}");
        assert_eq!(
            metadata(result, "trailing", "x-peer-trailer"),
            Some("fail"),
            "{result}"
        );
    }
}

/// gRPC as it is mostly deployed: grpcio's client over TLS to portero (ALPN h2, the CA and
/// name checked), portero over h2c to grpcio's server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_grpcio_over_tls_to_peer_backend_grpcio() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let ca = Ca::new("grpc ca");
    let leaf = ca.issue("app", "app.test", &["app.test"], 1);
    let config = https_config(&[&leaf], "", addr, "")
        .replace("[pool.app]\n", "[pool.app]\nprotocol = \"h2c\"\n");
    let app = start(&config).await;
    let https = app.listener_addr("https").unwrap();
    let args = [
        "--tls".to_string(),
        ca.file().display().to_string(),
        "app.test".to_string(),
        https.to_string(),
    ];
    let results = run_client(
        &args,
        &["unary:over tls", "server_stream:3", "bidi:p,q", "fail:7:no"],
    )
    .await;
    for result in &results[..3] {
        assert_ok(result);
    }
    assert_eq!(messages(&results[0]), ["over tls"]);
    assert_eq!(
        metadata(&results[0], "trailing", "x-peer-trailer"),
        Some("unary")
    );
    assert_eq!(messages(&results[1]), ["reply-0", "reply-1", "reply-2"]);
    assert_eq!(messages(&results[2]), ["echo:p", "echo:q"]);
    assert_eq!(results[3]["code"], "PERMISSION_DENIED", "{}", results[3]);
    assert_eq!(results[3]["details"], "no");
}

/// A call the client cancels (RST_STREAM CANCEL) is cancelled at the backend too: portero
/// resets its upstream stream, so the server stops working on it at once instead of running
/// its 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_peer_client_grpcio_cancel_reaches_the_backend() {
    let Some((server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&h2c_config(&[addr], "", "")).await;
    let result = call(traffic(&app), "cancel:0.3:10").await;
    assert_eq!(result["code"], "CANCELLED", "{result}");
    let ended = |server: &External| {
        server
            .stdout
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| line.strip_prefix("slow ended ").map(str::to_string))
    };
    support::wait_until(
        "the server to see the cancellation",
        Duration::from_secs(5),
        || ended(&server).is_some(),
    )
    .await;
    let line = ended(&server).unwrap();
    let after: f64 = line.rsplit_once("after=").unwrap().1.parse().unwrap();
    assert!(line.starts_with("cancelled=True") && after < 5.0, "{line}");
}

/// A server that dies in the middle of a stream: the client gets the messages sent before and
/// an error, never an OK (the trailers with grpc-status never came, and portero does not make
/// a cut stream look complete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_peer_client_grpcio_stream_cut_midway_is_an_error() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&h2c_config(&[addr], "", "")).await;
    let result = call(traffic(&app), "crash:3").await;
    assert_ne!(result["code"], "OK", "{result}");
    let got = messages(&result);
    assert!(
        ["reply-0", "reply-1", "reply-2"].starts_with(&got),
        "{result}"
    );
}
