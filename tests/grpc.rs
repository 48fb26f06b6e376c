//! gRPC through portero with a real gRPC stack on both ends: grpcio's server
//! (`tests/peers/grpc_server.py`) behind an h2c pool, grpcio's client
//! (`tests/peers/grpc_client.py`) in front. The four call kinds with their messages, initial
//! and trailing metadata; a non-OK status passing through unchanged; `grpc-timeout` honoured,
//! by the backend and by portero itself; the calls portero cannot forward answered the gRPC
//! way (HTTP 200, `grpc-status`); and the gRPC cell of the peer matrix: a hung server ejected
//! by the health checks and recovered.
//!
//! Cells of the matrix are named `peer_backend_grpcio_*` (grpcio as the backend) and
//! `peer_client_grpcio_*` (grpcio as the client; most tests are both).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::external::{External, peer_file, peers_python};
use support::pki::{Ca, https_config};
use support::status::{state, wait_for_state};

/// A grpcio server on 127.0.0.1 (`port` 0: any); `None` (a loud skip) without the peers venv.
fn grpc_server(port: u16) -> Option<(External, SocketAddr)> {
    let mut command = Command::new(peers_python()?);
    command
        .arg(peer_file("grpc_server.py"))
        .arg(port.to_string());
    Some(External::spawn_listening(command))
}

/// A config of one h2c pool over `backends`, with `pool_keys` in `[pool.app]` and `tables`
/// after it.
fn h2c_config(backends: &[SocketAddr], pool_keys: &str, tables: &str) -> String {
    let weighted: Vec<(SocketAddr, u32)> = backends.iter().map(|a| (*a, 1)).collect();
    config_text(&weighted, tables).replace(
        "[pool.app]\n",
        &format!("[pool.app]\nprotocol = \"h2c\"\n{pool_keys}"),
    )
}

/// Runs grpcio's client against `target` with `cases` (see grpc_client.py); one JSON object
/// per case, in order.
async fn calls(target: SocketAddr, cases: &[&str]) -> Vec<Value> {
    run_client(&[target.to_string()], cases).await
}

/// Runs grpc_client.py with `args` (the target, after `--tls CA NAME` for TLS) and `cases`.
async fn run_client(args: &[String], cases: &[&str]) -> Vec<Value> {
    let python = peers_python().expect("a test that started a server has the venv");
    let mut command = Command::new(python);
    command
        .arg(peer_file("grpc_client.py"))
        .args(args)
        .args(cases);
    let cases = cases.len();
    tokio::task::spawn_blocking(move || {
        let mut client = External::spawn(command);
        // Every call is bounded at 20 s by the client itself.
        let code = client.wait(Duration::from_secs(20 * cases as u64 + 10));
        assert_eq!(code, Some(0), "grpc_client.py failed: {}", client.output());
        // The reader thread may still hold the last lines after the exit.
        support::wait_until_blocking("the client's output", Duration::from_secs(5), || {
            client.stdout.lock().unwrap().len() >= cases
        });
        let lines = client.stdout.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    })
    .await
    .unwrap()
}

/// One call.
async fn call(target: SocketAddr, case: &str) -> Value {
    calls(target, &[case]).await.remove(0)
}

/// The value of metadata `key` in `field` ("initial" or "trailing") of a call's result.
fn metadata<'a>(result: &'a Value, field: &str, key: &str) -> Option<&'a str> {
    result[field]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == key)
        .and_then(|pair| pair[1].as_str())
}

fn assert_ok(result: &Value) {
    assert_eq!(result["code"], "OK", "{result}");
}

fn messages(result: &Value) -> Vec<&str> {
    result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect()
}

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

fn grpc_request(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// A gRPC length-prefixed message (uncompressed).
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// A trailers-only response: HTTP 200, `content-type: application/grpc`, the status and
/// message in the head, and the stream ended there (no DATA, no separate trailers).
async fn assert_trailers_only(
    response: http::Response<hyper::body::Incoming>,
    code: &str,
    message: &str,
) {
    use http_body::Body as _;
    assert_eq!(response.status(), 200, "{response:?}");
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/grpc", "{response:?}");
    assert_eq!(headers["grpc-status"], code, "{response:?}");
    assert_eq!(headers["grpc-message"], message, "{response:?}");
    assert!(response.body().is_end_stream(), "END_STREAM on the HEADERS");
    let body = response.into_body().collect().await.unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());
}

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

