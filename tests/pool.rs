//! The pool with real backends: health checks, passive ejection, panic mode, retries that are
//! safe, slow start and consistent hashing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client::{self, send};
use support::daemon::{config_text, start, traffic};
use support::metric;
use support::metrics::metrics;
use support::status::{state, wait_for_state};
use tokio::io::AsyncReadExt;

/// A config over `backends` (weight 1) with `pool_keys` in `[pool.app]` and `tables` after it.
fn text(backends: &[SocketAddr], pool_keys: &str, tables: &str) -> String {
    let weighted: Vec<(SocketAddr, u32)> = backends.iter().map(|a| (*a, 1)).collect();
    config_text(&weighted, tables).replace("[pool.app]\n", &format!("[pool.app]\n{pool_keys}"))
}

const CHECKS: &str = "[pool.app.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 3\n";

/// `n` GETs with `header` set to `value(i)`; the `x-backend` of each answer.
async fn names(
    addr: SocketAddr,
    n: usize,
    header: (&str, &dyn Fn(usize) -> String),
) -> Vec<String> {
    let client = client::http1();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let request = Request::get(format!("http://{addr}/"))
            .header(header.0, header.1(i))
            .body(Full::default())
            .unwrap();
        let reply = send(&client, request).await;
        out.push(reply.header("x-backend").to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_backend_under_load_fails_no_get_and_it_is_marked_down_within_interval_times_fall()
 {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let b_addr = b.addr;
    let app = start(&text(&[a.addr, b.addr, c.addr], "", CHECKS)).await;
    let addr = traffic(&app);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, sent, failed) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
        tokio::spawn(async move {
            let client = client::http1();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst)
                && Instant::now() < deadline
                && sent.load(Ordering::SeqCst) < 20_000
            {
                let request = Request::get(format!("http://{addr}/"))
                    .body(Full::default())
                    .unwrap();
                let ok = client
                    .request(request)
                    .await
                    .is_ok_and(|r| r.status() == 200);
                sent.fetch_add(1, Ordering::SeqCst);
                failed.fetch_add(u64::from(!ok), Ordering::SeqCst);
            }
        })
    };
    support::wait_until("load on every backend", Duration::from_secs(10), || {
        b.requests() > 20 && a.requests() > 20
    })
    .await;
    let killed = Instant::now();
    drop(b);
    wait_for_state(&app, b_addr, "unhealthy").await;
    let detected = killed.elapsed();
    let after = sent.load(Ordering::SeqCst);
    support::wait_until("more load after the kill", Duration::from_secs(10), || {
        sent.load(Ordering::SeqCst) > after + 200
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    println!(
        "killed backend marked down after {detected:?}; {} GETs, {} failed",
        sent.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "retries cover the window");
    // interval × fall = 150 ms; the margin absorbs a loaded machine.
    assert!(
        detected < Duration::from_millis(150) + Duration::from_secs(3),
        "{detected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_checks_take_a_backend_out_after_fall_and_back_after_rise() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let app = start(&text(&[a.addr, b.addr], "", CHECKS)).await;
    let addr = traffic(&app);
    support::wait_until("first checks", Duration::from_secs(10), || {
        b.health_checks() > 0
    })
    .await;

    // Counted from before the switch: a check answered between the two would be a failure
    // counted in `before`.
    let before = b.health_checks();
    b.set_health(503);
    wait_for_state(&app, b.addr, "unhealthy").await;
    assert!(
        b.health_checks() - before >= 3,
        "not before `fall` failures in a row"
    );
    let served = names(addr, 20, ("x-n", &|i| i.to_string())).await;
    assert!(served.iter().all(|n| n == "a"), "{served:?}");

    let before = b.health_checks();
    b.set_health(200);
    wait_for_state(&app, b.addr, "healthy").await;
    assert!(
        b.health_checks() - before >= 2,
        "not before `rise` passes in a row"
    );
    let served = names(addr, 20, ("x-n", &|i| i.to_string())).await;
    assert!(served.iter().any(|n| n == "b"), "{served:?}");

    let m = metrics(&app).await;
    let labels = |to: &str, reason: &str| {
        format!(
            "portero_backend_transitions_total{{backend=\"{}\",pool=\"app\",reason=\"{reason}\",to=\"{to}\"}}",
            b.addr
        )
    };
    assert_eq!(metric(&m, &labels("unhealthy", "check_failed")), 1.0, "{m}");
    assert_eq!(metric(&m, &labels("healthy", "check_passed")), 1.0);
    assert!(
        metric(
            &m,
            &format!(
                "portero_health_checks_total{{backend=\"{}\",pool=\"app\",result=\"fail\"}}",
                b.addr
            )
        ) >= 3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_500_on_real_traffic_is_ejected_passively() {
    let a = TestBackend::named("a").await;
    let bad = TestBackend::start("bad", Behavior::Status(500)).await;
    let c = TestBackend::named("c").await;
    let outlier = "[pool.app.outlier]\nconsecutive_failures = 3\nejection = \"60s\"\n";
    let app = start(&text(&[a.addr, bad.addr, c.addr], "", outlier)).await;
    let served = names(traffic(&app), 30, ("x-n", &|i| i.to_string())).await;
    assert_eq!(
        bad.requests(),
        3,
        "ejected after 3 failures in a row: {served:?}"
    );
    assert_eq!(
        served.iter().filter(|n| *n == "bad").count(),
        3,
        "the client saw the backend's own 500s"
    );
    assert_eq!(state(&app, bad.addr).await, "unhealthy");
    let m = metrics(&app).await;
    let ejected = format!(
        "portero_backend_transitions_total{{backend=\"{}\",pool=\"app\",reason=\"outlier\",to=\"unhealthy\"}}",
        bad.addr
    );
    assert_eq!(metric(&m, &ejected), 1.0, "{m}");
}

/// A backend that reads a whole request, counts it by method, and closes without answering.
async fn swallowing_backend() -> (SocketAddr, Arc<std::sync::Mutex<HashMap<String, u64>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let seen = Arc::clone(&counts);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        let method = text.split(' ').next().unwrap().to_string();
                        *seen.lock().unwrap().entry(method).or_insert(0) += 1;
                        return; // close without a response
                    }
                }
            });
        }
    });
    (addr, counts)
}

