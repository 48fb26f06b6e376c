//! The gRPC cell of the peer matrix: a hung grpcio server ejected by the HTTP/2 probe and
//! recovered.

use super::*;

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