/// Waits (10 s at most) until `backend` has passed `n` health checks.
async fn wait_for_passed_checks(app: &portero::App, backend: SocketAddr, n: u64) {
    let sample = format!(
        "portero_health_checks_total{{backend=\"{backend}\",pool=\"app\",result=\"pass\"}}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = client::get(app.admin_addr(), "/metrics").await.body;
        if support::metric(&text, &sample) >= n as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{backend} never passed {n} checks: {text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// Stops (SIGSTOP) or resumes (SIGCONT) a peer's whole process group.
fn signal(peer: &External, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), "--", &format!("-{}", peer.child.id())])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The gRPC cell of the peer matrix. grpcio answers portero's HTTP/2 probe (a GET) with
/// HTTP 200 and `grpc-status: 2` whatever the path, so for a pool of gRPC servers the probe
/// shows that the server's HTTP/2 stack answers; it cannot ask the service's own health
/// (grpc.health.v1 is a gRPC call). That is still the check an operator wants over a TCP
/// connect: a hung server (here SIGSTOP: a wedged process, a long GC pause) still completes
/// TCP handshakes from the kernel's backlog, and fails only the HTTP/2 probe.
///
/// Hung: ejected, and every call goes to the other server; both hung: calls end at once with
/// UNAVAILABLE (not hanging until a deadline); resumed: both serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_grpcio_sick_is_ejected_and_recovers() {
    let (Some((a, a_addr)), Some((b, b_addr))) = (grpc_server(0), grpc_server(0)) else {
        return;
    };
    // A timeout well above a probe's few milliseconds: on a loaded 2-core machine a fresh
    // Python server can take a few hundred, and a false ejection would fail the first phase.
    let checks = "[pool.app.health_check]\npath = \"/grpc.health.v1.Health/Check\"\n\
                  interval = \"100ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n";
    let app = start(&h2c_config(&[a_addr, b_addr], "", checks)).await;
    let addr = traffic(&app);
    // Backends start healthy; wait for probes that really passed.
    wait_for_passed_checks(&app, a_addr, 2).await;
    wait_for_passed_checks(&app, b_addr, 2).await;
    assert_eq!(state(&app, a_addr).await, "healthy");
    assert_eq!(state(&app, b_addr).await, "healthy");
    let served = |results: &[Value]| -> Vec<u16> {
        results
            .iter()
            .map(|r| {
                assert_ok(r);
                metadata(r, "trailing", "x-peer-port")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let ten = ["unary:u"; 10];
    let ports = served(&calls(addr, &ten).await);
    assert!(
        ports.contains(&a_addr.port()) && ports.contains(&b_addr.port()),
        "{ports:?}"
    );

    signal(&a, "STOP");
    wait_for_state(&app, a_addr, "unhealthy").await;
    let ports = served(&calls(addr, &ten).await);
    assert!(ports.iter().all(|p| *p == b_addr.port()), "{ports:?}");

    signal(&b, "STOP");
    wait_for_state(&app, b_addr, "unhealthy").await;
    let result = call(addr, "unary:nobody").await;
    assert_eq!(result["code"], "UNAVAILABLE", "{result}");
    assert_eq!(
        result["details"],
        "portero: 503 Service Unavailable (no_healthy_backend)"
    );
    assert!(result["elapsed"].as_f64().unwrap() < 2.0, "{result}");

    signal(&a, "CONT");
    signal(&b, "CONT");
    wait_for_state(&app, a_addr, "healthy").await;
    wait_for_state(&app, b_addr, "healthy").await;
    let ports = served(&calls(addr, &["unary:u"; 20]).await);
    assert!(
        ports.contains(&a_addr.port()) && ports.contains(&b_addr.port()),
        "{ports:?}"
    );
}