/// A pool of the swallowing backend and a good one, three retries, outlier detection off (the
/// swallowing backend must keep getting its turn).
async fn swallower_then_good() -> (
    Arc<std::sync::Mutex<HashMap<String, u64>>>,
    TestBackend,
    Arc<portero::App>,
) {
    let (swallower, counts) = swallowing_backend().await;
    let good = TestBackend::start("good", Behavior::Sink).await;
    let app = start(&text(
        &[swallower, good.addr],
        "retries = 3\n",
        "[pool.app.outlier]\nconsecutive_failures = 0\n",
    ))
    .await;
    (counts, good, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_reached_a_backend_is_never_sent_again_but_a_get_is_retried() {
    let (counts, good, app) = swallower_then_good().await;
    let addr = traffic(&app);
    let http = client::http1();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let request = Request::post(format!("http://{addr}/orders"))
            .body(Full::new(Bytes::from_static(b"{\"qty\":1}")))
            .unwrap();
        statuses.push(send(&http, request).await.status.as_u16());
    }
    let swallowed = counts.lock().unwrap().get("POST").copied().unwrap_or(0);
    let failed = statuses.iter().filter(|&&s| s == 502).count() as u64;
    assert!(
        swallowed > 0,
        "some POSTs went to the swallowing backend: {statuses:?}"
    );
    assert_eq!(
        failed, swallowed,
        "every swallowed POST failed, none was retried: {statuses:?}"
    );
    assert_eq!(
        good.requests() + swallowed,
        10,
        "each POST reached exactly one backend"
    );

    let before = good.requests();
    for _ in 0..10 {
        assert_eq!(
            send(
                &http,
                Request::get(format!("http://{addr}/items"))
                    .body(Full::default())
                    .unwrap()
            )
            .await
            .status,
            200
        );
    }
    assert_eq!(
        good.requests() - before,
        10,
        "every GET answered, retried when swallowed"
    );
    assert!(counts.lock().unwrap().get("GET").copied().unwrap_or(0) > 0);
}

/// The retry of a GET sends the same head as the first try: the headers the client sent and
/// the ones portero added (the first try had only a copy of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_get_reaches_the_next_backend_with_its_headers() {
    let (counts, good, app) = swallower_then_good().await;
    let addr = traffic(&app);
    let http = client::http1();
    let swallowed = || counts.lock().unwrap().get("GET").copied().unwrap_or(0);
    let mut retried = None;
    for _ in 0..10 {
        let before = swallowed();
        let request = Request::get(format!("http://{addr}/items"))
            .header("x-test", "kept")
            .body(Full::default())
            .unwrap();
        assert_eq!(send(&http, request).await.status, 200);
        if swallowed() > before {
            retried = Some(good.last_headers());
            break;
        }
    }
    let headers = retried.expect("round robin sends one of the GETs to the swallower first");
    assert_eq!(headers.get("x-test").unwrap(), "kept");
    assert!(headers.contains_key("host"), "{headers:?}");
    assert!(headers.contains_key("x-forwarded-for"), "{headers:?}");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
}

