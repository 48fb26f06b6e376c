//! Connection admission with real sockets at a scaled-down ratio (baseline 200, burst 800):
//! tiers, `Connection: close` in burst, queueing and rejecting at the ceiling, reclaiming idle
//! connections, live resizing, and the metrics at every step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::daemon::{start, traffic};
use support::metric;
use support::metrics::metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BASELINE: usize = 200;
const BURST: usize = 800;

fn config(fast: SocketAddr, hang: SocketAddr, at_limit: &str) -> String {
    format!(
        "[admission]\nbaseline_connections = {BASELINE}\nburst_connections = {BURST}\nat_limit = \"{at_limit}\"\n\n\
         [admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = \"off\"\n\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [[route]]\npath_prefix = \"/hang\"\npool = \"hang\"\n\n[[route]]\npool = \"fast\"\n\n\
         [pool.fast]\nbackends = [\"{fast}\"]\n\n[pool.hang]\nbackends = [\"{hang}\"]\n"
    )
}

/// A connection with a request in flight to the backend that never answers: busy, not idle.
async fn busy(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// Sends a GET and reads one response head (and its short body) from the stream.
async fn get_on(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_response(stream).await
}

/// A whole response, head and `Content-Length` body (the head and the body may come in
/// separate writes), lowercased.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    while !is_complete(&text.to_ascii_lowercase()) {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed without a response: {text:?}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.to_ascii_lowercase()
}

fn is_complete(text: &str) -> bool {
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    text.len() >= end + 4 + length
}

async fn wait_for_metric(admin: SocketAddr, sample: &str, value: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(admin).await;
        if metric(&text, sample) == value {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sample} never reached {value}; last:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const OPEN: &str = "portero_connections_open{listener=\"http\"}";
const IN_BURST: &str = "portero_connections_in_burst";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_close_in_burst_and_queue_at_the_ceiling() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let app = start(&config(fast.addr, hang.addr, "queue")).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());

    // Within the baseline: keep-alive.
    let mut first = TcpStream::connect(addr).await.unwrap();
    let response = get_on(&mut first).await;
    assert!(
        response.starts_with("http/1.1 200") && !response.contains("connection: close"),
        "{response}"
    );
    // Busy, so that no connection is idle to reclaim at the ceiling below.
    first
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut baseline = vec![first];
    for _ in 1..BASELINE {
        baseline.push(busy(addr).await);
    }
    support::wait_until(
        "the baseline busy requests",
        Duration::from_secs(10),
        || hang.requests() == BASELINE as u64,
    )
    .await;
    let m = metrics(admin).await;
    assert_eq!(
        (metric(&m, OPEN), metric(&m, IN_BURST)),
        (BASELINE as f64, 0.0)
    );
    assert_eq!(
        metric(&m, "portero_connections_limit{tier=\"baseline\"}"),
        BASELINE as f64
    );
    assert_eq!(
        metric(&m, "portero_connections_limit{tier=\"burst\"}"),
        BURST as f64
    );

    // The 201st is admitted in burst: served once, with `Connection: close`.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let response = get_on(&mut extra).await;
    assert!(response.contains("connection: close"), "{response}");
    let mut rest = [0u8; 64];
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), extra.read(&mut rest))
            .await
            .unwrap()
            .unwrap(),
        0,
        "closed after"
    );
    wait_for_metric(admin, IN_BURST, 0.0).await;

    // 201..800 are all admitted, counted in burst.
    let mut burst = Vec::new();
    for _ in BASELINE..BURST {
        burst.push(busy(addr).await);
    }
    wait_for_metric(admin, OPEN, BURST as f64).await;
    wait_for_metric(admin, IN_BURST, (BURST - BASELINE) as f64).await;

    // The 801st waits in the backlog: connected, unanswered.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buf))
            .await
            .is_err(),
        "served above the ceiling"
    );
    assert_eq!(metric(&metrics(admin).await, OPEN), BURST as f64);

    // One closes: the 801st is served.
    drop(burst.pop());
    let response = read_response(&mut waiting).await;
    assert!(response.starts_with("http/1.1 200"), "{response}");
    let m = metrics(admin).await;
    assert_eq!(
        metric(
            &m,
            "portero_connections_rejected_total{listener=\"http\",reason=\"limit\"}"
        ),
        0.0
    );
    assert!(
        metric(&m, "portero_connections_accepted_total{listener=\"http\"}") >= (BURST + 2) as f64
    );
    drop((baseline, burst));
    wait_for_metric(admin, OPEN, 0.0).await;
    wait_for_metric(admin, IN_BURST, 0.0).await;
}

