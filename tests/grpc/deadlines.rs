//! `grpc-timeout`: honoured by the backend and by portero itself, and standing in for
//! portero's own waits (up to `timeouts.grpc_timeout_max`) when longer.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_peer_client_grpcio_deadline_ends_the_call_at_its_grpc_timeout() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&h2c_config(&[addr], "", "")).await;
    // A 0.5 s deadline on a call the server would take 10 s over, behind portero's 30 s
    // upstream_response: the call ends at its deadline, and the next call is served at once.
    let results = calls(traffic(&app), &["deadline:0.5:10", "unary:after"]).await;
    let (late, after) = (&results[0], &results[1]);
    assert_eq!(late["code"], "DEADLINE_EXCEEDED", "{late}");
    let elapsed = late["elapsed"].as_f64().unwrap();
    assert!((0.45..5.0).contains(&elapsed), "{late}");
    assert_ok(after);
}

/// A bidirectional stream whose client is quiet longer than `timeouts.request_body` between
/// messages (a watch, a chat) is legitimate: its deadline, up to `timeouts.grpc_timeout_max`,
/// stands in for the request body's idle timeout, made against slow POSTs, which cut it
/// (RST_STREAM INTERNAL_ERROR after 1 s here) before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_grpcio_bidi_stream_with_a_quiet_client_outlives_request_body_timeout() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let timeouts = "[timeouts]\nrequest_body = \"1s\"\n";
    let app = start(&h2c_config(&[addr], "", timeouts)).await;
    let result = call(traffic(&app), "bidi_quiet:1.5:a,b").await;
    assert_ok(&result);
    assert_eq!(messages(&result), ["echo:a", "echo:b"]);
}

/// A server-streaming call whose first message comes later than `timeouts.upstream_response`
/// (a watch with no event yet; grpcio sends the response headers with the first message):
/// the client's deadline (20 s) allows it, and stands in for `upstream_response` up to
/// `timeouts.grpc_timeout_max`, as Envoy's `max_grpc_timeout` does (it was cut with
/// DEADLINE_EXCEEDED after 1 s here before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_stream_with_a_late_first_message_outlives_upstream_response() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let timeouts = "[timeouts]\nupstream_response = \"1s\"\n";
    let app = start(&h2c_config(&[addr], "", timeouts)).await;
    let result = call(traffic(&app), "watch:1.5").await;
    assert_ok(&result);
    assert_eq!(messages(&result), ["event"]);

    // With grpc_timeout_max = 0s the deadline only shortens: upstream_response cuts it.
    let timeouts = "[timeouts]\nupstream_response = \"1s\"\ngrpc_timeout_max = \"0s\"\n";
    let app = start(&h2c_config(&[addr], "", timeouts)).await;
    let result = call(traffic(&app), "watch:1.5").await;
    assert_eq!(result["code"], "DEADLINE_EXCEEDED", "{result}");
}

/// A hyper h2c backend that never answers ignores `grpc-timeout`: portero's own bound ends the
/// call, with DEADLINE_EXCEEDED at the call's deadline (not at `upstream_response`), and does
/// not count it against the backend (a client's short deadline is not a backend failure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_portero_wait_and_is_not_counted_against_the_backend() {
    let backend = TestBackend::start("hang", Behavior::Hang).await;
    let outlier = "[pool.app.outlier]\nconsecutive_failures = 2\nejection = \"60s\"\n";
    let app = start(&h2c_config(&[backend.addr], "", outlier)).await;
    let addr = traffic(&app);
    let h2 = client::h2c();
    for _ in 0..3 {
        let request = grpc_request(addr, "/peer.Peer/Slow")
            .header("grpc-timeout", "300m")
            .body(Full::new(grpc_frame(b"10")))
            .unwrap();
        let started = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(10), h2.request(request))
            .await
            .expect("portero answered within 10 s")
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            (Duration::from_millis(290)..Duration::from_secs(5)).contains(&elapsed),
            "answered after {elapsed:?}"
        );
        assert_trailers_only(
            response,
            "4",
            "portero: 504 Gateway Timeout (deadline_exceeded)",
        )
        .await;
    }
    assert_eq!(
        backend
            .seen
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    // TE: trailers reached the HTTP/2 backend (grpcio servers refuse a call without it).
    let headers = backend.last_headers();
    assert_eq!(
        headers.get("te").map(|v| v.as_bytes()),
        Some(&b"trailers"[..])
    );
    assert_eq!(headers["grpc-timeout"], "300m");
    assert_eq!(state(&app, backend.addr).await, "healthy");
}
