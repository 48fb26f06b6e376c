//! The calls portero answers itself, the gRPC way: HTTP 200 and a trailers-only
//! `grpc-status` that grpcio reads as the call's status.

use super::*;

/// What portero answers itself to a gRPC call, grpcio's client reads as a gRPC status: a dead
/// backend is UNAVAILABLE (14, HTTP 200, not a 502 the client must guess from), a path with
/// no route UNIMPLEMENTED (12), a client the route denies PERMISSION_DENIED (7), a rate
/// limit RESOURCE_EXHAUSTED (8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_grpcio_calls_portero_cannot_forward_get_grpc_statuses() {
    if peers_python().is_none() {
        return;
    }
    // Nothing listens there: the port was free a moment ago and is not bound again.
    let dead = SocketAddr::from(([127, 0, 0, 1], support::external::free_port()));
    let cases: [(&str, u64, &str); 4] = [
        ("", 14, "portero: 502 Bad Gateway (connect_failed)"),
        (
            "[[route]]\nhost = \"elsewhere.test\"\npool = \"app\"\n",
            12,
            "portero: 404 Not Found (no_route)",
        ),
        (
            "[[route]]\npool = \"app\"\ndeny = [\"127.0.0.0/8\"]\n",
            7,
            "portero: 403 Forbidden (forbidden)",
        ),
        (
            "[security.rate_limit]\nrequests_per_second = 0.01\nburst = 1\n",
            8,
            "portero: 429 Too Many Requests (rate_limited)",
        ),
    ];
    for (tables, code, details) in cases {
        let app = start(&h2c_config(&[dead], "", tables)).await;
        // Two calls: the rate limit lets the first through (to the dead backend).
        let results = calls(traffic(&app), &["unary:x", "unary:y"]).await;
        let result = &results[1];
        assert_eq!(result["code_value"], code, "{tables}: {result}");
        assert_eq!(result["details"], details, "{tables}: {result}");
    }

    // The same on the wire: HTTP 200 and a trailers-only response.
    let app = start(&h2c_config(&[dead], "", "")).await;
    let request = grpc_request(traffic(&app), "/peer.Peer/Echo")
        .body(Full::new(grpc_frame(b"x")))
        .unwrap();
    let response = client::h2c().request(request).await.unwrap();
    assert_trailers_only(response, "14", "portero: 502 Bad Gateway (connect_failed)").await;

    // A request that is not gRPC still gets the plain status.
    let reply = client::send(
        &client::h2c(),
        Request::post(format!("http://{}/peer.Peer/Echo", traffic(&app)))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 502, "{reply:?}");
}

/// A pool of gRPC servers left at `protocol = "http1"` (the default): grpcio's server does not
/// speak HTTP/1.1, and the call ends at once with UNAVAILABLE, not after a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_behind_an_http1_pool_is_unavailable_at_once() {
    let Some((_server, addr)) = grpc_server(0) else {
        return;
    };
    let app = start(&config_text(&[(addr, 1)], "")).await;
    let result = call(traffic(&app), "unary:x").await;
    assert_eq!(result["code"], "UNAVAILABLE", "{result}");
    assert_eq!(
        result["details"],
        "portero: 502 Bad Gateway (upstream_failed)"
    );
    assert!(result["elapsed"].as_f64().unwrap() < 2.0, "{result}");
}