/// Keep-alive for a connection admitted in burst is judged per request: while the daemon is
/// over its baseline each response closes, once it is back under the connection is kept. A
/// client that reconnects at once after each close (as wrk and most pools do) must not be
/// held in burst for ever by its own closing connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_connection_is_kept_alive_once_the_load_is_back_under_the_baseline() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let app = start(&config(fast.addr, hang.addr, "queue")).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let mut baseline = Vec::new();
    for _ in 0..BASELINE {
        baseline.push(busy(addr).await);
    }
    wait_for_metric(admin, OPEN, BASELINE as f64).await;
    // Admitted in burst, and a request on it while still over the baseline: closed after it.
    let mut over = TcpStream::connect(addr).await.unwrap();
    wait_for_metric(admin, IN_BURST, 1.0).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    wait_for_metric(admin, IN_BURST, 2.0).await;
    let response = get_on(&mut over).await;
    assert!(response.contains("connection: close"), "{response}");
    drop(over);
    // Two baseline connections close: 198 + 1 open, under the baseline again. The connection
    // admitted in burst is now served like any other, request after request.
    drop(baseline.pop());
    drop(baseline.pop());
    wait_for_metric(admin, OPEN, (BASELINE - 1) as f64).await;
    for _ in 0..3 {
        let response = get_on(&mut extra).await;
        assert!(
            response.starts_with("http/1.1 200") && !response.contains("connection: close"),
            "{response}"
        );
    }
    drop((baseline, extra));
    wait_for_metric(admin, OPEN, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_answers_503_at_once_at_the_ceiling() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let app = start(&config(fast.addr, hang.addr, "reject")).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let mut held = Vec::new();
    for _ in 0..BURST {
        held.push(busy(addr).await);
    }
    wait_for_metric(admin, OPEN, BURST as f64).await;
    let mut over = TcpStream::connect(addr).await.unwrap();
    let response = get_on(&mut over).await;
    assert!(response.starts_with("http/1.1 503"), "{response}");
    assert!(
        response.contains("retry-after: 1") && response.contains("connection: close"),
        "{response}"
    );
    let m = metrics(admin).await;
    assert_eq!(
        metric(
            &m,
            "portero_connections_rejected_total{listener=\"http\",reason=\"limit\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, OPEN),
        BURST as f64,
        "the rejected one never counted as open"
    );
    assert_eq!(fast.requests(), 0, "nothing reached a backend");
    drop(held.pop());
    wait_for_metric(admin, OPEN, (BURST - 1) as f64).await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut next).await.starts_with("http/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_ceiling_the_longest_idle_connection_is_closed_first() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let text = config(fast.addr, hang.addr, "queue")
        .replace(
            &format!("baseline_connections = {BASELINE}"),
            "baseline_connections = 3",
        )
        .replace(
            &format!("burst_connections = {BURST}"),
            "burst_connections = 3",
        );
    let app = start(&text).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut oldest).await.starts_with("http/1.1 200"));
    // The client can read the response before the server has let go of its body, which is
    // when the connection counts as idle; the exchange is recorded in that same drop. Without
    // this wait `newer` could become idle first (about one run in five).
    support::wait_until_async(
        "the first request recorded",
        Duration::from_secs(10),
        || async { support::metrics::metric_sum(admin, "portero_requests_total", "").await >= 1.0 },
    )
    .await;
    let mut newer = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut newer).await.starts_with("http/1.1 200"));
    let _busy = busy(addr).await;
    wait_for_metric(admin, OPEN, 3.0).await;

    let mut arriving = TcpStream::connect(addr).await.unwrap();
    assert!(
        get_on(&mut arriving).await.starts_with("http/1.1 200"),
        "served after a reclaim"
    );
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), oldest.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the longest-idle connection was closed");
    assert!(
        get_on(&mut newer).await.starts_with("http/1.1 200"),
        "the newer idle one was kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_resize_live_without_dropping_connections() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let text = config(fast.addr, hang.addr, "queue");
    let app = start(&text).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(busy(addr).await);
    }
    wait_for_metric(admin, OPEN, 10.0).await;
    let resized = text
        .replace(
            &format!("baseline_connections = {BASELINE}"),
            "baseline_connections = 5",
        )
        .replace(
            &format!("burst_connections = {BURST}"),
            "burst_connections = 8",
        );
    app.apply(portero::Config::from_toml(&resized, "resized").unwrap())
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&support::client::get(admin, "/status").await.body).unwrap();
    assert_eq!(status["connections"]["baseline"], 5);
    assert_eq!(status["connections"]["burst"], 8);
    assert_eq!(status["connections"]["open"], 10, "nobody was dropped");
    wait_for_metric(admin, "portero_connections_limit{tier=\"burst\"}", 8.0).await;
    // Above the new ceiling: a new connection waits until enough close.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), waiting.read(&mut buf))
            .await
            .is_err()
    );
    held.truncate(7);
    assert!(
        read_response(&mut waiting)
            .await
            .starts_with("http/1.1 200")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_admitted_in_burst_gets_goaway_after_its_streams() {
    let fast = TestBackend::named("fast").await;
    let hang = TestBackend::start("hang", Behavior::Hang).await;
    let text = config(fast.addr, hang.addr, "queue")
        .replace(
            &format!("baseline_connections = {BASELINE}"),
            "baseline_connections = 1",
        )
        .replace(
            &format!("burst_connections = {BURST}"),
            "burst_connections = 4",
        );
    let app = start(&text).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let _baseline = busy(addr).await;
    wait_for_metric(admin, OPEN, 1.0).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    wait_for_metric(admin, IN_BURST, 1.0).await;
    let request = http::Request::get(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200, "the stream that was open is served");
    // Then GOAWAY: the connection ends by itself and takes no new stream.
    let ended = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(ended.is_ok(), "the burst connection was not closed");
    wait_for_metric(admin, IN_BURST, 0.0).await;
}