/// An HTTP/1.0 request that names no host gets each backend's own as Host, try by try: the
/// tries share one head, and the retry's Host is the next backend's, not the first one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_without_host_names_the_backend_it_reaches() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (counts, good, app) = swallower_then_good().await;
    let swallowed = || counts.lock().unwrap().get("GET").copied().unwrap_or(0);
    let mut retried = None;
    for _ in 0..10 {
        let before = swallowed();
        let mut stream = tokio::net::TcpStream::connect(traffic(&app)).await.unwrap();
        stream
            .write_all(b"GET /items HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .expect("answered and closed")
            .unwrap();
        assert!(
            reply.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&reply)
        );
        if swallowed() > before {
            retried = Some(good.last_headers());
            break;
        }
    }
    let headers = retried.expect("round robin sends one of the GETs to the swallower first");
    assert_eq!(headers.get("host").unwrap(), &good.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_connect_failed_is_retried_elsewhere_because_nothing_was_sent() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let good = TestBackend::start("good", Behavior::Sink).await;
    let app = start(&text(
        &[dead, good.addr],
        "",
        "[pool.app.outlier]\nconsecutive_failures = 0\n",
    ))
    .await;
    let addr = traffic(&app);
    let http = client::http1();
    for i in 0..10 {
        let body = Bytes::from(vec![b'z'; 100_000 + i]);
        let reply = send(
            &http,
            Request::post(format!("http://{addr}/upload"))
                .body(Full::new(body))
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "attempt {i}");
        assert_eq!(
            reply.body,
            (100_000 + i).to_string(),
            "the streamed body arrived whole after the retry"
        );
    }
    assert_eq!(good.requests(), 10);
    assert!(metric(&metrics(&app).await, "portero_retries_total{pool=\"app\"}") >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_gives_a_new_backend_a_growing_share() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let app = start(&text(&[a.addr], "slow_start = \"3s\"\n", "")).await;
    let addr = traffic(&app);
    let grown = text(&[a.addr, b.addr], "slow_start = \"3s\"\n", "");
    app.apply(portero::Config::from_toml(&grown, "grown").unwrap())
        .unwrap();
    let added = Instant::now();
    let share = |served: &[String]| {
        served.iter().filter(|n| *n == "b").count() as f64 / served.len() as f64
    };
    let early = share(&names(addr, 200, ("x-n", &|i| i.to_string())).await);
    let early_at = added.elapsed();
    // Keep sending until the ramp is over, then measure again.
    while added.elapsed() < Duration::from_secs(3) {
        names(addr, 20, ("x-n", &|i| i.to_string())).await;
    }
    let late = share(&names(addr, 200, ("x-n", &|i| i.to_string())).await);
    println!("new backend's share: {early:.2} in the first {early_at:?}, {late:.2} after the ramp");
    assert!(early < 0.2, "{early}");
    assert!(late > 0.4, "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_keys_and_moves_about_one_nth_when_one_of_n_leaves() {
    let backends: Vec<TestBackend> = futures_util::future::join_all(
        (0..5).map(|i| TestBackend::named(Box::leak(format!("b{i}").into_boxed_str()))),
    )
    .await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let keys = "balance = \"consistent_hash\"\nhash_key = \"header:x-user\"\n";
    let app = start(&text(&addrs, keys, "")).await;
    let addr = traffic(&app);
    let user = |i: usize| format!("user-{i}");
    let first = names(addr, 300, ("x-user", &user)).await;
    assert_eq!(
        first,
        names(addr, 300, ("x-user", &user)).await,
        "every key stays on its backend"
    );
    assert!(
        first.iter().collect::<std::collections::HashSet<_>>().len() == 5,
        "keys spread over all"
    );

    let without_b2: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| *a != backends[2].addr)
        .collect();
    app.apply(portero::Config::from_toml(&text(&without_b2, keys, ""), "shrunk").unwrap())
        .unwrap();
    let after = names(addr, 300, ("x-user", &user)).await;
    let moved_elsewhere = first
        .iter()
        .zip(&after)
        .filter(|(f, a)| *f != "b2" && f != a)
        .count();
    let were_on_b2 = first.iter().filter(|f| *f == "b2").count();
    assert!(after.iter().all(|n| n != "b2"));
    println!("b2 had {were_on_b2} of 300 keys; {moved_elsewhere} other keys moved");
    assert!(
        moved_elsewhere <= 30,
        "only the departed backend's keys move (plus a few): {moved_elsewhere}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_engages_when_fewer_than_half_are_healthy_and_recovers() {
    let backends: Vec<TestBackend> = futures_util::future::join_all(
        (0..4).map(|i| TestBackend::named(Box::leak(format!("p{i}").into_boxed_str()))),
    )
    .await;
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let checks = CHECKS.replace("rise = 2\nfall = 3", "rise = 1\nfall = 1");
    let app = start(&text(&addrs, "", &checks)).await;
    let addr = traffic(&app);
    let panic_total = "portero_pool_panic_total{pool=\"app\"}";
    for b in &backends[1..] {
        b.set_health(503);
    }
    for b in &backends[1..] {
        wait_for_state(&app, b.addr, "unhealthy").await;
    }
    let served = names(addr, 40, ("x-n", &|i| i.to_string())).await;
    for b in 0..4 {
        assert!(
            served.iter().filter(|n| **n == format!("p{b}")).count() >= 5,
            "spread over all four: {served:?}"
        );
    }
    let panicked = metric(&metrics(&app).await, panic_total);
    assert!(panicked >= 40.0, "{panicked}");

    for b in &backends[1..] {
        b.set_health(200);
    }
    for b in &backends[1..] {
        wait_for_state(&app, b.addr, "healthy").await;
    }
    names(addr, 40, ("x-n", &|i| i.to_string())).await;
    assert_eq!(
        metric(&metrics(&app).await, panic_total),
        panicked,
        "out of panic once they recover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_checks_find_a_dead_backend_and_no_healthy_backend_means_503_at_once() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let (a_addr, b_addr) = (a.addr, b.addr);
    let tcp = "[pool.app.health_check]\ninterval = \"50ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 2\n\
               [pool.app.outlier]\nconsecutive_failures = 0\n";
    let app = start(&text(&[a.addr, b.addr], "", tcp)).await;
    drop(b);
    wait_for_state(&app, b_addr, "unhealthy").await;
    assert_eq!(state(&app, a_addr).await, "healthy");
    drop(a);
    wait_for_state(&app, a_addr, "unhealthy").await;
    let started = Instant::now();
    let reply = client::get(traffic(&app), "/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), "1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not after a timeout"
    );
    let ready = client::get(app.admin_addr(), "/readyz").await;
    assert_eq!(
        ready.status, 503,
        "not ready without a healthy backend: {}",
        ready.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_nothing_new_to_a_backend_still_holding_a_request() {
    let stuck = TestBackend::start("stuck", Behavior::Hang).await;
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let app = start(&text(
        &[stuck.addr, b.addr, c.addr],
        "balance = \"least_conn\"\n",
        "",
    ))
    .await;
    let addr = traffic(&app);
    // The first pick of an idle pool is its first member: this request stays in flight there.
    let held = tokio::spawn(async move {
        let _ = client::http1()
            .request(
                Request::get(format!("http://{addr}/"))
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while stuck.requests() == 0 {
        assert!(
            Instant::now() < deadline,
            "the first request never reached the first member"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every later request sees one in flight there and none elsewhere: round robin would send
    // a third of them into the hang, least_conn none.
    let served = names(addr, 30, ("x-n", &|i| i.to_string())).await;
    held.abort();
    assert_eq!(stuck.requests(), 1);
    assert!(served.iter().all(|n| n == "b" || n == "c"), "{served:?}");
    assert!(
        served.iter().any(|n| n == "b") && served.iter().any(|n| n == "c"),
        "{served:?}"
    );
}
